"""When to try again: the first connection's attempts, reconnects, and when to give up.

The first connection is retried as the caller's policy says (no :class:`Reconnecting` events:
the constructor is still waiting). After a session was ready, each loss starts a series of
reconnect attempts, spaced by the session's backoff with jitter (a ``Retry-After`` honoured, at
least the throttle delay after 429 or 10028, never more than :data:`MAX_RECONNECT_DELAY`), until
``max_reconnects`` or an error no retry can mend.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Callable

from openapi_client.exceptions import ApiException, OpenApiException
from openapi_client.retry import RetryPolicy
from openapi_client.websocket.core.outputs import CoreSettings, Outbox
from openapi_client.websocket.events import Reconnecting
from openapi_client.websocket.jsonrpc import ERROR_STATUS, TOO_MANY_REQUESTS

__all__ = ["MAX_RECONNECT_DELAY", "Backoff", "retry_delay"]

#: The longest wait before a reconnect, in seconds: a longer ``Retry-After`` (or setting) is cut
#: to this, so that no value a server sends can stall the session for good.
MAX_RECONNECT_DELAY = 3600.0


class Backoff:
    """The attempts to establish the session, and when the next one goes.

    :param settings: the backoff, throttle delay and ``max_reconnects``.
    :param outbox: where :class:`Reconnecting`, log lines and wake-ups go.
    :param rand: a random number in [0, 1) for the jitter.
    """

    __slots__ = (
        "_attempt",
        "_first_attempts",
        "_first_policy",
        "_outbox",
        "_rand",
        "_settings",
        "first",
        "reconnect_at",
    )

    def __init__(
        self, settings: CoreSettings, outbox: Outbox, rand: Callable[[], float] = random.random
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._rand = rand
        #: Whether the session was never ready yet (its first connection is being made).
        self.first = True
        self._first_policy = RetryPolicy(total=0)
        self._first_attempts = 0
        self._attempt = 0
        #: When the next connection is to be opened (inf: none is).
        self.reconnect_at = math.inf

    def start(self, first_attempts: RetryPolicy, now: float) -> None:
        """The first connection is to be opened now, retried as ``first_attempts`` says."""
        self._first_policy = first_attempts
        self.reconnect_at = now
        self._outbox.at(now)

    def due(self, now: float) -> bool:
        """Whether a connection is to be opened at ``now`` (then it counts as an attempt)."""
        if now < self.reconnect_at:
            return False
        self.reconnect_at = math.inf
        if self.first:
            self._first_attempts += 1
        return True

    def stop(self) -> None:
        """No more attempts."""
        self.reconnect_at = math.inf

    def restored(self) -> bool:
        """The session is ready: the next loss starts a new series. Whether it was the first
        time."""
        first = self.first
        self.first = False
        self._attempt = 0
        return first

    def failed(self, error: OpenApiException, throttled: bool, now: float) -> str | None:
        """An attempt failed with ``error`` (``throttled``: its connection had a 10028): None
        when the next is scheduled, else why the session gives up."""
        if self.first:
            if not isinstance(error, ApiException):
                return f"could not establish the session: {error}"
            delay = retry_delay(self._first_policy, error, self._first_attempts, self._rand)
            if delay is None:
                return f"could not establish the session: {error!r}"
            self._outbox.log(
                logging.INFO,
                "opening the WebSocket session failed (%r); again in %.2f s",
                error,
                delay,
            )
            self.reconnect_at = now + min(max(delay, 0.0), MAX_RECONNECT_DELAY)
            self._outbox.at(self.reconnect_at)
            return None
        if not isinstance(error, ApiException):
            return f"the session could not be restored: {error}"
        throttled = error.status == 429 or error.error_code == TOO_MANY_REQUESTS or throttled
        if error.status != 0 and not (throttled or error.retriable):
            return f"the session could not be restored: {error!r}"
        self._outbox.log(logging.INFO, "reconnect attempt %d failed: %r", self._attempt, error)
        return self._schedule(error, throttled, now)

    def lost(self, error: ApiException, throttled: bool, now: float) -> str | None:
        """A ready connection was lost: the first attempt of a new series, as :meth:`failed`."""
        self._attempt = 0
        return self._schedule(error, throttled, now)

    def resume(self, now: float) -> None:
        """After the watchdog fired, a check-in came: a connection now."""
        self._attempt = 1
        self._outbox.emit(Reconnecting(1, 0.0, "the watchdog had expired; check_in() came", now))
        self.reconnect_at = now
        self._outbox.at(now)

    def _schedule(self, error: ApiException, throttled: bool, now: float) -> str | None:
        self._attempt += 1
        attempt = self._attempt
        settings = self._settings
        limit = settings.max_reconnects
        if limit is not None and attempt > limit:
            return f"gave up after {limit} reconnect attempts: {error!r}"
        backoff = settings.reconnect_backoff
        delay = backoff.delay(error, attempt, self._rand)
        if delay is None:  # Retry-After beyond retry_after_max: wait that long, no more
            self._outbox.log(
                logging.WARNING,
                "the server asked for a wait of %s s before the next connection "
                "(Retry-After), beyond retry_after_max; waiting %g s",
                error.retry_after,
                backoff.retry_after_max,
            )
            delay = backoff.retry_after_max
        if throttled:
            delay = max(delay, settings.throttle_delay)
        delay = min(max(delay, 0.0), MAX_RECONNECT_DELAY)
        self._outbox.emit(Reconnecting(attempt, delay, _one_line(error), now))
        self.reconnect_at = now + delay
        self._outbox.at(self.reconnect_at)
        return None


def retry_delay(
    policy: RetryPolicy,
    error: ApiException,
    attempts: int,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before trying again after ``attempts`` ended in ``error``; None: give up."""
    return policy.delay(error, attempts, rand) if policy.should_retry(error, attempts) else None


def _one_line(error: BaseException) -> str:
    """The headline of ``error``; for a refused handshake, with its HTTP status."""
    text = str(error)
    line = text.splitlines()[0] if text else repr(error)
    if isinstance(error, ApiException) and error.status not in (0, ERROR_STATUS):
        line += f" ({error.reason})" if error.reason else f" (HTTP {error.status})"
    return line
