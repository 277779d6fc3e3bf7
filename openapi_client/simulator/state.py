"""The session settings the four session-management methods change."""

from __future__ import annotations

import threading

__all__ = ["SCOPES", "SessionState"]

#: Cancel-on-disconnect scopes, the first being the default.
SCOPES = ("connection", "account")


class SessionState:
    """Heartbeat interval and cancel-on-disconnect flags, shared by all connections.

    A plain HTTP simulator has no per-connection session, so the ``connection`` scope is kept as
    one flag; that is enough to check what a client asked for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heartbeat_interval: float | None = None
        self._cancel_on_disconnect = dict.fromkeys(SCOPES, False)

    @property
    def heartbeat_interval(self) -> float | None:
        """Seconds set by the last ``public/set_heartbeat``; None when disabled."""
        with self._lock:
            return self._heartbeat_interval

    @heartbeat_interval.setter
    def heartbeat_interval(self, interval: float | None) -> None:
        with self._lock:
            self._heartbeat_interval = interval

    @property
    def cancel_on_disconnect(self) -> dict[str, bool]:
        """A copy of the flag per scope (``connection`` and ``account``)."""
        with self._lock:
            return dict(self._cancel_on_disconnect)

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
