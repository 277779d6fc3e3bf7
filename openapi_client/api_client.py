"""``ApiClient``: the API classes' calls as HTTP GET requests, and the HTTP transport under it.

:class:`ApiClient` is the call driver (:class:`~openapi_client.core.CallDriver`: call options,
``async_req`` threads, re-authentication and retries) composed with :class:`HttpTransport`, which
encodes arguments into the query string, applies credentials as an ``Authorization`` header,
sends through :mod:`openapi_client.rest` and decodes the JSON-RPC envelope into a plain ``dict``.
One instance is safe to share across threads.
"""

from __future__ import annotations

import contextvars
import http.client
import json
import logging
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from openapi_client.configuration import Configuration
from openapi_client.core import AsyncResult, Attempt, Reply, SyncClient
from openapi_client.credentials import Credentials
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import ApiException, ApiValueError, exception_for_response
from openapi_client.headers import check_header
from openapi_client.http.timeouts import RequestTimeout
from openapi_client.net.origin import Origin
from openapi_client.redaction import install_filter, redact
from openapi_client.rest import RESTClientObject

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

# AsyncResult is re-exported: it lived here first.
__all__ = ["ApiClient", "AsyncResult", "HttpTransport"]

logger = install_filter(logging.getLogger(__name__))

#: The attempt whose credential is being looked up, so that a token fetched for it shares its
#: call's ``call_timeout``. The credentials layer calls its fetch hook without a deadline, so the
#: deadline crosses that layer here; a context variable is per thread, and per task under
#: asyncio. It holds a weak reference: should an interrupt stop the reset, the reference dies
#: with the attempt instead of holding later token fetches to a deadline long gone.
_TOKEN_FOR: contextvars.ContextVar[weakref.ref[Attempt] | None] = contextvars.ContextVar(
    "openapi_client_token_for", default=None
)


class ApiClient(SyncClient):
    """Makes requests for the API classes over HTTP.

    :param configuration: the settings; ``Configuration.get_default_copy()`` when omitted.
    :param header_name: a header to add to every request (with ``header_value``).
    :param header_value: that header's value.
    :param cookie: a ``Cookie`` header for every request.
    :param pool_threads: threads serving ``async_req=True`` calls; the pool starts on first use.

    Use it as a context manager, or call :meth:`close`, to release connections promptly; a script
    that does neither still exits at once, even with ``async_req`` calls in flight. A closed
    client refuses further calls (``ApiValueError``).
    """

    def __init__(
        self,
        configuration: Configuration | None = None,
        header_name: str | None = None,
        header_value: str | None = None,
        cookie: str | None = None,
        pool_threads: int = 1,
    ) -> None:
        if configuration is None:
            configuration = Configuration.get_default_copy()
        # Built here, not in the transport: its warning about verify_ssl names the caller's line.
        rest_client = RESTClientObject(configuration)
        credentials = Credentials(configuration, self._fetch_token)
        transport = HttpTransport(configuration, rest_client, credentials)
        super().__init__(configuration, transport, pool_threads)
        self._transport = transport
        if header_name is not None and header_value is not None:
            self.set_default_header(header_name, header_value)
        self.cookie = cookie

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the ``async_req`` threads (after calls in flight) and close every connection.

        The client refuses calls from then on: build a new one to go on."""
        self._calls.close()
        self._transport.close()

    # -- what users set -------------------------------------------------------------------------

    @property
    def rest_client(self) -> RESTClientObject:
        """The connections (:class:`~openapi_client.rest.RESTClientObject`)."""
        return self._transport.rest_client

    @property
    def credentials(self) -> Credentials:
        """Where ``Authorization`` values come from (tokens fetched and renewed here)."""
        return self._transport.credentials

    @property
    def default_headers(self) -> dict[str, str]:
        """Headers sent with every request (a plain ``dict``; checked before each request)."""
        return self._transport.default_headers

    @default_headers.setter
    def default_headers(self, value: dict[str, str]) -> None:
        self._transport.default_headers = value

    @property
    def cookie(self) -> str | None:
        """A ``Cookie`` header sent with every request (``None``: none)."""
        return self._transport.cookie

    @cookie.setter
    def cookie(self, value: str | None) -> None:
        if value is not None:
            problem = check_header("Cookie", value, "ApiClient.cookie")
            if problem:
                raise ApiValueError(problem)
        self._transport.cookie = value

    @property
    def user_agent(self) -> str:
        """The ``User-Agent`` header sent with every request."""
        return self.configuration.user_agent

    @user_agent.setter
    def user_agent(self, value: str) -> None:
        self.configuration.user_agent = value

    def set_default_header(self, header_name: str, header_value: str) -> None:
        """Send ``header_name: header_value`` with every request.

        Names are case-insensitive: this replaces any default header of the same name, and
        ``User-Agent`` here replaces the configured one. ``Authorization`` is the credentials'
        own: a private call's credential always takes its place.
        """
        problem = check_header(header_name, header_value, "set_default_header")
        if problem:
            raise ApiValueError(problem)
        headers = self.default_headers
        for existing in [name for name in headers if name.lower() == header_name.lower()]:
            del headers[existing]
        headers[header_name] = header_value

    def __repr__(self) -> str:
        return f"ApiClient(host={self.configuration.host!r})"

    def _fetch_token(
        self, endpoint: Endpoint, make_args: Callable[[], Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Call ``public/auth`` for the credentials, with fresh arguments per attempt, within
        the deadline of the call the token is fetched for."""
        for_attempt = _TOKEN_FOR.get()
        attempt = for_attempt() if for_attempt is not None else None
        prepare = self._transport.prepare
        result: dict[str, Any] = self._calls.invoke(
            endpoint,
            lambda: prepare(endpoint, make_args()),
            within=attempt.call_deadline if attempt is not None else None,
        )
        return result


class HttpTransport:
    """The HTTP transport (a :class:`~openapi_client.core.Transport`): a call is one GET.

    :param configuration: the settings (host, validation, insecure http).
    :param rest_client: the connections the requests go over.
    :param credentials: the ``Authorization`` values for private calls.
    """

    def __init__(
        self,
        configuration: Configuration,
        rest_client: RESTClientObject,
        credentials: Credentials,
    ) -> None:
        self.configuration = configuration
        self.rest_client = rest_client
        self.credentials = credentials
        #: Headers for every request (see :meth:`ApiClient.set_default_header`).
        self.default_headers: dict[str, str] = {}
        #: A ``Cookie`` header for every request, checked by its setter on ``ApiClient``.
        self.cookie: str | None = None
        self._origin_cache: tuple[str, Origin] = ("", None)  # type: ignore[assignment]
        self._header_cache: tuple[Any, dict[str, str]] = (None, {})
        self._auth_header_cache: tuple[str | None, dict[str, str], dict[str, str]] = (
            None,
            {},
            {},
        )

    def close(self) -> None:
        self.rest_client.close()

    def after_fork(self) -> None:
        self.rest_client.after_fork()
        self.credentials.after_fork()

    def prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> str:
        """The query string: the HTTP form of a call's arguments."""
        return endpoint.query(args, self.configuration.client_side_validation)

    def timeout(self, value: Any) -> RequestTimeout:
        return self.rest_client.timeout(value)

    def _origin(self) -> Origin:
        host = self.configuration.host
        cached_host, origin = self._origin_cache
        if host is cached_host or host == cached_host:
            return origin
        origin = Origin(host)
        self._origin_cache = (host, origin)
        return origin

    def _base_headers(self) -> dict[str, str]:
        configuration = self.configuration
        key = (configuration.user_agent, self.cookie, tuple(self.default_headers.items()))
        cached_key, headers = self._header_cache
        if key == cached_key:
            return headers
        # Built anew only when a header changed: checked here, since default_headers is a
        # plain dict that code may change without set_default_header.
        by_name: dict[str, tuple[str, str]] = {}
        fields = [
            ("Accept", "application/json"),
            ("User-Agent", configuration.user_agent),
            *self.default_headers.items(),
        ]
        if self.cookie:
            fields.append(("Cookie", self.cookie))
        for name, value in fields:
            problem = check_header(name, value, "ApiClient.default_headers")
            if problem:
                raise ApiValueError(problem)
            by_name[name.lower()] = (name, value)  # case-insensitive: the later one wins
        headers = dict(by_name.values())
        self._header_cache = (key, headers)
        return headers

    def _headers(self, authorization: str | None) -> dict[str, str]:
        base = self._base_headers()
        if authorization is None:
            return base
        cached_value, cached_base, headers = self._auth_header_cache
        if authorization == cached_value and cached_base is base:
            return headers
        headers = {name: value for name, value in base.items() if name.lower() != "authorization"}
        headers["Authorization"] = authorization
        self._auth_header_cache = (authorization, base, headers)
        return headers

    def _authorization(self, endpoint: Endpoint, target: str, attempt: Attempt) -> str:
        """The credential of a private call; a token fetched for it shares its deadline."""
        reset = _TOKEN_FOR.set(weakref.ref(attempt))
        try:
            return self.credentials.authorization(endpoint, target)
        finally:
            _TOKEN_FOR.reset(reset)

    def send(
        self,
        endpoint: Endpoint,
        request: str | Callable[[], str],
        preload: bool,
        timeout: Any,
        attempt: Attempt,
    ) -> Any:
        """One GET. ``request`` is the query string, or a callable building a new one for every
        attempt (signed grants must never repeat a nonce). The attempt's rate-limit turn is
        taken once the connection is made, just before the request leaves."""
        origin = self._origin()
        path = origin.base_path + endpoint.path
        query = request if isinstance(request, str) else request()
        target = f"{path}?{query}" if query else path
        if endpoint.private:
            authorization: str | None = self._authorization(endpoint, target, attempt)
        else:
            authorization = self.credentials.bearer_if_set()
        attempt.credential = authorization
        if origin.insecure and (authorization is not None or endpoint.carries_credentials):
            self._check_transport_security(endpoint, origin)
        headers = self._headers(authorization)
        debug = logger.isEnabledFor(logging.DEBUG)
        started = time.perf_counter() if debug else 0.0
        take_turn = attempt.take_turn if attempt.turn_pending else None
        try:
            response = self.rest_client.send(
                origin, target, headers, timeout, preload, attempt.deadline, take_turn
            )
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
            return Reply(_decode(response), response.status, response.headers)
        except ApiException as error:
            if debug:
                logger.debug("GET %s%s failed: %r", origin.origin, redact(target), error)
            raise

    def reauthenticate(self, credential: str) -> bool:
        return self.credentials.reauthenticate(credential)

    def explain_refusal(self, error: ApiException, credential: str) -> ApiException:
        return self.credentials.explain_refusal(error, credential)

    def may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        return True

    def _check_transport_security(self, endpoint: Endpoint, origin: Origin) -> None:
        if not self.configuration.allow_insecure_http:
            raise ApiValueError(
                f"{endpoint.operation} would send a credential over plain http to "
                f"{origin.hostname}; use an https:// host, or set "
                "Configuration.allow_insecure_http = True if you really mean it"
            )


def _decode(response: Any) -> dict[str, Any]:
    """The one place a response becomes data or an exception."""
    status: int = response.status
    raw: bytes = response.data
    if 200 <= status <= 299:
        try:
            data = json.loads(raw)
        except RecursionError as error:
            what = "the response body is JSON nested too deeply"
            raise _unexpected_body(response, what) from error
        except ValueError as error:  # not JSON, not UTF-8, or a number too long to convert
            raise _unexpected_body(response, "the response body is not JSON") from error
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
