"""The simulator's record of what clients sent, for tests to inspect."""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HTTP",
    "WEBSOCKET",
    "CancelOnDisconnectEvent",
    "RecordedRequest",
    "RequestLog",
    "params_as_query",
]

#: The transports a request can arrive over (:attr:`RecordedRequest.transport`).
HTTP = "http"
WEBSOCKET = "websocket"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator received it.

    A request over a WebSocket is recorded with ``transport="websocket"``, ``method="WS"``,
    ``target`` the WebSocket endpoint (``/ws/api/v2``), ``path`` the JSON-RPC method under the
    HTTP API root (``/api/v2/public/test``; the endpoint itself when the message could not be
    read as a request), ``query`` its params (values that are not strings JSON-encoded),
    ``headers`` those of the opening handshake and ``rpc_id`` its ``id``. A JSON-RPC request
    POSTed over HTTP is recorded the same way, with ``method="POST"`` and its own headers.

    :param method: the HTTP method (``"GET"``), or ``"WS"`` for a WebSocket message.
    :param target: the raw request target, path and query (``/api/v2/public/test?x=1``).
    :param path: the target without its query.
    :param query: the decoded query parameters (the last value wins when a name repeats).
    :param headers: the headers with their names as sent; use :meth:`header` to look one up
        regardless of case.
    :param client_address: the client's ``(host, port)``.
    :param time: when the request arrived, in seconds since the Unix epoch.
    :param transport: ``"http"`` or ``"websocket"``.
    :param connection_id: the connection it came on (the same id for every request of a
        keep-alive connection or a WebSocket).
    :param rpc_id: the JSON-RPC ``id`` of a WebSocket or POSTed request; None for a GET.
    :param error_code: the code of the error the simulator answered (13009, -32602...); None
        when it answered a result (or a fault, or nothing yet).
    :param explanation: why the simulator refused the request, in English, where the answer
        itself carries only Deribit's short ``data.reason`` token (or no ``data`` at all).
    """

    method: str
    target: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    client_address: tuple[str, int]
    time: float
    transport: str = HTTP
    connection_id: int | None = None
    rpc_id: Any = None
    error_code: int | None = None
    explanation: str | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (any case), or ``default`` when it was not sent."""
        wanted = name.lower()
        for sent, value in self.headers.items():
            if sent.lower() == wanted:
                return value
        return default

    def __repr__(self) -> str:
        # Header values and the query may hold credentials: show only names.
        return (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, "
            f"query_params={sorted(self.query)!r}, headers={sorted(self.headers)!r}, "
            f"client_address={self.client_address!r}, time={self.time!r}, "
            f"transport={self.transport!r}, connection_id={self.connection_id!r}, "
            f"error_code={self.error_code!r})"
        )


@dataclass(frozen=True)
class CancelOnDisconnectEvent:
    """Cancel-on-disconnect fired: the simulator cancelled a connection's orders.

    :param connection_id: the connection that ended.
    :param client_id: the account it was authenticated as.
    :param reason: why it ended: ``"closed"`` (by either side, or the TCP connection was lost),
        ``"heartbeat"`` (a ``test_request`` went unanswered), ``"inactivity"`` (nothing received
        for too long) or ``"fault"`` (an injected fault broke it).
    :param time: when, in seconds since the Unix epoch.
    """

    connection_id: int
    client_id: str
    reason: str
    time: float


class RequestLog:
    """A bounded, thread-safe list of :class:`RecordedRequest`, oldest dropped first.

    :param max_size: how many requests to keep.
    """

    def __init__(self, max_size: int = 100_000) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"the request log size must be a whole number >= 1, got {max_size!r}")
        self._lock = threading.Lock()
        self._entries: collections.deque[RecordedRequest] = collections.deque(maxlen=max_size)
        self._auth_requests = 0

    def append(self, request: RecordedRequest, *, is_auth: bool) -> RecordedRequest:
        """Record ``request``; ``is_auth`` counts it as a ``public/auth`` call. Returns it, for
        :meth:`annotate`."""
        with self._lock:
            self._entries.append(request)
            self._auth_requests += is_auth
        return request

    def annotate(self, request: RecordedRequest, code: int, explanation: str | None) -> None:
        """Note on a recorded request the error it was answered with (before the answer is
        sent, so a test that has the answer sees the note). A request already dropped from the
        log is left alone."""
        entries = self._entries
        with self._lock:
            for index in range(len(entries) - 1, -1, -1):  # newest first: it is near the end
                if entries[index] is request:
                    entries[index] = dataclasses.replace(
                        request, error_code=code, explanation=explanation
                    )
                    return

    def snapshot(self) -> list[RecordedRequest]:
        """The recorded requests, oldest first."""
        with self._lock:
            return list(self._entries)

    @property
    def auth_requests(self) -> int:
        """``public/auth`` requests since the last :meth:`clear` (not bounded by the size)."""
        with self._lock:
            return self._auth_requests

    def clear(self) -> None:
        """Forget every recorded request and reset the ``public/auth`` count."""
        with self._lock:
            self._entries.clear()
            self._auth_requests = 0


def params_as_query(params: Mapping[str, Any]) -> dict[str, str]:
    """JSON-RPC params as :attr:`RecordedRequest.query` holds them: strings as they are, other
    values JSON-encoded."""
    return {
        str(name): value if isinstance(value, str) else json.dumps(value)
        for name, value in params.items()
    }
