"""What a user's code sees: real types from every call shape (checked by mypy --strict)."""

from __future__ import annotations

from openapi_client import ApiClient, AsyncResult, Configuration, SessionManagementApi
from openapi_client.models import CancelOnDisconnectEnvelope, HttpInfo, OkEnvelope


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
