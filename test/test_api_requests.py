"""What each SessionManagementApi method puts on the wire, and what it does to the simulator.

Every call here goes over a real loopback socket to the simulator, whose request log shows the
method, target, query and headers exactly as they arrived.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import TOKEN

from openapi_client import ApiClient, ApiValueError, Configuration, SessionManagementApi
from openapi_client.simulator import DeribitSimulator, RecordedRequest

pytestmark = pytest.mark.timeout(15)

ENVELOPE_KEYS = {"jsonrpc", "result", "testnet", "usIn", "usOut", "usDiff"}

#: (method, positional args, keyword args, expected request target)
WIRE_CASES = [
    ("public_set_heartbeat_get", (30,), {}, "/api/v2/public/set_heartbeat?interval=30"),
    ("public_set_heartbeat_get", (30.5,), {}, "/api/v2/public/set_heartbeat?interval=30.5"),
    ("public_set_heartbeat_get", (10.0,), {}, "/api/v2/public/set_heartbeat?interval=10"),
    ("public_set_heartbeat_get", (), {"interval": 45}, "/api/v2/public/set_heartbeat?interval=45"),
    ("public_disable_heartbeat_get", (), {}, "/api/v2/public/disable_heartbeat"),
    (
        "private_enable_cancel_on_disconnect_get",
        (),
        {},
        "/api/v2/private/enable_cancel_on_disconnect",
    ),
    (
        "private_enable_cancel_on_disconnect_get",
        (),
        {"scope": "account"},
        "/api/v2/private/enable_cancel_on_disconnect?scope=account",
    ),
    (
        "private_disable_cancel_on_disconnect_get",
        (),
        {"scope": "connection"},
        "/api/v2/private/disable_cancel_on_disconnect?scope=connection",
    ),
    (
        "private_disable_cancel_on_disconnect_get",
        (),
        {},
        "/api/v2/private/disable_cancel_on_disconnect",
    ),
    ("private_get_cancel_on_disconnect_get", (), {}, "/api/v2/private/get_cancel_on_disconnect"),
    (
        "private_get_cancel_on_disconnect_get",
        ("account",),
        {},
        "/api/v2/private/get_cancel_on_disconnect?scope=account",
    ),
]


def only_request(simulator: DeribitSimulator) -> RecordedRequest:
    requests = simulator.requests
    assert len(requests) == 1, [r.target for r in requests]
    return requests[0]


def call(api: SessionManagementApi, method: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(api, method)(*args, **kwargs)


@dataclass
class WireCall:
    """One method called once against a fresh simulator: what it returned and what was sent."""

    method: str
    expected_target: str
    data: Any
    request: RecordedRequest


@pytest.fixture(params=WIRE_CASES, ids=lambda case: f"{case[0]}{case[1]}{case[2]}")
def wire_call(
    request: pytest.FixtureRequest, api: SessionManagementApi, simulator: DeribitSimulator
) -> WireCall:
    method, args, kwargs, target = request.param
    data = call(api, method, *args, **kwargs)
    return WireCall(method, target, data, only_request(simulator))


# -- the request line -----------------------------------------------------------------------


def test_request_line(wire_call: WireCall) -> None:
    sent = wire_call.request
    assert sent.method == "GET"
    assert sent.target == wire_call.expected_target
    assert sent.path == wire_call.expected_target.partition("?")[0]
    assert sent.path.startswith("/api/v2/")


@pytest.mark.parametrize(
    ("method", "args", "query"),
    [
        ("public_set_heartbeat_get", (30,), {"interval": "30"}),
        ("public_set_heartbeat_get", (30.5,), {"interval": "30.5"}),
        ("public_disable_heartbeat_get", (), {}),
        ("private_enable_cancel_on_disconnect_get", (), {}),
        ("private_enable_cancel_on_disconnect_get", ("account",), {"scope": "account"}),
        ("private_disable_cancel_on_disconnect_get", ("connection",), {"scope": "connection"}),
        ("private_get_cancel_on_disconnect_get", (), {}),
    ],
)
def test_query_has_exactly_the_given_parameters(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    method: str,
    args: tuple[Any, ...],
    query: dict[str, str],
) -> None:
    call(api, method, *args)
    assert dict(only_request(simulator).query) == query


def test_scope_none_is_not_sent(api: SessionManagementApi, simulator: DeribitSimulator) -> None:
    api.private_enable_cancel_on_disconnect_get(scope=None)
    assert only_request(simulator).target == "/api/v2/private/enable_cancel_on_disconnect"


# -- headers and credentials ----------------------------------------------------------------


def test_headers_with_a_token(wire_call: WireCall, configuration: Configuration) -> None:
    sent = wire_call.request
    assert sent.header("Accept") == "application/json"
    assert sent.header("User-Agent") == configuration.user_agent
    assert sent.header("User-Agent", "").startswith("openapi_client/")
    assert sent.header("Authorization") == f"Bearer {TOKEN}"
    assert TOKEN not in sent.target


@pytest.mark.parametrize("no_token", [None, ""])
@pytest.mark.parametrize(
    ("method", "args"),
    [("public_set_heartbeat_get", (30,)), ("public_disable_heartbeat_get", ())],
)
def test_public_call_without_credentials_sends_no_authorization(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    configuration: Configuration,
    method: str,
    args: tuple[Any, ...],
    no_token: str | None,
) -> None:
    configuration.access_token = no_token
    result = call(api, method, *args)
    assert result["result"] == "ok"
    request = only_request(simulator)
    assert request.header("Authorization") is None
    assert "authorization" not in {name.lower() for name in request.headers}


def test_token_set_after_the_client_is_used_at_once(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.access_token = None
    api.public_disable_heartbeat_get()
    configuration.access_token = TOKEN
    api.public_disable_heartbeat_get()
    configuration.access_token = None
    api.public_disable_heartbeat_get()
    assert [r.header("Authorization") for r in simulator.requests] == [
        None,
        f"Bearer {TOKEN}",
        None,
    ]


def test_user_agent_can_be_changed(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.user_agent = "my-bot/2.0"
    api.public_disable_heartbeat_get()
    assert only_request(simulator).header("User-Agent") == "my-bot/2.0"


def test_default_header_added_between_private_calls_is_sent(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    api.private_get_cancel_on_disconnect_get()
    api.api_client.set_default_header("X-Bot", "grid-7")
    api.private_get_cancel_on_disconnect_get()
    first, second = simulator.requests
    assert first.header("X-Bot") is None
    assert second.header("X-Bot") == "grid-7"
    assert second.header("Authorization") == f"Bearer {TOKEN}"


def test_header_that_is_not_valid_http_is_refused_when_set(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    with pytest.raises(ApiValueError, match=r"set_default_header.*header injection") as refused:
        api.api_client.set_default_header("X-Bot", "grid\r\nX-Injected: 1")
    assert "Injected" not in str(refused.value)
    assert "X-Bot" not in api.api_client.default_headers
    api.public_disable_heartbeat_get()  # the client is unharmed
    assert only_request(simulator).header("X-Bot") is None


def test_header_put_straight_into_default_headers_is_refused_before_sending(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    # default_headers is a plain dict: what code puts there bypasses set_default_header.
    api.api_client.default_headers["X-Bot"] = "grid\r\nX-Injected: 1"
    with pytest.raises(ApiValueError, match=r"default_headers.*header injection") as refused:
        api.public_disable_heartbeat_get()
    assert "Injected" not in str(refused.value)
    assert simulator.requests == []


@pytest.mark.parametrize(
    "credential",
    [
        {"access_token": ""},
        {"access_token": None, "token_provider": lambda: None},
        {"access_token": None, "token_provider": lambda: ""},
    ],
    ids=["empty-token", "provider-None", "provider-empty"],
)
def test_private_call_never_sends_an_empty_none_or_broken_bearer(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    configuration: Configuration,
    credential: dict[str, Any],
) -> None:
    for name, value in credential.items():
        setattr(configuration, name, value)
    with pytest.raises(ApiValueError):
        api.private_enable_cancel_on_disconnect_get(scope="account")
    assert simulator.requests == []
    assert simulator.cancel_on_disconnect["account"] is False


def test_token_provider_supplies_the_bearer(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.access_token = None
    configuration.token_provider = lambda: TOKEN
    api.private_enable_cancel_on_disconnect_get(scope="account")
    assert only_request(simulator).header("Authorization") == f"Bearer {TOKEN}"
    assert simulator.cancel_on_disconnect["account"] is True


# -- simulator state ------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [10, 30, 30.5, 3600])
def test_set_heartbeat_sets_the_interval(
    api: SessionManagementApi, simulator: DeribitSimulator, interval: float
) -> None:
    assert simulator.heartbeat_interval is None
    api.public_set_heartbeat_get(interval)
    assert simulator.heartbeat_interval == interval


def test_disable_heartbeat_clears_the_interval(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    api.public_set_heartbeat_get(25)
    assert simulator.heartbeat_interval == 25
    api.public_disable_heartbeat_get()
    assert simulator.heartbeat_interval is None


@pytest.mark.parametrize(
    ("scope", "changed"),
    [(None, "connection"), ("connection", "connection"), ("account", "account")],
)
def test_cancel_on_disconnect_per_scope(
    api: SessionManagementApi, simulator: DeribitSimulator, scope: str | None, changed: str
) -> None:
    other = "account" if changed == "connection" else "connection"
    api.private_enable_cancel_on_disconnect_get(scope=scope)
    assert simulator.cancel_on_disconnect == {changed: True, other: False}
    api.private_disable_cancel_on_disconnect_get(scope=scope)
    assert simulator.cancel_on_disconnect == {changed: False, other: False}


def test_get_cancel_on_disconnect_reads_the_setting_back(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    api.private_enable_cancel_on_disconnect_get(scope="account")
    account = api.private_get_cancel_on_disconnect_get(scope="account")["result"]
    connection = api.private_get_cancel_on_disconnect_get(scope="connection")["result"]
    default = api.private_get_cancel_on_disconnect_get()["result"]
    assert account == {"scope": "account", "enabled": True}
    assert connection == {"scope": "connection", "enabled": False}
    assert default == {"scope": "connection", "enabled": False}
    api.private_disable_cancel_on_disconnect_get(scope="account")
    assert api.private_get_cancel_on_disconnect_get("account")["result"] == {
        "scope": "account",
        "enabled": False,
    }


# -- results --------------------------------------------------------------------------------


def test_result_is_the_full_envelope_as_a_plain_dict(wire_call: WireCall) -> None:
    data = wire_call.data
    assert type(data) is dict
    assert set(data) == ENVELOPE_KEYS
    assert data["jsonrpc"] == "2.0"
    assert data["testnet"] is True
    for key in ("usIn", "usOut", "usDiff"):
        assert type(data[key]) is int
    assert data["usOut"] >= data["usIn"] > 1_500_000_000_000_000
    assert data["usDiff"] == data["usOut"] - data["usIn"]
    if wire_call.method == "private_get_cancel_on_disconnect_get":
        assert type(data["result"]) is dict
        assert set(data["result"]) == {"scope", "enabled"}
    else:
        assert data["result"] == "ok"


# -- other loopback addresses ---------------------------------------------------------------


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["localhost", "::1"])
def test_other_loopback_hosts(host: str) -> None:
    if host == "::1" and not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback on this machine")
    with DeribitSimulator(host=host, legacy_http=True) as simulator:
        configuration = Configuration(host=simulator.url, access_token=TOKEN, retries=0)
        with ApiClient(configuration) as client:
            api = SessionManagementApi(client)
            assert api.private_enable_cancel_on_disconnect_get(scope="account")["result"] == "ok"
        assert simulator.cancel_on_disconnect["account"] is True
        assert only_request(simulator).header("Authorization") == f"Bearer {TOKEN}"
