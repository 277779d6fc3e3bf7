"""What a connection is to the session core: a :class:`Link`, and the :class:`Links` it has.

A link is numbered when the core asks for it (:class:`Open`) and lives until the core counts it
as ended. It carries what the other parts of the core note about that connection (its restore
step, its token, its cancel-on-disconnect, why the client closes it) and its timers: the time of
its last message (liveness), and the end of its closing handshake.
"""

from __future__ import annotations

import math

from openapi_client.exceptions import OpenApiException
from openapi_client.redaction import redact
from openapi_client.websocket.core.outputs import Close, Open, Outbox

__all__ = [
    "CLOSE_GRACE",
    "CLOSING",
    "ENDED",
    "OPENING",
    "READY",
    "RESTORING",
    "Link",
    "Links",
    "how_it_ended",
]

#: Seconds a connection being closed gets beyond the close timeout (which the driver's transport
#: keeps) before the session cuts it and counts it as ended.
CLOSE_GRACE = 1.0

# Where a link stands.
OPENING, RESTORING, READY, CLOSING, ENDED = range(5)


class Link:
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
        self.state = OPENING
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
        return self.state in (RESTORING, READY)


class Links:
    """The connections the core has not yet counted as ended, and the one calls go on.

    :param outbox: where :class:`Open` and :class:`Close` go.
    :param close_timeout: seconds the closing handshake may take.
    """

    __slots__ = ("_close_timeout", "_number", "_outbox", "by_number", "current")

    def __init__(self, outbox: Outbox, close_timeout: float) -> None:
        self._outbox = outbox
        self._close_timeout = close_timeout
        self._number = 0
        self.by_number: dict[int, Link] = {}
        #: The connection calls go on (the newest), if any.
        self.current: Link | None = None

    def open_next(self) -> Link:
        """A new connection, the current one from now on: :class:`Open` it."""
        self._number += 1
        link = Link(self._number)
        self.by_number[link.number] = link
        self.current = link
        self._outbox.put(Open(link.number))
        return link

    def live(self) -> list[Link]:
        return [link for link in self.by_number.values() if link.state is not ENDED]

    def ended(self, link: Link) -> None:
        """``link`` is over: forget it, its timers off."""
        link.state = ENDED
        link.step_deadline = link.send_at = link.close_deadline = math.inf
        self.by_number.pop(link.number, None)

    def close(self, link: Link, code: int, reason: str, why: str, now: float) -> None:
        """Close ``link`` with the closing handshake; it has ended once the driver says it is
        lost (or, at the latest, :data:`CLOSE_GRACE` after the close timeout)."""
        if link.state is ENDED or link.closing is not None:
            return
        link.closing = why
        if link.state is OPENING:
            return  # the driver is still opening it: ``opened`` closes it
        link.state = CLOSING
        link.close_deadline = now + self._close_timeout + CLOSE_GRACE
        self._outbox.at(link.close_deadline)
        self._outbox.put(Close(link.number, code, reason))

    def clear(self) -> None:
        self.by_number.clear()
        self.current = None


def how_it_ended(
    link: Link,
    received: tuple[int, str] | None,
    sent: tuple[int, str] | None,
    failure: str | None,
) -> tuple[int | None, str]:
    """The close code and a description of ``link``'s end (redacted: a server may echo a
    credential in its close reason)."""
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
