"""The Deribit simulator itself, driven over real loopback sockets with the standard library only.

The client under development is deliberately not used here: these tests pin down what the
simulator does, so that the client's tests can rely on it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from openapi_client.signing import SIGNATURE_WINDOW_SECONDS, now_ms, request_data, sign
from openapi_client.simulator import DeribitSimulator, Fault, RecordedRequest
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(15)

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN = "sim-token"
CLIENT_ID = "sim-client"
SECRET = "sim-secret"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
GET_COD = "/api/v2/private/get_cancel_on_disconnect?scope=account"
ACCOUNT = {"scope": "account"}
#: Seconds within which something prompt must have happened: a bound that only says "it did not
#: hang" (far above the milliseconds it takes, far below a hang fault's 30 s), so that a busy
#: machine cannot fail it.
PROMPT = 5.0


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator() as simulator:
        yield simulator


@pytest.fixture
def legacy() -> Iterator[DeribitSimulator]:
    """A simulator answering the heartbeat and connection-scoped methods over HTTP."""
    with DeribitSimulator(legacy_http=True) as simulator:
        yield simulator


# -- helpers ---------------------------------------------------------------------------------


def target_of(method: str, params: Mapping[str, Any] | None = None) -> str:
    query = f"?{urlencode(params)}" if params else ""
    return f"/api/v2/{method}{query}"


def fetch(
    sim: DeribitSimulator,
    target: str,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    timeout: float = 5.0,
    conn: http.client.HTTPConnection | None = None,
    body: bytes | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request; a fresh connection unless ``conn`` is given."""
    connection = conn or http.client.HTTPConnection(sim.host, sim.port, timeout=timeout)
    try:
        connection.request(method, target, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response, response.read()
    finally:
        if conn is None:
            connection.close()


def rpc(
    sim: DeribitSimulator,
    method: str,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    """Call an API method; return the HTTP status and the decoded envelope."""
    response, body = fetch(sim, target_of(method, params), headers, **kwargs)
    assert response.getheader("Content-Type") == "application/json"
    decoded: dict[str, Any] = json.loads(body)
    return response.status, decoded


def assert_error(
    status: int,
    body: dict[str, Any],
    code: int,
    message: str,
    *,
    http_status: int = 400,
    param: str | None = None,
    reason: str | None = None,
    explained: tuple[DeribitSimulator, str] | None = None,
) -> None:
    """Check an error answer: Deribit's shape for each code (13009 carries the reason token
    ``invalid_token``; 13004 and 13021 no ``data``), ``data.param`` and ``data.reason`` when
    given, and, with ``explained=(sim, text)``, that the simulator's explanation of the last
    recorded request mentions ``text``."""
    assert status == http_status, body
    assert body["jsonrpc"] == "2.0"
    assert "result" not in body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"] == message
    data = body["error"].get("data") or {}
    if code == 13009:
        assert data == {"reason": "invalid_token"}, body
    elif code in (13004, 13021):
        assert "data" not in body["error"], body
    if param is not None:
        assert data["param"] == param
    if reason is not None:
        assert data["reason"] == reason, data
    if explained is not None:
        sim, text = explained
        last = sim.requests[-1]
        assert last.error_code == code, last
        assert last.explanation is not None and text in last.explanation, last.explanation


def authenticate(
    sim: DeribitSimulator, conn: http.client.HTTPConnection | None = None, **params: Any
) -> dict[str, Any]:
    status, body = rpc(sim, "public/auth", params, conn=conn)
    assert status == 200, body
    result: dict[str, Any] = body["result"]
    return result


def hmac_header(
    target: str,
    *,
    ts: int | None = None,
    nonce: str = "n-1",
    secret: str = SECRET,
    client_id: str = CLIENT_ID,
) -> dict[str, str]:
    timestamp = now_ms() if ts is None else ts
    signature = sign(secret, timestamp, nonce, request_data("GET", target, ""))
    value = f"deri-hmac-sha256 id={client_id},ts={timestamp},sig={signature},nonce={nonce}"
    return {"Authorization": value}


def raw_exchange(sim: DeribitSimulator, request: bytes, timeout: float = 2.0) -> bytes:
    """Send raw bytes, read until the server closes; a reset propagates as an exception."""
    with socket.create_connection((sim.host, sim.port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def get_request(target: str, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode()


@pytest.fixture
def conn(sim: DeribitSimulator) -> Iterator[http.client.HTTPConnection]:
    """One keep-alive connection: where a connection-scoped token obtained on it is valid."""
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    yield connection
    connection.close()


# -- envelope and the four methods -----------------------------------------------------------


def test_success_envelope_has_deribit_shape(sim: DeribitSimulator) -> None:
    response, raw = fetch(sim, "/api/v2/public/test")
    body = json.loads(raw)
    assert response.status == 200
    assert response.getheader("Content-Length") == str(len(raw))
    assert set(body) == {"jsonrpc", "result", "testnet", "usIn", "usOut", "usDiff"}
    assert body["jsonrpc"] == "2.0"
    assert body["testnet"] is True
    assert body["result"] == {"version": "1.2.26"}
    assert isinstance(body["usIn"], int) and isinstance(body["usOut"], int)
    assert body["usDiff"] == body["usOut"] - body["usIn"] >= 0
    assert abs(body["usIn"] / 1e6 - time.time()) < 5


def test_url_is_the_api_root(sim: DeribitSimulator) -> None:
    assert sim.url == f"http://127.0.0.1:{sim.port}/api/v2"
    assert sim.host == "127.0.0.1"
    assert urlsplit(sim.url).port == sim.port


@pytest.mark.parametrize(("raw", "stored"), [("30", 30.0), ("30.5", 30.5), ("10", 10.0)])
def test_set_heartbeat_stores_interval(legacy: DeribitSimulator, raw: str, stored: float) -> None:
    status, body = rpc(legacy, "public/set_heartbeat", {"interval": raw})
    assert (status, body["result"]) == (200, "ok")
    assert legacy.heartbeat_interval == stored


@pytest.mark.parametrize("raw", ["9.99", "5", "0", "-30", "abc", "", "nan", "inf", "-inf", "1e999"])
def test_set_heartbeat_refuses_bad_interval(legacy: DeribitSimulator, raw: str) -> None:
    status, body = rpc(legacy, "public/set_heartbeat", {"interval": raw})
    assert_error(
        status,
        body,
        -32602,
        "Invalid params",
        param="interval",
        reason="must be a number not less than 10",
    )
    assert legacy.heartbeat_interval is None


def test_set_heartbeat_without_interval_says_missing(legacy: DeribitSimulator) -> None:
    status, body = rpc(legacy, "public/set_heartbeat")
    assert_error(status, body, -32602, "Invalid params", param="interval")
    assert body["error"]["data"]["reason"] == "missing"


def test_disable_heartbeat_clears_interval(legacy: DeribitSimulator) -> None:
    rpc(legacy, "public/set_heartbeat", {"interval": 15})
    assert legacy.heartbeat_interval == 15.0
    status, body = rpc(legacy, "public/disable_heartbeat")
    assert (status, body["result"]) == (200, "ok")
    assert legacy.heartbeat_interval is None


def test_private_method_needs_credentials(sim: DeribitSimulator) -> None:
    status, body = rpc(sim, "private/enable_cancel_on_disconnect", ACCOUNT)
    assert_error(status, body, 13009, "unauthorized", explained=(sim, "missing credentials"))
    status, body = rpc(
        sim,
        "private/enable_cancel_on_disconnect",
        ACCOUNT,
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert_error(status, body, 13009, "unauthorized", explained=(sim, "unknown access token"))
    status, body = rpc(
        sim, "private/enable_cancel_on_disconnect", ACCOUNT, headers={"Authorization": "Token abc"}
    )
    assert_error(status, body, 13009, "unauthorized", explained=(sim, "unsupported"))
    assert sim.cancel_on_disconnect == {"connection": False, "account": False}
    status, body = rpc(sim, "private/enable_cancel_on_disconnect", ACCOUNT, headers=BEARER)
    assert (status, body["result"]) == (200, "ok")
    assert sim.cancel_on_disconnect == {"connection": False, "account": True}


def test_public_methods_ignore_credentials(sim: DeribitSimulator) -> None:
    status, body = rpc(sim, "public/test", headers={"Authorization": "Bearer nonsense"})
    assert status == 200 and body["result"] == {"version": "1.2.26"}


def test_cancel_on_disconnect_is_tracked_per_scope(legacy: DeribitSimulator) -> None:
    assert legacy.cancel_on_disconnect == {"connection": False, "account": False}
    rpc(legacy, "private/enable_cancel_on_disconnect", headers=BEARER)
    assert legacy.cancel_on_disconnect == {"connection": True, "account": False}
    rpc(legacy, "private/enable_cancel_on_disconnect", {"scope": "account"}, BEARER)
    assert legacy.cancel_on_disconnect == {"connection": True, "account": True}
    rpc(legacy, "private/disable_cancel_on_disconnect", {"scope": "connection"}, BEARER)
    assert legacy.cancel_on_disconnect == {"connection": False, "account": True}

    status, body = rpc(legacy, "private/get_cancel_on_disconnect", {"scope": "account"}, BEARER)
    assert (status, body["result"]) == (200, {"scope": "account", "enabled": True})
    status, body = rpc(legacy, "private/get_cancel_on_disconnect", headers=BEARER)
    assert body["result"] == {"scope": "connection", "enabled": False}

    rpc(legacy, "private/disable_cancel_on_disconnect", {"scope": "account"}, BEARER)
    assert legacy.cancel_on_disconnect == {"connection": False, "account": False}


@pytest.mark.parametrize(
    "method",
    ["enable_cancel_on_disconnect", "disable_cancel_on_disconnect", "get_cancel_on_disconnect"],
)
def test_cancel_on_disconnect_refuses_unknown_scope(sim: DeribitSimulator, method: str) -> None:
    status, body = rpc(sim, f"private/{method}", {"scope": "session"}, BEARER)
    assert_error(status, body, -32602, "Invalid params", param="scope")


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("public/set_heartbeat", {"interval": 30}),
        ("public/set_heartbeat", {"interval": 5}),  # refused before the interval is checked
        ("public/disable_heartbeat", {}),
        ("private/enable_cancel_on_disconnect", {}),
        ("private/enable_cancel_on_disconnect", {"scope": "connection"}),
        ("private/disable_cancel_on_disconnect", {}),
        ("private/get_cancel_on_disconnect", {"scope": "connection"}),
        ("public/hello", {"client_name": "bot", "client_version": "1"}),
        ("public/subscribe", {"channels": ["platform_state"]}),
        ("private/logout", {}),
    ],
)
def test_websocket_only_methods_answer_10030_over_http(
    sim: DeribitSimulator, method: str, params: dict[str, Any]
) -> None:
    status, body = rpc(sim, method, params, BEARER)
    assert_error(status, body, 10030, "must_be_websocket_request")
    assert "data" not in body["error"]  # as observed on the wire
    assert sim.heartbeat_interval is None
    assert sim.cancel_on_disconnect == {"connection": False, "account": False}


def test_account_scope_works_over_http(sim: DeribitSimulator) -> None:
    status, body = rpc(sim, "private/enable_cancel_on_disconnect", ACCOUNT, BEARER)
    assert (status, body["result"]) == (200, "ok")
    status, body = rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, BEARER)
    assert body["result"] == {"scope": "account", "enabled": True}
    assert sim.cancel_on_disconnect == {"connection": False, "account": True}


def test_legacy_http_answers_the_session_methods(legacy: DeribitSimulator) -> None:
    for params in ({}, {"scope": "connection"}):
        status, body = rpc(legacy, "private/enable_cancel_on_disconnect", params, BEARER)
        assert (status, body["result"]) == (200, "ok")
    assert rpc(legacy, "public/set_heartbeat", {"interval": 10})[0] == 200
    assert legacy.heartbeat_interval == 10.0
    # WebSocket-only in every description: still refused.
    status, body = rpc(legacy, "public/hello", {"client_name": "x", "client_version": "1"})
    assert_error(status, body, 10030, "must_be_websocket_request")


def test_reset_state(legacy: DeribitSimulator) -> None:
    rpc(legacy, "public/set_heartbeat", {"interval": 10})
    rpc(legacy, "private/enable_cancel_on_disconnect", {"scope": "account"}, BEARER)
    legacy.reset_state()
    assert legacy.heartbeat_interval is None
    assert legacy.cancel_on_disconnect == {"connection": False, "account": False}


def test_public_test_can_answer_an_exception(sim: DeribitSimulator) -> None:
    status, body = rpc(sim, "public/test", {"expected_result": "exception"})
    assert_error(status, body, 11094, "internal_server_error")
    status, body = rpc(sim, "public/test", {"expected_result": "other"})
    assert_error(status, body, -32602, "Invalid params", param="expected_result")


def test_unknown_method_paths_and_verbs(sim: DeribitSimulator) -> None:
    status, body = rpc(sim, "public/nope")
    assert_error(status, body, -32601, "Method not found")
    response, raw = fetch(sim, "/elsewhere")
    assert response.status == 404
    assert json.loads(raw)["error"]["code"] == -32601
    response, raw = fetch(sim, "/api/v2/public/test", method="PUT")
    assert response.status == 405
    assert response.getheader("Allow") == "GET, POST"
    assert json.loads(raw)["error"]["code"] == 11050
    response, raw = fetch(sim, "/api/v2/public/test", method="HEAD")
    assert response.status == 405 and raw == b""


def test_malformed_request_gets_400_and_close(sim: DeribitSimulator) -> None:
    answer = raw_exchange(sim, b"NONSENSE\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in answer


# -- public/auth -----------------------------------------------------------------------------


def test_client_credentials_grant(sim: DeribitSimulator, conn: http.client.HTTPConnection) -> None:
    result = authenticate(
        sim, grant_type="client_credentials", client_id=CLIENT_ID, client_secret=SECRET, conn=conn
    )
    # No scope asked over HTTP: a new session, as Deribit creates. Every field of the answer
    # and the session model: test_simulator_fidelity.
    assert result["expires_in"] == 899
    assert result["token_type"] == "bearer"
    assert result["enabled_features"] == []
    assert result["scope"] == (
        "account:read_write block_trade:read_write mainaccount session:rest-1 trade:read_write "
        "wallet:read_write"
    )
    headers = {"Authorization": f"Bearer {result['access_token']}"}
    status, _ = rpc(sim, "private/enable_cancel_on_disconnect", ACCOUNT, headers, conn=conn)
    assert status == 200


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": CLIENT_ID, "client_secret": "not-the-secret"},
        {"client_id": "someone-else", "client_secret": SECRET},
    ],
)
def test_client_credentials_refuses_wrong_secret(
    sim: DeribitSimulator, params: dict[str, str]
) -> None:
    status, body = rpc(sim, "public/auth", {"grant_type": "client_credentials", **params})
    assert_error(status, body, 13004, "invalid_credentials")
    assert params["client_secret"] not in json.dumps(body)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "grant_type"),
        ({"grant_type": "password"}, "grant_type"),
        ({"grant_type": "client_credentials", "client_id": CLIENT_ID}, "client_secret"),
        (
            {
                "grant_type": "client_signature",
                "client_id": CLIENT_ID,
                "nonce": "x",
                "signature": "00",
            },
            "timestamp",
        ),
        (
            {
                "grant_type": "client_signature",
                "client_id": CLIENT_ID,
                "nonce": "x",
                "signature": "00",
                "timestamp": "soon",
            },
            "timestamp",
        ),
        ({"grant_type": "refresh_token"}, "refresh_token"),
    ],
)
def test_auth_refuses_missing_params(
    sim: DeribitSimulator, params: dict[str, str], param: str
) -> None:
    status, body = rpc(sim, "public/auth", params)
    assert_error(status, body, -32602, "Invalid params", param=param)


def test_access_tokens_expire() -> None:
    clock = ManualClock()
    with DeribitSimulator(token_ttl=0.2, clock=clock) as sim:
        result = authenticate(
            sim,
            grant_type="client_credentials",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            scope="session:expiry",
        )
        assert result["expires_in"] == 1  # whole seconds, rounded up
        headers = {"Authorization": f"Bearer {result['access_token']}"}
        assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=headers)[0] == 200
        clock.advance(0.19)
        assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=headers)[0] == 200
        clock.advance(0.01)
        status, body = rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=headers)
        assert_error(status, body, 13009, "unauthorized", explained=(sim, "expired"))
        # The static token never expires.
        assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=BEARER)[0] == 200


def test_refresh_tokens_rotate(sim: DeribitSimulator, conn: http.client.HTTPConnection) -> None:
    first = authenticate(
        sim, conn, grant_type="client_credentials", client_id=CLIENT_ID, client_secret=SECRET
    )
    second = authenticate(
        sim, conn, grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"]
    assert "session:rest-1" in first["scope"].split()
    headers = {"Authorization": f"Bearer {second['access_token']}"}
    assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers, conn=conn)[0] == 200

    status, body = rpc(
        sim,
        "public/auth",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        conn=conn,
    )
    assert_error(status, body, 13009, "unauthorized", explained=(sim, "already used"))
    authenticate(sim, conn, grant_type="refresh_token", refresh_token=second["refresh_token"])


def signature_params(
    timestamp: int, nonce: str, data: str = "", secret: str = SECRET
) -> dict[str, Any]:
    params = {
        "grant_type": "client_signature",
        "client_id": CLIENT_ID,
        "timestamp": timestamp,
        "nonce": nonce,
        "signature": sign(secret, timestamp, nonce, data),
    }
    if data:
        params["data"] = data
    return params


def test_client_signature_grant(sim: DeribitSimulator) -> None:
    result = authenticate(sim, **signature_params(now_ms(), "nonce-a"))
    assert result["token_type"] == "bearer"
    authenticate(sim, **signature_params(now_ms(), "nonce-b", data="some data"))


def test_client_signature_refuses_wrong_signature(sim: DeribitSimulator) -> None:
    status, body = rpc(sim, "public/auth", signature_params(now_ms(), "n", secret="wrong"))
    assert_error(status, body, 13004, "invalid_credentials")
    params = signature_params(now_ms(), "n2", data="signed")
    params["data"] = "tampered"
    status, body = rpc(sim, "public/auth", params)
    assert_error(status, body, 13004, "invalid_credentials")


def test_client_signature_refuses_reused_nonce(sim: DeribitSimulator) -> None:
    authenticate(sim, **signature_params(now_ms(), "once"))
    status, body = rpc(sim, "public/auth", signature_params(now_ms(), "once"))
    assert_error(status, body, 13004, "invalid_credentials", explained=(sim, "nonce"))


@pytest.mark.parametrize("skew_s", [-(SIGNATURE_WINDOW_SECONDS + 5), SIGNATURE_WINDOW_SECONDS + 5])
def test_client_signature_refuses_timestamp_outside_window(
    sim: DeribitSimulator, skew_s: int
) -> None:
    status, body = rpc(sim, "public/auth", signature_params(now_ms() + skew_s * 1000, "late"))
    assert_error(status, body, 13004, "invalid_credentials", explained=(sim, "clock"))


# -- per-request credentials -----------------------------------------------------------------


def test_deri_hmac_sha256_request_signature(sim: DeribitSimulator) -> None:
    target = target_of("private/enable_cancel_on_disconnect", {"scope": "account"})
    response, raw = fetch(sim, target, hmac_header(target, nonce="h-1"))
    assert response.status == 200, raw
    assert sim.cancel_on_disconnect["account"] is True
    bare = target_of("private/get_cancel_on_disconnect", ACCOUNT)
    assert fetch(sim, bare, hmac_header(bare, nonce="h-2"))[0].status == 200


def test_deri_hmac_sha256_refuses_replayed_nonce(sim: DeribitSimulator) -> None:
    target = target_of("private/get_cancel_on_disconnect", ACCOUNT)
    headers = hmac_header(target, nonce="replayed")
    assert fetch(sim, target, headers)[0].status == 200
    status, body = rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=headers)
    assert_error(status, body, 13004, "invalid_credentials", explained=(sim, "nonce"))


def test_deri_hmac_sha256_refuses_stale_timestamp(sim: DeribitSimulator) -> None:
    target = target_of("private/get_cancel_on_disconnect")
    stale = now_ms() - (SIGNATURE_WINDOW_SECONDS + 1) * 1000
    status, body = rpc(
        sim,
        "private/get_cancel_on_disconnect",
        headers=hmac_header(target, ts=stale, nonce="stale"),
    )
    assert_error(status, body, 13004, "invalid_credentials", explained=(sim, "timestamp"))


@pytest.mark.parametrize(
    ("make_headers", "reason"),
    [
        (lambda: hmac_header(GET_COD, secret="not-the-secret", nonce="b1"), "invalid signature"),
        (lambda: hmac_header("/api/v2/private/other", nonce="b2"), "invalid signature"),
        (lambda: hmac_header(GET_COD, client_id="nobody", nonce="b3"), "no API key"),
        (lambda: {"Authorization": "deri-hmac-sha256 id=sim-client,ts=1"}, "malformed"),
    ],
)
def test_deri_hmac_sha256_refuses_bad_signature(
    sim: DeribitSimulator, make_headers: Callable[[], dict[str, str]], reason: str
) -> None:
    status, body = rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=make_headers())
    assert_error(status, body, 13004, "invalid_credentials", explained=(sim, reason))


def test_basic_authorization(sim: DeribitSimulator) -> None:
    good = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    bad = base64.b64encode(f"{CLIENT_ID}:nope".encode()).decode()
    good_header = {"Authorization": f"Basic {good}"}
    assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, good_header)[0] == 200
    bad_header = {"Authorization": f"Basic {bad}"}
    status, body = rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, bad_header)
    assert_error(status, body, 13004, "invalid_credentials", explained=(sim, "wrong client secret"))


def test_issue_add_and_revoke_tokens(sim: DeribitSimulator) -> None:
    issued = sim.issue_token()
    sim.add_token("extra-token")
    refresh = authenticate(
        sim,
        grant_type="client_credentials",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        scope="session:revoke",
    )["refresh_token"]
    for token in (issued, "extra-token", TOKEN):
        headers = {"Authorization": f"Bearer {token}"}
        assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=headers)[0] == 200

    sim.revoke_tokens()
    status, body = rpc(
        sim, "private/get_cancel_on_disconnect", ACCOUNT, {"Authorization": f"Bearer {issued}"}
    )
    assert_error(status, body, 13009, "unauthorized")
    assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=BEARER)[0] == 200
    refresh = authenticate(sim, grant_type="refresh_token", refresh_token=refresh)["refresh_token"]

    sim.revoke_tokens(refresh_tokens=True)
    status, body = rpc(
        sim, "public/auth", {"grant_type": "refresh_token", "refresh_token": refresh}
    )
    assert_error(status, body, 13009, "unauthorized")


def test_issue_token_with_short_ttl() -> None:
    clock = ManualClock()
    with DeribitSimulator(clock=clock) as sim:
        headers = {"Authorization": f"Bearer {sim.issue_token(ttl=0.05)}"}
        clock.advance(0.04)
        assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers)[0] == 200
        clock.advance(0.01)
        status, body = rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers)
        assert_error(status, body, 13009, "unauthorized", explained=(sim, "expired"))


# -- faults ----------------------------------------------------------------------------------


def test_fault_reset_sends_rst(sim: DeribitSimulator) -> None:
    sim.inject(Fault.RESET)
    with pytest.raises(ConnectionResetError):
        raw_exchange(sim, get_request("/api/v2/public/test"))
    sim.inject("reset")
    with pytest.raises(ConnectionError):  # http.client sees the reset too
        fetch(sim, "/api/v2/public/test")
    assert fetch(sim, "/api/v2/public/test")[0].status == 200


def test_fault_reset_mid_body(legacy: DeribitSimulator) -> None:
    sim = legacy
    sim.inject("reset_mid_body", path="/public/set_heartbeat")
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=2)
    try:
        with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
            connection.request("GET", target_of("public/set_heartbeat", {"interval": 20}))
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()
    # The request was handled; only the answer was lost.
    assert sim.heartbeat_interval == 20.0


@pytest.mark.timing
def test_fault_hang_is_cut_by_client_timeout(sim: DeribitSimulator) -> None:
    sim.inject("hang")
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        fetch(sim, "/api/v2/public/test", timeout=0.3)
    assert time.monotonic() - started < PROMPT


@pytest.mark.timing
def test_hung_request_frees_its_slot_when_the_client_gives_up() -> None:
    with DeribitSimulator(max_connections=1) as sim:
        sim.inject("hang", seconds=30)
        with pytest.raises(socket.timeout):
            fetch(sim, "/api/v2/public/test", timeout=0.2)
        deadline = time.monotonic() + PROMPT
        while fetch(sim, "/api/v2/public/test")[0].status != 200:
            assert time.monotonic() < deadline, "the hung request kept its connection slot"
            time.sleep(0.01)


@pytest.mark.timing
def test_fault_hang_ends_with_a_close(sim: DeribitSimulator) -> None:
    sim.inject("hang", seconds=0.1)
    assert raw_exchange(sim, get_request("/api/v2/public/test")) == b""


@pytest.mark.timing
def test_stop_is_prompt_while_a_request_hangs() -> None:
    sim = DeribitSimulator().start()
    try:
        sim.inject("hang", seconds=30)
        sock = socket.create_connection((sim.host, sim.port), timeout=5)
        sock.sendall(get_request("/api/v2/public/test"))
        deadline = time.monotonic() + PROMPT
        while not sim.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.requests, "the hanging request never arrived"
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < PROMPT
        assert sock.recv(100) == b""
        sock.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((sim.host, sim.port), timeout=1).close()
    finally:
        sim.stop()


def test_stop_closes_idle_keep_alive_connections() -> None:
    sim = DeribitSimulator().start()
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=2)
    try:
        assert fetch(sim, "/api/v2/public/test", conn=connection)[0].status == 200
        sim.stop()
        sim.stop()  # idempotent
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            connection.request("GET", "/api/v2/public/test")
            connection.getresponse().read()
    finally:
        connection.close()
        sim.stop()


def test_fault_html_503(sim: DeribitSimulator) -> None:
    sim.inject(Fault.HTML_503)
    response, raw = fetch(sim, "/api/v2/public/test")
    assert response.status == 503
    assert response.getheader("Content-Type", "").startswith("text/html")
    assert raw.startswith(b"<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("params", "header"),
    [
        ({}, "1"),
        ({"retry_after": 5}, "5"),
        ({"retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}, "Wed, 21 Oct 2015 07:28:00 GMT"),
        ({"retry_after": None}, None),
    ],
)
def test_fault_429(sim: DeribitSimulator, params: dict[str, Any], header: str | None) -> None:
    sim.inject("429", **params)
    response, raw = fetch(sim, "/api/v2/public/test")
    assert response.status == 429
    assert response.getheader("Retry-After") == header
    assert json.loads(raw)["error"] == {"code": 10028, "message": "too_many_requests"}


def test_fault_rpc_error(sim: DeribitSimulator) -> None:
    sim.inject("rpc_error", code=10041, message="settlement_in_progress", data={"reason": "x"})
    status, body = rpc(sim, "public/test")
    assert_error(status, body, 10041, "settlement_in_progress", reason="x")
    sim.inject(Fault.RPC_ERROR, code=13028, message="temporarily_unavailable", status=503)
    status, body = rpc(sim, "public/test")
    assert_error(status, body, 13028, "temporarily_unavailable", http_status=503)
    assert "data" not in body["error"]


def test_fault_non_json(sim: DeribitSimulator) -> None:
    sim.inject("non_json")
    response, raw = fetch(sim, "/api/v2/public/test")
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/plain")
    with pytest.raises(ValueError):
        json.loads(raw)


def test_fault_truncated(sim: DeribitSimulator) -> None:
    sim.inject("truncated")
    with pytest.raises(http.client.IncompleteRead):
        fetch(sim, "/api/v2/public/test")


def test_fault_redirect(sim: DeribitSimulator) -> None:
    sim.inject("redirect", location="https://example.invalid/api/v2/public/test")
    response, _ = fetch(sim, "/api/v2/public/test")
    assert response.status == 302
    assert response.getheader("Location") == "https://example.invalid/api/v2/public/test"
    sim.inject("redirect", location="/api/v2/public/test", status=307)
    assert fetch(sim, "/api/v2/public/test")[0].status == 307


@pytest.mark.timing
def test_fault_delay_then_answers(sim: DeribitSimulator) -> None:
    sim.inject("delay", seconds=0.3)
    started = time.monotonic()
    status, body = rpc(sim, "public/test")
    assert time.monotonic() - started >= 0.3
    assert status == 200 and body["result"] == {"version": "1.2.26"}
    sim.inject("delay", seconds=2)
    with pytest.raises(socket.timeout):
        fetch(sim, "/api/v2/public/test", timeout=0.2)


def test_faults_follow_count_and_path(legacy: DeribitSimulator) -> None:
    legacy.inject("html_503", count=2, path="/public/test")
    legacy.inject("non_json", path="/api/v2/public/disable_heartbeat")
    assert rpc(legacy, "public/set_heartbeat", {"interval": 10})[0] == 200
    assert fetch(legacy, "/api/v2/public/test")[0].status == 503
    assert fetch(legacy, "/api/v2/public/test")[0].status == 503
    assert fetch(legacy, "/api/v2/public/test")[0].status == 200
    assert fetch(legacy, "/api/v2/public/disable_heartbeat")[1].startswith(b"OK")
    assert len(legacy.requests) == 5  # faulted requests are recorded too

    legacy.inject("html_503", count=3)
    legacy.clear_faults()
    assert fetch(legacy, "/api/v2/public/test")[0].status == 200


@pytest.mark.parametrize(
    ("args", "params", "message"),
    [
        (("explode",), {}, "unknown fault kind"),
        (("reset", 0), {}, "count"),
        (("hang",), {"second": 1}, "does not take second"),
        (("hang",), {"seconds": -1}, "seconds must be"),
        (("delay",), {}, "needs seconds"),
        (("rpc_error",), {"message": "x"}, "needs code"),
        (("rpc_error",), {"code": "10028", "message": "x"}, "code must be"),
        (("rpc_error",), {"code": 1, "message": "x", "status": 99}, "status must be"),
        (("redirect",), {}, "needs location"),
        (("redirect",), {"location": "/x", "status": 200}, "status must be"),
        (("429",), {"retry_after": 1.5}, "retry_after must be"),
        (("reset",), {"path": "public/test"}, "path must be"),
    ],
)
def test_inject_validates_its_arguments(
    sim: DeribitSimulator, args: tuple[Any, ...], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sim.inject(*args, **params)
    assert fetch(sim, "/api/v2/public/test")[0].status == 200


def test_simulator_writes_nothing_to_stderr(
    sim: DeribitSimulator, capfd: pytest.CaptureFixture[str]
) -> None:
    sim.inject("reset")
    with pytest.raises(ConnectionError):
        fetch(sim, "/api/v2/public/test")
    raw_exchange(sim, b"BAD\r\n\r\n")
    rpc(
        sim,
        "public/auth",
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET},
    )
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


# -- limits ----------------------------------------------------------------------------------


def test_rate_limit_follows_the_credit_model() -> None:
    clock = ManualClock()
    with DeribitSimulator(rate_limit=True, clock=clock) as sim:
        connection = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
        answers = []
        for _ in range(130):
            response, raw = fetch(sim, "/api/v2/public/test", conn=connection)
            answers.append((response.status, json.loads(raw)))
            if response.status != 200:
                break
        assert len(answers) == 101  # a full pool pays for a burst of 100
        status, body = answers[-1]
        assert_error(status, body, 10028, "too_many_requests")
        # 500 credits a request, 10,000 a second: 50 ms pays for exactly one more.
        clock.advance(0.049)
        assert fetch(sim, "/api/v2/public/test", conn=connection)[0].status == 400
        clock.advance(0.001)
        assert fetch(sim, "/api/v2/public/test", conn=connection)[0].status == 200
        assert fetch(sim, "/api/v2/public/test", conn=connection)[0].status == 400
        connection.close()
        # Another sub-account has its own pool.
        assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=BEARER)[0] == 200


def test_rate_limit_pools_are_per_account_and_refill() -> None:
    clock = ManualClock()
    with DeribitSimulator(
        rate_limit=True, rate_limit_burst=2, rate_limit_per_second=10, clock=clock
    ) as sim:
        assert [
            rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, BEARER)[0] for _ in range(3)
        ] == [200, 200, 400]
        other = {"Authorization": f"Bearer {sim.issue_token('another-client')}"}
        assert rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, headers=other)[0] == 200
        clock.advance(0.1)  # one request's worth at 10 a second
        assert [
            rpc(sim, "private/get_cancel_on_disconnect", ACCOUNT, BEARER)[0] for _ in range(2)
        ] == [200, 400]


@pytest.mark.timing
def test_connection_limit_answers_429() -> None:
    with DeribitSimulator(max_connections=2) as sim:
        first = http.client.HTTPConnection(sim.host, sim.port, timeout=2)
        second = http.client.HTTPConnection(sim.host, sim.port, timeout=2)
        try:
            assert fetch(sim, "/api/v2/public/test", conn=first)[0].status == 200
            assert fetch(sim, "/api/v2/public/test", conn=second)[0].status == 200
            response, raw = fetch(sim, "/api/v2/public/test")
            assert response.status == 429
            assert response.getheader("Connection") == "close"
            assert json.loads(raw)["error"]["code"] == 10028
            # Kept-alive connections still work; a freed slot is given to the next connection.
            assert fetch(sim, "/api/v2/public/test", conn=first)[0].status == 200
            second.close()
            deadline = time.monotonic() + PROMPT
            while fetch(sim, "/api/v2/public/test")[0].status != 200:
                assert time.monotonic() < deadline, "the freed slot was never reused"
                time.sleep(0.01)
        finally:
            first.close()
            second.close()


# -- recording and connections ---------------------------------------------------------------


def test_requests_are_recorded(sim: DeribitSimulator) -> None:
    before = time.time()
    target = target_of("private/enable_cancel_on_disconnect", {"scope": "account"})
    fetch(sim, target, {"Authorization": f"Bearer {TOKEN}", "X-Custom": "yes"})
    rpc(
        sim,
        "public/auth",
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET},
    )
    recorded = sim.requests
    assert len(recorded) == 2
    request = recorded[0]
    assert isinstance(request, RecordedRequest)
    assert request.method == "GET"
    assert request.target == target
    assert request.path == "/api/v2/private/enable_cancel_on_disconnect"
    assert request.query == {"scope": "account"}
    assert request.headers["X-Custom"] == "yes"
    assert request.header("authorization") == f"Bearer {TOKEN}"
    assert request.header("x-missing") is None
    assert request.client_address[0] == "127.0.0.1"
    assert before <= request.time <= time.time()
    assert TOKEN not in repr(request) and SECRET not in repr(recorded[1])
    assert sim.auth_requests == 1

    sim.clear_requests()
    assert sim.requests == [] and sim.auth_requests == 0


def test_request_log_is_bounded() -> None:
    with DeribitSimulator(request_log_size=3) as sim:
        connection = http.client.HTTPConnection(sim.host, sim.port, timeout=2)
        for interval in range(10, 15):
            fetch(sim, target_of("public/set_heartbeat", {"interval": interval}), conn=connection)
        connection.close()
        assert [r.query["interval"] for r in sim.requests] == ["12", "13", "14"]


def test_keep_alive_serves_several_requests_on_one_connection(sim: DeribitSimulator) -> None:
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=2)
    try:
        for _ in range(2):
            response, _ = fetch(sim, "/api/v2/public/test", conn=connection)
            assert response.status == 200 and not response.will_close
    finally:
        connection.close()
    first, second = sim.requests
    assert first.client_address == second.client_address


def test_lifecycle_errors() -> None:
    sim = DeribitSimulator()
    with pytest.raises(RuntimeError):
        _ = sim.url
    sim.stop()  # before start: nothing to do
    with pytest.raises(RuntimeError):
        sim.start()
    with DeribitSimulator() as running:
        with pytest.raises(RuntimeError):
            running.start()
        with running:  # entering a started simulator does not start it again
            assert fetch(running, "/api/v2/public/test")[0].status == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com", "::"])
def test_only_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        DeribitSimulator(host=host)


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        sim = DeribitSimulator(host="::1").start()
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    with sim:
        assert sim.url == f"http://[::1]:{sim.port}/api/v2"
        connection = http.client.HTTPConnection("::1", sim.port, timeout=2)
        connection.request("GET", "/api/v2/public/test")
        assert connection.getresponse().status == 200
        connection.close()


def test_concurrent_clients(sim: DeribitSimulator) -> None:
    statuses: list[int] = []

    def client() -> None:
        connection = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
        for _ in range(20):
            statuses.append(fetch(sim, "/api/v2/public/test", conn=connection)[0].status)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert statuses == [200] * 160


# -- command line ----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "openapi_client.simulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )


def test_cli_serves_until_sigterm() -> None:
    process = run_cli("--port", "0", "--token", "cli-token")
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 10)
        assert ready, "the simulator printed no URL"
        url = process.stdout.readline().strip()
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.path == "/api/v2"
        assert parts.port is not None
        assert process.stdout.readline().strip() == f"ws://127.0.0.1:{parts.port}/ws/api/v2"
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        connection.request(
            "GET",
            "/api/v2/private/get_cancel_on_disconnect?scope=account",
            headers={"Authorization": "Bearer cli-token"},
        )
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
        assert process.returncode == 0
        assert (out, err) == ("", "")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_cli_refuses_a_public_address() -> None:
    process = run_cli("--host", "0.0.0.0", "--port", "0")
    try:
        out, err = process.communicate(timeout=10)
        assert process.returncode == 2
        assert "loopback" in err and out == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
