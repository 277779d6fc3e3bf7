"""Deadlines: a moment on the monotonic clock, and the setting that put it there."""

from __future__ import annotations

import time
from typing import NamedTuple

__all__ = ["Deadline"]


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
