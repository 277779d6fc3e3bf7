"""Mistakes a type checker must catch: mypy must report each line marked as one."""

from __future__ import annotations

from openapi_client import SessionManagementApi, aio


def mistakes(api: SessionManagementApi) -> None:
    api.public_set_heartbeat_get()  # error: interval is required
    api.private_enable_cancel_on_disconnect_get(scope="everywhere")  # error: not a scope
    envelope = api.private_get_cancel_on_disconnect_get()
    count: int = envelope["result"]["scope"]  # error: a str, not an int
    pending = api.public_set_heartbeat_get(30, async_req=True)
    pending["result"]  # error: an AsyncResult must be waited for with get()
    print(count)


async def aio_mistakes(api: aio.SessionManagementApi, auth: aio.AuthenticationApi) -> None:
    await api.public_set_heartbeat_get()  # error: interval is required
    await api.public_set_heartbeat_get(30, async_req=True)  # error: no async_req in aio
    api.public_disable_heartbeat_get()["result"]  # error: a coroutine must be awaited
    envelope = await api.private_get_cancel_on_disconnect_get(scope="account")
    count: int = envelope["result"]["scope"]  # error: a str, not an int
    await auth.public_auth_get("password")  # error: not a grant type
    print(count)


def no_client() -> aio.SessionManagementApi:
    return aio.SessionManagementApi()  # error: the asyncio classes have no default client
