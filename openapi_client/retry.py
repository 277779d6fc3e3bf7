"""When to try a request again, and how long to wait first.

All of Deribit's session-management methods are idempotent GETs: sending one twice leaves the same
state as sending it once, so a request that failed in a transient way is always safe to repeat.
:meth:`RetryPolicy.should_retry` is the one place that decides; :meth:`RetryPolicy.delay` is the
one place that says how long to wait.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from openapi_client.exceptions import (
    RETRIABLE_ERROR_CODES,
    RETRIABLE_STATUSES,
    ApiException,
    ApiTypeError,
    ApiValueError,
    is_transient,
)

if TYPE_CHECKING:  # pragma: no cover
    from urllib3.util.retry import Retry

__all__ = ["DEFAULT_RETRY_POLICY", "RETRIABLE_STATUSES", "RetryPolicy"]


# Beyond this many doublings every backoff is capped anyway; stops 2.0 ** n from overflowing.
_MAX_DOUBLINGS = 64


_FIELDS = (
    "total",
    "backoff_factor",
    "backoff_max",
    "jitter",
    "respect_retry_after",
    "retry_after_max",
    "statuses",
    "error_codes",
)


class RetryPolicy:
    """An immutable retry policy.

    :param total: retries after the first attempt (``0``: exactly one attempt).
    :param backoff_factor: seconds before the first retry; each later retry waits twice as long.
    :param backoff_max: the longest computed wait, in seconds.
    :param jitter: the fraction of each wait drawn at random (0 to 1), so that many clients
        recovering together do not retry in lockstep.
    :param respect_retry_after: wait at least what a ``Retry-After`` header asks.
    :param retry_after_max: the longest ``Retry-After`` honoured, in seconds; a server asking for
        more gets the error raised at once rather than a stalled caller.
    :param statuses: HTTP statuses that are retried.
    :param error_codes: Deribit JSON-RPC error codes that are retried, whatever the HTTP status.
    """

    __slots__ = _FIELDS

    total: int
    backoff_factor: float
    backoff_max: float
    jitter: float
    respect_retry_after: bool
    retry_after_max: float
    statuses: frozenset[int]
    error_codes: frozenset[int]

    def __init__(
        self,
        total: int = 3,
        backoff_factor: float = 0.25,
        backoff_max: float = 8.0,
        jitter: float = 0.5,
        respect_retry_after: bool = True,
        retry_after_max: float = 30.0,
        statuses: Iterable[int] = RETRIABLE_STATUSES,
        error_codes: Iterable[int] = RETRIABLE_ERROR_CODES,
    ) -> None:
        if isinstance(total, bool) or not isinstance(total, int):
            raise ApiTypeError(f"retries must be a whole number >= 0, got {total!r}")
        if total < 0:
            raise ApiValueError(f"retries must be a whole number >= 0, got {total!r}")
        seconds = {
            "backoff_factor": backoff_factor,
            "backoff_max": backoff_max,
            "jitter": jitter,
            "retry_after_max": retry_after_max,
        }
        for name, value in seconds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ApiTypeError(f"{name} must be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ApiValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if jitter > 1.0:
            raise ApiValueError(f"jitter must be between 0 and 1, got {jitter!r}")
        sets = {}
        for name, values in (("statuses", statuses), ("error_codes", error_codes)):
            try:
                sets[name] = frozenset(values)
            except TypeError:
                raise ApiTypeError(f"{name} must be a collection of ints, got {values!r}") from None
        setattr_ = object.__setattr__
        setattr_(self, "total", total)
        setattr_(self, "respect_retry_after", bool(respect_retry_after))
        for name, value in seconds.items():
            setattr_(self, name, float(value))
        for name, frozen in sets.items():
            setattr_(self, name, frozen)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"RetryPolicy is immutable; build a new one instead of setting {name}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryPolicy):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        changed = [
            f"{name}={getattr(self, name)!r}"
            for name in _FIELDS
            if getattr(self, name) != getattr(DEFAULT_RETRY_POLICY, name)
        ]
        return f"RetryPolicy({', '.join(changed)})"

    @property
    def max_attempts(self) -> int:
        """How many times a request is sent at most."""
        return self.total + 1

    def is_transient(self, error: ApiException) -> bool:
        """Whether ``error`` is worth another attempt: no response at all (but for a TLS
        failure, which would fail the same way), a retriable JSON-RPC code, or else a
        retriable HTTP status."""
        return is_transient(error, self.statuses, self.error_codes)

    def should_retry(self, error: ApiException, attempts: int) -> bool:
        """Whether to send the request again after ``attempts`` attempts ended in ``error``."""
        return attempts <= self.total and self.is_transient(error)

    def delay(
        self, error: ApiException, attempts: int, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before retry number ``attempts``; ``None`` to give up instead.

        Exponential backoff (``backoff_factor * 2 ** (attempts - 1)``, capped at ``backoff_max``),
        less a random share of up to ``jitter``; never less than ``Retry-After``.
        """
        doublings = min(max(attempts - 1, 0), _MAX_DOUBLINGS)
        backoff = min(self.backoff_max, self.backoff_factor * (2.0**doublings))
        backoff *= 1.0 - self.jitter * rand()
        if self.respect_retry_after:
            asked = error.retry_after
            if asked is not None:
                if asked > self.retry_after_max:
                    return None
                backoff = max(backoff, asked)
        return backoff

    @classmethod
    def from_setting(cls, value: int | Retry | RetryPolicy | None) -> RetryPolicy:
        """The policy for ``Configuration.retries``: an int, a urllib3 ``Retry``, or a policy."""
        if value is None:
            return DEFAULT_RETRY_POLICY
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, bool):
            return cls(total=DEFAULT_RETRY_POLICY.total if value else 0)
        if isinstance(value, int):
            return cls(total=value)
        return cls._from_urllib3(value)

    @classmethod
    def _from_urllib3(cls, retry: Any) -> RetryPolicy:
        try:
            total = retry.total
            factor = float(retry.backoff_factor)
            respect = bool(retry.respect_retry_after_header)
            forcelist = retry.status_forcelist
        except AttributeError:
            raise ApiTypeError(
                "retries must be an int, a urllib3 Retry or an openapi_client.RetryPolicy, "
                f"got {type(retry).__name__}"
            ) from None
        if total is None or total is True:
            total = max(
                (count for count in (retry.connect, retry.read, retry.status) if count),
                default=DEFAULT_RETRY_POLICY.total,
            )
        elif total is False:
            total = 0
        cap: Any = getattr(retry, "backoff_max", None)
        if cap is None:
            cap = getattr(retry, "DEFAULT_BACKOFF_MAX", 120.0)
        return cls(
            total=int(total),
            backoff_factor=factor,
            backoff_max=float(cap),
            respect_retry_after=respect,
            statuses=frozenset(forcelist) if forcelist else RETRIABLE_STATUSES,
        )


DEFAULT_RETRY_POLICY = RetryPolicy()
