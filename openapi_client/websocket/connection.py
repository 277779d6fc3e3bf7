"""One WebSocket connection: requests, answers routed by id, and one reader at a time.

Reading is a role one thread holds at a time: a caller waiting for its answer when nobody else
reads, or the connection's own thread when nobody has read for :data:`TAKEOVER_SECONDS`. Whoever
reads hands each answer to the caller waiting for its ``id`` (the waiter is registered before the
request is written), answers every ``test_request`` with ``public/test`` at once, and passes
notifications to the session. When the connection ends, for whatever reason, every waiter fails
at once with :class:`ApiConnectionError`.

The main thread never reads: Python raises ``KeyboardInterrupt`` (and the exception of any signal
handler) there, at any point, and an exception that lands while a thread feeds ``websockets``'
parser leaves the parser broken for everyone. So a call made on the main thread only writes its
request (a write either leaves whole or not at all) and waits for the connection's own thread,
or a caller on another thread, to hand it its answer; an interrupt then costs that call only.

One message the client cannot route or parse (an ``id`` it never uses, an answer with both a
``result`` and an ``error``, a failure while handling it) is logged and dropped: only a broken
protocol ends the connection. If the connection's own thread fails anyway, the connection ends
with "the reader failed" and the session replaces it.

Framing, the handshake, TLS and pings are ``websockets``' (its sans-I/O ``ClientProtocol``, see
``transport.py``); nothing here writes a frame by hand.
"""

from __future__ import annotations

import itertools
import json
import os
import reprlib
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, TypeVar

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from openapi_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiTimeoutError,
    ApiTransportError,
    ApiValueError,
    exception_for_response,
)
from openapi_client.redaction import redact, redacted_exception, register_credentials_in
from openapi_client.rest import transport_error
from openapi_client.websocket.events import logger
from openapi_client.websocket.transport import (
    Closed,
    Data,
    Transport,
    open_socket,
    open_through_proxy,
)
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

#: The status of the :class:`ApiException` for a JSON-RPC error answered on the socket: the HTTP
#: status Deribit gives the same error over HTTP.
ERROR_STATUS = 400
#: Deribit refuses client messages above 32 kB (-32600 "request entity too large").
MAX_REQUEST_BYTES = 32 * 1024
#: Deribit's error for an exhausted credit pool; on a WebSocket it also ends the connection.
TOO_MANY_REQUESTS = 10028
#: Seconds the read role may stay free before the connection's own thread takes it: the longest
#: a message waits unread while callers are between calls. Bounds how long a ``test_request``
#: may wait for a reader; short against Deribit's heartbeat interval (at least 10 s).
TAKEOVER_SECONDS = 0.001

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)

#: Short previews of what a server sent, for log lines.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxstring = _PREVIEW.maxother = 100

E = TypeVar("E", bound=BaseException)


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
    """How a connection ended: the close code and reason, and a sentence for errors (both
    redacted)."""

    code: int | None
    reason: str
    description: str


class _Waiter:
    """One caller waiting for one answer. Its lock is held until it is signalled: by its answer,
    by the end of the connection, or to take over reading. :meth:`signal` and :meth:`rearm` run
    under the connection's mutex, so a signal is never given twice nor lost.

    :ivar reads: whether its caller may take the read role (False on the main thread).
    """

    __slots__ = ("_lock", "_signalled", "error", "message", "raw", "reads")

    def __init__(self, reads: bool = False) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._signalled = False
        self.reads = reads
        self.message: dict[str, Any] | None = None
        self.raw: Data = ""
        self.error: ApiException | None = None

    def done(self) -> bool:
        """Whether its answer or failure is there (a method: it changes under the caller)."""
        return self.message is not None or self.error is not None

    def signal(self) -> None:
        if not self._signalled:
            self._signalled = True
            self._lock.release()

    def sleep(self, timeout: float | None) -> bool:
        """Wait at most ``timeout`` seconds for a signal (not holding the mutex)."""
        return self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))

    def rearm(self, woken: bool) -> None:
        """Consume the signal after :meth:`sleep` returned ``woken``."""
        if self._signalled:
            if not woken:
                self._lock.acquire(blocking=False)  # signalled as the wait timed out
            self._signalled = False


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


def caused_by(error: E, cause: BaseException | None) -> E:
    """``error`` with ``cause`` chained (redacted: see
    :func:`~openapi_client.redaction.redacted_exception`). Raise it outside any ``except`` block,
    so that Python does not chain the unredacted exception being handled as its context."""
    error.__cause__ = None if cause is None else redacted_exception(cause)
    error.__suppress_context__ = True
    return error


#: The main thread's id (``threading.get_ident()``), where Python raises ``KeyboardInterrupt``;
#: a forked child's is its own.
_main_ident = threading.main_thread().ident


def _forked() -> None:
    global _main_ident
    _main_ident = threading.main_thread().ident


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forked)


def _preview(value: Any) -> str:
    """What a server sent, shortened and redacted, for a log line."""
    try:
        return redact(_PREVIEW.repr(value))
    except Exception:  # e.g. an integer too long to print
        return f"<{type(value).__name__}>"


class Connection:
    """An open WebSocket connection: requests, and the answers routed to them by id.

    Reading is a role that one thread holds at a time. A caller waiting for its answer takes it
    when nobody reads, and reads until its answer comes (routing whatever else arrives), so a
    single caller's answer reaches it without any hand-over between threads. Otherwise the caller
    waits and the reader hands it its answer. When the role is given up while others still
    wait, one of them takes it over. The connection's own thread takes the role whenever it has
    been free for :data:`TAKEOVER_SECONDS`, so ``test_request`` heartbeats are answered whatever
    the callers do, and it alone reads while nobody calls. Callers on the main thread never take
    the role: the connection's own thread reads for them (see the module's docstring).

    :param transport: the open connection's wire.
    :param number: which connection of the session this is (1, 2, ...), for events.
    :param target: where it is connected.
    :param listener: told about notifications, heartbeats and the end of the connection.
    :param close_timeout: seconds :meth:`close` waits for the closing handshake.
    """

    def __init__(
        self,
        transport: Transport,
        number: int,
        target: Target,
        listener: Listener,
        close_timeout: float = 2.0,
    ) -> None:
        self._transport = transport
        self.number = number
        self.target = target
        self._listener = listener
        self._close_timeout = close_timeout
        self._pending: dict[int, _Waiter] = {}
        self._ids = itertools.count(1)
        self._done = threading.Event()
        self._closing: str | None = None
        self._cause: BaseException | None = None
        #: Guards the read role, the waiting callers, the signals given to them and ``lost``.
        self._mutex = threading.Lock()
        #: Where the connection's own thread waits for the read role.
        self._role_free = threading.Condition(self._mutex)
        self._reading = False
        #: How many times a caller took the read role (the connection's thread takes it only
        #: when no caller did for a whole :data:`TAKEOVER_SECONDS`).
        self._takes = 0
        #: Whether the connection's own thread should read at once (closing, lost, or callers
        #: that never read are waiting).
        self._urgent = False
        #: Callers that may read, asleep waiting for their answer: one of them takes over
        #: reading when the reader leaves.
        self._followers: set[_Waiter] = set()
        self._last_message = time.monotonic()
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
        self._dead: str | None = None
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
    ) -> tuple[dict[str, Any], Data]:
        """Send ``method`` and wait at most ``timeout`` seconds for its answer.

        Returns the decoded answer and its text (an error answer included: see
        :func:`answer_error`). Raises :class:`ApiTimeoutError` when no answer came in time and
        :class:`ApiConnectionError` when the connection ended first. Whatever ends the call
        (an interrupt included), it leaves nothing behind: no waiter, no read role.
        """
        request_id = next(self._ids)
        text = _encode(request_id, method, params)
        waiter = _Waiter(threading.get_ident() != _main_ident)  # the main thread never reads
        pending = self._pending
        try:
            pending[request_id] = waiter
            answered = self._exchange(request_id, waiter, text, method, timeout)
        finally:
            # Claimed by nobody else: an answer that comes later finds no caller and is dropped.
            pending.pop(request_id, None)
        if not answered:
            raise ApiTimeoutError(
                f"{method}: {self.target.display} did not answer within {timeout:g} s"
            )
        message = waiter.message
        if message is None:
            failure = waiter.error
            assert failure is not None
            raise failure
        return message, waiter.raw

    def _exchange(
        self, request_id: int, waiter: _Waiter, text: str, method: str, timeout: float | None
    ) -> bool:
        """Write the request and wait for ``waiter``; False when ``timeout`` ran out first (and
        the waiter was not claimed meanwhile by its answer or the end of the connection)."""
        if self.lost is not None:
            raise self._lost_error(method)
        deadline = None if timeout is None else time.monotonic() + timeout
        leading = False
        if waiter.reads:
            with self._mutex:  # read for itself if nobody reads (taken before writing: no race)
                if not self._reading:
                    self._reading = leading = True
                    self._takes += 1
        failed: BaseException | None = None
        try:
            self._transport.send(text)
        except _SEND_ERRORS as error:
            failed = error
        except BaseException:
            if leading:
                self._leave()
            raise
        if failed is not None:
            if leading:
                self._leave()
                leading = False
            if self._pending.pop(request_id, None) is not None:
                raise self._lost_error(method, failed)  # outside the except: no unredacted context
        if self._await(waiter, deadline, leading) if waiter.reads else self._await_answer(
            waiter, deadline
        ):
            return True
        if self._pending.pop(request_id, None) is not None:
            return False
        # Claimed just as the time ran out: its answer or failure is a moment away.
        return self._await(waiter, time.monotonic() + _CLAIMED_SECONDS, False)

    def send_only(self, method: str, params: Mapping[str, Any]) -> None:
        """Send a request whose answer nobody waits for (``private/logout`` has none)."""
        request_id = next(self._ids)
        self._pending[request_id] = _DISCARD
        failed: BaseException | None = None
        try:
            self._transport.send(_encode(request_id, method, params))
        except _SEND_ERRORS as error:
            failed = error
        if failed is not None:
            raise self._lost_error(method, failed)

    def _await(self, waiter: _Waiter, deadline: float | None, leading: bool) -> bool:
        """Wait for ``waiter``'s answer or failure, reading the connection when nobody else
        does and the waiter may read; False when ``deadline`` passed first. ``leading``: the
        read role is this thread's already. Whichever way this ends, the role is given up and
        the waiter is no longer among the followers."""
        if not waiter.reads:
            return self._await_answer(waiter, deadline)  # (the claimed-answer wait)
        mutex = self._mutex
        followers = self._followers
        while True:
            if leading:
                try:
                    self._lead(waiter, deadline)
                finally:
                    self._leave()
                if waiter.done():
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
            with mutex:
                if waiter.done():
                    return True
                leading = self.lost is None and not self._reading
                if leading:
                    self._reading = True
                    self._takes += 1
                    continue
                followers.add(waiter)
            woken = False
            try:
                woken = waiter.sleep(None if deadline is None else deadline - time.monotonic())
            finally:
                with mutex:
                    followers.discard(waiter)
                    waiter.rearm(woken)
            if waiter.done():
                return True
            if not woken:
                return False

    def _await_answer(self, waiter: _Waiter, deadline: float | None) -> bool:
        """:meth:`_await` for a caller that never reads: it sleeps until whoever reads hands
        it its answer or failure (the only signals it gets), waking the connection's own thread
        first when nobody reads. Its pending entry is what :meth:`_leave` sees of it."""
        if waiter.done():
            return True
        if self.lost is None and not self._reading:
            with self._mutex:
                self._urgent = True
                self._role_free.notify()
        woken = waiter.sleep(None if deadline is None else deadline - time.monotonic())
        return woken or waiter.done()

    def _lead(self, waiter: _Waiter, deadline: float | None) -> None:
        """Read until ``waiter`` is answered, ``deadline`` passes or the connection ends."""
        while not waiter.done() and self.lost is None:
            if deadline is not None and time.monotonic() >= deadline:
                return
            self._pump(deadline)

    def _leave(self) -> None:
        """Give up the read role: to a waiting caller that may read, if there is one; else to
        the connection's own thread, at once when callers that never read are waiting."""
        with self._mutex:
            self._reading = False
            followers = self._followers
            while followers:
                follower = followers.pop()
                if not follower.done():
                    follower.signal()  # it wakes and takes the role
                    return
            waiting = list(self._pending.values())  # a copy: callers add to it meanwhile
            if any(not waiter.reads and waiter is not _DISCARD for waiter in waiting):
                self._urgent = True
            if self._urgent or self.lost is not None:
                self._role_free.notify()

    # -- closing --------------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "", why: str = "closed by the client") -> None:
        """Close the connection, waiting at most the close timeout for the server's answer: then
        the socket is cut."""
        if self._closing is None:
            self._closing = why
        try:
            self._transport.close(code, reason)
        except Exception as error:  # a socket already gone: nothing left to close
            logger.debug("closing %r: %r", self, error)
        with self._mutex:
            self._urgent = True  # someone must read the closing handshake: the reader, now
            self._role_free.notify()
        if threading.current_thread() is self._reader or self._done.wait(self._close_timeout):
            return
        # No answer in time (a half-open connection), or a reader waiting on the socket since
        # before the close: cutting the socket ends its wait at once.
        self._transport.abort()
        self._done.wait(_CUT_SECONDS)

    def wait_lost(self, timeout: float) -> bool:
        """Wait until the end of the connection has been seen."""
        return self._done.wait(timeout)

    # -- the connection's own thread ------------------------------------------------------------

    def _read(self) -> None:
        """Read whenever the role is free: at once when nobody reads, else after it has been
        given up (checked every :data:`TAKEOVER_SECONDS`, so that callers reading in turn do not
        wake this thread for every answer). Gives the role up after handing an answer to a
        caller that may read and is the last one waiting, so that its next call may read for
        itself. Whatever ends this thread ends the connection first."""
        mutex = self._mutex
        role_free = self._role_free
        try:
            while True:
                with mutex:
                    while self.lost is None and not self._urgent:
                        takes = self._takes
                        role_free.wait(TAKEOVER_SECONDS)
                        if not self._reading and self._takes == takes:
                            break  # free, and no caller took it for a whole period
                    if self.lost is not None:
                        break
                    while self._reading:  # urgent: as soon as the holder leaves
                        role_free.wait(TAKEOVER_SECONDS)
                    self._reading = True
                    self._urgent = False
                try:
                    while self.lost is None:
                        if self._pump(None) and not self._followers and not self._urgent:
                            break
                finally:
                    self._leave()
        except BaseException as error:  # a fault of the library's: end the connection cleanly
            self._reader_failed(error)
        finally:
            self._finish()

    def _reader_failed(self, error: BaseException) -> None:
        """The connection's thread is ending on ``error``: report it, and end the connection so
        that every caller fails at once and the session replaces it."""
        logger.error(
            "the reader of the WebSocket connection %r failed; the connection is closed",
            self,
            exc_info=redacted_exception(error),
        )
        if self.lost is None:
            self._cause = error
            self._dead = f"the reader failed ({type(error).__name__})"
            self._lose(self._dead)

    def _finish(self) -> None:
        """After the end: close a connection declared dead, free the socket."""
        transport = self._transport
        if self._dead is not None:
            try:
                transport.close(1001, "")
            except Exception as error:
                logger.debug("closing %r: %r", self, error)
            transport.abort()
        transport.release()

    # -- reading: whoever holds the role --------------------------------------------------------

    def _pump(self, deadline: float | None) -> bool:
        """Read once, waiting at most until ``deadline`` (None: no limit) and the liveness
        limit, and route what came; True when an answer went to a caller that may read.
        Ends the connection when it is over."""
        try:
            limit = self._listener.idle_limit()
            now = time.monotonic()
            wait = None if deadline is None else deadline - now
            if limit is not None:
                idle = self._last_message + limit - now
                if idle <= 0:
                    self._dead = (
                        f"nothing received for {limit:g} s, so the connection was declared dead"
                    )
                    self._lose(self._dead)
                    return False
                if wait is None or idle < wait:
                    wait = idle
            messages = self._transport.read(None if wait is None else max(wait, 0.0))
        except ConnectionClosed as closed:
            self._cause = closed
            self._lose(None)
            return False
        except Exception as unexpected:  # the connection must end through _lose, whatever happens
            logger.exception("reading the WebSocket connection %r failed", self)
            self._cause = unexpected
            self._dead = f"the reader failed ({type(unexpected).__name__})"
            self._lose(self._dead)
            return False
        if not messages:
            return False
        self._last_message = time.monotonic()
        routed = False
        for raw in messages:
            try:
                if self._route(raw):
                    routed = True
            except Exception:  # one message that cannot be handled: never the connection
                logger.exception(
                    "a message from %s could not be handled; it was dropped", self.target.display
                )
        return routed

    def _route(self, raw: Data) -> bool:
        """Hand ``raw`` to whom it is for; True when it answered a caller that may read."""
        display = self.target.display
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):
            logger.warning(
                "%s sent a message that is not JSON; ignored: %.200s",
                display,
                redact(raw if isinstance(raw, str) else repr(raw)),
            )
            return False
        if type(message) is not dict:
            logger.warning("%s sent a JSON value that is not an object; ignored", display)
            return False
        request_id = message.get("id")
        if request_id is None:
            self._notification(message)
            return False
        if type(request_id) is not int:
            logger.warning(
                "%s sent an answer whose id %s is not one the client gives; ignored",
                display,
                _preview(request_id),
            )
            return False
        result = message.get("result")
        if type(result) is dict:
            register_credentials_in(result)  # a token is redacted before anything shows it
        waiter = self._pending.pop(request_id, None)
        if waiter is None:
            logger.debug("an answer to id %s came after its caller gave up", _preview(request_id))
        if "error" in message and "result" in message:
            logger.warning(
                "%s answered id %s with both a result and an error; the answer was dropped",
                display,
                _preview(request_id),
            )
            if waiter is None or waiter is _DISCARD:
                return False
            waiter.error = ApiProtocolError(
                f"{display} answered with both a result and an error, so the outcome is "
                "unknown; check the state on Deribit before repeating the call"
            )
        elif waiter is not None and waiter is not _DISCARD:
            waiter.raw = raw
            waiter.message = message
            if "error" in message:
                self._note_throttling(message)  # before the close that follows a 10028
        else:
            if "error" in message:
                self._unanswered_error(message)
            return False
        if not waiter.reads:  # only its answer signals it, and only the one who popped it
            waiter.signal()
            return False
        with self._mutex:
            self._followers.discard(waiter)
            waiter.signal()
        return True

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
        logger.debug(
            "ignored a message from %s: %.200s", self.target.display, redact(str(message))
        )

    def _answer_test_request(self) -> None:
        started = time.perf_counter()
        request_id = next(self._ids)
        self._pending[request_id] = _DISCARD
        try:
            self._transport.send(_encode(request_id, "public/test", _NO_PARAMS))
        except _SEND_ERRORS:
            return  # the next read reports the end of the connection
        self._listener.heartbeat_answered(self, time.perf_counter() - started)

    def _note_throttling(self, message: dict[str, Any]) -> None:
        """Mark the connection throttled when ``message`` is Deribit's 10028 (which ends the
        connection): the session then waits ``throttle_delay`` at least before the next one."""
        error = message.get("error")
        code = error.get("code") if isinstance(error, dict) else error
        if code == TOO_MANY_REQUESTS:
            self.throttled = True

    def _unanswered_error(self, message: dict[str, Any]) -> None:
        self._note_throttling(message)
        error = message.get("error")
        logger.warning(
            "%s reported an error outside any call: %.300s",
            self.target.display,
            _preview(error),
        )

    def _lose(self, dead: str | None) -> None:
        """The end of the connection: every waiting caller fails, the listener hears of it, and
        the connection's thread frees the socket. Only the first call counts."""
        code, reason, description = self._how_it_ended(dead)
        with self._mutex:
            if self.lost is not None:
                return
            self.lost = Lost(code, reason, description)
        pending = self._pending
        failed: list[_Waiter] = []
        while pending:
            try:
                _, waiter = pending.popitem()
            except KeyError:
                break
            if waiter is not _DISCARD:
                waiter.error = self._lost_error(None, self._cause)
                failed.append(waiter)
        with self._mutex:
            self._followers.clear()
            for waiter in failed:
                waiter.signal()
            self._role_free.notify()
        try:
            self._listener.connection_lost(self)
        except Exception:
            logger.exception("the session could not be told that %r ended", self)
        finally:
            self._done.set()  # after the listener: its Disconnected comes before what waits

    def _how_it_ended(self, dead: str | None) -> tuple[int | None, str, str]:
        """The close code, reason and a description, from the close frames exchanged (texts
        redacted: a server may echo a credential in its close reason)."""
        if dead is not None:
            return None, "", dead
        closed = self._cause if isinstance(self._cause, ConnectionClosed) else None
        received = closed.rcvd if closed is not None else None
        sent = closed.sent if closed is not None else None
        if self._closing is not None:
            frame = received or sent
            return (None, "", self._closing) if frame is None else (
                int(frame.code),
                redact(frame.reason),
                self._closing,
            )
        if received is not None:
            reason = redact(received.reason)
            text = f"the server closed the connection (code {int(received.code)}"
            text += f", {reason!r})" if reason else ")"
            return int(received.code), reason, text
        if sent is not None:
            reason = redact(sent.reason)
            text = (
                f"the client ended the connection: the server broke the protocol (code "
                f"{int(sent.code)}, {reason!r})"
            )
            return int(sent.code), reason, text
        return None, "", "the connection dropped without a close frame"

    def _lost_error(
        self, method: str | None, cause: BaseException | None = None
    ) -> ApiConnectionError:
        lost = self.lost
        what = lost.description if lost is not None else "the connection closed"
        prefix = f"{method}: " if method else ""
        return caused_by(
            ApiConnectionError(f"{prefix}no answer from {self.target.display}: {what}"), cause
        )


_NO_PARAMS: Mapping[str, Any] = {}
#: Seconds :meth:`Connection.close` waits, after cutting the socket, for the reader to see the end.
_CUT_SECONDS = 1.0
#: Seconds a caller whose answer (or failure) was claimed as its time ran out waits for it.
_CLAIMED_SECONDS = 1.0
#: What a failed write raises, on either transport.
_SEND_ERRORS = (Closed, ConnectionClosed, OSError)


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

    Without a proxy the socket is driven through ``websockets``' sans-I/O protocol
    (:func:`~.transport.open_socket`); through one, ``websockets``' own threaded client opens it
    (:func:`~.transport.open_through_proxy`).

    :raises ApiException: the handshake was answered with an HTTP error (e.g. 429, with
        ``retry_after``); :class:`ApiTransportError` subclasses when no connection was made.
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
    transport: Transport
    failure: Exception | None = None
    try:
        if proxy is None:
            transport = open_socket(target.url, **settings)
        else:
            transport = open_through_proxy(target.url, proxy, **settings)
    except Exception as error:
        failure = caused_by(_connect_error(error, target, options), error)
    if failure is not None:
        raise failure  # outside the except: no unredacted context
    return Connection(transport, number, target, listener, options.close_timeout)


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
