"""The asyncio face of the client: the names of the synchronous API, every call a coroutine.

``openapi_client.aio.SessionManagementApi(client)`` and ``openapi_client.aio.AuthenticationApi(
client)`` take the asyncio client to await (an :class:`~openapi_client.aio.api.base.AsyncCaller`)
and have the methods, parameters, keywords and typed results of their synchronous namesakes.
"""

from __future__ import annotations

from openapi_client.aio.api import AuthenticationApi, SessionManagementApi

__all__ = ["AuthenticationApi", "SessionManagementApi"]
