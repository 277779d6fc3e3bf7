"""The session's access token: getting one with ``public/auth``, renewing it ahead of expiry,
authenticating again after 13009, and the credentials private calls carry themselves.

:class:`Tokens` holds the token the session obtained with its API key, sends its ``public/auth``
requests (with the refresh token while one is held, else with the key, and the key after a
refused refresh), keeps the token while a renewal fails and it is still valid, and closes the
connection once it has expired. The functions at the bottom are pure: drivers call them too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from openapi_client.configuration import Configuration
from openapi_client.credentials import (
    Token,
    key_grant,
    refresh_grant,
    renewal_retry_at,
    token_from_grant,
    uses_api_key,
    with_clock_hint,
)
from openapi_client.exceptions import (
    ApiException,
    ApiTimeoutError,
    ApiValueError,
    OpenApiException,
)
from openapi_client.websocket.core.links import ENDED, READY, Link, Links
from openapi_client.websocket.core.outputs import Call, CoreSettings, Outbox
from openapi_client.websocket.core.routing import Request, Router
from openapi_client.websocket.events import Authenticated, SessionEvicted, TokenRefreshed
from openapi_client.websocket.jsonrpc import Data, answer_error

__all__ = [
    "AUTH",
    "REAUTH",
    "RENEW",
    "Tokens",
    "fixed_token",
    "private_params",
    "uses_key",
]

# The kinds of the session's ``public/auth`` requests: a restore step, a renewal, and a
# re-authentication after 13009.
AUTH, RENEW, REAUTH = "auth", "renew", "reauth"


class Tokens:
    """The session's token and its ``public/auth`` requests.

    :param configuration: read for the credentials, each time (a token set later is used).
    :param settings: ``display`` and ``call_timeout``, for messages.
    :param outbox: where events and log lines go.
    :param router: sends the requests, completes a re-authentication's ticket.
    :param links: the connection a renewal goes on, closed when the token expired.
    """

    __slots__ = ("_configuration", "_links", "_outbox", "_router", "_settings", "renewal", "token")

    def __init__(
        self,
        configuration: Configuration,
        settings: CoreSettings,
        outbox: Outbox,
        router: Router,
        links: Links,
    ) -> None:
        self._configuration = configuration
        self._settings = settings
        self._outbox = outbox
        self._router = router
        self._links = links
        #: The token ``public/auth`` gave, if any.
        self.token: Token | None = None
        #: The renewal awaiting its answer, if any.
        self.renewal: Request | None = None

    @property
    def uses_key(self) -> bool:
        """Whether connections authenticate with ``public/auth`` (an API key, no fixed token)."""
        return uses_key(self._configuration)

    @property
    def credentials_available(self) -> bool:
        """Whether any credential is configured (private calls are possible)."""
        configuration = self._configuration
        return bool(configuration.access_token or configuration.token_provider) or self.uses_key

    def request(self, key_only: bool = False) -> tuple[str, dict[str, Any], tuple[str, int | None]]:
        """``public/auth`` as ``(method, params, grant)``: with the refresh token while one is
        held, else with the key.

        :raises ApiValueError: the key cannot make a grant.
        """
        token = self.token
        if token is not None and token.refresh_token and not key_only:
            return "public/auth", refresh_grant(token.refresh_token), ("refresh", None)
        grant = key_grant(self._configuration)
        timestamp = grant.get("timestamp")
        return "public/auth", grant, ("key", timestamp if isinstance(timestamp, int) else None)

    def adopt(self, link: Link, token: Token, now: float) -> None:
        """Authorize ``link`` with ``token``: :class:`Authenticated` for its first,
        :class:`TokenRefreshed` for a renewal."""
        first = link.credential is None
        self.token = token
        link.credential = token.access_token
        link.token_confirmed = False
        link.authorized = True
        event = Authenticated if first else TokenRefreshed
        self._outbox.emit(event(link.number, token.scope, token.lifetime, now))

    def answered(
        self, request: Request, message: dict[str, Any], raw: Data, now: float
    ) -> Token | OpenApiException | Request:
        """What the answer to one of the session's ``public/auth`` requests gives: the token,
        or why there is none (a refused key grant restated when the clock was off); or, when a
        refused refresh grant was followed by a key grant, that new request (sent in its place:
        same kind, same ticket)."""
        if "error" not in message:
            try:
                return token_from_grant(message.get("result"), self._configuration, request.sent_at)
            except ApiException as refused:
                return refused
        error = answer_error(message, raw)
        if request.grant[0] != "refresh":
            return self._explained(error, request)
        self._outbox.log(
            logging.INFO, "token refresh refused (%r); authenticating with the API key", error
        )
        try:
            method, params, grant = self.request(key_only=True)
        except ApiValueError as refused:  # the key cannot make a grant (e.g. no secret now)
            return refused
        follow = self._router.send(request.link, method, params, request.kind, now)
        follow.grant = grant
        follow.ticket = ticket = request.ticket
        if ticket is not None:
            ticket.id = follow.id
            ticket.answer_by = follow.deadline
        if request.kind is RENEW:
            self.renewal = follow
        return follow

    def _explained(self, error: ApiException, request: Request) -> ApiException:
        """A refused key grant, restated as a clock problem when the signature was out of
        Deribit's window."""
        timestamp = request.grant[1]
        if timestamp is None or self._configuration.auth_method != "client_signature":
            return error
        return with_clock_hint(error, timestamp)

    # -- renewal ----------------------------------------------------------------------------------

    def renewal_due_at(self, ready: bool) -> float | None:
        """When the token is to be renewed (``ready``: whether the session is), None: not now."""
        token = self.token
        link = self._links.current
        if (
            token is None
            or self.renewal is not None
            or not ready
            or link is None
            or link.state is not READY
            or link.closing is not None
            or not self.uses_key
        ):
            return None
        return token.refresh_at

    def timer(self, now: float, ready: bool) -> None:
        """A renewal unanswered in time failed; renew when it is due."""
        renewal = self.renewal
        if renewal is not None and now >= renewal.deadline:
            self._router.pending.pop(renewal.id, None)
            self.renewal = None
            self.renewal_failed(
                ApiTimeoutError(
                    f"public/auth: {self._settings.display} did not answer within "
                    f"{self._settings.call_timeout:g} s"
                ),
                now,
            )
        due = self.renewal_due_at(ready)
        if due is not None and now >= due:
            self._renew(now)

    def _renew(self, now: float) -> None:
        link = self._links.current
        assert link is not None
        try:
            method, params, grant = self.request()
        except ApiValueError as refused:
            self.renewal_failed(refused, now)
            return
        request = self._router.send(link, method, params, RENEW, now)
        request.grant = grant
        self.renewal = request

    def renewal_answered(
        self, request: Request, message: dict[str, Any], raw: Data, now: float
    ) -> None:
        self.renewal = None
        link = request.link
        if link.state is ENDED:
            return
        token = self.answered(request, message, raw, now)
        if isinstance(token, Request):
            return  # the key grant follows the refused refresh grant
        if not isinstance(token, Token):
            self.renewal_failed(token, now)
            return
        self.adopt(link, token, now)
        self._outbox.at(token.refresh_at)

    def renewal_failed(self, error: OpenApiException, now: float) -> None:
        """A renewal failed: keep the token while it is valid and try again a little later;
        once it has expired, close the connection (the next one authenticates afresh)."""
        self.renewal = None
        token = self.token
        link = self._links.current
        if token is None or link is None or link.state is ENDED:
            return
        if now < token.expires_at:
            retry_at = renewal_retry_at(token, now)
            self._outbox.log(
                logging.WARNING,
                "could not renew the access token ahead of expiry (%r); keeping it for its "
                "remaining %.1f s and trying again in %.1f s",
                error,
                token.expires_at - now,
                retry_at - now,
            )
            self.token = token._replace(refresh_at=retry_at)
            self._outbox.at(retry_at)
            return
        self._outbox.log(logging.WARNING, "renewing the token failed: %r", error)
        link.renewal_failed = True
        self._links.close(
            link, 1000, "", f"closed: the token could not be renewed ({error!r})", now
        )

    # -- re-authentication ----------------------------------------------------------------------

    def reauthenticate(self, credential: str, now: float) -> bool | Call:
        """See :meth:`SessionCore.reauthenticate`."""
        configuration = self._configuration
        if configuration.access_token:
            return False
        if configuration.token_provider is not None:
            return True
        link = self._links.current
        if not self.uses_key or link is None or not link.open:
            return False
        if link.credential != credential:
            return True  # renewed since: try again with the new one
        token = self.token
        scope = token.scope if token is not None else ""
        if link.token_confirmed and any(part.startswith("session:") for part in scope.split()):
            self._outbox.emit(
                SessionEvicted(
                    link.number,
                    scope,
                    "Deribit refused the session's token after it had worked (13009): its "
                    "session was most likely evicted because another process may be using up "
                    "the key's 16 sessions; authenticating again",
                    now,
                )
            )
        link.token_confirmed = False
        ticket = Call("public/auth", {}, 0.0, self._settings.call_timeout)
        method, params, grant = self.request()
        request = self._router.send(link, method, params, REAUTH, now)
        request.grant = grant
        request.ticket = ticket
        ticket.link = link
        ticket.id = request.id
        ticket.answer_by = request.deadline
        return ticket

    def reauth_answered(
        self, request: Request, message: dict[str, Any], raw: Data, now: float
    ) -> None:
        ticket = request.ticket
        assert ticket is not None
        token = self.answered(request, message, raw, now)
        if isinstance(token, Request):
            return  # the key grant follows the refused refresh grant
        if not isinstance(token, Token):
            self._router.complete(ticket, token)
            return
        self.adopt(request.link, token, now)
        self._router.complete(ticket)


# -- pure helpers for drivers -------------------------------------------------------------------


def uses_key(configuration: Configuration) -> bool:
    """Whether a session authenticates with ``public/auth`` (an API key, HMAC or asymmetric, and
    no fixed token)."""
    return (
        not configuration.access_token
        and configuration.token_provider is None
        and uses_api_key(configuration)
    )


def fixed_token(configuration: Configuration) -> str | None:
    """The token private calls carry themselves (``access_token``, or ``token_provider``'s,
    which this calls: user code, so call it where a call may block), or None.

    :raises ApiValueError: the provider gave no usable token.
    """
    if configuration.access_token:
        return configuration.access_token
    provider = configuration.token_provider
    if provider is not None:
        token = provider()
        if not isinstance(token, str) or not token:
            raise ApiValueError("the token from token_provider must be a non-empty string")
        return token
    return None


def private_params(
    configuration: Configuration, params: Mapping[str, Any], operation: str
) -> tuple[Mapping[str, Any], str | None]:
    """``(params, credential)`` for a private call: with ``access_token`` added when tokens go
    per call (and that token as the credential), else as they are (the connection is
    authenticated; the core records its token as the call's credential).

    :raises ApiValueError: no credentials are configured.
    """
    token = fixed_token(configuration)
    if token is not None:
        return {**params, "access_token": token}, token
    if not uses_key(configuration):
        raise ApiValueError(
            f"{operation} is a private method and needs credentials: set "
            "Configuration.access_token, or Configuration.client_id and client_secret"
        )
    return params, None
