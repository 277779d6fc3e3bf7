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
from typing import Any, NamedTuple

from .asymmetric import signed_message
from .deribit import (
    CONNECTION_TOKEN_SECONDS,
    MAX_SESSIONS_PER_CLIENT,
    REST_SESSION_TOKEN_SECONDS,
    SESSION_TOKEN_SECONDS,
)
from .keys import FULL, ApiKey, Permissions, ScopeError
from .recording import HTTP
from .rpc import RpcError
from .sessions import SessionEviction, SessionInfo, SessionTable
from .tokens import CONNECTION, FREE, SESSION, Binding, Token, TokenTable

__all__ = [
    "SIGNATURE_SCHEME",
    "SIGNATURE_WINDOW_SECONDS",
    "STATIC_TOKEN_CLIENT_ID",
    "Authenticator",
    "NonceRegistry",
    "Principal",
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
#: How many tokens of evicted sessions are remembered, to explain their refusal.
_EVICTED_MEMORY = 10_000


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


class Principal(NamedTuple):
    """Who a request is authenticated as, and what it may do."""

    client_id: str
    permissions: Permissions


class Authenticator:
    """The simulator's credential store and the checks Deribit applies to them.

    :param tokens: static access tokens that are always valid, never expire and may do anything.
    :param keys: the API keys by client id.
    :param token_ttl: lifetime of every issued access token, in seconds; None for Deribit's
        (see :mod:`.deribit`: 900 for a session's token, 899 for the session an HTTP grant
        creates, 31536000 for a connection-scoped token on a WebSocket).
    :param rest_sessions: an HTTP grant that names no session and no ``connection`` scope
        creates a new ``rest-<id>`` session, as Deribit does; False binds its tokens to the
        HTTP connection instead.
    :param clock: monotonic clock (seconds) for token and session lifetimes.
    :param wall_clock: Unix time (seconds) for signature timestamps.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str],
        keys: Mapping[str, ApiKey],
        token_ttl: float | None,
        rest_sessions: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if token_ttl is not None:
            if isinstance(token_ttl, bool) or not isinstance(token_ttl, (int, float)):
                raise TypeError(f"token_ttl must be a number of seconds, got {token_ttl!r}")
            if not (math.isfinite(token_ttl) and token_ttl >= 0):
                raise ValueError(
                    f"token_ttl must be a finite number of seconds >= 0, got {token_ttl!r}"
                )
        self.token_ttl = None if token_ttl is None else float(token_ttl)
        self._rest_sessions = rest_sessions
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._static: set[str] = set()
        for token in tokens:
            self.add_token(token)
        self._keys = dict(keys)
        self._access = TokenTable(clock)
        self._refresh = TokenTable(clock)
        self._nonces = NonceRegistry(wall_clock=wall_clock)
        self._sessions = SessionTable(MAX_SESSIONS_PER_CLIENT, clock, wall_clock)
        # Tokens of evicted sessions -> the session's name, to say why they are refused.
        self._evicted: collections.OrderedDict[str, str] = collections.OrderedDict()

    # -- store -------------------------------------------------------------------------------

    def add_token(self, token: str) -> None:
        """Accept ``token`` as a static access token from now on."""
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError("a static token must be a non-empty string without whitespace")
        with self._lock:
            self._static.add(token)

    def issue_access_token(
        self, client_id: str, ttl: float | None = None, scope: str | None = None
    ) -> str:
        """Mint an access token for ``client_id``, valid on any connection for ``ttl`` seconds
        (default ``token_ttl``, else a session token's 900), allowed what ``scope`` lists
        (default everything)."""
        if not isinstance(client_id, str) or not client_id:
            raise ValueError(f"client_id must be a non-empty string, got {client_id!r}")
        if ttl is None:
            lifetime = self.token_ttl if self.token_ttl is not None else SESSION_TOKEN_SECONDS
        else:
            lifetime = float(ttl)
        if not (math.isfinite(lifetime) and lifetime >= 0):
            raise ValueError(f"ttl must be a finite number of seconds >= 0, got {ttl!r}")
        permissions = FULL
        if scope is not None:
            try:
                permissions = Permissions.parse(scope)
            except ScopeError as error:
                raise ValueError(f"scope {error}") from None
        with self._lock:
            return self._access.new(client_id, lifetime, _FREE, permissions)

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
                self._sessions.end(entry.client_id, session)
            elif entry is not None and entry.binding.kind == FREE and token is not None:
                self._access.take(token)
            self._access.drop_connection(connection_id)
            self._refresh.drop_connection(connection_id)

    # -- sessions ----------------------------------------------------------------------------

    @property
    def sessions(self) -> list[SessionInfo]:
        """The live sessions of every key."""
        with self._lock:
            return self._sessions.live()

    @property
    def evictions(self) -> list[SessionEviction]:
        """Every session removed to make room for another, oldest first (a copy)."""
        with self._lock:
            return list(self._sessions.evictions)

    def clear_evictions(self) -> None:
        with self._lock:
            self._sessions.evictions.clear()

    # -- public/auth -------------------------------------------------------------------------

    def grant(
        self, params: Mapping[str, Any], connection_id: int, transport: str
    ) -> dict[str, Any]:
        """Answer ``public/auth`` on connection ``connection_id`` over ``transport``: check the
        grant and issue a fresh token pair bound as its ``scope`` asks (see :mod:`.tokens`)."""
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise RpcError.invalid_param("grant_type", "missing")
        state = params.get("state")
        if state is not None and not isinstance(state, str):
            raise RpcError.invalid_param("state", "must be a string")
        if grant_type == "client_credentials":
            key = self._client_credentials(params)
        elif grant_type == "client_signature":
            key = self._client_signature(params)
        elif grant_type == "refresh_token":
            return self._refresh_grant(params, connection_id, transport, state)
        else:
            raise RpcError.invalid_param("grant_type", f"must be one of {', '.join(GRANT_TYPES)}")
        scope = params.get("scope", "")
        if not isinstance(scope, str):
            raise RpcError.invalid_param("scope", "must be a string of space-separated scopes")
        try:
            permissions = key.permissions.narrowed(scope)
        except ScopeError as error:
            raise RpcError.invalid_param("scope", "wrong format", explanation=str(error)) from None
        binding = self._binding(scope, connection_id, transport)
        with self._lock:
            if binding.kind == SESSION:
                if binding.session is None:  # a new rest-<id> session
                    binding = Binding(SESSION, session=self._sessions.new_rest_name(), rest=True)
                assert binding.session is not None
                lifetime = self._lifetime(binding, transport)
                evicted = self._sessions.join(key.client_id, binding.session, lifetime)
                if evicted is not None:
                    self._drop_evicted(key.client_id, evicted)
            else:
                lifetime = self._lifetime(binding, transport)
            return self._issue(key, binding, permissions, lifetime, state)

    def _binding(self, scope: str, connection_id: int, transport: str) -> Binding:
        """Where the tokens of a grant asking for ``scope`` may be used; a session binding
        without a name stands for a new ``rest-<id>`` session."""
        entries = scope.split()
        names = [entry[len("session:") :] for entry in entries if entry.startswith("session:")]
        if "connection" in entries or (not names and not self._rest_grant(transport)):
            return Binding(CONNECTION, connection_id=connection_id)
        if not names:
            return Binding(SESSION, rest=True)
        if not names[0]:
            raise RpcError.invalid_param("scope", "session: needs a name, e.g. session:bot")
        return Binding(SESSION, session=names[0])

    def _rest_grant(self, transport: str) -> bool:
        return transport == HTTP and self._rest_sessions

    def _lifetime(self, binding: Binding, transport: str) -> float:
        """How long a token of ``binding`` issued over ``transport`` lives, in seconds."""
        if self.token_ttl is not None:
            return self.token_ttl
        if binding.kind == SESSION:
            return REST_SESSION_TOKEN_SECONDS if binding.rest else SESSION_TOKEN_SECONDS
        return CONNECTION_TOKEN_SECONDS if transport != HTTP else SESSION_TOKEN_SECONDS

    def _issue(
        self,
        key: ApiKey,
        binding: Binding,
        permissions: Permissions,
        lifetime: float,
        state: str | None,
    ) -> dict[str, Any]:
        """A fresh token pair and ``public/auth``'s answer (hold the lock)."""
        access = self._access.new(key.client_id, lifetime, binding, permissions)
        refresh = self._refresh.new(key.client_id, REFRESH_TOKEN_TTL, binding, permissions)
        entries = [*permissions.entries(), binding.scope_entry, "mainaccount"]
        if key.name:
            entries.append(f"name:{key.name}")
        answer: dict[str, Any] = {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": math.ceil(lifetime),
            "scope": " ".join(sorted(entries)),
            "token_type": "bearer",
            "enabled_features": list(key.enabled_features),
        }
        if state is not None:
            answer["state"] = state
        return answer

    def _drop_evicted(self, client_id: str, session: str) -> None:
        """Invalidate the tokens of an evicted session, remembering why (hold the lock)."""
        self._refresh.drop_session(client_id, session)
        for token in self._access.drop_session(client_id, session):
            self._evicted[token] = session
            if len(self._evicted) > _EVICTED_MEMORY:
                self._evicted.popitem(last=False)

    def _key(self, client_id: str) -> ApiKey:
        key = self._keys.get(client_id)
        if key is None:
            raise RpcError.invalid_credentials(f"no API key with client id {client_id!r}")
        return key

    def _hmac_key(self, client_id: str, what: str) -> tuple[ApiKey, str]:
        """The key of ``client_id`` and its secret, for ``what`` needs one (13004 when the key
        is unknown or asymmetric)."""
        key = self._key(client_id)
        if key.client_secret is None:
            raise RpcError.invalid_credentials(
                f"{what} needs a key with a secret; this key is asymmetric: it authenticates "
                "only with grant_type client_signature"
            )
        return key, key.client_secret

    def _client_credentials(self, params: Mapping[str, Any]) -> ApiKey:
        client_id = _required(params, "client_id")
        secret = _required(params, "client_secret")
        key, known = self._hmac_key(client_id, "grant_type client_credentials")
        if not _same(known, secret):
            raise RpcError.invalid_credentials("wrong client_secret")
        return key

    def _client_signature(self, params: Mapping[str, Any]) -> ApiKey:
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
            raise RpcError.invalid_param("timestamp", "wrong format") from None
        key = self._key(client_id)
        self._check_timestamp(timestamp)
        if key.verifier is not None:
            message = signed_message(timestamp, nonce, data)
            if message is None or not key.verifier.verify(message, signature):
                raise RpcError.invalid_credentials(
                    f"signature does not verify with the key's {key.verifier.kind} public key: "
                    "it must sign timestamp\\nnonce\\ndata (Ed25519, or RSA PKCS#1 v1.5 with "
                    "SHA-256), encoded base64url without padding"
                )
        else:
            assert key.client_secret is not None
            expected = expected_signature(key.client_secret, timestamp, nonce, data)
            if not _same(expected, signature.lower()):
                raise RpcError.invalid_credentials(
                    "signature does not match HMAC-SHA256(client_secret, timestamp\\nnonce\\ndata)"
                )
        self._claim_nonce(client_id, nonce, timestamp)
        return key

    def _refresh_grant(
        self, params: Mapping[str, Any], connection_id: int, transport: str, state: str | None
    ) -> dict[str, Any]:
        token = _required(params, "refresh_token")
        with self._lock:
            entry, _ = self._refresh.lookup(token)
            if entry is not None and _elsewhere(entry, connection_id):
                raise RpcError.unauthorized(_REUSED)
            entry = self._refresh.take(token)
            if entry is None:
                raise RpcError.unauthorized(
                    "refresh token unknown, expired, already used (refresh tokens are "
                    "single-use) or of a session that ended"
                )
            binding = entry.binding
            lifetime = self._lifetime(binding, transport)
            if binding.kind == SESSION:
                assert binding.session is not None
                self._sessions.refresh(entry.client_id, binding.session, lifetime)
            key = self._keys[entry.client_id]
            return self._issue(key, binding, entry.permissions, lifetime, state)

    # -- private methods ---------------------------------------------------------------------

    def authorize(
        self,
        authorization: str | None,
        connection_id: int,
        *,
        verb: str = "GET",
        target: str = "",
        body: str = "",
    ) -> Principal:
        """Check a private HTTP request's ``Authorization`` header: who is calling, and what
        they may do.

        :param authorization: the header's value, or None when the request had none.
        :param connection_id: the connection the request came on.
        :param verb: the HTTP method, which a request signature covers.
        :param target: the raw request target (path and query), which a signature covers.
        :param body: the request body as text, which a signature covers.
        """
        if authorization is None or not authorization.strip():
            raise RpcError.unauthorized(
                "missing credentials: send 'Authorization: Bearer <access_token>'"
            )
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer":
            return self.check_token(value, connection_id)
        if scheme == SIGNATURE_SCHEME:
            key = self._request_signature(value, signed_request_data(verb, target, body))
            return Principal(key.client_id, key.permissions)
        if scheme == "basic":
            key = self._basic(value)
            return Principal(key.client_id, key.permissions)
        raise RpcError.unauthorized(
            "unsupported Authorization scheme; use Bearer, deri-hmac-sha256 or Basic"
        )

    def client_of(self, authorization: str | None, connection_id: int) -> str | None:
        """The client id behind a valid Bearer token, else None; never raises, never consumes."""
        if authorization is None or authorization[:7].lower() != "bearer ":
            return None
        try:
            return self.check_token(authorization[7:].strip(), connection_id).client_id
        except RpcError:
            return None

    def check_token(self, token: str, connection_id: int) -> Principal:
        """Who a valid access token used on ``connection_id`` belongs to, and what it may do.

        :raises RpcError: 13009 when the token is unknown, expired, of an evicted session, or
            bound to another connection.
        """
        with self._lock:
            if token in self._static:
                return Principal(STATIC_TOKEN_CLIENT_ID, FULL)
            entry, expired = self._access.lookup(token)
            evicted = self._evicted.get(token) if entry is None else None
        if entry is None:
            if evicted is not None:
                raise RpcError.unauthorized(
                    f"the token's session {evicted!r} was removed to make room for another: "
                    f"an API key holds at most {MAX_SESSIONS_PER_CLIENT} sessions"
                )
            if expired:
                raise RpcError.unauthorized("access token expired; authenticate again")
            raise RpcError.unauthorized("unknown access token")
        if _elsewhere(entry, connection_id):
            raise RpcError.unauthorized(_REUSED)
        return Principal(entry.client_id, entry.permissions)

    def _request_signature(self, value: str, data: str) -> ApiKey:
        fields: dict[str, str] = {}
        for part in value.split(","):
            name, sep, field = part.partition("=")
            if sep:
                fields[name.strip().lower()] = field.strip()
        for name in ("id", "ts", "sig", "nonce"):
            if not fields.get(name):
                raise RpcError.invalid_credentials(
                    f"malformed {SIGNATURE_SCHEME} header: {name}= is missing "
                    "(expected id=<client_id>,ts=<ms>,sig=<hex>,nonce=<nonce>)"
                )
        client_id, nonce = fields["id"], fields["nonce"]
        try:
            timestamp = int(fields["ts"])
        except ValueError:
            raise RpcError.invalid_credentials(
                f"malformed {SIGNATURE_SCHEME} header: ts must be whole milliseconds since the "
                "Unix epoch"
            ) from None
        key, secret = self._hmac_key(client_id, SIGNATURE_SCHEME)
        self._check_timestamp(timestamp)
        expected = expected_signature(secret, timestamp, nonce, data)
        if not _same(expected, fields["sig"].lower()):
            raise RpcError.invalid_credentials(
                "invalid signature: sig must be HMAC-SHA256(secret, ts\\nnonce\\n"
                "VERB\\n<path with query>\\n<body>\\n)"
            )
        self._claim_nonce(client_id, nonce, timestamp)
        return key

    def _basic(self, value: str) -> ApiKey:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise RpcError.invalid_credentials(
                "malformed Basic credentials: expected base64(client_id:client_secret)"
            ) from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise RpcError.invalid_credentials(
                "malformed Basic credentials: expected base64(client_id:client_secret)"
            )
        key, known = self._hmac_key(client_id, "Basic credentials")
        if not _same(known, secret):
            raise RpcError.invalid_credentials("wrong client secret in Basic credentials")
        return key

    # -- shared checks -----------------------------------------------------------------------

    def _check_timestamp(self, timestamp_ms: int) -> None:
        skew = timestamp_ms / 1000.0 - self._wall_clock()
        if abs(skew) > SIGNATURE_WINDOW_SECONDS:
            direction = "ahead of" if skew > 0 else "behind"
            raise RpcError.invalid_credentials(
                f"timestamp is {abs(skew):.1f} s {direction} the server clock; signed timestamps "
                f"are valid for {SIGNATURE_WINDOW_SECONDS} s (check the machine's clock)"
            )

    def _claim_nonce(self, client_id: str, nonce: str, timestamp_ms: int) -> None:
        with self._lock:
            fresh = self._nonces.claim(client_id, nonce, timestamp_ms)
        if not fresh:
            raise RpcError.invalid_credentials("nonce reused: every signature needs a new nonce")


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
