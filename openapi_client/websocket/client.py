"""``WebSocketApiClient``: the API classes' calls as JSON-RPC on one Deribit WebSocket session.

It is the second transport on :class:`~openapi_client.core.ClientCore`, beside the HTTP
:class:`~openapi_client.ApiClient`: validation, credentials, the retry decision, the rate limiter,
error mapping and redaction are the same code. What differs is only how a request travels, so the
generated-style keywords mean this on a WebSocket:

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
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    NamedTuple,
    overload,
)

from openapi_client.configuration import Configuration, check_timeout
from openapi_client.core import Attempt, ClientCore, Reply
from openapi_client.credentials import uses_api_key
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import ApiException, ApiTypeError, ApiValueError
from openapi_client.retry import RetryPolicy
from openapi_client.websocket import tls
from openapi_client.websocket.connection import (
    Connection,
    ConnectOptions,
    Listener,
    answer_error,
    open_connection,
)
from openapi_client.websocket.events import Event, EventHub
from openapi_client.websocket.session import (
    Session,
    Settings,
    State,
    SubscriptionCallback,
    retry_delay,
)
from openapi_client.websocket.url import Target, resolve

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

__all__ = ["DEFAULT_RECONNECT_BACKOFF", "RawAnswer", "WebSocketApiClient", "WsTimeout"]

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


class WebSocketApiClient(ClientCore):
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
        pool_threads: int = 1,
    ) -> None:
        super().__init__(
            configuration if configuration is not None else Configuration.get_default_copy(),
            pool_threads,
        )
        configuration = self.configuration
        if heartbeat is not None:
            from openapi_client.api.endpoints import SET_HEARTBEAT

            heartbeat = SET_HEARTBEAT.json_params({"interval": heartbeat}, True)["interval"]
        _check_settings(max_reconnects, throttle_delay, liveness_timeout, max_message_size)
        self._target: Target = resolve(configuration.host, url)
        self._check_transport_security()
        self._timeouts: dict[Any, WsTimeout] = {}
        default = self._timeout(None)
        self._options = ConnectOptions(
            open_timeout=default.connect if open_timeout is None else float(open_timeout),
            close_timeout=float(close_timeout),
            max_message_size=max_message_size,
            keepalive_ping=keepalive_ping,
            compression=compression,
        )
        self._ssl_context = tls.ssl_context(configuration) if self._target.secure else None
        self._endpoints: dict[tuple[str, bool], _MethodEndpoint] = {}
        self._hub = EventHub(on_event)
        self._session = Session(
            configuration,
            self._open,
            self._hub,
            Settings(heartbeat, cancel_on_disconnect),
            backoff=reconnect_backoff,
            throttle_delay=float(throttle_delay),
            max_reconnects=max_reconnects,
            liveness_timeout=liveness_timeout,
            call_timeout=default.read,
        )
        if cancel_on_disconnect and not self._session.credentials.available:
            raise ApiValueError(
                "cancel_on_disconnect=True needs credentials: set Configuration.access_token, "
                "or Configuration.client_id and client_secret"
            )
        self._session.start(self._retry_policy())

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
        self._session.close(logout, self._options.close_timeout)
        self._close_pool()

    def _after_fork(self) -> None:
        """In a child process just forked: the session is the parent's. This copy never touches
        its socket, threads or request ids; every call raises ``ApiValueError`` (build a new
        ``WebSocketApiClient`` in the child) and :meth:`close` does nothing."""
        super()._after_fork()
        self._session.after_fork()
        self._hub = self._session.hub

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
        return self._session.settings.heartbeat

    @property
    def cancel_on_disconnect(self) -> bool:
        """Whether cancel-on-disconnect is enabled on every connection."""
        return self._session.settings.cancel_on_disconnect

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """The session's events in order, from the first not yet taken (at most the last 1,000
        are kept); ends after :class:`~openapi_client.websocket.Closed`, or when ``timeout``
        seconds pass without an event. Meant for one consumer at a time."""
        return self._hub.iterate(timeout)

    def __repr__(self) -> str:
        return f"WebSocketApiClient(url={self._target.url!r}, state={self.state.value!r})"

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(
        self, channels: str | Iterable[str], callback: SubscriptionCallback
    ) -> list[str]:
        """Subscribe to ``channels`` and call ``callback(channel, data)`` for every
        notification (on the callback thread); renewed on every reconnect.

        Returns the channels Deribit confirmed.

        :raises ApiValueError: Deribit confirmed none of them.
        """
        wanted = _channels(channels)
        subscriptions = self._session.settings.subscriptions
        for channel in wanted:
            subscriptions[channel] = callback
        try:
            confirmed = self._on_ready_connection(
                lambda connection: self._session.subscribe(connection, wanted)
            )
        except BaseException:
            for channel in wanted:
                subscriptions.pop(channel, None)
            raise
        refused = [channel for channel in wanted if channel not in confirmed]
        for channel in refused:
            subscriptions.pop(channel, None)
        if refused and not confirmed:
            raise ApiValueError(f"Deribit subscribed none of {', '.join(refused)}")
        return confirmed

    def unsubscribe(self, channels: str | Iterable[str]) -> None:
        """Stop the notifications of ``channels`` (and their renewal)."""
        wanted = _channels(channels)
        subscriptions = self._session.settings.subscriptions
        for channel in wanted:
            subscriptions.pop(channel, None)
        private = any(channel.startswith("user.") for channel in wanted)
        method = "private/unsubscribe" if private else "public/unsubscribe"
        self.call(method, {"channels": list(wanted)}, idempotent=True)

    def _on_ready_connection(self, action: Callable[[Connection], list[str]]) -> list[str]:
        policy = self._retry_policy()
        timeout = self._timeout(None)
        attempts = 0
        while True:
            attempts += 1
            connection = self._session.ready_connection(timeout.connect)
            try:
                return action(connection)
            except ApiException as error:
                delay = retry_delay(policy, error, attempts)
                if delay is None or not self._session.accepting_calls:
                    raise
                time.sleep(delay)

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
            return super().call(method, params or {}, options or {}, http_info)
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
        resolved = None if timeout is None else self._timeout(timeout)
        result: dict[str, Any] = self._invoke(endpoint, dict(params or {}), True, True, resolved)
        return result

    # -- the transport --------------------------------------------------------------------------

    def _prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-RPC ``params``: the WebSocket form of a call's arguments."""
        return endpoint.json_params(args, self.configuration.client_side_validation)

    def _timeout(self, value: Any) -> WsTimeout:
        if value is None:
            value = self.configuration.request_timeout
        try:
            cached = self._timeouts.get(value)
        except TypeError:  # unhashable: not a timeout, and check_timeout says why
            cached = None
        if cached is not None:
            return cached
        check_timeout(value)
        connect, read = value if isinstance(value, tuple) else (value, value)
        timeout = WsTimeout(float(connect), float(read))
        if len(self._timeouts) < 64:
            self._timeouts[value] = timeout
        return timeout

    def _attempt(
        self,
        endpoint: Endpoint,
        request: Mapping[str, Any],
        preload: bool,
        timeout: WsTimeout,
        attempt: Attempt,
    ) -> Any:
        session = self._session
        connection = session.ready_connection(timeout.connect)
        params = request
        if endpoint.private:
            params, attempt.credential = session.credentials.for_private_call(
                connection, request, endpoint.operation
            )
        method = endpoint.method
        message, raw = connection.request(method, params, timeout.read)
        if "error" in message:
            raise answer_error(message, raw)
        # The API classes' arguments were checked against their declaration, when enabled.
        checked = type(endpoint) is not _MethodEndpoint
        session.observe(
            connection, method, params, checked and self.configuration.client_side_validation
        )
        if not preload:
            return RawAnswer(raw.encode() if isinstance(raw, str) else raw)
        return Reply(message, 200, _NO_HEADERS)

    def _reauthenticate(self, credential: str) -> bool:
        session = self._session
        return session.credentials.reauthenticate(credential, session.connection)

    def _may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        if not self._session.accepting_calls:
            return False
        return getattr(endpoint, "idempotent", True) is not False

    def _open(self, number: int, listener: Listener) -> Connection:
        configuration = self.configuration
        return open_connection(
            self._target,
            self._options,
            number,
            listener,
            ssl_context=self._ssl_context,
            server_hostname=tls.server_hostname(configuration),
            user_agent=configuration.user_agent,
            proxy=configuration.proxy,
        )

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
