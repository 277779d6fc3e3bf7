"""The JSON-RPC 2.0 envelope Deribit wraps every answer in, and the errors it carries."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BAD_REQUEST",
    "FORBIDDEN",
    "INTERNAL_SERVER_ERROR",
    "INVALID_CREDENTIALS",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "INVALID_TOKEN",
    "METHOD_NOT_FOUND",
    "MUST_BE_WEBSOCKET",
    "NO_ID",
    "TOO_MANY_REQUESTS",
    "UNAUTHORIZED",
    "Envelope",
    "Request",
    "RpcError",
    "encode",
    "notification",
    "now_us",
    "read_request",
]

TOO_MANY_REQUESTS = (10028, "too_many_requests")
MUST_BE_WEBSOCKET = (10030, "must_be_websocket_request")
BAD_REQUEST = (11050, "bad_request")
INTERNAL_SERVER_ERROR = (11094, "internal_server_error")
INVALID_CREDENTIALS = (13004, "invalid_credentials")
UNAUTHORIZED = (13009, "unauthorized")
FORBIDDEN = (13021, "forbidden")
INVALID_REQUEST = (-32600, "Invalid Request")
METHOD_NOT_FOUND = (-32601, "Method not found")
INVALID_PARAMS = (-32602, "Invalid params")

#: ``data.reason`` of every 13009: Deribit's short token, observed over HTTP and WebSocket.
INVALID_TOKEN = "invalid_token"

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
    :param explanation: why, in English, for the request log only: the wire carries Deribit's
        short tokens, which code may match on.
    """

    def __init__(
        self,
        code: int,
        message: str,
        data: Mapping[str, Any] | str | None = None,
        *,
        status: int = 400,
        explanation: str | None = None,
    ) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data: dict[str, Any] | str | None = dict(data) if isinstance(data, Mapping) else data
        self.status = status
        self.explanation = explanation

    @classmethod
    def of(
        cls,
        kind: tuple[int, str],
        data: Mapping[str, Any] | str | None = None,
        *,
        status: int = 400,
        explanation: str | None = None,
    ) -> RpcError:
        """Build the error for one of this module's ``(code, message)`` constants."""
        return cls(kind[0], kind[1], data, status=status, explanation=explanation)

    @classmethod
    def invalid_param(cls, param: str, reason: str, explanation: str | None = None) -> RpcError:
        """-32602 "Invalid params" naming the parameter and, in a short phrase, why it was
        refused."""
        return cls.of(INVALID_PARAMS, {"param": param, "reason": reason}, explanation=explanation)

    @classmethod
    def unauthorized(cls, explanation: str) -> RpcError:
        """13009 "unauthorized", ``data.reason`` ``invalid_token``: no valid token (or session)."""
        return cls.of(UNAUTHORIZED, {"reason": INVALID_TOKEN}, explanation=explanation)

    @classmethod
    def invalid_credentials(cls, explanation: str) -> RpcError:
        """13004 "invalid_credentials", without ``data`` as observed: a wrong key, secret or
        signature."""
        return cls.of(INVALID_CREDENTIALS, explanation=explanation)

    @classmethod
    def forbidden(cls, explanation: str) -> RpcError:
        """13021 "forbidden", without ``data``: the token's scope lacks the method's."""
        return cls.of(FORBIDDEN, explanation=explanation)

    def as_json(self) -> dict[str, Any]:
        """The ``error`` member of the envelope."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True)
class Request:
    """A JSON-RPC request as read from a WebSocket message or a POST body.

    :param rpc_id: its ``id``, or :data:`NO_ID` when it has none.
    :param method_path: the method below ``/api/v2`` (``/public/test``); None when the message
        names none.
    :param params: its named parameters (empty when they could not be read).
    :param error: why it cannot be served, or None.
    """

    rpc_id: Any
    method_path: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    error: RpcError | None = None


def read_request(payload: bytes, *, method: str | None = None) -> Request:
    """Read one JSON-RPC request; ``method`` stands in for a ``method`` the message leaves out
    (a POST to ``/api/v2/<method>``)."""
    try:
        message = json.loads(payload.decode("utf-8")) if payload.strip() or not method else {}
    except (ValueError, RecursionError):  # not UTF-8 JSON, or nested too deep to decode
        message = None
    if not isinstance(message, dict):
        explanation = "not a JSON object: one JSON-RPC request per message, no batches"
        return Request(
            NO_ID, None, error=RpcError.of(BAD_REQUEST, "invalid json", explanation=explanation)
        )
    rpc_id = message.get("id", NO_ID)
    name = message.get("method", method)
    if not isinstance(name, str) or not name.strip("/"):
        error = RpcError.of(
            INVALID_REQUEST,
            {"reason": "method_required"},
            explanation="a request needs a 'method' string, e.g. 'public/test'",
        )
        return Request(rpc_id, None, error=error)
    method_path = "/" + name.strip("/")
    params = message.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        error = RpcError.invalid_param("params", "must be an object")
        return Request(rpc_id, method_path, error=error)
    return Request(rpc_id, method_path, params)


def now_us() -> int:
    """Microseconds since the Unix epoch, as in ``usIn`` and ``usOut``."""
    return time.time_ns() // 1000


class Envelope:
    """Deribit's JSON-RPC envelope around each answer.

    :param testnet: the value of every answer's ``testnet``: true for the test environment.
    """

    __slots__ = ("testnet",)

    def __init__(self, testnet: bool) -> None:
        self.testnet = testnet

    def _wrap(self, key: str, value: Any, us_in: int, rpc_id: Any) -> bytes:
        us_out = now_us()
        envelope: dict[str, Any] = {"jsonrpc": "2.0"}
        if rpc_id is not NO_ID:
            envelope["id"] = rpc_id
        envelope[key] = value
        envelope["testnet"] = self.testnet
        envelope["usIn"] = us_in
        envelope["usOut"] = us_out
        envelope["usDiff"] = us_out - us_in
        return _encode(envelope).encode()

    def success(self, result: Any, us_in: int, rpc_id: Any = NO_ID) -> bytes:
        """The encoded success envelope for ``result``; ``us_in`` is when the request arrived
        and ``rpc_id`` the request's ``id`` (:data:`NO_ID` when it had none)."""
        return self._wrap("result", result, us_in, rpc_id)

    def error(self, error: RpcError, us_in: int, rpc_id: Any = NO_ID) -> bytes:
        """The encoded error envelope for ``error``; as :meth:`success` otherwise."""
        return self._wrap("error", error.as_json(), us_in, rpc_id)


def notification(method: str, params: Mapping[str, Any]) -> bytes:
    """An encoded notification (no ``id``): ``heartbeat`` or ``subscription``."""
    return _encode({"jsonrpc": "2.0", "method": method, "params": params}).encode()
