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

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

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
    open_socket,
    open_through_proxy,
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
    client (:func:`~.transport.open_through_proxy`).

    :raises OpenApiException: the handshake was answered with an HTTP error (e.g. 429, with
        ``retry_after``); :class:`ApiTransportError` subclasses when no connection was made;
        ``ApiValueError`` for a URL or setting that cannot work.
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
    }
    failure: OpenApiException | None = None
    try:
        if proxy is not None and target.secure and proxy.lower().startswith("https:"):
            return open_through_proxy(target.url, proxy, **settings)
        return open_socket(target.url, proxy=proxy, proxy_headers=proxy_headers, **settings)
    except Exception as error:
        failure = caused_by(_connect_error(error, target, options), error)
    raise failure  # outside the except: no unredacted context


class _ConnectTimeout(NamedTuple):
    connect: float


def _connect_error(error: Exception, target: Target, options: ConnectOptions) -> OpenApiException:
    """The library's exception for a failure to open a connection."""
    where = target.display
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
    if isinstance(error, (TimeoutError, socket.timeout)) and not isinstance(error, ssl.SSLError):
        return ApiTimeoutError(f"connecting to {where} timed out after {options.open_timeout:g} s")
    if isinstance(error, socket.gaierror):
        return ApiConnectionError(
            f"could not connect to {where} (the host name could not be resolved); check "
            "Configuration.host and the network"
        )
    if isinstance(error, OSError):
        return transport_error(error, where, _ConnectTimeout(options.open_timeout))
    if isinstance(error, ValueError):
        return ApiValueError(f"cannot connect to {target.url!r}: {error}")
    return ApiTransportError(f"connecting to {where} failed ({type(error).__name__})")
