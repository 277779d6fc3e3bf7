"""The shapes of Deribit's answers, as ``TypedDict``s a type checker can follow.

Every call returns the JSON-RPC envelope as a plain ``dict``; these types describe its keys. They
cost nothing at run time (a ``TypedDict`` is a ``dict``) and let ``mypy`` or an IDE check that
``envelope["result"]["enabled"]`` is a ``bool``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict, TypeVar

__all__ = [
    "AuthEnvelope",
    "AuthResult",
    "CancelOnDisconnectEnvelope",
    "CancelOnDisconnectSetting",
    "ErrorEnvelope",
    "ErrorObject",
    "GrantType",
    "Headers",
    "HttpInfo",
    "OkEnvelope",
    "PublicTestEnvelope",
    "PublicTestResult",
    "Scope",
]

T = TypeVar("T")

#: Where a cancel-on-disconnect setting applies.
Scope = Literal["connection", "account"]

#: How ``public/auth`` authenticates.
GrantType = Literal["client_credentials", "client_signature", "refresh_token"]

#: Response headers, case-insensitive on HTTP; empty on a WebSocket.
Headers = Mapping[str, str]

#: What a ``*_with_http_info`` method returns: ``(envelope, status, headers)``.
HttpInfo = tuple[T, int, Headers]


class _Timing(TypedDict):
    jsonrpc: str
    testnet: bool
    usIn: int
    usOut: int
    usDiff: int


class _Envelope(_Timing, total=False):
    #: Present when the request carried one (always on a WebSocket, never over plain GET).
    id: int


class OkEnvelope(_Envelope):
    """The answer of the heartbeat and cancel-on-disconnect switches: ``result`` is ``"ok"``."""

    result: Literal["ok"]


class CancelOnDisconnectSetting(TypedDict):
    """``private/get_cancel_on_disconnect``'s result."""

    scope: Scope
    enabled: bool


class CancelOnDisconnectEnvelope(_Envelope):
    """The envelope of ``private/get_cancel_on_disconnect``."""

    result: CancelOnDisconnectSetting


class _AuthRequired(TypedDict):
    access_token: str
    expires_in: int
    scope: str
    token_type: str


class AuthResult(_AuthRequired, total=False):
    """``public/auth``'s result (both tokens are credentials: never print them)."""

    refresh_token: str
    state: str
    enabled_features: list[str]


class AuthEnvelope(_Envelope):
    """The envelope of ``public/auth``."""

    result: AuthResult


class PublicTestResult(TypedDict):
    """``public/test``'s result."""

    version: str


class PublicTestEnvelope(_Envelope):
    """The envelope of ``public/test``."""

    result: PublicTestResult


class _ErrorRequired(TypedDict):
    code: int
    message: str


class ErrorObject(_ErrorRequired, total=False):
    """The ``error`` member of a refused call; ``data`` often holds ``param`` and ``reason``."""

    data: Any


class ErrorEnvelope(_Envelope):
    """The envelope of a refused call, as :attr:`ApiException.data` holds it."""

    error: ErrorObject
