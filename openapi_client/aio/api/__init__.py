"""The asyncio API classes: the names and methods of :mod:`openapi_client.api`, every method a
coroutine. Generated from :mod:`openapi_client.api.endpoints`."""

from __future__ import annotations

from openapi_client.aio.api.authentication_api import AuthenticationApi
from openapi_client.aio.api.session_management_api import SessionManagementApi

__all__ = ["AuthenticationApi", "SessionManagementApi"]
