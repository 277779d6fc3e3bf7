"""Every Deribit method this client calls, declared once."""

from __future__ import annotations

from openapi_client.endpoint import ChoiceParam, Endpoint, NumberParam, TextParam

__all__ = [
    "DISABLE_CANCEL_ON_DISCONNECT",
    "DISABLE_HEARTBEAT",
    "ENABLE_CANCEL_ON_DISCONNECT",
    "GET_CANCEL_ON_DISCONNECT",
    "PUBLIC_AUTH",
    "SET_HEARTBEAT",
]

_SCOPE = ChoiceParam(
    "scope",
    choices=("connection", "account"),
    description=(
        "`connection` (Deribit's default) acts on the current connection, which over HTTP "
        "means nothing lasting; `account` changes the account default that every new "
        "connection starts with. Sent only when given."
    ),
)

SET_HEARTBEAT = Endpoint(
    "public_set_heartbeat_get",
    "/public/set_heartbeat",
    private=False,
    params=(
        NumberParam(
            "interval",
            required=True,
            minimum=10,
            unit="seconds",
            description="The heartbeat interval in seconds, not less than 10.",
        ),
    ),
    summary="Signal the connection to send and request heartbeats.",
)

DISABLE_HEARTBEAT = Endpoint(
    "public_disable_heartbeat_get",
    "/public/disable_heartbeat",
    private=False,
    summary="Stop sending heartbeat messages.",
)

ENABLE_CANCEL_ON_DISCONNECT = Endpoint(
    "private_enable_cancel_on_disconnect_get",
    "/private/enable_cancel_on_disconnect",
    private=True,
    params=(_SCOPE,),
    summary="Enable cancel-on-disconnect for the connection (or, with scope, the account).",
)

DISABLE_CANCEL_ON_DISCONNECT = Endpoint(
    "private_disable_cancel_on_disconnect_get",
    "/private/disable_cancel_on_disconnect",
    private=True,
    params=(_SCOPE,),
    summary="Disable cancel-on-disconnect for the connection (or, with scope, the account).",
)

GET_CANCEL_ON_DISCONNECT = Endpoint(
    "private_get_cancel_on_disconnect_get",
    "/private/get_cancel_on_disconnect",
    private=True,
    params=(_SCOPE,),
    summary="Read the cancel-on-disconnect setting.",
)

PUBLIC_AUTH = Endpoint(
    "public_auth_get",
    "/public/auth",
    private=False,
    params=(
        ChoiceParam(
            "grant_type",
            required=True,
            choices=("client_credentials", "client_signature", "refresh_token"),
            description="How to authenticate.",
        ),
        TextParam("client_id", description="The API key's client id."),
        TextParam(
            "client_secret",
            description="The API key's secret (client_credentials; travels in the query).",
        ),
        TextParam("refresh_token", description="A refresh token from an earlier answer."),
        TextParam("timestamp", allow_int=True, description="Milliseconds since the epoch."),
        TextParam("signature", description="HMAC-SHA256 of timestamp, nonce and data, in hex."),
        TextParam("nonce", description="A random string, never reused."),
        TextParam("data", description="Optional free text included in the signature."),
        TextParam("state", description="Free text echoed back."),
        TextParam("scope", description="The access scope asked for."),
    ),
    summary="Retrieve an access token (and a refresh token).",
    carries_credentials=True,
)
