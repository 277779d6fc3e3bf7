"""The synchronous driver: calls run on the caller's thread (or an ``async_req`` thread).

A public client is a :class:`CallDriver` composed with a :class:`Transport`:
:class:`~openapi_client.ApiClient` with its HTTP transport,
:class:`~openapi_client.websocket.WebSocketApiClient` with its WebSocket session. The driver reads
the generated-style keywords, then loops on the :class:`~openapi_client.calls.CallPlan` (which
decides the deadlines, re-authentication, explanations and retries without any I/O): it sends
through the transport, sleeps when the plan says wait, and returns or raises what the plan says.
The transport only moves a request and its answer, and takes the attempt's rate-limit turn
(:meth:`Attempt.take_turn`) at the moment it chooses.

A third transport plugs in by implementing :class:`Transport` and handing it to a
:class:`CallDriver`; its asyncio twin is :class:`openapi_client.aio.calls.AsyncTransport`.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from collections.abc import Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Generic,
    Protocol,
    TypeVar,
)

from openapi_client.calls import (
    CALL_OPTIONS,
    Action,
    BaseAttempt,
    DriverBase,
    Reauthenticate,
    Refusals,
    Reply,
    Send,
    Wait,
    read_options,
)
from openapi_client.configuration import Configuration
from openapi_client.deadline import RECHECK_SECONDS, Deadline
from openapi_client.exceptions import ApiException, ApiValueError
from openapi_client.locks import HANDLERS_RUN_BETWEEN_ANY_BYTECODES, give_back_leftovers, new_lock
from openapi_client.redaction import redact

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.endpoint import Endpoint

__all__ = [
    "CALL_OPTIONS",
    "AsyncResult",
    "Attempt",
    "CallDriver",
    "Caller",
    "ClientCore",
    "Deadline",
    "Reply",
    "SyncClient",
    "Transport",
]

T = TypeVar("T")


class Attempt(BaseAttempt):
    """One attempt, as the synchronous driver gives it to its transport (see
    :class:`~openapi_client.calls.BaseAttempt`)."""

    __slots__ = ()

    def take_turn(self) -> Deadline:
        """Take this attempt's turn under the rate limit, waiting for it (with the rate limit's
        ``sleep``) if the pool is spent, and return the attempt's deadline from then on.

        The transport calls it once, at the last moment before the request leaves: over HTTP
        after the connection is made, so that the time a new TLS connection takes is not counted
        against Deribit's credit pool before the request can arrive there.

        :raises ApiCallTimeoutError: the wait would outlast ``call_timeout``.
        """
        delay = self.rate_limit_delay()
        if delay > 0.0:
            sleep: Callable[[float], object] = getattr(self.rate_limit, "sleep", time.sleep)
            try:
                sleep(delay)
            except BaseException:
                self.give_back_turn()
                raise
        return self.deadline


class Transport(Refusals, Protocol):
    """What :class:`CallDriver` is given: how a call travels, one attempt at a time.

    Besides :meth:`prepare`, :meth:`timeout`, :meth:`send`, :meth:`reauthenticate`,
    :meth:`close` and :meth:`after_fork`, it answers the plan's two questions after a failure
    (:class:`~openapi_client.calls.Refusals`: ``explain_refusal`` and ``may_retry``).
    """

    def prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> Any:
        """Check ``args`` and encode them for the wire (once per call, before any attempt)."""

    def timeout(self, value: Any) -> Any:
        """The transport's timeouts for a ``_request_timeout`` value (None: the default);
        raises :class:`ApiValueError` for a value that is not one."""

    def send(
        self, endpoint: Endpoint, request: Any, preload: bool, timeout: Any, attempt: Attempt
    ) -> Any:
        """Send ``request`` once, over by ``attempt.deadline``, taking the attempt's turn under
        the rate limit (:meth:`Attempt.take_turn`) just before it leaves and setting
        ``attempt.credential`` to the credential it carries. Returns a :class:`Reply`, or with
        ``preload`` off an undecoded answer; raises :class:`ApiException` (status 0 when no
        answer arrived)."""

    def reauthenticate(self, credential: str) -> bool:
        """After 13009 for ``credential``: drop it; whether a fresh one can be had."""

    def close(self) -> None:
        """Release the connections (the driver's threads are stopped first)."""

    def after_fork(self) -> None:
        """In a child process just forked: forget what belongs to the parent (its connections,
        threads and locks) without closing it for the parent."""


class Caller(Protocol):
    """What a synchronous API class calls through: :class:`~openapi_client.ApiClient`,
    :class:`~openapi_client.websocket.WebSocketApiClient`, or any client built on
    :class:`CallDriver`."""

    def call(
        self,
        endpoint: Endpoint,
        args: Mapping[str, Any],
        options: Mapping[str, Any],
        http_info: bool = False,
    ) -> Any:
        """Call ``endpoint`` with ``args``; see :meth:`CallDriver.call`."""


#: The name the API classes knew the synchronous clients by before they became a driver and a
#: transport; now the protocol they call through.
ClientCore = Caller

class _Outcome(Generic[T]):
    """What a call run on a pool thread came to.

    ``concurrent.futures.Future`` is not used: its waits run Python code under a
    ``threading.Condition``, so an interrupt in the caller's thread (Ctrl-C during
    ``AsyncResult.get()``) can leave its lock held, and the pool thread then hangs when it
    hands over the result; or released twice, and ``get()`` raises ``RuntimeError`` instead of
    the ``KeyboardInterrupt``. Here the state changes under a plain lock taken in ``with``
    blocks, and waiters park on another plain lock, released once the outcome is settled.
    """

    __slots__ = ("_error", "_lock", "_result", "_settled", "_state")

    def __init__(self) -> None:
        self._lock = new_lock()
        self._settled = threading.Lock()
        self._settled.acquire()  # released once the outcome is known
        self._state = _PENDING
        self._result: T | None = None
        self._error: BaseException | None = None

    def start(self) -> bool:
        """The pool thread is about to run the call; False if it was cancelled."""
        with self._lock:
            if self._state != _PENDING:
                return False
            self._state = _RUNNING
            return True

    def cancel(self) -> None:
        """Make sure the call does not run, unless it has started already."""
        with self._lock:
            if self._state != _PENDING:
                return
            self._state = _CANCELLED
        self._settled.release()

    def settle(self, result: T | None, error: BaseException | None) -> None:
        self._result, self._error = result, error
        self._state = _DONE
        self._settled.release()

    def done(self) -> bool:
        return self._state in (_DONE, _CANCELLED)

    def wait(self, timeout: float | None) -> bool:
        """Wait until the outcome is settled, at most ``timeout`` seconds; whether it is."""
        until = time.monotonic() + (float("inf") if timeout is None else timeout)
        settled = self._settled
        while not self.done():
            remaining = until - time.monotonic()
            if remaining <= 0.0:
                return False
            # Let the next waiter through at once; should an interrupt stop this thread before
            # it does, the others see the outcome settled within RECHECK_SECONDS.
            if settled.acquire(True, min(remaining, RECHECK_SECONDS)):
                settled.release()
        return True

    def error(self) -> BaseException | None:
        """The call's exception (``CancelledError`` if it was cancelled); None if it returned."""
        if self._state == _CANCELLED:
            from concurrent.futures import CancelledError

            return CancelledError()
        return self._error

    def result(self) -> T:
        error = self.error()
        if error is not None:
            raise error
        return self._result  # type: ignore[return-value]


_PENDING, _RUNNING, _CANCELLED, _DONE = range(4)


class AsyncResult(Generic[T]):
    """The result of a call made with ``async_req=True``; ``get()`` waits for it."""

    __slots__ = ("_outcome",)

    def __init__(self, outcome: _Outcome[T]) -> None:
        self._outcome = outcome

    def get(self, timeout: float | None = None) -> T:
        """The call's result (or its exception, raised), waiting at most ``timeout`` seconds;
        ``concurrent.futures.TimeoutError`` if it has not finished by then."""
        if not self._outcome.wait(timeout):
            from concurrent.futures import TimeoutError as FutureTimeoutError

            raise FutureTimeoutError()
        return self._outcome.result()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the call has finished, or ``timeout`` seconds."""
        self._outcome.wait(timeout)

    def ready(self) -> bool:
        """Whether the call has finished."""
        return self._outcome.done()

    def successful(self) -> bool:
        """Whether the call finished without an exception (raises ``ValueError`` if unfinished)."""
        if not self._outcome.done():
            raise ValueError("the call has not finished yet")
        return self._outcome.error() is None

    def __repr__(self) -> str:
        outcome = self._outcome
        if not outcome.done():
            return "AsyncResult(pending)"
        error = outcome.error()
        return f"AsyncResult(failed: {redact(repr(error))})" if error else "AsyncResult(done)"


_STOP = None


class _DaemonPool:
    """Threads for ``async_req`` calls that never hold up the interpreter's exit.

    ``concurrent.futures.ThreadPoolExecutor`` joins its threads at exit, so a script that ends
    with calls in flight waits for all of them (retries included). These threads are daemons:
    the interpreter exits at once, abandoning what is in flight; :meth:`shutdown` still lets a
    client wait for its calls when it is closed.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = max(1, size)
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = new_lock()
        self._stopped = False

    def submit(self, function: Callable[..., T], *args: Any) -> _Outcome[T]:
        outcome: _Outcome[T] = _Outcome()
        try:
            with self._lock:
                if self._stopped:
                    raise ApiValueError("the client is closed: build a new one to make calls")
                self._queue.put((outcome, function, args))
                if self._idle == 0 and len(self._threads) < self._size:
                    thread = threading.Thread(
                        target=self._work,
                        name=f"{self._name}-{len(self._threads)}",
                        daemon=True,
                    )
                    self._threads.append(thread)
                    thread.start()
                else:
                    self._idle = max(0, self._idle - 1)
        except BaseException:
            outcome.cancel()  # the caller never gets it: the call must not run unseen
            raise
        return outcome

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            outcome, function, args = item
            del item
            if outcome.start():
                try:
                    result = function(*args)
                except BaseException as error:  # handed to the caller through the outcome
                    outcome.settle(None, error)
                    del error
                else:
                    outcome.settle(result, None)
                    del result
            del outcome, function, args
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads after the calls already submitted; wait for them if ``wait``."""
        with self._lock:
            self._stopped = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            current = threading.current_thread()
            for thread in threads:
                if thread is not current:
                    thread.join()



#: Every live driver, so that a forked child can drop what it inherited (see ``after_fork``).
_DRIVERS: weakref.WeakSet[CallDriver] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for driver in list(_DRIVERS):
        driver.after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class CallDriver(DriverBase):
    """Makes calls through ``transport``: on the calling thread, or with ``async_req`` on
    threads of its own.

    :param configuration: the settings (``call_timeout``, ``attempt_timeout``, ``retries``,
        ``rate_limit``, ``request_timeout``), read at every call.
    :param transport: how a request travels (:class:`Transport`).
    :param pool_threads: threads serving ``async_req=True`` calls; they start on first use.
    :param owner: the public client's name, for messages.
    """

    def __init__(
        self,
        configuration: Configuration,
        transport: Transport,
        pool_threads: int = 1,
        owner: str = "client",
    ) -> None:
        super().__init__(configuration, owner)
        self.transport = transport
        self.pool_threads = pool_threads
        #: How the driver waits before a retry (``time.sleep``). A test on a manual clock sets
        #: the clock's ``advance`` here (and as ``RateLimit(sleep=...)``) to move time instead.
        self.sleep: Callable[[float], object] = time.sleep
        self._executor: _DaemonPool | None = None
        self._executor_lock = new_lock()
        _DRIVERS.add(self)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the ``async_req`` threads after the calls in flight, then refuse calls. The
        transport is its owner's to close."""
        self.stop_threads()
        self._closed = True

    def stop_threads(self) -> None:
        """Stop the ``async_req`` threads after the calls in flight (a later ``async_req`` call
        starts new ones)."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def after_fork(self) -> None:
        """In a child process just forked: forget the parent's threads and locks, and tell the
        transport."""
        self._executor = None
        self._executor_lock = new_lock()
        self.transport.after_fork()

    def _pool(self) -> _DaemonPool:
        with self._executor_lock:
            self._check_open()
            if self._executor is None:
                self._executor = _DaemonPool(self.pool_threads, "openapi_client")
            return self._executor

    # -- calls ----------------------------------------------------------------------------------

    def call(
        self,
        endpoint: Endpoint,
        args: Mapping[str, Any],
        options: Mapping[str, Any],
        http_info: bool = False,
    ) -> Any:
        """Call ``endpoint`` with ``args``, honouring the generated-style ``options``; see
        :meth:`SyncClient.call`."""
        try:
            if self._closed:
                self._check_open()
            transport = self.transport
            if not options:
                return self.invoke(endpoint, transport.prepare(endpoint, args), not http_info)
            data_only, preload, timeout, async_req = read_options(endpoint, options, http_info)
            request = transport.prepare(endpoint, args)
            resolved = None if timeout is None else transport.timeout(timeout)
            if async_req:
                # The call's time starts now, while it waits for a thread too.
                deadline = self.call_deadline()
                return AsyncResult(
                    self._pool().submit(
                        self.invoke, endpoint, request, data_only, preload, resolved, deadline
                    )
                )
            return self.invoke(endpoint, request, data_only, preload, resolved)
        except BaseException:
            if HANDLERS_RUN_BETWEEN_ANY_BYTECODES:  # pragma: no cover - Python 3.9
                give_back_leftovers()  # a lock an interrupt left held (see openapi_client.locks)
            raise

    def invoke(
        self,
        endpoint: Endpoint,
        request: Any,
        data_only: bool = True,
        preload: bool = True,
        timeout: Any = None,
        deadline: Deadline | None = None,
        within: Deadline | None = None,
    ) -> Any:
        """Make the call whose ``request`` is prepared already: attempt, re-authenticate,
        explain and retry as the :class:`~openapi_client.calls.CallPlan` says, all within
        ``deadline`` (default: ``call_timeout`` from now, or ``within`` if that comes first: the
        deadline of a call this one is made for, such as a token fetched for it)."""
        transport = self.transport
        now = self.clock()
        plan = self._plan(endpoint, deadline, within, transport, data_only, now)
        if timeout is None:
            timeout = transport.timeout(None)
        rate_limit = self.configuration.rate_limit
        action: Action = plan.start(now)
        while True:
            if isinstance(action, Send):
                attempt = Attempt(
                    action.deadline, plan.deadline, rate_limit, action.number, self.clock
                )
                try:
                    reply = transport.send(endpoint, request, preload, timeout, attempt)
                except ApiException as error:
                    action = plan.failed(error, attempt.credential)
                else:
                    return plan.result(reply)
            elif isinstance(action, Wait):
                self.sleep(action.seconds)
                action = plan.waited()
            elif isinstance(action, Reauthenticate):
                action = plan.reauthenticated(transport.reauthenticate(action.credential))
            else:
                raise action.error


class SyncClient:
    """What the public synchronous clients share: a :class:`CallDriver` composed with their
    transport, and the attributes users know (``configuration``, ``pool_threads``, ``sleep``,
    ``closed``, ``call``).

    :param configuration: the settings.
    :param transport: the client's :class:`Transport`.
    :param pool_threads: threads serving ``async_req=True`` calls; the pool starts on first use.
    """

    def __init__(
        self, configuration: Configuration, transport: Transport, pool_threads: int = 1
    ) -> None:
        self.configuration = configuration
        self._calls = CallDriver(configuration, transport, pool_threads, type(self).__name__)

    @property
    def pool_threads(self) -> int:
        """Threads serving ``async_req=True`` calls (read when the pool starts)."""
        return self._calls.pool_threads

    @pool_threads.setter
    def pool_threads(self, value: int) -> None:
        self._calls.pool_threads = value

    @property
    def sleep(self) -> Callable[[float], object]:
        """How the client waits before a retry (``time.sleep``). A test on a manual clock sets
        the clock's ``advance`` here (and as ``RateLimit(sleep=...)``) to move time instead."""
        return self._calls.sleep

    @sleep.setter
    def sleep(self, value: Callable[[float], object]) -> None:
        self._calls.sleep = value

    @property
    def closed(self) -> bool:
        """Whether the client has been closed; a closed client refuses calls."""
        return self._calls.closed

    def call(
        self,
        endpoint: Endpoint,
        args: Mapping[str, Any],
        options: Mapping[str, Any],
        http_info: bool = False,
    ) -> Any:
        """Call ``endpoint`` with ``args``, honouring the generated-style ``options``.

        Returns the decoded envelope (a ``dict``); with ``http_info`` (or
        ``_return_http_data_only=False``) a ``(data, status, headers)`` tuple; with
        ``_preload_content=False`` the undecoded response; with ``async_req=True`` an
        :class:`AsyncResult` of any of these.
        """
        return self._calls.call(endpoint, args, options, http_info)
