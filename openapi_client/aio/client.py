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

import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable, overload

from openapi_client.aio.calls import AsyncAttempt, AsyncCallDriver
from openapi_client.aio.connection import open_connection
from openapi_client.aio.hub import AsyncEventHub, EventIterator
from openapi_client.aio.session import AsyncSession
from openapi_client.configuration import Configuration
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import ApiValueError
from openapi_client.retry import RetryPolicy
from openapi_client.websocket import tls
from openapi_client.websocket.client import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RECONNECT_BACKOFF,
    SessionClientBase,
    SessionTransportBase,
    WsTimeout,
    _channels,
)
from openapi_client.websocket.events import Event
from openapi_client.websocket.session_core import SubscriptionCallback, subscription_method

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

__all__ = ["AsyncSessionTransport", "WebSocketApiClient"]


class WebSocketApiClient(SessionClientBase):
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

    _session: AsyncSession

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
        settings = self._settings(
            configuration,
            url,
            heartbeat,
            cancel_on_disconnect,
            max_reconnects,
            reconnect_backoff,
            throttle_delay,
            liveness_timeout,
            max_message_size,
            open_timeout,
            close_timeout,
            keepalive_ping,
            compression,
            watchdog,
        )
        _check_proxy_route(configuration, self._target.secure)
        self._session = AsyncSession(configuration, settings, self._open, AsyncEventHub(on_event))
        self._check_credentials()
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

    def events(self, timeout: float | None = None) -> EventIterator:
        """``async for event in ws.events():`` the session's events in order, from the first
        not yet taken (at most the last 1,000 are kept); ends after
        :class:`~openapi_client.websocket.Closed`, or when ``timeout`` seconds pass without an
        event. Meant for one consumer at a time."""
        return self._session.hub.iterate(timeout)

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
        wanted = _channels(channels)
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
        return self._subscribed(wanted, answer)

    async def unsubscribe(self, channels: str | Iterable[str]) -> None:
        """Stop the notifications of ``channels`` (and their renewal)."""
        wanted = _channels(channels)
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
        endpoint = self._method_endpoint(method, params, idempotent)
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
            proxy_headers=configuration.proxy_headers,
        )


def _check_proxy_route(configuration: Configuration, secure: bool) -> None:
    """Refuse a route asyncio cannot run: before Python 3.11 (whose asyncio runs TLS inside
    TLS), a ``wss://`` session through an ``https://`` proxy.

    :raises ApiValueError: that route, on Python < 3.11.
    """
    proxy = configuration.proxy
    if (
        proxy is not None
        and secure
        and proxy.lower().startswith("https:")
        and sys.version_info < (3, 11)
    ):
        raise ApiValueError(
            "a wss:// session through an https:// proxy runs TLS inside TLS, which asyncio "
            "supports from Python 3.11 on; use an http:// proxy (the tunnel then carries only "
            "the session's own TLS), the threaded WebSocketApiClient, or Python 3.11+"
        )


class AsyncSessionTransport(SessionTransportBase):
    """The asyncio WebSocket transport (an :class:`~openapi_client.aio.calls.AsyncTransport`),
    given to the asyncio session driver (see
    :class:`~openapi_client.websocket.client.SessionTransportBase`)."""

    session: AsyncSession

    async def send(
        self,
        endpoint: Endpoint,
        request: Mapping[str, Any],
        preload: bool,
        timeout: WsTimeout,
        attempt: AsyncAttempt,
    ) -> Any:
        """One request on the session; the rate-limit turn is awaited first."""
        if attempt.turn_pending:
            await attempt.take_turn()
        params, credential, checked = self._request(endpoint, request)
        call = await self.session.call(
            endpoint.method, params, timeout.connect, timeout.read, checked
        )
        return self._outcome(call, attempt, credential, preload)

    async def reauthenticate(self, credential: str) -> bool:
        return await self.session.reauthenticate(credential)

    async def close(self, logout: bool = False) -> None:
        """End the session (see :meth:`WebSocketApiClient.close`)."""
        await self.session.close(logout)
