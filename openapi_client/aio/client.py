"""``openapi_client.aio.WebSocketApiClient``: the WebSocket session for asyncio programs.

The same session as :class:`openapi_client.websocket.WebSocketApiClient` (the same session core
decides everything, event for event), with every call a coroutine: the asyncio call driver
(:class:`~openapi_client.aio.calls.AsyncCallDriver`: validation, retries, re-authentication, the
rate limiter's turn) composed with :class:`AsyncSessionTransport`, which gives each attempt to
the asyncio session driver (:class:`~openapi_client.aio.session.AsyncSession`)::

    async with aio.WebSocketApiClient(configuration, cancel_on_disconnect=True) as ws:
        api = aio.SessionManagementApi(ws)
        await api.private_get_cancel_on_disconnect_get()

The generated-style keywords mean what they mean on the threaded session (``_request_timeout``,
``*_with_http_info``, ``_preload_content=False``), but ``async_req``: a call is a coroutine
already, so it is refused with ``ApiTypeError``. The session needs neither the HTTP client nor a
thread of its own, but the watchdog's (see :mod:`openapi_client.aio.session`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable, overload

from openapi_client.aio.calls import AsyncAttempt, AsyncCallDriver
from openapi_client.aio.connection import open_connection
from openapi_client.aio.hub import AsyncEventHub, EventIterator
from openapi_client.aio.session import AsyncSession
from openapi_client.calls import Reply
from openapi_client.configuration import Configuration
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import ApiException, ApiTypeError, ApiValueError
from openapi_client.retry import RetryPolicy
from openapi_client.websocket import client as threaded
from openapi_client.websocket import tls
from openapi_client.websocket.client import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RECONNECT_BACKOFF,
    RawAnswer,
    WsTimeout,
    ws_timeout,
)
from openapi_client.websocket.connection import ConnectOptions
from openapi_client.websocket.events import Event, logger
from openapi_client.websocket.session_core import (
    CoreSettings,
    State,
    SubscriptionCallback,
    private_params,
    subscription_method,
)
from openapi_client.websocket.url import Target, resolve

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

__all__ = ["AsyncSessionTransport", "WebSocketApiClient"]

_NO_HEADERS: Mapping[str, str] = {}


class WebSocketApiClient:
    """Calls the ``openapi_client.aio`` API classes make, over one Deribit WebSocket session
    shared by every task of one event loop.

    Use it as ``async with aio.WebSocketApiClient(...) as ws:``, which opens the session
    (connects and applies its settings, raising an ``ApiException`` when that fails) and closes
    it; or ``await ws.open()`` and ``await ws.close()``. Building it does no I/O. Afterwards the
    session keeps itself alive and comes back after every loss, as the threaded one does.

    The parameters are the threaded :class:`openapi_client.websocket.WebSocketApiClient`'s, with
    the same defaults and checks (``pool_threads`` aside: there is no ``async_req``), and:

    :param on_event: called with every :class:`~openapi_client.websocket.events.Event`: a plain
        function or a coroutine function, run in the session's callback task (in order, never in
        the task that reads the socket).
    :param watchdog: seconds (at least 1) the program may go without :meth:`check_in`: then a
        thread of the library's shuts the connection down, even while the event loop is blocked,
        without logging out, so that Deribit's cancel-on-disconnect cancels the orders.
    """

    def __init__(
        self,
        configuration: Configuration | None = None,
        *,
        url: str | None = None,
        heartbeat: float | None = 30,
        cancel_on_disconnect: bool = False,
        on_event: Callable[[Event], Any] | None = None,
        max_reconnects: int | None = None,
        reconnect_backoff: RetryPolicy = DEFAULT_RECONNECT_BACKOFF,
        throttle_delay: float = 5.0,
        liveness_timeout: float | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        open_timeout: float | None = None,
        close_timeout: float = 2.0,
        keepalive_ping: float | None = 20.0,
        compression: str | None = None,
        watchdog: float | None = None,
    ) -> None:
        if configuration is None:
            configuration = Configuration.get_default_copy()
        if heartbeat is not None:
            from openapi_client.api.endpoints import SET_HEARTBEAT

            heartbeat = SET_HEARTBEAT.json_params({"interval": heartbeat}, True)["interval"]
        threaded._check_settings(max_reconnects, throttle_delay, liveness_timeout, max_message_size)
        threaded._check_watchdog(watchdog)
        self.configuration = configuration
        self._target: Target = resolve(configuration.host, url)
        # The threaded client's rule, read from its one place (it reads only these two names).
        threaded.WebSocketApiClient._check_transport_security(self)  # type: ignore[arg-type]
        if configuration.proxy and configuration.proxy_headers:
            raise ApiValueError(
                "the asyncio session cannot send Configuration.proxy_headers to the proxy "
                "(websockets' asyncio client has no such setting); put the proxy's credentials "
                "in Configuration.proxy instead (http://user:password@host:port)"
            )
        default = ws_timeout(configuration.request_timeout)
        self._options = ConnectOptions(
            open_timeout=default.connect if open_timeout is None else float(open_timeout),
            close_timeout=float(close_timeout),
            max_message_size=max_message_size,
            keepalive_ping=keepalive_ping,
            compression=compression,
        )
        self._ssl_context = tls.ssl_context(configuration) if self._target.secure else None
        self._endpoints: dict[tuple[str, bool], threaded._MethodEndpoint] = {}
        self._session = AsyncSession(
            configuration,
            CoreSettings(
                url=self._target.url,
                display=self._target.display,
                heartbeat=heartbeat,
                cancel_on_disconnect=cancel_on_disconnect,
                reconnect_backoff=reconnect_backoff,
                throttle_delay=float(throttle_delay),
                max_reconnects=max_reconnects,
                liveness_timeout=liveness_timeout,
                call_timeout=default.read,
                close_timeout=self._options.close_timeout,
                watchdog=None if watchdog is None else float(watchdog),
            ),
            self._open,
            AsyncEventHub(on_event),
        )
        if cancel_on_disconnect and not self._session.core.credentials_available:
            raise ApiValueError(
                "cancel_on_disconnect=True needs credentials: set Configuration.access_token, "
                "or Configuration.client_id and client_secret"
            )
        self._close_asked = False
        self._transport = AsyncSessionTransport(configuration, self._session)
        self._calls = AsyncCallDriver(configuration, self._transport, type(self).__name__)

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> WebSocketApiClient:
        """Connect and apply the session's settings; returns the client, once the session is
        ready. ``async with`` does this.

        :raises ApiException: the session could not be established (after the retries
            ``Configuration.retries`` allows for a transient failure).
        :raises ApiValueError: it was opened before, or closed.
        """
        if self._close_asked or self._session.started:
            raise ApiValueError(
                "this WebSocketApiClient was opened already: open it once (async with "
                "aio.WebSocketApiClient(...) as ws), and build a new one after close()"
            )
        await self._session.start(self._calls.retry_policy())
        return self

    async def __aenter__(self) -> WebSocketApiClient:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, logout: bool = False) -> None:
        """End the session and its connection; returns once the connection has ended and every
        task of the session is done (at most about twice ``close_timeout``).

        On Deribit, closing the connection fires cancel-on-disconnect if it is on: the orders
        made through this connection are cancelled. ``logout=True`` sends ``private/logout``
        first, which ends the session without firing it (the orders stay), and invalidates the
        tokens this session obtained (a configured ``access_token`` is kept valid).
        Calls in flight fail; calls made afterwards raise ``ApiValueError``.
        """
        self._close_asked = True
        await self._transport.close(logout)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called; a closed client refuses calls."""
        return self._close_asked

    @property
    def state(self) -> State:
        """Where the session stands (:class:`~openapi_client.websocket.State`)."""
        return self._session.state

    @property
    def url(self) -> str:
        """The WebSocket URL the session connects to."""
        return self._target.url

    @property
    def heartbeat(self) -> float | None:
        """The heartbeat interval applied on every connection (None: off)."""
        return self._session.core.heartbeat

    @property
    def cancel_on_disconnect(self) -> bool:
        """Whether cancel-on-disconnect is enabled on every connection."""
        return self._session.core.cancel_on_disconnect

    def events(self, timeout: float | None = None) -> EventIterator:
        """``async for event in ws.events():`` the session's events in order, from the first
        not yet taken (at most the last 1,000 are kept); ends after
        :class:`~openapi_client.websocket.Closed`, or when ``timeout`` seconds pass without an
        event. Meant for one consumer at a time."""
        return self._session.hub.iterate(timeout)

    @property
    def watchdog(self) -> float | None:
        """The watchdog's period in seconds (None: no watchdog)."""
        return self._session.core.settings.watchdog

    def check_in(self) -> None:
        """Tell the watchdog the program is alive: call it from the code whose health matters,
        more often than ``watchdog`` seconds. After the watchdog closed the connection, this
        opens a new one and the session is restored. A plain method: any task (or thread);
        cheap; nothing without a watchdog."""
        self._session.check_in()

    def __repr__(self) -> str:
        text = f"WebSocketApiClient(url={self._target.url!r}, state={self.state.value!r}"
        watchdog = self.watchdog
        if watchdog is not None:
            text += f", watchdog={watchdog:g}"
        return text + ")"

    # -- subscriptions --------------------------------------------------------------------------

    async def subscribe(
        self, channels: str | Iterable[str], callback: SubscriptionCallback
    ) -> list[str]:
        """Subscribe to ``channels`` and call ``callback(channel, data)`` for every
        notification (a plain function or a coroutine function, in the session's callback
        task); renewed on every reconnect.

        Returns the channels Deribit confirmed.

        :raises ApiValueError: Deribit confirmed none of them.
        """
        wanted = threaded._channels(channels)
        session = self._session
        session.add_subscriptions(wanted, callback)
        try:
            answer = await self.call(
                subscription_method(wanted, "subscribe"),
                {"channels": list(wanted)},
                idempotent=True,
            )
        except BaseException:
            session.remove_subscriptions(wanted)
            raise
        result = answer.get("result")
        confirmed = [str(channel) for channel in result] if isinstance(result, list) else []
        refused = [channel for channel in wanted if channel not in confirmed]
        if refused:
            logger.warning("Deribit did not confirm the subscription to %s", ", ".join(refused))
            session.remove_subscriptions(refused)
        if refused and not confirmed:
            raise ApiValueError(f"Deribit subscribed none of {', '.join(refused)}")
        return confirmed

    async def unsubscribe(self, channels: str | Iterable[str]) -> None:
        """Stop the notifications of ``channels`` (and their renewal)."""
        wanted = threaded._channels(channels)
        self._session.remove_subscriptions(wanted)
        await self.call(
            subscription_method(wanted, "unsubscribe"), {"channels": list(wanted)}, idempotent=True
        )

    # -- any method -----------------------------------------------------------------------------

    @overload
    async def call(
        self,
        method: Endpoint,
        params: Mapping[str, Any],
        options: Mapping[str, Any],
        http_info: bool = False,
    ) -> Any: ...

    @overload
    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotent: bool = False,
        timeout: Any = None,
    ) -> dict[str, Any]: ...

    async def call(
        self,
        method: Endpoint | str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        http_info: bool = False,
        *,
        idempotent: bool = False,
        timeout: Any = None,
    ) -> Any:
        """Call a Deribit method by name: ``await ws.call("public/get_time")`` returns the
        envelope.

        :param method: e.g. ``"public/status"``; private methods get the session's credentials.
        :param params: the named parameters, sent as given (no client-side validation).
        :param idempotent: whether the call may be sent again after a transient failure (the
            configured retry policy then applies); by default it is sent once, since a call that
            was lost with its connection may or may not have been carried out.
        :param timeout: as ``_request_timeout``.

        (The ``openapi_client.aio`` API classes call this with an endpoint declaration.)
        """
        if isinstance(method, Endpoint):
            return await self._calls.call(method, params or {}, options or {}, http_info)
        if not isinstance(method, str) or not threaded._METHOD.fullmatch(method):
            raise ApiValueError(
                f"method must name a Deribit method such as 'public/get_time', got {method!r}"
            )
        if method == "private/logout":
            raise ApiValueError("private/logout ends the session: call close(logout=True)")
        if params is not None and not isinstance(params, Mapping):
            raise ApiTypeError(f"params must be a mapping of named parameters, got {params!r}")
        endpoint = self._endpoints.get((method, idempotent))
        if endpoint is None:
            endpoint = threaded._MethodEndpoint(method, idempotent)
            if len(self._endpoints) < 256:
                self._endpoints[(method, idempotent)] = endpoint
        resolved = None if timeout is None else self._transport.timeout(timeout)
        result: dict[str, Any] = await self._calls.invoke(
            endpoint, dict(params or {}), True, True, resolved
        )
        return result

    # -- connections ----------------------------------------------------------------------------

    def _open(self) -> Any:
        configuration = self.configuration
        return open_connection(
            self._target,
            self._options,
            ssl_context=self._ssl_context,
            server_hostname=tls.server_hostname(configuration),
            user_agent=configuration.user_agent,
            proxy=configuration.proxy,
        )


class AsyncSessionTransport:
    """The asyncio WebSocket transport (an :class:`~openapi_client.aio.calls.AsyncTransport`):
    a call is one JSON-RPC request on the session's connection (waiting for a ready session at
    most the timeout's connect part), given to the asyncio session driver.

    :param configuration: the settings (``request_timeout``, ``client_side_validation``).
    :param session: the session whose connection carries the calls.
    """

    def __init__(self, configuration: Configuration, session: AsyncSession) -> None:
        self.configuration = configuration
        self.session = session
        self._timeouts: dict[Any, WsTimeout] = {}

    def prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-RPC ``params``: the WebSocket form of a call's arguments."""
        return endpoint.json_params(args, self.configuration.client_side_validation)

    def timeout(self, value: Any) -> WsTimeout:
        """``_request_timeout`` as seconds to wait for a ready session, then for the answer:
        the threaded transport's rule (it reads ``configuration`` and its cache of values)."""
        return threaded.SessionTransport.timeout(self, value)  # type: ignore[arg-type]

    async def send(
        self,
        endpoint: Endpoint,
        request: Mapping[str, Any],
        preload: bool,
        timeout: WsTimeout,
        attempt: AsyncAttempt,
    ) -> Any:
        """One request on the session; the rate-limit turn is awaited first."""
        await attempt.take_turn()
        configuration = self.configuration
        params = request
        credential = None
        if endpoint.private:
            params, credential = private_params(configuration, request, endpoint.operation)
        # The API classes' arguments were checked against their declaration, when enabled.
        checked = (
            type(endpoint) is not threaded._MethodEndpoint and configuration.client_side_validation
        )
        call = await self.session.call(
            endpoint.method, params, timeout.connect, timeout.read, checked
        )
        attempt.credential = credential or call.credential
        error = call.error
        if error is not None:
            raise error
        if not preload:
            raw = call.raw
            return RawAnswer(raw.encode() if isinstance(raw, str) else raw)
        return Reply(call.message, 200, _NO_HEADERS)

    async def reauthenticate(self, credential: str) -> bool:
        return await self.session.reauthenticate(credential)

    def explain_refusal(self, error: ApiException, credential: str) -> ApiException:
        return error

    def may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        if not self.session.accepting_calls:
            return False
        return getattr(endpoint, "idempotent", True) is not False

    async def close(self, logout: bool = False) -> None:
        """End the session (see :meth:`WebSocketApiClient.close`)."""
        await self.session.close(logout)
