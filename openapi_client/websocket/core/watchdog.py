"""The watchdog's deadline: when a session whose program stopped checking in is cut.

The deadline is the last check-in plus the period, counted from the first time the session was
ready (opening it is not the program's loop, and may take longer than the period). This module
keeps the time; the session cuts its connection when the deadline passes, and
:mod:`openapi_client.websocket.watchdog` is the thread that fires it on time whatever the
program's threads do.
"""

from __future__ import annotations

__all__ = ["MIN_WATCHDOG", "WatchdogClock"]

#: The shortest watchdog period, in seconds.
MIN_WATCHDOG = 1.0


class WatchdogClock:
    """The last check-in and the deadline it makes.

    :param period: seconds without a check-in after which the session is cut; None: off.
    """

    __slots__ = ("checked_in_at", "counting", "period")

    def __init__(self, period: float | None) -> None:
        self.period = period
        self.checked_in_at = 0.0
        #: Whether it counts yet (from the first time the session was ready).
        self.counting = False

    def check_in(self, now: float) -> None:
        self.checked_in_at = now

    def begin(self, now: float) -> float | None:
        """The session is ready for the first time: count from ``now``; the deadline (None:
        off)."""
        self.counting = True
        period = self.period
        if period is None:
            return None
        self.checked_in_at = now
        return now + period

    def deadline(self) -> float | None:
        """When it fires unless a check-in comes first; None when it is off or not counting."""
        period = self.period
        if period is None or not self.counting:
            return None
        return self.checked_in_at + period

    def description(self, since: float) -> str:
        """How a connection cut by it ended."""
        return (
            f"closed by the watchdog: no check_in() for {since:.1f} s (watchdog {self.period:g} s)"
        )
