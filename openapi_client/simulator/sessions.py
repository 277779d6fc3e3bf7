"""Deribit's sessions: named token scopes that outlive connections, at most 16 per API key.

A grant with ``scope=session:NAME`` joins (or creates) session ``NAME``; an HTTP grant with no
session and no ``connection`` scope creates a fresh ``rest-<id>`` session. A key holds at most
:data:`~.deribit.MAX_SESSIONS_PER_CLIENT`: creating one more removes the session with the
shortest remaining lifetime, without an error, and its tokens stop working. Connection-scoped
tokens belong to no session and count toward nothing.

Not thread-safe: the :class:`~.auth.Authenticator` calls it under its lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count

__all__ = ["EVICTED_FOR_LIMIT", "SessionEviction", "SessionInfo", "SessionTable"]

#: :attr:`SessionEviction.reason` when a new session pushed the key over its limit.
EVICTED_FOR_LIMIT = "session_limit"


@dataclass(frozen=True)
class SessionInfo:
    """A live session, as :attr:`DeribitSimulator.sessions` lists it.

    :param client_id: the API key it belongs to.
    :param name: its name (``"my-bot"``, or ``"rest-3"`` for one an HTTP grant created).
    :param created: when it was created, in seconds since the Unix epoch.
    :param expires_in: seconds left until its current token expires (0 when it has); each grant
        or refresh in the session starts a new lifetime.
    """

    client_id: str
    name: str
    created: float
    expires_in: float

    @property
    def scope(self) -> str:
        """The scope entry naming it: ``session:<name>``."""
        return f"session:{self.name}"


@dataclass(frozen=True)
class SessionEviction:
    """A session removed to make room for another, as Deribit does at a key's 17th session.

    :param client_id: the API key.
    :param name: the session removed; its tokens now answer 13009.
    :param reason: why: ``"session_limit"`` (a new session needed its place).
    :param replaced_by: the name of the session that took its place.
    :param time: when, in seconds since the Unix epoch.
    """

    client_id: str
    name: str
    reason: str
    replaced_by: str
    time: float


@dataclass
class _Session:
    created: float
    expires_at: float  # on the simulator's monotonic clock
    order: int  # creation order, to break ties


class SessionTable:
    """Each key's sessions, with the eviction rule.

    :param limit: sessions per key.
    :param clock: the simulator's monotonic clock, for lifetimes.
    :param wall_clock: Unix time, for :attr:`SessionInfo.created` and evictions.
    """

    def __init__(
        self,
        limit: int,
        clock: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._wall_clock = wall_clock
        self._sessions: dict[str, dict[str, _Session]] = {}
        self._order = count()
        self._rest_ids = count(1)
        self.evictions: list[SessionEviction] = []

    def new_rest_name(self) -> str:
        """A name for the session of an HTTP grant that named none: ``rest-<id>``."""
        return f"rest-{next(self._rest_ids)}"

    def join(self, client_id: str, name: str, lifetime: float) -> str | None:
        """Start a new lifetime for session ``name`` of ``client_id``, creating it if needed.

        :returns: the name of the session evicted to make room, or None.
        """
        sessions = self._sessions.setdefault(client_id, {})
        now = self._clock()
        session = sessions.get(name)
        if session is not None:
            session.expires_at = now + lifetime
            return None
        evicted = None
        if len(sessions) >= self._limit:
            evicted = min(sessions, key=lambda n: (sessions[n].expires_at, sessions[n].order))
            del sessions[evicted]
            self.evictions.append(
                SessionEviction(client_id, evicted, EVICTED_FOR_LIMIT, name, self._wall_clock())
            )
        sessions[name] = _Session(self._wall_clock(), now + lifetime, next(self._order))
        return evicted

    def refresh(self, client_id: str, name: str, lifetime: float) -> bool:
        """A refresh in session ``name``: a new lifetime; False if the session is gone."""
        session = self._sessions.get(client_id, {}).get(name)
        if session is None:
            return False
        session.expires_at = self._clock() + lifetime
        return True

    def end(self, client_id: str, name: str) -> None:
        """Forget a session (``private/logout``)."""
        self._sessions.get(client_id, {}).pop(name, None)

    def live(self) -> list[SessionInfo]:
        """Every session, per key in creation order."""
        now = self._clock()
        return [
            SessionInfo(client_id, name, session.created, max(0.0, session.expires_at - now))
            for client_id, sessions in self._sessions.items()
            for name, session in sorted(sessions.items(), key=lambda item: item[1].order)
        ]
