"""HTTP/1.1 on the wire: reading a request head and writing a response in one piece.

A small parser rather than :mod:`http.server`'s, which builds an :mod:`email` message per
request: this one costs a few microseconds, keeping the simulator out of the way of benchmarks.
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from typing import Protocol

__all__ = ["MAX_HEADERS", "MAX_LINE", "BadRequest", "RequestHead", "read_head", "response"]

#: Longest request line or header line accepted, in bytes.
MAX_LINE = 65536
#: Most header lines accepted in one request.
MAX_HEADERS = 100

_REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_END_OF_HEAD = (b"\r\n", b"\n")


class _LineReader(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


class BadRequest(Exception):
    """The request cannot be parsed; answer ``status`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RequestHead:
    """A parsed request line and headers.

    :param method: the HTTP method, e.g. ``GET``.
    :param target: the request target as sent.
    :param version: ``HTTP/1.1`` or ``HTTP/1.0``.
    :param headers: header names as sent; repeated headers joined with ``", "``.
    """

    __slots__ = ("_folded", "headers", "keep_alive", "method", "target", "version")

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str]) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self._folded = {name.lower(): value for name, value in headers.items()}
        connection = self._folded.get("connection", "").lower()
        if version == "HTTP/1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection

    def header(self, name: str) -> str | None:
        """The value of header ``name`` given in lower case, or None."""
        return self._folded.get(name)


def read_head(rfile: _LineReader) -> RequestHead | None:
    """Read one request line and its headers; None when the peer closed the connection.

    :raises BadRequest: when the head is malformed or too large.
    """
    line = rfile.readline(MAX_LINE + 1)
    while line in _END_OF_HEAD:  # tolerate blank lines between requests (RFC 9112 2.2)
        line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise BadRequest(414, "request line too long")
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505, f"unsupported protocol version {version}")
    headers: dict[str, str] = {}
    last = ""
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if line in _END_OF_HEAD:
            return RequestHead(method, target, version, headers)
        if not line:
            raise BadRequest(400, "connection closed inside the request head")
        if len(line) > MAX_LINE:
            raise BadRequest(431, "header line too long")
        text = line.decode("latin-1")
        if text[0] in " \t" and last:  # obsolete line folding: continues the previous value
            headers[last] += " " + text.strip()
            continue
        name, colon, value = text.partition(":")
        name = name.strip()
        if not colon or not name:
            raise BadRequest(400, "malformed header line")
        value = value.strip()
        if name in headers:
            headers[name] += ", " + value
        else:
            headers[name] = value
        last = name
    raise BadRequest(431, f"more than {MAX_HEADERS} header lines")


def response(
    status: int,
    body: bytes,
    *,
    content_type: str,
    extra: Iterable[tuple[str, str]] = (),
    close: bool = False,
    content_length: int | None = None,
    head_only: bool = False,
) -> bytes:
    """A complete response: status line, headers and (unless ``head_only``) ``body``.

    :param content_length: the length to announce, when it must differ from ``len(body)``.
    """
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body) if content_length is None else content_length}\r\n"
    )
    for name, value in extra:
        head += f"{name}: {value}\r\n"
    if close:
        head += "Connection: close\r\n"
    data = head.encode("latin-1") + b"\r\n"
    return data if head_only else data + body
