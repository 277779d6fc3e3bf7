"""The API classes: one method per Deribit method, declared in :mod:`.endpoints`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["AuthenticationApi", "SessionManagementApi"]

_EXPORTS = {
    "AuthenticationApi": "openapi_client.api.authentication_api",
    "SessionManagementApi": "openapi_client.api.session_management_api",
}

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.api.authentication_api import AuthenticationApi
    from openapi_client.api.session_management_api import SessionManagementApi


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'openapi_client.api' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
