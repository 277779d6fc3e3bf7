"""What the session core says to its driver: the session's states, the outputs, and the calls.

The core never does I/O. Every input a driver gives it leaves outputs in an :class:`Outbox`, which
the driver takes (:meth:`~openapi_client.websocket.core.session.SessionCore.take_outputs`) and
performs in order: :class:`Send`, :class:`Open`, :class:`Close`, :class:`Abort`, a completed
:class:`Call`, an event, :class:`Deliver`, :class:`Log`, and :data:`WAKE`. :class:`CoreSettings`
is what a session is, fixed when it is made.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Union

from openapi_client.redaction import redacted_exception
from openapi_client.retry import RetryPolicy
from openapi_client.websocket.events import Event, logger, redacted
from openapi_client.websocket.jsonrpc import Data, request_tail

if TYPE_CHECKING:
    from openapi_client.websocket.core.links import Link

__all__ = [
    "WAKE",
    "Abort",
    "Call",
    "Close",
    "CoreSettings",
    "Deliver",
    "Log",
    "Open",
    "Outbox",
    "Output",
    "Send",
    "State",
    "SubscriptionCallback",
]

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


#: The states in which calls are refused at once.
REFUSING = frozenset({State.WATCHDOG_EXPIRED, State.CLOSED, State.FAILED})


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
        "answer_by",
        "body",
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
        #: The request's text after its id (encoded once, here).
        self.body = request_tail(method, params)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.checked = checked
        self.handle: Any = None
        self.id = 0
        self.link: Link | None = None
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


_EMPTY: list[Output] = []


class Outbox:
    """The outputs of the core's inputs, in order, until the driver takes them; and the time the
    driver was last told to look again (so that something due sooner asks with :data:`WAKE`)."""

    __slots__ = ("armed", "items")

    def __init__(self) -> None:
        self.items: list[Output] = []
        #: The soonest deadline the driver knows of (from ``next_deadline`` or a :data:`WAKE`).
        self.armed = math.inf

    def take(self) -> list[Output]:
        """The outputs since the last call (the list is the caller's; never change it)."""
        items = self.items
        if not items:
            return _EMPTY
        self.items = []
        return items

    def put(self, output: Output) -> None:
        self.items.append(output)

    def at(self, deadline: float) -> None:
        """Something is due at ``deadline``: have the driver look sooner if it must."""
        if deadline < self.armed:
            self.armed = deadline
            self.items.append(WAKE)

    def emit(self, event: Event) -> None:
        self.items.append(redacted(event))

    def log(
        self, level: int, message: str, *args: Any, exc_info: BaseException | None = None
    ) -> None:
        """A line for the session's logger, written by the driver (outside its lock: a log
        handler is code the session does not own)."""
        if logger.isEnabledFor(level):
            self.items.append(Log(level, message, args, exc_info))
