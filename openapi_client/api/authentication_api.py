"""Deribit's ``public/auth``, for users who manage tokens themselves.

Most users never call it: with ``Configuration.client_id`` and ``client_secret`` set, the client
fetches and refreshes tokens on its own (see ``docs/Authentication.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from openapi_client.api.base import BaseApi
from openapi_client.api.endpoints import PUBLIC_AUTH

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.configuration import Timeout
    from openapi_client.core import AsyncResult
    from openapi_client.models import AuthEnvelope, HttpInfo

__all__ = ["AuthenticationApi"]

GrantType = Literal["client_credentials", "client_signature", "refresh_token"]


class AuthenticationApi(BaseApi):
    """Token retrieval."""

    @overload
    def public_auth_get(
        self,
        grant_type: GrantType,
        client_id: str | None = None,
        client_secret: str | None = None,
        refresh_token: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        nonce: str | None = None,
        data: str | None = None,
        state: str | None = None,
        scope: str | None = None,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
    ) -> AuthEnvelope: ...

    @overload
    def public_auth_get(
        self,
        grant_type: GrantType,
        client_id: str | None = None,
        client_secret: str | None = None,
        refresh_token: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        nonce: str | None = None,
        data: str | None = None,
        state: str | None = None,
        scope: str | None = None,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
    ) -> AsyncResult[AuthEnvelope]: ...

    @overload
    def public_auth_get(self, grant_type: GrantType, **kwargs: Any) -> Any: ...

    def public_auth_get(
        self,
        grant_type: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        refresh_token: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        nonce: str | None = None,
        data: str | None = None,
        state: str | None = None,
        scope: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Retrieve an access token (``public/auth``).

        :param grant_type: ``"client_credentials"``, ``"client_signature"`` or
            ``"refresh_token"`` (required).
        :param scope: the access asked for, e.g. ``"session:NAME"`` for tokens that outlive the
            connection (without it Deribit ties the tokens to the connection that got them).
        :return: the envelope; ``result`` holds ``access_token``, ``refresh_token``,
            ``expires_in`` (seconds), ``scope`` and ``token_type``.
        """
        return self.api_client.call(PUBLIC_AUTH, _auth_args(locals()), kwargs)

    @overload
    def public_auth_get_with_http_info(
        self,
        grant_type: GrantType,
        client_id: str | None = None,
        client_secret: str | None = None,
        refresh_token: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        nonce: str | None = None,
        data: str | None = None,
        state: str | None = None,
        scope: str | None = None,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
    ) -> HttpInfo[AuthEnvelope]: ...

    @overload
    def public_auth_get_with_http_info(self, grant_type: GrantType, **kwargs: Any) -> Any: ...

    def public_auth_get_with_http_info(
        self,
        grant_type: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        refresh_token: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        nonce: str | None = None,
        data: str | None = None,
        state: str | None = None,
        scope: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """As :meth:`public_auth_get`, returning ``(data, status, headers)``."""
        return self.api_client.call(PUBLIC_AUTH, _auth_args(locals()), kwargs, True)


def _auth_args(given: dict[str, Any]) -> dict[str, Any]:
    """The method's arguments by name, as the endpoint declares them."""
    return {param.name: given[param.name] for param in PUBLIC_AUTH.params}
