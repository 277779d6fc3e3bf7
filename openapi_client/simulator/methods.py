"""What each API method does: its checks and its result, declared once in :data:`METHODS`.

The handlers serve HTTP and WebSocket requests alike; :class:`Call` tells them which transport a
request came over and, on a WebSocket, the connection's own settings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .auth import Authenticator
from .deribit import API_VERSION, CLOSE_LOGOUT, KNOWN_CHANNELS, MIN_HEARTBEAT_INTERVAL
from .recording import HTTP, WEBSOCKET
from .rpc import INTERNAL_SERVER_ERROR, MUST_BE_WEBSOCKET, RpcError
from .state import SCOPES, ConnectionState, SessionState

__all__ = ["METHODS", "Call", "Context", "Method"]


@dataclass(frozen=True)
class Context:
    """What a method may read or change, shared by every connection.

    :param legacy_http: answer the WebSocket-only session methods over HTTP, as the published
        API description does, with state shared by all HTTP requests.
    :param account_cod_over_http: cancel-on-disconnect with scope ``account`` works over HTTP
        (Deribit's docs disagree; see ``docs/Simulator.md``); False answers it with 10030.
    """

    state: SessionState
    auth: Authenticator
    legacy_http: bool
    account_cod_over_http: bool = True


@dataclass
class Call:
    """One request as a method sees it.

    :param transport: :data:`~.recording.HTTP` or :data:`~.recording.WEBSOCKET`.
    :param connection_id: the connection it came on.
    :param client_ip: the caller's address.
    :param authorization: the HTTP ``Authorization`` header, if any.
    :param target: the raw HTTP request target, which a request signature covers.
    :param verb: the HTTP method (``GET`` or ``POST``), which a request signature covers.
    :param body: an HTTP POST's body as text, which a request signature covers.
    :param connection: a WebSocket connection's settings (None over HTTP).
    """

    transport: str
    connection_id: int
    client_ip: str
    authorization: str | None = None
    target: str = ""
    verb: str = "GET"
    body: str = ""
    connection: ConnectionState | None = None
    #: The account the request is authenticated as (set by the dispatcher for private methods).
    client_id: str | None = None
    #: Set by a method that ends the connection instead of answering: ``(code, reason)``.
    close_instead: tuple[int, str] | None = None

    @property
    def websocket(self) -> ConnectionState:
        """The WebSocket connection's settings; only for methods that checked the transport."""
        assert self.connection is not None, "a WebSocket-only method was called over HTTP"
        return self.connection


Handler = Callable[[Context, Call, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Method:
    """One API method.

    :param private: it needs credentials.
    :param handler: what answers it.
    :param websocket_only: over HTTP it answers 10030, as Deribit does today.
    :param legacy_http: ...unless the simulator runs with ``legacy_http=True``, where it works
        over HTTP as the published API description says.
    :param scope: the permission its documentation names (``"account:read_write"``): a token
        without it gets 13021 ``forbidden``.
    """

    private: bool
    handler: Handler
    websocket_only: bool = False
    legacy_http: bool = False
    scope: str | None = None

    def refused_over_http(self, context: Context) -> bool:
        return self.websocket_only and not (self.legacy_http and context.legacy_http)


def must_be_websocket() -> RpcError:
    """Deribit's answer to a WebSocket-only method called over HTTP."""
    return RpcError.of(MUST_BE_WEBSOCKET)


# -- parameters ------------------------------------------------------------------------------


def _interval(params: Mapping[str, Any]) -> float:
    raw = params.get("interval")
    if raw is None:
        raise RpcError.invalid_param("interval", "missing")
    interval = math.nan
    if isinstance(raw, (int, float, str)) and not isinstance(raw, bool):
        try:
            interval = float(raw)
        except ValueError:
            pass
    if not (math.isfinite(interval) and interval >= MIN_HEARTBEAT_INTERVAL):
        raise RpcError.invalid_param("interval", "must be a number not less than 10")
    return interval


def _scope(context: Context, call: Call, params: Mapping[str, Any]) -> str:
    scope = params.get("scope", SCOPES[0])
    if scope not in SCOPES:
        raise RpcError.invalid_param("scope", f"must be one of {', '.join(SCOPES)}")
    if call.transport == HTTP and not context.legacy_http:
        if scope == "connection" or not context.account_cod_over_http:
            raise must_be_websocket()
    return str(scope)


def _channels(params: Mapping[str, Any]) -> list[str]:
    channels = params.get("channels")
    if channels is None:
        raise RpcError.invalid_param("channels", "missing")
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(channel, str) and channel for channel in channels)
    ):
        raise RpcError.invalid_param("channels", "must be a non-empty list of channel names")
    return channels


def _flag(params: Mapping[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise RpcError.invalid_param(name, "must be true or false")


# -- handlers --------------------------------------------------------------------------------


def _set_heartbeat(context: Context, call: Call, params: Mapping[str, Any]) -> str:
    interval = _interval(params)
    if call.transport == WEBSOCKET:
        call.websocket.set_heartbeat(interval)
    else:
        context.state.heartbeat_interval = interval
    return "ok"


def _disable_heartbeat(context: Context, call: Call, params: Mapping[str, Any]) -> str:
    if call.transport == WEBSOCKET:
        call.websocket.set_heartbeat(None)
    else:
        context.state.heartbeat_interval = None
    return "ok"


def _set_cancel_on_disconnect(
    context: Context, call: Call, params: Mapping[str, Any], enabled: bool
) -> str:
    scope = _scope(context, call, params)
    if call.transport == WEBSOCKET:
        # Scope account changes the default of new connections and applies to this one too.
        call.websocket.cancel_on_disconnect = enabled
        if scope == "account":
            context.state.set_cancel_on_disconnect("account", enabled)
    else:
        context.state.set_cancel_on_disconnect(scope, enabled)
    return "ok"


def _enable_cancel_on_disconnect(context: Context, call: Call, params: Mapping[str, Any]) -> str:
    return _set_cancel_on_disconnect(context, call, params, True)


def _disable_cancel_on_disconnect(context: Context, call: Call, params: Mapping[str, Any]) -> str:
    return _set_cancel_on_disconnect(context, call, params, False)


def _get_cancel_on_disconnect(
    context: Context, call: Call, params: Mapping[str, Any]
) -> dict[str, Any]:
    scope = _scope(context, call, params)
    if call.transport == WEBSOCKET and scope == "connection":
        enabled = call.websocket.cancel_on_disconnect
    else:
        enabled = context.state.cancel_on_disconnect[scope]
    return {"scope": scope, "enabled": enabled}


def _test(context: Context, call: Call, params: Mapping[str, Any]) -> dict[str, str]:
    expected = params.get("expected_result")
    if expected is not None:
        if expected != "exception":
            raise RpcError.invalid_param("expected_result", "must be 'exception' when given")
        raise RpcError.of(INTERNAL_SERVER_ERROR)
    return {"version": API_VERSION}


def _auth(context: Context, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    result = context.auth.grant(params, call.connection_id, call.transport)
    if call.connection is not None:
        principal = context.auth.check_token(result["access_token"], call.connection_id)
        call.connection.authenticate(principal.client_id, result["access_token"], result["scope"])
    return result


def _get_time(context: Context, call: Call, params: Mapping[str, Any]) -> int:
    return time.time_ns() // 1_000_000


def _status(context: Context, call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    # The field descriptions' shape (the docs' example differs: see docs/Simulator.md).
    return {"locked": "false", "locked_indices": []}


def _hello(context: Context, call: Call, params: Mapping[str, Any]) -> dict[str, str]:
    for name in ("client_name", "client_version"):
        value = params.get(name)
        if value is None:
            raise RpcError.invalid_param(name, "missing")
        if not isinstance(value, str):
            raise RpcError.invalid_param(name, "must be a string")
    connection = call.websocket
    connection.client_name = params["client_name"]
    connection.client_version = params["client_version"]
    return {"version": API_VERSION}


def _subscribe(context: Context, call: Call, params: Mapping[str, Any]) -> list[str]:
    accepted = [channel for channel in _channels(params) if channel in KNOWN_CHANNELS]
    call.websocket.subscribe(accepted)
    return accepted


def _unsubscribe(context: Context, call: Call, params: Mapping[str, Any]) -> list[str]:
    return call.websocket.unsubscribe(_channels(params))


def _unsubscribe_all(context: Context, call: Call, params: Mapping[str, Any]) -> str:
    call.websocket.unsubscribe_all()
    return "ok"


def _logout(context: Context, call: Call, params: Mapping[str, Any]) -> None:
    if _flag(params, "invalidate_token", True):
        token = params.get("access_token") or call.websocket.access_token
        context.auth.log_out(token if isinstance(token, str) else None, call.connection_id)
    call.close_instead = CLOSE_LOGOUT


#: Every method the simulator answers, keyed by its path below ``/api/v2``.
METHODS: Mapping[str, Method] = {
    "/public/auth": Method(private=False, handler=_auth),
    "/public/test": Method(private=False, handler=_test),
    "/public/set_heartbeat": Method(
        private=False, handler=_set_heartbeat, websocket_only=True, legacy_http=True
    ),
    "/public/disable_heartbeat": Method(
        private=False, handler=_disable_heartbeat, websocket_only=True, legacy_http=True
    ),
    "/public/get_time": Method(private=False, handler=_get_time),
    "/public/status": Method(private=False, handler=_status),
    "/private/enable_cancel_on_disconnect": Method(
        private=True, handler=_enable_cancel_on_disconnect, scope="account:read_write"
    ),
    "/private/disable_cancel_on_disconnect": Method(
        private=True, handler=_disable_cancel_on_disconnect, scope="account:read_write"
    ),
    "/private/get_cancel_on_disconnect": Method(
        private=True, handler=_get_cancel_on_disconnect, scope="account:read"
    ),
    "/public/hello": Method(private=False, handler=_hello, websocket_only=True),
    "/public/subscribe": Method(private=False, handler=_subscribe, websocket_only=True),
    "/public/unsubscribe": Method(private=False, handler=_unsubscribe, websocket_only=True),
    "/private/subscribe": Method(private=True, handler=_subscribe, websocket_only=True),
    "/private/unsubscribe": Method(private=True, handler=_unsubscribe, websocket_only=True),
    "/public/unsubscribe_all": Method(private=False, handler=_unsubscribe_all, websocket_only=True),
    "/private/unsubscribe_all": Method(private=True, handler=_unsubscribe_all, websocket_only=True),
    "/private/logout": Method(private=True, handler=_logout, websocket_only=True),
}
