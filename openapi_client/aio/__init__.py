"""The asyncio face of the client: the names of the synchronous API, every call a coroutine.

``openapi_client.aio.SessionManagementApi(client)`` and ``openapi_client.aio.AuthenticationApi(
client)`` take the asyncio client to await (an :class:`~openapi_client.aio.api.base.AsyncCaller`)
and have the methods, parameters, keywords and typed results of their synchronous namesakes.

``openapi_client.aio.WebSocketApiClient`` is that client: the WebSocket session of
:class:`openapi_client.websocket.WebSocketApiClient` on an event loop (it needs the ``websockets``
package, the ``[websocket]`` extra, and is loaded on first use: importing this package loads no
transport)::

    async with aio.WebSocketApiClient(configuration, cancel_on_disconnect=True) as ws:
        await aio.SessionManagementApi(ws).private_get_cancel_on_disconnect_get()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from openapi_client.aio.api import AuthenticationApi, SessionManagementApi

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.aio.client import WebSocketApiClient

__all__ = ["AuthenticationApi", "SessionManagementApi", "WebSocketApiClient"]


def __getattr__(name: str) -> Any:
    if name == "WebSocketApiClient":
        try:
            import websockets  # noqa: F401
        except ImportError as missing:
            raise ImportError(
                "openapi_client.aio.WebSocketApiClient needs the websockets package: "
                "pip install 'openapi-client-deribit-session[websocket]'"
            ) from missing
        from openapi_client.aio.client import WebSocketApiClient

        return WebSocketApiClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
