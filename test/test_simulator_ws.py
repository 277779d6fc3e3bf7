"""The simulator's WebSocket API, driven over loopback with ``websockets``' own sync client.

The project's session client is deliberately not used: these tests pin down what the server does.
The simulator's WebSocket timers run on real time under ``time_scale`` (a 10 s heartbeat takes
0.1 s), so these tests wait for real. What they assert holds however busy the machine: times are
checked from below (a timer never fires early) and from above only by "it did not hang" bounds;
where the test itself must answer a heartbeat in time, it runs at CALM, with a quarter second to
answer instead of 0.1 s.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_simulator import get_request, read_until_closed
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from openapi_client.simulator import DeribitSimulator, Fault
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(20)

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "sim-client"
SECRET = "sim-secret"
CREDENTIALS = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
#: 10 API seconds run as 0.1 s; the unauthenticated idle rule (60 s) as 0.6 s.
FAST = 0.01
#: An interval of 10 s at FAST, in real seconds.
TICK = 10 * FAST
#: For tests that answer heartbeats themselves: a 10 s interval runs as 0.25 s.
CALM = 0.025
#: An interval of 10 s at CALM, in real seconds: how long the test has to answer a test_request.
CALM_TICK = 10 * CALM
#: Seconds within which something prompt must have happened: "it did not hang", not a speed.
PROMPT = 5.0


class Client:
    """A WebSocket connection speaking JSON-RPC: requests matched by id, notifications kept."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.notifications: list[dict[str, Any]] = []
        self.answers: dict[Any, dict[str, Any]] = {}

    def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.ws.send(json.dumps(message))
        return self.next_id

    def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        return message

    def answer(self, request_id: int, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while request_id not in self.answers:
            message = self.receive(max(0.0, deadline - time.monotonic()))
            if "id" in message:
                self.answers[message["id"]] = message
            else:
                self.notifications.append(message)
        return self.answers.pop(request_id)

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.answer(self.send(method, params))

    def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        answer = self.call(method, params)
        assert "result" in answer, answer
        return answer["result"]

    def error(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.call(method, params)
        assert "error" in answer and "result" not in answer, answer
        error: dict[str, Any] = answer["error"]
        return error

    def auth(self, **extra: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.result("public/auth", {**CREDENTIALS, **extra})
        return result

    def closed(self, timeout: float = 5.0) -> ConnectionClosed:
        """Read until the connection closes; the exception says how."""
        deadline = time.monotonic() + timeout
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                message = self.receive(max(0.01, deadline - time.monotonic()))
                self.notifications.append(message)
        return closed.value


def open_client(sim: DeribitSimulator, **options: Any) -> Client:
    options.setdefault("open_timeout", 5)
    options.setdefault("close_timeout", 2)
    options.setdefault("ping_interval", None)
    # Entered as a context manager: websockets 17.1 deprecates using connect() directly.
    return Client(connect(sim.ws_url, proxy=None, **options).__enter__())


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator() as simulator:
        yield simulator


@pytest.fixture
def fast() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=FAST) as simulator:
        yield simulator


@pytest.fixture
def calm() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=CALM) as simulator:
        yield simulator


@pytest.fixture
def client(sim: DeribitSimulator) -> Iterator[Client]:
    connection = open_client(sim)
    yield connection
    connection.ws.close()


def wait_for(condition: Any, timeout: float = PROMPT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def http_rpc(
    sim: DeribitSimulator,
    method: str,
    query: str = "",
    token: str | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, Any]]:
    connection = conn or http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        target = f"/api/v2/{method}" + (f"?{query}" if query else "")
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        if conn is None:
            connection.close()


# -- envelope and errors ---------------------------------------------------------------------


def test_ws_url(sim: DeribitSimulator) -> None:
    assert sim.ws_url == f"ws://127.0.0.1:{sim.port}/ws/api/v2"


def test_answers_carry_the_id_and_deribit_envelope(client: Client) -> None:
    request_id = client.send("public/test")
    answer = client.answer(request_id)
    assert set(answer) == {"jsonrpc", "id", "result", "testnet", "usIn", "usOut", "usDiff"}
    assert (answer["jsonrpc"], answer["id"], answer["testnet"]) == ("2.0", request_id, True)
    assert answer["result"] == {"version": "1.2.26"}
    assert answer["usDiff"] == answer["usOut"] - answer["usIn"] >= 0
    client.ws.send(json.dumps({"jsonrpc": "2.0", "id": "text-id", "method": "public/test"}))
    assert client.receive()["id"] == "text-id"


def test_public_test_can_answer_an_exception(client: Client) -> None:
    error = client.error("public/test", {"expected_result": "exception"})
    assert error == {"code": 11094, "message": "internal_server_error"}


def test_malformed_json_gets_11050_without_id_and_the_socket_stays_open(client: Client) -> None:
    for bad in ("{not json", "[1, 2]", b"\xff\xfe"):
        client.ws.send(bad)
        answer = client.receive()
        assert "id" not in answer
        assert answer["error"] == {"code": 11050, "message": "bad_request", "data": "invalid json"}
    assert client.result("public/test") == {"version": "1.2.26"}


def test_unknown_method_and_bad_requests(client: Client) -> None:
    assert client.error("public/nope")["code"] == -32601
    client.ws.send(json.dumps({"jsonrpc": "2.0", "id": 5, "params": {}}))
    answer = client.receive()
    assert (answer["id"], answer["error"]["code"]) == (5, -32600)
    client.ws.send(json.dumps({"jsonrpc": "2.0", "id": 6, "method": "public/test", "params": [1]}))
    answer = client.receive()
    assert answer["error"]["code"] == -32602 and answer["error"]["data"]["param"] == "params"


def test_a_request_over_32_kb_gets_32600_and_the_socket_stays_open(client: Client) -> None:
    padding = "x" * (32 * 1024)
    client.ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/test", "p": padding}))
    answer = client.receive()
    assert answer["error"] == {"code": -32600, "message": "request entity too large"}
    assert "id" not in answer
    # Just under the limit is fine, also when fragmented.
    small = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "public/test", "p": "x" * 30000})
    client.ws.send([small[:10000], small[10000:]])
    assert client.receive()["id"] == 2


@pytest.mark.parametrize(
    ("params", "reason"),
    [({}, "missing"), ({"interval": 9}, "not less than 10"), ({"interval": True}, "not less")],
)
def test_bad_params_name_the_param(client: Client, params: dict[str, Any], reason: str) -> None:
    error = client.error("public/set_heartbeat", params)
    assert (error["code"], error["message"]) == (-32602, "Invalid params")
    assert error["data"]["param"] == "interval" and reason in error["data"]["reason"]


def test_private_methods_need_authentication(sim: DeribitSimulator, client: Client) -> None:
    error = client.error("private/get_cancel_on_disconnect")
    assert error == {"code": 13009, "message": "unauthorized", "data": {"reason": "invalid_token"}}
    assert "public/auth" in str(sim.requests[-1].explanation)
    # A token in the params works without authenticating the connection.
    answer = client.result("private/get_cancel_on_disconnect", {"access_token": "sim-token"})
    assert answer == {"scope": "connection", "enabled": False}
    assert sim.ws_connections[0].client_id is None
    auth = client.auth()
    assert "connection" in auth["scope"].split()
    assert client.result("private/enable_cancel_on_disconnect") == "ok"
    (info,) = sim.ws_connections
    assert (info.client_id, info.token_scope, info.cancel_on_disconnect) == (
        CLIENT_ID,
        auth["scope"],
        True,
    )


def test_hello_names_the_client(sim: DeribitSimulator, client: Client) -> None:
    assert client.result("public/hello", {"client_name": "bot", "client_version": "1.0"}) == {
        "version": "1.2.26"
    }
    assert sim.ws_connections[0].client_name == "bot"
    assert client.error("public/hello", {"client_name": "bot"})["data"]["param"] == (
        "client_version"
    )


def test_ws_connections_snapshot(sim: DeribitSimulator, client: Client) -> None:
    client.result("public/set_heartbeat", {"interval": 30})
    client.result("public/subscribe", {"channels": ["platform_state"]})
    (info,) = sim.ws_connections
    assert info.heartbeat_interval == 30.0
    assert info.subscriptions == frozenset({"platform_state"})
    assert info.client_address[0] == "127.0.0.1" and isinstance(info.id, int)
    with pytest.raises(AttributeError):
        info.client_id = "x"  # type: ignore[misc]
    client.ws.close()
    wait_for(lambda: sim.ws_connections == [])


# -- heartbeats ------------------------------------------------------------------------------


@pytest.mark.timing
def test_answered_heartbeats_keep_the_connection(calm: DeribitSimulator) -> None:
    client = open_client(calm)
    client.auth()
    started = time.monotonic()
    assert client.result("public/set_heartbeat", {"interval": 10}) == "ok"
    seen: list[float] = []
    beside = 0
    while len(seen) < 3:
        message = client.receive(timeout=PROMPT)
        if "id" in message:  # the answer to a public/test below
            continue
        assert message["method"] == "heartbeat"
        if message["params"]["type"] == "test_request":
            seen.append(time.monotonic() - started)
            client.send("public/test")  # answered on the read path, as a client must
        else:
            beside += 1
    # The n-th test_request is sent no sooner than n intervals after set_heartbeat (the server
    # schedules each one an interval after the last); a busy machine only makes them later.
    for number, when in enumerate(seen, start=1):
        assert when >= number * CALM_TICK - 0.001, seen
    # A socket that keeps answering is busy: test_requests come without heartbeats beside them.
    assert beside < len(seen)
    assert calm.ws_connections[0].heartbeat_interval == 10.0
    client.ws.close()


@pytest.mark.timing
def test_idle_socket_gets_a_heartbeat_beside_each_test_request(fast: DeribitSimulator) -> None:
    client = open_client(fast)
    client.auth()
    client.result("public/set_heartbeat", {"interval": 10})
    kinds = [client.receive(timeout=2)["params"]["type"] for _ in range(2)]
    assert sorted(kinds) == ["heartbeat", "test_request"]
    client.ws.close()


@pytest.mark.timing
def test_unanswered_test_request_closes_with_4000(fast: DeribitSimulator) -> None:
    client = open_client(fast)
    client.auth()
    client.result("private/enable_cancel_on_disconnect")
    started = time.monotonic()
    client.result("public/set_heartbeat", {"interval": 10})
    closed = client.closed()
    elapsed = time.monotonic() - started
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (4000, "heartbeat close")
    assert any(n["params"] == {"type": "test_request"} for n in client.notifications)
    # One interval to the test_request, one more to answer it (never sooner).
    assert 2 * TICK - 0.001 <= elapsed < 2 * TICK + PROMPT, elapsed
    wait_for(lambda: fast.cancel_on_disconnect_events)
    (event,) = fast.cancel_on_disconnect_events
    assert (event.reason, event.client_id) == ("heartbeat", CLIENT_ID)


@pytest.mark.timing
def test_disable_heartbeat_stops_them(calm: DeribitSimulator) -> None:
    client = open_client(calm)
    client.auth()
    client.result("public/set_heartbeat", {"interval": 10})
    client.result("public/disable_heartbeat")
    client.notifications.clear()
    time.sleep(2 * CALM_TICK)  # two intervals at least: a busy machine only makes it longer
    assert client.result("public/test")  # still open: no test_request went unanswered
    assert client.notifications == []
    assert calm.ws_connections[0].heartbeat_interval is None
    client.ws.close()


def test_interval_is_validated_in_api_seconds_whatever_the_scale(fast: DeribitSimulator) -> None:
    client = open_client(fast)
    assert client.error("public/set_heartbeat", {"interval": 5})["code"] == -32602
    client.ws.close()


# -- idle rules ------------------------------------------------------------------------------


@pytest.mark.timing
def test_silent_unauthenticated_socket_is_dropped_without_a_close_frame() -> None:
    with DeribitSimulator(time_scale=0.003) as sim:  # 60 s run as 0.18 s
        started = time.monotonic()  # before the server's idle clock starts, at the handshake
        client = open_client(sim)
        closed = client.closed()
        assert closed.rcvd is None  # 1006: no close frame
        assert 0.18 - 0.001 <= time.monotonic() - started < 0.18 + PROMPT


@pytest.mark.timing
def test_subscribed_socket_is_not_dropped_at_60_s() -> None:
    with DeribitSimulator(time_scale=0.005) as sim:  # 60 s run as 0.3 s
        client = open_client(sim)
        client.result("public/subscribe", {"channels": ["platform_state"]})
        time.sleep(60 * 0.005 * 1.5)
        assert client.result("public/test")
        client.ws.close()


@pytest.mark.timing
def test_inactivity_closes_and_fires_cancel_on_disconnect() -> None:
    # 600 s run as 1.8 s; the 60 s rule for unauthenticated sockets as 0.18 s, the time the test
    # has to authenticate first.
    with DeribitSimulator(time_scale=0.003) as sim:
        client = open_client(sim)
        client.auth()
        client.result("private/enable_cancel_on_disconnect")
        closed = client.closed()
        assert closed.rcvd is not None and closed.rcvd.reason == "inactivity"
        wait_for(lambda: sim.cancel_on_disconnect_events)
        assert sim.cancel_on_disconnect_events[0].reason == "inactivity"


# -- cancel-on-disconnect --------------------------------------------------------------------


def test_cancel_on_disconnect_fires_when_the_client_closes(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    client.auth()
    client.result("private/enable_cancel_on_disconnect")
    connection_id = sim.ws_connections[0].id
    before = time.time()
    client.ws.close()
    wait_for(lambda: sim.cancel_on_disconnect_events)
    (event,) = sim.cancel_on_disconnect_events
    assert (event.connection_id, event.client_id, event.reason) == (
        connection_id,
        CLIENT_ID,
        "closed",
    )
    assert before - 1 <= event.time <= time.time()


def test_cancel_on_disconnect_fires_when_the_tcp_connection_is_lost(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    client.auth()
    client.result("private/enable_cancel_on_disconnect", {"scope": "connection"})
    client.ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame
    wait_for(lambda: sim.cancel_on_disconnect_events)
    assert sim.cancel_on_disconnect_events[0].reason == "closed"
    client.ws.close()


def test_cancel_on_disconnect_off_fires_nothing(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    client.auth()
    client.result("private/enable_cancel_on_disconnect")
    client.result("private/disable_cancel_on_disconnect")
    assert client.result("private/get_cancel_on_disconnect") == {
        "scope": "connection",
        "enabled": False,
    }
    client.ws.close()
    wait_for(lambda: sim.ws_connections == [])
    assert sim.cancel_on_disconnect_events == []


def test_account_default_applies_to_new_connections(sim: DeribitSimulator) -> None:
    # Scope account works over HTTP and sets the default of every new connection.
    status, _ = http_rpc(sim, "private/enable_cancel_on_disconnect", "scope=account", "sim-token")
    assert status == 200
    client = open_client(sim)
    assert client.result("private/get_cancel_on_disconnect", {"access_token": "sim-token"}) == {
        "scope": "connection",
        "enabled": True,
    }
    client.auth()
    client.ws.close()
    wait_for(lambda: sim.cancel_on_disconnect_events)
    # A connection that turned its own off does not fire.
    other = open_client(sim)
    other.auth()
    other.result("private/disable_cancel_on_disconnect")
    other.ws.close()
    wait_for(lambda: sim.ws_connections == [])
    assert len(sim.cancel_on_disconnect_events) == 1
    assert sim.cancel_on_disconnect == {"connection": False, "account": True}


def test_logout_closes_without_an_answer_and_keeps_the_orders(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    token = client.auth(scope="session:bot")["access_token"]
    client.result("private/enable_cancel_on_disconnect")
    client.send("private/logout", {"invalidate_token": True})
    closed = client.closed()
    assert closed.rcvd is not None and closed.rcvd.code == 1000
    assert client.answers == {}  # no answer
    wait_for(lambda: sim.ws_connections == [])
    assert sim.cancel_on_disconnect_events == []
    status, body = http_rpc(sim, "private/get_cancel_on_disconnect", "scope=account", token)
    assert (status, body["error"]["code"]) == (400, 13009)


def test_logout_can_keep_the_tokens(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    token = client.auth(scope="session:keep")["access_token"]
    client.send("private/logout", {"invalidate_token": False})
    client.closed()
    status, _ = http_rpc(sim, "private/get_cancel_on_disconnect", "scope=account", token)
    assert status == 200


# -- token scopes ----------------------------------------------------------------------------


def test_connection_token_is_refused_on_another_connection(sim: DeribitSimulator) -> None:
    first, second = open_client(sim), open_client(sim)
    token = first.auth()["access_token"]
    error = second.error("private/get_cancel_on_disconnect", {"access_token": token})
    assert error["code"] == 13009
    reused = "'connection' scope can't be reused for other connections"
    assert sim.requests[-1].explanation == reused
    status, body = http_rpc(sim, "private/get_cancel_on_disconnect", "scope=account", token)
    assert (status, body["error"]["code"]) == (400, 13009)
    # It dies with its connection.
    first.ws.close()
    wait_for(lambda: len(sim.ws_connections) == 1)
    error = second.error("private/get_cancel_on_disconnect", {"access_token": token})
    assert error["code"] == 13009
    second.ws.close()


@pytest.mark.parametrize(
    ("settings", "scope"),
    [({}, "connection"), ({"rest_sessions": False}, None)],
    ids=["asked", "rest_sessions_off"],
)
def test_connection_token_over_http_works_on_its_keep_alive_connection(
    settings: dict[str, Any], scope: str | None
) -> None:
    with DeribitSimulator(**settings) as sim:
        own = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
        query = "grant_type=client_credentials&client_id=sim-client&client_secret=sim-secret"
        query += f"&scope={scope}" if scope else ""
        status, body = http_rpc(sim, "public/auth", query, conn=own)
        assert status == 200 and "connection" in body["result"]["scope"].split()
        assert body["result"]["expires_in"] == 900
        check_connection_token_over_http(sim, own, body["result"])


def check_connection_token_over_http(
    sim: DeribitSimulator, own: http.client.HTTPConnection, grant: dict[str, Any]
) -> None:
    token, refresh = grant["access_token"], grant["refresh_token"]
    assert http_rpc(sim, "private/get_cancel_on_disconnect", "scope=account", token, own)[0] == 200
    status, body = http_rpc(sim, "private/get_cancel_on_disconnect", "scope=account", token)
    assert (status, body["error"]["code"]) == (400, 13009)
    assert "can't be reused" in str(sim.requests[-1].explanation)
    status, body = http_rpc(sim, "public/auth", f"grant_type=refresh_token&refresh_token={refresh}")
    assert (status, body["error"]["code"]) == (400, 13009)
    own.close()


def test_session_token_survives_reconnects_and_works_over_http(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    auth = client.auth(scope="session:bot")
    assert "session:bot" in auth["scope"].split()
    client.ws.close()
    wait_for(lambda: sim.ws_connections == [])
    status, _ = http_rpc(
        sim, "private/get_cancel_on_disconnect", "scope=account", auth["access_token"]
    )
    assert status == 200
    again = open_client(sim)
    assert again.result("private/get_cancel_on_disconnect", {"access_token": auth["access_token"]})
    refreshed = again.result(
        "public/auth", {"grant_type": "refresh_token", "refresh_token": auth["refresh_token"]}
    )
    assert "session:bot" in refreshed["scope"].split()
    assert again.result("private/get_cancel_on_disconnect")  # the connection is authenticated
    again.ws.close()


def test_a_17th_session_evicts_one_and_its_tokens_die_everywhere(sim: DeribitSimulator) -> None:
    victim, client = open_client(sim), open_client(sim)
    token = victim.auth(scope="session:victim")["access_token"]  # the oldest session
    for number in range(1, 16):
        client.auth(scope=f"session:s{number}")
    client.auth(scope="session:s1")  # an existing session is renewed, not added
    assert [session.name for session in sim.sessions] == ["victim"] + [
        f"s{n}" for n in range(1, 16)
    ]
    assert victim.result("private/get_cancel_on_disconnect")
    client.auth(scope="session:s16")  # no error: the session with the least life left goes
    (eviction,) = sim.session_evictions
    assert (eviction.client_id, eviction.name, eviction.reason, eviction.replaced_by) == (
        CLIENT_ID,
        "victim",
        "session_limit",
        "s16",
    )
    assert len(sim.sessions) == 16 and "victim" not in {s.name for s in sim.sessions}
    # Its token now fails on its own connection, on another one and over HTTP.
    for error in (
        victim.error("private/get_cancel_on_disconnect"),
        client.error("private/get_cancel_on_disconnect", {"access_token": token}),
    ):
        assert error == {
            "code": 13009,
            "message": "unauthorized",
            "data": {"reason": "invalid_token"},
        }
        assert "removed to make room" in str(sim.requests[-1].explanation)
    status, body = http_rpc(sim, "private/get_cancel_on_disconnect", "scope=account", token)
    assert (status, body["error"]["code"]) == (400, 13009)
    victim.ws.close()
    client.ws.close()


def test_signature_and_refresh_grants_authenticate_the_connection(sim: DeribitSimulator) -> None:
    from openapi_client.signing import new_nonce, now_ms, sign

    client = open_client(sim)
    timestamp, nonce = now_ms(), new_nonce()
    signed = client.result(
        "public/auth",
        {
            "grant_type": "client_signature",
            "client_id": CLIENT_ID,
            "timestamp": timestamp,
            "nonce": nonce,
            "signature": sign(SECRET, timestamp, nonce, ""),
        },
    )
    assert sim.ws_connections[0].client_id == CLIENT_ID
    refreshed = client.result(
        "public/auth", {"grant_type": "refresh_token", "refresh_token": signed["refresh_token"]}
    )
    assert refreshed["scope"] == signed["scope"]
    assert "connection" in signed["scope"].split()
    assert sim.ws_connections[0].token_scope == signed["scope"]
    assert client.result("private/get_cancel_on_disconnect") == {
        "scope": "connection",
        "enabled": False,
    }
    client.ws.close()


def test_issued_and_static_tokens_work_on_any_connection(sim: DeribitSimulator) -> None:
    issued = sim.issue_token()
    client = open_client(sim)
    for token in (issued, "sim-token"):
        assert client.result("private/get_cancel_on_disconnect", {"access_token": token})
        assert http_rpc(sim, "private/get_cancel_on_disconnect", "scope=account", token)[0] == 200
    client.ws.close()


# -- subscriptions ---------------------------------------------------------------------------


def test_platform_state_notices_reach_subscribers(sim: DeribitSimulator) -> None:
    subscriber, bystander = open_client(sim), open_client(sim)
    accepted = subscriber.result(
        "public/subscribe", {"channels": ["platform_state", "no.such.channel"]}
    )
    assert accepted == ["platform_state"]
    wait_for(lambda: any(c.subscriptions for c in sim.ws_connections))
    assert sim.publish_platform_state({"maintenance": True}) == 1
    assert subscriber.receive() == {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": "platform_state", "data": {"maintenance": True}},
    }
    assert subscriber.result("public/unsubscribe", {"channels": ["platform_state"]}) == [
        "platform_state"
    ]
    assert sim.publish_platform_state({"maintenance": False}) == 0
    assert bystander.result("public/test")
    assert bystander.notifications == []
    subscriber.ws.close()
    bystander.ws.close()


def test_private_subscribe_needs_authentication(client: Client) -> None:
    assert client.error("private/subscribe", {"channels": ["platform_state"]})["code"] == 13009
    client.auth()
    assert client.result("private/subscribe", {"channels": ["platform_state"]}) == [
        "platform_state"
    ]
    assert client.error("public/subscribe", {"channels": []})["data"]["param"] == "channels"


def test_publish_from_many_threads_while_requests_run(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    client.result("public/subscribe", {"channels": ["platform_state"]})
    threads = [
        threading.Thread(target=lambda n=n: sim.publish_platform_state({"n": n})) for n in range(20)
    ]
    for thread in threads:
        thread.start()
    answers = [client.result("public/test") for _ in range(20)]
    for thread in threads:
        thread.join()
    assert len(answers) == 20
    while len(client.notifications) < 20:
        client.notifications.append(client.receive())
    assert sorted(n["params"]["data"]["n"] for n in client.notifications) == list(range(20))
    client.ws.close()


# -- recording, limits -----------------------------------------------------------------------


def test_request_log_marks_websocket_requests(sim: DeribitSimulator, client: Client) -> None:
    client.auth()
    request_id = client.send("public/set_heartbeat", {"interval": 15})
    client.answer(request_id)
    handshake, auth, heartbeat = sim.requests
    assert (handshake.transport, handshake.method, handshake.path) == ("http", "GET", "/ws/api/v2")
    assert (auth.transport, auth.method, auth.path) == ("websocket", "WS", "/api/v2/public/auth")
    assert heartbeat.query == {"interval": "15"} and heartbeat.rpc_id == request_id
    assert heartbeat.connection_id == handshake.connection_id == sim.ws_connections[0].id
    assert heartbeat.header("upgrade") == "websocket"
    assert SECRET not in repr(auth)
    assert sim.auth_requests == 1


@pytest.mark.timing
def test_the_33rd_connection_is_refused_with_429(sim: DeribitSimulator) -> None:
    http_connection = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    http_connection.request("GET", "/api/v2/public/test")
    assert http_connection.getresponse().read()
    clients = [open_client(sim) for _ in range(31)]
    try:
        with pytest.raises(InvalidStatus) as refused:
            open_client(sim)
        assert refused.value.response.status_code == 429
        clients.pop().ws.close()
        deadline = time.monotonic() + PROMPT
        while True:  # the freed slot is noticed a moment after the close
            try:
                clients.append(open_client(sim))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        http_connection.close()
        for client in clients:
            client.ws.close()


def test_10028_terminates_the_websocket_and_credits_are_shared_with_http() -> None:
    with DeribitSimulator(
        rate_limit=True, rate_limit_burst=3, rate_limit_per_second=0.1, clock=ManualClock()
    ) as sim:  # the pool never refills: the clock stands still
        for _ in range(2):  # two of the three requests spent over HTTP
            assert (
                http_rpc(sim, "private/get_cancel_on_disconnect", "scope=account", "sim-token")[0]
                == 200
            )
        client = open_client(sim)
        assert client.result("private/get_cancel_on_disconnect", {"access_token": "sim-token"})
        error = client.error("private/get_cancel_on_disconnect", {"access_token": "sim-token"})
        assert (error["code"], error["message"]) == (10028, "too_many_requests")
        closed = client.closed()
        assert closed.rcvd is not None and closed.rcvd.code == 1008


# -- faults ----------------------------------------------------------------------------------


def test_fault_ws_drop(sim: DeribitSimulator) -> None:
    client = open_client(sim)
    client.auth()
    client.result("private/enable_cancel_on_disconnect")
    sim.inject(Fault.WS_DROP, path="/public/test")
    client.send("public/test")
    closed = client.closed()
    assert closed.rcvd is None and client.answers == {}
    wait_for(lambda: sim.cancel_on_disconnect_events)
    assert sim.cancel_on_disconnect_events[0].reason == "fault"


def test_fault_ws_close(sim: DeribitSimulator, client: Client) -> None:
    sim.inject("ws_close", code=1012, reason="service restart")
    client.send("public/test")
    closed = client.closed()
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (1012, "service restart")
    default = open_client(sim)
    sim.inject("ws_close")
    default.send("public/test")
    rcvd = default.closed().rcvd
    assert rcvd is not None and rcvd.code == 1011


@pytest.mark.timing
def test_fault_ws_silence(calm: DeribitSimulator) -> None:
    client = open_client(calm)
    client.auth()
    client.result("public/set_heartbeat", {"interval": 10})
    calm.inject("ws_silence", seconds=1.0, path="/public/hello")
    started = time.monotonic()
    hello = client.send("public/hello", {"client_name": "x", "client_version": "1"})
    calm.publish_platform_state({"ignored": True})  # nobody subscribed; still nothing sent
    with pytest.raises(TimeoutError):
        # Longer than a heartbeat interval, well inside the silence.
        client.ws.recv(timeout=CALM_TICK + 0.05)  # no answer, no heartbeat
    answer = client.answer(hello, timeout=PROMPT)
    assert time.monotonic() - started >= 1.0 - 0.001
    assert answer["result"] == {"version": "1.2.26"}
    assert client.result("public/test")  # carries on
    client.ws.close()


@pytest.mark.timing
def test_fault_ws_delay_reorders_answers(sim: DeribitSimulator, client: Client) -> None:
    # The quick request follows at once; a second gives even a busy machine time to send it.
    sim.inject("ws_delay", seconds=1.0, path="/public/test")
    slow = client.send("public/test")
    quick = client.send("public/hello", {"client_name": "x", "client_version": "1"})
    first, second = client.receive(), client.receive()
    assert [first["id"], second["id"]] == [quick, slow]


def test_fault_ws_refuse(sim: DeribitSimulator) -> None:
    sim.inject(Fault.WS_REFUSE, count=2, retry_after=7)
    for _ in range(2):
        with pytest.raises(InvalidStatus) as refused:
            open_client(sim)
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"] == "7"
    open_client(sim).ws.close()


def test_fault_ws_malformed_frame(sim: DeribitSimulator, client: Client) -> None:
    sim.inject("ws_malformed_frame")
    client.send("public/test")
    closed = client.closed()
    assert closed.sent is not None and closed.sent.code == 1007  # invalid UTF-8 in a text frame


def test_fault_ws_oversized(sim: DeribitSimulator) -> None:
    small = open_client(sim, max_size=1 << 20)
    sim.inject("ws_oversized", size=2 << 20)
    small.send("public/test")
    closed = small.closed()
    assert closed.sent is not None and closed.sent.code == 1009  # message too big
    large = open_client(sim, max_size=4 << 20)
    sim.inject("ws_oversized", size=3 << 20)
    request_id = large.send("public/test")
    raw = large.ws.recv(timeout=5)
    assert len(raw.encode() if isinstance(raw, str) else raw) == 3 << 20
    assert json.loads(raw)["id"] == request_id
    large.ws.close()


@pytest.mark.timing
def test_fault_ws_ignore_test_fails_the_heartbeat(fast: DeribitSimulator) -> None:
    client = open_client(fast)
    client.auth()
    fast.inject(Fault.WS_IGNORE_TEST, count=10, path="/public/test")
    client.result("public/set_heartbeat", {"interval": 10})
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = client.receive(timeout=3)
            if message.get("params", {}).get("type") == "test_request":
                client.send("public/test")  # answered, but lost
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000


def test_websocket_and_http_faults_stay_on_their_side(
    sim: DeribitSimulator, client: Client
) -> None:
    sim.inject("html_503")
    assert client.result("public/test")  # the HTTP fault is not for WebSocket requests
    sim.inject("ws_drop")
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    statuses = []
    for _ in range(2):
        connection.request("GET", "/api/v2/public/test")
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    connection.close()
    assert statuses == [503, 200]  # the WebSocket fault is not for HTTP requests
    client.send("public/test")
    assert client.closed().rcvd is None


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("ws_refuse", {"path": "/public/test"}, "takes no path"),
        ("ws_close", {"code": 1006}, "code must be"),
        ("ws_close", {"reason": "x" * 124}, "reason must be"),
        ("ws_silence", {}, "needs seconds"),
        ("ws_oversized", {"size": 10}, "size must be"),
    ],
)
def test_websocket_faults_check_their_arguments(
    sim: DeribitSimulator, kind: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sim.inject(kind, **params)


# -- lifecycle, TLS, the optional dependency ---------------------------------------------------


@pytest.mark.timing
def test_stop_ends_websocket_connections_promptly() -> None:
    sim = DeribitSimulator().start()
    client = open_client(sim)
    client.auth()
    client.result("private/enable_cancel_on_disconnect")
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < PROMPT
    client.closed(timeout=PROMPT)
    assert [event.reason for event in sim.cancel_on_disconnect_events] == ["closed"]


@pytest.mark.timing
def test_wss_with_a_tls_context() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with DeribitSimulator(ssl_context=server_context, time_scale=CALM) as sim:
        assert sim.ws_url == f"wss://127.0.0.1:{sim.port}/ws/api/v2"
        client = open_client(sim, ssl=client_context)
        client.auth()
        client.result("public/set_heartbeat", {"interval": 10})
        # The first tick of an idle socket: a heartbeat and a test_request, answered in time.
        kinds = [client.receive(timeout=PROMPT)["params"]["type"] for _ in range(2)]
        assert sorted(kinds) == ["heartbeat", "test_request"]
        assert client.result("public/test")
        client.ws.close()


def tls_exchange(sim: DeribitSimulator, client_context: ssl.SSLContext) -> tuple[str, bool]:
    """One HTTPS request on a fresh TLS connection, read to the end of its answer: the TLS
    version, and whether a session ticket arrived."""
    with socket.create_connection((sim.host, sim.port), timeout=PROMPT) as raw:
        with client_context.wrap_socket(raw, server_hostname=sim.host) as tls:
            version = str(tls.version())
            tls.sendall(get_request("/api/v2/public/test"))
            assert read_until_closed(tls).startswith(b"HTTP/1.1 200 ")
            session = tls.session
            assert session is not None
            return version, session.has_ticket


@pytest.mark.parametrize("protocol", ["PROTOCOL_TLS_SERVER", "PROTOCOL_TLS"])
def test_no_session_ticket_arrives_after_the_tls_handshake(protocol: str) -> None:
    # The cause of a flake: a TLS 1.3 server sends session tickets right after the handshake;
    # websockets 15's threaded client reads them in its reader thread while its caller writes
    # the upgrade request on the same TLS socket, and now and then that request never leaves.
    # With no ticket after the handshake, the reader has nothing to do until the 101.
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # PROTOCOL_TLS, as Python 3.9 makes
        server_context = ssl.SSLContext(getattr(ssl, protocol))
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with DeribitSimulator(ssl_context=server_context) as sim:
        version, ticket = tls_exchange(sim, client_context)
    if protocol == "PROTOCOL_TLS_SERVER":
        assert (version, ticket) == ("TLSv1.3", False)
    else:  # num_tickets cannot be set on it: TLS 1.2, whose tickets come inside the handshake
        assert version == "TLSv1.2"


def test_a_tls_context_the_simulator_cannot_use_is_refused() -> None:
    with pytest.raises(ValueError, match="server-side context"):
        DeribitSimulator(ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        generic = ssl.SSLContext(ssl.PROTOCOL_TLS)
    generic.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ValueError, match="PROTOCOL_TLS_SERVER"):
        DeribitSimulator(ssl_context=generic)


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "1", True])
def test_time_scale_is_checked(value: Any) -> None:
    with pytest.raises(ValueError, match="time_scale"):
        DeribitSimulator(time_scale=value)


def test_without_websockets_an_upgrade_names_the_extra() -> None:
    script = """
import http.client, sys
sys.modules["websockets"] = None  # as if the package were not installed
from openapi_client.simulator import DeribitSimulator
with DeribitSimulator() as sim:
    assert sim.ws_connections == []
    c = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    c.request("GET", "/api/v2/public/test")
    assert c.getresponse().read()
    c.request("GET", "/ws/api/v2", headers={"Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    r = c.getresponse()
    print(r.status, r.read().decode())
"""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    ran = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("501 ")
    assert "openapi-client-deribit-session[websocket]" in ran.stdout


def test_a_plain_get_on_the_websocket_path_is_refused(sim: DeribitSimulator) -> None:
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    connection.request("GET", "/ws/api/v2")
    response = connection.getresponse()
    assert response.status == 426  # Upgrade Required, as websockets answers
    connection.close()
