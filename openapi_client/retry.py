"""When to try a request again, and how long to wait first.

All of Deribit's session-management methods are idempotent GETs: sending one twice leaves the same
state as sending it once, so a request that failed in a transient way is always safe to repeat.
:meth:`RetryPolicy.should_retry` is the one place that decides; :meth:`RetryPolicy.delay` is the
one place that says how long to wait.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, FrozenSet, Optional, Union

from openapi_client.exceptions import (
    RETRIABLE_ERROR_CODES,
    ApiException,
    ApiTypeError,
    ApiValueError,
)

if TYPE_CHECKING:  # pragma: no cover
    from urllib3.util.retry import Retry

__all__ = ["DEFAULT_RETRY_POLICY", "RETRIABLE_STATUSES", "RetryPolicy"]

#: HTTP statuses retried when the body carries no JSON-RPC error code.
RETRIABLE_STATUSES: FrozenSet[int] = frozenset({429, 500, 502, 503, 504})

# Beyond this many doublings every backoff is capped anyway; stops 2.0 ** n from overflowing.
_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
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

    total: int = 3
    backoff_factor: float = 0.25
    backoff_max: float = 8.0
    jitter: float = 0.5
    respect_retry_after: bool = True
    retry_after_max: float = 30.0
    statuses: FrozenSet[int] = field(default=RETRIABLE_STATUSES)
    error_codes: FrozenSet[int] = field(default=RETRIABLE_ERROR_CODES)

    def __post_init__(self) -> None:
        if isinstance(self.total, bool) or not isinstance(self.total, int):
            raise ApiTypeError(f"retries must be a whole number >= 0, got {self.total!r}")
        if self.total < 0:
            raise ApiValueError(f"retries must be a whole number >= 0, got {self.total!r}")
        for name in ("backoff_factor", "backoff_max", "jitter", "retry_after_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ApiTypeError(f"{name} must be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ApiValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.jitter > 1.0:
            raise ApiValueError(f"jitter must be between 0 and 1, got {self.jitter!r}")
        # Accept any collection of ints, but keep the policy immutable and hashable.
        for name in ("statuses", "error_codes"):
            try:
                object.__setattr__(self, name, frozenset(getattr(self, name)))
            except TypeError:
                raise ApiTypeError(
                    f"{name} must be a collection of ints, got {getattr(self, name)!r}"
                ) from None

    @property
    def max_attempts(self) -> int:
        """How many times a request is sent at most."""
        return self.total + 1

    def should_retry(self, error: ApiException, attempts: int) -> bool:
        """Whether to send the request again after ``attempts`` attempts ended in ``error``."""
        if attempts > self.total:
            return False
        if error.status == 0:
            return error.retriable
        if error.error_code is not None:
            return error.error_code in self.error_codes
        return error.status in self.statuses

    def delay(
        self, error: ApiException, attempts: int, rand: Callable[[], float] = random.random
    ) -> Optional[float]:
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
    def from_setting(cls, value: Union[int, "Retry", "RetryPolicy", None]) -> "RetryPolicy":
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
    def _from_urllib3(cls, retry: Any) -> "RetryPolicy":
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
