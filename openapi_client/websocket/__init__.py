"""A Deribit session over one WebSocket connection: heartbeats answered, cancel-on-disconnect
on the connection, reconnects that restore the session.

    >>> from openapi_client.websocket import WebSocketApiClient
    >>> with WebSocketApiClient(configuration, heartbeat=30) as ws_client:
    ...     SessionManagementApi(ws_client).private_get_cancel_on_disconnect_get()

Needs the ``websockets`` package: ``pip install 'openapi-client-deribit-session[websocket]'``.
See ``docs/WebSocket.md``.
"""

from __future__ import annotations

try:
    import websockets  # noqa: F401
except ImportError as missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "openapi_client.websocket needs the websockets package: "
        "pip install 'openapi-client-deribit-session[websocket]'"
    ) from missing

from openapi_client.websocket.client import DEFAULT_RECONNECT_BACKOFF, WebSocketApiClient
from openapi_client.websocket.events import (
    Authenticated,
    Closed,
    Connected,
    Disconnected,
    Event,
    HeartbeatAnswered,
    Reconnecting,
    SessionEvicted,
    SessionRestored,
    TokenRefreshed,
    WatchdogExpired,
)
from openapi_client.websocket.session_core import State
from openapi_client.websocket.url import websocket_url

__all__ = [
    "DEFAULT_RECONNECT_BACKOFF",
    "Authenticated",
    "Closed",
    "Connected",
    "Disconnected",
    "Event",
    "HeartbeatAnswered",
    "Reconnecting",
    "SessionEvicted",
    "SessionRestored",
    "State",
    "TokenRefreshed",
    "WatchdogExpired",
    "WebSocketApiClient",
    "websocket_url",
]
