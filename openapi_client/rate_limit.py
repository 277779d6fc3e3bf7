"""Deribit's credit model for non-matching-engine requests.

Deribit gives each sub-account a pool of 50,000 credits, charges 500 credits a request and refills
10,000 credits a second: a burst of 100 requests, then 20 a second. :class:`RateLimit` expresses
the same model in requests rather than credits. The client uses :meth:`RateLimit.acquire` to wait
for its turn; the simulator uses :meth:`RateLimit.try_acquire` to refuse a request with 10028.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from openapi_client.locks import new_lock

__all__ = ["DEFAULT_MARGIN", "RateLimit"]

#: Seconds a request waits past the moment the pool can pay for it (see ``RateLimit.margin``).
DEFAULT_MARGIN = 0.01


class RateLimit:
    """A thread-safe token bucket matching Deribit's credit model.

    :param per_second: sustained requests per second the pool refills (Deribit: 20).
    :param burst: requests a full pool allows back to back (Deribit: 100).
    :param margin: seconds :meth:`acquire` lets a request wait beyond the moment this pool can
        pay for it. Deribit's pool is charged when a request *arrives*, and the first request
        (which also opens the connection) arrives later after taking its turn than the ones that
        follow, so Deribit's pool runs that much behind this one. The margin absorbs that
        difference; it delays a request only when the pool is (nearly) empty and never lowers
        the sustained rate. Raise it to about the connection set-up time on a slow network.
    :param clock: monotonic clock in seconds; replaceable for tests.
    :param sleep: how a caller waits for its turn (``time.sleep``); a test on a manual clock
        passes the clock's ``advance``, so that waiting moves its time instead of taking any.
    """

    __slots__ = (
        "_available",
        "_clock",
        "_lock",
        "_updated",
        "burst",
        "margin",
        "per_second",
        "sleep",
    )

    def __init__(
        self,
        per_second: float = 20.0,
        burst: int = 100,
        *,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if isinstance(per_second, bool) or not isinstance(per_second, (int, float)):
            raise TypeError(f"per_second must be a number, got {per_second!r}")
        if not (math.isfinite(per_second) and per_second > 0):
            raise ValueError(f"per_second must be a finite number > 0, got {per_second!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be a whole number >= 1, got {burst!r}")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)):
            raise TypeError(f"margin must be a number of seconds, got {margin!r}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number of seconds >= 0, got {margin!r}")
        self.per_second = float(per_second)
        self.burst = burst
        self.margin = float(margin)
        self._clock = clock
        #: Waits the given seconds (see the ``sleep`` parameter).
        self.sleep = sleep
        self._lock = new_lock()
        self._available = float(burst)
        self._updated = clock()

    def __repr__(self) -> str:
        text = f"RateLimit(per_second={self.per_second:g}, burst={self.burst}"
        if self.margin != DEFAULT_MARGIN:
            text += f", margin={self.margin:g}"
        return text + ")"

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        self._updated = now
        if elapsed > 0:
            self._available = min(float(self.burst), self._available + elapsed * self.per_second)

    def reserve(self) -> float:
        """Claim the next request slot and return how many seconds to wait before using it.

        Slots are handed out in call order: a caller that reserves while the pool is empty is
        placed behind earlier callers, so concurrent threads never overspend the pool. The wait
        ends ``margin`` seconds after the pool has refilled enough to pay for the slot.
        """
        with self._lock:
            self._refill()
            self._available -= 1.0
            available = self._available
        return max(0.0, self.margin - available / self.per_second)

    def refund(self) -> None:
        """Give back a slot :meth:`reserve` claimed for a request that will not be sent (its
        wait was refused or interrupted), so that later callers do not wait for it."""
        with self._lock:
            self._refill()
            self._available = min(float(self.burst), self._available + 1.0)

    def acquire(self) -> None:
        """Wait until a request may be sent under this limit, then return."""
        delay = self.reserve()
        if delay > 0.0:
            try:
                self.sleep(delay)
            except BaseException:  # interrupted: no request follows
                self.refund()
                raise

    def try_acquire(self) -> bool:
        """Spend one request if the pool holds one now; never waits."""
        with self._lock:
            self._refill()
            if self._available >= 1.0:
                self._available -= 1.0
                return True
            return False
