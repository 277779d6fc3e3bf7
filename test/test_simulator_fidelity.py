"""Where the simulator follows Deribit closely enough for a bot's tests to mean something: the
session model, the codes and reason tokens, what a token may do, JSON-RPC over HTTP POST, the
start-up methods, ``testnet``, and the switches the fidelity table in ``docs/Simulator.md``
names. Raw HTTP requests and the ``websockets`` client over loopback; the project's client is
not used.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import http.client
import inspect
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_simulator import BEARER, CLIENT_ID, SECRET, assert_error, fetch, rpc
from test_simulator_ws import open_client, wait_for

from openapi_client.simulator import FULL_SCOPE, ApiKey, DeribitSimulator
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(20)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "Simulator.md"
GRANT = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
GET_COD = "private/get_cancel_on_disconnect"
ENABLE_COD = "private/enable_cancel_on_disconnect"
ACCOUNT = {"scope": "account"}
INVALID_TOKEN = {"code": 13009, "message": "unauthorized", "data": {"reason": "invalid_token"}}


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator() as simulator:
        yield simulator


def grant(sim: DeribitSimulator, **params: Any) -> dict[str, Any]:
    """``public/auth`` over HTTP (a fresh connection); the result."""
    status, body = rpc(sim, "public/auth", {**GRANT, **params})
    assert status == 200, body
    result: dict[str, Any] = body["result"]
    return result


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(
    sim: DeribitSimulator,
    target: str,
    body: bytes | dict[str, Any],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One HTTP POST with a JSON body; the status and the decoded answer."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response, answer = fetch(
        sim,
        target,
        {"Content-Type": "application/json", **(headers or {})},
        method="POST",
        body=raw,
    )
    decoded: dict[str, Any] = json.loads(answer)
    return response.status, decoded


def hmac_signature(verb: str, target: str, body: str, *, ts: int, nonce: str) -> str:
    """A ``deri-hmac-sha256`` header value, computed here from Deribit's documented recipe."""
    data = f"{verb}\n{target}\n{body}\n"
    message = f"{ts}\n{nonce}\n{data}".encode()
    sig = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    return f"deri-hmac-sha256 id={CLIENT_ID},ts={ts},sig={sig},nonce={nonce}"


# -- sessions --------------------------------------------------------------------------------


def test_the_17th_session_evicts_the_one_with_the_least_life_left() -> None:
    clock = ManualClock()
    with DeribitSimulator(clock=clock) as sim:
        first = grant(sim, scope="session:s0")
        clock.advance(1)
        for number in range(1, 16):
            grant(sim, scope=f"session:s{number}")
        clock.advance(1)
        grant(sim, grant_type="refresh_token", refresh_token=first["refresh_token"])  # s0 renewed
        assert [s.expires_in for s in sim.sessions[:2]] == [900, 899]
        newest = grant(sim, scope="session:s16")
        (eviction,) = sim.session_evictions
        assert (eviction.name, eviction.replaced_by) == ("s1", "s16")  # not the oldest, s0
        assert abs(eviction.time - time.time()) < 60
        assert [s.name for s in sim.sessions] == ["s0", *(f"s{n}" for n in range(2, 17))]
        assert "session:s16" in newest["scope"].split()
        sim.clear_session_evictions()
        assert sim.session_evictions == []


def test_http_grants_without_a_scope_evict_a_websocket_session() -> None:
    """The trap Deribit sets: a script granting over HTTP in a loop uses up the key's 16
    sessions and silently kills a bot's long-lived one."""
    clock = ManualClock()
    with DeribitSimulator(clock=clock) as sim:
        bot = open_client(sim)
        bot.auth(scope="session:bot")
        clock.advance(600)  # the bot's session has 300 s left; each new one gets 899
        for number in range(1, 16):
            result = grant(sim)  # each on its own TCP connection, none naming a session
            assert f"session:rest-{number}" in result["scope"].split()
            assert result["expires_in"] == 899
        assert bot.result(GET_COD) == {"scope": "connection", "enabled": False}
        rest = grant(sim)  # the 17th session
        assert [e.name for e in sim.session_evictions] == ["bot"]
        assert bot.error(GET_COD) == INVALID_TOKEN
        # The rest session's token outlives the connection that obtained it.
        assert rpc(sim, GET_COD, ACCOUNT, bearer(rest["access_token"]))[0] == 200
        bot.ws.close()


def test_connection_scoped_tokens_and_issued_ones_belong_to_no_session(
    sim: DeribitSimulator,
) -> None:
    clients = [open_client(sim) for _ in range(3)]
    for client in clients:
        assert client.auth()["expires_in"] == 31536000  # connection scope on a WebSocket
    grant(sim, scope="connection")
    sim.issue_token()
    assert sim.sessions == []
    for client in clients:
        client.ws.close()


def test_logout_ends_its_session(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    client.auth(scope="session:bot")
    assert [s.name for s in sim.sessions] == ["bot"]
    client.send("private/logout")
    client.closed()
    wait_for(lambda: sim.sessions == [])


# -- public/auth's answer ----------------------------------------------------------------------


def test_auth_answers_with_every_documented_field() -> None:
    key = ApiKey(
        "named",
        client_secret="named-secret",
        name="trading-bot",
        enabled_features=("restricted_block_trades",),
    )
    with DeribitSimulator(keys=[key]) as sim:
        client = open_client(sim)
        params = {
            "grant_type": "client_credentials",
            "client_id": "named",
            "client_secret": "named-secret",
            "state": "opaque-42",
        }
        result = client.result("public/auth", params)
        assert set(result) == {
            "access_token",
            "refresh_token",
            "expires_in",
            "scope",
            "token_type",
            "enabled_features",
            "state",
        }
        assert result["state"] == "opaque-42"
        assert result["enabled_features"] == ["restricted_block_trades"]
        assert result["expires_in"] == 31536000
        assert result["scope"] == (
            "account:read_write block_trade:read_write connection mainaccount name:trading-bot "
            "trade:read_write wallet:read_write"
        )
        refreshed = client.result(
            "public/auth", {"grant_type": "refresh_token", "refresh_token": result["refresh_token"]}
        )
        assert "state" not in refreshed and refreshed["scope"] == result["scope"]
        session = client.result("public/auth", {**params, "scope": "session:b"})
        assert session["expires_in"] == 900
        client.ws.close()
        # Over HTTP, state comes back too; a non-string one is refused.
        status, body = rpc(sim, "public/auth", {**params, "scope": "session:b"})
        assert status == 200 and body["result"]["state"] == "opaque-42"
        status, body = post(
            sim, "/api/v2/public/auth", {"method": "public/auth", "params": {**params, "state": 7}}
        )
        assert_error(status, body, -32602, "Invalid params", param="state")


def test_token_ttl_overrides_every_lifetime() -> None:
    with DeribitSimulator(token_ttl=60) as sim:
        client = open_client(sim)
        assert client.auth()["expires_in"] == 60
        assert grant(sim)["expires_in"] == 60
        client.ws.close()


# -- what a token may do -----------------------------------------------------------------------


def test_a_narrower_scope_is_granted_and_each_method_enforces_its_own(
    sim: DeribitSimulator,
) -> None:
    read_only = grant(sim, scope="session:ro account:read trade:none")
    assert read_only["scope"] == (
        "account:read block_trade:read_write mainaccount session:ro wallet:read_write"
    )
    headers = bearer(read_only["access_token"])
    assert rpc(sim, GET_COD, ACCOUNT, headers)[0] == 200  # needs account:read
    status, body = rpc(sim, ENABLE_COD, ACCOUNT, headers)  # needs account:read_write
    assert_error(status, body, 13021, "forbidden", explained=(sim, "needs account:read_write"))
    # The same on a WebSocket, authenticated on the connection or per request.
    client = open_client(sim)
    client.auth(scope="account:read")
    assert client.error("private/enable_cancel_on_disconnect") == {
        "code": 13021,
        "message": "forbidden",
    }
    assert client.error(
        "private/disable_cancel_on_disconnect", {"access_token": read_only["access_token"]}
    ) == {"code": 13021, "message": "forbidden"}
    assert client.result(GET_COD) == {"scope": "connection", "enabled": False}
    client.ws.close()
    # A token minted for a test can be narrow too.
    status, body = rpc(sim, ENABLE_COD, ACCOUNT, bearer(sim.issue_token(scope="account:read")))
    assert_error(status, body, 13021, "forbidden")


def test_a_read_only_key_never_gets_more() -> None:
    key = ApiKey("reader", client_secret="reader-secret", max_scope="account:read trade:read")
    with DeribitSimulator(keys=[key]) as sim:
        assert sim.requests == [] and rpc(sim, "public/auth", GRANT)[0] == 400  # no default key
        asked = {
            "grant_type": "client_credentials",
            "client_id": "reader",
            "client_secret": "reader-secret",
            "scope": "session:r account:read_write wallet:read_write",
        }
        status, body = rpc(sim, "public/auth", asked)
        assert status == 200
        assert body["result"]["scope"] == "account:read mainaccount session:r trade:read"
        headers = bearer(body["result"]["access_token"])
        assert rpc(sim, GET_COD, ACCOUNT, headers)[0] == 200
        assert_error(*rpc(sim, ENABLE_COD, ACCOUNT, headers), 13021, "forbidden")
        # Credentials that name the key directly carry its maximum scope.
        basic = {"Authorization": "Basic cmVhZGVyOnJlYWRlci1zZWNyZXQ="}  # reader:reader-secret
        assert rpc(sim, GET_COD, ACCOUNT, basic)[0] == 200
        assert_error(*rpc(sim, ENABLE_COD, ACCOUNT, basic), 13021, "forbidden")


def test_a_scope_with_an_unknown_level_is_invalid(sim: DeribitSimulator) -> None:
    status, body = rpc(sim, "public/auth", {**GRANT, "scope": "account:write"})
    assert_error(status, body, -32602, "Invalid params", param="scope", reason="wrong format")
    assert "account" in str(sim.requests[-1].explanation)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"keys": ["not-a-key"]}, "ApiKey"),
        ({"keys": [ApiKey("a", client_secret="s")], "credentials": {"a": "t"}}, "twice"),
        ({"credentials": {"a": ""}}, "non-empty"),
        ({"testnet": "yes"}, "testnet"),
        ({"rest_sessions": None}, "rest_sessions"),
        ({"account_cod_over_http": 1}, "account_cod_over_http"),
    ],
)
def test_settings_are_checked(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeribitSimulator(**settings)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one"),
        ({"client_secret": "s", "public_key": "k"}, "exactly one"),
        ({"client_secret": "s", "max_scope": "trade:all"}, "level"),
        ({"client_secret": "s", "name": "two words"}, "name"),
        ({"client_secret": "s", "enabled_features": "x"}, "enabled_features"),
    ],
)
def test_api_keys_are_checked(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ApiKey("k", **fields)


def test_an_api_keys_repr_hides_its_secret() -> None:
    assert "hush" not in repr(ApiKey("k", client_secret="hush"))
    assert ApiKey("k", client_secret="hush").max_scope == FULL_SCOPE


# -- JSON-RPC over HTTP POST -------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/api/v2", "/api/v2/", "/api/v2/public/test"])
def test_post_takes_a_json_rpc_request(sim: DeribitSimulator, target: str) -> None:
    status, body = post(sim, target, {"jsonrpc": "2.0", "id": 42, "method": "public/test"})
    assert status == 200
    assert (body["id"], body["result"]) == (42, {"version": "1.2.26"})
    recorded = sim.requests[-1]
    assert (recorded.method, recorded.target, recorded.path, recorded.rpc_id) == (
        "POST",
        target,
        "/api/v2/public/test",
        42,
    )


def test_post_authenticates_and_takes_typed_params(sim: DeribitSimulator) -> None:
    status, body = post(sim, "/api/v2", {"id": 1, "method": "public/auth", "params": GRANT})
    assert status == 200 and body["id"] == 1
    token = body["result"]["access_token"]
    request = {"id": 2, "method": ENABLE_COD, "params": {"scope": "account"}}
    status, body = post(sim, "/api/v2", request, bearer(token))
    assert (status, body["result"]) == (200, "ok")
    assert sim.cancel_on_disconnect["account"] is True
    assert sim.requests[-1].query == {"scope": "account"}
    # The method's own path, with the method left out of the body; no id, none echoed.
    status, body = post(sim, f"/api/v2/{GET_COD}", {"params": {"scope": "account"}}, BEARER)
    assert status == 200 and "id" not in body and body["result"]["enabled"] is True
    # WebSocket-only methods stay WebSocket-only.
    status, body = post(
        sim, "/api/v2", {"method": "public/set_heartbeat", "params": {"interval": 10}}
    )
    assert (status, body["error"]["code"]) == (400, 10030)


def test_a_signed_post_covers_method_uri_and_body(sim: DeribitSimulator) -> None:
    target = f"/api/v2/{GET_COD}"
    raw = json.dumps({"jsonrpc": "2.0", "id": 3, "method": GET_COD, "params": ACCOUNT})
    ts = int(time.time() * 1000)
    header = hmac_signature("POST", target, raw, ts=ts, nonce="p-1")
    status, body = post(sim, target, raw.encode(), {"Authorization": header})
    assert (status, body["id"]) == (200, 3)
    # The same signature over another body (or as if it were a GET) is refused.
    other = raw.replace('"id": 3', '"id": 4')
    header = hmac_signature("POST", target, raw, ts=ts, nonce="p-2")
    status, body = post(sim, target, other.encode(), {"Authorization": header})
    assert_error(status, body, 13004, "invalid_credentials", explained=(sim, "invalid signature"))
    header = hmac_signature("GET", target, "", ts=ts, nonce="p-3")
    status, body = post(sim, target, raw.encode(), {"Authorization": header})
    assert_error(status, body, 13004, "invalid_credentials")


@pytest.mark.parametrize(
    ("target", "raw", "code", "reason"),
    [
        ("/api/v2", b"{not json", 11050, None),
        ("/api/v2", b"[]", 11050, None),
        ("/api/v2", b'{"id": 5}', -32600, "method_required"),
        (
            "/api/v2/public/test",
            b'{"id": 5, "method": "public/get_time"}',
            -32600,
            "method_mismatch",
        ),
        ("/api/v2", b'{"id": 5, "method": "public/test", "params": [1]}', -32602, None),
        ("/api/v2", b'{"id": 5, "method": "public/nope"}', -32601, None),
    ],
)
def test_a_post_that_is_not_a_request_is_refused(
    sim: DeribitSimulator, target: str, raw: bytes, code: int, reason: str | None
) -> None:
    status, body = post(sim, target, raw)
    assert status == 400 and body["error"]["code"] == code, body
    if reason is not None:
        assert body["error"]["data"] == {"reason": reason}
    assert sim.requests[-1].error_code == code


def test_an_empty_post_to_a_method_is_a_call_without_params(sim: DeribitSimulator) -> None:
    status, body = post(sim, "/api/v2/public/get_time", b"")
    assert status == 200 and isinstance(body["result"], int)


def test_a_post_outside_the_api_is_404_whatever_its_body(sim: DeribitSimulator) -> None:
    # A path as long as the API root's, then the method's path: only the URL decides.
    status, body = post(sim, "/other2/public/test", {"id": 1, "method": "public/test"})
    assert (status, body["error"]["code"]) == (404, -32601)


# -- the start-up methods ----------------------------------------------------------------------


def test_get_time_and_status_over_both_transports(sim: DeribitSimulator) -> None:
    before = int(time.time() * 1000)
    status, body = rpc(sim, "public/get_time")
    client = open_client(sim)
    over_ws = client.result("public/get_time")
    after = int(time.time() * 1000)
    assert status == 200 and before <= body["result"] <= over_ws <= after
    expected = {"locked": "false", "locked_indices": []}
    assert rpc(sim, "public/status")[1]["result"] == expected
    assert client.result("public/status") == expected
    client.ws.close()


def test_unsubscribe_all(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    channels = ["platform_state", "platform_state.public_methods_state"]
    assert client.result("public/subscribe", {"channels": channels}) == channels
    assert client.result("public/unsubscribe_all") == "ok"
    assert sim.ws_connections[0].subscriptions == frozenset()
    assert client.error("private/unsubscribe_all") == INVALID_TOKEN
    client.auth()
    client.result("private/subscribe", {"channels": channels[:1]})
    assert client.result("private/unsubscribe_all") == "ok"
    assert sim.ws_connections[0].subscriptions == frozenset()
    assert sim.publish_platform_state({"locked": True}) == 0
    client.ws.close()
    for method in ("public/unsubscribe_all", "private/unsubscribe_all"):
        status, body = rpc(sim, method, headers=BEARER)
        assert (status, body["error"]["code"]) == (400, 10030)


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("testnet", [True, False])
def test_testnet_is_a_setting(testnet: bool) -> None:
    with DeribitSimulator(testnet=testnet) as sim:
        client = open_client(sim)
        assert client.call("public/test")["testnet"] is testnet
        client.ws.close()
    with DeribitSimulator(testnet=testnet, max_connections=1) as sim:
        own = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
        assert rpc(sim, "public/test", conn=own)[1]["testnet"] is testnet
        assert rpc(sim, "public/nope", conn=own)[1]["testnet"] is testnet
        status, body = rpc(sim, "public/test")  # a second connection: over the limit
        assert (status, body["testnet"]) == (429, testnet)
        own.close()


def test_account_cancel_on_disconnect_over_http_can_be_refused() -> None:
    with DeribitSimulator(account_cod_over_http=False) as sim:
        for method in (ENABLE_COD, "private/disable_cancel_on_disconnect", GET_COD):
            status, body = rpc(sim, method, ACCOUNT, BEARER)
            assert (status, body["error"]) == (
                400,
                {"code": 10030, "message": "must_be_websocket_request"},
            )
        client = open_client(sim)  # over a WebSocket it still works
        assert client.result(ENABLE_COD, {"scope": "account", "access_token": "sim-token"}) == "ok"
        client.ws.close()
        assert sim.cancel_on_disconnect["account"] is True


# -- the fidelity table ------------------------------------------------------------------------


def fidelity_switches() -> list[str]:
    """Each ``name=value`` in the Switch column of the fidelity table in docs/Simulator.md."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Fidelity", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip().lower() for cell in rows[0].strip("|").split("|")]
    column = header.index("switch")
    found = []
    for row in rows[2:]:
        cell = row.strip("|").split("|")[column]
        found += re.findall(r"`(\w+=[^`]+)`", cell)
    return found


def test_every_switch_in_the_fidelity_table_exists() -> None:
    switches = fidelity_switches()
    assert len(switches) >= 4, switches
    parameters = inspect.signature(DeribitSimulator).parameters
    for switch in switches:
        name, _, value = switch.partition("=")
        assert name in parameters, f"docs/Simulator.md names a switch {name!r} that is missing"
        with DeribitSimulator(**{name: ast.literal_eval(value)}):  # the value is accepted
            pass
