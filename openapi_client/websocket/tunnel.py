"""A proxy's ``CONNECT`` tunnel, without I/O: the request a session sends, and what the proxy's
answer means. Both session drivers open their tunnels with these (the threaded one over a
blocking socket, the asyncio one in its protocol's callbacks), so both send the same request and
refuse the same answers in the same words.

A credential among the request's headers (the proxy URL's user info, a ``Proxy-Authorization``
in ``Configuration.proxy_headers``) is registered for redaction before the request is made: a
proxy may echo it in its answer.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Mapping

from openapi_client.redaction import register_secret

__all__ = [
    "TunnelBroken",
    "TunnelClosed",
    "TunnelError",
    "TunnelRefused",
    "connect_headers",
    "connect_request",
    "printable",
    "proxy_authority",
    "tunnel_answer",
]

#: The longest answer a proxy may give to ``CONNECT``, in bytes.
MAX_TUNNEL_ANSWER = 65536

#: Where the head of the proxy's answer ends (bare line feeds tolerated, as HTTP allows).
_HEAD_END = re.compile(rb"\r?\n\r?\n")
#: A status line of HTTP/1.x: the status code, and the reason phrase if any.
_STATUS_LINE = re.compile(r"HTTP/1\.[01] ([0-9]{3})(?: (.*))?")


class TunnelError(Exception):
    """The proxy gave no tunnel. ``proxy`` is its ``host:port`` (never its credentials);
    ``__cause__`` is what the socket or ``ssl`` raised on the way to the proxy, when that was
    the trouble, else ``str()`` says what the proxy's answer did."""

    def __init__(self, proxy: str, problem: str = "") -> None:
        super().__init__(f"the proxy {proxy} {problem}".rstrip())
        self.proxy = proxy


class TunnelRefused(TunnelError):
    """The proxy answered ``CONNECT`` with a status other than 2xx: ``status``, ``reason``
    (its printable reason phrase) and ``authenticate`` (its ``Proxy-Authenticate``, if any)."""

    def __init__(self, proxy: str, status: int, reason: str, authenticate: str | None) -> None:
        super().__init__(proxy, f"refused the tunnel: HTTP {status}")
        self.status = status
        self.reason = reason
        self.authenticate = authenticate


class TunnelClosed(TunnelError):
    """The proxy closed the connection before its answer to ``CONNECT`` was complete."""


class TunnelBroken(TunnelError):
    """The proxy's answer to ``CONNECT`` broke HTTP, or bytes came through the tunnel before
    the client spoke."""


def proxy_authority(proxy: str) -> str:
    """``host:port`` of a proxy URL (brackets around an IPv6 address), for messages: never the
    credentials the URL may carry."""
    parsed = urllib.parse.urlsplit(proxy)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def printable(text: str, limit: int = 100) -> str:
    """``text`` without control characters, at most ``limit`` characters: a proxy's words, for
    a message."""
    return "".join(char for char in text if char.isprintable())[:limit]


def connect_headers(
    proxy: urllib.parse.SplitResult, given: Mapping[str, str] | None
) -> dict[str, str]:
    """The headers a ``CONNECT`` carries besides ``Host``: ``given`` (``proxy_headers``), and
    a Basic ``Proxy-Authorization`` made of the proxy URL's user info unless ``given`` has one.
    Every credential among them is registered for redaction first: a proxy may echo it."""
    headers = dict(given or {})
    for name, value in headers.items():
        if name.lower() == "proxy-authorization":
            register_secret(value.partition(" ")[2])
            return headers
    if proxy.username is not None:
        user = urllib.parse.unquote(proxy.username)
        password = urllib.parse.unquote(proxy.password or "")
        register_secret(password)
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Proxy-Authorization"] = f"Basic {token}"
    return headers


def connect_request(
    proxy: str, headers: Mapping[str, str] | None, host: str, port: int, user_agent: str
) -> bytes:
    """The ``CONNECT`` request for a tunnel to ``host:port`` through ``proxy`` (a URL), with
    ``headers`` (``proxy_headers``) and the proxy URL's credentials (see
    :func:`connect_headers`); a ``User-Agent`` among ``headers`` replaces ``user_agent``."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}", f"User-Agent: {user_agent}"]
    given = connect_headers(urllib.parse.urlsplit(proxy), headers)
    if any(header.lower() == "user-agent" for header in given):
        del lines[2]
    lines += [f"{header}: {value}" for header, value in given.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def tunnel_answer(answer: bytes | bytearray, proxy: str, eof: bool = False) -> bool:
    """Whether ``answer``, the bytes the proxy (at ``proxy``, its ``host:port``) sent so far,
    is a whole answer opening the tunnel (False: read more; ``eof``: the proxy closed the
    connection after them).

    :raises TunnelError: the answer refused the tunnel, broke HTTP, went on too long, was cut
        short, or bytes followed it before the client spoke.
    """
    end = _HEAD_END.search(answer)
    if (end is not None and end.start() > MAX_TUNNEL_ANSWER) or (
        end is None and len(answer) > MAX_TUNNEL_ANSWER
    ):
        raise TunnelBroken(
            proxy,
            f"answered CONNECT with more than {MAX_TUNNEL_ANSWER} bytes of status line and headers",
        )
    if end is None:
        if eof:
            raise TunnelClosed(proxy, "closed the connection before it answered CONNECT")
        return False
    lines = bytes(answer[: end.start()]).decode("latin-1").splitlines()
    status = _STATUS_LINE.fullmatch(lines[0]) if lines else None
    if status is None:
        raise TunnelBroken(proxy, "did not answer CONNECT with HTTP/1.x")
    code = int(status[1])
    if not 200 <= code < 300:
        raise TunnelRefused(
            proxy, code, printable(status[2] or ""), _header_value(lines[1:], "proxy-authenticate")
        )
    if end.end() < len(answer):
        raise TunnelBroken(proxy, "sent data through the tunnel before the client spoke")
    return True


def _header_value(lines: list[str], name: str) -> str | None:
    """The printable value of the first header ``name`` (lower case) among ``lines``."""
    for line in lines:
        header, separator, value = line.partition(":")
        if separator and header.strip().lower() == name:
            return printable(value.strip())
    return None
