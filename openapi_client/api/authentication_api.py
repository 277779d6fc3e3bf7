"""Deribit's ``public/auth``, for users who manage tokens themselves.

Most users never call it: with ``Configuration.client_id`` and ``client_secret`` set, the client
fetches and refreshes tokens on its own (see ``docs/Authentication.md``).
"""

from __future__ import annotations

from typing import Any, Optional, Union

from openapi_client.api.base import BaseApi
from openapi_client.api.endpoints import PUBLIC_AUTH

__all__ = ["AuthenticationApi"]


class AuthenticationApi(BaseApi):
    """Token retrieval."""

    def public_auth_get(
        self,
        grant_type: Optional[str] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        refresh_token: Optional[str] = None,
        timestamp: Optional[Union[int, str]] = None,
        signature: Optional[str] = None,
        nonce: Optional[str] = None,
        data: Optional[str] = None,
        state: Optional[str] = None,
        scope: Optional[str] = None,
        **kwargs: Any,
    ) -> Any:
        """Retrieve an access token (``public/auth``).

        :param grant_type: ``"client_credentials"``, ``"client_signature"`` or
            ``"refresh_token"`` (required).
        :return: the envelope; ``result`` holds ``access_token``, ``refresh_token``,
            ``expires_in`` (seconds), ``scope`` and ``token_type``.
        """
        args = {
            "grant_type": grant_type,
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
            "timestamp": timestamp,
            "signature": signature,
            "nonce": nonce,
            "data": data,
            "state": state,
            "scope": scope,
        }
        http_info = kwargs.pop("_with_http_info", False)
        return self.api_client.call(PUBLIC_AUTH, args, kwargs, bool(http_info))

    def public_auth_get_with_http_info(
        self, grant_type: Optional[str] = None, **kwargs: Any
    ) -> Any:
        """Like :meth:`public_auth_get`; returns ``(data, status, headers)``."""
        return self.public_auth_get(grant_type, _with_http_info=True, **kwargs)
