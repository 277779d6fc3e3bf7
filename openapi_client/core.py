"""What every transport shares: call options, the ``async_req`` threads and the attempt loop.

:meth:`ClientCore.call` checks the generated-style keywords and runs :meth:`ClientCore._invoke`,
which waits for the rate limit, makes one attempt through the transport, re-authenticates once
when Deribit refuses a credential (13009), and retries what the :class:`RetryPolicy` calls
transient. A transport (:class:`~openapi_client.ApiClient` over HTTP,
:class:`~openapi_client.websocket.WebSocketApiClient` over a WebSocket) only moves a request and
its answer: it implements :meth:`~ClientCore._prepare`, :meth:`~ClientCore._attempt` and
:meth:`~ClientCore._timeout`, and the credential hooks when it has credentials to renew.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Generic,
    NamedTuple,
    TypeVar,
)

from openapi_client.configuration import Configuration
from openapi_client.credentials import explain_forbidden
from openapi_client.deadline import RECHECK_SECONDS, Deadline
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import (
    INVALID_CREDENTIALS,
    ApiCallTimeoutError,
    ApiException,
    ApiTimeoutError,
    ApiTypeError,
    ApiValueError,
)
from openapi_client.redaction import install_filter, redact
from openapi_client.retry import DEFAULT_RETRY_POLICY, RetryPolicy

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.rate_limit import RateLimit

__all__ = ["CALL_OPTIONS", "AsyncResult", "Attempt", "ClientCore", "Deadline", "Reply"]

logger = install_filter(logging.getLogger("openapi_client.api_client"))

T = TypeVar("T")

#: Keyword arguments every API method accepts, as generated clients do.
CALL_OPTIONS = frozenset(
    {"async_req", "_return_http_data_only", "_preload_content", "_request_timeout"}
)

UNAUTHORIZED = 13009


class Reply(NamedTuple):
    """A decoded answer: the envelope, the HTTP status and the response headers."""

    data: Any
    status: int
    headers: Any


class Attempt:
    """What one attempt used, for the loop to act on its failure, and the limits it runs under.

    :ivar credential: the credential the transport sent (an ``Authorization`` value, or the
        token a WebSocket connection authenticated with); None when it sent none.
    :ivar deadline: when this attempt must be over (connect, send and the whole answer): the
        sooner of ``attempt_timeout`` from its start and the call's ``call_timeout``.
    :ivar call_deadline: when the call as a whole must be over.
    """

    __slots__ = ("_rate_limit", "call_deadline", "credential", "deadline")

    def __init__(self, call_deadline: Deadline | None = None) -> None:
        self.credential: str | None = None
        self.call_deadline = call_deadline or Deadline(float("inf"), "call_timeout", 0.0)
        self.deadline = self.call_deadline
        self._rate_limit: RateLimit | None = None

    def wait_for_rate_limit(self) -> Deadline:
        """Take this attempt's turn under the rate limit, once, and return its deadline.

        A transport whose class sets ``charges_rate_limit_on_send`` calls this at the last moment
        before the request leaves (after the connection is made, so that the time a new TLS
        connection takes is not counted against Deribit's credit pool before the request can
        arrive there). The wait is bounded by ``call_timeout`` and does not count against
        ``attempt_timeout``.
        """
        rate_limit, self._rate_limit = self._rate_limit, None
        if rate_limit is not None:
            waited = _wait_for_turn(rate_limit, self.call_deadline)
            if waited > 0.0:
                self.deadline = Deadline(
                    min(self.deadline.at + waited, self.call_deadline.at),
                    self.deadline.setting,
                    self.deadline.seconds,
                )
        return self.deadline


def _wait_for_turn(rate_limit: RateLimit, call_deadline: Deadline) -> float:
    """Wait for a turn under ``rate_limit``; the seconds waited. A wait that would outlast
    ``call_deadline`` raises :class:`ApiCallTimeoutError` at once instead."""
    delay = rate_limit.reserve()
    if delay <= 0.0:
        return 0.0
    try:
        if delay >= call_deadline.remaining():
            raise ApiCallTimeoutError(
                f"the rate limit would delay this request by {delay:.2f} s, past the "
                f"{call_deadline.describe()}"
            )
        sleep: Callable[[float], object] = getattr(rate_limit, "sleep", time.sleep)
        sleep(delay)
    except BaseException:
        # Refused, or interrupted while waiting: the request will not leave, so its turn goes
        # back. Kept, every refused or interrupted wait would push all later requests back by
        # one more turn, for good.
        rate_limit.refund()
        raise
    return delay


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
        self._lock = threading.Lock()
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
        self._lock = threading.Lock()
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


#: Every live client, so that a forked child can drop what it inherited (see ``_after_fork``).
_CLIENTS: weakref.WeakSet[ClientCore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: The deadline of the call this thread is making, so that a call made on its behalf (a token
#: fetched for it) shares the caller's call_timeout.
_CURRENT = threading.local()


class ClientCore(ABC):
    """The transport-independent half of a client.

    :param configuration: the settings.
    :param pool_threads: threads serving ``async_req=True`` calls; the pool starts on first use.
    """

    #: Whether the transport calls :meth:`Attempt.wait_for_rate_limit` itself, just before the
    #: request leaves; otherwise the loop waits for the rate limit before each attempt.
    charges_rate_limit_on_send = False

    def __init__(self, configuration: Configuration, pool_threads: int = 1) -> None:
        self.configuration = configuration
        self.pool_threads = pool_threads
        self._executor: _DaemonPool | None = None
        self._executor_lock = threading.Lock()
        self._retry_cache: tuple[Any, RetryPolicy] = (None, DEFAULT_RETRY_POLICY)
        self._closed = False
        #: How the client waits before a retry (``time.sleep``). A test on a manual clock sets
        #: the clock's ``advance`` here (and as ``RateLimit(sleep=...)``) to move time instead.
        self.sleep: Callable[[float], object] = time.sleep
        _CLIENTS.add(self)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the client has been closed; a closed client refuses calls."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ApiValueError(
                f"this {type(self).__name__} is closed: build a new one to make more calls"
            )

    def _after_fork(self) -> None:
        """In a child process just forked: forget the parent's threads and locks.

        A transport extends this to drop its connections without closing them for the parent.
        """
        self._executor = None
        self._executor_lock = threading.Lock()

    # -- transport hooks ------------------------------------------------------------------------

    @abstractmethod
    def _prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> Any:
        """Check ``args`` and encode them for the wire (before any attempt, once per call)."""

    @abstractmethod
    def _timeout(self, value: Any) -> Any:
        """The transport's timeout for a ``_request_timeout`` value (None: the default)."""

    @abstractmethod
    def _attempt(
        self, endpoint: Endpoint, request: Any, preload: bool, timeout: Any, attempt: Attempt
    ) -> Any:
        """Send ``request`` once: a :class:`Reply`, or with ``preload`` off an undecoded
        response; raises :class:`ApiException` (status 0 when no answer arrived)."""

    @abstractmethod
    def _reauthenticate(self, credential: str) -> bool:
        """After 13009 for ``credential``: drop it; whether a fresh one can be had."""

    def _explain_refusal(self, error: ApiException, credential: str) -> ApiException:
        """``error`` restated when the refusal has a known cause (e.g. a skewed clock)."""
        return error

    def _may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        """Whether the transport allows another attempt after ``error``, which the retry policy
        calls transient (False e.g. for a call the caller did not declare idempotent)."""
        return True

    # -- calls ----------------------------------------------------------------------------------

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
        if self._closed:
            self._check_open()
        data_only = not http_info
        preload = True
        timeout = None
        if options:
            for name in options:
                if name not in CALL_OPTIONS:
                    raise ApiTypeError(
                        f"Got an unexpected keyword argument {name!r} to method "
                        f"{endpoint.operation}"
                    )
            data_only = bool(options.get("_return_http_data_only", data_only))
            preload = bool(options.get("_preload_content", True))
            timeout = options.get("_request_timeout")
            if options.get("async_req"):
                request = self._prepare(endpoint, args)
                resolved = self._timeout(timeout)
                # The call's time starts now, while it waits for a thread too.
                deadline = Deadline.after(self.configuration.call_timeout, "call_timeout")
                return AsyncResult(
                    self._pool().submit(
                        self._invoke, endpoint, request, data_only, preload, resolved, deadline
                    )
                )
        return self._invoke(
            endpoint,
            self._prepare(endpoint, args),
            data_only,
            preload,
            None if timeout is None else self._timeout(timeout),
        )

    def _pool(self) -> _DaemonPool:
        with self._executor_lock:
            self._check_open()
            if self._executor is None:
                self._executor = _DaemonPool(self.pool_threads, "openapi_client")
            return self._executor

    def _close_pool(self) -> None:
        """Stop the ``async_req`` threads after the calls in flight."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _retry_policy(self) -> RetryPolicy:
        setting = self.configuration.retries
        cached_setting, policy = self._retry_cache
        if setting is cached_setting:
            return policy
        policy = RetryPolicy.from_setting(setting)
        self._retry_cache = (setting, policy)
        return policy

    def _invoke(
        self,
        endpoint: Endpoint,
        request: Any,
        data_only: bool,
        preload: bool,
        timeout: Any,
        deadline: Deadline | None = None,
    ) -> Any:
        """Attempt, re-authenticate once on 13009, and retry what is transient, all within
        ``deadline`` (default: ``call_timeout`` from now, or the deadline of the call this
        thread is already making, if sooner)."""
        if self._closed:
            self._check_open()
        configuration = self.configuration
        outer: Deadline | None = getattr(_CURRENT, "deadline", None)
        if deadline is None:
            deadline = Deadline.after(configuration.call_timeout, "call_timeout", outer)
        _CURRENT.deadline = deadline
        try:
            return self._attempts(endpoint, request, data_only, preload, timeout, deadline)
        finally:
            _CURRENT.deadline = outer

    def _attempts(
        self,
        endpoint: Endpoint,
        request: Any,
        data_only: bool,
        preload: bool,
        timeout: Any,
        deadline: Deadline,
    ) -> Any:
        if timeout is None:
            timeout = self._timeout(None)
        configuration = self.configuration
        policy = self._retry_policy()
        rate_limit = configuration.rate_limit
        attempt = Attempt(deadline)
        attempts = 0
        reauthenticated = False
        last_error: ApiException | None = None
        while True:
            if deadline.remaining() <= 0.0:
                raise _out_of_time(endpoint, deadline, attempts, last_error) from last_error
            attempts += 1
            attempt.deadline = Deadline.after(
                configuration.attempt_timeout, "attempt_timeout", deadline
            )
            if rate_limit is not None:
                attempt._rate_limit = rate_limit
                if not self.charges_rate_limit_on_send:
                    attempt.wait_for_rate_limit()
            try:
                reply = self._attempt(endpoint, request, preload, timeout, attempt)
            except ApiCallTimeoutError:
                raise
            except ApiException as error:
                last_error = error
                if isinstance(error, ApiTimeoutError) and deadline.remaining() <= 0.0:
                    raise _out_of_time(endpoint, deadline, attempts, error) from error
                credential = attempt.credential
                if (
                    endpoint.private
                    and not reauthenticated
                    and credential is not None
                    and (error.error_code == UNAUTHORIZED or error.status == 401)
                ):
                    reauthenticated = True
                    if self._reauthenticate(credential):
                        attempts -= 1
                        continue
                    explained = self._explain_refusal(error, credential)
                    if explained is not error:
                        raise explained from error
                if endpoint.private:
                    # 13004 for a signed request: the clock, if it was off; 13021: which
                    # permission the token lacks.
                    if error.error_code == INVALID_CREDENTIALS and credential is not None:
                        explained = self._explain_refusal(error, credential)
                    else:
                        explained = explain_forbidden(error, endpoint, credential)
                    if explained is not error:
                        raise explained from error
                if not policy.should_retry(error, attempts) or not self._may_retry(
                    endpoint, error
                ):
                    raise
                delay = policy.delay(error, attempts)
                if delay is None:
                    raise
                if delay >= deadline.remaining():
                    raise _out_of_time(endpoint, deadline, attempts, error) from error
                logger.info(
                    "retrying %s after %r (attempt %d of %d) in %.2f s",
                    endpoint.operation,
                    error,
                    attempts + 1,
                    policy.max_attempts,
                    delay,
                )
                self.sleep(delay)
                continue
            if type(reply) is not Reply:
                return reply
            if data_only:
                return reply.data
            return reply.data, reply.status, reply.headers


def _out_of_time(
    endpoint: Endpoint, deadline: Deadline, attempts: int, last: ApiException | None
) -> ApiCallTimeoutError:
    text = f"{endpoint.operation}: the {deadline.describe()} ran out"
    if attempts:
        text += f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    if last is not None:
        text += f"; the last failed with: {str(last).splitlines()[0]}"
    return ApiCallTimeoutError(text)
