"""The asyncio driver of the session core: it moves bytes, runs the timer and wakes callers, all
on one event loop.

Every decision is :class:`~openapi_client.websocket.session_core.SessionCore`'s; this module
feeds it and does what it says. The core is not thread-safe, and here it needs no lock: every
input is made on the event loop, and none awaits between feeding the core and taking its outputs.

* each connection (:class:`~openapi_client.aio.connection.SessionConnection`) hands every message
  over in its protocol's callback, the moment its bytes are parsed: the message goes to the core
  and its outputs are done at once, so a ``test_request`` is answered there, never behind the
  program's own code (unless that code blocks the event loop: see below), and an answer
  completes its caller's future in the same turn of the loop;
* a timer task runs the core's timer at :meth:`SessionCore.next_deadline`, and is woken sooner
  when the core says :data:`~openapi_client.websocket.session_core.WAKE`; connections are opened
  in tasks of their own, so a slow handshake holds up nothing else;
* a call is a future: the caller submits, writes its frame and awaits the future, which the
  connection's callback completes. Cancelling the caller (``Task.cancel()``, ``asyncio.timeout()``,
  ``wait_for``) abandons the call: the core forgets it and drops a late answer;
* events and subscription callbacks go to the :class:`~openapi_client.aio.hub.AsyncEventHub`'s
  dispatcher task, never run in the connection's callback;
* with a watchdog, a thread of the library's own (:class:`~openapi_client.websocket.watchdog.
  Watchdog`) watches the deadline: an event loop that is blocked is exactly what a watchdog is
  for, so at the deadline that thread shuts the connection's socket down itself (the server sees
  the connection end at once, and cancel-on-disconnect fires), then hands the rest to the loop.

:meth:`AsyncSession.close` leaves no task behind: it waits (bounded) for the connection's end,
then for every task the session started; a connection still open then is dropped, and its end
awaited.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Callable

from websockets.exceptions import ConnectionClosed

from openapi_client.aio.connection import SessionConnection
from openapi_client.aio.hub import AsyncEventHub
from openapi_client.configuration import Configuration
from openapi_client.exceptions import ApiConnectionError, ApiValueError, OpenApiException
from openapi_client.redaction import redacted_exception
from openapi_client.retry import RetryPolicy
from openapi_client.websocket.events import (
    EVENT_TYPES,
    Closed,
    SessionRestored,
    logger,
    published,
)
from openapi_client.websocket.session_core import (
    CLOSE_GRACE,
    FORKED,
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
from openapi_client.websocket.watchdog import Watchdog

__all__ = ["AsyncSession"]

_INFINITY = math.inf
#: The clock of every input to the core: the watchdog's thread reads the same one (on the default
#: event loop, ``loop.time()`` is this clock too; timers are set as delays, whatever the loop's).
_monotonic = time.monotonic
#: Seconds :meth:`AsyncSession.close` waits for the session's tasks once the session is over.
_JOIN_SECONDS = 2.0


def _time_up(waiter: asyncio.Future[bool]) -> None:
    """A call's deadline came before its answer: wake its caller to ask the core."""
    if not waiter.done():
        waiter.set_result(False)


class _AnswersDue:
    """Wakes the callers whose answer has not come by its deadline (:func:`_time_up`), with one
    timer of the event loop for all of them, set for the earliest.

    A timer of the loop per call (made, then cancelled when the answer comes) cost about 1.6 us
    of a call's 115 us (issue 17's measurements). Here a call costs a push on a heap; the
    entries of answered calls are dropped as they reach its top (calls are answered about in
    the order of their deadlines, so the heap holds about the calls in flight), and at the
    latest when their deadline passes.

    :param loop: the session's loop.
    :param offset: ``loop.time()`` less :data:`_monotonic`.
    """

    __slots__ = ("_due", "_loop", "_offset", "_sequence", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, offset: float) -> None:
        self._loop = loop
        self._offset = offset
        self._due: list[tuple[float, int, asyncio.Future[bool]]] = []
        self._sequence = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = _INFINITY

    def watch(self, deadline: float, waiter: asyncio.Future[bool]) -> None:
        """Wake ``waiter`` with False at ``deadline`` (:data:`_monotonic` time) unless it is
        done by then."""
        due = self._due
        while due and due[0][2].done():
            heapq.heappop(due)
        self._sequence += 1
        heapq.heappush(due, (deadline, self._sequence, waiter))
        if deadline < self._timer_at:
            self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline + self._offset, self._time_up)

    def _time_up(self) -> None:
        self._timer = None
        self._timer_at = _INFINITY
        due = self._due
        now = _monotonic()
        while due and (due[0][0] <= now or due[0][2].done()):
            _time_up(heapq.heappop(due)[2])
        if due:
            self._arm(due[0][0])

    def close(self) -> None:
        """Forget every waiter and the timer (the session is over, or forked)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = _INFINITY
        self._due = []


class AsyncSession:
    """A session core, driven on an event loop.

    :param configuration: the client's settings (credentials, rate limit).
    :param settings: what the session is (see :class:`CoreSettings`).
    :param open_connection: opens a connection (bounded by the open timeout), raising the
        library's exception when it cannot.
    :param hub: where events and callbacks go.
    """

    def __init__(
        self,
        configuration: Configuration,
        settings: CoreSettings,
        open_connection: Callable[[], Awaitable[SessionConnection]],
        hub: AsyncEventHub,
    ) -> None:
        self._configuration = configuration
        self.core = SessionCore(configuration, settings)
        self._settings = settings
        self._display = settings.display
        self._open_connection = open_connection
        self.hub = hub
        self._connections: dict[int, SessionConnection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._opening: dict[int, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        #: ``loop.time()`` less :data:`_monotonic`, for the loop's timers.
        self._clock_offset = 0.0
        #: Wakes callers whose answer is late (made by :meth:`start`, on the loop).
        self._answers_due: _AnswersDue | None = None
        self._timer: asyncio.Task[None] | None = None
        self._alarm: asyncio.Future[bool] | None = None
        self._status: list[asyncio.Future[bool]] = []
        self._watchdog: Watchdog | None = None
        self._watchdog_fired_for: float | None = None
        self._pid = os.getpid()
        _SESSIONS.add(self)

    # -- starting -------------------------------------------------------------------------------

    async def start(self, first_attempts: RetryPolicy) -> None:
        """Open the first connection and restore the session on it (retrying transient failures
        as ``first_attempts`` says); return once it is READY.

        :raises OpenApiException: the session could not be established (and nothing is left
            running).
        """
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._clock_offset = loop.time() - _monotonic()  # 0 on asyncio's own loops
        self._answers_due = _AnswersDue(loop, self._clock_offset)
        core = self.core
        core.start(_monotonic(), first_attempts)
        core.take_outputs()  # WAKE: the timer task looks at once
        self._timer = loop.create_task(self._run_timer())
        try:
            await self._until(lambda: core.state is State.READY or core.finished)
        except BaseException:  # cancelled (an interrupt, a timeout): nothing is left running
            core.fail("could not establish the session: cancelled", _monotonic())
            self._perform(core.take_outputs())
            await self._stop_tasks()
            raise
        if core.state is not State.READY:
            await self._stop_tasks()
            error = core.failure_error
            if error is None:
                error = ApiConnectionError(f"could not establish the session: {core.failure}")
            raise error
        if self._settings.watchdog is not None:  # it counts from the session's first readiness
            self._watchdog = Watchdog(self._watchdog_deadline, self._fire_watchdog)
            self._watchdog.start()

    async def _until(self, condition: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``condition()`` holds: looked at each time the session is restored or
        over (at most ``timeout`` seconds)."""
        loop = self._loop
        assert loop is not None
        deadline = None if timeout is None else _monotonic() + timeout
        while not condition():
            status: asyncio.Future[bool] = loop.create_future()
            self._status.append(status)
            timer = None
            if deadline is not None:
                timer = loop.call_later(deadline - _monotonic(), _time_up, status)
            try:
                if not await status:
                    return
            finally:
                if timer is not None:
                    timer.cancel()

    # -- calls ----------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: Mapping[str, Any],
        connect_timeout: float,
        read_timeout: float | None,
        checked: bool = False,
    ) -> Call:
        """Send ``method`` and wait for its outcome (the returned call's ``message``/``raw``,
        or ``error`` to raise). Cancelled, it leaves nothing behind: the call is abandoned and
        a late answer dropped.

        :raises OpenApiException: the session refuses calls, or the request cannot be sent.
        """
        loop = self._loop
        if loop is not asyncio.get_running_loop():
            raise self._unusable()
        call = Call(method, params, connect_timeout, read_timeout, checked)
        waiter = call.handle = loop.create_future()
        core = self.core
        text = core.submit(call, _monotonic())
        try:
            if text is not None:
                connection = self._connections.get(call.link.number)  # type: ignore[union-attr]
                if connection is not None:
                    while connection.writing_paused:  # woken with others: room for all?
                        await connection.wait_for_room()
                    connection.send(text)
            if text is not None and call.answer_by != _INFINITY:
                # Most answers come long before the deadline: one wait, then the general case.
                self._answers_due.watch(call.answer_by, waiter)  # type: ignore[union-attr]
                if await waiter:
                    return call
            await self._wait(call)
        except BaseException:
            core.abandon(call)
            raise
        return call

    async def _wait(self, call: Call) -> None:
        """Wait until ``call`` is complete, asking the core at each of its deadlines."""
        loop = self._loop
        assert loop is not None
        while True:
            waiter = call.handle
            deadline = call.deadline
            if deadline == _INFINITY:
                await waiter
                return
            timer = loop.call_at(deadline + self._clock_offset, _time_up, waiter)
            try:
                answered = await waiter
            finally:
                timer.cancel()
            if answered:
                return
            later = self.core.expire(call, _monotonic())
            if later is None:
                return
            call.handle = loop.create_future()

    async def reauthenticate(self, credential: str) -> bool:
        """After 13009 for ``credential``: whether a fresh credential is in place for another
        try (authenticating the connection again when it used an API key).

        :raises OpenApiException: authenticating again failed.
        """
        loop = self._loop
        assert loop is not None
        core = self.core
        answer = core.reauthenticate(credential, _monotonic())
        if isinstance(answer, Call):
            answer.handle = loop.create_future()
        self._perform(core.take_outputs())
        if not isinstance(answer, Call):
            return answer
        try:
            await self._wait(answer)
        except BaseException:
            core.abandon(answer)
            raise
        failure = answer.error
        if failure is not None:
            raise failure
        return True

    def _unusable(self) -> ApiValueError:
        """Why a call cannot be made here: before the session started, in a forked child, or
        from another event loop."""
        if os.getpid() != self._pid:
            return ApiValueError(FORKED)
        if self._loop is None:
            return ApiValueError(
                "the WebSocket session is not open: use `async with "
                "aio.WebSocketApiClient(...) as ws`, or `await ws.open()` first"
            )
        return ApiValueError(
            "this WebSocket session runs on the event loop that opened it; call it from a task "
            "of that loop (from another thread: asyncio.run_coroutine_threadsafe)"
        )

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._loop is not None

    @property
    def accepting_calls(self) -> bool:
        """False once the session refuses calls: nothing is worth a retry then."""
        return self.core.accepting_calls

    # -- settings the program changes ------------------------------------------------------------

    def add_subscriptions(self, channels: Iterable[str], callback: SubscriptionCallback) -> None:
        self.core.add_subscriptions(channels, callback)

    def remove_subscriptions(self, channels: Iterable[str]) -> None:
        self.core.remove_subscriptions(channels)

    def check_in(self) -> None:
        """The program is alive: the watchdog's deadline moves on (and after it fired, a new
        connection is opened). From any task; from another thread, it is handed to the loop."""
        loop = self._loop
        if loop is None or self.core.forked:
            return
        if threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._check_in)
            return
        self._check_in()

    def _check_in(self) -> None:
        core = self.core
        core.check_in(_monotonic())
        outputs = core.take_outputs()
        if outputs:
            self._perform_or_fail(outputs)
            watchdog = self._watchdog
            if watchdog is not None:
                watchdog.rearm()

    @property
    def state(self) -> State:
        return self.core.state

    # -- what the connections hand over ----------------------------------------------------------

    def _received(self, number: int, raw: Any) -> None:
        """A message on connection ``number`` (in its protocol's callback): to the core, and
        its outputs done at once. An exception ends the connection ("the reader failed")."""
        core = self.core
        core.receive(number, raw, _monotonic(), decode(raw, self._display))
        outputs = core.take_outputs()
        if len(outputs) == 1 and type(outputs[0]) is Call:  # an answer: the usual case
            waiter = outputs[0].handle
            if not waiter.done():
                waiter.set_result(True)
        elif outputs:
            self._perform(outputs)

    def _lost(
        self,
        connection: SessionConnection,
        number: int,
        closed: ConnectionClosed | None,
        failure: str | None,
        cause: BaseException | None,
    ) -> None:
        """Connection ``number`` has ended: the core is told how."""
        received = sent = None
        if closed is not None:
            received = (int(closed.rcvd.code), closed.rcvd.reason) if closed.rcvd else None
            sent = (int(closed.sent.code), closed.sent.reason) if closed.sent else None
            if cause is None:
                cause = closed
        if self._connections.get(number) is connection:
            del self._connections[number]
        core = self.core
        core.lost(number, _monotonic(), received=received, sent=sent, failure=failure, cause=cause)
        self._perform_or_fail(core.take_outputs())

    # -- doing what the core says ---------------------------------------------------------------

    def _perform(self, outputs: list[Output]) -> None:
        """Do ``outputs`` in order, none of them waiting (a frame is written at once, whatever
        the room in the transport's buffer: the core sends few, and small). If one fails, the
        calls among the rest are still woken."""
        index = 0
        try:
            for index, output in enumerate(outputs):  # noqa: B007 - read in the finally
                if type(output) is Call:
                    waiter = output.handle
                    if not waiter.done():
                        waiter.set_result(True)
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
                    alarm = self._alarm
                    if alarm is not None and not alarm.done():
                        alarm.set_result(True)
                elif type(output) is Close:
                    self._close_connection(output)
                elif type(output) is Abort:
                    self._abort_connection(output)
                elif type(output) is Open:
                    self._opening[output.connection] = self._spawn(self._open(output.connection))
            index = len(outputs)
        finally:
            for output in outputs[index + 1 :]:
                if type(output) is Call:
                    waiter = output.handle
                    if waiter is not None and not waiter.done():
                        waiter.set_result(True)

    def _perform_or_fail(self, outputs: list[Output]) -> None:
        """:meth:`_perform`, outside a connection's callback: if doing them fails (a fault of
        the library's), the session ends clearly (FAILED, ``Closed``), never half done in
        silence."""
        if not outputs:
            return
        try:
            self._perform(outputs)
        except Exception as error:
            logger.error(
                "the WebSocket session could not do what it had decided",
                exc_info=redacted_exception(error),
            )
            core = self.core
            core.fail(f"the session's driver failed ({type(error).__name__})", _monotonic())
            self._perform(core.take_outputs())

    def _publish(self, event: Any) -> None:
        self.hub.emit(published(event, _monotonic()))
        kind = type(event)
        if kind is SessionRestored or kind is Closed:
            for status in self._status:
                if not status.done():
                    status.set_result(True)
            self._status.clear()

    def _close_connection(self, output: Close) -> None:
        """The closing handshake: the connection is cut when the close timeout passes, and
        reports its end."""
        connection = self._connections.get(output.connection)
        if connection is not None:
            connection.close(output.code, output.reason)

    def _abort_connection(self, output: Abort) -> None:
        """Cut at once: the close frame goes first if the socket takes it now, then the
        connection is dropped."""
        connection = self._connections.get(output.connection)
        if connection is not None:
            connection.abort(output.code, output.reason)

    async def _open(self, number: int) -> None:
        """Open connection ``number`` and tell the core how it went."""
        core = self.core
        error: OpenApiException | None = None
        ws: SessionConnection | None = None
        token: str | None = None
        try:
            ws = await self._open_connection()
            token = fixed_token(self._configuration)  # user code (token_provider)
        except OpenApiException as failure:
            error = failure
        except asyncio.CancelledError:  # the session is being stopped: it never uses this one
            self._opening.pop(number, None)
            stopped = ApiConnectionError("the connection was not opened: the session closed")
            core.open_failed(number, stopped, _monotonic())
            self._perform_or_fail(core.take_outputs())
            raise
        except Exception as fault:  # a fault of the library's or of a token_provider's
            self._opening.pop(number, None)
            if ws is not None:
                ws.abort()
            logger.error(
                "opening a WebSocket connection failed", exc_info=redacted_exception(fault)
            )
            core.fail(f"opening a connection failed ({type(fault).__name__})", _monotonic())
            self._perform(core.take_outputs())
            return
        self._opening.pop(number, None)
        if error is not None or ws is None:
            if ws is not None:
                ws.abort()
            core.open_failed(number, error, _monotonic())  # type: ignore[arg-type]
            self._perform_or_fail(core.take_outputs())
            return
        self._connections[number] = ws
        core.opened(number, _monotonic(), token)
        self._perform_or_fail(core.take_outputs())
        ws.start(
            functools.partial(self._received, number), functools.partial(self._lost, ws, number)
        )

    def _spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        """A task of the session's, kept until it is done (and awaited by :meth:`close`)."""
        loop = self._loop
        assert loop is not None
        task: asyncio.Task[Any] = loop.create_task(awaitable)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # said, never left unread
            logger.error(
                "a task of the WebSocket session failed",
                exc_info=redacted_exception(task.exception()),  # type: ignore[arg-type]
            )

    # -- the timer ------------------------------------------------------------------------------

    async def _run_timer(self) -> None:
        try:
            await self._timer_loop()
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # a fault of the library's: end clearly, never silently
            logger.error(
                "the timer of the WebSocket session failed", exc_info=redacted_exception(error)
            )
            loop = self._loop
            assert loop is not None
            self.core.fail(f"the session's timer failed ({type(error).__name__})", _monotonic())
            self._perform(self.core.take_outputs())

    async def _timer_loop(self) -> None:
        loop = self._loop
        assert loop is not None
        core = self.core
        while True:
            core.timer(_monotonic())
            outputs = core.take_outputs()
            if outputs:
                self._perform(outputs)
            if core.finished:
                return
            alarm = self._alarm = loop.create_future()
            deadline = core.next_deadline()
            timer = None
            if deadline is not None:
                timer = loop.call_later(deadline - _monotonic(), _time_up, alarm)
            try:
                await alarm
            finally:
                if timer is not None:
                    timer.cancel()

    # -- the watchdog ---------------------------------------------------------------------------

    def _watchdog_deadline(self) -> float | None:
        """The core's watchdog deadline (watchdog thread, no lock), except one this driver fired
        for already and the loop has not yet taken."""
        deadline = self.core.watchdog_deadline()
        if deadline is not None and deadline == self._watchdog_fired_for:
            return None
        return deadline

    def _fire_watchdog(self, now: float) -> None:
        """On the watchdog's thread, once its deadline has passed: shut the connection's socket
        down at once (the event loop may be blocked), then hand the rest to the loop."""
        deadline = self.core.watchdog_deadline()
        if deadline is None or now < deadline:
            return
        self._watchdog_fired_for = deadline
        number = self.core.connection
        connection = None if number is None else self._connections.get(number)
        if connection is not None:
            connection.cut()
        loop = self._loop
        assert loop is not None
        try:
            loop.call_soon_threadsafe(self._watchdog_fired, now, deadline)
        except RuntimeError:  # the loop is closed: nothing is left to tell
            pass

    def _watchdog_fired(self, when: float, deadline: float) -> None:
        self.core.watchdog_check(_monotonic(), (when, deadline))
        self._perform_or_fail(self.core.take_outputs())

    # -- ending ---------------------------------------------------------------------------------

    async def close(self, logout: bool) -> None:
        """End the session: optionally ``private/logout`` first, then close the connection;
        returns once it has ended (at most about twice the close timeout) and every task of the
        session is done."""
        loop = self._loop
        if loop is None or os.getpid() != self._pid:
            return
        core = self.core
        core.close(_monotonic(), logout)
        self._perform(core.take_outputs())
        for opening in list(self._opening.values()):
            opening.cancel()  # a connection being opened is never used now
        bound = 2 * self._settings.close_timeout + CLOSE_GRACE + 1.0
        await self._until(lambda: core.finished, bound)
        await self._stop_tasks()

    async def _stop_tasks(self) -> None:
        """Stop the watchdog and every task of the session: the timer at once, the others
        (connections being opened, callbacks) once they are done, or cancelled after
        :data:`_JOIN_SECONDS`."""
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.stop(_JOIN_SECONDS)
            self._watchdog = None
        timer = self._timer
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
            await asyncio.wait({timer})
        if self._answers_due is not None:
            self._answers_due.close()
        connections = list(self._connections.values())
        for connection in connections:  # still open: dropped, and their ends awaited
            connection.drop("the session was stopped")
        if connections:
            await asyncio.wait(
                [connection.ended for connection in connections], timeout=_JOIN_SECONDS
            )
        current = asyncio.current_task()
        for _ in range(3):  # a task may start another
            tasks = {task for task in self._tasks if task is not current}
            if not tasks:
                break
            _, pending = await asyncio.wait(tasks, timeout=_JOIN_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self.hub.close()

    def after_fork(self) -> None:
        """In a child process just forked: the connections, the tasks and the loop are the
        parent's (asyncio does not carry a loop across a fork). Forget them without touching
        them, and refuse every call from now on with an ``ApiValueError`` that says to build a
        new client."""
        self.core.after_fork()
        self._connections = {}
        self._tasks = set()
        self._opening = {}
        self._timer = self._alarm = None
        self._answers_due = None
        self._status = []
        self._watchdog = None
        self.hub = AsyncEventHub(None)
        self.hub._closed = True

    def __repr__(self) -> str:
        return f"AsyncSession({self._display}, {self.state.value})"


#: Every live session, so that a forked child can drop what it inherited.
_SESSIONS: weakref.WeakSet[AsyncSession] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for session in list(_SESSIONS):
        session.after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
