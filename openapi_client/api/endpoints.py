"""Every Deribit method this client calls, declared once.

An :class:`~openapi_client.endpoint.Endpoint` holds all there is to know about one method: its
name and path, whether it needs credentials and which access scope, its parameters and their
checks, its documentation, the type of its answer, and what it does to a WebSocket session's
state. The API classes of :mod:`openapi_client.api` and :mod:`openapi_client.aio.api` are
generated from :data:`APIS` by ``python -m openapi_client.api._generate``; the WebSocket session
looks a method called by name up with :func:`endpoint_for`.
"""

from __future__ import annotations

from typing import get_args

from openapi_client.endpoint import (
    ApiGroup,
    ChoiceParam,
    Endpoint,
    NumberParam,
    SessionEffect,
    TextParam,
)
from openapi_client.models import (
    AuthEnvelope,
    CancelOnDisconnectEnvelope,
    GrantType,
    OkEnvelope,
    Scope,
)

__all__ = [
    "APIS",
    "AUTHENTICATION_API",
    "DISABLE_CANCEL_ON_DISCONNECT",
    "DISABLE_HEARTBEAT",
    "ENABLE_CANCEL_ON_DISCONNECT",
    "ENDPOINTS",
    "GET_CANCEL_ON_DISCONNECT",
    "PUBLIC_AUTH",
    "SESSION_MANAGEMENT_API",
    "SET_HEARTBEAT",
    "endpoint_for",
]

#: What Deribit requires of a token to change account settings, and to read them.
_READ_WRITE = "account:read_write"
_READ = "account:read"

_SCOPE = ChoiceParam(
    "scope",
    choices=get_args(Scope),
    type_name="Scope",
    description=(
        '``"connection"`` (Deribit\'s default) acts on the current connection, which exists '
        'only on a WebSocket (over HTTP Deribit answers 10030); ``"account"`` changes the '
        "account default that every new connection starts with. Sent only when given."
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
            description="The heartbeat interval in seconds, a number not less than 10.",
        ),
    ),
    summary="Ask for heartbeats every ``interval`` seconds.",
    description=(
        "On today's Deribit this works only on a WebSocket session, which answers the "
        "heartbeats' test requests and keeps the interval for every later connection; over "
        "HTTP Deribit answers 10030."
    ),
    result=OkEnvelope,
    effect=SessionEffect.SET_HEARTBEAT,
)

DISABLE_HEARTBEAT = Endpoint(
    "public_disable_heartbeat_get",
    "/public/disable_heartbeat",
    private=False,
    summary="Stop heartbeat messages.",
    description=(
        "On today's Deribit this works only on a WebSocket session, which then stops asking "
        "for heartbeats on later connections too; over HTTP Deribit answers 10030."
    ),
    result=OkEnvelope,
    effect=SessionEffect.DISABLE_HEARTBEAT,
)

ENABLE_CANCEL_ON_DISCONNECT = Endpoint(
    "private_enable_cancel_on_disconnect_get",
    "/private/enable_cancel_on_disconnect",
    private=True,
    params=(_SCOPE,),
    summary="Enable cancel-on-disconnect.",
    description=(
        "When a connection with cancel-on-disconnect on closes, Deribit cancels the orders "
        "placed through it. A WebSocket session enables it again on every new connection "
        'when it was enabled for its connection (``scope="connection"`` or no scope).'
    ),
    result=OkEnvelope,
    required_scope=_READ_WRITE,
    effect=SessionEffect.ENABLE_CANCEL_ON_DISCONNECT,
)

DISABLE_CANCEL_ON_DISCONNECT = Endpoint(
    "private_disable_cancel_on_disconnect_get",
    "/private/disable_cancel_on_disconnect",
    private=True,
    params=(_SCOPE,),
    summary="Disable cancel-on-disconnect.",
    description=(
        "A WebSocket session then leaves it off on its later connections when it was disabled "
        'for its connection (``scope="connection"`` or no scope).'
    ),
    result=OkEnvelope,
    required_scope=_READ_WRITE,
    effect=SessionEffect.DISABLE_CANCEL_ON_DISCONNECT,
)

GET_CANCEL_ON_DISCONNECT = Endpoint(
    "private_get_cancel_on_disconnect_get",
    "/private/get_cancel_on_disconnect",
    private=True,
    params=(_SCOPE,),
    summary="Read the cancel-on-disconnect setting.",
    description='The envelope\'s ``result`` is ``{"scope": ..., "enabled": bool}``.',
    result=CancelOnDisconnectEnvelope,
    required_scope=_READ,
)

PUBLIC_AUTH = Endpoint(
    "public_auth_get",
    "/public/auth",
    private=False,
    params=(
        ChoiceParam(
            "grant_type",
            required=True,
            choices=get_args(GrantType),
            type_name="GrantType",
            description=(
                '``"client_credentials"``, ``"client_signature"`` or ``"refresh_token"``.'
            ),
        ),
        TextParam("client_id", description="The API key's client id."),
        TextParam(
            "client_secret",
            description="The API key's secret (client_credentials; travels in the query).",
            secret=True,
        ),
        TextParam(
            "refresh_token", description="A refresh token from an earlier answer.", secret=True
        ),
        TextParam("timestamp", allow_int=True, description="Milliseconds since the epoch."),
        TextParam(
            "signature",
            description=(
                "The grant's signature of timestamp, nonce and data: HMAC-SHA256 in hex with a "
                "secret, or the private key's signature in unpadded base64url with an "
                "asymmetric key."
            ),
            secret=True,
        ),
        TextParam("nonce", description="A random string, never reused."),
        TextParam("data", description="Optional free text included in the signature."),
        TextParam("state", description="Free text echoed back."),
        TextParam(
            "scope",
            description=(
                'The access asked for, e.g. ``"session:NAME"`` for tokens that outlive the '
                "connection (without it Deribit ties the tokens to the connection that got "
                "them)."
            ),
        ),
    ),
    summary="Retrieve an access token (and a refresh token).",
    description=(
        "The answer's ``result`` holds ``access_token``, ``refresh_token``, ``expires_in`` "
        "(seconds), ``scope`` and ``token_type``: live credentials, never to be printed or "
        "logged."
    ),
    result=AuthEnvelope,
    carries_credentials=True,
)

SESSION_MANAGEMENT_API = ApiGroup(
    "SessionManagementApi",
    summary="Heartbeats and cancel-on-disconnect.",
    description="Deribit's session-management methods: heartbeats and cancel-on-disconnect.",
    endpoints=(
        SET_HEARTBEAT,
        DISABLE_HEARTBEAT,
        ENABLE_CANCEL_ON_DISCONNECT,
        DISABLE_CANCEL_ON_DISCONNECT,
        GET_CANCEL_ON_DISCONNECT,
    ),
)

AUTHENTICATION_API = ApiGroup(
    "AuthenticationApi",
    summary="Token retrieval.",
    description=(
        "Deribit's ``public/auth``, for users who manage tokens themselves.\n\n"
        "Most users never call it: with ``Configuration.client_id`` and ``client_secret`` set, "
        "the client fetches and refreshes tokens on its own (see ``docs/Authentication.md``)."
    ),
    endpoints=(PUBLIC_AUTH,),
)

#: Every API class, in the order the generator writes them.
APIS = (SESSION_MANAGEMENT_API, AUTHENTICATION_API)

#: Every declared endpoint.
ENDPOINTS = tuple(endpoint for api in APIS for endpoint in api.endpoints)

_BY_METHOD = {endpoint.method: endpoint for endpoint in ENDPOINTS}


def endpoint_for(method: str) -> Endpoint | None:
    """The declared endpoint of a Deribit method name such as ``"public/set_heartbeat"``, or
    ``None`` for a method this client does not declare (a call made by name)."""
    return _BY_METHOD.get(method)
