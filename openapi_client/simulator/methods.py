"""What each API method does: its checks and its result, declared once in :data:`METHODS`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .auth import Authenticator
from .rpc import BAD_REQUEST, INTERNAL_SERVER_ERROR, RpcError
from .state import SCOPES, SessionState

__all__ = ["API_VERSION", "METHODS", "MIN_HEARTBEAT_INTERVAL", "Context", "Method"]

#: What ``public/test`` reports as the API version.
API_VERSION = "1.2.26"
#: The smallest heartbeat interval Deribit accepts, in seconds.
MIN_HEARTBEAT_INTERVAL = 10.0


@dataclass(frozen=True)
class Context:
    """What a method may read or change."""

    state: SessionState
    auth: Authenticator
    reject_connection_scope_over_http: bool


Handler = Callable[[Context, Mapping[str, str]], Any]


@dataclass(frozen=True)
class Method:
    """One API method: whether it needs credentials, and what answers it."""

    private: bool
    handler: Handler


def _set_heartbeat(context: Context, params: Mapping[str, str]) -> str:
    raw = params.get("interval")
    if raw is None:
        raise RpcError.invalid_param("interval", "missing")
    try:
        interval = float(raw)
    except ValueError:
        interval = math.nan
    if not (math.isfinite(interval) and interval >= MIN_HEARTBEAT_INTERVAL):
        raise RpcError.invalid_param("interval", "must be a number not less than 10")
    context.state.heartbeat_interval = interval
    return "ok"


def _disable_heartbeat(context: Context, params: Mapping[str, str]) -> str:
    context.state.heartbeat_interval = None
    return "ok"


def _scope(context: Context, params: Mapping[str, str]) -> str:
    scope = params.get("scope", SCOPES[0])
    if scope not in SCOPES:
        raise RpcError.invalid_param("scope", f"must be one of {', '.join(SCOPES)}")
    if scope == "connection" and context.reject_connection_scope_over_http:
        raise RpcError.of(
            BAD_REQUEST,
            {
                "param": "scope",
                "reason": "scope connection only applies to WebSocket connections; "
                "over HTTP use scope=account",
            },
        )
    return scope


def _enable_cancel_on_disconnect(context: Context, params: Mapping[str, str]) -> str:
    context.state.set_cancel_on_disconnect(_scope(context, params), True)
    return "ok"


def _disable_cancel_on_disconnect(context: Context, params: Mapping[str, str]) -> str:
    context.state.set_cancel_on_disconnect(_scope(context, params), False)
    return "ok"


def _get_cancel_on_disconnect(context: Context, params: Mapping[str, str]) -> dict[str, Any]:
    scope = _scope(context, params)
    return {"scope": scope, "enabled": context.state.cancel_on_disconnect[scope]}


def _test(context: Context, params: Mapping[str, str]) -> dict[str, str]:
    expected = params.get("expected_result")
    if expected is not None:
        if expected != "exception":
            raise RpcError.invalid_param("expected_result", "must be 'exception' when given")
        raise RpcError.of(INTERNAL_SERVER_ERROR)
    return {"version": API_VERSION}


def _auth(context: Context, params: Mapping[str, str]) -> dict[str, Any]:
    return context.auth.grant(params)


#: Every method the simulator answers, keyed by its path below ``/api/v2``.
METHODS: Mapping[str, Method] = {
    "/public/auth": Method(private=False, handler=_auth),
    "/public/set_heartbeat": Method(private=False, handler=_set_heartbeat),
    "/public/disable_heartbeat": Method(private=False, handler=_disable_heartbeat),
    "/public/test": Method(private=False, handler=_test),
    "/private/enable_cancel_on_disconnect": Method(
        private=True, handler=_enable_cancel_on_disconnect
    ),
    "/private/disable_cancel_on_disconnect": Method(
        private=True, handler=_disable_cancel_on_disconnect
    ),
    "/private/get_cancel_on_disconnect": Method(private=True, handler=_get_cancel_on_disconnect),
}
