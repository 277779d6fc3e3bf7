"""Session settings: the account default shared by all connections, and each WebSocket's own."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["SCOPES", "ConnectionState", "SessionState", "WsConnectionInfo"]

#: Cancel-on-disconnect scopes, the first being the default.
SCOPES = ("connection", "account")


class SessionState:
    """What is shared by every connection: the account's cancel-on-disconnect default, and the
    settings the HTTP methods change in ``legacy_http`` mode.

    In legacy mode (the published API description, where the heartbeat and ``connection``-scoped
    cancel-on-disconnect methods are HTTP GETs) a plain HTTP request has no session of its own, so
    the heartbeat interval and the ``connection`` flag are kept here, one for all.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heartbeat_interval: float | None = None
        self._cancel_on_disconnect = dict.fromkeys(SCOPES, False)

    @property
    def heartbeat_interval(self) -> float | None:
        """Seconds set by the last legacy HTTP ``public/set_heartbeat``; None when disabled."""
        with self._lock:
            return self._heartbeat_interval

    @heartbeat_interval.setter
    def heartbeat_interval(self, interval: float | None) -> None:
        with self._lock:
            self._heartbeat_interval = interval

    @property
    def cancel_on_disconnect(self) -> dict[str, bool]:
        """A copy of the flag per scope: ``account`` is the account default, ``connection`` the
        flag legacy HTTP requests share."""
        with self._lock:
            return dict(self._cancel_on_disconnect)

    @property
    def account_cancel_on_disconnect(self) -> bool:
        """The account default every new connection starts with."""
        with self._lock:
            return self._cancel_on_disconnect["account"]

    def set_cancel_on_disconnect(self, scope: str, enabled: bool) -> None:
        """Turn cancel-on-disconnect on or off for ``scope``."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        with self._lock:
            self._cancel_on_disconnect[scope] = enabled

    def reset(self) -> None:
        """Back to the initial state: no heartbeat, cancel-on-disconnect off everywhere."""
        with self._lock:
            self._heartbeat_interval = None
            self._cancel_on_disconnect = dict.fromkeys(SCOPES, False)


@dataclass(frozen=True)
class WsConnectionInfo:
    """A snapshot of one open WebSocket connection, as :attr:`DeribitSimulator.ws_connections`
    lists it.

    :param id: the connection's id (also in :class:`RecordedRequest` and cancel-on-disconnect
        events).
    :param client_id: the account it is authenticated as; None before ``public/auth``.
    :param token_scope: the ``scope`` of the token it authenticated with, as ``public/auth``
        answered it (``"account:read_write ... connection mainaccount ..."``); None before
        ``public/auth``.
    :param heartbeat_interval: the interval set by ``public/set_heartbeat`` in API seconds
        (before ``time_scale``); None when heartbeats are off.
    :param cancel_on_disconnect: whether cancel-on-disconnect is on for this connection (its own
        setting, or the account default it started with).
    :param subscriptions: the channels it is subscribed to.
    :param client_name: the name given by ``public/hello``; None without one.
    :param client_address: the client's ``(host, port)``.
    """

    id: int
    client_id: str | None
    token_scope: str | None
    heartbeat_interval: float | None
    cancel_on_disconnect: bool
    subscriptions: frozenset[str]
    client_name: str | None
    client_address: tuple[str, int]


class ConnectionState:
    """The settings of one WebSocket connection, changed by its own requests (thread-safe).

    :param connection_id: the connection's id.
    :param client_address: the client's ``(host, port)``.
    :param cancel_on_disconnect: the account default at the time the connection opened.
    """

    def __init__(
        self, connection_id: int, client_address: tuple[str, int], cancel_on_disconnect: bool
    ) -> None:
        self.connection_id = connection_id
        self.client_address = client_address
        self._lock = threading.Lock()
        self.client_id: str | None = None
        self.access_token: str | None = None
        self.token_scope: str | None = None
        self.heartbeat_interval: float | None = None
        #: Bumped by every set_heartbeat / disable_heartbeat, so the connection reschedules.
        self.heartbeat_epoch = 0
        self.cancel_on_disconnect = cancel_on_disconnect
        self.subscriptions: set[str] = set()
        self.client_name: str | None = None
        self.client_version: str | None = None

    def authenticate(self, client_id: str, access_token: str, scope: str) -> None:
        with self._lock:
            self.client_id = client_id
            self.access_token = access_token
            self.token_scope = scope

    def set_heartbeat(self, interval: float | None) -> None:
        with self._lock:
            self.heartbeat_interval = interval
            self.heartbeat_epoch += 1

    def subscribe(self, channels: list[str]) -> None:
        with self._lock:
            self.subscriptions.update(channels)

    def unsubscribe(self, channels: list[str]) -> list[str]:
        """Drop ``channels``; returns the ones that were subscribed."""
        with self._lock:
            dropped = [channel for channel in channels if channel in self.subscriptions]
            self.subscriptions.difference_update(dropped)
            return dropped

    def unsubscribe_all(self) -> None:
        with self._lock:
            self.subscriptions.clear()

    def is_subscribed(self, channel: str) -> bool:
        with self._lock:
            return channel in self.subscriptions

    def snapshot(self) -> WsConnectionInfo:
        with self._lock:
            return WsConnectionInfo(
                id=self.connection_id,
                client_id=self.client_id,
                token_scope=self.token_scope,
                heartbeat_interval=self.heartbeat_interval,
                cancel_on_disconnect=self.cancel_on_disconnect,
                subscriptions=frozenset(self.subscriptions),
                client_name=self.client_name,
                client_address=self.client_address,
            )
