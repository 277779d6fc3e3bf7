"""Who may call what: ``public/auth`` grants, tokens with their scope, request signatures.

Everything here follows Deribit's documented rules and is the simulator's own implementation:
it must not share the client's signing code, since it judges it. The simulator keeps its tokens
in memory only and never writes a credential anywhere.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .deribit import MAX_SESSIONS_PER_CLIENT, SESSION_LIMIT_ERROR
from .rpc import INVALID_CREDENTIALS, RpcError
from .tokens import CONNECTION, FREE, SESSION, Binding, Token, TokenTable

__all__ = [
    "SIGNATURE_SCHEME",
    "SIGNATURE_WINDOW_SECONDS",
    "STATIC_TOKEN_CLIENT_ID",
    "Authenticator",
    "NonceRegistry",
    "expected_signature",
    "signed_request_data",
]

#: The account every static token belongs to (it matters only for rate limiting).
STATIC_TOKEN_CLIENT_ID = "sim-client"
#: How long a refresh token stays usable, in seconds (a year: in practice, until used).
REFRESH_TOKEN_TTL = 365 * 24 * 3600.0
#: The per-request signature's ``Authorization`` scheme.
SIGNATURE_SCHEME = "deri-hmac-sha256"
#: How far a signed timestamp may be from the simulator's clock, in seconds.
SIGNATURE_WINDOW_SECONDS = 60

GRANT_TYPES = ("client_credentials", "client_signature", "refresh_token")
_FREE = Binding(FREE)
#: Why a connection-scoped token is refused elsewhere (Deribit's wording for 13009).
_REUSED = "'connection' scope can't be reused for other connections"


def expected_signature(secret: str, timestamp: int | str, nonce: str, data: str) -> str:
    """Deribit's signature: hex HMAC-SHA256, keyed by ``secret``, of
    ``timestamp + "\\n" + nonce + "\\n" + data`` (all UTF-8)."""
    message = "\n".join((str(timestamp), nonce, data)).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_request_data(verb: str, target: str, body: str = "") -> str:
    """The ``data`` a ``deri-hmac-sha256`` header signs: ``VERB\\nTARGET\\nBODY\\n``."""
    return f"{verb.upper()}\n{target}\n{body}\n"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class NonceRegistry:
    """Remembers each ``(client_id, nonce)`` while its timestamp is inside the signature window.

    Once the window has passed the timestamp check refuses a replay anyway, so the entry is
    dropped; memory stays proportional to the request rate times the window.
    """

    def __init__(
        self,
        window: float = SIGNATURE_WINDOW_SECONDS,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._window = window
        self._wall_clock = wall_clock
        self._seen: dict[tuple[str, str], float] = {}
        self._order: collections.deque[tuple[float, tuple[str, str]]] = collections.deque()

    def claim(self, client_id: str, nonce: str, timestamp_ms: int) -> bool:
        """Record a nonce; False if the client already used it within the window."""
        now = self._wall_clock()
        while self._order and self._order[0][0] < now:
            self._seen.pop(self._order.popleft()[1], None)
        key = (client_id, nonce)
        if key in self._seen:
            return False
        forget_at = timestamp_ms / 1000.0 + self._window
        self._seen[key] = forget_at
        self._order.append((forget_at, key))
        return True


class Authenticator:
    """The simulator's credential store and the checks Deribit applies to them.

    :param tokens: static access tokens that are always valid and never expire.
    :param credentials: ``client_id -> client_secret`` pairs accepted by ``public/auth``,
        ``deri-hmac-sha256`` and ``Basic`` authorization.
    :param token_ttl: lifetime of an issued access token, in seconds.
    :param clock: monotonic clock (seconds) for token expiry.
    :param wall_clock: Unix time (seconds) for signature timestamps.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str],
        credentials: Mapping[str, str],
        token_ttl: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(token_ttl, bool) or not isinstance(token_ttl, (int, float)):
            raise TypeError(f"token_ttl must be a number of seconds, got {token_ttl!r}")
        if not (math.isfinite(token_ttl) and token_ttl >= 0):
            raise ValueError(
                f"token_ttl must be a finite number of seconds >= 0, got {token_ttl!r}"
            )
        self.token_ttl = float(token_ttl)
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._static: set[str] = set()
        for token in tokens:
            self.add_token(token)
        self._credentials = dict(credentials)
        for client_id, secret in self._credentials.items():
            if not (
                isinstance(client_id, str) and isinstance(secret, str) and client_id and secret
            ):
                raise ValueError("credentials must map non-empty client ids to non-empty secrets")
        self._access = TokenTable(clock)
        self._refresh = TokenTable(clock)
        self._nonces = NonceRegistry(wall_clock=wall_clock)
        # Named sessions per client id, oldest first.
        self._sessions: dict[str, list[str]] = {}

    # -- store -------------------------------------------------------------------------------

    def add_token(self, token: str) -> None:
        """Accept ``token`` as a static access token from now on."""
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError("a static token must be a non-empty string without whitespace")
        with self._lock:
            self._static.add(token)

    def issue_access_token(self, client_id: str, ttl: float | None = None) -> str:
        """Mint an access token for ``client_id``, valid on any connection for ``ttl`` seconds
        (default token_ttl)."""
        if not isinstance(client_id, str) or not client_id:
            raise ValueError(f"client_id must be a non-empty string, got {client_id!r}")
        lifetime = self.token_ttl if ttl is None else float(ttl)
        if not (math.isfinite(lifetime) and lifetime >= 0):
            raise ValueError(f"ttl must be a finite number of seconds >= 0, got {ttl!r}")
        with self._lock:
            return self._access.new(client_id, lifetime, _FREE)

    def revoke(self, *, refresh_tokens: bool = False) -> None:
        """Invalidate every issued access token (and refresh token if asked); static ones stay."""
        with self._lock:
            self._access.clear()
            if refresh_tokens:
                self._refresh.clear()

    def forget_connection(self, connection_id: int) -> None:
        """A connection closed: its connection-scoped tokens die with it."""
        with self._lock:
            self._access.drop_connection(connection_id)
            self._refresh.drop_connection(connection_id)

    def log_out(self, token: str | None, connection_id: int) -> None:
        """``private/logout``: invalidate the tokens of ``token``'s session (its named session,
        or the connection it is bound to)."""
        with self._lock:
            entry = self._access.lookup(token)[0] if token is not None else None
            if entry is not None and entry.binding.kind == SESSION:
                session = entry.binding.session
                assert session is not None
                self._access.drop_session(entry.client_id, session)
                self._refresh.drop_session(entry.client_id, session)
                names = self._sessions.get(entry.client_id, [])
                if session in names:
                    names.remove(session)
            elif entry is not None and entry.binding.kind == FREE and token is not None:
                self._access.take(token)
            self._access.drop_connection(connection_id)
            self._refresh.drop_connection(connection_id)

    # -- public/auth -------------------------------------------------------------------------

    def grant(self, params: Mapping[str, Any], connection_id: int) -> dict[str, Any]:
        """Answer ``public/auth`` on connection ``connection_id``: check the grant and issue a
        fresh token pair bound as its ``scope`` asks (see :mod:`.tokens`)."""
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise RpcError.invalid_param("grant_type", "missing")
        if grant_type == "client_credentials":
            client_id = self._client_credentials(params)
            binding = self._binding(client_id, params.get("scope"), connection_id)
        elif grant_type == "client_signature":
            client_id = self._client_signature(params)
            binding = self._binding(client_id, params.get("scope"), connection_id)
        elif grant_type == "refresh_token":
            client_id, binding = self._refresh_token(params, connection_id)
        else:
            raise RpcError.invalid_param("grant_type", f"must be one of {', '.join(GRANT_TYPES)}")
        with self._lock:
            access = self._access.new(client_id, self.token_ttl, binding)
            refresh = self._refresh.new(client_id, REFRESH_TOKEN_TTL, binding)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": math.ceil(self.token_ttl),
            "scope": binding.scope,
            "token_type": "bearer",
        }

    def _binding(self, client_id: str, scope: Any, connection_id: int) -> Binding:
        """The binding a grant asks for: ``session:NAME`` if named, else the connection."""
        if scope is None:
            scope = ""
        if not isinstance(scope, str):
            raise RpcError.invalid_param("scope", "must be a string of space-separated scopes")
        names = [part[len("session:") :] for part in scope.split() if part.startswith("session:")]
        if "connection" in scope.split() or not names:
            return Binding(CONNECTION, connection_id=connection_id)
        name = names[0]
        if not name:
            raise RpcError.invalid_param("scope", "session: needs a name, e.g. session:bot")
        with self._lock:
            sessions = self._sessions.setdefault(client_id, [])
            if name not in sessions:
                if len(sessions) >= MAX_SESSIONS_PER_CLIENT:
                    raise RpcError.of(
                        SESSION_LIMIT_ERROR,
                        {
                            "reason": f"at most {MAX_SESSIONS_PER_CLIENT} sessions per API key; "
                            "reuse a session name or log a session out"
                        },
                    )
                sessions.append(name)
        return Binding(SESSION, session=name)

    def _client_credentials(self, params: Mapping[str, Any]) -> str:
        client_id = _required(params, "client_id")
        secret = _required(params, "client_secret")
        known = self._credentials.get(client_id)
        if known is None or not _same(known, secret):
            raise RpcError.of(
                INVALID_CREDENTIALS, {"reason": "unknown client_id or wrong client_secret"}
            )
        return client_id

    def _client_signature(self, params: Mapping[str, Any]) -> str:
        client_id = _required(params, "client_id")
        raw_timestamp = _required(params, "timestamp")
        nonce = _required(params, "nonce")
        signature = _required(params, "signature")
        data = params.get("data", "")
        if not isinstance(data, str):
            raise RpcError.invalid_param("data", "must be a string")
        try:
            timestamp = int(raw_timestamp)
        except ValueError:
            raise RpcError.invalid_param(
                "timestamp", "must be whole milliseconds since the Unix epoch"
            ) from None
        secret = self._credentials.get(client_id)
        if secret is None:
            raise RpcError.of(INVALID_CREDENTIALS, {"reason": "unknown client_id"})
        self._check_timestamp(timestamp)
        if not _same(expected_signature(secret, timestamp, nonce, data), signature.lower()):
            raise RpcError.of(
                INVALID_CREDENTIALS,
                {
                    "reason": "signature does not match "
                    "HMAC-SHA256(client_secret, timestamp\\nnonce\\ndata)"
                },
            )
        self._claim_nonce(client_id, nonce, timestamp)
        return client_id

    def _refresh_token(self, params: Mapping[str, Any], connection_id: int) -> tuple[str, Binding]:
        token = _required(params, "refresh_token")
        with self._lock:
            entry, _ = self._refresh.lookup(token)
            if entry is not None and _elsewhere(entry, connection_id):
                raise RpcError.unauthorized(_REUSED)
            entry = self._refresh.take(token)
        if entry is None:
            raise RpcError.unauthorized(
                "refresh token unknown, expired or already used (refresh tokens are single-use)"
            )
        return entry.client_id, entry.binding

    # -- private methods ---------------------------------------------------------------------

    def authorize(self, authorization: str | None, target: str, connection_id: int) -> str:
        """Check a private HTTP request's ``Authorization`` header; return the caller's client id.

        :param authorization: the header's value, or None when the request had none.
        :param target: the raw request target (path and query) that a signature must cover.
        :param connection_id: the connection the request came on.
        """
        if authorization is None or not authorization.strip():
            raise RpcError.unauthorized(
                "missing credentials: send 'Authorization: Bearer <access_token>'"
            )
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer":
            return self.check_token(value, connection_id)[0]
        if scheme == SIGNATURE_SCHEME:
            return self._request_signature(value, target)
        if scheme == "basic":
            return self._basic(value)
        raise RpcError.unauthorized(
            "unsupported Authorization scheme; use Bearer, deri-hmac-sha256 or Basic"
        )

    def client_of(self, authorization: str | None, connection_id: int) -> str | None:
        """The client id behind a valid Bearer token, else None; never raises, never consumes."""
        if authorization is None or authorization[:7].lower() != "bearer ":
            return None
        try:
            return self.check_token(authorization[7:].strip(), connection_id)[0]
        except RpcError:
            return None

    def check_token(self, token: str, connection_id: int) -> tuple[str, Binding]:
        """The client id and binding of a valid access token used on ``connection_id``.

        :raises RpcError: 13009 when the token is unknown, expired, or bound to another
            connection.
        """
        with self._lock:
            if token in self._static:
                return STATIC_TOKEN_CLIENT_ID, _FREE
            entry, expired = self._access.lookup(token)
        if entry is None:
            if expired:
                raise RpcError.unauthorized("access token expired; authenticate again")
            raise RpcError.unauthorized("invalid or expired access token")
        if _elsewhere(entry, connection_id):
            raise RpcError.unauthorized(_REUSED)
        return entry.client_id, entry.binding

    def _request_signature(self, value: str, target: str) -> str:
        fields: dict[str, str] = {}
        for part in value.split(","):
            name, sep, field = part.partition("=")
            if sep:
                fields[name.strip().lower()] = field.strip()
        for name in ("id", "ts", "sig", "nonce"):
            if not fields.get(name):
                raise RpcError.unauthorized(
                    f"malformed {SIGNATURE_SCHEME} header: {name}= is missing "
                    "(expected id=<client_id>,ts=<ms>,sig=<hex>,nonce=<nonce>)"
                )
        client_id, nonce = fields["id"], fields["nonce"]
        try:
            timestamp = int(fields["ts"])
        except ValueError:
            raise RpcError.unauthorized(
                f"malformed {SIGNATURE_SCHEME} header: ts must be whole milliseconds since the "
                "Unix epoch"
            ) from None
        secret = self._credentials.get(client_id)
        if secret is None:
            raise RpcError.unauthorized(f"unknown client id in {SIGNATURE_SCHEME} header")
        self._check_timestamp(timestamp)
        expected = expected_signature(secret, timestamp, nonce, signed_request_data("GET", target))
        if not _same(expected, fields["sig"].lower()):
            raise RpcError.unauthorized(
                "invalid signature: sig must be HMAC-SHA256(secret, ts\\nnonce\\nGET\\n"
                "<path with query>\\n\\n)"
            )
        self._claim_nonce(client_id, nonce, timestamp)
        return client_id

    def _basic(self, value: str) -> str:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise RpcError.unauthorized(
                "malformed Basic credentials: expected base64(client_id:client_secret)"
            ) from None
        client_id, sep, secret = decoded.partition(":")
        known = self._credentials.get(client_id)
        if not sep or known is None or not _same(known, secret):
            raise RpcError.unauthorized("invalid client id or secret in Basic credentials")
        return client_id

    # -- shared checks -----------------------------------------------------------------------

    def _check_timestamp(self, timestamp_ms: int) -> None:
        skew = timestamp_ms / 1000.0 - self._wall_clock()
        if abs(skew) > SIGNATURE_WINDOW_SECONDS:
            direction = "ahead of" if skew > 0 else "behind"
            raise RpcError.unauthorized(
                f"timestamp is {abs(skew):.1f} s {direction} the server clock; signed timestamps "
                f"are valid for {SIGNATURE_WINDOW_SECONDS} s (check the machine's clock)"
            )

    def _claim_nonce(self, client_id: str, nonce: str, timestamp_ms: int) -> None:
        with self._lock:
            fresh = self._nonces.claim(client_id, nonce, timestamp_ms)
        if not fresh:
            raise RpcError.unauthorized("nonce reused: every signature needs a new nonce")


def _elsewhere(token: Token, connection_id: int) -> bool:
    """Whether a connection-scoped token is used on another connection than its own."""
    bound = token.binding.connection_id
    return token.binding.kind == CONNECTION and bound is not None and bound != connection_id


def _required(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise RpcError.invalid_param(name, "missing")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RpcError.invalid_param(name, "must be a string")
    return value
