"""The threaded driver of the session core: it moves bytes, runs timers and wakes callers.

Every decision is :class:`~openapi_client.websocket.session_core.SessionCore`'s; this module
feeds it, under one lock, and does what it says:

* each connection has a thread that reads it (``connection.py``) and hands the messages here;
  answers wake their callers, ``test_request`` is answered at once, on that thread;
* a supervisor thread runs the core's timer: it opens connections (a connection is opened on it,
  never on a caller's thread), restores nothing itself (the core does, through the messages),
  and looks at least every :data:`SUPERVISOR_TICK` seconds for a connection that ended without
  the session being told;
* a caller's thread builds its call, submits it, writes its frame and sleeps until its answer,
  its deadline or the end of the connection wakes it; it never reads the socket, so an interrupt
  (Ctrl-C) costs that call only;
* with a watchdog, a thread of its own fires it on time (``watchdog.py``);
* events and subscription callbacks go to the :class:`~openapi_client.websocket.hub.EventHub`'s
  callback thread.

If the supervisor fails anyway (a fault of the library's), the session ends clearly: state
``FAILED``, a :class:`~openapi_client.websocket.events.Closed` event, calls refused. In a child
process made by ``os.fork()`` the session is the parent's: it refuses every call
(:meth:`Session.after_fork`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from openapi_client.configuration import Configuration
from openapi_client.exceptions import OpenApiException
from openapi_client.locks import new_lock
from openapi_client.redaction import redacted_exception
from openapi_client.retry import RetryPolicy
from openapi_client.websocket.connection import Connection
from openapi_client.websocket.events import (
    EVENT_TYPES,
    Closed,
    SessionRestored,
    logger,
    published,
)
from openapi_client.websocket.hub import EventHub
from openapi_client.websocket.jsonrpc import Data
from openapi_client.websocket.session_core import (
    CLIENT_NAME,
    CLOSE_GRACE,
    MAX_RECONNECT_DELAY,
    WAKE,
    Abort,
    Call,
    Close,
    CoreSettings,
    Deliver,
    Log,
    Open,
    Output,
    Send,
    SessionCore,
    State,
    SubscriptionCallback,
    decode,
    fixed_token,
)
from openapi_client.websocket.transport import LONGEST_WAIT, Transport
from openapi_client.websocket.url import Target
from openapi_client.websocket.watchdog import Watchdog

__all__ = [
    "CLIENT_NAME",
    "MAX_RECONNECT_DELAY",
    "SUPERVISOR_TICK",
    "Session",
    "State",
]

#: The longest the supervisor sleeps without looking at the connection, in seconds: a connection
#: that ended without the session being told is replaced within this.
SUPERVISOR_TICK = 1.0
#: How long :meth:`Session.close` waits for each of the session's threads, in seconds.
_JOIN_SECONDS = 2.0

_monotonic = time.monotonic
_new_lock = threading.Lock


def _waiter() -> Any:
    """A lock held until its call is complete: the completion releases it."""
    lock = _new_lock()
    lock.acquire()
    return lock


class Session:
    """A session core, driven with threads.

    :param configuration: the client's settings (credentials, rate limit).
    :param settings: what the session is (see :class:`CoreSettings`).
    :param target: where it connects.
    :param open_transport: opens a connection (blocking, bounded by the open timeout), raising
        the library's exception when it cannot.
    :param hub: where events and callbacks go.
    """

    def __init__(
        self,
        configuration: Configuration,
        settings: CoreSettings,
        target: Target,
        open_transport: Callable[[], Transport],
        hub: EventHub,
    ) -> None:
        self._configuration = configuration
        self.core = SessionCore(configuration, settings)
        self._settings = settings
        self._target = target
        self._display = target.display
        self._open_transport = open_transport
        self.hub = hub
        self._lock = new_lock()
        self._connections: dict[int, Connection] = {}
        self._wakeup = threading.Event()
        #: Notified when the session becomes READY and when it is over.
        self._status = threading.Condition(threading.Lock())
        self._supervisor: threading.Thread | None = None
        self._watchdog: Watchdog | None = None
        self._forked = False

    # -- starting -------------------------------------------------------------------------------

    def start(self, first_attempts: RetryPolicy) -> None:
        """Open the first connection and restore the session on it (retrying transient failures
        as ``first_attempts`` says); return once it is READY.

        :raises OpenApiException: the session could not be established.
        """
        with self._lock:
            self.core.start(_monotonic(), first_attempts)
            outputs = self.core.take_outputs()
        self._supervisor = threading.Thread(
            target=self._supervise, name="openapi_client-ws-session", daemon=True
        )
        self._supervisor.start()
        self._perform(outputs)
        core = self.core
        try:
            with self._status:
                self._status.wait_for(lambda: core.state is State.READY or core.finished)
        except BaseException:  # an interrupt too: nothing is left running
            with self._lock:
                core.fail("could not establish the session: interrupted", _monotonic())
                outputs = core.take_outputs()
            self._perform(outputs)
            self._stop_threads()
            raise
        if core.state is not State.READY:
            self._stop_threads()
            error = core.failure_error
            if error is None:
                from openapi_client.exceptions import ApiConnectionError

                error = ApiConnectionError(f"could not establish the session: {core.failure}")
            raise error
        if self._settings.watchdog is not None:  # it counts from the session's first readiness
            self._watchdog = Watchdog(self.core.watchdog_deadline, self._fire_watchdog)
            self._watchdog.start()

    # -- calls ----------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        params: Mapping[str, Any],
        connect_timeout: float,
        read_timeout: float | None,
        checked: bool = False,
    ) -> Call:
        """Send ``method`` and wait for its outcome (the returned call's ``message``/``raw``,
        or ``error`` to raise). Whatever ends the wait, an interrupt included, it leaves
        nothing behind.

        :raises OpenApiException: the session refuses calls, or the request cannot be sent.
        """
        call = Call(method, params, connect_timeout, read_timeout, checked)
        waiter = call.handle = _waiter()
        with self._lock:
            text = self.core.submit(call, _monotonic())
        try:
            if text is not None:
                connection = self._connections.get(call.link.number)  # type: ignore[union-attr]
                if connection is not None:
                    connection.send(text)
                # Most answers come long before the deadline: one wait, then the general case.
                left = call.answer_by - _monotonic()
                if 0 < left < LONGEST_WAIT and waiter.acquire(timeout=left):
                    return call
            self._wait(call)
        except BaseException:
            with self._lock:
                self.core.abandon(call)
            raise
        return call

    def _wait(self, call: Call) -> None:
        """Sleep until ``call`` is complete, asking the core at each of its deadlines."""
        waiter = call.handle
        deadline = call.deadline
        while True:
            left = deadline - _monotonic()
            if left > 0 and waiter.acquire(timeout=min(left, LONGEST_WAIT)):
                return
            if left > LONGEST_WAIT:
                continue
            with self._lock:
                later = self.core.expire(call, _monotonic())
            if later is None:
                return
            deadline = later

    def reauthenticate(self, credential: str) -> bool:
        """After 13009 for ``credential``: whether a fresh credential is in place for another
        try (authenticating the connection again when it used an API key).

        :raises OpenApiException: authenticating again failed.
        """
        with self._lock:
            answer = self.core.reauthenticate(credential, _monotonic())
            if isinstance(answer, Call):
                answer.handle = _waiter()
            outputs = self.core.take_outputs()
        self._perform(outputs)
        if not isinstance(answer, Call):
            return answer
        try:
            self._wait(answer)
        except BaseException:
            with self._lock:
                self.core.abandon(answer)
            raise
        failure = answer.error
        if failure is not None:
            raise failure
        return True

    @property
    def accepting_calls(self) -> bool:
        """False once the session refuses calls: nothing is worth a retry then."""
        return self.core.accepting_calls

    # -- settings the program changes ------------------------------------------------------------

    def add_subscriptions(self, channels: Iterable[str], callback: SubscriptionCallback) -> None:
        with self._lock:
            self.core.add_subscriptions(channels, callback)

    def remove_subscriptions(self, channels: Iterable[str]) -> None:
        with self._lock:
            self.core.remove_subscriptions(channels)

    def check_in(self) -> None:
        """The program is alive: the watchdog's deadline moves on (and after it fired, a new
        connection is opened)."""
        with self._lock:
            self.core.check_in(_monotonic())
            outputs = self.core.take_outputs()
        if outputs:
            self._perform(outputs)
            watchdog = self._watchdog
            if watchdog is not None:
                watchdog.rearm()

    @property
    def state(self) -> State:
        return self.core.state

    @property
    def connection(self) -> Connection | None:
        """The connection calls go on, if one is open."""
        number = self.core.connection
        return None if number is None else self._connections.get(number)

    # -- the connections' threads ---------------------------------------------------------------

    def deliver(self, number: int, messages: list[Data]) -> None:
        """Messages read from connection ``number`` (on its thread)."""
        display = self._display
        core = self.core
        if len(messages) == 1:  # the usual case, spared a list
            raw = messages[0]
            message = decode(raw, display)
            now = _monotonic()
            with self._lock:
                core.receive(number, raw, now, message)
                outputs = core.take_outputs()
        else:
            decoded = [(raw, decode(raw, display)) for raw in messages]
            now = _monotonic()
            with self._lock:
                for raw, message in decoded:
                    core.receive(number, raw, now, message)
                outputs = core.take_outputs()
        if len(outputs) == 1 and type(outputs[0]) is Call:  # an answer: the usual case
            outputs[0].handle.release()
        elif outputs:
            self._perform(outputs)

    def connection_lost(self, connection: Connection) -> None:
        """``connection`` ended (on its thread, or the supervisor's for an end nobody
        reported)."""
        ending = connection.ending
        assert ending is not None
        with self._lock:
            self.core.lost(
                connection.number,
                _monotonic(),
                received=ending.received,
                sent=ending.sent,
                failure=ending.failure,
                cause=ending.cause,
            )
            outputs = self.core.take_outputs()
        if self._connections.get(connection.number) is connection:
            del self._connections[connection.number]
        self._perform(outputs)

    # -- doing what the core says ---------------------------------------------------------------

    def _perform(self, outputs: list[Output]) -> None:
        """Do ``outputs`` in order. If one fails, the calls among the rest are still woken
        (nobody waits in vain), and the failure goes on."""
        index = 0
        try:
            for index, output in enumerate(outputs):  # noqa: B007 - read in the finally
                if type(output) is Call:
                    output.handle.release()
                elif type(output) is Send:
                    connection = self._connections.get(output.connection)
                    if connection is not None:
                        connection.send(output.text)
                elif type(output) in EVENT_TYPES:
                    self._publish(output)
                elif type(output) is Deliver:
                    self.hub.run_callback(output.callback, output.channel, output.data)
                elif type(output) is Log:
                    output.write()
                elif output is WAKE:
                    self._wakeup.set()
                elif type(output) is Close:
                    connection = self._connections.get(output.connection)
                    if connection is not None:
                        connection.close(output.code, output.reason)
                elif type(output) is Abort:
                    connection = self._connections.get(output.connection)
                    if connection is not None:
                        connection.abort(output.code, output.reason)
                elif type(output) is Open:
                    self._open(output.connection)
            index = len(outputs)
        finally:
            for output in outputs[index + 1 :]:
                if type(output) is Call and output.handle is not None:
                    output.handle.release()

    def _publish(self, event: Any) -> None:
        self.hub.emit(published(event, _monotonic()))
        kind = type(event)
        if kind is SessionRestored or kind is Closed:
            with self._status:
                self._status.notify_all()

    def _open(self, number: int) -> None:
        """Open connection ``number`` (on the supervisor's thread: it may take the open
        timeout) and tell the core how it went."""
        error: OpenApiException | None = None
        transport: Transport | None = None
        token: str | None = None
        try:
            transport = self._open_transport()
            token = fixed_token(self._configuration)  # user code (token_provider): no lock held
        except OpenApiException as failure:
            error = failure
        if error is not None or transport is None:
            if transport is not None:
                transport.abort(1000, "")
                transport.release()
            with self._lock:
                self.core.open_failed(number, error, _monotonic())  # type: ignore[arg-type]
                outputs = self.core.take_outputs()
            self._perform(outputs)
            return
        connection = Connection(transport, number, self._target, self)
        self._connections[number] = connection
        with self._lock:
            self.core.opened(number, _monotonic(), token)
            outputs = self.core.take_outputs()
        connection.start()
        self._perform(outputs)

    def _fire_watchdog(self, now: float) -> None:
        """On the watchdog's thread, once its deadline has passed: the core decides (its first
        output is then the cut); the socket is shut down before anything else is done (no close
        frame: a write could wait for the interpreter between two system calls)."""
        with self._lock:
            fired = self.core.watchdog_check(now)
            outputs = self.core.take_outputs()
        if fired and outputs and type(outputs[0]) is Abort:
            connection = self._connections.get(outputs[0].connection)
            if connection is not None:
                connection.cut()
        self._perform(outputs)

    # -- the supervisor -------------------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            self._run_timer()
        except BaseException as error:  # a fault of the library's: end clearly, never silently
            logger.error(
                "the supervisor of the WebSocket session failed", exc_info=redacted_exception(error)
            )
            with self._lock:
                self.core.fail(
                    f"the session's supervisor failed ({type(error).__name__})", _monotonic()
                )
                outputs = self.core.take_outputs()
            self._perform(outputs)

    def _run_timer(self) -> None:
        core = self.core
        wakeup = self._wakeup
        while True:
            with self._lock:
                now = _monotonic()
                core.timer(now)
                outputs = core.take_outputs()
                deadline = core.next_deadline()
            self._perform(outputs)
            if core.finished:
                return
            self._find_unannounced_ends()
            wait = SUPERVISOR_TICK
            if deadline is not None:
                wait = min(wait, deadline - _monotonic())
            if wait > 0 and wakeup.wait(wait):
                wakeup.clear()

    def _find_unannounced_ends(self) -> None:
        """Report the end of a connection whose thread could not (its report failed)."""
        for connection in list(self._connections.values()):
            if connection.ended.is_set() and not connection.reported:
                logger.warning("%r ended unannounced; replacing it", connection)
                connection.reported = True
                self.connection_lost(connection)

    # -- ending ---------------------------------------------------------------------------------

    def close(self, logout: bool) -> None:
        """End the session: optionally ``private/logout`` first, then close the connection;
        returns once it has ended (at most about twice the close timeout)."""
        if self._forked:
            return
        core = self.core
        with self._lock:
            core.close(_monotonic(), logout)
            outputs = core.take_outputs()
        self._perform(outputs)
        bound = 2 * self._settings.close_timeout + CLOSE_GRACE + 1.0
        with self._status:
            self._status.wait_for(lambda: core.finished, bound)
        self._stop_threads()

    def _stop_threads(self) -> None:
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.stop(_JOIN_SECONDS)
        self._wakeup.set()
        current = threading.current_thread()
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not current:
            supervisor.join(_JOIN_SECONDS)
        for connection in list(self._connections.values()):
            connection.join(_JOIN_SECONDS)
        self.hub.close()

    def after_fork(self) -> None:
        """In a child process just forked: the connections, their sockets and the session's
        threads are the parent's. Forget them without touching them (the parent goes on using
        them), and refuse every call from now on with an ``ApiValueError`` that says to build a
        new client. Nothing here waits for a lock a parent's thread may have held."""
        self._forked = True
        self._lock = new_lock()
        self._status = threading.Condition(threading.Lock())
        self._wakeup = threading.Event()
        self.core.after_fork()
        self._connections = {}
        self._supervisor = None
        self._watchdog = None
        self.hub = EventHub(None)
        self.hub.close()
