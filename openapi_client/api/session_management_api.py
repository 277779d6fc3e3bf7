"""Deribit's session-management methods.

Every method returns the decoded JSON-RPC envelope as a ``dict`` (typed as the ``TypedDict``s of
:mod:`openapi_client.models`) and accepts the generated-style keywords:

* ``async_req`` (bool): run in the client's thread pool and return an ``AsyncResult``;
* ``_return_http_data_only`` (bool): ``False`` returns ``(data, status, headers)``;
* ``_preload_content`` (bool): ``False`` returns the undecoded response;
* ``_request_timeout`` (float or ``(connect, read)``): seconds, overriding
  ``Configuration.request_timeout`` for this call.

Each has a ``*_with_http_info`` twin returning ``(data, status, headers)``. The overloads tell a
type checker what each combination returns; required parameters are required there, while at
run time a missing one still raises a clear ``ApiValueError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from openapi_client.api.base import BaseApi
from openapi_client.api.endpoints import (
    DISABLE_CANCEL_ON_DISCONNECT,
    DISABLE_HEARTBEAT,
    ENABLE_CANCEL_ON_DISCONNECT,
    GET_CANCEL_ON_DISCONNECT,
    SET_HEARTBEAT,
)

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.configuration import Timeout
    from openapi_client.core import AsyncResult
    from openapi_client.models import CancelOnDisconnectEnvelope, HttpInfo, OkEnvelope, Scope

__all__ = ["SessionManagementApi"]


class SessionManagementApi(BaseApi):
    """Heartbeats and cancel-on-disconnect."""

    @overload
    def public_set_heartbeat_get(
        self,
        interval: float,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> OkEnvelope: ...

    @overload
    def public_set_heartbeat_get(
        self,
        interval: float,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> AsyncResult[OkEnvelope]: ...

    @overload
    def public_set_heartbeat_get(self, interval: float, **kwargs: Any) -> Any: ...

    def public_set_heartbeat_get(self, interval: float | None = None, **kwargs: Any) -> Any:
        """Ask for heartbeats every ``interval`` seconds (``public/set_heartbeat``).

        On today's Deribit this works only on a WebSocket session
        (:class:`~openapi_client.websocket.WebSocketApiClient`); over HTTP Deribit answers 10030.

        :param interval: the heartbeat interval in seconds, a number not less than 10 (required).
        :raises ApiTypeError: ``interval`` is not a number.
        :raises ApiValueError: ``interval`` is missing, not finite, or below 10.
        :return: the envelope, e.g. ``{"jsonrpc": "2.0", "result": "ok", ...}``.
        """
        return self.api_client.call(SET_HEARTBEAT, {"interval": interval}, kwargs)

    @overload
    def public_set_heartbeat_get_with_http_info(
        self,
        interval: float,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> HttpInfo[OkEnvelope]: ...

    @overload
    def public_set_heartbeat_get_with_http_info(
        self,
        interval: float,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> AsyncResult[HttpInfo[OkEnvelope]]: ...

    @overload
    def public_set_heartbeat_get_with_http_info(self, interval: float, **kwargs: Any) -> Any: ...

    def public_set_heartbeat_get_with_http_info(
        self, interval: float | None = None, **kwargs: Any
    ) -> Any:
        """As :meth:`public_set_heartbeat_get`, returning ``(data, status, headers)``."""
        return self.api_client.call(SET_HEARTBEAT, {"interval": interval}, kwargs, True)

    @overload
    def public_disable_heartbeat_get(
        self,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> OkEnvelope: ...

    @overload
    def public_disable_heartbeat_get(
        self,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> AsyncResult[OkEnvelope]: ...

    @overload
    def public_disable_heartbeat_get(self, **kwargs: Any) -> Any: ...

    def public_disable_heartbeat_get(self, **kwargs: Any) -> Any:
        """Stop heartbeat messages (``public/disable_heartbeat``).

        On today's Deribit this works only on a WebSocket session; over HTTP it answers 10030.
        """
        return self.api_client.call(DISABLE_HEARTBEAT, {}, kwargs)

    @overload
    def public_disable_heartbeat_get_with_http_info(
        self,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> HttpInfo[OkEnvelope]: ...

    @overload
    def public_disable_heartbeat_get_with_http_info(
        self,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> AsyncResult[HttpInfo[OkEnvelope]]: ...

    @overload
    def public_disable_heartbeat_get_with_http_info(self, **kwargs: Any) -> Any: ...

    def public_disable_heartbeat_get_with_http_info(self, **kwargs: Any) -> Any:
        """As :meth:`public_disable_heartbeat_get`, returning ``(data, status, headers)``."""
        return self.api_client.call(DISABLE_HEARTBEAT, {}, kwargs, True)

    @overload
    def private_enable_cancel_on_disconnect_get(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> OkEnvelope: ...

    @overload
    def private_enable_cancel_on_disconnect_get(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> AsyncResult[OkEnvelope]: ...

    @overload
    def private_enable_cancel_on_disconnect_get(
        self, scope: Scope | None = None, **kwargs: Any
    ) -> Any: ...

    def private_enable_cancel_on_disconnect_get(
        self, scope: str | None = None, **kwargs: Any
    ) -> Any:
        """Enable cancel-on-disconnect (``private/enable_cancel_on_disconnect``).

        Needs credentials. :param scope: ``"connection"`` (Deribit's default; WebSocket only on
        today's Deribit) or ``"account"`` (the default of every new connection; works over HTTP
        too); sent only when given.
        """
        return self.api_client.call(ENABLE_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs)

    @overload
    def private_enable_cancel_on_disconnect_get_with_http_info(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> HttpInfo[OkEnvelope]: ...

    @overload
    def private_enable_cancel_on_disconnect_get_with_http_info(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> AsyncResult[HttpInfo[OkEnvelope]]: ...

    @overload
    def private_enable_cancel_on_disconnect_get_with_http_info(
        self, scope: Scope | None = None, **kwargs: Any
    ) -> Any: ...

    def private_enable_cancel_on_disconnect_get_with_http_info(
        self, scope: str | None = None, **kwargs: Any
    ) -> Any:
        """As :meth:`private_enable_cancel_on_disconnect_get`, with the status and headers."""
        return self.api_client.call(ENABLE_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs, True)

    @overload
    def private_disable_cancel_on_disconnect_get(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> OkEnvelope: ...

    @overload
    def private_disable_cancel_on_disconnect_get(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> AsyncResult[OkEnvelope]: ...

    @overload
    def private_disable_cancel_on_disconnect_get(
        self, scope: Scope | None = None, **kwargs: Any
    ) -> Any: ...

    def private_disable_cancel_on_disconnect_get(
        self, scope: str | None = None, **kwargs: Any
    ) -> Any:
        """Disable cancel-on-disconnect (``private/disable_cancel_on_disconnect``).

        Needs credentials. :param scope: ``"connection"`` or ``"account"``, as for
        :meth:`private_enable_cancel_on_disconnect_get`; sent only when given.
        """
        return self.api_client.call(DISABLE_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs)

    @overload
    def private_disable_cancel_on_disconnect_get_with_http_info(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> HttpInfo[OkEnvelope]: ...

    @overload
    def private_disable_cancel_on_disconnect_get_with_http_info(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> AsyncResult[HttpInfo[OkEnvelope]]: ...

    @overload
    def private_disable_cancel_on_disconnect_get_with_http_info(
        self, scope: Scope | None = None, **kwargs: Any
    ) -> Any: ...

    def private_disable_cancel_on_disconnect_get_with_http_info(
        self, scope: str | None = None, **kwargs: Any
    ) -> Any:
        """As :meth:`private_disable_cancel_on_disconnect_get`, with the status and headers."""
        return self.api_client.call(DISABLE_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs, True)

    @overload
    def private_get_cancel_on_disconnect_get(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> CancelOnDisconnectEnvelope: ...

    @overload
    def private_get_cancel_on_disconnect_get(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
        _return_http_data_only: Literal[True] = ...,
    ) -> AsyncResult[CancelOnDisconnectEnvelope]: ...

    @overload
    def private_get_cancel_on_disconnect_get(
        self, scope: Scope | None = None, **kwargs: Any
    ) -> Any: ...

    def private_get_cancel_on_disconnect_get(
        self, scope: str | None = None, **kwargs: Any
    ) -> Any:
        """Read the cancel-on-disconnect setting (``private/get_cancel_on_disconnect``).

        Needs credentials. The envelope's ``result`` is ``{"scope": ..., "enabled": bool}``.
        """
        return self.api_client.call(GET_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs)

    @overload
    def private_get_cancel_on_disconnect_get_with_http_info(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[False] = ...,
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> HttpInfo[CancelOnDisconnectEnvelope]: ...

    @overload
    def private_get_cancel_on_disconnect_get_with_http_info(
        self,
        scope: Scope | None = None,
        *,
        async_req: Literal[True],
        _request_timeout: Timeout | None = ...,
        _preload_content: Literal[True] = ...,
    ) -> AsyncResult[HttpInfo[CancelOnDisconnectEnvelope]]: ...

    @overload
    def private_get_cancel_on_disconnect_get_with_http_info(
        self, scope: Scope | None = None, **kwargs: Any
    ) -> Any: ...

    def private_get_cancel_on_disconnect_get_with_http_info(
        self, scope: str | None = None, **kwargs: Any
    ) -> Any:
        """As :meth:`private_get_cancel_on_disconnect_get`, with the status and headers."""
        return self.api_client.call(GET_CANCEL_ON_DISCONNECT, {"scope": scope}, kwargs, True)
