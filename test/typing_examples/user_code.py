"""What a user's code sees: real types from every call shape (checked by mypy --strict)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openapi_client import ApiClient, AsyncResult, Configuration, SessionManagementApi, aio
from openapi_client.aio.api.base import AsyncCaller
from openapi_client.endpoint import Endpoint
from openapi_client.models import AuthEnvelope, CancelOnDisconnectEnvelope, HttpInfo, OkEnvelope


def enabled_for_account(api: SessionManagementApi) -> bool:
    envelope: CancelOnDisconnectEnvelope = api.private_get_cancel_on_disconnect_get(scope="account")
    return envelope["result"]["enabled"]


def heartbeat_later(api: SessionManagementApi) -> AsyncResult[OkEnvelope]:
    return api.public_set_heartbeat_get(30, async_req=True)


def with_status(api: SessionManagementApi) -> int:
    info: HttpInfo[OkEnvelope] = api.public_disable_heartbeat_get_with_http_info()
    envelope, status, headers = info
    print(dict(headers))
    assert envelope["result"] == "ok"
    return status


def main() -> None:
    with ApiClient(Configuration(host="http://127.0.0.1:9/api/v2")) as client:
        api = SessionManagementApi(client)
        print(enabled_for_account, heartbeat_later(api), with_status)


# -- openapi_client.aio: the same calls, awaited ------------------------------------------------


class MyAsyncClient:
    """A user's own asyncio client: anything with this coroutine method fits ``AsyncCaller``."""

    async def call(
        self,
        endpoint: Endpoint,
        args: Mapping[str, Any],
        options: Mapping[str, Any],
        http_info: bool,
        /,
    ) -> Any:
        return {"endpoint": endpoint.method, "args": dict(args), "options": dict(options)}


async def aio_enabled_for_account(api: aio.SessionManagementApi) -> bool:
    envelope: CancelOnDisconnectEnvelope = await api.private_get_cancel_on_disconnect_get(
        scope="account"
    )
    return envelope["result"]["enabled"]


async def aio_with_status(api: aio.SessionManagementApi) -> int:
    info: HttpInfo[OkEnvelope] = await api.public_disable_heartbeat_get_with_http_info(
        _request_timeout=(2, 5)
    )
    envelope, status, _ = info
    assert envelope["result"] == "ok"
    return status


async def aio_token_lifetime(client: AsyncCaller) -> int:
    api = aio.AuthenticationApi(client)
    envelope: AuthEnvelope = await api.public_auth_get(
        "client_credentials", client_id="id", client_secret="secret"
    )
    raw: Any = await api.public_auth_get("refresh_token", _preload_content=False)
    print(raw)
    return envelope["result"]["expires_in"]


async def aio_main() -> None:
    api = aio.SessionManagementApi(MyAsyncClient())
    print(await aio_enabled_for_account(api), await aio_with_status(api))
    print(await aio_token_lifetime(MyAsyncClient()))
