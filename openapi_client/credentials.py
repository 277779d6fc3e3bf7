"""The credential lifecycle: from settings to an ``Authorization`` header on every private call.

Precedence: ``Configuration.access_token``, then ``token_provider``, then the API key
(:func:`uses_api_key`): ``client_id`` with ``client_secret`` used as ``auth_method`` says:

* ``"client_signature"`` (default): tokens from ``public/auth`` with a signed grant, so the
  secret never leaves the machine;
* ``"client_credentials"``: tokens from ``public/auth`` with the secret in the request;
* ``"signature"``: no token; each request signed with ``deri-hmac-sha256``;

or ``client_id`` with an asymmetric key's ``private_key``: tokens from ``public/auth`` with a
``client_signature`` grant signed by the private key (the only grant Deribit takes for it).

:class:`TokenManager` fetches a token before the first private call, refreshes it with the
``refresh_token`` grant ahead of expiry, and falls back to the key when a refresh fails. It is
thread-safe: threads that need a token at once share a single ``public/auth`` request.

The refresh margin is ``Configuration.token_refresh_margin`` seconds (default 60), capped at a fifth
of the token's lifetime so that short-lived tokens are not refreshed on every call. While a token is
inside its margin, one thread refreshes it and the others keep using it; if that refresh fails, the
still-valid token is kept and the refresh is tried again a little later, so a refresh failure
never fails a call that the current token could make.

The lifetime a server states (``expires_in``) is not trusted as it is: :func:`token_lifetime` holds
it between :data:`MIN_TOKEN_LIFETIME` and :data:`MAX_TOKEN_LIFETIME`, and logs a value outside,
so that no answer can make the client renew in a loop or compute a deadline that overflows.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

from openapi_client import signing
from openapi_client.configuration import Configuration
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import (
    FORBIDDEN,
    ApiException,
    ApiTransportError,
    ApiValueError,
)
from openapi_client.locks import new_lock
from openapi_client.redaction import install_filter, register_secret

__all__ = [
    "MAX_TOKEN_LIFETIME",
    "MIN_TOKEN_LIFETIME",
    "Credentials",
    "Token",
    "TokenManager",
    "explain_forbidden",
    "granted_scope",
    "key_grant",
    "refresh_grant",
    "renewal_retry_at",
    "requested_scope",
    "token_from_grant",
    "token_lifetime",
    "uses_api_key",
    "with_clock_hint",
]

logger = install_filter(logging.getLogger(__name__))

#: Calls ``public/auth`` with the query arguments the callable builds (anew for every attempt)
#: and returns the decoded envelope.
FetchToken = Callable[[Endpoint, Callable[[], Mapping[str, Any]]], dict[str, Any]]

_SIGNED_AT = re.compile(rf"^{signing.SCHEME} .*\bts=(\d+)")
_SIGNATURE = re.compile(r"\bsig=([0-9A-Fa-f]+)")

# Header values must not be able to smuggle a second header or break the request line.
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")

#: The largest share of a token's lifetime kept as refresh margin (for short-lived tokens).
_MAX_MARGIN_SHARE = 0.2

#: After a failed refresh ahead of expiry, wait at most this long (seconds) before the next try.
_REFRESH_RETRY_SECONDS = 5.0
#: ... and at least this long (or until it expires), however close the expiry: never a loop.
_REFRESH_RETRY_MIN_SECONDS = 1.0

#: The shortest token lifetime the client counts on, in seconds. A token is renewed when a fifth
#: of its lifetime is left at the latest, so renewals are at least 16 s apart (at most four a
#: minute), whatever ``expires_in`` a server states: 0, negative, or a few seconds.
MIN_TOKEN_LIFETIME = 20.0
#: The longest, in seconds (two years; Deribit's WebSocket tokens live one year): a longer or
#: infinite ``expires_in`` keeps every deadline a finite number a timer can wait for.
MAX_TOKEN_LIFETIME = 2 * 365 * 86400.0


class Token(NamedTuple):
    """A token as ``public/auth`` returned it, with monotonic deadlines.

    :ivar lifetime: the seconds it was counted on to live (:func:`token_lifetime`).
    :ivar scope: the scope Deribit granted.
    """

    access_token: str
    refresh_token: str | None
    expires_at: float
    refresh_at: float
    lifetime: float = 0.0
    scope: str = ""

    def __repr__(self) -> str:
        # Both tokens are credentials: never show them.
        return f"Token(expires_at={self.expires_at!r}, refresh_at={self.refresh_at!r})"


def token_lifetime(expires_in: Any) -> float:
    """The seconds a token whose ``public/auth`` answer says ``expires_in`` is counted on to
    live: ``expires_in`` held between :data:`MIN_TOKEN_LIFETIME` and :data:`MAX_TOKEN_LIFETIME`
    (infinity and integers of any size included), with a warning when it was outside.

    :raises ApiException: ``expires_in`` is not a number (a string, a boolean, NaN, missing).
    """
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, (int, float))
        or expires_in != expires_in  # NaN
    ):
        raise ApiException(200, "public/auth answered without a numeric expires_in")
    if MIN_TOKEN_LIFETIME <= expires_in <= MAX_TOKEN_LIFETIME:
        return float(expires_in)
    lifetime = MIN_TOKEN_LIFETIME if expires_in < MIN_TOKEN_LIFETIME else MAX_TOKEN_LIFETIME
    logger.warning(
        "public/auth answered expires_in %s, outside the %g to %g s the client accepts; the "
        "token is counted on to live %g s",
        _number(expires_in),
        MIN_TOKEN_LIFETIME,
        MAX_TOKEN_LIFETIME,
        lifetime,
    )
    return lifetime


def _number(value: float) -> str:
    """``value`` for a log line: an integer too long to print is described by its size."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"(an integer of {value.bit_length()} bits)"
    return repr(value)


def _checked(token: Any, origin: str, secret: bool = True) -> str:
    if not isinstance(token, str) or not token:
        raise ApiValueError(f"{origin} must be a non-empty string")
    if _UNSAFE.search(token):
        raise ApiValueError(f"{origin} contains whitespace or control characters")
    if secret:
        register_secret(token)  # redacted from every text the library writes from now on
    return token


class TokenManager:
    """Fetches, caches and refreshes access tokens for one API key.

    :param configuration: supplies ``client_id``, ``client_secret`` or ``private_key``,
        ``auth_method`` and ``token_refresh_margin``.
    :param fetch: calls ``public/auth`` (the ``ApiClient`` provides it).
    :param clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        configuration: Configuration,
        fetch: FetchToken,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configuration = configuration
        self._fetch = fetch
        self._clock = clock
        self._lock = new_lock()
        self._token: Token | None = None
        self._key = self._key_of(configuration)

    @staticmethod
    def _key_of(configuration: Configuration) -> tuple[Any, ...]:
        return (
            configuration.client_id,
            configuration.client_secret,
            configuration.private_key,
            configuration.auth_method,
        )

    @property
    def key_changed(self) -> bool:
        """Whether the configuration's API key or auth method changed since this manager began."""
        return self._key_of(self._configuration) != self._key

    @property
    def token(self) -> Token | None:
        """The token held now (None before the first grant), for scheduling its refresh."""
        return self._token

    def access_token(self) -> str:
        """A valid access token, fetching or refreshing one first when needed."""
        token = self._token
        now = self._clock()
        if token is not None and now < token.refresh_at:
            return token.access_token
        if token is not None and now < token.expires_at:
            # Still valid: one thread refreshes ahead of expiry, the others carry on.
            if self._lock.acquire(blocking=False):
                try:
                    if self._token is token:
                        self._refresh_early(token)
                finally:
                    self._lock.release()
            return (self._token or token).access_token
        with self._lock:
            current = self._token
            if current is not token and current is not None and self._clock() < current.expires_at:
                return current.access_token
            return self._renew(current).access_token

    def invalidate(self, access_token: str) -> None:
        """Forget ``access_token`` (the server refused it); the next call gets a fresh one."""
        with self._lock:
            token = self._token
            if token is not None and token.access_token == access_token:
                self._token = token._replace(expires_at=-math.inf, refresh_at=-math.inf)

    def _refresh_early(self, token: Token) -> None:
        """Renew ``token`` ahead of its expiry; on failure keep it and try again later."""
        try:
            self._renew(token)
        except ApiException as error:
            now = self._clock()
            retry_at = renewal_retry_at(token, now)
            logger.warning(
                "could not renew the access token ahead of expiry (%r); keeping it for its "
                "remaining %.1f s and trying again in %.1f s",
                error,
                max(0.0, token.expires_at - now),
                retry_at - now,
            )
            self._token = token._replace(refresh_at=retry_at)

    def _renew(self, token: Token | None) -> Token:
        if token is not None and token.refresh_token:
            try:
                refresh_token = token.refresh_token
                return self._grant(lambda: refresh_grant(refresh_token))
            except ApiTransportError:
                raise
            except ApiException as error:
                logger.info("token refresh refused (%r); authenticating with the API key", error)
        try:
            return self._grant(lambda: key_grant(self._configuration))
        except ApiException as error:
            if self._configuration.auth_method != "client_signature":
                raise
            # The refused grant was signed moments ago by this same clock.
            explained = with_clock_hint(error, signing.now_ms())
            if explained is error:
                raise
            raise explained from error

    def _grant(self, make_args: Callable[[], Mapping[str, Any]]) -> Token:
        from openapi_client.api.endpoints import PUBLIC_AUTH

        started = self._clock()
        envelope = self._fetch(PUBLIC_AUTH, make_args)
        token = token_from_grant(envelope.get("result"), self._configuration, started)
        self._token = token
        return token


def key_grant(configuration: Configuration) -> dict[str, Any]:
    """The arguments of ``public/auth`` for ``configuration``'s API key, built anew for each
    attempt (a nonce is never sent twice; the signature's timestamp is the wall clock's)."""
    client_id = _checked(configuration.client_id, "Configuration.client_id", secret=False)
    private_key = configuration.private_key
    grant: dict[str, Any]
    if private_key is not None:
        timestamp = signing.now_ms()
        nonce = signing.new_nonce()
        grant = {
            "grant_type": "client_signature",
            "client_id": client_id,
            "timestamp": timestamp,
            "nonce": nonce,
            "signature": private_key.sign(signing.string_to_sign(timestamp, nonce, "")),
        }
    elif configuration.auth_method == "client_credentials":
        secret = _checked(configuration.client_secret, "Configuration.client_secret")
        grant = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        }
    else:
        secret = _checked(configuration.client_secret, "Configuration.client_secret")
        timestamp = signing.now_ms()
        nonce = signing.new_nonce()
        signature = signing.sign(secret, timestamp, nonce, "")
        register_secret(signature)
        grant = {
            "grant_type": "client_signature",
            "client_id": client_id,
            "timestamp": timestamp,
            "nonce": nonce,
            "signature": signature,
        }
    scope = requested_scope(configuration)
    if scope is not None:
        grant["scope"] = scope
    return grant


def refresh_grant(refresh_token: str) -> dict[str, Any]:
    """The arguments of ``public/auth`` that renew a token with its ``refresh_token``."""
    return {"grant_type": "refresh_token", "refresh_token": refresh_token}


def token_from_grant(result: Any, configuration: Configuration, started: float) -> Token:
    """The token in the ``result`` of a ``public/auth`` answer to a grant sent at ``started``
    (on the clock the deadlines are kept on): checked, its credentials registered for
    redaction, its lifetime held in range (:func:`token_lifetime`) and renewed
    ``Configuration.token_refresh_margin`` seconds before expiry, at most a fifth of its
    lifetime (so that short-lived tokens are not renewed on every call).

    :raises ApiException: the answer holds no usable token.
    """
    if not isinstance(result, dict):
        raise ApiException(200, "public/auth answered without a result")
    access = result.get("access_token")
    if not isinstance(access, str) or not access:
        raise ApiException(200, "public/auth answered without an access_token")
    lifetime = token_lifetime(result.get("expires_in"))
    _checked(access, "the access token from public/auth")
    scope = result.get("scope")
    _note_grant(access, requested_scope(configuration), scope)
    refresh = result.get("refresh_token")
    register_secret(refresh)
    margin = min(float(configuration.token_refresh_margin), lifetime * _MAX_MARGIN_SHARE)
    margin = max(0.0, margin)  # a negative setting would refresh only after expiry
    logger.debug("got an access token, valid %g s", lifetime)
    return Token(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=started + lifetime,
        refresh_at=started + lifetime - margin,
        lifetime=lifetime,
        scope=scope if isinstance(scope, str) else "",
    )


def renewal_retry_at(token: Token, now: float) -> float:
    """When to try again to renew ``token`` after a renewal failed at ``now``: in half the time
    it has left, 1 to 5 s from now, and at the latest when it expires (where a renewal is due
    anyway). Never sooner than a second while the token lives: never a loop."""
    left = max(0.0, token.expires_at - now)
    return min(
        now + max(_REFRESH_RETRY_MIN_SECONDS, min(_REFRESH_RETRY_SECONDS, left / 2)),
        token.expires_at,
    )


def uses_api_key(configuration: Configuration) -> bool:
    """Whether ``configuration`` holds an API key: a client id with a secret (HMAC) or with an
    asymmetric key's private key. (Whether it is used depends on the precedence above.)"""
    return bool(
        configuration.client_id
        and (configuration.client_secret or configuration.private_key is not None)
    )


def requested_scope(configuration: Configuration) -> str | None:
    """The ``scope`` a key-based grant asks for: ``session:NAME`` (or nothing, for Deribit's
    default ``connection``-scoped token) followed by ``Configuration.scope``'s permissions; None
    when that is nothing."""
    name = configuration.session_name
    parts = [f"session:{name}"] if name is not None else []
    if configuration.scope is not None:
        parts.append(configuration.scope)
    return " ".join(parts) or None


#: The scope Deribit granted with each recent token, by a digest of the token (the token itself
#: is not kept here), so that a 13021 can say what the token had. Bounded: old tokens drop out.
_GRANTED_SCOPES: OrderedDict[bytes, str] = OrderedDict()
_GRANTED_LOCK = new_lock()
_MAX_GRANTED = 64

#: Levels of a permission, from least to most.
_LEVELS = ("none", "read", "read_write")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _note_grant(access_token: str, requested: str | None, granted: Any) -> None:
    """Keep the scope granted with ``access_token`` and warn when it is narrower than asked."""
    if isinstance(granted, str):
        with _GRANTED_LOCK:
            _GRANTED_SCOPES[_digest(access_token)] = granted
            while len(_GRANTED_SCOPES) > _MAX_GRANTED:
                _GRANTED_SCOPES.popitem(last=False)
    _warn_if_narrowed(requested, granted)


def granted_scope(credential: str | None) -> str | None:
    """The scope Deribit granted with ``credential`` (an access token, or ``Bearer <token>``),
    when this process obtained it from ``public/auth``; None otherwise."""
    if not credential:
        return None
    if credential.startswith("Bearer "):
        credential = credential[len("Bearer ") :]
    with _GRANTED_LOCK:
        return _GRANTED_SCOPES.get(_digest(credential))


def _lacks(required: str, scope: str) -> list[str]:
    """The entries of ``required`` (``AREA:LEVEL ...``) that ``scope`` does not grant."""
    have: dict[str, int] = {}
    for entry in scope.split():
        area, _, level = entry.partition(":")
        if level in _LEVELS:
            have[area] = max(_LEVELS.index(level), have.get(area, -1))
    missing = []
    for entry in required.split():
        area, _, level = entry.partition(":")
        if level in _LEVELS and have.get(area, -1) < _LEVELS.index(level):
            missing.append(entry)
    return missing


def explain_forbidden(
    error: ApiException, endpoint: Endpoint, credential: str | None
) -> ApiException:
    """``error`` (13021 ``forbidden`` for a call to ``endpoint``) restated with the permission the
    method needs and what the token has, when known; ``error`` itself otherwise."""
    required = endpoint.required_scope
    if error.error_code != FORBIDDEN or not required:
        return error
    method = endpoint.path.lstrip("/")
    scope = granted_scope(credential)
    missing = _lacks(required, scope) if scope is not None else []
    if scope is None:
        had = "which the token may lack (its scope is not known to the client)"
    elif missing:
        had = f"and the token's scope {scope!r} lacks {' '.join(missing)}"
    else:
        had = f"and the token's scope {scope!r} seems to include it"
    hint = (
        f"{method} needs the permission {required}, {had}: ask for it with "
        "Configuration.scope, or use an API key whose maximum scope includes it"
    )
    return type(error)(
        error.status, error.reason, body=error.body, headers=error.headers, data=error.data,
        hint=hint,
    )


def _warn_if_narrowed(requested: str | None, granted: Any) -> None:
    """Deribit may grant less than was asked: say so when the session scope did not come back,
    or a permission came back at another level than asked."""
    if requested is None or not isinstance(granted, str):
        return
    got = granted.split()
    for wanted in requested.split():
        area, _, level = wanted.partition(":")
        if area == "session":
            if wanted not in got:
                logger.warning(
                    "asked Deribit for tokens with scope %r but got %r: tokens tied to one "
                    "connection fail on the next (13009); check the API key's permissions and "
                    "the session limit (16 a key)",
                    wanted,
                    granted,
                )
            continue
        granted_levels = [entry.partition(":")[2] for entry in got if entry.startswith(area + ":")]
        if granted_levels and level not in granted_levels:
            logger.warning(
                "asked Deribit for %r but the token has %r: the API key's maximum scope allows "
                "no more; methods that need more answer 13021 forbidden",
                wanted,
                f"{area}:{granted_levels[0]}",
            )


def with_clock_hint(error: ApiException, timestamp_ms: int) -> ApiException:
    """``error`` restated as a clock problem when Deribit refused a signature made at
    ``timestamp_ms`` and the answer's ``usIn`` shows the signature was outside its window.

    Returns ``error`` itself when the server's time is unknown or the timestamp was in the window.
    """
    server_us = error.data.get("usIn") if error.data else None
    if isinstance(server_us, bool) or not isinstance(server_us, int):
        return error
    skew = timestamp_ms / 1000.0 - server_us / 1_000_000.0
    if abs(skew) <= signing.SIGNATURE_WINDOW_SECONDS:
        return error
    hint = (
        f"this machine's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} "
        f"Deribit's, and a signed timestamp is valid for only "
        f"{signing.SIGNATURE_WINDOW_SECONDS} s; synchronise the clock (e.g. with NTP)"
    )
    reason = f"{error.reason}: {hint}" if error.reason else hint
    return type(error)(
        error.status, reason, body=error.body, headers=error.headers, data=error.data
    )


class Credentials:
    """Turns a configuration's credentials into ``Authorization`` header values.

    Reads the configuration on every call, so a token set or changed later is used at once.
    """

    def __init__(
        self,
        configuration: Configuration,
        fetch: FetchToken,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configuration = configuration
        self._fetch = fetch
        #: The monotonic clock token lifetimes are measured on; a test may set a manual one
        #: (before the first private call) to move time instead of sleeping.
        self.clock = clock
        self._manager: TokenManager | None = None
        self._manager_lock = new_lock()
        self._bearer_cache = ("", "")

    def after_fork(self) -> None:
        """In a child process just forked: locks held by the parent's threads are new here."""
        self._manager_lock = new_lock()
        manager = self._manager
        if manager is not None:
            manager._lock = new_lock()

    def _bearer(self, token: str) -> str:
        cached_token, header = self._bearer_cache
        if token is cached_token:
            return header
        header = "Bearer " + _checked(token, "the access token")
        self._bearer_cache = (token, header)
        return header

    def bearer_if_set(self) -> str | None:
        """``Bearer <access_token>`` when ``Configuration.access_token`` is set, else ``None``.

        Sent with public calls too, as the API description asks; a key-based token is never
        fetched just for a public call.
        """
        token = self._configuration.access_token
        return self._bearer(token) if token else None

    def token_manager(self) -> TokenManager:
        """The manager for the configured API key (a new one when the key changed)."""
        manager = self._manager
        if manager is None or manager.key_changed:
            with self._manager_lock:
                manager = self._manager
                if manager is None or manager.key_changed:
                    manager = TokenManager(self._configuration, self._fetch, self.clock)
                    self._manager = manager
        return manager

    def authorization(self, endpoint: Endpoint, target: str) -> str:
        """The ``Authorization`` value for a private request to ``target`` (path and query)."""
        configuration = self._configuration
        token = configuration.access_token
        if token:
            return self._bearer(token)
        provider = configuration.token_provider
        if provider is not None:
            return self._bearer(_checked(provider(), "the token from token_provider"))
        if uses_api_key(configuration):
            if configuration.auth_method == "signature":
                header = signing.signature_header(
                    _checked(configuration.client_id, "Configuration.client_id", secret=False),
                    _checked(configuration.client_secret, "Configuration.client_secret"),
                    "GET",
                    target,
                )
                signed = _SIGNATURE.search(header)
                if signed is not None:
                    register_secret(signed.group(1))
                return header
            return self._bearer(self.token_manager().access_token())
        raise ApiValueError(
            f"{endpoint.operation} is a private method and needs credentials: set "
            "Configuration.access_token, or Configuration.client_id with client_secret or "
            "private_key_file (Configuration.from_env() reads DERIBIT_ACCESS_TOKEN, "
            "DERIBIT_CLIENT_ID, DERIBIT_CLIENT_SECRET and DERIBIT_PRIVATE_KEY_FILE)"
        )

    def reauthenticate(self, authorization: str) -> bool:
        """After ``13009 unauthorized`` for ``authorization``: whether a fresh credential exists.

        True when the credential came from the API key (the token is dropped and fetched anew) or
        from ``token_provider`` (which may hand out a newer token); False for a fixed
        ``access_token`` or a per-request signature, which would fail the same way again.
        """
        configuration = self._configuration
        if configuration.access_token:
            return False
        if configuration.token_provider is not None:
            return True
        if configuration.auth_method == "signature":
            return False
        manager = self._manager
        if manager is None or not authorization.startswith("Bearer "):
            return False
        manager.invalidate(authorization[len("Bearer "):])
        return True

    @staticmethod
    def explain_refusal(error: ApiException, authorization: str) -> ApiException:
        """``error`` with a clock hint when a request signed at a timestamp outside Deribit's
        window was refused; otherwise ``error`` itself."""
        signed_at = _SIGNED_AT.search(authorization)
        if signed_at is None:
            return error
        return with_clock_hint(error, int(signed_at.group(1)))
