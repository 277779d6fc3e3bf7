"""Deadlines: a moment on the monotonic clock, and the setting that put it there."""

from __future__ import annotations

import time
from typing import NamedTuple

__all__ = ["RECHECK_SECONDS", "Deadline"]


#: Seconds a thread waiting on a plain lock for another thread (a free connection, a result)
#: sleeps before it looks again by itself. The library's waits do not use
#: ``threading.Condition``, whose Python-level ``wait()`` an interrupt can leave half done; a
#: wake-up an interrupt cut short costs a waiter at most this long.
RECHECK_SECONDS = 0.25


class Deadline(NamedTuple):
    """The moment (``time.monotonic()``) by which something must be done.

    :ivar at: the moment, in ``time.monotonic()`` seconds.
    :ivar setting: the setting that set it (``"attempt_timeout"``, ``"call_timeout"``), so that
        an error can say which one ran out.
    :ivar seconds: that setting's value, for the message.
    """

    at: float
    setting: str
    seconds: float

    @classmethod
    def after(
        cls, seconds: float, setting: str, within: Deadline | None = None
    ) -> Deadline:
        """``seconds`` from now, or ``within`` if that comes first."""
        deadline = cls(time.monotonic() + seconds, setting, seconds)
        if within is not None and within.at < deadline.at:
            return within
        return deadline

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    def describe(self) -> str:
        """``attempt_timeout (15 s)``: which limit this is, for messages."""
        return f"{self.setting} ({self.seconds:g} s)"
