"""``WebSocketApiClient``: the API classes' calls as JSON-RPC on one Deribit WebSocket session.

It is the call driver (:class:`~openapi_client.core.CallDriver`) composed with a second transport,
:class:`SessionTransport`, beside the HTTP :class:`~openapi_client.ApiClient`: validation,
credentials, the retry decision, the rate limiter, error mapping and redaction are the same code.
What differs is only how a request travels, so the generated-style keywords mean this on a
WebSocket:

* ``async_req=True``: the call runs on the client's thread pool and an ``AsyncResult`` is returned;
* ``_request_timeout``: seconds to wait for the answer (a ``(connect, read)`` pair: seconds to wait
  for a ready session, then for the answer); default ``Configuration.request_timeout``;
* ``*_with_http_info`` / ``_return_http_data_only=False``: ``(envelope, 200, {})``; a WebSocket
  answer has no HTTP status or headers, so a success reads as 200 and the headers are empty;
* ``_preload_content=False``: a :class:`RawAnswer` holding the answer's text as received
  (``data`` in bytes, ``json()`` to decode it); an error answer still raises.

A JSON-RPC error answer raises what Deribit's HTTP API gives for the same error: an
``ApiException`` (``BadRequestException``, status 400; ``TooManyRequestsException``, status 429,
for 10028) with ``error_code``, ``error_message`` and ``error_data`` set. No answer (the
connection ended, or the timeout ran out) raises an ``ApiTransportError`` subclass with
``status`` 0 and the cause chained.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    NamedTuple,
    overload,
)

from openapi_client.calls import BaseAttempt
from openapi_client.configuration import Configuration, check_timeout
from openapi_client.core import Attempt, Reply, SyncClient
from openapi_client.credentials import uses_api_key
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import ApiException, ApiTypeError, ApiValueError
from openapi_client.retry import RetryPolicy
from openapi_client.websocket import session_core, tls
from openapi_client.websocket.connection import ConnectOptions, open_transport
from openapi_client.websocket.events import Event, logger
from openapi_client.websocket.hub import EventHub
from openapi_client.websocket.session import Session
from openapi_client.websocket.session_core import (
    Call,
    CoreSettings,
    State,
    SubscriptionCallback,
    private_params,
    subscription_method,
)
from openapi_client.websocket.transport import Transport
from openapi_client.websocket.url import Target, resolve

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

__all__ = [
    "DEFAULT_RECONNECT_BACKOFF",
    "RawAnswer",
    "SessionClientBase",
    "SessionTransport",
    "SessionTransportBase",
    "WebSocketApiClient",
    "WsTimeout",
]

#: Waits between reconnect attempts: about 0.1 s before the first (0.05 to 0.1 with jitter),
#: doubling to at most 30 s; a ``Retry-After`` up to 5 minutes is honoured.
DEFAULT_RECONNECT_BACKOFF = RetryPolicy(
    backoff_factor=0.1, backoff_max=30.0, jitter=0.5, retry_after_max=300.0
)

#: The largest message accepted by default: Deribit's biggest answers are about 5 MB.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

_METHOD = re.compile(r"(public|private)/[A-Za-z0-9_]+")
_NO_HEADERS: Mapping[str, str] = {}


class WsTimeout(NamedTuple):
    """Seconds a call waits for a ready session (``connect``), then for its answer (``read``)."""

    connect: float
    read: float


class RawAnswer:
    """An answer as received, for ``_preload_content=False``: ``data`` (bytes), ``status`` 200,
    ``reason``, empty ``headers``; :meth:`json` decodes it."""

    __slots__ = ("data",)

    status = 200
    reason = "OK"
    headers: Mapping[str, str] = _NO_HEADERS

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        """The answer's bytes (JSON text)."""
        return self.data

    def json(self) -> Any:
        """The answer decoded: the JSON-RPC envelope."""
        return json.loads(self.data)

    def getheaders(self) -> Mapping[str, str]:
        """No headers: a WebSocket message has none."""
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """``default``: a WebSocket message has no headers."""
        return default

    def __repr__(self) -> str:
        return f"RawAnswer({len(self.data)} bytes)"


class _MethodEndpoint(Endpoint):
    """Any Deribit method called by name with :meth:`WebSocketApiClient.call`."""

    __slots__ = ("idempotent",)

    def __init__(self, method: str, idempotent: bool) -> None:
        super().__init__(method, "/" + method, private=method.startswith("private/"))
        self.idempotent = idempotent


class SessionClientBase:
    """What the threaded :class:`WebSocketApiClient` and the asyncio
    ``openapi_client.aio.WebSocketApiClient`` share: their settings, checked and built once, the
    properties a program reads, and the checks of a call by name and of a subscription's answer.
    Their I/O methods are their own (plain here, coroutines there); ``_session`` is their session
    driver (with ``core``, ``state``, ``check_in``, ``add_subscriptions`` and
    ``remove_subscriptions``)."""

    configuration: Configuration
    _session: Any
    _close_asked = False

    def _settings(
        self,
        configuration: Configuration,
        url: str | None,
        heartbeat: float | None,
        cancel_on_disconnect: bool,
        max_reconnects: int | None,
        reconnect_backoff: RetryPolicy,
        throttle_delay: float,
        liveness_timeout: float | None,
        max_message_size: int,
        open_timeout: float | None,
        close_timeout: float,
        keepalive_ping: float | None,
        compression: str | None,
        watchdog: float | None,
    ) -> CoreSettings:
        """Check the settings (``ApiValueError`` saying which is wrong), keep what connections
        are opened with, and return what the session core is given."""
        if heartbeat is not None:
            from openapi_client.api.endpoints import SET_HEARTBEAT

            heartbeat = SET_HEARTBEAT.json_params({"interval": heartbeat}, True)["interval"]
        _check_settings(max_reconnects, throttle_delay, liveness_timeout, max_message_size)
        _check_watchdog(watchdog)
        self.configuration = configuration
        self._target: Target = resolve(configuration.host, url)
        self._check_transport_security()
        default = ws_timeout(configuration.request_timeout)
        self._options = ConnectOptions(
            open_timeout=default.connect if open_timeout is None else float(open_timeout),
            close_timeout=float(close_timeout),
            max_message_size=max_message_size,
            keepalive_ping=keepalive_ping,
            compression=compression,
        )
        # The same TLS settings verify a wss:// origin and an https:// proxy.
        https_proxy = (configuration.proxy or "").lower().startswith("https:")
        self._ssl_context = (
            tls.ssl_context(configuration) if self._target.secure or https_proxy else None
        )
        self._endpoints: dict[tuple[str, bool], _MethodEndpoint] = {}
        return CoreSettings(
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
        )

    def _check_credentials(self) -> None:
        """Cancel-on-disconnect needs credentials (once the session exists)."""
        core = self._session.core
        if core.cancel_on_disconnect and not core.credentials_available:
            raise ApiValueError(
                "cancel_on_disconnect=True needs credentials: set Configuration.access_token, "
                "or Configuration.client_id and client_secret"
            )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called; a closed client refuses calls."""
        return self._close_asked

    @property
    def state(self) -> State:
        """Where the session stands (:class:`~openapi_client.websocket.State`)."""
        state: State = self._session.state
        return state

    @property
    def url(self) -> str:
        """The WebSocket URL the session connects to."""
        return self._target.url

    @property
    def heartbeat(self) -> float | None:
        """The heartbeat interval applied on every connection (None: off)."""
        heartbeat: float | None = self._session.core.heartbeat
        return heartbeat

    @property
    def cancel_on_disconnect(self) -> bool:
        """Whether cancel-on-disconnect is enabled on every connection."""
        return bool(self._session.core.cancel_on_disconnect)

    @property
    def watchdog(self) -> float | None:
        """The watchdog's period in seconds (None: no watchdog)."""
        watchdog: float | None = self._session.core.settings.watchdog
        return watchdog

    def check_in(self) -> None:
        """Tell the watchdog the program is alive: call it from the loop whose health matters,
        more often than ``watchdog`` seconds. After the watchdog closed the connection, this
        opens a new one and the session is restored. Cheap; any thread; nothing without a
        watchdog."""
        self._session.check_in()

    def __repr__(self) -> str:
        text = f"WebSocketApiClient(url={self._target.url!r}, state={self.state.value!r}"
        watchdog = self.watchdog
        if watchdog is not None:
            text += f", watchdog={watchdog:g}"
        return text + ")"

    def _method_endpoint(self, method: Any, params: Any, idempotent: bool) -> _MethodEndpoint:
        """The endpoint of a call by name, after checking its method and parameters."""
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise ApiValueError(
                f"method must name a Deribit method such as 'public/get_time', got {method!r}"
            )
        if method == "private/logout":
            raise ApiValueError("private/logout ends the session: call close(logout=True)")
        if params is not None and not isinstance(params, Mapping):
            raise ApiTypeError(f"params must be a mapping of named parameters, got {params!r}")
        endpoint = self._endpoints.get((method, idempotent))
        if endpoint is None:
            endpoint = _MethodEndpoint(method, idempotent)
            if len(self._endpoints) < 256:
                self._endpoints[(method, idempotent)] = endpoint
        return endpoint

    def _subscribed(self, wanted: tuple[str, ...], answer: Mapping[str, Any]) -> list[str]:
        """The channels Deribit confirmed in ``answer`` to subscribing ``wanted``; the others
        are forgotten.

        :raises ApiValueError: Deribit confirmed none of them.
        """
        result = answer.get("result")
        confirmed = [str(channel) for channel in result] if isinstance(result, list) else []
        refused = [channel for channel in wanted if channel not in confirmed]
        if refused:
            logger.warning("Deribit did not confirm the subscription to %s", ", ".join(refused))
            self._session.remove_subscriptions(refused)
        if refused and not confirmed:
            raise ApiValueError(f"Deribit subscribed none of {', '.join(refused)}")
        return confirmed

    def _check_transport_security(self) -> None:
        target = self._target
        if target.secure or target.is_loopback or self.configuration.allow_insecure_http:
            return
        configuration = self.configuration
        if (
            configuration.access_token
            or configuration.token_provider is not None
            or uses_api_key(configuration)
        ):
            raise ApiValueError(
                f"the session would send credentials over plain ws:// to {target.display}; use "
                "wss:// (an https:// host), or set Configuration.allow_insecure_http = True if "
                "you really mean it"
            )


class WebSocketApiClient(SessionClientBase, SyncClient):
    """Calls the API classes make, over one Deribit WebSocket session shared by every thread.

    Opening it connects and applies the session's settings (it raises an ``ApiException`` when
    that fails); afterwards the session keeps itself alive and comes back after every loss.

    :param configuration: the settings (host, credentials, TLS, timeouts, retries, rate limit);
        ``Configuration.get_default_copy()`` when omitted.
    :param url: the WebSocket URL; by default derived from ``Configuration.host``
        (``https://www.deribit.com/api/v2`` -> ``wss://www.deribit.com/ws/api/v2``).
    :param heartbeat: ``public/set_heartbeat`` interval in seconds (at least 10) set on every
        connection, 30 by default as Deribit's usage policy asks; None leaves heartbeats off.
    :param cancel_on_disconnect: enable cancel-on-disconnect (scope ``connection``) on every
        connection; needs credentials.
    :param on_event: called with every :class:`~openapi_client.websocket.events.Event`, on the
        session's callback thread.
    :param max_reconnects: attempts to reconnect after a loss before giving up (state FAILED);
        None (default) never gives up.
    :param reconnect_backoff: the waits between reconnect attempts, as a
        :class:`~openapi_client.RetryPolicy` (its ``backoff_factor``, ``backoff_max``, ``jitter``
        and ``retry_after_max`` are used); :data:`DEFAULT_RECONNECT_BACKOFF` by default.
    :param throttle_delay: the least wait in seconds before reconnecting after Deribit refused
        the handshake with 429 or ended the connection with 10028 (default 5).
    :param liveness_timeout: seconds without any message after which a connection is declared
        dead and replaced; default ``1.5 * heartbeat + 5`` (None when heartbeats are off).
    :param max_message_size: the largest message accepted, in bytes (default 16 MiB); a bigger
        one ends the connection.
    :param open_timeout: seconds to open a connection (TCP, TLS, handshake); default the connect
        part of ``Configuration.request_timeout``.
    :param close_timeout: seconds to wait for the closing handshake (default 2).
    :param keepalive_ping: seconds between WebSocket pings and for their pong (default 20; None
        for none): a backstop for when heartbeats are off.
    :param compression: ``"deflate"`` to offer permessage-deflate; None (default) does not.
    :param pool_threads: threads serving ``async_req=True`` calls.
    :param watchdog: seconds (at least 1) the program may go without :meth:`check_in` before
        the session closes its connection without logging out, so that Deribit's
        cancel-on-disconnect cancels its orders; None (default): no watchdog.
    """

    _session: Session

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
        pool_threads: int = 1,
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
        self._session = Session(
            configuration, settings, self._target, self._open, EventHub(on_event)
        )
        self._check_credentials()
        self._close_asked = False
        self._transport = SessionTransport(configuration, self._session)
        super().__init__(configuration, self._transport, pool_threads)
        self._session.start(self._calls.retry_policy())

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> WebSocketApiClient:
        return self

    def __exit__(
        self,
        exc_type: type | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self, logout: bool = False) -> None:
        """End the session and its connection.

        On Deribit, closing the connection fires cancel-on-disconnect if it is on: the orders
        made through this connection are cancelled. ``logout=True`` sends ``private/logout``
        first, which ends the session without firing it (the orders stay), and invalidates the
        tokens this session obtained (a configured ``access_token`` is kept valid).
        Calls in flight fail; calls made afterwards raise ``ApiValueError``.
        """
        self._close_asked = True
        self._transport.close(logout)
        # The session refuses calls from now on, and says why (closed, or it had given up).
        self._calls.stop_threads()

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """The session's events in order, from the first not yet taken (at most the last 1,000
        are kept); ends after :class:`~openapi_client.websocket.Closed`, or when ``timeout``
        seconds pass without an event. Meant for one consumer at a time."""
        return self._session.hub.iterate(timeout)

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(self, channels: str | Iterable[str], callback: SubscriptionCallback) -> list[str]:
        """Subscribe to ``channels`` and call ``callback(channel, data)`` for every
        notification (on the callback thread); renewed on every reconnect.

        Returns the channels Deribit confirmed.

        :raises ApiValueError: Deribit confirmed none of them.
        """
        wanted = _channels(channels)
        session = self._session
        session.add_subscriptions(wanted, callback)
        try:
            answer = self.call(
                subscription_method(wanted, "subscribe"),
                {"channels": list(wanted)},
                idempotent=True,
            )
        except BaseException:
            session.remove_subscriptions(wanted)
            raise
        return self._subscribed(wanted, answer)

    def unsubscribe(self, channels: str | Iterable[str]) -> None:
        """Stop the notifications of ``channels`` (and their renewal)."""
        wanted = _channels(channels)
        self._session.remove_subscriptions(wanted)
        self.call(
            subscription_method(wanted, "unsubscribe"), {"channels": list(wanted)}, idempotent=True
        )

    # -- any method -----------------------------------------------------------------------------

    @overload
    def call(
        self,
        method: Endpoint,
        params: Mapping[str, Any],
        options: Mapping[str, Any],
        http_info: bool = False,
    ) -> Any: ...

    @overload
    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotent: bool = False,
        timeout: Any = None,
    ) -> dict[str, Any]: ...

    def call(
        self,
        method: Endpoint | str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        http_info: bool = False,
        *,
        idempotent: bool = False,
        timeout: Any = None,
    ) -> Any:
        """Call a Deribit method by name: ``call("public/get_time")`` returns the envelope.

        :param method: e.g. ``"public/status"``; private methods get the session's credentials.
        :param params: the named parameters, sent as given (no client-side validation).
        :param idempotent: whether the call may be sent again after a transient failure (the
            configured retry policy then applies); by default it is sent once, since a call that
            was lost with its connection may or may not have been carried out.
        :param timeout: as ``_request_timeout``.

        (The API classes call this with an endpoint declaration, like on ``ApiClient``.)
        """
        if isinstance(method, Endpoint):
            return self._calls.call(method, params or {}, options or {}, http_info)
        endpoint = self._method_endpoint(method, params, idempotent)
        resolved = None if timeout is None else self._transport.timeout(timeout)
        result: dict[str, Any] = self._calls.invoke(
            endpoint, dict(params or {}), True, True, resolved
        )
        return result

    # -- connections ----------------------------------------------------------------------------

    def _open(self) -> Transport:
        configuration = self.configuration
        return open_transport(
            self._target,
            self._options,
            ssl_context=self._ssl_context,
            server_hostname=tls.server_hostname(configuration),
            user_agent=configuration.user_agent,
            proxy=configuration.proxy,
            proxy_headers=configuration.proxy_headers,
        )


class SessionTransportBase:
    """What the threaded :class:`SessionTransport` and the asyncio one share: a call is one
    JSON-RPC request on the session's connection (waiting for a ready session at most the
    timeout's connect part); only how they wait differs.

    :param configuration: the settings (``request_timeout``, ``client_side_validation``).
    :param session: the session driver whose connection carries the calls.
    """

    def __init__(self, configuration: Configuration, session: Any) -> None:
        self.configuration = configuration
        self.session = session
        self._timeouts: dict[Any, WsTimeout] = {}

    def prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-RPC ``params``: the WebSocket form of a call's arguments."""
        return endpoint.json_params(args, self.configuration.client_side_validation)

    def timeout(self, value: Any) -> WsTimeout:
        if value is None:
            value = self.configuration.request_timeout
        try:
            cached = self._timeouts.get(value)
        except TypeError:  # unhashable: not a timeout, and check_timeout says why
            cached = None
        if cached is not None:
            return cached
        timeout = ws_timeout(value)
        if len(self._timeouts) < 64:
            self._timeouts[value] = timeout
        return timeout

    def _request(
        self, endpoint: Endpoint, request: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], str | None, bool]:
        """``(params, credential, checked)`` of a request: a private call's credential added
        (a fixed token goes with the call), and whether its arguments were checked."""
        configuration = self.configuration
        params = request
        credential = None
        if endpoint.private:
            params, credential = private_params(configuration, request, endpoint.operation)
        # The API classes' arguments were checked against their declaration, when enabled.
        checked = type(endpoint) is not _MethodEndpoint and configuration.client_side_validation
        return params, credential, checked

    @staticmethod
    def _outcome(call: Call, attempt: BaseAttempt, credential: str | None, preload: bool) -> Any:
        """What the call gave: a :class:`Reply`, or a :class:`RawAnswer` without ``preload``.

        :raises OpenApiException: the call's error (an error answer, or no answer).
        """
        attempt.credential = credential or call.credential
        error = call.error
        if error is not None:
            raise error
        if not preload:
            raw = call.raw
            return RawAnswer(raw.encode() if isinstance(raw, str) else raw)
        return Reply(call.message, 200, _NO_HEADERS)

    def explain_refusal(self, error: ApiException, credential: str) -> ApiException:
        return error

    def may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        if not self.session.accepting_calls:
            return False
        return getattr(endpoint, "idempotent", True) is not False


class SessionTransport(SessionTransportBase):
    """The WebSocket transport (a :class:`~openapi_client.core.Transport`), given to the
    threaded session driver (see :class:`SessionTransportBase`)."""

    session: Session

    def send(
        self,
        endpoint: Endpoint,
        request: Mapping[str, Any],
        preload: bool,
        timeout: WsTimeout,
        attempt: Attempt,
    ) -> Any:
        """One request on the session; the rate-limit turn is taken first."""
        if attempt.turn_pending:
            attempt.take_turn()
        params, credential, checked = self._request(endpoint, request)
        call = self.session.call(endpoint.method, params, timeout.connect, timeout.read, checked)
        return self._outcome(call, attempt, credential, preload)

    def reauthenticate(self, credential: str) -> bool:
        return self.session.reauthenticate(credential)

    def close(self, logout: bool = False) -> None:
        """End the session (see :meth:`WebSocketApiClient.close`)."""
        self.session.close(logout)

    def after_fork(self) -> None:
        """In a child process just forked: the session is the parent's. This copy never touches
        its socket, threads or request ids; every call raises ``ApiValueError`` (build a new
        ``WebSocketApiClient`` in the child) and closing does nothing."""
        self.session.after_fork()


def ws_timeout(value: Any) -> WsTimeout:
    """A ``_request_timeout`` value as seconds to wait for a ready session, then the answer."""
    check_timeout(value)
    connect, read = value if isinstance(value, tuple) else (value, value)
    return WsTimeout(float(connect), float(read))


def _check_watchdog(watchdog: float | None) -> None:
    if watchdog is None:
        return
    shortest = session_core.MIN_WATCHDOG  # read here: a test may lower it
    if (
        isinstance(watchdog, bool)
        or not isinstance(watchdog, (int, float))
        or not shortest <= watchdog < float("inf")
    ):
        raise ApiValueError(
            f"watchdog must be None or a number of seconds >= {shortest:g}, got {watchdog!r}"
        )


def _channels(channels: str | Iterable[str]) -> tuple[str, ...]:
    wanted = (channels,) if isinstance(channels, str) else tuple(channels)
    if not wanted or not all(isinstance(channel, str) and channel for channel in wanted):
        raise ApiValueError(f"channels must be one or more non-empty strings, got {channels!r}")
    return wanted


def _check_settings(
    max_reconnects: int | None,
    throttle_delay: float,
    liveness_timeout: float | None,
    max_message_size: int,
) -> None:
    if max_reconnects is not None and (
        isinstance(max_reconnects, bool)
        or not isinstance(max_reconnects, int)
        or max_reconnects < 0
    ):
        raise ApiValueError(
            f"max_reconnects must be None or a whole number >= 0, got {max_reconnects!r}"
        )
    for name, value in (("throttle_delay", throttle_delay), ("liveness_timeout", liveness_timeout)):
        if value is None and name == "liveness_timeout":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ApiValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    if (
        isinstance(max_message_size, bool)
        or not isinstance(max_message_size, int)
        or max_message_size < 1024
    ):
        raise ApiValueError(
            f"max_message_size must be a whole number of bytes >= 1024, got {max_message_size!r}"
        )
