"""The JSON-RPC 2.0 envelope Deribit wraps every answer in, and the errors it carries."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "BAD_REQUEST",
    "INTERNAL_SERVER_ERROR",
    "INVALID_CREDENTIALS",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MUST_BE_WEBSOCKET",
    "NO_ID",
    "TOO_MANY_REQUESTS",
    "UNAUTHORIZED",
    "RpcError",
    "encode",
    "error_body",
    "notification",
    "now_us",
    "success_body",
]

TOO_MANY_REQUESTS = (10028, "too_many_requests")
MUST_BE_WEBSOCKET = (10030, "must_be_websocket_request")
BAD_REQUEST = (11050, "bad_request")
INTERNAL_SERVER_ERROR = (11094, "internal_server_error")
INVALID_CREDENTIALS = (13004, "invalid_credentials")
UNAUTHORIZED = (13009, "unauthorized")
INVALID_REQUEST = (-32600, "Invalid Request")
METHOD_NOT_FOUND = (-32601, "Method not found")
INVALID_PARAMS = (-32602, "Invalid params")

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: Marks an answer to a request that carried no ``id`` (every HTTP request; a broken message).
NO_ID: Any = object()


def encode(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return _encode(value).encode()


class RpcError(Exception):
    """A JSON-RPC error answer: raised by request handling, turned into an error body.

    :param code: Deribit's numeric error code (e.g. 13009).
    :param message: Deribit's short error name (e.g. ``"unauthorized"``).
    :param data: optional details, usually ``{"param": ..., "reason": ...}``.
    :param status: HTTP status of the answer (Deribit uses 400 for almost every error).
    """

    def __init__(
        self,
        code: int,
        message: str,
        data: Mapping[str, Any] | str | None = None,
        *,
        status: int = 400,
    ) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data: dict[str, Any] | str | None = dict(data) if isinstance(data, Mapping) else data
        self.status = status

    @classmethod
    def of(
        cls,
        kind: tuple[int, str],
        data: Mapping[str, Any] | str | None = None,
        *,
        status: int = 400,
    ) -> RpcError:
        """Build the error for one of this module's ``(code, message)`` constants."""
        return cls(kind[0], kind[1], data, status=status)

    @classmethod
    def invalid_param(cls, param: str, reason: str) -> RpcError:
        """-32602 "Invalid params" naming the parameter and why it was refused."""
        return cls.of(INVALID_PARAMS, {"param": param, "reason": reason})

    @classmethod
    def unauthorized(cls, reason: str) -> RpcError:
        """13009 "unauthorized" with the reason the credentials were refused."""
        return cls.of(UNAUTHORIZED, {"reason": reason})

    def as_json(self) -> dict[str, Any]:
        """The ``error`` member of the envelope."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def now_us() -> int:
    """Microseconds since the Unix epoch, as in ``usIn`` and ``usOut``."""
    return time.time_ns() // 1000


def _envelope(key: str, value: Any, us_in: int, rpc_id: Any) -> bytes:
    us_out = now_us()
    envelope: dict[str, Any] = {"jsonrpc": "2.0"}
    if rpc_id is not NO_ID:
        envelope["id"] = rpc_id
    envelope[key] = value
    envelope["testnet"] = True
    envelope["usIn"] = us_in
    envelope["usOut"] = us_out
    envelope["usDiff"] = us_out - us_in
    return _encode(envelope).encode()


def success_body(result: Any, us_in: int, rpc_id: Any = NO_ID) -> bytes:
    """The encoded success envelope for ``result``; ``us_in`` is when the request arrived and
    ``rpc_id`` the request's ``id`` (none over HTTP)."""
    return _envelope("result", result, us_in, rpc_id)


def error_body(error: RpcError, us_in: int, rpc_id: Any = NO_ID) -> bytes:
    """The encoded error envelope for ``error``; ``us_in`` is when the request arrived and
    ``rpc_id`` the request's ``id`` (none over HTTP)."""
    return _envelope("error", error.as_json(), us_in, rpc_id)


def notification(method: str, params: Mapping[str, Any]) -> bytes:
    """An encoded notification (no ``id``): ``heartbeat`` or ``subscription``."""
    return _encode({"jsonrpc": "2.0", "method": method, "params": params}).encode()
