"""The client core: turns an endpoint and arguments into a request, and a response into data.

``ApiClient`` validates and encodes arguments, applies credentials, sends through
:mod:`openapi_client.rest`, decodes the JSON-RPC envelope into a plain ``dict``, turns failures into
exceptions, and retries what is transient. One instance is safe to share across threads.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Generic,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

from openapi_client.configuration import Configuration
from openapi_client.credentials import Credentials
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import (
    ApiException,
    ApiTypeError,
    ApiValueError,
    exception_for_response,
)
from openapi_client.redaction import redact
from openapi_client.rest import Origin, RESTClientObject
from openapi_client.retry import DEFAULT_RETRY_POLICY, RetryPolicy

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future, ThreadPoolExecutor
    from types import TracebackType

__all__ = ["ApiClient", "AsyncResult"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Keyword arguments every API method accepts, as generated clients do.
CALL_OPTIONS = frozenset(
    {"async_req", "_return_http_data_only", "_preload_content", "_request_timeout"}
)

_UNAUTHORIZED = 13009


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


class ApiClient:
    """Makes requests for the API classes.

    :param configuration: the settings; ``Configuration.get_default_copy()`` when omitted.
    :param header_name: a header to add to every request (with ``header_value``).
    :param header_value: that header's value.
    :param cookie: a ``Cookie`` header for every request.
    :param pool_threads: threads serving ``async_req=True`` calls; the pool starts on first use.

    Use it as a context manager, or call :meth:`close`, to release connections promptly; a script
    that does neither still exits at once.
    """

    def __init__(
        self,
        configuration: Optional[Configuration] = None,
        header_name: Optional[str] = None,
        header_value: Optional[str] = None,
        cookie: Optional[str] = None,
        pool_threads: int = 1,
    ) -> None:
        self.configuration = (
            configuration if configuration is not None else Configuration.get_default_copy()
        )
        self.default_headers: Dict[str, str] = {}
        if header_name is not None and header_value is not None:
            self.default_headers[header_name] = header_value
        self.cookie = cookie
        self.pool_threads = pool_threads
        self.rest_client = RESTClientObject(self.configuration)
        self.credentials = Credentials(self.configuration, self._fetch_token)
        self._executor: Optional["ThreadPoolExecutor"] = None
        self._executor_lock = threading.Lock()
        self._origin_cache: Tuple[str, Origin] = ("", None)  # type: ignore[assignment]
        self._retry_cache: Tuple[Any, RetryPolicy] = (None, DEFAULT_RETRY_POLICY)
        self._header_cache: Tuple[Any, Dict[str, str]] = (None, {})
        self._auth_header_cache: Tuple[Optional[str], Dict[str, str], Dict[str, str]] = (
            None,
            {},
            {},
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(
        self,
        exc_type: Optional[type],
        exc_value: Optional[BaseException],
        traceback: Optional["TracebackType"],
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the ``async_req`` threads (after calls in flight) and close every connection."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self.rest_client.close()

    @property
    def user_agent(self) -> str:
        """The ``User-Agent`` header sent with every request."""
        return self.configuration.user_agent

    @user_agent.setter
    def user_agent(self, value: str) -> None:
        self.configuration.user_agent = value

    def set_default_header(self, header_name: str, header_value: str) -> None:
        """Send ``header_name: header_value`` with every request."""
        self.default_headers[header_name] = header_value

    def __repr__(self) -> str:
        return f"ApiClient(host={self.configuration.host!r})"

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
        ``_preload_content=False`` the undecoded urllib3 response; with ``async_req=True`` an
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
                query = self._query(endpoint, args)
                rest_timeout = self.rest_client.timeout(timeout)
                return AsyncResult(
                    self._pool().submit(
                        self._invoke, endpoint, query, data_only, preload, rest_timeout
                    )
                )
        return self._invoke(
            endpoint,
            self._query(endpoint, args),
            data_only,
            preload,
            None if timeout is None else self.rest_client.timeout(timeout),
        )

    def _query(self, endpoint: Endpoint, args: Mapping[str, Any]) -> str:
        return endpoint.query(args, self.configuration.client_side_validation)

    def _pool(self) -> "ThreadPoolExecutor":
        # Imported here: plain calls never need a thread pool.
        from concurrent.futures import ThreadPoolExecutor

        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.pool_threads, thread_name_prefix="openapi_client"
                )
            return self._executor

    def _origin(self) -> Origin:
        host = self.configuration.host
        cached_host, origin = self._origin_cache
        if host is cached_host or host == cached_host:
            return origin
        origin = Origin(host)
        self._origin_cache = (host, origin)
        return origin

    def _retry_policy(self) -> RetryPolicy:
        setting = self.configuration.retries
        cached_setting, policy = self._retry_cache
        if setting is cached_setting:
            return policy
        policy = RetryPolicy.from_setting(setting)
        self._retry_cache = (setting, policy)
        return policy

    def _base_headers(self) -> Dict[str, str]:
        configuration = self.configuration
        key = (configuration.user_agent, self.cookie, tuple(self.default_headers.items()))
        cached_key, headers = self._header_cache
        if key == cached_key:
            return headers
        headers = {"Accept": "application/json", "User-Agent": configuration.user_agent}
        headers.update(self.default_headers)
        if self.cookie:
            headers["Cookie"] = self.cookie
        self._header_cache = (key, headers)
        return headers

    def _headers(self, authorization: Optional[str]) -> Dict[str, str]:
        base = self._base_headers()
        if authorization is None:
            return base
        cached_value, cached_base, headers = self._auth_header_cache
        if authorization == cached_value and cached_base is base:
            return headers
        headers = dict(base)
        headers["Authorization"] = authorization
        self._auth_header_cache = (authorization, base, headers)
        return headers

    def _invoke(
        self,
        endpoint: Endpoint,
        query: Union[str, Callable[[], str]],
        data_only: bool,
        preload: bool,
        timeout: Any,
    ) -> Any:
        """Send, decode and retry. ``query`` is the query string, or a callable building a new
        one for every attempt (signed grants must never repeat a nonce)."""
        configuration = self.configuration
        origin = self._origin()
        path = origin.base_path + endpoint.path
        target = path
        fresh_query: Optional[Callable[[], str]] = None
        if isinstance(query, str):
            if query:
                target = f"{path}?{query}"
        else:
            fresh_query = query
        authorization: Optional[str] = None
        credentials = self.credentials
        if timeout is None:
            timeout = self.rest_client.timeout(None)
        policy = self._retry_policy()
        rate_limit = configuration.rate_limit
        debug = logger.isEnabledFor(logging.DEBUG)
        attempts = 0
        reauthenticated = False
        while True:
            attempts += 1
            if fresh_query is not None:
                target = f"{path}?{fresh_query()}"
            if endpoint.private:
                authorization = credentials.authorization(endpoint, target)
            else:
                authorization = credentials.bearer_if_set()
            if origin.insecure and (authorization is not None or endpoint.carries_credentials):
                self._check_transport_security(endpoint, origin)
            headers = self._headers(authorization)
            if rate_limit is not None:
                rate_limit.acquire()
            started = time.perf_counter() if debug else 0.0
            try:
                response = self.rest_client.send(origin, target, headers, timeout, preload)
                if debug:
                    logger.debug(
                        "GET %s%s -> %d in %.1f ms",
                        origin.origin,
                        redact(target),
                        response.status,
                        (time.perf_counter() - started) * 1000.0,
                    )
                if not preload and 200 <= response.status <= 299:
                    return response
                data = _decode(response)
            except ApiException as error:
                if debug:
                    logger.debug("GET %s%s failed: %r", origin.origin, redact(target), error)
                if (
                    endpoint.private
                    and not reauthenticated
                    and authorization is not None
                    and (error.error_code == _UNAUTHORIZED or error.status == 401)
                ):
                    reauthenticated = True
                    if credentials.reauthenticate(authorization):
                        attempts -= 1
                        continue
                    explained = credentials.explain_refusal(error, authorization)
                    if explained is not error:
                        raise explained from error
                if not policy.should_retry(error, attempts):
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
            if data_only:
                return data
            return data, response.status, response.headers

    def _check_transport_security(self, endpoint: Endpoint, origin: Origin) -> None:
        if not self.configuration.allow_insecure_http:
            raise ApiValueError(
                f"{endpoint.operation} would send a credential over plain http to "
                f"{origin.hostname}; use an https:// host, or set "
                "Configuration.allow_insecure_http = True if you really mean it"
            )

    def _fetch_token(
        self, endpoint: Endpoint, make_args: Callable[[], Mapping[str, Any]]
    ) -> Dict[str, Any]:
        """Call ``public/auth`` for the credential manager, with fresh arguments per attempt."""
        result: Dict[str, Any] = self._invoke(
            endpoint, lambda: self._query(endpoint, make_args()), True, True, None
        )
        return result


def _decode(response: Any) -> Dict[str, Any]:
    """The one place a response becomes data or an exception."""
    status: int = response.status
    raw: bytes = response.data
    if 200 <= status <= 299:
        try:
            data = json.loads(raw)
        except ValueError:
            raise _unexpected_body(response, "the response body is not JSON") from None
        if not isinstance(data, dict):
            raise _unexpected_body(response, "the response body is not a JSON object")
        if "error" in data:
            reason = response.reason or ""
            raise exception_for_response(
                status, reason, raw.decode("utf-8", "replace"), response.headers, data
            )
        return data
    reason = response.reason or http.client.responses.get(status, "")
    if 300 <= status <= 399:
        location = response.headers.get("Location", "")
        reason = (
            f"{reason}: redirects are not followed (to {redact(location) or 'nowhere'}); "
            "point Configuration.host at the final address"
        )
    raise exception_for_response(
        status, reason, raw.decode("utf-8", "replace"), response.headers
    )


def _unexpected_body(response: Any, what: str) -> ApiException:
    return ApiException(
        response.status,
        f"{what} (Content-Type: {response.headers.get('Content-Type', 'none')})",
        body=response.data.decode("utf-8", "replace"),
        headers=response.headers,
    )
