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
import threading
import time
from typing import TYPE_CHECKING, Any, Generic, Mapping, NamedTuple, Optional, Tuple, TypeVar

from openapi_client.configuration import Configuration
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import ApiException, ApiTypeError
from openapi_client.retry import DEFAULT_RETRY_POLICY, RetryPolicy

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["CALL_OPTIONS", "AsyncResult", "Attempt", "ClientCore", "Reply"]

logger = logging.getLogger("openapi_client.api_client")

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
    """What one attempt used, for the loop to act on its failure.

    :ivar credential: the credential the transport sent (an ``Authorization`` value, or the
        token a WebSocket connection authenticated with); None when it sent none.
    """

    __slots__ = ("credential",)

    def __init__(self) -> None:
        self.credential: Optional[str] = None


class AsyncResult(Generic[T]):
    """The result of a call made with ``async_req=True``; ``get()`` waits for it."""

    __slots__ = ("_future",)

    def __init__(self, future: "Future[T]") -> None:
        self._future = future

    def get(self, timeout: Optional[float] = None) -> T:
        """The call's result (or its exception, raised), waiting at most ``timeout`` seconds."""
        return self._future.result(timeout)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Wait until the call has finished, or ``timeout`` seconds."""
        from concurrent.futures import TimeoutError as FutureTimeoutError

        try:
            self._future.exception(timeout)
        except FutureTimeoutError:  # not the builtin TimeoutError before Python 3.11
            pass

    def ready(self) -> bool:
        """Whether the call has finished."""
        return self._future.done()

    def successful(self) -> bool:
        """Whether the call finished without an exception (raises ``ValueError`` if unfinished)."""
        if not self._future.done():
            raise ValueError("the call has not finished yet")
        return self._future.exception() is None

    def __repr__(self) -> str:
        future = self._future
        if not future.done():
            return "AsyncResult(pending)"
        error = future.exception()
        return f"AsyncResult(failed: {error!r})" if error else "AsyncResult(done)"


class ClientCore:
    """The transport-independent half of a client.

    :param configuration: the settings.
    :param pool_threads: threads serving ``async_req=True`` calls; the pool starts on first use.
    """

    def __init__(self, configuration: Configuration, pool_threads: int = 1) -> None:
        self.configuration = configuration
        self.pool_threads = pool_threads
        self._executor: Optional["ThreadPoolExecutor"] = None
        self._executor_lock = threading.Lock()
        self._retry_cache: Tuple[Any, RetryPolicy] = (None, DEFAULT_RETRY_POLICY)

    # -- transport hooks ------------------------------------------------------------------------

    def _prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> Any:
        """Check ``args`` and encode them for the wire (before any attempt, once per call)."""
        raise NotImplementedError

    def _timeout(self, value: Any) -> Any:
        """The transport's timeout for a ``_request_timeout`` value (None: the default)."""
        raise NotImplementedError

    def _attempt(
        self, endpoint: Endpoint, request: Any, preload: bool, timeout: Any, attempt: Attempt
    ) -> Any:
        """Send ``request`` once: a :class:`Reply`, or with ``preload`` off an undecoded
        response; raises :class:`ApiException` (status 0 when no answer arrived)."""
        raise NotImplementedError

    def _reauthenticate(self, credential: str) -> bool:
        """After 13009 for ``credential``: drop it; whether a fresh one can be had."""
        return False

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
                return AsyncResult(
                    self._pool().submit(
                        self._invoke, endpoint, request, data_only, preload, resolved
                    )
                )
        return self._invoke(
            endpoint,
            self._prepare(endpoint, args),
            data_only,
            preload,
            None if timeout is None else self._timeout(timeout),
        )

    def _pool(self) -> "ThreadPoolExecutor":
        # Imported here: plain calls never need a thread pool.
        from concurrent.futures import ThreadPoolExecutor

        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.pool_threads, thread_name_prefix="openapi_client"
                )
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
        self, endpoint: Endpoint, request: Any, data_only: bool, preload: bool, timeout: Any
    ) -> Any:
        """Attempt, re-authenticate once on 13009, and retry what is transient."""
        if timeout is None:
            timeout = self._timeout(None)
        policy = self._retry_policy()
        rate_limit = self.configuration.rate_limit
        attempt = Attempt()
        attempts = 0
        reauthenticated = False
        while True:
            attempts += 1
            if rate_limit is not None:
                rate_limit.acquire()
            try:
                reply = self._attempt(endpoint, request, preload, timeout, attempt)
            except ApiException as error:
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
                if not policy.should_retry(error, attempts) or not self._may_retry(
                    endpoint, error
                ):
                    raise
                delay = policy.delay(error, attempts)
                if delay is None:
                    raise
                logger.info(
                    "retrying %s after %r (attempt %d of %d) in %.2f s",
                    endpoint.operation,
                    error,
                    attempts + 1,
                    policy.max_attempts,
                    delay,
                )
                time.sleep(delay)
                continue
            if type(reply) is not Reply:
                return reply
            if data_only:
                return reply.data
            return reply.data, reply.status, reply.headers
