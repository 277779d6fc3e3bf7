"""One connection of the asyncio session: opened with ``websockets``' asyncio client.

:func:`open_connection` connects (TCP, TLS with the context the threaded session uses, a proxy's
tunnel when ``Configuration.proxy`` is set, the opening handshake, all within the open timeout)
and returns a :class:`SessionConnection`: ``websockets``' own client connection, which reads,
writes, answers pings, sends keepalive pings and runs the closing handshake. Nothing here writes
a frame.

Two things the session needs that ``websockets`` leaves to its callers, both through its
documented escape hatch (``create_connection``, a subclass of its client connection):

* a way to cut the connection from any thread, while the event loop may be blocked (the
  watchdog's): the subclass keeps the asyncio transport it is given (``connection_made``, the
  asyncio protocol's own callback) and :meth:`SessionConnection.cut` shuts its socket down;
* the opening handshake goes where it was sent and nowhere else: a redirect answer is a refused
  handshake, as on the threaded session, not followed (the session's credentials travel inside
  the connection, so a redirect would carry them to another origin).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import HeadersLike
from websockets.exceptions import InvalidProxy, InvalidProxyStatus, InvalidStatus
from websockets.http11 import USER_AGENT

from openapi_client.exceptions import OpenApiException
from openapi_client.redaction import redacted_exception
from openapi_client.websocket.connection import ConnectOptions, _connect_error
from openapi_client.websocket.events import logger
from openapi_client.websocket.jsonrpc import caused_by
from openapi_client.websocket.transport import _PROTOCOL_LOGGER
from openapi_client.websocket.url import Target

__all__ = ["SessionConnection", "open_connection"]

#: asyncio's own timeout error where it is not the builtin ``TimeoutError`` (Python < 3.11).
_ASYNCIO_TIMEOUT: tuple[type[Exception], ...] = (
    () if asyncio.TimeoutError is TimeoutError else (asyncio.TimeoutError,)
)


class _Redirected(Exception):
    """A redirect answer to the handshake, which the session does not follow."""

    def __init__(self, refused: InvalidStatus) -> None:
        super().__init__(str(refused))
        self.refused = refused


class SessionConnection(ClientConnection):
    """``websockets``' asyncio client connection, with a handle to cut it from any thread."""

    _cut_socket: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        self._asyncio_transport = transport
        self._cut_socket = transport.get_extra_info("socket")

    async def handshake(
        self,
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
    ) -> None:
        try:
            await super().handshake(additional_headers, user_agent_header)
        except InvalidStatus as refused:
            if 300 <= refused.response.status_code < 400:
                raise _Redirected(refused) from None
            raise

    def abort(self) -> None:
        """Drop the connection now, on the event loop: no closing handshake."""
        self._asyncio_transport.abort()

    def cut(self) -> None:
        """Shut the TCP connection down, both ways, from any thread: the server sees it end at
        once, even while the event loop is blocked; the loop sees the end when it runs again."""
        sock = self._cut_socket
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError as error:  # already gone
            logger.debug("cutting a connection: %r", redacted_exception(error))


async def open_connection(
    target: Target,
    options: ConnectOptions,
    *,
    ssl_context: Any,
    server_hostname: str | None,
    user_agent: str,
    proxy: str | None,
    proxy_url: str | None,
) -> SessionConnection:
    """Open a connection to ``target`` (through the tunnel of ``proxy``, given to ``websockets``
    as ``proxy_url``: with the credentials it sends), within ``options.open_timeout`` seconds;
    ``ssl_context`` verifies a ``wss://`` origin and an ``https://`` proxy.

    :raises OpenApiException: the handshake was answered with an HTTP status (e.g. 429 with
        ``retry_after``, or a redirect); :class:`~openapi_client.exceptions.ApiTransportError`
        subclasses when no connection was made; ``ApiValueError`` for a URL or setting that
        cannot work.
    """
    settings: dict[str, Any] = {
        "open_timeout": options.open_timeout,
        "close_timeout": options.close_timeout,
        "max_size": options.max_message_size,
        "ping_interval": options.keepalive_ping,
        "ping_timeout": options.keepalive_ping,
        "compression": options.compression,
        "user_agent_header": user_agent,
        "proxy": proxy_url,
        "logger": _PROTOCOL_LOGGER,
        "create_connection": SessionConnection,
    }
    if target.secure:
        settings["ssl"] = ssl_context
        if server_hostname is not None:
            settings["server_hostname"] = server_hostname
    if proxy is not None and proxy.lower().startswith("https:"):
        settings["proxy_ssl"] = ssl_context  # the proxy is verified as the origin would be
    failure: OpenApiException | None = None
    try:
        connection = await connect(target.url, **settings)
    except Exception as error:
        # Not chained: websockets' InvalidProxy quotes the proxy URL, which may hold a password,
        # and InvalidProxyStatus holds the proxy's answer, which may echo it, in its repr (which
        # redaction, reading an exception's text, does not see); the message says what they do.
        cause = None if isinstance(error, (InvalidProxy, InvalidProxyStatus)) else error
        failure = caused_by(_connect_error(_as_handled(error), target, options, proxy), cause)
    else:
        return connection  # type: ignore[return-value]  # create_connection made it
    raise failure  # outside the except: no unredacted context


def _as_handled(error: Exception) -> Exception:
    """``error`` as the threaded session's error mapping knows it: the refused handshake behind
    a redirect, and asyncio's own ``TimeoutError`` (not the builtin one before Python 3.11) as
    a timeout."""
    if isinstance(error, _Redirected):
        return error.refused
    if isinstance(error, _ASYNCIO_TIMEOUT):
        return TimeoutError(str(error))
    return error
