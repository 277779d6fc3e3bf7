"""Deribit's session-management methods.

Every method returns the decoded JSON-RPC envelope as a ``dict`` (``result`` holds ``"ok"``) and
accepts the generated-style keywords:

* ``async_req`` (bool): run in the client's thread pool and return an ``AsyncResult``;
* ``_return_http_data_only`` (bool): ``False`` returns ``(data, status, headers)``;
* ``_preload_content`` (bool): ``False`` returns the raw urllib3 response, unread;
* ``_request_timeout`` (float or ``(connect, read)``): seconds, overriding
  ``Configuration.request_timeout`` for this call.

Each has a ``*_with_http_info`` twin returning ``(data, status, headers)``.
"""

from __future__ import annotations

from typing import Any, Optional

from openapi_client.api.base import BaseApi
from openapi_client.api.endpoints import (
    DISABLE_CANCEL_ON_DISCONNECT,
    DISABLE_HEARTBEAT,
    ENABLE_CANCEL_ON_DISCONNECT,
    GET_CANCEL_ON_DISCONNECT,
    SET_HEARTBEAT,
)

__all__ = ["SessionManagementApi"]


class SessionManagementApi(BaseApi):
    """Heartbeats and cancel-on-disconnect."""

    def public_set_heartbeat_get(self, interval: Optional[float] = None, **kwargs: Any) -> Any:
        """Signal the connection to send and request heartbeats (``public/set_heartbeat``).

        :param interval: the heartbeat interval in seconds, a number not less than 10 (required).
        :raises ApiTypeError: ``interval`` is not a number.
        :raises ApiValueError: ``interval`` is missing, not finite, or below 10.
        :return: the envelope, e.g. ``{"jsonrpc": "2.0", "result": "ok", ...}``.
        """
        return self.api_client.call(SET_HEARTBEAT, {"interval": interval}, kwargs)

    def public_set_heartbeat_get_with_http_info(
        self, interval: Optional[float] = None, **kwargs: Any
    ) -> Any:
        """Like :meth:`public_set_heartbeat_get`; returns ``(data, status, headers)``."""
        return self.api_client.call(SET_HEARTBEAT, {"interval": interval}, kwargs, True)

    def public_disable_heartbeat_get(self, **kwargs: Any) -> Any:
        """Stop sending heartbeat messages (``public/disable_heartbeat``)."""
        return self.api_client.call(DISABLE_HEARTBEAT, {}, kwargs)

    def public_disable_heartbeat_get_with_http_info(self, **kwargs: Any) -> Any:
        """Like :meth:`public_disable_heartbeat_get`; returns ``(data, status, headers)``."""
        return self.api_client.call(DISABLE_HEARTBEAT, {}, kwargs, True)

    def private_enable_cancel_on_disconnect_get(
        self, scope: Optional[str] = None, **kwargs: Any
    ) -> Any:
        """Enable cancel-on-disconnect (``private/enable_cancel_on_disconnect``).

        Needs credentials. :param scope: ``"connection"`` or ``"account"``; sent only when given.
        """
        return self.api_client.call(ENABLE_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs)

    def private_enable_cancel_on_disconnect_get_with_http_info(
        self, scope: Optional[str] = None, **kwargs: Any
    ) -> Any:
        """Like :meth:`private_enable_cancel_on_disconnect_get`; returns a 3-tuple."""
        return self.api_client.call(ENABLE_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs, True)

    def private_disable_cancel_on_disconnect_get(
        self, scope: Optional[str] = None, **kwargs: Any
    ) -> Any:
        """Disable cancel-on-disconnect (``private/disable_cancel_on_disconnect``).

        Needs credentials. :param scope: ``"connection"`` or ``"account"``; sent only when given.
        """
        return self.api_client.call(DISABLE_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs)

    def private_disable_cancel_on_disconnect_get_with_http_info(
        self, scope: Optional[str] = None, **kwargs: Any
    ) -> Any:
        """Like :meth:`private_disable_cancel_on_disconnect_get`; returns a 3-tuple."""
        return self.api_client.call(DISABLE_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs, True)

    def private_get_cancel_on_disconnect_get(
        self, scope: Optional[str] = None, **kwargs: Any
    ) -> Any:
        """Read the cancel-on-disconnect setting (``private/get_cancel_on_disconnect``).

        Needs credentials. The envelope's ``result`` is ``{"scope": ..., "enabled": bool}``.
        """
        return self.api_client.call(GET_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs)

    def private_get_cancel_on_disconnect_get_with_http_info(
        self, scope: Optional[str] = None, **kwargs: Any
    ) -> Any:
        """Like :meth:`private_get_cancel_on_disconnect_get`; returns a 3-tuple."""
        return self.api_client.call(GET_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs, True)
