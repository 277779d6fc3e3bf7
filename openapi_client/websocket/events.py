"""What a session tells the program: typed events (small ``NamedTuple`` records).

The session core builds them (every text redacted: a server may echo a credential in a close
reason) with its own monotonic ``now`` as ``time``; a driver publishes each one through
:func:`published`, which puts the wall-clock time in. Every line of the session's logger,
``openapi_client.websocket``, is redacted too.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple, Union, get_args

from openapi_client.redaction import install_filter, redact

__all__ = [
    "Authenticated",
    "Closed",
    "Connected",
    "Disconnected",
    "Event",
    "HeartbeatAnswered",
    "Reconnecting",
    "SessionEvicted",
    "SessionRestored",
    "TokenRefreshed",
    "WatchdogExpired",
    "as_dict",
    "logger",
    "published",
    "redacted",
]

#: The session's logger; its lines are redacted like every line the library writes.
logger = install_filter(logging.getLogger("openapi_client.websocket"))


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


class SessionEvicted(NamedTuple):
    """Deribit refused the session's token (13009) after it had worked: the named session it
    belongs to (``session:NAME``) is gone. Deribit keeps at most 16 sessions per API key and
    drops the shortest-lived one for a 17th, so another process using the same key is the
    likely cause. The session authenticates again at once and goes on."""

    connection: int
    #: The scope of the refused token, e.g. ``"session:openapi-client ..."``.
    scope: str
    #: What happened and what to check, in a sentence.
    reason: str
    time: float


class WatchdogExpired(NamedTuple):
    """No :meth:`~openapi_client.websocket.WebSocketApiClient.check_in` came for ``watchdog``
    seconds: the session closed its connection without logging out (so Deribit's
    cancel-on-disconnect cancels its orders) and waits for the next check-in to reconnect."""

    #: The connection closed; None when none was open (the session was reconnecting).
    connection: int | None
    #: Seconds since the last check-in (or since the session started).
    since_check_in: float
    #: Seconds the watchdog fired after its deadline.
    late: float
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
    SessionEvicted,
    WatchdogExpired,
    Closed,
]

#: Every event type (for ``isinstance``).
EVENT_TYPES: tuple[type, ...] = get_args(Event)


def as_dict(event: Event) -> dict[str, Any]:
    """``{"event": "Disconnected", "code": 4000, ...}``: an event as JSON-ready data."""
    data: dict[str, Any] = {"event": type(event).__name__}
    data.update(event._asdict())
    return data


def redacted(event: Event) -> Event:
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


def published(event: Event, monotonic: float, wall: float | None = None) -> Event:
    """``event`` as a program sees it: the session core stamps events with its monotonic
    ``now``; published at ``monotonic`` (same clock), the event carries the wall-clock time
    (``time.time()`` unless ``wall`` is given), and a :class:`HeartbeatAnswered` the seconds
    from reading the ``test_request`` to now (publish it after its answer has been written)."""
    stamp = time.time() if wall is None else wall
    if type(event) is HeartbeatAnswered:
        return event._replace(answered_in=max(0.0, monotonic - event.time), time=stamp)
    return event._replace(time=stamp)
