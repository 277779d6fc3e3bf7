"""Who may call what: access and refresh tokens, ``public/auth`` grants, request signatures.

Everything here follows Deribit's documented rules (see ``openapi_client.signing``); the
simulator keeps its tokens in memory only and never writes a credential anywhere.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from openapi_client.signing import SCHEME, SIGNATURE_WINDOW_SECONDS, request_data, sign

from .rpc import INVALID_CREDENTIALS, RpcError

__all__ = ["STATIC_TOKEN_CLIENT_ID", "TOKEN_SCOPE", "Authenticator", "NonceRegistry"]

#: The account every static token belongs to (it matters only for rate limiting).
STATIC_TOKEN_CLIENT_ID = "sim-client"
#: The ``scope`` reported with every issued token.
TOKEN_SCOPE = "connection mainaccount"
#: How long a refresh token stays usable, in seconds (a year: in practice, until used).
REFRESH_TOKEN_TTL = 365 * 24 * 3600.0
#: At most this many live tokens of each kind are kept; the oldest are forgotten first.
MAX_TOKENS = 100_000

GRANT_TYPES = ("client_credentials", "client_signature", "refresh_token")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class _TokenTable:
    """Tokens mapped to ``(client_id, expires_at)``; bounded, oldest evicted first."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()

    def new(self, client_id: str, ttl: float) -> str:
        token = secrets.token_urlsafe(32)
        if len(self._tokens) >= MAX_TOKENS:
            self._tokens.popitem(last=False)
        self._tokens[token] = (client_id, self._clock() + ttl)
        return token

    def lookup(self, token: str) -> tuple[str | None, bool]:
        """``(client_id, expired)``; ``client_id`` is None when the token is unknown or expired."""
        entry = self._tokens.get(token)
        if entry is None:
            return None, False
        if self._clock() >= entry[1]:
            del self._tokens[token]
            return None, True
        return entry[0], False

    def take(self, token: str) -> str | None:
        """Remove a live token and return its client id (None if unknown or expired)."""
        entry = self._tokens.pop(token, None)
        if entry is None or self._clock() >= entry[1]:
            return None
        return entry[0]

    def clear(self) -> None:
        self._tokens.clear()


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

    def clear(self) -> None:
        self._seen.clear()
        self._order.clear()


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
        self._access = _TokenTable(clock)
        self._refresh = _TokenTable(clock)
        self._nonces = NonceRegistry(wall_clock=wall_clock)

    # -- store -------------------------------------------------------------------------------

    def add_token(self, token: str) -> None:
        """Accept ``token`` as a static access token from now on."""
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError("a static token must be a non-empty string without whitespace")
        with self._lock:
            self._static.add(token)

    def issue_access_token(self, client_id: str, ttl: float | None = None) -> str:
        """Mint an access token for ``client_id`` living ``ttl`` seconds (default token_ttl)."""
        if not isinstance(client_id, str) or not client_id:
            raise ValueError(f"client_id must be a non-empty string, got {client_id!r}")
        lifetime = self.token_ttl if ttl is None else float(ttl)
        if not (math.isfinite(lifetime) and lifetime >= 0):
            raise ValueError(f"ttl must be a finite number of seconds >= 0, got {ttl!r}")
        with self._lock:
            return self._access.new(client_id, lifetime)

    def revoke(self, *, refresh_tokens: bool = False) -> None:
        """Invalidate every issued access token (and refresh token if asked); static ones stay."""
        with self._lock:
            self._access.clear()
            if refresh_tokens:
                self._refresh.clear()

    def reset_nonces(self) -> None:
        """Forget the nonces seen so far."""
        with self._lock:
            self._nonces.clear()

    # -- public/auth -------------------------------------------------------------------------

    def grant(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Answer ``public/auth``: check the grant and issue a fresh token pair."""
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise RpcError.invalid_param("grant_type", "missing")
        if grant_type == "client_credentials":
            client_id = self._client_credentials(params)
        elif grant_type == "client_signature":
            client_id = self._client_signature(params)
        elif grant_type == "refresh_token":
            client_id = self._refresh_token(params)
        else:
            raise RpcError.invalid_param("grant_type", f"must be one of {', '.join(GRANT_TYPES)}")
        with self._lock:
            access = self._access.new(client_id, self.token_ttl)
            refresh = self._refresh.new(client_id, REFRESH_TOKEN_TTL)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": math.ceil(self.token_ttl),
            "scope": TOKEN_SCOPE,
            "token_type": "bearer",
        }

    def _client_credentials(self, params: Mapping[str, str]) -> str:
        client_id = _required(params, "client_id")
        secret = _required(params, "client_secret")
        known = self._credentials.get(client_id)
        if known is None or not _same(known, secret):
            raise RpcError.of(
                INVALID_CREDENTIALS, {"reason": "unknown client_id or wrong client_secret"}
            )
        return client_id

    def _client_signature(self, params: Mapping[str, str]) -> str:
        client_id = _required(params, "client_id")
        raw_timestamp = _required(params, "timestamp")
        nonce = _required(params, "nonce")
        signature = _required(params, "signature")
        data = params.get("data", "")
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
        if not _same(sign(secret, timestamp, nonce, data), signature.lower()):
            raise RpcError.of(
                INVALID_CREDENTIALS,
                {
                    "reason": "signature does not match "
                    "HMAC-SHA256(client_secret, timestamp\\nnonce\\ndata)"
                },
            )
        self._claim_nonce(client_id, nonce, timestamp)
        return client_id

    def _refresh_token(self, params: Mapping[str, str]) -> str:
        token = _required(params, "refresh_token")
        with self._lock:
            client_id = self._refresh.take(token)
        if client_id is None:
            raise RpcError.unauthorized(
                "refresh token unknown, expired or already used (refresh tokens are single-use)"
            )
        return client_id

    # -- private methods ---------------------------------------------------------------------

    def authorize(self, authorization: str | None, target: str) -> str:
        """Check a private request's ``Authorization`` header; return the caller's client id.

        :param authorization: the header's value, or None when the request had none.
        :param target: the raw request target (path and query) that a signature must cover.
        """
        if authorization is None or not authorization.strip():
            raise RpcError.unauthorized(
                "missing credentials: send 'Authorization: Bearer <access_token>'"
            )
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer":
            return self._bearer(value)
        if scheme == SCHEME:
            return self._request_signature(value, target)
        if scheme == "basic":
            return self._basic(value)
        raise RpcError.unauthorized(
            "unsupported Authorization scheme; use Bearer, deri-hmac-sha256 or Basic"
        )

    def client_of(self, authorization: str | None) -> str | None:
        """The client id behind a valid Bearer token, else None; never raises, never consumes."""
        if authorization is None or authorization[:7].lower() != "bearer ":
            return None
        try:
            return self._bearer(authorization[7:].strip())
        except RpcError:
            return None

    def _bearer(self, token: str) -> str:
        with self._lock:
            if token in self._static:
                return STATIC_TOKEN_CLIENT_ID
            client_id, expired = self._access.lookup(token)
        if client_id is None:
            if expired:
                raise RpcError.unauthorized("access token expired; authenticate again")
            raise RpcError.unauthorized("invalid or expired access token")
        return client_id

    def _request_signature(self, value: str, target: str) -> str:
        fields: dict[str, str] = {}
        for part in value.split(","):
            name, sep, field = part.partition("=")
            if sep:
                fields[name.strip().lower()] = field.strip()
        for name in ("id", "ts", "sig", "nonce"):
            if not fields.get(name):
                raise RpcError.unauthorized(
                    f"malformed {SCHEME} header: {name}= is missing "
                    "(expected id=<client_id>,ts=<ms>,sig=<hex>,nonce=<nonce>)"
                )
        client_id, nonce = fields["id"], fields["nonce"]
        try:
            timestamp = int(fields["ts"])
        except ValueError:
            raise RpcError.unauthorized(
                f"malformed {SCHEME} header: ts must be whole milliseconds since the Unix epoch"
            ) from None
        secret = self._credentials.get(client_id)
        if secret is None:
            raise RpcError.unauthorized(f"unknown client id in {SCHEME} header")
        self._check_timestamp(timestamp)
        expected = sign(secret, timestamp, nonce, request_data("GET", target, ""))
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


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise RpcError.invalid_param(name, "missing")
    return value
