"""openapi_client: a Python client for Deribit's session-management API.

Names are loaded on first use, so ``import openapi_client`` costs almost nothing; the first
``ApiClient`` brings in urllib3.

    >>> import openapi_client
    >>> configuration = openapi_client.Configuration(access_token="...")
    >>> with openapi_client.ApiClient(configuration) as api_client:
    ...     api = openapi_client.SessionManagementApi(api_client)
    ...     api.public_set_heartbeat_get(30)["result"]
    'ok'
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from openapi_client._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXCEPTIONS = (
    "OpenApiException",
    "ApiTypeError",
    "ApiValueError",
    "ApiAttributeError",
    "ApiKeyError",
    "ApiException",
    "BadRequestException",
    "UnauthorizedException",
    "ForbiddenException",
    "NotFoundException",
    "TooManyRequestsException",
    "ServiceException",
    "ApiTransportError",
    "ApiConnectionError",
    "ApiTimeoutError",
    "ApiSSLError",
    "ApiProtocolError",
    "ApiCallTimeoutError",
    "ApiResponseTooLargeError",
    "ApiUnknownSettingError",
)

_EXPORTS: dict[str, str] = {
    "ApiClient": "openapi_client.api_client",
    "AsyncResult": "openapi_client.api_client",
    "Configuration": "openapi_client.configuration",
    "SessionManagementApi": "openapi_client.api.session_management_api",
    "AuthenticationApi": "openapi_client.api.authentication_api",
    "RateLimit": "openapi_client.rate_limit",
    "RetryPolicy": "openapi_client.retry",
    "DeribitSimulator": "openapi_client.simulator",
    **dict.fromkeys(_EXCEPTIONS, "openapi_client.exceptions"),
}

__all__ = [
    "ApiAttributeError",
    "ApiCallTimeoutError",
    "ApiClient",
    "ApiConnectionError",
    "ApiException",
    "ApiKeyError",
    "ApiProtocolError",
    "ApiResponseTooLargeError",
    "ApiSSLError",
    "ApiTimeoutError",
    "ApiTransportError",
    "ApiTypeError",
    "ApiUnknownSettingError",
    "ApiValueError",
    "AsyncResult",
    "AuthenticationApi",
    "BadRequestException",
    "Configuration",
    "DeribitSimulator",
    "ForbiddenException",
    "NotFoundException",
    "OpenApiException",
    "RateLimit",
    "RetryPolicy",
    "ServiceException",
    "SessionManagementApi",
    "TooManyRequestsException",
    "UnauthorizedException",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover - what the lazy names are, for type checkers
    from openapi_client.api.authentication_api import AuthenticationApi
    from openapi_client.api.session_management_api import SessionManagementApi
    from openapi_client.api_client import ApiClient, AsyncResult
    from openapi_client.configuration import Configuration
    from openapi_client.exceptions import (
        ApiAttributeError,
        ApiCallTimeoutError,
        ApiConnectionError,
        ApiException,
        ApiKeyError,
        ApiProtocolError,
        ApiResponseTooLargeError,
        ApiSSLError,
        ApiTimeoutError,
        ApiTransportError,
        ApiTypeError,
        ApiUnknownSettingError,
        ApiValueError,
        BadRequestException,
        ForbiddenException,
        NotFoundException,
        OpenApiException,
        ServiceException,
        TooManyRequestsException,
        UnauthorizedException,
    )
    from openapi_client.rate_limit import RateLimit
    from openapi_client.retry import RetryPolicy
    from openapi_client.simulator import DeribitSimulator


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'openapi_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
