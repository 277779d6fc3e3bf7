"""The open WebSocket connections, what a test can see of them, and cancel-on-disconnect events.

Kept apart from :mod:`.ws` so that it works without the ``websockets`` package: the simulator
then simply has no WebSocket connections.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from .recording import CancelOnDisconnectEvent
from .rpc import notification
from .state import ConnectionState, WsConnectionInfo

__all__ = ["OpenConnection", "WebSocketRegistry"]


class OpenConnection(Protocol):
    """What the registry needs of an open WebSocket connection."""

    state: ConnectionState

    def notify(self, payload: bytes) -> bool:
        """Send a notification from any thread; False if the connection could not take it."""
        ...


class WebSocketRegistry:
    """Thread-safe: the open connections by id, and every cancel-on-disconnect that fired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, OpenConnection] = {}
        self._events: list[CancelOnDisconnectEvent] = []

    def add(self, connection: OpenConnection) -> None:
        with self._lock:
            self._open[connection.state.connection_id] = connection

    def remove(self, connection: OpenConnection) -> None:
        with self._lock:
            self._open.pop(connection.state.connection_id, None)

    def snapshot(self) -> list[WsConnectionInfo]:
        """The open connections, oldest first."""
        with self._lock:
            connections = sorted(self._open.items())
        return [connection.state.snapshot() for _, connection in connections]

    def publish(self, channel: str, data: Any) -> int:
        """Send a ``subscription`` notification on ``channel`` to every subscribed connection;
        returns how many were sent."""
        payload = notification("subscription", {"channel": channel, "data": data})
        with self._lock:
            connections = list(self._open.values())
        return sum(
            connection.notify(payload)
            for connection in connections
            if connection.state.is_subscribed(channel)
        )

    def record(self, event: CancelOnDisconnectEvent) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[CancelOnDisconnectEvent]:
        """Every cancel-on-disconnect that fired, oldest first (a copy)."""
        with self._lock:
            return list(self._events)

    def clear_events(self) -> None:
        with self._lock:
            self._events.clear()


def platform_state(data: Mapping[str, Any]) -> dict[str, Any]:
    """Check a ``platform_state`` notice: a JSON object."""
    if not isinstance(data, Mapping):
        raise TypeError(f"platform_state data must be a mapping, got {type(data).__name__}")
    return dict(data)
