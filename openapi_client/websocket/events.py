"""What a session tells the program: typed events, delivered to a callback and an iterator.

Callbacks (``on_event`` and subscription callbacks) run on one dispatcher thread of their own,
never on the thread that reads the socket, so a slow callback never delays a heartbeat answer.
Both queues are bounded: when a callback falls behind by :data:`MAX_PENDING_CALLBACKS`, or nobody
iterates and :data:`MAX_BACKLOG` events wait, the oldest are dropped (and a warning logged).

Every text an event carries is redacted when it is published (a server may echo a credential in a
close reason), and so is every line of the session's logger, ``openapi_client.websocket``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, NamedTuple, Union

from openapi_client.redaction import install_filter, redact

__all__ = [
    "MAX_BACKLOG",
    "MAX_PENDING_CALLBACKS",
    "Authenticated",
    "Closed",
    "Connected",
    "Disconnected",
    "Event",
    "EventHub",
    "HeartbeatAnswered",
    "Reconnecting",
    "SessionRestored",
    "TokenRefreshed",
    "as_dict",
    "logger",
]

#: The session's logger; its lines are redacted like every line the library writes.
logger = install_filter(logging.getLogger("openapi_client.websocket"))

#: Events kept for :meth:`WebSocketApiClient.events` until it takes them.
MAX_BACKLOG = 1000
#: Callback runs waiting for the dispatcher thread.
MAX_PENDING_CALLBACKS = 10_000

#: Seconds :meth:`EventHub.close` waits for callbacks still queued.
_DRAIN_SECONDS = 2.0


class Connected(NamedTuple):
    """A WebSocket connection opened (its settings are not applied yet)."""

    url: str
    #: 1 for the first connection of the client, 2 for the next, and so on.
    connection: int
    #: ``time.time()`` when it happened.
    time: float


class Authenticated(NamedTuple):
    """The connection was authenticated with ``public/auth`` (API key credentials)."""

    connection: int
    #: The scope Deribit granted, e.g. ``"session:openapi-client ..."``.
    scope: str
    #: Seconds the token lives.
    expires_in: float
    time: float


class TokenRefreshed(NamedTuple):
    """The token was renewed ahead of its expiry, on the open connection."""

    connection: int
    scope: str
    expires_in: float
    time: float


class HeartbeatAnswered(NamedTuple):
    """Deribit sent a ``test_request`` and the session answered it with ``public/test``."""

    connection: int
    #: Seconds from reading the ``test_request`` to sending the answer.
    answered_in: float
    time: float


class SessionRestored(NamedTuple):
    """Every setting is applied on the connection: calls go ahead. Sent after the first
    connection too (the session is ready), and after every reconnect."""

    connection: int
    #: The heartbeat interval set, in seconds; None when heartbeats are off.
    heartbeat: float | None
    #: Whether cancel-on-disconnect is on for this connection.
    cancel_on_disconnect: bool
    #: The channels subscribed again.
    channels: tuple[str, ...]
    time: float


class Disconnected(NamedTuple):
    """The connection ended."""

    connection: int
    #: The WebSocket close code (e.g. 1000, 4000 for "heartbeat close"); None when the
    #: connection dropped without a close frame or was declared dead by the client.
    code: int | None
    reason: str
    #: Whether Deribit may have cancelled the orders of this connection: cancel-on-disconnect
    #: was on (or its state unknown) and the connection did not end with ``private/logout``.
    cancel_on_disconnect_may_have_fired: bool
    time: float


class Reconnecting(NamedTuple):
    """The session will open a new connection after ``delay`` seconds."""

    #: 1 for the first attempt after a disconnection, 2 for the next, and so on.
    attempt: int
    delay: float
    #: Why the previous connection or attempt failed.
    error: str
    time: float


class Closed(NamedTuple):
    """The session ended for good: :meth:`close` was called, or it gave up reconnecting."""

    reason: str
    #: True when it gave up (``max_reconnects`` reached, or credentials refused).
    failed: bool
    time: float


Event = Union[
    Connected,
    Authenticated,
    TokenRefreshed,
    HeartbeatAnswered,
    SessionRestored,
    Disconnected,
    Reconnecting,
    Closed,
]


def as_dict(event: Event) -> dict[str, Any]:
    """``{"event": "Disconnected", "code": 4000, ...}``: an event as JSON-ready data."""
    data: dict[str, Any] = {"event": type(event).__name__}
    data.update(event._asdict())
    return data


Job = tuple[Callable[..., Any], tuple[Any, ...]]


class EventHub:
    """Queues events for the iterator and runs callbacks on the dispatcher thread.

    :param on_event: called with every event (on the dispatcher thread), or None.
    """

    def __init__(self, on_event: Callable[[Event], Any] | None) -> None:
        self._on_event = on_event
        self._lock = threading.Lock()
        self._backlog: collections.deque[Event] = collections.deque()
        self._backlog_ready = threading.Condition(self._lock)
        self._jobs: collections.deque[Job] = collections.deque()
        self._jobs_ready = threading.Condition(threading.Lock())
        self._dispatcher: threading.Thread | None = None
        self._closed = False
        self._dropped = 0

    # -- producing ------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Publish ``event``, its texts redacted (never blocks)."""
        event = _redacted(event)
        logger.debug("event %r", event)
        with self._lock:
            if len(self._backlog) >= MAX_BACKLOG:
                self._backlog.popleft()
            self._backlog.append(event)
            self._backlog_ready.notify_all()
        if self._on_event is not None:
            self.run_callback(self._on_event, event)

    def run_callback(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the dispatcher thread (never blocks)."""
        with self._jobs_ready:
            if self._closed and self._dispatcher is None:
                return
            if len(self._jobs) >= MAX_PENDING_CALLBACKS:
                self._jobs.popleft()
                self._dropped += 1
                if self._dropped == 1:
                    logger.warning(
                        "callbacks fall behind: more than %d wait; dropping the oldest",
                        MAX_PENDING_CALLBACKS,
                    )
            self._jobs.append((callback, args))
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch, name="openapi_client-ws-callbacks", daemon=True
                )
                self._dispatcher.start()
            self._jobs_ready.notify()

    def _dispatch(self) -> None:
        while True:
            with self._jobs_ready:
                while not self._jobs:
                    if self._closed:
                        return
                    self._jobs_ready.wait()
                callback, args = self._jobs.popleft()
                if not self._jobs:
                    self._dropped = 0
            try:
                callback(*args)
            except BaseException:  # even SystemExit: the thread serves every later callback
                logger.exception("a WebSocket session callback raised; the session carries on")

    # -- consuming ------------------------------------------------------------------------------

    def iterate(self, timeout: float | None) -> Iterator[Event]:
        """Events as they come; ends after :class:`Closed`, or when ``timeout`` seconds pass
        without one."""
        while True:
            with self._lock:
                if not self._backlog:
                    if self._closed:
                        return
                    self._backlog_ready.wait_for(
                        lambda: bool(self._backlog) or self._closed, timeout
                    )
                    if not self._backlog:
                        return
                event = self._backlog.popleft()
            yield event
            if isinstance(event, Closed):
                return

    # -- ending ---------------------------------------------------------------------------------

    def close(self) -> None:
        """No more events: wake iterators, let the dispatcher finish what is queued (waiting
        at most a few seconds, and not at all from a callback)."""
        with self._lock:
            self._closed = True
            self._backlog_ready.notify_all()
        with self._jobs_ready:
            dispatcher = self._dispatcher
            self._jobs_ready.notify_all()
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(_DRAIN_SECONDS)


def _redacted(event: Event) -> Event:
    """``event`` with every text field (and every text in a tuple field) redacted."""
    changed: dict[str, Any] = {}
    for name, value in zip(event._fields, event):
        if type(value) is str:
            cleaned: Any = redact(value)
        elif type(value) is tuple:
            cleaned = tuple(redact(item) if type(item) is str else item for item in value)
        else:
            continue
        if cleaned != value:
            changed[name] = cleaned
    return event._replace(**changed) if changed else event


def now() -> float:
    """The wall-clock time events carry."""
    return time.time()
