"""Where the WebSocket API is: derived from ``Configuration.host``, or given explicitly."""

from __future__ import annotations

from typing import NamedTuple

from openapi_client.exceptions import ApiValueError
from openapi_client.net.origin import Origin

__all__ = ["Target", "resolve", "websocket_url"]

#: The REST root's path on Deribit, and the WebSocket API's path beside it.
_REST_PATH = "/api/v2"
_WS_PATH = "/ws/api/v2"

_TO_HTTP = {"ws": "http", "wss": "https"}
_TO_WS = {"http": "ws", "https": "wss"}


class Target(NamedTuple):
    """A checked WebSocket URL.

    :ivar url: e.g. ``wss://www.deribit.com/ws/api/v2``.
    :ivar secure: whether it is ``wss://`` (TLS).
    :ivar is_loopback: whether the host is this machine.
    :ivar display: ``host:port``, for messages.
    """

    url: str
    secure: bool
    is_loopback: bool
    display: str


def websocket_url(host: str) -> str:
    """The WebSocket URL for an API root: ``https://www.deribit.com/api/v2`` becomes
    ``wss://www.deribit.com/ws/api/v2``, ``http://127.0.0.1:8080/api/v2`` becomes
    ``ws://127.0.0.1:8080/ws/api/v2``.

    :raises ApiValueError: ``host`` is not an http(s) URL ending in ``/api/v2``.
    """
    origin = Origin(host)  # the HTTP side's checks: scheme, user info, port
    path = origin.base_path.rstrip("/")
    if not path.endswith(_REST_PATH):
        raise ApiValueError(
            f"cannot derive a WebSocket URL from Configuration.host {host!r}: it does not end "
            f"in {_REST_PATH}; pass url='wss://.../ws/api/v2' to WebSocketApiClient"
        )
    prefix = path[: -len(_REST_PATH)]
    scheme = _TO_WS[origin.scheme]
    return f"{scheme}://{origin.origin.split('://', 1)[1]}{prefix}{_WS_PATH}"


def resolve(host: str, url: str | None) -> Target:
    """The target for an explicit ``url`` (``ws://`` or ``wss://``), else the one ``host``
    implies."""
    if url is None:
        url = websocket_url(host)
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in _TO_HTTP:
        raise ApiValueError(
            f"a WebSocket URL must start with wss:// (or ws:// on loopback), got {url!r}"
        )
    origin = Origin(f"{_TO_HTTP[scheme.lower()]}://{rest}")
    return Target(url, origin.scheme == "https", origin.is_loopback, origin.display)
