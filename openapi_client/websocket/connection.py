"""One WebSocket connection: the socket, a single reader thread, and answers routed by id.

The reader is the only thread that receives. It hands each answer to the caller waiting for its
``id`` (the waiter is registered before the request is written), answers every ``test_request``
with ``public/test`` at once, and passes notifications to the session. When the connection ends,
for whatever reason, every waiter fails at once with :class:`ApiConnectionError`.

Framing, the handshake, TLS and keepalive pings are ``websockets``' (its public
``websockets.sync.client.connect``); nothing here writes a frame by hand.
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from openapi_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiTimeoutError,
    ApiTransportError,
    ApiValueError,
    exception_for_response,
)
from openapi_client.redaction import redact
from openapi_client.rest import transport_error
from openapi_client.websocket.url import Target

__all__ = [
    "ERROR_STATUS",
    "MAX_REQUEST_BYTES",
    "ConnectOptions",
    "Connection",
    "Listener",
    "answer_error",
    "open_connection",
]

logger = logging.getLogger("openapi_client.websocket")

#: The status of the :class:`ApiException` for a JSON-RPC error answered on the socket: the HTTP
#: status Deribit gives the same error over HTTP.
ERROR_STATUS = 400
#: Deribit refuses client messages above 32 kB (-32600 "request entity too large").
MAX_REQUEST_BYTES = 32 * 1024
#: Deribit's error for an exhausted credit pool; on a WebSocket it also ends the connection.
TOO_MANY_REQUESTS = 10028

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)

# Keyword arguments of websockets' connect() that not every supported release has.
_CONNECT_PARAMETERS = frozenset(inspect.signature(connect).parameters)


class ConnectOptions(NamedTuple):
    """How connections are opened.

    :ivar open_timeout: seconds for TCP, TLS and the WebSocket handshake together.
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


class Listener:
    """What a connection reports to its session (called on the reader thread; must not block)."""

    def idle_limit(self) -> float | None:
        """Seconds without any message after which the connection is declared dead."""
        return None

    def notification(self, connection: Connection, params: Mapping[str, Any]) -> None:
        """A ``subscription`` notification's ``params`` (``channel`` and ``data``)."""

    def heartbeat_answered(self, connection: Connection, seconds: float) -> None:
        """A ``test_request`` was answered ``seconds`` after it was read."""

    def connection_lost(self, connection: Connection) -> None:
        """The connection ended; :attr:`Connection.lost` says how."""


class Lost(NamedTuple):
    """How a connection ended: the close code and reason, and a sentence for errors."""

    code: int | None
    reason: str
    description: str


class _Waiter:
    """One caller waiting for one answer: a lock held until the answer or a failure arrives."""

    __slots__ = ("_lock", "error", "message", "raw")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.message: dict[str, Any] | None = None
        self.raw: str | bytes = ""
        self.error: ApiException | None = None

    def resolve(self, message: dict[str, Any], raw: str | bytes) -> None:
        self.message = message
        self.raw = raw
        self._lock.release()

    def fail(self, error: ApiException) -> None:
        self.error = error
        self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        return self._lock.acquire(timeout=-1 if timeout is None else timeout)


#: Registered for ids whose answer nobody waits for (the answers to ``test_request``).
_DISCARD = _Waiter()


def answer_error(message: dict[str, Any], raw: str | bytes) -> ApiException:
    """The exception for a JSON-RPC error answer, with the envelope as data (so ``error_code``,
    ``error_message`` and ``error_data`` are set) and the status Deribit's HTTP API gives the same
    error: :data:`ERROR_STATUS`, or 429 (``TooManyRequestsException``) for 10028."""
    body = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    error = message.get("error")
    if isinstance(error, dict) and error.get("code") == TOO_MANY_REQUESTS:
        return exception_for_response(429, "Too Many Requests", body, {}, message)
    return exception_for_response(ERROR_STATUS, "Bad Request", body, {}, message)


class Connection:
    """An open WebSocket connection and its reader thread.

    :param ws: the connection ``websockets`` opened.
    :param number: which connection of the session this is (1, 2, ...), for events.
    :param target: where it is connected.
    :param listener: told about notifications, heartbeats and the end of the connection.
    """

    def __init__(
        self, ws: ClientConnection, number: int, target: Target, listener: Listener
    ) -> None:
        self._ws = ws
        self.number = number
        self.target = target
        self._listener = listener
        self._pending: dict[int, _Waiter] = {}
        self._ids = itertools.count(1)
        self._done = threading.Event()
        self._closing: str | None = None
        self._cause: BaseException | None = None
        #: How the connection ended; None while it is open.
        self.lost: Lost | None = None
        #: The access token that authenticated the connection (``public/auth``), if any.
        self.credential: str | None = None
        #: Whether private calls are authorized on it (authenticated, or tokens sent per call).
        self.authorized = False
        #: Cancel-on-disconnect on this connection: True, False, or None when unknown.
        self.cancel_on_disconnect: bool | None = None
        #: Whether ``private/logout`` was sent (Deribit then closes it without cancelling).
        self.logged_out = False
        #: Whether Deribit answered 10028 on it: reconnect after a longer wait.
        self.throttled = False
        self._reader = threading.Thread(
            target=self._read, name=f"openapi_client-ws-reader-{number}", daemon=True
        )
        self._reader.start()

    def __repr__(self) -> str:
        status = "open" if self.lost is None else "lost"
        return f"Connection({self.number}, {self.target.display}, {status})"

    # -- requests -------------------------------------------------------------------------------

    def request(
        self, method: str, params: Mapping[str, Any], timeout: float | None
    ) -> tuple[dict[str, Any], str | bytes]:
        """Send ``method`` and wait at most ``timeout`` seconds for its answer.

        Returns the decoded answer and its text (an error answer included: see
        :func:`answer_error`). Raises :class:`ApiTimeoutError` when no answer came in time and
        :class:`ApiConnectionError` when the connection ended first.
        """
        request_id = next(self._ids)
        text = _encode(request_id, method, params)
        waiter = _Waiter()
        pending = self._pending
        pending[request_id] = waiter
        if self.lost is not None and pending.pop(request_id, None) is not None:
            raise self._lost_error(method)
        try:
            self._ws.send(text)
        except (ConnectionClosed, OSError) as error:
            if pending.pop(request_id, None) is not None:
                raise self._lost_error(method, error) from error
        if not waiter.wait(timeout):
            if pending.pop(request_id, None) is not None:
                raise ApiTimeoutError(
                    f"{method}: {self.target.display} did not answer within {timeout:g} s"
                )
            waiter.wait(None)  # the reader took it this instant: its answer is being handed over
        message = waiter.message
        if message is None:
            failure = waiter.error
            assert failure is not None
            raise failure
        return message, waiter.raw

    def send_only(self, method: str, params: Mapping[str, Any]) -> None:
        """Send a request whose answer nobody waits for (``private/logout`` has none)."""
        request_id = next(self._ids)
        self._pending[request_id] = _DISCARD
        try:
            self._ws.send(_encode(request_id, method, params))
        except (ConnectionClosed, OSError) as error:
            raise self._lost_error(method, error) from error

    # -- closing --------------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "", why: str = "closed by the client") -> None:
        """Close the connection (waiting at most the close timeout for the server's answer)."""
        if self._closing is None:
            self._closing = why
        try:
            self._ws.close(code, reason)
        except Exception as error:  # a socket already gone: nothing left to close
            logger.debug("closing %r: %r", self, error)

    def wait_lost(self, timeout: float) -> bool:
        """Wait until the reader has seen the end of the connection."""
        return self._done.wait(timeout)

    # -- the reader -----------------------------------------------------------------------------

    def _read(self) -> None:
        ws = self._ws
        pending = self._pending
        loads = json.loads
        listener = self._listener
        dead: str | None = None
        try:
            while True:
                limit = listener.idle_limit()
                try:
                    raw = ws.recv(limit)
                except TimeoutError:
                    dead = f"nothing received for {limit:g} s, so the connection was declared dead"
                    break
                try:
                    message = loads(raw)
                except ValueError:
                    logger.warning(
                        "%s sent a message that is not JSON; ignored: %.200s",
                        self.target.display,
                        redact(raw if isinstance(raw, str) else repr(raw)),
                    )
                    continue
                if type(message) is not dict:
                    logger.warning("%s sent a JSON value that is not an object; ignored", self)
                    continue
                request_id = message.get("id")
                if request_id is not None:
                    waiter = pending.pop(request_id, None)
                    if waiter is not None and waiter is not _DISCARD:
                        waiter.resolve(message, raw)
                        continue
                    if waiter is None:
                        logger.debug("an answer to id %r came after its caller gave up", request_id)
                    if "error" in message:
                        self._unanswered_error(message)
                    continue
                self._notification(message)
        except ConnectionClosed as closed:
            self._cause = closed
        except Exception as unexpected:  # the reader must end through _lose, whatever happens
            logger.exception("the WebSocket reader of %r failed", self)
            self._cause = unexpected
            dead = f"the reader failed ({type(unexpected).__name__})"
        self._lose(dead)

    def _notification(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params")
        if method == "heartbeat" and isinstance(params, dict):
            if params.get("type") == "test_request":
                self._answer_test_request()
            return
        if method == "subscription" and isinstance(params, dict):
            self._listener.notification(self, params)
            return
        if "error" in message:
            self._unanswered_error(message)
            return
        logger.debug("ignored a message from %s: %.200s", self.target.display, redact(str(message)))

    def _answer_test_request(self) -> None:
        started = time.perf_counter()
        request_id = next(self._ids)
        self._pending[request_id] = _DISCARD
        try:
            self._ws.send(_encode(request_id, "public/test", _NO_PARAMS))
        except (ConnectionClosed, OSError):
            return  # the next recv() reports the end of the connection
        self._listener.heartbeat_answered(self, time.perf_counter() - started)

    def _unanswered_error(self, message: dict[str, Any]) -> None:
        error = message.get("error")
        code = error.get("code") if isinstance(error, dict) else error
        if code == TOO_MANY_REQUESTS:
            self.throttled = True
        logger.warning(
            "%s reported an error outside any call: %.300s",
            self.target.display,
            redact(json.dumps(error)),
        )

    def _lose(self, dead: str | None) -> None:
        code, reason, description = self._how_it_ended(dead)
        self.lost = Lost(code, reason, description)
        pending = self._pending
        while pending:
            try:
                _, waiter = pending.popitem()
            except KeyError:
                break
            if waiter is not _DISCARD:
                waiter.fail(self._lost_error(None, self._cause))
        try:
            self._listener.connection_lost(self)
        finally:
            self._done.set()  # after the listener: its Disconnected comes before what waits
            if dead is not None:
                self.close(1001, "", dead)  # waits at most the close timeout: nothing else waits

    def _how_it_ended(self, dead: str | None) -> tuple[int | None, str, str]:
        """The close code, reason and a description, from the close frames exchanged."""
        if dead is not None:
            return None, "", dead
        closed = self._cause if isinstance(self._cause, ConnectionClosed) else None
        received = closed.rcvd if closed is not None else None
        sent = closed.sent if closed is not None else None
        if self._closing is not None:
            frame = received or sent
            return (None, "", self._closing) if frame is None else (
                int(frame.code),
                frame.reason,
                self._closing,
            )
        if received is not None:
            text = f"the server closed the connection (code {int(received.code)}"
            text += f", {received.reason!r})" if received.reason else ")"
            return int(received.code), received.reason, text
        if sent is not None:
            text = (
                f"the client ended the connection: the server broke the protocol (code "
                f"{int(sent.code)}, {sent.reason!r})"
            )
            return int(sent.code), sent.reason, text
        return None, "", "the connection dropped without a close frame"

    def _lost_error(
        self, method: str | None, cause: BaseException | None = None
    ) -> ApiConnectionError:
        lost = self.lost
        what = lost.description if lost is not None else "the connection closed"
        prefix = f"{method}: " if method else ""
        error = ApiConnectionError(
            f"{prefix}no answer from {self.target.display}: {what}"
        )
        error.__cause__ = cause
        return error


_NO_PARAMS: Mapping[str, Any] = {}


def _encode(request_id: int, method: str, params: Mapping[str, Any]) -> str:
    try:
        text = _ENCODER.encode(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        )
    except (TypeError, ValueError) as error:
        raise ApiValueError(
            f"the parameters of {method} cannot be sent as JSON ({error})"
        ) from None
    if len(text) > MAX_REQUEST_BYTES:
        raise ApiValueError(
            f"the request for {method} is {len(text)} bytes; Deribit accepts at most "
            f"{MAX_REQUEST_BYTES} on a WebSocket"
        )
    return text


def open_connection(
    target: Target,
    options: ConnectOptions,
    number: int,
    listener: Listener,
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    user_agent: str,
    proxy: str | None,
) -> Connection:
    """Open connection number ``number`` to ``target``.

    :raises ApiException: the handshake was answered with an HTTP error (e.g. 429, with
        ``retry_after``); :class:`ApiTransportError` subclasses when no connection was made.
    """
    kwargs: dict[str, Any] = {
        "open_timeout": options.open_timeout,
        "close_timeout": options.close_timeout,
        "max_size": options.max_message_size,
        "ping_interval": options.keepalive_ping,
        "ping_timeout": options.keepalive_ping,
        "compression": options.compression,
        "user_agent_header": user_agent,
    }
    if target.secure:
        kwargs["ssl"] = ssl_context
        if server_hostname is not None:
            kwargs["server_hostname"] = server_hostname
    if "proxy" in _CONNECT_PARAMETERS:
        kwargs["proxy"] = proxy  # None: never a proxy from the environment
    elif proxy is not None:  # pragma: no cover - websockets < 15
        raise ApiValueError("Configuration.proxy on a WebSocket needs websockets >= 15")
    if "legacy" in _CONNECT_PARAMETERS:
        kwargs["legacy"] = True  # the connection object itself: this module closes it
    try:
        ws = connect(target.url, **kwargs)
    except Exception as error:
        raise _connect_error(error, target, options) from error
    return Connection(ws, number, target, listener)


class _ConnectTimeout(NamedTuple):
    connect: float


def _connect_error(error: Exception, target: Target, options: ConnectOptions) -> Exception:
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
        return ApiTimeoutError(
            f"connecting to {where} timed out after {options.open_timeout:g} s"
        )
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


#: Used by tests and the session to tell the callable that opens connections.
Opener = Callable[[int, Listener], Connection]
