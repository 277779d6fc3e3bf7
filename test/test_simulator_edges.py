"""The simulator at its edges: settings it refuses, grants and headers Deribit would refuse, and
WebSocket messages no well-behaved client sends (fragmented past the limit, nested too deep),
driven over loopback with the standard library and ``websockets``' own sync client.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from openapi_client.signing import now_ms
from openapi_client.simulator import DeribitSimulator
from openapi_client.simulator.auth import NonceRegistry
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(15)

CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": "sim-client",
    "client_secret": "sim-secret",
}


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator() as simulator:
        yield simulator


@pytest.fixture
def ws(sim: DeribitSimulator) -> Iterator[ClientConnection]:
    with connect(sim.ws_url, proxy=None, open_timeout=5, close_timeout=2, ping_interval=None) as c:
        yield c


_ids = iter(range(1, 1_000_000))


def call(ws: ClientConnection, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One request; its answer (notifications skipped)."""
    request_id = next(_ids)
    ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=5))
        if message.get("id") == request_id:
            return message


def error_of(answer: dict[str, Any]) -> tuple[int, str, Any]:
    assert "result" not in answer, answer
    error = answer["error"]
    return error["code"], error["message"], error.get("data")


def http_get(sim: DeribitSimulator, target: str, headers: dict[str, str]) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# -- settings the simulator refuses --------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"port": True}, ValueError, "port must be a whole number from 0 to 65535, got True"),
        ({"max_connections": 1.5}, ValueError, "max_connections must be a whole number >= 1"),
        ({"clock": 5}, ValueError, "clock must be a callable returning seconds, got 5"),
        ({"token_ttl": "900"}, TypeError, "token_ttl must be a number of seconds, got '900'"),
        ({"token_ttl": -1}, ValueError, "token_ttl must be a finite number of seconds >= 0"),
        ({"credentials": {"bot": ""}}, ValueError, "credentials must map non-empty client ids"),
        ({"tokens": [""]}, ValueError, "a static token must be a non-empty string"),
        ({"request_log_size": 0}, ValueError, "the request log size must be a whole number >= 1"),
    ],
)
def test_settings_are_refused_saying_what_is_expected(
    settings: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as refused:
        DeribitSimulator(**settings)
    assert str(refused.value).startswith(message)


def test_issue_token_refuses_what_is_no_token(sim: DeribitSimulator) -> None:
    with pytest.raises(ValueError, match="client_id must be a non-empty string, got ''"):
        sim.issue_token("")
    with pytest.raises(ValueError, match="ttl must be a finite number of seconds >= 0, got -5"):
        sim.issue_token(ttl=-5)


def test_platform_state_must_be_an_object(sim: DeribitSimulator) -> None:
    with pytest.raises(TypeError, match="platform_state data must be a mapping, got str"):
        sim.publish_platform_state("maintenance")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("hang", {"seconds": "1"}, "fault 'hang': seconds must be a number of seconds >= 0"),
        ("hang", {"seconds": float("inf")}, "seconds must be a number of seconds >= 0"),
        ("rpc_error", {"code": 1, "message": 5}, "message must be a str error message, got 5"),
        ("rpc_error", {"code": 1, "message": "x", "data": [1]}, "data must be a mapping or None"),
        ("redirect", {"location": "/a\r\nX-Injected: 1"}, "location must be a non-empty URL"),
        ("redirect", {"location": ""}, "location must be a non-empty URL on one line"),
    ],
)
def test_fault_parameters_are_checked(
    sim: DeribitSimulator, kind: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as refused:
        sim.inject(kind, **params)
    assert message in str(refused.value)


# -- grants and Authorization headers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "param", "reason"),
    [
        ({**CREDENTIALS, "scope": 5}, "scope", "must be a string of space-separated scopes"),
        ({**CREDENTIALS, "scope": "session:"}, "scope", "session: needs a name, e.g. session:bot"),
        ({**CREDENTIALS, "client_id": ["sim-client"]}, "client_id", "must be a string"),
        (
            {
                "grant_type": "client_signature",
                "client_id": "sim-client",
                "timestamp": 1,
                "nonce": "n",
                "signature": "00",
                "data": 7,
            },
            "data",
            "must be a string",
        ),
    ],
)
def test_grants_with_params_of_the_wrong_shape_get_32602(
    ws: ClientConnection, params: dict[str, Any], param: str, reason: str
) -> None:
    code, message, data = error_of(call(ws, "public/auth", params))
    assert (code, message) == (-32602, "Invalid params")
    assert data == {"param": param, "reason": reason}


def test_signature_grant_for_an_unknown_client_is_13004(ws: ClientConnection) -> None:
    params = {
        "grant_type": "client_signature",
        "client_id": "nobody",
        "timestamp": now_ms(),
        "nonce": "n-1",
        "signature": "00",
    }
    assert error_of(call(ws, "public/auth", params)) == (13004, "invalid_credentials", None)


def test_access_token_param_must_be_a_string(ws: ClientConnection) -> None:
    answer = call(ws, "private/get_cancel_on_disconnect", {"access_token": 42})
    assert error_of(answer) == (
        -32602,
        "Invalid params",
        {"param": "access_token", "reason": "must be a string"},
    )


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (
            "deri-hmac-sha256 id=sim-client,ts=soon,sig=ab,nonce=n,junk",
            "malformed deri-hmac-sha256 header: ts must be whole milliseconds since the Unix epoch",
        ),
        (
            "Basic not*base64",
            "malformed Basic credentials: expected base64(client_id:client_secret)",
        ),
        (
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
            "malformed Basic credentials: expected base64(client_id:client_secret)",
        ),
    ],
)
def test_malformed_authorization_is_13004_and_the_log_says_what_is_wrong(
    sim: DeribitSimulator, authorization: str, reason: str
) -> None:
    status, body = http_get(
        sim,
        "/api/v2/private/get_cancel_on_disconnect?scope=account",
        {"Authorization": authorization},
    )
    assert status == 400
    assert body["error"] == {"code": 13004, "message": "invalid_credentials"}
    assert sim.requests[-1].explanation == reason


def test_public_method_with_a_bad_token_is_charged_to_the_address() -> None:
    clock = ManualClock()
    with DeribitSimulator(rate_limit=True, rate_limit_burst=1, clock=clock) as sim:
        bad = {"Authorization": "Bearer no-such-token"}
        status, body = http_get(sim, "/api/v2/public/test", bad)
        assert status == 200 and "version" in body["result"]  # public: the token is not judged
        status, body = http_get(sim, "/api/v2/public/test", {})
        assert (status, body["error"]["code"]) == (400, 10028)  # same address, same pool


def test_nonce_is_forgotten_once_its_window_has_passed() -> None:
    now = [1_000.0]
    registry = NonceRegistry(window=60, wall_clock=lambda: now[0])
    assert registry.claim("bot", "n-1", 1_000_000)
    assert not registry.claim("bot", "n-1", 1_000_000)
    assert registry.claim("other-bot", "n-1", 1_000_000)  # nonces are per client
    now[0] += 61  # the first timestamp is now outside the window: a replay fails on it anyway
    assert registry.claim("bot", "n-1", 1_061_000)


# -- WebSocket methods -------------------------------------------------------------------------


def test_logout_invalidates_an_issued_token(sim: DeribitSimulator, ws: ClientConnection) -> None:
    token = sim.issue_token()
    assert call(ws, "private/get_cancel_on_disconnect", {"access_token": token})["result"] == {
        "scope": "connection",
        "enabled": False,
    }
    ws.send(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 99,
                "method": "private/logout",
                "params": {"access_token": token, "invalidate_token": "true"},
            }
        )
    )
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)  # no answer: the server closes
    status, body = http_get(
        sim,
        "/api/v2/private/get_cancel_on_disconnect?scope=account",
        {"Authorization": f"Bearer {token}"},
    )
    assert (status, body["error"]["code"]) == (400, 13009)


@pytest.mark.parametrize(
    ("method", "params", "param", "reason"),
    [
        ("public/subscribe", {}, "channels", "missing"),
        (
            "private/logout",
            {"invalidate_token": "yes"},
            "invalidate_token",
            "must be true or false",
        ),
        (
            "public/hello",
            {"client_name": "bot", "client_version": 1},
            "client_version",
            "must be a string",
        ),
    ],
)
def test_websocket_methods_name_a_bad_param(
    ws: ClientConnection, method: str, params: dict[str, Any], param: str, reason: str
) -> None:
    if method == "private/logout":
        call(ws, "public/auth", CREDENTIALS)
    code, message, data = error_of(call(ws, method, params))
    assert (code, message, data) == (-32602, "Invalid params", {"param": param, "reason": reason})
    assert call(ws, "public/test")["result"]["version"]  # the connection stays open


def test_cancel_on_disconnect_events_can_be_cleared(sim: DeribitSimulator) -> None:
    with connect(sim.ws_url, proxy=None, open_timeout=5, ping_interval=None) as ws:
        call(ws, "public/auth", CREDENTIALS)
        assert call(ws, "private/enable_cancel_on_disconnect")["result"] == "ok"
    deadline = time.monotonic() + 5
    while not sim.cancel_on_disconnect_events:
        assert time.monotonic() < deadline, "closing fired no cancel-on-disconnect"
        time.sleep(0.005)
    sim.clear_cancel_on_disconnect_events()
    assert sim.cancel_on_disconnect_events == []


# -- WebSocket messages out of the ordinary ------------------------------------------------------


def test_json_nested_too_deep_is_11050_and_the_socket_stays_open(
    sim: DeribitSimulator, ws: ClientConnection
) -> None:
    ws.send("[" * 30_000)
    answer = json.loads(ws.recv(timeout=5))
    assert answer["error"] == {"code": 11050, "message": "bad_request", "data": "invalid json"}
    assert "id" not in answer
    assert call(ws, "public/test")["result"]["version"]


def test_fragmented_message_over_32_kb_is_refused_and_the_socket_stays_open(
    ws: ClientConnection,
) -> None:
    big = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "public/test", "p": "x" * 40_000})
    ws.send([big[:20_000], big[20_000:]])
    answer = json.loads(ws.recv(timeout=5))
    assert answer["error"]["code"] == -32600
    assert call(ws, "public/test")["result"]["version"]


def test_silence_without_heartbeats_answers_afterwards(
    sim: DeribitSimulator, ws: ClientConnection
) -> None:
    sim.inject("ws_silence", seconds=0.1)
    started = time.monotonic()
    assert call(ws, "public/test")["result"]["version"]
    assert time.monotonic() - started >= 0.1


def test_stop_during_a_silence_is_prompt() -> None:
    sim = DeribitSimulator().start()
    try:
        with connect(
            sim.ws_url, proxy=None, open_timeout=5, close_timeout=1, ping_interval=None
        ) as ws:
            sim.inject("ws_silence", seconds=30)
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/test"}))
            deadline = time.monotonic() + 5
            while not sim.requests:
                assert time.monotonic() < deadline, "the request never arrived"
                time.sleep(0.005)
            started = time.monotonic()
            sim.stop()
            assert time.monotonic() - started < 5
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
    finally:
        sim.stop()
