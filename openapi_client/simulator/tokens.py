"""Access and refresh tokens with their scope: bound to a connection, to a named session, or free.

Deribit ties a token to where it may be used:

* ``connection`` scope (the default): only on the connection that obtained it (a WebSocket, or an
  HTTP keep-alive connection); the token dies with that connection;
* ``session:NAME``: on any connection, surviving reconnects, until the session ends (see
  :mod:`.sessions`).

Tokens minted by :meth:`DeribitSimulator.issue_token` are free: valid on any connection.
"""

from __future__ import annotations

import collections
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .keys import Permissions

__all__ = ["CONNECTION", "FREE", "SESSION", "Binding", "Token", "TokenTable"]

#: How a token is bound.
CONNECTION = "connection"
SESSION = "session"
FREE = "free"

#: At most this many live tokens of each kind are kept; the oldest are forgotten first.
MAX_TOKENS = 100_000


@dataclass(frozen=True)
class Binding:
    """Where a token may be used.

    :param kind: :data:`CONNECTION`, :data:`SESSION` or :data:`FREE`.
    :param connection_id: the connection a :data:`CONNECTION` token belongs to.
    :param session: the name of a :data:`SESSION` token's session.
    :param rest: the session is one an HTTP grant created for want of a name (``rest-<id>``).
    """

    kind: str
    connection_id: int | None = None
    session: str | None = None
    rest: bool = False

    @property
    def scope_entry(self) -> str:
        """The entry of ``public/auth``'s ``scope`` that says where the token may be used."""
        return f"session:{self.session}" if self.kind == SESSION else "connection"


@dataclass(frozen=True)
class Token:
    """A live token: whose it is, until when (monotonic seconds), where it may be used and
    what it may do."""

    client_id: str
    expires_at: float
    binding: Binding
    permissions: Permissions


class TokenTable:
    """Tokens of one kind (access or refresh); bounded, oldest evicted first. Not thread-safe.

    :param clock: monotonic clock in seconds.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: collections.OrderedDict[str, Token] = collections.OrderedDict()
        # Connection-bound tokens per connection, so a closing connection finds its own at once.
        self._by_connection: dict[int, set[str]] = {}

    def new(self, client_id: str, ttl: float, binding: Binding, permissions: Permissions) -> str:
        token = secrets.token_urlsafe(32)
        if len(self._tokens) >= MAX_TOKENS:
            self._discard(next(iter(self._tokens)))
        self._tokens[token] = Token(client_id, self._clock() + ttl, binding, permissions)
        if binding.connection_id is not None:
            self._by_connection.setdefault(binding.connection_id, set()).add(token)
        return token

    def lookup(self, token: str) -> tuple[Token | None, bool]:
        """``(token, expired)``; the token is None when unknown or expired."""
        entry = self._tokens.get(token)
        if entry is None:
            return None, False
        if self._clock() >= entry.expires_at:
            self._discard(token)
            return None, True
        return entry, False

    def take(self, token: str) -> Token | None:
        """Remove a live token and return it (None if unknown or expired)."""
        entry, _ = self.lookup(token)
        if entry is not None:
            self._discard(token)
        return entry

    def drop_connection(self, connection_id: int) -> None:
        """Forget every token bound to ``connection_id``."""
        for token in self._by_connection.pop(connection_id, ()):
            self._tokens.pop(token, None)

    def drop_session(self, client_id: str, session: str) -> list[str]:
        """Forget every token of ``client_id``'s session ``session``; returns them."""
        doomed = [
            token
            for token, entry in self._tokens.items()
            if entry.client_id == client_id and entry.binding.session == session
        ]
        for token in doomed:
            self._discard(token)
        return doomed

    def clear(self) -> None:
        self._tokens.clear()
        self._by_connection.clear()

    def _discard(self, token: str) -> None:
        entry = self._tokens.pop(token, None)
        if entry is not None and entry.binding.connection_id is not None:
            owned = self._by_connection.get(entry.binding.connection_id)
            if owned is not None:
                owned.discard(token)
                if not owned:
                    del self._by_connection[entry.binding.connection_id]
