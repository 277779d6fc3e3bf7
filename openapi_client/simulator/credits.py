"""Deribit's credit model for non-matching-engine requests, as the simulator enforces it.

Each sub-account has a pool of credits; a request costs :data:`CREDITS_PER_REQUEST`, the pool
holds at most :data:`POOL_CREDITS` and refills at :data:`REFILL_CREDITS_PER_SECOND`. A request
that finds too few credits is refused (error 10028). HTTP and WebSocket requests share the pool.

This is the simulator's own implementation, kept apart from the client's ``rate_limit`` module on
purpose: the simulator judges the client, so it must not share the code it judges.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = [
    "CREDITS_PER_REQUEST",
    "POOL_CREDITS",
    "REFILL_CREDITS_PER_SECOND",
    "AccountCredits",
    "CreditPool",
]

#: What one request costs, in credits.
CREDITS_PER_REQUEST = 500
#: The most credits a pool holds (a burst of 100 requests).
POOL_CREDITS = 50_000
#: Credits added to a pool each second (20 requests a second).
REFILL_CREDITS_PER_SECOND = 10_000

#: Rounding slack, so that refills computed from float clocks do not lose a request.
_EPSILON = 1e-6


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class CreditPool:
    """One sub-account's credits: starts full, refills continuously, never above ``capacity``.

    :param capacity: the most credits the pool holds.
    :param refill_per_second: credits added per second.
    :param clock: monotonic clock in seconds; tests pass a fake one.
    """

    def __init__(
        self,
        capacity: float = POOL_CREDITS,
        refill_per_second: float = REFILL_CREDITS_PER_SECOND,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = _positive("capacity", capacity)
        self.refill_per_second = _positive("refill_per_second", refill_per_second)
        self._clock = clock
        self._lock = threading.Lock()
        self._credits = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._credits = min(self.capacity, self._credits + elapsed * self.refill_per_second)
        self._updated = now

    def spend(self, cost: float = CREDITS_PER_REQUEST) -> bool:
        """Take ``cost`` credits; False (and nothing taken) when the pool holds fewer."""
        with self._lock:
            self._refill()
            if self._credits + _EPSILON < cost:
                return False
            self._credits = max(0.0, self._credits - cost)
            return True

    @property
    def available(self) -> float:
        """Credits in the pool now."""
        with self._lock:
            self._refill()
            return self._credits


class AccountCredits:
    """A :class:`CreditPool` per account key, created full on first use.

    :param capacity: credits of each pool.
    :param refill_per_second: refill of each pool, in credits per second.
    :param cost: credits one request costs.
    :param clock: monotonic clock in seconds, shared by every pool.
    """

    def __init__(
        self,
        capacity: float = POOL_CREDITS,
        refill_per_second: float = REFILL_CREDITS_PER_SECOND,
        cost: float = CREDITS_PER_REQUEST,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        CreditPool(capacity, refill_per_second, clock=clock)  # check the numbers now
        self._capacity = capacity
        self._refill = refill_per_second
        self._cost = _positive("cost", cost)
        self._clock = clock
        self._lock = threading.Lock()
        self._pools: dict[str, CreditPool] = {}

    @classmethod
    def from_requests(
        cls, per_second: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> AccountCredits:
        """Pools described in requests: ``burst`` back to back, then ``per_second``."""
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"rate_limit_burst must be a whole number >= 1, got {burst!r}")
        rate = _positive("rate_limit_per_second", per_second)
        return cls(burst * CREDITS_PER_REQUEST, rate * CREDITS_PER_REQUEST, clock=clock)

    def spend(self, account: str) -> bool:
        """Charge one request to ``account``; False when its pool cannot pay."""
        pool = self._pools.get(account)
        if pool is None:
            with self._lock:
                pool = self._pools.get(account)
                if pool is None:
                    pool = CreditPool(self._capacity, self._refill, clock=self._clock)
                    self._pools[account] = pool
        return pool.spend(self._cost)

    def describe(self) -> str:
        """The limits in words, for error reasons."""
        return (
            f"{self._cost:g} credits a request from a pool of {self._capacity:g}, "
            f"refilled at {self._refill:g} a second"
        )
