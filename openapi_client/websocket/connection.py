"""One connection of the threaded session: a transport, and the thread that reads it.

The connection's own thread is the only one that ever reads the socket or feeds ``websockets``'
parser: it hands each batch of messages to the session (which routes them through the session
core and wakes the callers they answer) and, when the connection ends, says how. Callers on any
thread only write whole frames (:meth:`Connection.send`) and wait to be woken: Python raises
``KeyboardInterrupt`` (and the exception of any signal handler) in the main thread at any point,
and one that lands while a thread feeds the parser would leave it broken for everyone. So an
interrupt costs the interrupted call only.

If the connection's thread fails anyway, the connection ends with "the reader failed" and the
session replaces it (:meth:`Connection.lost` keeps how it ended, so that the session's supervisor
can report an end nobody reported).

Framing, the handshake, TLS and pings are ``websockets``' (its sans-I/O ``ClientProtocol``, see
``transport.py``); nothing here writes a frame by hand.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
    ProxyError,
)

from openapi_client.exceptions import (
    ApiConnectionError,
    ApiProtocolError,
    ApiTimeoutError,
    ApiTransportError,
    ApiValueError,
    OpenApiException,
    exception_for_response,
)
from openapi_client.net.errors import transport_error
from openapi_client.redaction import redacted_exception
from openapi_client.websocket.events import logger
from openapi_client.websocket.jsonrpc import caused_by
from openapi_client.websocket.transport import (
    Closed,
    Transport,
    TunnelBroken,
    TunnelClosed,
    TunnelError,
    TunnelRefused,
    open_socket,
    open_through_proxy,
    printable,
    proxy_authority,
)
from openapi_client.websocket.url import Target

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.websocket.session import Session

__all__ = ["ConnectOptions", "Connection", "Ending", "open_transport"]

#: What a failed write raises, on either transport.
_SEND_ERRORS = (Closed, ConnectionClosed, OSError)


class ConnectOptions(NamedTuple):
    """How connections are opened.

    :ivar open_timeout: seconds for TCP, TLS and the WebSocket handshake together (and the
        longest a write may wait for room in the socket's buffer).
    :ivar close_timeout: seconds to wait for the closing handshake before dropping the socket.
    :ivar max_message_size: the largest message accepted, in bytes; a bigger one ends the
        connection (close code 1009).
    :ivar keepalive_ping: seconds between WebSocket pings, and how long a pong may take
        (None: no pings). A backstop only: heartbeats decide liveness.
    :ivar compression: ``"deflate"`` to offer permessage-deflate, None not to.
    """

    open_timeout: float
    close_timeout: float
    max_message_size: int
    keepalive_ping: float | None
    compression: str | None


class Ending(NamedTuple):
    """How a connection ended, as its thread saw it: the close frames exchanged as
    ``(code, reason)``, a failure of its own, and the exception to chain to errors."""

    received: tuple[int, str] | None
    sent: tuple[int, str] | None
    failure: str | None
    cause: BaseException | None


class Connection:
    """An open connection and its reader thread.

    :param transport: the open connection's wire.
    :param number: which connection of the session this is (1, 2, ...).
    :param target: where it is connected.
    :param session: told about messages and the end.
    """

    def __init__(self, transport: Transport, number: int, target: Target, session: Session) -> None:
        self.transport = transport
        self.number = number
        self.target = target
        self._session = session
        #: How it ended, once its thread is done.
        self.ending: Ending | None = None
        #: Set once its thread is done (the socket released).
        self.ended = threading.Event()
        #: Whether the session was told of the end (else its supervisor tells it).
        self.reported = False
        self._reader = threading.Thread(
            target=self._read, name=f"openapi_client-ws-reader-{number}", daemon=True
        )

    def start(self) -> None:
        self._reader.start()

    def join(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for its thread to end (not at all from itself)."""
        if self._reader.ident is not None and self._reader is not threading.current_thread():
            self.ended.wait(timeout)

    def __repr__(self) -> str:
        status = "open" if self.ending is None else "lost"
        return f"Connection({self.number}, {self.target.display}, {status})"

    # -- any thread -----------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Write ``text`` as one frame; a failure needs no handling here: the reader sees the
        end of the connection and reports it."""
        try:
            self.transport.send(text)
        except _SEND_ERRORS as error:
            logger.debug("a write on %r failed: %r", self, redacted_exception(error))

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the reader completes it, or cuts the connection when
        the close timeout passes."""
        try:
            self.transport.close(code, reason)
        except Exception as error:  # a socket already gone: nothing left to close
            logger.debug("closing %r: %r", self, redacted_exception(error))

    def cut(self) -> None:
        """Cut the connection now: no close frame, no lock, any thread (the watchdog's)."""
        try:
            self.transport.cut()
        except Exception as error:
            logger.debug("cutting %r: %r", self, redacted_exception(error))

    def abort(self, code: int, reason: str) -> None:
        """Cut the connection at once (from any thread, without waiting for a lock)."""
        try:
            self.transport.abort(code, reason)
        except Exception as error:
            logger.debug("cutting %r: %r", self, redacted_exception(error))

    # -- the connection's own thread ------------------------------------------------------------

    def _read(self) -> None:
        """Read until the connection ends; hand every batch of messages to the session. Whatever
        ends this thread ends the connection first."""
        transport = self.transport
        deliver = self._session.deliver
        number = self.number
        try:
            while True:
                messages = transport.read(None)
                if messages:
                    deliver(number, messages)
        except ConnectionClosed as closed:
            received = (int(closed.rcvd.code), closed.rcvd.reason) if closed.rcvd else None
            sent = (int(closed.sent.code), closed.sent.reason) if closed.sent else None
            self.ending = Ending(received, sent, None, closed)
        except BaseException as error:  # a fault of the library's: end the connection cleanly
            logger.error(
                "the reader of the WebSocket connection %r failed; the connection is closed",
                self,
                exc_info=redacted_exception(error),
            )
            self.ending = Ending(None, None, f"the reader failed ({type(error).__name__})", error)
            try:
                transport.abort(1011, "")
            except Exception:
                pass
        finally:
            try:
                transport.release()
            except Exception as error:
                logger.debug("releasing %r: %r", self, redacted_exception(error))
            try:
                if self.ending is None:  # not even the exception could be kept
                    self.ending = Ending(None, None, "the reader failed", None)
                self._session.connection_lost(self)
                self.reported = True
            except BaseException:
                logger.exception("the session could not be told that %r ended", self)
            self.ended.set()


def open_transport(
    target: Target,
    options: ConnectOptions,
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    user_agent: str,
    proxy: str | None,
    proxy_headers: Any = None,
) -> Transport:
    """Open a connection to ``target``, driven through ``websockets``' sans-I/O protocol
    (:func:`~.transport.open_socket`, through a proxy's ``CONNECT`` tunnel when one is set);
    only ``wss://`` through an ``https://`` proxy is opened by ``websockets``' own threaded
    client (:func:`~.transport.open_through_proxy`). ``ssl_context`` verifies the origin of a
    ``wss://`` target and an ``https://`` proxy.

    :raises OpenApiException: the handshake was answered with an HTTP error (e.g. 429, with
        ``retry_after``); :class:`ApiTransportError` subclasses when no connection was made (a
        proxy that refused the tunnel included); ``ApiValueError`` for a URL or setting that
        cannot work.
    """
    settings: dict[str, Any] = {
        "open_timeout": options.open_timeout,
        "close_timeout": options.close_timeout,
        "max_message_size": options.max_message_size,
        "keepalive": options.keepalive_ping,
        "compression": options.compression,
        "ssl_context": ssl_context if target.secure else None,
        "server_hostname": server_hostname if target.secure else None,
        "user_agent": user_agent,
        "proxy_headers": proxy_headers,
    }
    failure: OpenApiException | None = None
    try:
        if proxy is not None and target.secure and proxy.lower().startswith("https:"):
            return open_through_proxy(target.url, proxy, **settings)
        return open_socket(target.url, proxy=proxy, proxy_ssl_context=ssl_context, **settings)
    except Exception as error:
        # websockets' InvalidProxy quotes the proxy URL, which may hold a password: not chained.
        cause = None if isinstance(error, InvalidProxy) else error
        failure = caused_by(_connect_error(error, target, options, proxy), cause)
    raise failure  # outside the except: no unredacted context


class _ConnectTimeout(NamedTuple):
    connect: float


def _connect_error(
    error: Exception, target: Target, options: ConnectOptions, proxy: str | None = None
) -> OpenApiException:
    """The library's exception for a failure to open a connection (through ``proxy``)."""
    where = target.display
    if isinstance(error, (TunnelError, ProxyError, InvalidProxy)):  # only through a proxy
        return _proxy_error(error, target, options, proxy_authority(proxy or ""))
    if isinstance(error, InvalidStatus):
        response = error.response
        reason = f"the WebSocket handshake was refused: HTTP {response.status_code}"
        if response.reason_phrase:
            reason += f" {response.reason_phrase}"
        body = bytes(response.body or b"").decode("utf-8", "replace")
        return exception_for_response(response.status_code, reason, body, response.headers)
    if isinstance(error, InvalidURI):
        return ApiValueError(f"not a valid WebSocket URL: {target.url!r} ({error})")
    if isinstance(error, InvalidHandshake):
        return ApiProtocolError(f"the WebSocket handshake with {where} failed ({error})")
    return _socket_error(error, where, target, options)


def _socket_error(
    error: Exception, where: str, target: Target, options: ConnectOptions
) -> OpenApiException:
    """The library's exception for what the socket or ``ssl`` raised talking to ``where``."""
    if isinstance(error, (TimeoutError, socket.timeout)) and not isinstance(error, ssl.SSLError):
        return ApiTimeoutError(f"connecting to {where} timed out after {options.open_timeout:g} s")
    if isinstance(error, socket.gaierror):
        return ApiConnectionError(
            f"could not connect to {where} (the host name could not be resolved); check "
            "Configuration.host, Configuration.proxy and the network"
        )
    if isinstance(error, OSError):
        return transport_error(error, where, _ConnectTimeout(options.open_timeout))
    if isinstance(error, ValueError):
        return ApiValueError(f"cannot connect to {target.url!r}: {error}")
    return ApiTransportError(f"connecting to {where} failed ({type(error).__name__})")


def _proxy_error(
    error: Exception, target: Target, options: ConnectOptions, proxy: str
) -> OpenApiException:
    """The library's exception for a proxy (at ``proxy``, its ``host:port``) that gave no
    tunnel: the session's tunnel or ``websockets``' (``wss://`` through an ``https://``
    proxy). Every one of them but an unusable proxy URL is retried like any failed open."""
    if isinstance(error, TunnelRefused):
        return _proxy_refused(proxy, target.display, error.status, error.reason, error.authenticate)
    if isinstance(error, InvalidProxyStatus):
        response = error.response
        return _proxy_refused(
            proxy,
            target.display,
            response.status_code,
            printable(response.reason_phrase),
            response.headers.get("Proxy-Authenticate"),
        )
    if isinstance(error, TunnelClosed) or (
        isinstance(error, InvalidProxyMessage) and isinstance(error.__cause__, EOFError)
    ):
        return ApiConnectionError(
            f"the proxy {proxy} closed the connection before it answered CONNECT"
        )
    if isinstance(error, TunnelBroken):
        return ApiProtocolError(f"{error}; refused")
    if isinstance(error, ProxyError):  # InvalidProxyMessage, or a SOCKS proxy's failure
        return ApiProtocolError(f"the proxy {proxy} did not answer CONNECT with valid HTTP")
    if isinstance(error, InvalidProxy):  # its text holds the URL: only its complaint shown
        return ApiValueError(f"Configuration.proxy cannot be used: {printable(error.msg)}")
    cause = error.__cause__  # a TunnelError on the way to the proxy: what went wrong there
    if isinstance(cause, Exception):
        return _socket_error(cause, f"the proxy {proxy}", target, options)
    return ApiConnectionError(f"{error} (no tunnel to {target.display})")


def _proxy_refused(
    proxy: str, where: str, status: int, reason: str, authenticate: str | None
) -> ApiConnectionError:
    """A proxy's refusal of the tunnel, with what to do about it. Not an HTTP error of the
    origin's: ``status`` stays 0 (no answer from the origin), and the session's reconnects
    back off as after any failed open."""
    text = f"the proxy {proxy} refused the tunnel to {where}: HTTP {status} {reason}".rstrip()
    if status == 407:
        # What it asks for as "Basic, realm=...": never "Basic <word>", which redaction would
        # take for a credential.
        scheme, _, parameters = (authenticate or "").partition(" ")
        asks = ", ".join(filter(None, (printable(scheme, 20), printable(parameters, 60))))
        text += (
            f"; it asks for credentials{f' ({asks})' if asks else ''}: put them in "
            "Configuration.proxy (http://user:password@host:port) or Configuration.proxy_headers, "
            "or check those given"
        )
    elif status == 403:
        text += "; the proxy does not allow this tunnel: check its rules for this host and port"
    elif status in (502, 503, 504):
        text += f"; the proxy could not reach {where}"
    return ApiConnectionError(text)
