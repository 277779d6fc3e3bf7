"""The session core: every decision of one Deribit WebSocket session, without I/O.

:class:`SessionCore` takes a driver's inputs (a connection opened or lost, a message, a call, a
timer, a check-in, a close), hands each to the part of the core whose concern it is, and holds
what they share: the session's :class:`State`, and how it ends (closing, logging out, failing,
a fork). The parts: :class:`~.routing.Router` (ids, calls, answers), :class:`~.restore.Restore`
(the restore sequence), :class:`~.tokens.Tokens` (the token, renewal, re-authentication),
:class:`~.backoff.Backoff` (attempts and reconnects), :class:`~.watchdog.WatchdogClock`,
:class:`~.links.Links` (the connections) and :class:`~.profile.Profile` (what each new
connection gets). All write to one :class:`~.outputs.Outbox`, which the driver empties.
"""

from __future__ import annotations

import logging
import math
import random
import sys
from collections.abc import Iterable
from typing import Any, Callable

from openapi_client.configuration import Configuration
from openapi_client.endpoint import SessionEffect
from openapi_client.exceptions import (
    ApiConnectionError,
    ApiProtocolError,
    ApiValueError,
    OpenApiException,
)
from openapi_client.retry import RetryPolicy
from openapi_client.websocket.core.backoff import Backoff
from openapi_client.websocket.core.links import (
    ENDED,
    OPENING,
    READY,
    RESTORING,
    Link,
    Links,
    how_it_ended,
)
from openapi_client.websocket.core.outputs import (
    REFUSING,
    Abort,
    Call,
    CoreSettings,
    Outbox,
    Output,
    State,
    SubscriptionCallback,
)
from openapi_client.websocket.core.profile import EFFECTS, Profile
from openapi_client.websocket.core.restore import STEPS, Restore
from openapi_client.websocket.core.routing import DISCARD, Request, Router, decode
from openapi_client.websocket.core.tokens import REAUTH, RENEW, Tokens
from openapi_client.websocket.core.watchdog import WatchdogClock
from openapi_client.websocket.events import (
    Closed,
    Connected,
    Disconnected,
    SessionRestored,
    WatchdogExpired,
)
from openapi_client.websocket.jsonrpc import Data

__all__ = ["FORKED", "SessionCore"]

#: What a forked child's copy of a session says when it is used.
FORKED = (
    "this WebSocketApiClient was created in another process, before os.fork(); its connection "
    "belongs to that process: build a new WebSocketApiClient in this one"
)

_CONNECTING, _RESTORING, _READY, _RECONNECTING = (
    State.CONNECTING,
    State.RESTORING,
    State.READY,
    State.RECONNECTING,
)
_EXPIRED, _CLOSED, _FAILED = State.WATCHDOG_EXPIRED, State.CLOSED, State.FAILED
_CLOSED_REASON = "closed by the client"
_UNDECODED: Any = object()


class SessionCore:
    """Every decision of one Deribit WebSocket session; see the package's docstring.

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
        self.state = _CONNECTING
        #: Why the session ended, once it has (CLOSED or FAILED).
        self.failure: str | None = None
        #: The exception that ended the first connection's attempts (the constructor raises it).
        self.failure_error: OpenApiException | None = None
        #: Whether the session has ended for good and said so (:class:`Closed` emitted).
        self.finished = False
        self.forked = False
        self._logout_until = math.inf
        outbox = self._outbox = Outbox()
        profile = self._profile = Profile(
            settings.heartbeat, settings.cancel_on_disconnect, settings.liveness_timeout
        )
        links = self._links = Links(outbox, settings.close_timeout)
        router = self._router = Router(
            outbox, settings.display, settings.call_timeout, profile.subscriptions, EFFECTS, self
        )
        tokens = self._tokens = Tokens(configuration, settings, outbox, router, links)
        self._restore = Restore(
            configuration, settings, profile, outbox, router, tokens, links, self._restored
        )
        self._backoff = Backoff(settings, outbox, rand)
        self._watchdog = WatchdogClock(settings.watchdog)

    # -- what every new connection gets ---------------------------------------------------------

    @property
    def heartbeat(self) -> float | None:
        """The heartbeat interval every new connection gets (kept up to date by calls)."""
        return self._profile.heartbeat

    @property
    def cancel_on_disconnect(self) -> bool:
        """Whether every new connection enables cancel-on-disconnect."""
        return self._profile.cancel_on_disconnect

    @property
    def subscriptions(self) -> dict[str, SubscriptionCallback]:
        """channel -> callback, renewed on every connection."""
        return self._profile.subscriptions

    def add_subscriptions(self, channels: Iterable[str], callback: SubscriptionCallback) -> None:
        """Deliver ``channels``' notifications to ``callback`` and renew them on every new
        connection (the subscribe call itself is the caller's)."""
        subscriptions = self._profile.subscriptions
        for channel in channels:
            subscriptions[channel] = callback

    def remove_subscriptions(self, channels: Iterable[str]) -> None:
        """Stop delivering and renewing ``channels``."""
        subscriptions = self._profile.subscriptions
        for channel in channels:
            subscriptions.pop(channel, None)

    def liveness_limit(self) -> float | None:
        """Seconds of silence after which a connection is declared dead (None: never)."""
        return self._profile.liveness_limit()

    @property
    def uses_key(self) -> bool:
        """Whether connections authenticate with ``public/auth`` (an API key, no fixed token)."""
        return self._tokens.uses_key

    @property
    def credentials_available(self) -> bool:
        """Whether any credential is configured (private calls are possible)."""
        return self._tokens.credentials_available

    # -- the driver's side: outputs and time ----------------------------------------------------

    def take_outputs(self) -> list[Output]:
        """What to do, in order, since the last call (the list is the caller's)."""
        return self._outbox.take()

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must be called next (monotonic seconds), None: not before some
        other input. A driver may call it earlier: nothing happens before its time."""
        times = [self._backoff.reconnect_at, self._logout_until]
        router = self._router
        if router.busy:
            times.append(router.sweep_at)
        limit = self._profile.liveness_limit()
        for link in self._links.by_number.values():
            times.append(link.step_deadline)
            times.append(link.send_at)
            times.append(link.close_deadline)
            if limit is not None and link.open:
                times.append(link.last_message + limit)
        tokens = self._tokens
        renewal = tokens.renewal
        due = renewal.deadline if renewal is not None else self._renewal_due_at()
        if due is not None:
            times.append(due)
        watchdog = self.watchdog_deadline()
        if watchdog is not None:
            times.append(watchdog)
        soonest = min(times)
        self._outbox.armed = soonest
        return None if soonest == math.inf else soonest

    def _renewal_due_at(self) -> float | None:
        return self._tokens.renewal_due_at(self.state is _READY)

    # -- starting, opening ----------------------------------------------------------------------

    def start(self, now: float, first_attempts: RetryPolicy) -> None:
        """Begin: the first connection is opened at the next :meth:`timer` (:data:`WAKE`).
        Failures of the first connection are retried as ``first_attempts`` says (no
        :class:`Reconnecting` events); when it gives up, the session is FAILED and
        :attr:`failure_error` is what to raise."""
        self._watchdog.check_in(now)
        self._backoff.start(first_attempts, now)

    def timer(self, now: float) -> None:
        """Do what is due at ``now``."""
        if self._backoff.due(now):
            self._links.open_next()
            self.state = _CONNECTING
        for link in list(self._links.by_number.values()):
            self._link_timers(link, now)
        self._tokens.timer(now, self.state is _READY)
        if now >= self._logout_until:
            self._logout_until = math.inf
            for link in self._links.live():
                self._links.close(link, 1000, "", _CLOSED_REASON, now)
        router = self._router
        if now >= router.sweep_at or (router.sweep_at == math.inf and router.busy):
            router.sweep(now, self.state)
        self.watchdog_check(now)

    def opened(self, number: int, now: float, fixed_token: str | None = None) -> None:
        """Connection ``number`` is open (handshake done). ``fixed_token``: the token to send
        with private calls when the configuration has one (``access_token``, or what
        ``token_provider`` gave, called by the driver where a call may block)."""
        links = self._links
        link = links.by_number.get(number)
        if link is None or link.state is not OPENING:
            self._outbox.put(Abort(number, 1000, ""))
            return
        if self.state in REFUSING or link is not links.current:
            # Closed (or the watchdog fired) while it opened: never announced, gone at once.
            links.ended(link)
            self._outbox.put(Abort(number, 1000, ""))
            self._finish_if_closed(now)
            return
        link.state = RESTORING
        link.last_message = now
        link.fixed_token = fixed_token or None
        self.state = _RESTORING
        self._outbox.emit(Connected(self.settings.url, number, now))
        limit = self._profile.liveness_limit()
        if limit is not None:
            self._outbox.at(now + limit)
        self._restore.begin(link, now)

    def open_failed(self, number: int, error: OpenApiException, now: float) -> None:
        """Connection ``number`` could not be opened: ``error`` says why (an HTTP status for a
        refused handshake, status 0 when no connection was made, ``ApiValueError`` for a setting
        or credential the client refuses)."""
        links = self._links
        link = links.by_number.get(number)
        if link is None:
            return
        links.ended(link)
        if link is not links.current or self.state in REFUSING:
            self._finish_if_closed(now)
            return
        self._attempt_failed(error, link, now)

    def _restored(self, link: Link, now: float) -> None:
        """``link``'s restore is done: the session is ready, the queued calls go."""
        link.state = READY
        self.state = _READY
        if self._backoff.restored():
            deadline = self._watchdog.begin(now)  # the watchdog counts from here
            if deadline is not None:
                self._outbox.at(deadline)
        self._outbox.emit(
            SessionRestored(
                link.number, self._profile.heartbeat, bool(link.cod), link.channels, now
            )
        )
        self._router.release(link, now)
        due = self._renewal_due_at()
        if due is not None:
            self._outbox.at(due)

    # -- calls ----------------------------------------------------------------------------------

    def submit(self, call: Call, now: float) -> str | None:
        """Take ``call``: the text to send on the current connection, or None when it waits
        (queued until the session is ready, at most ``call.connect_timeout``).

        :raises ApiException: the session refuses calls (closed, failed, watchdog expired), or
            the request is larger than Deribit accepts.
        """
        state = self.state
        if state is _READY:
            link = self._links.current
            assert link is not None
            return self._router.dispatch(call, link, now, raising=True)
        if state in REFUSING:
            raise self._refusal()
        self._router.enqueue(call, now)
        return None

    def expire(self, call: Call, now: float) -> float | None:
        """The caller of ``call`` waited until its :attr:`~Call.deadline`: None when the call is
        over (its outcome is set: a timeout, unless it was answered meanwhile), else the new
        deadline to wait for (it was sent meanwhile)."""
        return self._router.expire(call, now, self.state)

    def abandon(self, call: Call) -> None:
        """Its caller stopped waiting (interrupted, or its task cancelled): forget ``call``; a
        late answer is dropped."""
        self._router.abandon(call)

    def reauthenticate(self, credential: str, now: float) -> bool | Call:
        """After 13009 for ``credential``: False when no fresh credential can be had (a fixed
        ``access_token``, or no open connection), True when one is in place, or a :class:`Call`
        to wait on (like a call: its ``error`` is set when authenticating failed) while the
        connection authenticates again. A session-scoped token that had worked is announced
        evicted (:class:`SessionEvicted`)."""
        return self._tokens.reauthenticate(credential, now)

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
        return self.state not in REFUSING

    # -- messages -------------------------------------------------------------------------------

    def receive(self, number: int, raw: Data, now: float, message: Any = _UNDECODED) -> None:
        """A message arrived on connection ``number`` (``message``: ``raw`` already decoded by
        :func:`decode`, outside any lock; it is decoded here otherwise)."""
        link = self._links.by_number.get(number)
        if link is None or link.state is ENDED:
            return
        link.last_message = now
        if message is _UNDECODED:
            message = decode(raw, self.settings.display)
        if message is None:
            return
        try:
            self._router.route(link, message, raw, now)
        except Exception:  # one message that cannot be handled: never the connection
            self._outbox.log(
                logging.ERROR,
                "a message from %s could not be handled; it was dropped",
                self.settings.display,
                exc_info=sys.exc_info()[1],
            )

    # The router's :class:`~.routing.Answers`: the answers to the session's own requests.

    def answered(self, request: Request, message: dict[str, Any], raw: Data, now: float) -> None:
        kind = request.kind
        if kind is RENEW:
            self._tokens.renewal_answered(request, message, raw, now)
        elif kind is REAUTH:
            self._tokens.reauth_answered(request, message, raw, now)
        else:
            self._restore.answered(request, message, raw, now)

    def ambiguous(self, request: Request, error: ApiProtocolError, now: float) -> None:
        kind = request.kind
        if kind in STEPS:
            self._restore.failed(request.link, error, now)
        elif kind is RENEW:
            self._tokens.renewal_failed(error, now)
        elif kind is REAUTH and request.ticket is not None:
            self._router.complete(request.ticket, error)

    def changed(self, effect: SessionEffect, call: Call, link: Link, now: float) -> None:
        """Adopt what a successful call changed, so that new connections get it too."""
        if self._profile.apply(effect, call, link):
            limit = self._profile.liveness_limit()
            if limit is not None:
                self._outbox.at(link.last_message + limit)

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
        link = self._links.by_number.get(number)
        if link is None or link.state is ENDED:
            return
        code, description = how_it_ended(link, received, sent, failure)
        self._end_link(link, code, description, cause, now)

    def _end_link(
        self,
        link: Link,
        code: int | None,
        description: str,
        cause: BaseException | None,
        now: float,
    ) -> None:
        """``link`` is over: :class:`Disconnected`, its calls failed, then what comes next."""
        was_restoring = link.state is RESTORING
        links = self._links
        links.ended(link)
        may_have_fired = link.authorized and link.cod is not False and not link.logged_out
        self._outbox.emit(Disconnected(link.number, code, description, may_have_fired, now))
        self._router.fail_calls_of(link, description, cause)
        tokens = self._tokens
        if tokens.renewal is not None and tokens.renewal.link is link:
            tokens.renewal = None
        if link is not links.current:
            self._finish_if_closed(now)
            return
        links.current = None
        if self.state in REFUSING:
            self._finish_if_closed(now)
            return
        if link.restore_error is not None or was_restoring:
            error = link.restore_error or ApiConnectionError(
                f"the connection was lost while the session was restored: {description}"
            )
            self._attempt_failed(error, link, now)
            return
        lost = ApiConnectionError(description)
        gave_up = self._backoff.lost(lost, link.throttled or link.renewal_failed, now)
        self._next_attempt(gave_up, lost, now)

    def _attempt_failed(self, error: OpenApiException, link: Link, now: float) -> None:
        """An attempt to establish the session failed with ``error``: try again later, or
        give up."""
        if self.state in REFUSING:
            self._finish_if_closed(now)
            return
        self._next_attempt(self._backoff.failed(error, link.throttled, now), error, now)

    def _next_attempt(self, gave_up: str | None, error: OpenApiException, now: float) -> None:
        if gave_up is not None:
            self._fail(gave_up, now, error)
        else:
            self.state = _CONNECTING if self._backoff.first else _RECONNECTING

    def _cut(self, link: Link, description: str, now: float) -> None:
        """End ``link`` at once (dead): cut it, and count it as ended now."""
        self._outbox.put(Abort(link.number, 1001, ""))
        self._end_link(link, None, description, None, now)

    def _link_timers(self, link: Link, now: float) -> None:
        if link.state is ENDED:
            return
        if now >= link.close_deadline:
            self._cut(link, link.closing or _CLOSED_REASON, now)
            return
        if not link.open:
            return
        limit = self._profile.liveness_limit()
        if limit is not None and now >= link.last_message + limit:
            self._cut(
                link, f"nothing received for {limit:g} s, so the connection was declared dead", now
            )
            return
        self._restore.timers(link, now)

    # -- the watchdog ---------------------------------------------------------------------------

    def check_in(self, now: float) -> None:
        """The program is alive: the watchdog's deadline moves to ``now + watchdog``. After the
        watchdog fired, this opens a new connection (at the next :meth:`timer`, :data:`WAKE`)
        and the session is restored."""
        self._watchdog.check_in(now)
        if self.state is not _EXPIRED:
            return
        self.state = _RECONNECTING
        self._backoff.resume(now)

    def watchdog_deadline(self) -> float | None:
        """When the watchdog fires unless a check-in comes first; None when it is off, has
        fired, or the session was never ready yet (the watchdog counts from the first
        :class:`SessionRestored`: opening the session is not the program's loop, and the first
        connection may take longer than the period). Safe to read from any thread without the
        driver's lock (a stale value only makes the reader ask :meth:`watchdog_check` again)."""
        if self.state in REFUSING:
            return None
        return self._watchdog.deadline()

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
        self._backoff.stop()
        self._tokens.renewal = None
        period = self._watchdog.period or 0.0
        since = when - (deadline - period)
        live = self._links.live()
        for link in live:
            if link.state is OPENING:
                link.closing = "closed by the watchdog"  # :meth:`opened` cuts it, unannounced
            else:
                self._outbox.put(Abort(link.number, 1000, "watchdog expired"))
        announced = [link for link in live if link.state is not OPENING]
        self._outbox.emit(
            WatchdogExpired(
                announced[0].number if announced else None,
                since,
                max(0.0, when - deadline),
                now,
            )
        )
        description = self._watchdog.description(since)
        for link in announced:
            self._end_link(link, None, description, None, now)
        self._router.refuse_queued(self._refusal)
        return True

    # -- ending ---------------------------------------------------------------------------------

    def close(self, now: float, logout: bool = False) -> None:
        """End the session: optionally ``private/logout`` first (Deribit then closes the
        connection without firing cancel-on-disconnect), then close the connection. Calls are
        refused from now on; :class:`Closed` comes once the connection has ended."""
        if self.state in (_CLOSED, _FAILED):
            return
        self.state = _CLOSED
        self.failure = _CLOSED_REASON
        self._backoff.stop()
        self._tokens.renewal = None
        self._router.refuse_queued(self._refusal)
        link = self._links.current
        params = self._logout_params(link) if logout and link is not None else None
        if link is not None and link.state is READY and params is not None:
            link.logged_out = True
            self._router.send(link, "private/logout", params, DISCARD, now)
            self._logout_until = now + self.settings.close_timeout
            self._outbox.at(self._logout_until)
            return
        for live in self._links.live():
            self._links.close(live, 1000, "", _CLOSED_REASON, now)
        self._finish_if_closed(now)

    def _logout_params(self, link: Link) -> dict[str, Any] | None:
        """The parameters of ``private/logout``, or None without credentials. A fixed token is
        the user's to keep, so only tokens this session obtained are invalidated."""
        if not self._tokens.credentials_available:
            return None
        token = link.fixed_token or self._configuration.access_token
        if token:
            return {"access_token": token, "invalidate_token": False}
        return {"invalidate_token": True}

    def fail(self, reason: str, now: float) -> None:
        """End the session as FAILED for a fault of the driver's (its supervisor failed): a
        connection it was opening is forgotten (nobody will report on it)."""
        links = self._links
        for link in links.live():
            if link.state is OPENING:
                links.ended(link)
        self._fail(reason, now, None)

    def _fail(self, reason: str, now: float, error: OpenApiException | None) -> None:
        if self.state is _CLOSED:
            return
        self._outbox.log(logging.ERROR, "the WebSocket session ended: %s", reason)
        self.state = _FAILED
        self.failure = reason
        self.failure_error = error
        self._backoff.stop()
        self._tokens.renewal = None
        self._router.refuse_queued(self._refusal)
        for link in self._links.live():
            self._links.close(link, 1000, "", f"closed: {reason}", now)
        self._finish_if_closed(now)

    def _finish_if_closed(self, now: float) -> None:
        """Once the session is CLOSED or FAILED and no connection is left: :class:`Closed`."""
        state = self.state
        if self.finished or state not in (_CLOSED, _FAILED) or self._links.live():
            return
        self.finished = True
        self._logout_until = math.inf
        self._outbox.emit(Closed(self.failure or _CLOSED_REASON, state is _FAILED, now))

    def after_fork(self) -> None:
        """In a child process made by ``os.fork()``: the connections are the parent's. Forget
        them without a single output (nothing may touch them), and refuse every call."""
        self.forked = True
        self.state = _CLOSED
        self.failure = FORKED
        self.finished = True
        self._links.clear()
        self._router.clear()
        self._outbox.items = []
        self._backoff.stop()
        self._logout_until = math.inf
        self._tokens.renewal = None

    # -- where the connections stand ------------------------------------------------------------

    @property
    def connection(self) -> int | None:
        """The number of the connection calls go on, if one is open."""
        link = self._links.current
        return link.number if link is not None and link.state is not ENDED else None
