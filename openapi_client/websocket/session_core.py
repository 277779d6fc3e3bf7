"""The session's decisions, without I/O: what to send, when, and what it means.

:class:`SessionCore` holds every rule of a Deribit WebSocket session: JSON-RPC ids and the routing
of answers, ``test_request`` answered with ``public/test``, the restore sequence on every new
connection (``public/hello``, authentication, the heartbeat, cancel-on-disconnect, the
subscriptions) before queued calls go ahead, what cancel-on-disconnect may have done when a
connection ends, liveness, backoff with jitter and the throttle floor after 429/10028, token
renewal, re-authentication after 13009, the watchdog, what a successful call changes, and the
events a program sees. It never reads a clock (time is an input, ``now``, in monotonic seconds),
sleeps, locks, or touches a socket, a thread, ``asyncio`` or ``websockets``: a *driver* does the
I/O and feeds it.

Inputs are methods (:meth:`~SessionCore.start`, :meth:`~SessionCore.opened`,
:meth:`~SessionCore.receive`, :meth:`~SessionCore.timer`, :meth:`~SessionCore.submit`, ...).
Outputs accumulate until the driver takes them with :meth:`~SessionCore.take_outputs`, in order:

* :class:`Send` a frame on a connection, :class:`Open` a connection, :class:`Close` one (closing
  handshake), :class:`Abort` one (cut at once);
* a :class:`Call` that is complete (its ``message`` or ``error`` set): wake its caller;
* an event (:mod:`openapi_client.websocket.events`): publish it;
* :class:`Deliver`: run a subscription callback;
* :data:`WAKE`: something is due sooner than :meth:`~SessionCore.next_deadline` said last.

``SESSION_CORE_API.md`` at the top of the work tree describes the contract a driver keeps.
"""

from __future__ import annotations

import collections
import enum
import functools
import json
import logging
import math
import random
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Callable, NamedTuple, Union

from openapi_client._version import __version__
from openapi_client.configuration import Configuration
from openapi_client.credentials import (
    Token,
    key_grant,
    refresh_grant,
    renewal_retry_at,
    token_from_grant,
    uses_api_key,
    with_clock_hint,
)
from openapi_client.endpoint import SessionEffect
from openapi_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiTimeoutError,
    ApiTypeError,
    ApiValueError,
    OpenApiException,
)
from openapi_client.redaction import redact, redacted_exception, register_credentials_in
from openapi_client.retry import RetryPolicy
from openapi_client.websocket.events import (
    Authenticated,
    Closed,
    Connected,
    Disconnected,
    Event,
    HeartbeatAnswered,
    Reconnecting,
    SessionEvicted,
    SessionRestored,
    TokenRefreshed,
    WatchdogExpired,
    logger,
    redacted,
)
from openapi_client.websocket.jsonrpc import (
    ERROR_STATUS,
    MAX_REQUEST_BYTES,
    REQUEST_HEAD,
    TOO_MANY_REQUESTS,
    Data,
    answer_error,
    caused_by,
    check_size,
    error_code,
    preview,
    request_tail,
)

__all__ = [
    "CLIENT_NAME",
    "FORKED",
    "LIVENESS_MARGIN",
    "MAX_RECONNECT_DELAY",
    "MIN_WATCHDOG",
    "WAKE",
    "Abort",
    "Call",
    "Close",
    "CoreSettings",
    "Deliver",
    "Log",
    "Open",
    "Output",
    "Send",
    "SessionCore",
    "State",
    "decode",
    "fixed_token",
    "liveness_limit",
    "private_params",
    "retry_delay",
    "subscription_method",
    "uses_key",
]

#: The name ``public/hello`` introduces the client with.
CLIENT_NAME = "openapi-client-deribit-session"
#: Seconds of grace beyond 1.5 heartbeat intervals before a silent connection is declared dead.
LIVENESS_MARGIN = 5.0
#: The longest wait before a reconnect, in seconds: a longer ``Retry-After`` (or setting) is cut
#: to this, so that no value a server sends can stall the session for good.
MAX_RECONNECT_DELAY = 3600.0
#: The shortest watchdog period, in seconds.
MIN_WATCHDOG = 1.0
#: Seconds a connection being closed gets beyond the close timeout (which the driver's transport
#: keeps) before the session cuts it and counts it as ended.
CLOSE_GRACE = 1.0
#: How often calls whose caller stopped waiting (an interrupt, a cancelled task) are swept out.
SWEEP_SECONDS = 1.0

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
    #: The watchdog closed the connection: calls are refused until the next ``check_in()``.
    WATCHDOG_EXPIRED = "watchdog_expired"
    #: Ended by :meth:`~openapi_client.websocket.WebSocketApiClient.close` (or inherited by a
    #: process made with ``os.fork()``, where it refuses every call).
    CLOSED = "closed"
    #: Gave up: ``max_reconnects`` reached, or credentials or settings refused.
    FAILED = "failed"


_CONNECTING, _RESTORING, _READY, _RECONNECTING = (
    State.CONNECTING,
    State.RESTORING,
    State.READY,
    State.RECONNECTING,
)
_EXPIRED, _CLOSED, _FAILED = State.WATCHDOG_EXPIRED, State.CLOSED, State.FAILED
#: The states in which calls are refused at once.
_REFUSING = frozenset({_EXPIRED, _CLOSED, _FAILED})


# -- outputs ----------------------------------------------------------------------------------


class Send(NamedTuple):
    """Send ``text`` as one text frame on connection number ``connection`` (if it is open)."""

    connection: int
    text: str


class Open(NamedTuple):
    """Open connection number ``connection``; then feed :meth:`SessionCore.opened` or
    :meth:`SessionCore.open_failed`. Only :meth:`SessionCore.timer` asks for it."""

    connection: int


class Close(NamedTuple):
    """Start the closing handshake of ``connection`` (code and reason in the close frame); cut
    it when the close timeout passes; then feed :meth:`SessionCore.lost`."""

    connection: int
    code: int
    reason: str


class Abort(NamedTuple):
    """Cut ``connection`` at once (a close frame first if it can go without waiting). The core
    already counts it as ended: a later :meth:`SessionCore.lost` for it is ignored."""

    connection: int
    code: int
    reason: str


class Deliver(NamedTuple):
    """Run ``callback(channel, data)`` (a subscription's), where callbacks run."""

    callback: SubscriptionCallback
    channel: str
    data: Any


class Log(NamedTuple):
    """Write a line on the session's logger (``openapi_client.websocket``): :meth:`write`."""

    level: int
    message: str
    args: tuple[Any, ...]
    exc_info: BaseException | None = None

    def write(self) -> None:
        """Write it (redacted, as every line of that logger)."""
        exc_info = None if self.exc_info is None else redacted_exception(self.exc_info)
        logger.log(self.level, self.message, *self.args, exc_info=exc_info)


class _Wake:
    __slots__ = ()

    def __repr__(self) -> str:
        return "WAKE"


#: Something is due sooner than the last :meth:`SessionCore.next_deadline`: ask again.
WAKE = _Wake()


class Call:
    """A call a program makes on the session, from submission to its answer.

    The driver builds it (outside any lock: the parameters are encoded here), sets ``handle``
    to whatever wakes its caller, passes it to :meth:`SessionCore.submit`, and reads the
    outcome once the core hands it back as an output (or :meth:`SessionCore.expire` says it is
    over): ``message`` and ``raw`` (the answer; an error answer is ``error`` already), or
    ``error`` (the library's exception, to raise).

    :param method: e.g. ``"public/set_heartbeat"``.
    :param params: the JSON-RPC ``params`` (with ``access_token`` already in for a fixed token).
    :param connect_timeout: seconds to wait for a ready session.
    :param read_timeout: seconds to wait for the answer once sent (None: no limit).
    :param checked: whether ``params`` were checked against the method's declaration (a
        declared effect then trusts them).
    :raises ApiValueError: ``params`` cannot be sent as JSON.
    """

    __slots__ = (
        "_body",
        "answer_by",
        "checked",
        "connect_timeout",
        "credential",
        "done",
        "error",
        "handle",
        "id",
        "link",
        "message",
        "method",
        "params",
        "queued",
        "raw",
        "read_timeout",
        "ready_by",
    )

    def __init__(
        self,
        method: str,
        params: Mapping[str, Any],
        connect_timeout: float,
        read_timeout: float | None,
        checked: bool = False,
    ) -> None:
        self.method = method
        self.params = params
        self._body = request_tail(method, params)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.checked = checked
        self.handle: Any = None
        self.id = 0
        self.link: _Link | None = None
        self.queued = False
        self.ready_by = math.inf
        self.answer_by = math.inf
        #: The credential it went with (a connection's token, or a fixed token), for 13009.
        self.credential: str | None = None
        self.done = False
        self.message: dict[str, Any] | None = None
        self.raw: Data = ""
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        status = "done" if self.done else ("queued" if self.queued else f"id {self.id}")
        return f"Call({self.method!r}, {status})"

    @property
    def connection(self) -> int | None:
        """The number of the connection it was sent on (None while queued)."""
        link = self.link
        return None if link is None else link.number

    @property
    def deadline(self) -> float:
        """When its caller should ask :meth:`SessionCore.expire`: the end of the wait for a
        ready session while it is queued, then the end of the wait for its answer."""
        return self.ready_by if self.queued else self.answer_by


Output = Union[Send, Open, Close, Abort, Deliver, Log, _Wake, Call, Event]


class CoreSettings(NamedTuple):
    """What a session is, fixed when it is made.

    :ivar url: the WebSocket URL (for :class:`Connected`).
    :ivar display: ``host:port``, for messages.
    :ivar heartbeat: ``public/set_heartbeat`` interval set on every connection, or None.
    :ivar cancel_on_disconnect: enable it on every connection.
    :ivar reconnect_backoff: the waits between reconnect attempts.
    :ivar throttle_delay: the least wait after a 429 at the handshake or a 10028.
    :ivar max_reconnects: attempts after a loss before giving up; None never gives up.
    :ivar liveness_timeout: seconds of silence that declare a connection dead; None derives it
        from the heartbeat (:func:`liveness_limit`).
    :ivar call_timeout: seconds each of the session's own requests may wait for its answer.
    :ivar close_timeout: seconds the closing handshake may take (after a logout: the wait for
        the server to close).
    :ivar watchdog: seconds without a check-in after which the connection is closed; None: off.
    """

    url: str
    display: str
    heartbeat: float | None = None
    cancel_on_disconnect: bool = False
    reconnect_backoff: RetryPolicy = RetryPolicy()
    throttle_delay: float = 5.0
    max_reconnects: int | None = None
    liveness_timeout: float | None = None
    call_timeout: float = 10.0
    close_timeout: float = 2.0
    watchdog: float | None = None


# -- what a connection is to the core ----------------------------------------------------------

_OPENING, _LINK_RESTORING, _LINK_READY, _CLOSING, _ENDED = range(5)

# The steps of the restore sequence, in order.
_HELLO, _AUTH, _HEARTBEAT, _COD, _SUBSCRIBE = "hello", "auth", "heartbeat", "cod", "subscribe"
# The session's other requests.
_RENEW, _REAUTH, _DISCARD = "renew", "reauth", "discard"


class _Link:
    """One connection, as the core sees it."""

    __slots__ = (
        "authorized",
        "channels",
        "close_deadline",
        "closing",
        "cod",
        "credential",
        "fixed_token",
        "last_message",
        "logged_out",
        "number",
        "renewal_failed",
        "restore_error",
        "send_at",
        "state",
        "step",
        "step_deadline",
        "steps",
        "throttled",
        "token_confirmed",
    )

    def __init__(self, number: int) -> None:
        self.number = number
        self.state = _OPENING
        self.last_message = 0.0
        self.fixed_token: str | None = None
        #: The access token that authenticated it (``public/auth``), if any.
        self.credential: str | None = None
        #: Whether that token answered a private call (so a 13009 for it means eviction).
        self.token_confirmed = False
        #: Whether private calls are authorized on it (authenticated, or tokens sent per call).
        self.authorized = False
        #: Cancel-on-disconnect on it: True, False, or None when unknown.
        self.cod: bool | None = None
        #: Whether ``private/logout`` was sent (Deribit then closes it without cancelling).
        self.logged_out = False
        #: Whether Deribit answered 10028 on it: reconnect after a longer wait.
        self.throttled = False
        self.renewal_failed = False
        #: Why the client closes it (the description of its end), once it does.
        self.closing: str | None = None
        self.close_deadline = math.inf
        self.steps: list[str] = []
        self.step = 0
        self.step_deadline = math.inf
        #: When the next restore request may go (the rate limit's turn), or inf.
        self.send_at = math.inf
        self.restore_error: OpenApiException | None = None
        self.channels: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        return self.state in (_LINK_RESTORING, _LINK_READY)


class _Request:
    """One of the session's own requests: a restore step, a renewal, a re-authentication, or
    one whose answer nobody reads (``public/test`` for a ``test_request``, the logout)."""

    __slots__ = ("deadline", "grant", "id", "kind", "link", "sent_at", "ticket")

    def __init__(
        self, request_id: int, kind: str, link: _Link, sent_at: float, deadline: float
    ) -> None:
        self.id = request_id
        self.kind = kind
        self.link = link
        self.sent_at = sent_at
        self.deadline = deadline
        #: For ``public/auth``: ``"refresh"`` or ``"key"`` (the grant sent), and the key grant's
        #: timestamp for a clock hint.
        self.grant: tuple[str, int | None] = ("", None)
        #: For a re-authentication: the call-like ticket its caller waits on.
        self.ticket: Call | None = None


_UNDECODED: Any = object()
_EMPTY: list[Output] = []


class SessionCore:
    """Every decision of one Deribit WebSocket session; see the module's docstring.

    :param configuration: read for the credentials (each time: a token set later is used) and
        the rate limit of the session's own requests.
    :param settings: what the session is.
    :param rand: a random number in [0, 1) for the backoff's jitter (tests inject their own).
    """

    def __init__(
        self,
        configuration: Configuration,
        settings: CoreSettings,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._configuration = configuration
        self.settings = settings
        self._rand = rand
        self.state = _CONNECTING
        #: The heartbeat interval every new connection gets (kept up to date by calls).
        self.heartbeat = settings.heartbeat
        #: Whether every new connection enables cancel-on-disconnect.
        self.cancel_on_disconnect = settings.cancel_on_disconnect
        #: channel -> callback, renewed on every connection.
        self.subscriptions: dict[str, SubscriptionCallback] = {}
        #: Why the session ended, once it has (CLOSED or FAILED).
        self.failure: str | None = None
        #: The exception that ended the first connection's attempts (the constructor raises it).
        self.failure_error: OpenApiException | None = None
        #: Whether the session has ended for good and said so (:class:`Closed` emitted).
        self.finished = False
        self.forked = False
        self._out: list[Output] = []
        self._armed = math.inf
        self._next_id = 1
        self._pending: dict[int, Call | _Request] = {}
        self._queue: collections.deque[Call] = collections.deque()
        self._links: dict[int, _Link] = {}
        self._link: _Link | None = None
        self._number = 0
        self._first = True
        self._first_policy = RetryPolicy(total=0)
        self._first_attempts = 0
        self._attempt = 0
        self._reconnect_at = math.inf
        self._token: Token | None = None
        self._renewal: _Request | None = None
        self._logout_until = math.inf
        self._closed_reason = "closed by the client"
        self._checked_in_at = 0.0
        self._sweep_at = math.inf

    # -- the driver's side: outputs and time ----------------------------------------------------

    def take_outputs(self) -> list[Output]:
        """What to do, in order, since the last call (the list is the caller's)."""
        out = self._out
        if not out:
            return _EMPTY
        self._out = []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must be called next (monotonic seconds), None: not before some
        other input. A driver may call it earlier: nothing happens before its time."""
        times = [self._reconnect_at, self._logout_until]
        if self._pending or self._queue:
            times.append(self._sweep_at)
        limit = self.liveness_limit()
        for link in self._links.values():
            times.append(link.step_deadline)
            times.append(link.send_at)
            times.append(link.close_deadline)
            if limit is not None and link.open:
                times.append(link.last_message + limit)
        renewal = self._renewal
        due = renewal.deadline if renewal is not None else self._renewal_due_at()
        if due is not None:
            times.append(due)
        watchdog = self.watchdog_deadline()
        if watchdog is not None:
            times.append(watchdog)
        soonest = min(times)
        self._armed = soonest
        return None if soonest == math.inf else soonest

    def _at(self, deadline: float) -> None:
        """Something is due at ``deadline``: have the driver look sooner if it must."""
        if deadline < self._armed:
            self._armed = deadline
            self._out.append(WAKE)

    def liveness_limit(self) -> float | None:
        """Seconds of silence after which a connection is declared dead (None: never)."""
        timeout = self.settings.liveness_timeout
        return timeout if timeout is not None else liveness_limit(self.heartbeat)

    # -- starting, opening ----------------------------------------------------------------------

    def start(self, now: float, first_attempts: RetryPolicy) -> None:
        """Begin: the first connection is opened at the next :meth:`timer` (:data:`WAKE`).
        Failures of the first connection are retried as ``first_attempts`` says (no
        :class:`Reconnecting` events); when it gives up, the session is FAILED and
        :attr:`failure_error` is what to raise."""
        self._first_policy = first_attempts
        self._checked_in_at = now
        self._reconnect_at = now
        self._at(now)

    def timer(self, now: float) -> None:
        """Do what is due at ``now``."""
        if now >= self._reconnect_at:
            self._reconnect_at = math.inf
            self._open_next()
        for link in list(self._links.values()):
            self._link_timers(link, now)
        renewal = self._renewal
        if renewal is not None and now >= renewal.deadline:
            self._pending.pop(renewal.id, None)
            self._renewal = None
            self._renewal_failed(
                ApiTimeoutError(
                    f"public/auth: {self.settings.display} did not answer within "
                    f"{self.settings.call_timeout:g} s"
                ),
                now,
            )
        due = self._renewal_due_at()
        if due is not None and now >= due:
            self._renew(now)
        if now >= self._logout_until:
            self._logout_until = math.inf
            for link in self._live_links():
                self._close_link(link, 1000, "", self._closed_reason, now)
        if now >= self._sweep_at or (self._sweep_at == math.inf and (self._pending or self._queue)):
            self._sweep(now)
        self.watchdog_check(now)

    def _open_next(self) -> None:
        self._number += 1
        link = _Link(self._number)
        self._links[link.number] = link
        self._link = link
        self.state = _CONNECTING
        if self._first:
            self._first_attempts += 1
        self._out.append(Open(link.number))

    def opened(self, number: int, now: float, fixed_token: str | None = None) -> None:
        """Connection ``number`` is open (handshake done). ``fixed_token``: the token to send
        with private calls when the configuration has one (``access_token``, or what
        ``token_provider`` gave, called by the driver where a call may block)."""
        link = self._links.get(number)
        if link is None or link.state is not _OPENING:
            self._out.append(Abort(number, 1000, ""))
            return
        if self.state in _REFUSING or link is not self._link:
            # Closed (or the watchdog fired) while it opened: never announced, gone at once.
            link.state = _ENDED
            del self._links[number]
            self._out.append(Abort(number, 1000, ""))
            self._finish_if_closed(now)
            return
        link.state = _LINK_RESTORING
        link.last_message = now
        link.fixed_token = fixed_token or None
        self.state = _RESTORING
        self._emit(Connected(self.settings.url, number, now))
        limit = self.liveness_limit()
        if limit is not None:
            self._at(now + limit)
        link.steps = self._restore_steps()
        link.step = 0
        self._next_step(link, now)

    def open_failed(self, number: int, error: OpenApiException, now: float) -> None:
        """Connection ``number`` could not be opened: ``error`` says why (an HTTP status for a
        refused handshake, status 0 when no connection was made, ``ApiValueError`` for a setting
        or credential the client refuses)."""
        link = self._links.pop(number, None)
        if link is None:
            return
        link.state = _ENDED
        if link is not self._link or self.state in _REFUSING:
            self._finish_if_closed(now)
            return
        self._attempt_failed(error, link, now)

    # -- restoring a connection -----------------------------------------------------------------

    def _restore_steps(self) -> list[str]:
        steps = [_HELLO, _AUTH]
        if self.heartbeat is not None:
            steps.append(_HEARTBEAT)
        if self.credentials_available:
            steps.append(_COD)
        if self.subscriptions:
            steps.append(_SUBSCRIBE)
        return steps

    def _next_step(self, link: _Link, now: float) -> None:
        """Send the request of ``link``'s current restore step (when the rate limit lets it),
        or finish the restore."""
        while link.step < len(link.steps):
            request = self._step_request(link, link.steps[link.step])
            if request is None:  # nothing to send for it (e.g. no API key to authenticate)
                link.step += 1
                continue
            rate_limit = self._configuration.rate_limit
            delay = rate_limit.reserve() if rate_limit is not None else 0.0
            if delay > 0.0:
                link.send_at = now + min(delay, MAX_RECONNECT_DELAY)
                self._at(link.send_at)
                return
            method, params, kind, grant = request
            self._send_step(link, method, params, kind, grant, now)
            return
        self._restored(link, now)

    def _step_request(
        self, link: _Link, step: str
    ) -> tuple[str, dict[str, Any], str, tuple[str, int | None]] | None:
        """``(method, params, kind, grant)`` of a restore step, None when it sends nothing."""
        no_grant: tuple[str, int | None] = ("", None)
        if step == _HELLO:
            params: dict[str, Any] = {"client_name": CLIENT_NAME, "client_version": __version__}
            return "public/hello", params, _HELLO, no_grant
        if step == _AUTH:
            if not self.uses_key:
                link.authorized = self.credentials_available
                return None
            method, params, grant = self._auth_request()
            return method, params, _AUTH, grant
        if step == _HEARTBEAT:
            if self.heartbeat is None:
                return None
            return "public/set_heartbeat", {"interval": self.heartbeat}, _HEARTBEAT, no_grant
        if step == _COD:
            method = (
                "private/enable_cancel_on_disconnect"
                if self.cancel_on_disconnect
                else "private/get_cancel_on_disconnect"
            )
            return method, self._private(link, {"scope": "connection"}), _COD, no_grant
        channels = tuple(self.subscriptions)
        link.channels = channels
        if not channels:
            return None
        method = subscription_method(channels, "subscribe")
        params = {"channels": list(channels)}
        if method.startswith("private/"):
            params = self._private(link, params)
        return method, params, _SUBSCRIBE, no_grant

    def _auth_request(
        self, key_only: bool = False
    ) -> tuple[str, dict[str, Any], tuple[str, int | None]]:
        """``public/auth``: with the refresh token while one is held, else with the key."""
        token = self._token
        if token is not None and token.refresh_token and not key_only:
            return "public/auth", refresh_grant(token.refresh_token), ("refresh", None)
        grant = key_grant(self._configuration)
        timestamp = grant.get("timestamp")
        return "public/auth", grant, ("key", timestamp if isinstance(timestamp, int) else None)

    def _send_step(
        self,
        link: _Link,
        method: str,
        params: Mapping[str, Any],
        kind: str,
        grant: tuple[str, int | None],
        now: float,
    ) -> None:
        try:
            request = self._send_request(link, method, params, kind, now)
        except ApiValueError as refused:
            self._restore_failed(link, refused, now)
            return
        request.grant = grant
        link.step_deadline = request.deadline

    def _send_request(
        self, link: _Link, method: str, params: Mapping[str, Any], kind: str, now: float
    ) -> _Request:
        """Send one of the session's own requests on ``link``."""
        request_id = self._next_id
        self._next_id = request_id + 1
        text = f"{REQUEST_HEAD}{request_id}{request_tail(method, params)}"
        request = _Request(request_id, kind, link, now, now + self.settings.call_timeout)
        self._pending[request_id] = request
        self._out.append(Send(link.number, text))
        if kind is not _DISCARD:
            self._at(request.deadline)
        return request

    def _private(self, link: _Link, params: dict[str, Any]) -> dict[str, Any]:
        token = link.fixed_token
        if token is not None:
            params["access_token"] = token
        return params

    def _step_answered(
        self, request: _Request, message: dict[str, Any], raw: Data, now: float
    ) -> None:
        link = request.link
        link.step_deadline = math.inf
        kind = request.kind
        if kind is _AUTH:
            token = self._auth_answered(request, message, raw, now)
            if token is None:
                return  # the key grant follows the refused refresh grant
            if not isinstance(token, Token):
                self._restore_failed(link, token, now)
                return
            self._adopt(link, token, now)
            link.step += 1
            self._next_step(link, now)
            return
        if "error" in message:
            error = answer_error(message, raw)
            if kind is _COD and not self.cancel_on_disconnect:
                self._log(
                    logging.INFO, "could not read the cancel-on-disconnect setting: %r", error
                )
                link.cod = None
                link.step += 1
                self._next_step(link, now)
                return
            self._restore_failed(link, error, now)
            return
        result = message.get("result")
        if kind is _COD:
            if self.cancel_on_disconnect:
                link.cod = True
            else:
                link.cod = bool(result.get("enabled")) if isinstance(result, dict) else None
            link.token_confirmed = link.credential is not None
        elif kind is _SUBSCRIBE:
            confirmed = [str(channel) for channel in result] if isinstance(result, list) else []
            missing = [channel for channel in link.channels if channel not in confirmed]
            if missing:
                self._log(
                    logging.WARNING,
                    "Deribit did not confirm the subscription to %s",
                    ", ".join(missing),
                )
        link.step += 1
        self._next_step(link, now)

    def _explained(self, error: ApiException, request: _Request) -> ApiException:
        """A refused key grant, restated as a clock problem when the signature was out of
        Deribit's window."""
        timestamp = request.grant[1]
        if timestamp is None or self._configuration.auth_method != "client_signature":
            return error
        return with_clock_hint(error, timestamp)

    def _adopt(self, link: _Link, token: Token, now: float) -> None:
        """Authorize ``link`` with ``token``: :class:`Authenticated` for its first,
        :class:`TokenRefreshed` for a renewal."""
        first = link.credential is None
        self._token = token
        link.credential = token.access_token
        link.token_confirmed = False
        link.authorized = True
        event = Authenticated if first else TokenRefreshed
        self._emit(event(link.number, token.scope, token.lifetime, now))

    def _restored(self, link: _Link, now: float) -> None:
        link.state = _LINK_READY
        link.step_deadline = math.inf
        self.state = _READY
        self._first = False
        self._attempt = 0
        self._emit(SessionRestored(link.number, self.heartbeat, bool(link.cod), link.channels, now))
        queue = self._queue
        while queue:
            call = queue.popleft()
            call.queued = False
            if not call.done:
                self._dispatch(call, link, now)
        due = self._renewal_due_at()
        if due is not None:
            self._at(due)

    def _restore_failed(self, link: _Link, error: OpenApiException, now: float) -> None:
        """A restore step failed: close the connection; once it has ended, the attempt counts as
        failed with ``error``."""
        link.step_deadline = math.inf
        link.send_at = math.inf
        if link.restore_error is None:
            link.restore_error = error
        self._close_link(link, 1000, "", "closed: the session could not be restored on it", now)

    # -- calls ----------------------------------------------------------------------------------

    def submit(self, call: Call, now: float) -> str | None:
        """Take ``call``: the text to send on the current connection, or None when it waits
        (queued until the session is ready, at most ``call.connect_timeout``).

        :raises ApiException: the session refuses calls (closed, failed, watchdog expired), or
            the request is larger than Deribit accepts.
        """
        state = self.state
        if state is _READY:
            link = self._link
            assert link is not None
            return self._dispatch(call, link, now, raising=True)
        if state in _REFUSING:
            raise self._refusal()
        call.ready_by = now + call.connect_timeout
        call.queued = True
        self._queue.append(call)  # last: an interrupt before it leaves nothing behind
        return None

    def _dispatch(self, call: Call, link: _Link, now: float, raising: bool = False) -> str | None:
        """Give ``call`` its id and send it on ``link``: its text when ``raising`` (the caller
        writes it), else as a :class:`Send` output; a request too large fails the call."""
        request_id = self._next_id
        self._next_id = request_id + 1
        text = f"{REQUEST_HEAD}{request_id}{call._body}"
        if len(text) > MAX_REQUEST_BYTES:
            try:
                check_size(text, call.method)
            except ApiValueError as error:
                if raising:
                    raise
                self._complete(call, error)
                return None
        call.id = request_id
        call.link = link
        timeout = call.read_timeout
        call.answer_by = math.inf if timeout is None else now + timeout
        if call.credential is None:
            call.credential = link.credential
        self._pending[request_id] = call  # last: an interrupt before it leaves nothing behind
        if raising:
            return text
        self._out.append(Send(link.number, text))
        return None

    def expire(self, call: Call, now: float) -> float | None:
        """The caller of ``call`` waited until its :attr:`~Call.deadline`: None when the call is
        over (its outcome is set: a timeout, unless it was answered meanwhile), else the new
        deadline to wait for (it was sent meanwhile)."""
        if call.done:
            return None
        if call.queued:
            if now < call.ready_by:
                return call.ready_by
            self._dequeue(call)
            call.error = ApiTimeoutError(
                f"the WebSocket session was not ready within {call.connect_timeout:g} s "
                f"(it is {self.state.value})"
            )
            call.done = True
            return None
        if now < call.answer_by:
            return call.answer_by
        self._pending.pop(call.id, None)
        call.error = ApiTimeoutError(
            f"{call.method}: {self.settings.display} did not answer within {call.read_timeout:g} s"
        )
        call.done = True
        return None

    def abandon(self, call: Call) -> None:
        """Its caller stopped waiting (interrupted, or its task cancelled): forget ``call``; a
        late answer is dropped."""
        if call.done:
            return
        call.done = True
        if call.queued:
            self._dequeue(call)
        else:
            self._pending.pop(call.id, None)

    def _dequeue(self, call: Call) -> None:
        call.queued = False
        try:
            self._queue.remove(call)
        except ValueError:
            pass

    def _complete(self, call: Call, error: BaseException | None = None) -> None:
        if error is not None:
            call.error = error
        call.done = True
        self._out.append(call)

    def _sweep(self, now: float) -> None:
        """Fail the calls whose time ran out and whose caller never asked (an interrupted
        caller), and forget unanswered requests nobody reads."""
        self._sweep_at = now + SWEEP_SECONDS if (self._pending or self._queue) else math.inf
        pending = self._pending
        for request_id, entry in list(pending.items()):
            if type(entry) is Call:
                if now >= entry.answer_by + SWEEP_SECONDS:
                    del pending[request_id]
                    self._complete(
                        entry,
                        ApiTimeoutError(
                            f"{entry.method}: {self.settings.display} did not answer within "
                            f"{entry.read_timeout:g} s"
                        ),
                    )
            elif isinstance(entry, _Request) and entry.kind is _DISCARD and now >= entry.deadline:
                del pending[request_id]
        for call in list(self._queue):
            if now >= call.ready_by + SWEEP_SECONDS:
                self._dequeue(call)
                self._complete(
                    call,
                    ApiTimeoutError(
                        f"the WebSocket session was not ready within {call.connect_timeout:g} s "
                        f"(it is {self.state.value})"
                    ),
                )

    def _refusal(self) -> OpenApiException:
        state = self.state
        if state is _CLOSED:
            if self.forked:
                return ApiValueError(FORKED)
            return ApiValueError("the WebSocket session is closed; create a new WebSocketApiClient")
        if state is _EXPIRED:
            return ApiConnectionError(
                f"the session's watchdog expired (no check_in() for {self.settings.watchdog:g} "
                "s), so its connection was closed and cancel-on-disconnect may have cancelled "
                "its orders; call check_in() to open a new connection"
            )
        return ApiConnectionError(f"the WebSocket session gave up: {self.failure}")

    @property
    def accepting_calls(self) -> bool:
        """False once the session refuses calls (closed, failed, watchdog expired): nothing is
        worth a retry then."""
        return self.state not in _REFUSING

    # -- messages -------------------------------------------------------------------------------

    def receive(self, number: int, raw: Data, now: float, message: Any = _UNDECODED) -> None:
        """A message arrived on connection ``number`` (``message``: ``raw`` already decoded by
        :func:`decode`, outside any lock; it is decoded here otherwise)."""
        link = self._links.get(number)
        if link is None or link.state is _ENDED:
            return
        link.last_message = now
        if message is _UNDECODED:
            message = decode(raw, self.settings.display)
        if message is None:
            return
        try:
            self._route(link, message, raw, now)
        except Exception:  # one message that cannot be handled: never the connection
            self._log(
                logging.ERROR,
                "a message from %s could not be handled; it was dropped",
                self.settings.display,
                exc_info=sys.exc_info()[1],
            )

    def _route(self, link: _Link, message: dict[str, Any], raw: Data, now: float) -> None:
        request_id = message.get("id")
        if request_id is None:
            self._notification(link, message, now)
            return
        if type(request_id) is not int:
            self._log(
                logging.WARNING,
                "%s sent an answer whose id %s is not one the client gives; ignored",
                self.settings.display,
                preview(request_id),
            )
            return
        result = message.get("result")
        if type(result) is dict:
            register_credentials_in(result)  # a token is redacted before anything shows it
        entry = self._pending.pop(request_id, None)
        if "error" in message:
            if error_code(message) == TOO_MANY_REQUESTS:
                link.throttled = True  # before the close that follows a 10028
            if "result" in message:
                self._ambiguous(entry, request_id, now)
                return
        if type(entry) is Call:
            entry.raw = raw
            if "error" in message:
                self._complete(entry, answer_error(message, raw))
                return
            entry.message = message
            entry.done = True
            self._out.append(entry)
            if link.credential is not None and entry.credential == link.credential:
                link.token_confirmed = True
            effect = _EFFECTS.get(entry.method)
            if effect is not None:
                self._effect(effect, entry, link, now)
            return
        if entry is None:
            self._log(
                logging.DEBUG,
                "an answer to id %s came after its caller gave up",
                preview(request_id),
            )
            if "error" in message:
                self._unanswered_error(link, message)
            return
        assert isinstance(entry, _Request)
        kind = entry.kind
        if kind is _DISCARD:
            if "error" in message:
                self._unanswered_error(link, message)
        elif kind is _RENEW:
            self._renewal_answered(entry, message, raw, now)
        elif kind is _REAUTH:
            self._reauth_answered(entry, message, raw, now)
        else:
            self._step_answered(entry, message, raw, now)

    def _ambiguous(self, entry: Call | _Request | None, request_id: int, now: float) -> None:
        self._log(
            logging.WARNING,
            "%s answered id %s with both a result and an error; the answer was dropped",
            self.settings.display,
            preview(request_id),
        )
        error = ApiProtocolError(
            f"{self.settings.display} answered with both a result and an error, so the "
            "outcome is unknown; check the state on Deribit before repeating the call"
        )
        if type(entry) is Call:
            self._complete(entry, error)
        elif isinstance(entry, _Request) and entry.kind in _STEPS:
            self._restore_failed(entry.link, error, now)
        elif isinstance(entry, _Request) and entry.kind is _RENEW:
            self._renewal = None
            self._renewal_failed(error, now)
        elif isinstance(entry, _Request) and entry.kind is _REAUTH and entry.ticket is not None:
            self._complete(entry.ticket, error)

    def _notification(self, link: _Link, message: dict[str, Any], now: float) -> None:
        method = message.get("method")
        params = message.get("params")
        if method == "heartbeat" and isinstance(params, dict):
            if params.get("type") == "test_request":
                self._send_request(link, "public/test", {}, _DISCARD, now)
                self._emit(HeartbeatAnswered(link.number, 0.0, now))
            return
        if method == "subscription" and isinstance(params, dict):
            self._subscription(params)
            return
        if "error" in message:
            self._unanswered_error(link, message)
            return
        self._log(
            logging.DEBUG,
            "ignored a message from %s: %.200s",
            self.settings.display,
            redact(str(message)),
        )

    def _subscription(self, params: dict[str, Any]) -> None:
        """A subscription's notification: to its callback."""
        channel = params.get("channel")
        callback = self.subscriptions.get(channel) if isinstance(channel, str) else None
        if callback is None:
            self._log(logging.DEBUG, "a notification on %r, which nothing subscribed to", channel)
            return
        self._out.append(Deliver(callback, channel, params.get("data")))  # type: ignore[arg-type]

    def _unanswered_error(self, link: _Link, message: dict[str, Any]) -> None:
        if error_code(message) == TOO_MANY_REQUESTS:
            link.throttled = True  # Deribit ends the connection after it: reconnect later
        self._log(
            logging.WARNING,
            "%s reported an error outside any call: %.300s",
            self.settings.display,
            preview(message.get("error")),
        )

    def _effect(self, effect: SessionEffect, call: Call, link: _Link, now: float) -> None:
        """Adopt what a successful call changed, so that new connections get it too."""
        params = call.params
        if effect is SessionEffect.SET_HEARTBEAT:
            interval = params.get("interval") if call.checked else _heartbeat_interval(params)
            if interval is not None:
                self.heartbeat = interval
                limit = self.liveness_limit()
                if limit is not None:
                    self._at(link.last_message + limit)
        elif effect is SessionEffect.DISABLE_HEARTBEAT:
            self.heartbeat = None
        elif effect in _COD_EFFECTS:
            enabled = effect is SessionEffect.ENABLE_CANCEL_ON_DISCONNECT
            link.cod = enabled
            if params.get("scope", "connection") == "connection":
                self.cancel_on_disconnect = enabled

    # -- the end of a connection ----------------------------------------------------------------

    def lost(
        self,
        number: int,
        now: float,
        *,
        received: tuple[int, str] | None = None,
        sent: tuple[int, str] | None = None,
        failure: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        """Connection ``number`` ended: ``received`` and ``sent`` are the close frames
        exchanged as ``(code, reason)`` (None: none), ``failure`` a description when the driver
        ended it for a fault of its own (its reader failed), ``cause`` the exception to chain to
        the errors of the calls it fails."""
        link = self._links.get(number)
        if link is None or link.state is _ENDED:
            return
        code, description = self._how_it_ended(link, received, sent, failure)
        self._end_link(link, code, description, cause, now)

    def _how_it_ended(
        self,
        link: _Link,
        received: tuple[int, str] | None,
        sent: tuple[int, str] | None,
        failure: str | None,
    ) -> tuple[int | None, str]:
        """The close code and a description (redacted: a server may echo a credential in its
        close reason)."""
        if failure is not None:
            return None, failure
        if link.closing is not None:
            frame = received or sent
            return (None if frame is None else int(frame[0])), link.closing
        if received is not None:
            code, reason = received
            reason = redact(reason)
            text = f"the server closed the connection (code {int(code)}"
            text += f", {reason!r})" if reason else ")"
            return int(code), text
        if sent is not None:
            code, reason = sent
            reason = redact(reason)
            text = (
                f"the client ended the connection: the server broke the protocol (code "
                f"{int(code)}, {reason!r})"
            )
            return int(code), text
        return None, "the connection dropped without a close frame"

    def _end_link(
        self,
        link: _Link,
        code: int | None,
        description: str,
        cause: BaseException | None,
        now: float,
    ) -> None:
        """``link`` is over: :class:`Disconnected`, its calls failed, then what comes next."""
        was_restoring = link.state is _LINK_RESTORING
        link.state = _ENDED
        link.step_deadline = link.send_at = link.close_deadline = math.inf
        self._links.pop(link.number, None)
        may_have_fired = link.authorized and link.cod is not False and not link.logged_out
        self._emit(Disconnected(link.number, code, description, may_have_fired, now))
        self._fail_calls_of(link, description, cause)
        if self._renewal is not None and self._renewal.link is link:
            self._renewal = None
        if link is not self._link:
            self._finish_if_closed(now)
            return
        self._link = None
        state = self.state
        if state in _REFUSING:
            self._finish_if_closed(now)
            return
        if link.restore_error is not None or was_restoring:
            error = link.restore_error or ApiConnectionError(
                f"the connection was lost while the session was restored: {description}"
            )
            self._attempt_failed(error, link, now)
            return
        self._attempt = 0
        error = ApiConnectionError(description)
        self._schedule_reconnect(error, link.throttled or link.renewal_failed, now)

    def _fail_calls_of(self, link: _Link, description: str, cause: BaseException | None) -> None:
        display = self.settings.display
        pending = self._pending
        for request_id, entry in list(pending.items()):
            if type(entry) is Call:
                if entry.link is link:
                    del pending[request_id]
                    error = ApiConnectionError(
                        f"{entry.method}: no answer from {display}: {description}"
                    )
                    self._complete(entry, caused_by(error, cause))
            elif isinstance(entry, _Request) and entry.link is link:
                del pending[request_id]
                ticket = entry.ticket
                if ticket is not None and not ticket.done:
                    error = ApiConnectionError(
                        f"public/auth: no answer from {display}: {description}"
                    )
                    self._complete(ticket, caused_by(error, cause))

    def _close_link(self, link: _Link, code: int, reason: str, why: str, now: float) -> None:
        """Close ``link`` with the closing handshake; it has ended once :meth:`lost` says so
        (or, at the latest, :data:`CLOSE_GRACE` after the close timeout)."""
        if link.state is _ENDED or link.closing is not None:
            return
        link.closing = why
        if link.state is _OPENING:
            return  # the driver is still opening it: :meth:`opened` closes it
        link.state = _CLOSING
        link.close_deadline = now + self.settings.close_timeout + CLOSE_GRACE
        self._at(link.close_deadline)
        self._out.append(Close(link.number, code, reason))

    def _cut(
        self, link: _Link, description: str, now: float, code: int = 1001, reason: str = ""
    ) -> None:
        """End ``link`` at once (dead, or the watchdog): cut it, and count it as ended now."""
        self._out.append(Abort(link.number, code, reason))
        self._end_link(link, None, description, None, now)

    def _link_timers(self, link: _Link, now: float) -> None:
        if link.state is _ENDED:
            return
        if now >= link.close_deadline:
            self._out.append(Abort(link.number, 1001, ""))
            self._end_link(link, None, link.closing or "closed by the client", None, now)
            return
        if not link.open:
            return
        limit = self.liveness_limit()
        if limit is not None and now >= link.last_message + limit:
            self._cut(
                link, f"nothing received for {limit:g} s, so the connection was declared dead", now
            )
            return
        if now >= link.send_at:
            link.send_at = math.inf
            request = self._step_request(link, link.steps[link.step])
            if request is None:
                link.step += 1
                self._next_step(link, now)
            else:
                method, params, kind, grant = request
                self._send_step(link, method, params, kind, grant, now)
        if now >= link.step_deadline:
            link.step_deadline = math.inf
            for request_id, entry in list(self._pending.items()):
                if isinstance(entry, _Request) and entry.link is link and entry.kind in _STEPS:
                    del self._pending[request_id]
            step = link.steps[link.step] if link.step < len(link.steps) else "restore"
            self._restore_failed(
                link,
                ApiTimeoutError(
                    f"{_STEP_METHODS.get(step, step)}: {self.settings.display} did not answer "
                    f"within {self.settings.call_timeout:g} s"
                ),
                now,
            )

    def _live_links(self) -> list[_Link]:
        return [link for link in self._links.values() if link.state is not _ENDED]

    # -- attempts, backoff ----------------------------------------------------------------------

    def _attempt_failed(self, error: OpenApiException, link: _Link, now: float) -> None:
        """An attempt to establish the session failed with ``error``: try again later, or
        give up."""
        if self.state in _REFUSING:
            self._finish_if_closed(now)
            return
        if self._first:
            if not isinstance(error, ApiException):
                self._fail(f"could not establish the session: {error}", now, error)
                return
            delay = retry_delay(self._first_policy, error, self._first_attempts, self._rand)
            if delay is None:
                self._fail(f"could not establish the session: {error!r}", now, error)
                return
            self._log(
                logging.INFO,
                "opening the WebSocket session failed (%r); again in %.2f s",
                error,
                delay,
            )
            self.state = _CONNECTING
            self._reconnect_at = now + min(max(delay, 0.0), MAX_RECONNECT_DELAY)
            self._at(self._reconnect_at)
            return
        if not isinstance(error, ApiException):
            self._fail(f"the session could not be restored: {error}", now, error)
            return
        throttled = error.status == 429 or error.error_code == TOO_MANY_REQUESTS or link.throttled
        if error.status != 0 and not (throttled or error.retriable):
            self._fail(f"the session could not be restored: {error!r}", now, error)
            return
        self._log(logging.INFO, "reconnect attempt %d failed: %r", self._attempt, error)
        self._schedule_reconnect(error, throttled, now)

    def _schedule_reconnect(self, error: ApiException, throttled: bool, now: float) -> None:
        self._attempt += 1
        attempt = self._attempt
        limit = self.settings.max_reconnects
        if limit is not None and attempt > limit:
            self._fail(f"gave up after {limit} reconnect attempts: {error!r}", now, error)
            return
        backoff = self.settings.reconnect_backoff
        delay = backoff.delay(error, attempt, self._rand)
        if delay is None:  # Retry-After beyond retry_after_max: wait that long, no more
            self._log(
                logging.WARNING,
                "the server asked for a wait of %s s before the next connection "
                "(Retry-After), beyond retry_after_max; waiting %g s",
                error.retry_after,
                backoff.retry_after_max,
            )
            delay = backoff.retry_after_max
        if throttled:
            delay = max(delay, self.settings.throttle_delay)
        delay = min(max(delay, 0.0), MAX_RECONNECT_DELAY)
        self.state = _RECONNECTING
        self._emit(Reconnecting(attempt, delay, _one_line(error), now))
        self._reconnect_at = now + delay
        self._at(self._reconnect_at)

    # -- tokens ---------------------------------------------------------------------------------

    @property
    def uses_key(self) -> bool:
        """Whether connections authenticate with ``public/auth`` (an API key, no fixed token)."""
        return uses_key(self._configuration)

    @property
    def credentials_available(self) -> bool:
        """Whether any credential is configured (private calls are possible)."""
        configuration = self._configuration
        return bool(configuration.access_token or configuration.token_provider) or self.uses_key

    def _renewal_due_at(self) -> float | None:
        token = self._token
        link = self._link
        if (
            token is None
            or self._renewal is not None
            or self.state is not _READY
            or link is None
            or link.state is not _LINK_READY
            or link.closing is not None
            or not self.uses_key
        ):
            return None
        return token.refresh_at

    def _renew(self, now: float) -> None:
        link = self._link
        assert link is not None
        try:
            method, params, grant = self._auth_request()
        except ApiValueError as refused:
            self._renewal_failed(refused, now)
            return
        request = self._send_request(link, method, params, _RENEW, now)
        request.grant = grant
        self._renewal = request

    def _renewal_answered(
        self, request: _Request, message: dict[str, Any], raw: Data, now: float
    ) -> None:
        self._renewal = None
        link = request.link
        if link.state is _ENDED:
            return
        token = self._auth_answered(request, message, raw, now)
        if token is None:
            return  # the key grant follows the refused refresh grant
        if not isinstance(token, Token):
            self._renewal_failed(token, now)
            return
        self._adopt(link, token, now)
        self._at(token.refresh_at)

    def _renewal_failed(self, error: OpenApiException, now: float) -> None:
        """A renewal failed: keep the token while it is valid and try again a little later;
        once it has expired, close the connection (the next one authenticates afresh)."""
        token = self._token
        link = self._link
        if token is None or link is None or link.state is _ENDED:
            return
        if now < token.expires_at:
            retry_at = renewal_retry_at(token, now)
            self._log(
                logging.WARNING,
                "could not renew the access token ahead of expiry (%r); keeping it for its "
                "remaining %.1f s and trying again in %.1f s",
                error,
                token.expires_at - now,
                retry_at - now,
            )
            self._token = token._replace(refresh_at=retry_at)
            self._at(retry_at)
            return
        self._log(logging.WARNING, "renewing the token failed: %r", error)
        link.renewal_failed = True
        self._close_link(link, 1000, "", f"closed: the token could not be renewed ({error!r})", now)

    def reauthenticate(self, credential: str, now: float) -> bool | Call:
        """After 13009 for ``credential``: False when no fresh credential can be had (a fixed
        ``access_token``, or no open connection), True when one is in place, or a :class:`Call`
        to wait on (like a call: its ``error`` is set when authenticating failed) while the
        connection authenticates again. A session-scoped token that had worked is announced
        evicted (:class:`SessionEvicted`)."""
        configuration = self._configuration
        if configuration.access_token:
            return False
        if configuration.token_provider is not None:
            return True
        link = self._link
        if not self.uses_key or link is None or not link.open:
            return False
        if link.credential != credential:
            return True  # renewed since: try again with the new one
        token = self._token
        scope = token.scope if token is not None else ""
        if link.token_confirmed and any(part.startswith("session:") for part in scope.split()):
            self._emit(
                SessionEvicted(
                    link.number,
                    scope,
                    "Deribit refused the session's token after it had worked (13009): its "
                    "session was most likely evicted because another process may be using up "
                    "the key's 16 sessions; authenticating again",
                    now,
                )
            )
        link.token_confirmed = False
        ticket = Call("public/auth", {}, 0.0, self.settings.call_timeout)
        method, params, grant = self._auth_request()
        request = self._send_request(link, method, params, _REAUTH, now)
        request.grant = grant
        request.ticket = ticket
        ticket.link = link
        ticket.id = request.id
        ticket.answer_by = request.deadline
        return ticket

    def _reauth_answered(
        self, request: _Request, message: dict[str, Any], raw: Data, now: float
    ) -> None:
        ticket = request.ticket
        assert ticket is not None
        token = self._auth_answered(request, message, raw, now)
        if token is None:
            return  # the key grant follows the refused refresh grant
        if not isinstance(token, Token):
            self._complete(ticket, token)
            return
        self._adopt(request.link, token, now)
        self._complete(ticket)

    def _auth_answered(
        self, request: _Request, message: dict[str, Any], raw: Data, now: float
    ) -> Token | OpenApiException | None:
        """What the answer to one of the session's ``public/auth`` requests gives: the token,
        or why there is none (a refused key grant restated when the clock was off); None when a
        refused refresh grant was followed by a key grant, sent in its place (same purpose,
        same ticket)."""
        if "error" not in message:
            try:
                return token_from_grant(message.get("result"), self._configuration, request.sent_at)
            except ApiException as refused:
                return refused
        error = answer_error(message, raw)
        if request.grant[0] != "refresh":
            return self._explained(error, request)
        self._log(
            logging.INFO, "token refresh refused (%r); authenticating with the API key", error
        )
        link = request.link
        try:
            method, params, grant = self._auth_request(key_only=True)
        except ApiValueError as refused:  # the key cannot make a grant (e.g. no secret now)
            return refused
        follow = self._send_request(link, method, params, request.kind, now)
        follow.grant = grant
        follow.ticket = ticket = request.ticket
        if ticket is not None:
            ticket.id = follow.id
            ticket.answer_by = follow.deadline
        if request.kind is _RENEW:
            self._renewal = follow
        elif request.kind is _AUTH:
            link.step_deadline = follow.deadline
        return None

    # -- subscriptions --------------------------------------------------------------------------

    def add_subscriptions(self, channels: Iterable[str], callback: SubscriptionCallback) -> None:
        """Deliver ``channels``' notifications to ``callback`` and renew them on every new
        connection (the subscribe call itself is the caller's)."""
        for channel in channels:
            self.subscriptions[channel] = callback

    def remove_subscriptions(self, channels: Iterable[str]) -> None:
        """Stop delivering and renewing ``channels``."""
        for channel in channels:
            self.subscriptions.pop(channel, None)

    # -- the watchdog ---------------------------------------------------------------------------

    def check_in(self, now: float) -> None:
        """The program is alive: the watchdog's deadline moves to ``now + watchdog``. After the
        watchdog fired, this opens a new connection (at the next :meth:`timer`, :data:`WAKE`)
        and the session is restored."""
        self._checked_in_at = now
        if self.state is not _EXPIRED:
            return
        self.state = _RECONNECTING
        self._attempt = 1
        self._emit(Reconnecting(1, 0.0, "the watchdog had expired; check_in() came", now))
        self._reconnect_at = now
        self._at(now)

    def watchdog_deadline(self) -> float | None:
        """When the watchdog fires unless a check-in comes first; None when it is off or has
        fired. Safe to read from any thread without the driver's lock (a stale value only
        makes the reader ask :meth:`watchdog_check` again)."""
        period = self.settings.watchdog
        if period is None or self.state in _REFUSING:
            return None
        return self._checked_in_at + period

    def watchdog_check(self, now: float, fired: tuple[float, float] | None = None) -> bool:
        """Fire the watchdog if no check-in came for ``watchdog`` seconds: the connection is cut
        without logging out, :class:`WatchdogExpired` then :class:`Disconnected` are emitted,
        calls fail, and no reconnect happens until :meth:`check_in`. Whether it fired.

        ``fired``: ``(when, deadline)`` when the driver already cut the connection itself at
        ``when`` for the ``deadline`` it read from :meth:`watchdog_deadline` (a driver whose
        timer cannot run, e.g. on a blocked event loop, cuts from a thread of its own and tells
        the core later): it counts as fired then, whatever check-in came since.
        """
        current = self.watchdog_deadline()
        if current is None:
            return False
        if fired is None:
            if now < current:
                return False
            when, deadline = now, current
        else:
            when, deadline = fired
        self.state = _EXPIRED
        self._reconnect_at = math.inf
        self._renewal = None
        period = self.settings.watchdog or 0.0
        since = when - (deadline - period)
        live = self._live_links()
        for link in live:
            if link.state is _OPENING:
                link.closing = "closed by the watchdog"  # :meth:`opened` cuts it, unannounced
            else:
                self._out.append(Abort(link.number, 1000, "watchdog expired"))
        announced = [link for link in live if link.state is not _OPENING]
        self._emit(
            WatchdogExpired(
                announced[0].number if announced else None,
                since,
                max(0.0, when - deadline),
                now,
            )
        )
        description = (
            f"closed by the watchdog: no check_in() for {since:.1f} s (watchdog "
            f"{self.settings.watchdog:g} s)"
        )
        for link in announced:
            self._end_link(link, None, description, None, now)
        self._refuse_queued()
        return True

    # -- ending ---------------------------------------------------------------------------------

    def close(self, now: float, logout: bool = False) -> None:
        """End the session: optionally ``private/logout`` first (Deribit then closes the
        connection without firing cancel-on-disconnect), then close the connection. Calls are
        refused from now on; :class:`Closed` comes once the connection has ended."""
        if self.state in (_CLOSED, _FAILED):
            return
        self.state = _CLOSED
        self.failure = self._closed_reason
        self._reconnect_at = math.inf
        self._renewal = None
        self._refuse_queued()
        link = self._link
        params = self._logout_params(link) if logout and link is not None else None
        if link is not None and link.state is _LINK_READY and params is not None:
            link.logged_out = True
            self._send_request(link, "private/logout", params, _DISCARD, now)
            self._logout_until = now + self.settings.close_timeout
            self._at(self._logout_until)
            return
        for live in self._live_links():
            self._close_link(live, 1000, "", self._closed_reason, now)
        self._finish_if_closed(now)

    def _logout_params(self, link: _Link) -> dict[str, Any] | None:
        """The parameters of ``private/logout``, or None without credentials. A fixed token is
        the user's to keep, so only tokens this session obtained are invalidated."""
        if not self.credentials_available:
            return None
        token = link.fixed_token or self._configuration.access_token
        if token:
            return {"access_token": token, "invalidate_token": False}
        return {"invalidate_token": True}

    def fail(self, reason: str, now: float) -> None:
        """End the session as FAILED for a fault of the driver's (its supervisor failed): a
        connection it was opening is forgotten (nobody will report on it)."""
        for link in self._live_links():
            if link.state is _OPENING:
                link.state = _ENDED
                del self._links[link.number]
        self._fail(reason, now, None)

    def _fail(self, reason: str, now: float, error: OpenApiException | None) -> None:
        if self.state is _CLOSED:
            return
        self._log(logging.ERROR, "the WebSocket session ended: %s", reason)
        self.state = _FAILED
        self.failure = reason
        self.failure_error = error
        self._reconnect_at = math.inf
        self._renewal = None
        self._refuse_queued()
        for link in self._live_links():
            self._close_link(link, 1000, "", f"closed: {reason}", now)
        self._finish_if_closed(now)

    def _refuse_queued(self) -> None:
        queue = self._queue
        while queue:
            call = queue.popleft()
            call.queued = False
            if not call.done:
                self._complete(call, self._refusal())  # one exception per caller

    def _finish_if_closed(self, now: float) -> None:
        """Once the session is CLOSED or FAILED and no connection is left: :class:`Closed`."""
        state = self.state
        if self.finished or state not in (_CLOSED, _FAILED) or self._live_links():
            return
        self.finished = True
        self._logout_until = math.inf
        self._emit(Closed(self.failure or self._closed_reason, state is _FAILED, now))

    def after_fork(self) -> None:
        """In a child process made by ``os.fork()``: the connections are the parent's. Forget
        them without a single output (nothing may touch them), and refuse every call."""
        self.forked = True
        self.state = _CLOSED
        self.failure = FORKED
        self.finished = True
        self._links.clear()
        self._link = None
        self._pending.clear()
        self._queue.clear()
        self._out = []
        self._reconnect_at = self._logout_until = self._sweep_at = math.inf
        self._renewal = None

    # -- helpers --------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._out.append(redacted(event))

    def _log(
        self, level: int, message: str, *args: Any, exc_info: BaseException | None = None
    ) -> None:
        """A line for the session's logger, written by the driver (outside its lock: a log
        handler is code the session does not own)."""
        if logger.isEnabledFor(level):
            self._out.append(Log(level, message, args, exc_info))

    @property
    def connection(self) -> int | None:
        """The number of the connection calls go on, if one is open."""
        link = self._link
        return link.number if link is not None and link.state is not _ENDED else None

    def connection_open(self, number: int) -> bool:
        """Whether the core counts connection ``number`` as not yet ended."""
        link = self._links.get(number)
        return link is not None and link.state is not _ENDED


_STEPS = frozenset({_HELLO, _AUTH, _HEARTBEAT, _COD, _SUBSCRIBE})
_STEP_METHODS = {
    _HELLO: "public/hello",
    _AUTH: "public/auth",
    _HEARTBEAT: "public/set_heartbeat",
    _COD: "private/enable_cancel_on_disconnect",
    _SUBSCRIBE: "public/subscribe",
}
_COD_EFFECTS = frozenset(
    {SessionEffect.ENABLE_CANCEL_ON_DISCONNECT, SessionEffect.DISABLE_CANCEL_ON_DISCONNECT}
)


def _effects() -> dict[str, SessionEffect]:
    """Method name -> what it does to the session, for the declared methods that do anything
    (from :attr:`Endpoint.effect <openapi_client.endpoint.Endpoint.effect>`)."""
    from openapi_client.api.endpoints import ENDPOINTS

    return {
        endpoint.method: endpoint.effect
        for endpoint in ENDPOINTS
        if endpoint.effect is not SessionEffect.NONE
    }


_EFFECTS = _effects()


# -- pure helpers for drivers -------------------------------------------------------------------


def decode(raw: Data, display: str) -> dict[str, Any] | None:
    """A message decoded, or None (logged) when it is not a JSON object."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        logger.warning(
            "%s sent a message that is not JSON; ignored: %.200s",
            display,
            redact(raw if isinstance(raw, str) else repr(raw)),
        )
        return None
    if type(message) is not dict:
        logger.warning("%s sent a JSON value that is not an object; ignored", display)
        return None
    return message


def uses_key(configuration: Configuration) -> bool:
    """Whether a session authenticates with ``public/auth`` (an API key, HMAC or asymmetric, and
    no fixed token)."""
    return (
        not configuration.access_token
        and configuration.token_provider is None
        and uses_api_key(configuration)
    )


def fixed_token(configuration: Configuration) -> str | None:
    """The token private calls carry themselves (``access_token``, or ``token_provider``'s,
    which this calls: user code, so call it where a call may block), or None.

    :raises ApiValueError: the provider gave no usable token.
    """
    if configuration.access_token:
        return configuration.access_token
    provider = configuration.token_provider
    if provider is not None:
        token = provider()
        if not isinstance(token, str) or not token:
            raise ApiValueError("the token from token_provider must be a non-empty string")
        return token
    return None


def private_params(
    configuration: Configuration, params: Mapping[str, Any], operation: str
) -> tuple[Mapping[str, Any], str | None]:
    """``(params, credential)`` for a private call: with ``access_token`` added when tokens go
    per call (and that token as the credential), else as they are (the connection is
    authenticated; the core records its token as the call's credential).

    :raises ApiValueError: no credentials are configured.
    """
    token = fixed_token(configuration)
    if token is not None:
        return {**params, "access_token": token}, token
    if not uses_key(configuration):
        raise ApiValueError(
            f"{operation} is a private method and needs credentials: set "
            "Configuration.access_token, or Configuration.client_id and client_secret"
        )
    return params, None


def subscription_method(channels: Iterable[str], verb: str) -> str:
    """``public/<verb>``, or ``private/<verb>`` when a channel is a user's (``user.``)."""
    private = any(channel.startswith("user.") for channel in channels)
    return f"private/{verb}" if private else f"public/{verb}"


def liveness_limit(heartbeat: float | None) -> float | None:
    """The default liveness limit for a heartbeat interval: ``1.5 * interval + 5`` seconds
    (Deribit sends a ``test_request`` about every interval, the first a little later)."""
    return None if heartbeat is None else 1.5 * heartbeat + LIVENESS_MARGIN


def retry_delay(
    policy: RetryPolicy,
    error: ApiException,
    attempts: int,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before trying again after ``attempts`` ended in ``error``; None: give up."""
    return policy.delay(error, attempts, rand) if policy.should_retry(error, attempts) else None


def _heartbeat_interval(params: Mapping[str, Any]) -> float | None:
    """The interval of ``public/set_heartbeat``'s ``params`` when it is one Deribit accepts (a
    number >= 10): only such an interval is kept for later connections and drives the liveness
    limit, whatever a server answered to another (a negative one declared every connection dead
    at once)."""
    value: Any = params.get("interval")
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
