"""The session: settings applied on every connection, reconnects, liveness and token refresh.

One supervisor thread per session watches the connection. When it ends (a drop, a server close,
code 4000 "heartbeat close" included, or silence longer than the liveness limit), every call in
flight fails at once with a transport error, :class:`Disconnected` says whether
cancel-on-disconnect may have fired, and the supervisor opens a new connection after an
exponential backoff with jitter, longer after a 429 at the handshake or a 10028. Each new
connection gets the session's settings before calls go ahead: ``public/hello``, authentication,
the heartbeat, cancel-on-disconnect and the subscriptions.

No wait the session makes is longer than :data:`MAX_RECONNECT_DELAY`, whatever a server's
``Retry-After`` or the settings ask, and the supervisor looks at the connection at least every
:data:`SUPERVISOR_TICK` seconds. If the supervisor fails anyway (a fault of the library's), the
session ends clearly: state ``FAILED``, a :class:`Closed` event, calls refused. In a child process
made by ``os.fork()``, the session is the parent's: it refuses every call (see
:meth:`Session.after_fork`).
"""

from __future__ import annotations

import enum
import functools
import itertools
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

from openapi_client._version import __version__
from openapi_client.configuration import Configuration
from openapi_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiTimeoutError,
    ApiTypeError,
    ApiValueError,
)
from openapi_client.redaction import redacted_exception
from openapi_client.retry import RetryPolicy
from openapi_client.websocket.auth import SocketCredentials
from openapi_client.websocket.connection import (
    ERROR_STATUS,
    TOO_MANY_REQUESTS,
    Connection,
    Listener,
    answer_error,
)
from openapi_client.websocket.events import (
    Closed,
    Connected,
    Disconnected,
    EventHub,
    HeartbeatAnswered,
    Reconnecting,
    SessionRestored,
    logger,
    now,
)

__all__ = [
    "CLIENT_NAME",
    "MAX_RECONNECT_DELAY",
    "SUPERVISOR_TICK",
    "Session",
    "Settings",
    "State",
    "liveness_limit",
    "retry_delay",
]

#: The name ``public/hello`` introduces the client with.
CLIENT_NAME = "openapi-client-deribit-session"

#: Seconds of grace beyond 1.5 heartbeat intervals before a silent connection is declared dead.
LIVENESS_MARGIN = 5.0

#: How long :meth:`Session.close` waits for the supervisor thread, in seconds.
_JOIN_SECONDS = 2.0

#: The longest wait before a reconnect, in seconds: a longer ``Retry-After`` (or setting) is cut
#: to this, so that no value a server sends can stall the session for good.
MAX_RECONNECT_DELAY = 3600.0
#: The longest the supervisor sleeps without looking at the connection, in seconds: a connection
#: that ended without the session being told is replaced within this.
SUPERVISOR_TICK = 1.0

#: What a forked child's copy of a session says when it is used.
FORKED = (
    "this WebSocketApiClient was created in another process, before os.fork(); its connection "
    "belongs to that process: build a new WebSocketApiClient in this one"
)

SubscriptionCallback = Callable[[str, Any], Any]


class State(enum.Enum):
    """Where a session stands."""

    #: Opening a connection.
    CONNECTING = "connecting"
    #: Connected; applying the session's settings (calls wait).
    RESTORING = "restoring"
    #: Ready for calls.
    READY = "ready"
    #: The connection was lost; waiting before the next attempt.
    RECONNECTING = "reconnecting"
    #: Ended by :meth:`~openapi_client.websocket.WebSocketApiClient.close` (or inherited by a
    #: process made with ``os.fork()``, where it refuses every call).
    CLOSED = "closed"
    #: Gave up: ``max_reconnects`` reached, or credentials or settings refused.
    FAILED = "failed"


def liveness_limit(heartbeat: float | None) -> float | None:
    """The default liveness limit for a heartbeat interval: ``1.5 * interval + 5`` seconds
    (Deribit sends a ``test_request`` about every interval, the first a little later)."""
    return None if heartbeat is None else 1.5 * heartbeat + LIVENESS_MARGIN


def retry_delay(policy: RetryPolicy, error: ApiException, attempts: int) -> float | None:
    """Seconds to wait before trying again after ``attempts`` ended in ``error``; None: give up."""
    return policy.delay(error, attempts) if policy.should_retry(error, attempts) else None


class Settings:
    """What every connection of the session gets: kept up to date by the session's own calls.

    :ivar heartbeat: ``public/set_heartbeat`` interval in seconds, or None.
    :ivar cancel_on_disconnect: whether to enable it for each connection.
    :ivar subscriptions: channel -> callback.
    """

    def __init__(self, heartbeat: float | None, cancel_on_disconnect: bool) -> None:
        self.heartbeat = heartbeat
        self.cancel_on_disconnect = cancel_on_disconnect
        self.subscriptions: dict[str, SubscriptionCallback] = {}


class Session(Listener):
    """Holds one connection open at a time and restores the settings on each.

    :param configuration: the client's settings (credentials, retries, rate limit, timeouts).
    :param open_connection: opens connection number N for this session (the listener).
    :param hub: where events go.
    :param settings: what to apply on each connection.
    :param backoff: the waits between reconnect attempts (``backoff_factor``, ``backoff_max``,
        ``jitter`` and ``Retry-After`` are used).
    :param throttle_delay: the least wait after a 429 at the handshake or a 10028, in seconds.
    :param max_reconnects: attempts after a loss before giving up; None never gives up.
    :param liveness_timeout: seconds of silence that declare a connection dead; None derives
        it from the heartbeat (:func:`liveness_limit`).
    :param call_timeout: seconds each restoring call may wait for its answer.
    """

    def __init__(
        self,
        configuration: Configuration,
        open_connection: Callable[[int, Listener], Connection],
        hub: EventHub,
        settings: Settings,
        *,
        backoff: RetryPolicy,
        throttle_delay: float,
        max_reconnects: int | None,
        liveness_timeout: float | None,
        call_timeout: float,
    ) -> None:
        self._configuration = configuration
        self._open = open_connection
        self.hub = hub
        self.settings = settings
        self._backoff = backoff
        self._throttle_delay = throttle_delay
        self._max_reconnects = max_reconnects
        self._liveness_timeout = liveness_timeout
        self._call_timeout = call_timeout
        self.credentials = SocketCredentials(configuration, hub, self.send)
        self._numbers = itertools.count(1)
        self._cond = threading.Condition()
        self._stopped = threading.Event()
        self.state = State.CONNECTING
        self.connection: Connection | None = None
        self._failure: str | None = None
        self._supervisor: threading.Thread | None = None
        self._forked = False

    # -- starting -------------------------------------------------------------------------------

    def start(self, policy: RetryPolicy) -> None:
        """Open the first connection and restore the settings on it, retrying transient
        failures as ``policy`` says; then watch it from the supervisor thread.

        :raises ApiException: the session could not be established.
        """
        try:
            self._first_connection(policy)
        except BaseException as failure:  # an interrupt too: nothing is left running
            if not self._stopped.is_set():
                self._end(State.FAILED, f"could not establish the session: {failure!r}")
            raise
        self._supervisor = threading.Thread(
            target=self._supervise, name="openapi_client-ws-session", daemon=True
        )
        self._supervisor.start()

    def _first_connection(self, policy: RetryPolicy) -> None:
        attempts = 0
        while True:
            attempts += 1
            try:
                self._establish()
                return
            except ApiValueError as refused:
                self._end(State.FAILED, f"could not establish the session: {refused}")
                raise
            except ApiException as error:
                delay = retry_delay(policy, error, attempts)
                if delay is None or self._stopped.is_set():
                    self._end(State.FAILED, f"could not establish the session: {error!r}")
                    raise
                logger.info(
                    "opening the WebSocket session failed (%r); again in %.2f s", error, delay
                )
                if self._stopped.wait(min(delay, MAX_RECONNECT_DELAY)):
                    raise

    def _establish(self) -> None:
        """Open a connection and apply every setting; READY when done."""
        with self._cond:
            if self._stopped.is_set():
                raise ApiValueError("the WebSocket session is closed")
            self.state = State.CONNECTING
        number = next(self._numbers)
        connection = self._open(number, self)
        try:
            self.hub.emit(Connected(connection.target.url, number, now()))
            with self._cond:
                self.connection = connection
                self.state = State.RESTORING
            channels = self._restore(connection)
        except BaseException:
            connection.close(1000, "", "closed: the session could not be restored on it")
            connection.wait_lost(_JOIN_SECONDS)  # its Disconnected comes before what follows
            raise
        with self._cond:
            if connection.lost is not None:
                raise ApiConnectionError(
                    f"the connection was lost while the session was restored: "
                    f"{connection.lost.description}"
                )
            if self._stopped.is_set():
                raise ApiValueError("the WebSocket session is closed")
            self.state = State.READY
            self._cond.notify_all()
        self.hub.emit(
            SessionRestored(
                number,
                self.settings.heartbeat,
                bool(connection.cancel_on_disconnect),
                channels,
                now(),
            )
        )

    def _restore(self, connection: Connection) -> tuple[str, ...]:
        settings = self.settings
        self.send(
            connection,
            "public/hello",
            {"client_name": CLIENT_NAME, "client_version": __version__},
        )
        credentials = self.credentials
        credentials.authenticate(connection)
        heartbeat = settings.heartbeat
        if heartbeat is not None:
            self.send(connection, "public/set_heartbeat", {"interval": heartbeat})
        if credentials.available:
            if settings.cancel_on_disconnect:
                self.send(
                    connection, "private/enable_cancel_on_disconnect", {"scope": "connection"}
                )
                connection.cancel_on_disconnect = True
            else:
                connection.cancel_on_disconnect = self._cancel_on_disconnect_of(connection)
        channels = tuple(settings.subscriptions)
        if channels:
            self.subscribe(connection, channels)
        return channels

    def _cancel_on_disconnect_of(self, connection: Connection) -> bool | None:
        """Whether the account default turned cancel-on-disconnect on for ``connection``
        (None when Deribit would not say, e.g. for a key without ``account:read``)."""
        try:
            answer = self.send(
                connection, "private/get_cancel_on_disconnect", {"scope": "connection"}
            )
        except ApiException as error:
            if error.status == 0:
                raise
            logger.info("could not read the cancel-on-disconnect setting: %r", error)
            return None
        result = answer.get("result")
        return bool(result.get("enabled")) if isinstance(result, dict) else None

    # -- requests on a given connection ---------------------------------------------------------

    def send(
        self, connection: Connection, method: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``method`` on ``connection``, its answer or its error raised: for the session's own
        calls (restoring, authenticating), which do not wait for READY."""
        if method.startswith("private/"):
            params, _ = self.credentials.for_private_call(connection, params, method)
        rate_limit = self._configuration.rate_limit
        if rate_limit is not None:
            rate_limit.acquire()
        message, raw = connection.request(method, params, self._call_timeout)
        if "error" in message:
            raise answer_error(message, raw)
        return message

    def subscribe(self, connection: Connection, channels: tuple[str, ...]) -> list[str]:
        """Subscribe ``connection`` to ``channels``; the channels Deribit confirmed."""
        private = any(channel.startswith("user.") for channel in channels)
        method = "private/subscribe" if private else "public/subscribe"
        answer = self.send(connection, method, {"channels": list(channels)})
        result = answer.get("result")
        confirmed = [str(channel) for channel in result] if isinstance(result, list) else []
        missing = [channel for channel in channels if channel not in confirmed]
        if missing:
            logger.warning("Deribit did not confirm the subscription to %s", ", ".join(missing))
        return confirmed

    # -- calls from the client ------------------------------------------------------------------

    def ready_connection(self, timeout: float) -> Connection:
        """The connection to call on, waiting at most ``timeout`` seconds for the session to be
        READY.

        :raises ApiValueError: the session is closed.
        :raises ApiConnectionError: it gave up reconnecting.
        :raises ApiTimeoutError: it was not ready in time.
        """
        if self.state is State.READY:
            connection = self.connection
            if connection is not None:
                return connection
        with self._cond:
            self._cond.wait_for(
                lambda: self.state in (State.READY, State.CLOSED, State.FAILED), timeout
            )
            state = self.state
            if state is State.READY and self.connection is not None:
                return self.connection
        if state is State.CLOSED:
            if self._forked:
                raise ApiValueError(FORKED)
            raise ApiValueError(
                "the WebSocket session is closed; create a new WebSocketApiClient"
            )
        if state is State.FAILED:
            raise ApiConnectionError(f"the WebSocket session gave up: {self._failure}")
        raise ApiTimeoutError(
            f"the WebSocket session was not ready within {timeout:g} s (it is {state.value})"
        )

    @property
    def accepting_calls(self) -> bool:
        """False once the session is closed or has given up: nothing is worth a retry then."""
        return self.state not in (State.CLOSED, State.FAILED)

    def observe(
        self,
        connection: Connection,
        method: str,
        params: Mapping[str, Any],
        checked: bool = False,
    ) -> None:
        """Adopt what a successful call changed, so that reconnects restore it (``checked``:
        ``params`` were validated against the method's declaration already)."""
        settings = self.settings
        if method == "public/set_heartbeat":
            interval = params.get("interval") if checked else _heartbeat_interval(params)
            if interval is not None:
                settings.heartbeat = interval
        elif method == "public/disable_heartbeat":
            settings.heartbeat = None
        elif method in _COD_METHODS:
            enabled = method == "private/enable_cancel_on_disconnect"
            connection.cancel_on_disconnect = enabled
            if params.get("scope", "connection") == "connection":
                settings.cancel_on_disconnect = enabled

    # -- Listener: called by the connection's reader --------------------------------------------

    def idle_limit(self) -> float | None:
        if self._liveness_timeout is not None:
            return self._liveness_timeout
        return liveness_limit(self.settings.heartbeat)

    def notification(self, connection: Connection, params: Mapping[str, Any]) -> None:
        channel = params.get("channel")
        callback = self.settings.subscriptions.get(channel) if isinstance(channel, str) else None
        if callback is None:
            logger.debug("a notification on %r, which nothing subscribed to", channel)
            return
        self.hub.run_callback(callback, channel, params.get("data"))

    def heartbeat_answered(self, connection: Connection, seconds: float) -> None:
        self.hub.emit(HeartbeatAnswered(connection.number, seconds, now()))

    def connection_lost(self, connection: Connection) -> None:
        lost = connection.lost
        assert lost is not None
        may_have_fired = (
            connection.authorized
            and connection.cancel_on_disconnect is not False
            and not connection.logged_out
        )
        self.hub.emit(
            Disconnected(connection.number, lost.code, lost.description, may_have_fired, now())
        )
        self._replace(connection)

    def _replace(self, connection: Connection) -> None:
        """Have the supervisor replace ``connection``, which ended, if the session used it."""
        with self._cond:
            if connection is self.connection and self.state is State.READY:
                self.state = State.RECONNECTING
                self._cond.notify_all()

    # -- the supervisor -------------------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            self._watch()
        except BaseException as error:  # a fault of the library's: end clearly, never silently
            logger.error(
                "the supervisor of the WebSocket session failed", exc_info=redacted_exception(error)
            )
            self._end(State.FAILED, f"the session's supervisor failed ({type(error).__name__})")

    def _watch(self) -> None:
        """Renew the token when due, and replace the connection when it ends."""
        while not self._stopped.is_set():
            with self._cond:
                while self.state is State.READY and not self._stopped.is_set():
                    connection = self.connection
                    if connection is not None and connection.wait_lost(0):
                        # Ended, and the session was not told (it would not be READY).
                        logger.warning("%r ended unannounced; replacing it", connection)
                        self.state = State.RECONNECTING
                        break
                    due = self.credentials.refresh_due()
                    wait = SUPERVISOR_TICK
                    if due is not None:
                        wait = min(wait, due - time.monotonic())
                        if wait <= 0:
                            break
                    self._cond.wait(wait)
                state, connection = self.state, self.connection
            if self._stopped.is_set():
                return
            if state is State.READY and connection is not None:
                try:
                    self.credentials.refresh(connection)
                except ApiException as error:
                    logger.warning("renewing the token failed: %r", error)
                    if connection.lost is None and error.status != 0:
                        connection.close(
                            1000, "", f"closed: the token could not be renewed ({error!r})"
                        )
                        self._stopped.wait(min(self._throttle_delay, MAX_RECONNECT_DELAY))
                continue
            if state is State.RECONNECTING and connection is not None:
                self._reconnect(connection)
            elif state is not State.READY:
                return  # closed or failed

    def _reconnect(self, lost: Connection) -> None:
        error: ApiException = ApiConnectionError(
            lost.lost.description if lost.lost is not None else "the connection was lost"
        )
        throttled = lost.throttled
        attempt = 0
        while not self._stopped.is_set():
            attempt += 1
            if self._max_reconnects is not None and attempt > self._max_reconnects:
                self._end(
                    State.FAILED,
                    f"gave up after {self._max_reconnects} reconnect attempts: {error!r}",
                )
                return
            delay = self._backoff.delay(error, attempt)
            if delay is None:  # Retry-After beyond retry_after_max: wait that long, no more
                logger.warning(
                    "the server asked for a wait of %s s before the next connection "
                    "(Retry-After), beyond retry_after_max; waiting %g s",
                    error.retry_after,
                    self._backoff.retry_after_max,
                )
                delay = self._backoff.retry_after_max
            if throttled:
                delay = max(delay, self._throttle_delay)
            delay = min(delay, MAX_RECONNECT_DELAY)
            with self._cond:
                if self._stopped.is_set():
                    return
                self.state = State.RECONNECTING
            self.hub.emit(Reconnecting(attempt, delay, _one_line(error), now()))
            if self._stopped.wait(delay):
                return
            try:
                self._establish()
                return
            except ApiValueError as refused:
                if not self._stopped.is_set():  # a setting refused, not a close meanwhile
                    self._end(State.FAILED, f"the session could not be restored: {refused}")
                return
            except ApiException as failure:
                error = failure
                connection = self.connection
                throttled = failure.status == 429 or failure.error_code == TOO_MANY_REQUESTS or (
                    connection is not None and connection.throttled
                )
                if failure.status != 0 and not (throttled or failure.retriable):
                    self._end(State.FAILED, f"the session could not be restored: {failure!r}")
                    return
                logger.info("reconnect attempt %d failed: %r", attempt, failure)

    # -- ending ---------------------------------------------------------------------------------

    def close(self, logout: bool, close_timeout: float) -> None:
        """End the session: optionally ``private/logout`` first, then close the connection."""
        with self._cond:
            if self._stopped.is_set():
                return
            self._stopped.set()
            self.state = State.CLOSED
            self._cond.notify_all()
            connection = self.connection
        if connection is not None and connection.lost is None:
            params = self.credentials.logout_params() if logout else None
            if params is not None:
                try:
                    connection.logged_out = True
                    connection.send_only("private/logout", params)
                    connection.wait_lost(close_timeout)  # Deribit closes the connection
                except ApiException as error:
                    logger.info("private/logout failed: %r", error)
            connection.close(1000, "", "closed by the client")
            connection.wait_lost(close_timeout)
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(_JOIN_SECONDS)
        self._end(State.CLOSED, "closed by the client")

    def after_fork(self) -> None:
        """In a child process just forked: the connection, its socket and the session's threads
        are the parent's. Forget them without touching them (the parent goes on using them),
        and refuse every call from now on with an ``ApiValueError`` that says to build a new
        client. Nothing here waits for a lock a parent's thread may have held."""
        self._forked = True
        self._cond = threading.Condition()
        self._stopped = threading.Event()
        self._stopped.set()
        self.state = State.CLOSED
        self._failure = FORKED
        self.connection = None
        self._supervisor = None
        self.hub = EventHub(None)
        self.hub.close()

    def _end(self, state: State, reason: str) -> None:
        with self._cond:
            if state is State.FAILED and self.state is State.CLOSED:
                return
            self._stopped.set()
            self.state = state
            self._failure = reason
            self._cond.notify_all()
            connection = self.connection
        if state is State.FAILED:
            logger.error("the WebSocket session ended: %s", reason)
            if connection is not None and connection.lost is None:
                connection.close(1000, "", f"closed: {reason}")
                connection.wait_lost(_JOIN_SECONDS)
        self.hub.emit(Closed(reason, state is State.FAILED, now()))
        self.hub.close()


_COD_METHODS = frozenset(
    {"private/enable_cancel_on_disconnect", "private/disable_cancel_on_disconnect"}
)


def _heartbeat_interval(params: Mapping[str, Any]) -> float | None:
    """The interval of ``public/set_heartbeat``'s ``params`` when it is one Deribit accepts (a
    number >= 10): only such an interval is kept for later connections and drives the liveness
    limit, whatever a server answered to another (a negative one declared every connection dead
    at once)."""
    value: Any = params.get("interval")  # a number once checked
    try:
        _interval_check()(value)
    except (ApiValueError, ApiTypeError) as refused:
        logger.warning(
            "public/set_heartbeat was answered, but the session keeps its heartbeat: %s", refused
        )
        return None
    interval: float = value
    return interval


@functools.cache
def _interval_check() -> Callable[[Any], None]:
    """The check of ``public/set_heartbeat``'s ``interval``, as its declaration states it."""
    from openapi_client.api.endpoints import SET_HEARTBEAT

    (interval,) = (param for param in SET_HEARTBEAT.params if param.name == "interval")
    return interval.check


def _one_line(error: BaseException) -> str:
    """The headline of ``error``; for a refused handshake, with its HTTP status."""
    text = str(error)
    line = text.splitlines()[0] if text else repr(error)
    if isinstance(error, ApiException) and error.status not in (0, ERROR_STATUS):
        line += f" ({error.reason})" if error.reason else f" (HTTP {error.status})"
    return line
