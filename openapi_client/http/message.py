"""HTTP/1.1 messages, on either path: the request head the client writes, and the limits and checks
every answer is held to."""

from __future__ import annotations

import http.client
from collections.abc import Mapping

from openapi_client.exceptions import (
    ApiException,
    ApiProtocolError,
    ApiResponseTooLargeError,
    ApiValueError,
    exception_for_response,
)
from openapi_client.headers import HTTPHeaders
from openapi_client.net.origin import Origin

__all__ = [
    "MAX_HEAD",
    "MAX_HEADER_LINES",
    "RECV_SIZE",
    "broken",
    "check_answer",
    "check_declared",
    "check_encoding",
    "content_length",
    "printable",
    "request_head",
    "too_large",
]

#: Bytes read from a socket at a time.
RECV_SIZE = 65536
#: The heads of one answer (its informational ones included: status lines, header lines and the
#: blank lines that end them) may not exceed this many bytes in all, nor a trailer section.
MAX_HEAD = 65536
#: Nor this many header lines in all (http.client, on urllib3's path, allows 100 per head).
MAX_HEADER_LINES = 100


def request_head(origin: Origin, target: str, headers: Mapping[str, str]) -> bytes:
    """The head of ``GET target``, as it is written; ``ApiValueError`` for a header that HTTP
    cannot carry."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {origin.host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if "Accept-Encoding" not in headers:
        lines.append("Accept-Encoding: identity")
    lines.append("\r\n")
    head = "\r\n".join(lines)
    # Callers pass checked headers; this cheap count makes sure no line break or NUL slipped in
    # (a header injection) whatever the caller.
    breaks = len(lines)
    if head.count("\n") != breaks or head.count("\r") != breaks or "\0" in head:
        raise ApiValueError(
            "a request header contains a line break or NUL (set with set_default_header, "
            "user_agent or a credential?)"
        )
    try:
        return head.encode("latin-1")
    except UnicodeEncodeError:
        raise ApiValueError(
            "a request header has characters HTTP cannot carry (set with set_default_header, "
            "user_agent or a credential?)"
        ) from None


def check_answer(status: int, reason: str, headers: HTTPHeaders, limit: int) -> None:
    """Refuse, before reading the body, what the head already shows to be unacceptable."""
    check_encoding(status, headers)
    check_declared(status, headers, content_length(headers), limit)


def check_encoding(status: int, headers: HTTPHeaders) -> None:
    encoding = headers.get("Content-Encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        shown = encoding if len(encoding) <= 40 else encoding[:40] + "..."
        raise exception_for_response(
            status,
            f"the response body is in Content-Encoding {shown!r}, which the client did not "
            "ask for (it sends Accept-Encoding: identity)",
            None,
            headers,
        )


def check_declared(status: int, headers: HTTPHeaders, length: int | None, limit: int) -> None:
    if length is not None and length > limit:
        raise too_large(status, headers, f"declares {length} bytes", limit)


def too_large(status: int, headers: HTTPHeaders, what: str, limit: int) -> ApiException:
    return ApiResponseTooLargeError(
        status,
        f"the response {what}, more than max_response_size ({limit} bytes); refused",
        headers=headers,
    )


def content_length(headers: HTTPHeaders) -> int | None:
    """The one Content-Length the headers agree on; ``None`` when absent. Raises
    :class:`ApiProtocolError` when it is not a number or the copies disagree."""
    values = headers.getlist("Content-Length")
    if not values:
        return None
    found = {part.strip() for value in values for part in value.split(",")}
    if len(found) != 1:
        raise broken("the response has conflicting Content-Length values")
    (text,) = found
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise broken("the response has an invalid Content-Length")
    return int(text)


def broken(message: str, cause: BaseException | None = None) -> ApiProtocolError:
    """An :class:`ApiProtocolError` for HTTP this module's reader refused, with the matching
    ``http.client`` exception as its cause (there is no lower-level one)."""
    error = ApiProtocolError(message)
    error.__cause__ = cause if cause is not None else http.client.HTTPException(message)
    return error


def printable(reason: str) -> str:
    """A reason phrase as shown to the caller: its printable characters, trimmed."""
    return "".join(c for c in reason if c.isprintable()).strip()
