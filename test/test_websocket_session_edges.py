"""Edges of the WebSocket session against the simulator, over real loopback sockets: a token
renewal the server refuses, a connection lost while it is restored, a restore refused for
credits, a close while a reconnect is restoring, and a ``public/auth`` answer without a result."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET
from test_websocket_support import (
    Recorder,
    key_configuration,
    session,
    token_configuration,
    wait_until,
)
from test_websocket_transport import flush, ok, raw_server, requests_of, scripted_server
from websockets.server import ServerProtocol

from openapi_client import ApiConnectionError, Configuration
from openapi_client.exceptions import ApiException, TooManyRequestsException
from openapi_client.simulator import DeribitSimulator, Fault
from openapi_client.testing import ManualClock
from openapi_client.websocket import (
    Closed,
    Connected,
    Disconnected,
    HeartbeatAnswered,
    Reconnecting,
    SessionRestored,
    State,
    TokenRefreshed,
    WebSocketApiClient,
)

pytestmark = pytest.mark.timeout(30)

#: A second of simulator time per test_request answer: these tests are not about heartbeats.
CALM_SCALE = 0.1


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=CALM_SCALE) as simulator:
        yield simulator


def _kinds(recorder: Recorder) -> list[str]:
    return [type(e).__name__ for e in recorder.events if not isinstance(e, HeartbeatAnswered)]


@pytest.mark.timing
@pytest.mark.usefixtures("short_token_lifetimes")
def test_token_renewal_refused_ends_the_connection_and_the_session(recorder: Recorder) -> None:
    """Tokens live 1 s and are renewed from 0.8 s on. The server refuses every renewal (refresh
    token revoked, the key's secret no longer matches): while the token is valid the session
    keeps it, once it has expired the session closes its connection with 1000 and a reason
    that says so, tries once more on a new connection and gives up, with the secret nowhere in
    what it reports."""
    with DeribitSimulator(time_scale=CALM_SCALE, token_ttl=1.0, clock=ManualClock()) as sim:
        ws_client = session(key_configuration(sim, token_refresh_margin=0.5), recorder)
        try:
            ws_client.configuration.client_secret = "not-the-secret"
            sim.revoke_tokens(refresh_tokens=True)
            (closed,) = recorder.wait_for(Closed)
        finally:
            ws_client.close()
        assert closed.failed is True
        assert ws_client.state is State.FAILED
        first = recorder.of(Disconnected)[0]
        assert (first.connection, first.code) == (1, 1000)
        assert first.reason.startswith("closed: the token could not be renewed")
        assert recorder.of(TokenRefreshed) == []
        reconnecting = recorder.of(Reconnecting)
        assert [event.attempt for event in reconnecting] == [1]
        assert "the session could not be restored" in closed.reason
        assert "13004" in closed.reason or "invalid_credentials" in closed.reason
        hellos = [r.connection_id for r in sim.requests if r.path.endswith("/public/hello")]
        assert len(hellos) == 2 and hellos[0] != hellos[1]
        for event in recorder.events:
            assert CLIENT_SECRET not in repr(event) and "not-the-secret" not in repr(event)
        with pytest.raises(ApiConnectionError, match="gave up"):
            ws_client.call("public/test")


def test_a_drop_while_reading_cancel_on_disconnect_restores_on_a_new_connection(
    sim: DeribitSimulator, recorder: Recorder
) -> None:
    """The account default of cancel-on-disconnect is read while the first connection is
    restored; that connection drops instead of answering. The session does not come up with the
    setting unknown on a dead connection: it starts on a second one, where it reads it."""
    sim.inject(Fault.WS_DROP, path="/private/get_cancel_on_disconnect")
    with session(token_configuration(sim), recorder, heartbeat=None) as ws_client:
        assert ws_client.state is State.READY
        (restored,) = recorder.wait_for(SessionRestored)
        assert (restored.connection, restored.cancel_on_disconnect) == (2, False)
        lost = recorder.wait_for(Disconnected)[0]
        assert (lost.connection, lost.code) == (1, None)
        assert lost.reason == "the connection dropped without a close frame"
        assert lost.cancel_on_disconnect_may_have_fired is True  # never learnt it was off
        assert ws_client.call("private/get_cancel_on_disconnect")["result"]["enabled"] is False
    lookups = [r for r in sim.requests if r.path.endswith("/private/get_cancel_on_disconnect")]
    assert len({r.connection_id for r in lookups}) == 2
    assert _kinds(recorder)[:4] == ["Connected", "Disconnected", "Connected", "SessionRestored"]


@pytest.mark.timing
def test_a_subscription_refused_for_credits_reconnects_after_the_throttle_delay(
    recorder: Recorder,
) -> None:
    """One request at once per credit pool, and no refill until the test moves the clock: the
    restore spends the credits, a subscription finds none and is answered 10028, and the
    simulator ends the connection. The session waits at least ``throttle_delay`` (0.3 s, more
    than the backoff ever waits) before the next connection, which is restored once credits
    are back."""
    clock = ManualClock()
    with DeribitSimulator(
        time_scale=CALM_SCALE, clock=clock, rate_limit=True, rate_limit_burst=1
    ) as sim:
        configuration = token_configuration(sim, retries=0)
        with session(configuration, recorder, heartbeat=None) as ws_client:
            with pytest.raises(TooManyRequestsException) as refused:
                ws_client.subscribe("platform_state", lambda channel, data: None)
            assert refused.value.error_code == 10028
            (reconnecting,) = recorder.wait_for(Reconnecting)
            clock.advance(10.0)
            assert reconnecting.attempt == 1 and reconnecting.delay >= 0.3
            assert "too_many_requests" in reconnecting.error
            lost = recorder.of(Disconnected)[0]
            assert (lost.connection, lost.code) == (1, 1008)
            restored = recorder.wait_for(SessionRestored, 2)[-1]
            assert restored.channels == ()
            wait_until(lambda: ws_client.state is State.READY, "the session to be ready again")


@pytest.mark.timing
def test_close_while_a_reconnect_is_restoring(sim: DeribitSimulator, recorder: Recorder) -> None:
    """The first connection drops; the second one's ``public/hello`` is answered only after
    20 s. A close meanwhile ends the session at once: no session restored on the second
    connection, no further attempt, and the session is closed, not failed."""
    with session(token_configuration(sim), recorder, heartbeat=None) as ws_client:
        sim.inject(Fault.WS_DROP, path="/public/test")
        sim.inject(Fault.WS_DELAY, path="/public/hello", seconds=20.0)
        with pytest.raises(ApiConnectionError):
            ws_client.call("public/test")
        wait_until(
            lambda: len([r for r in sim.requests if r.path.endswith("/public/hello")]) == 2,
            "the second connection's hello",
        )
        assert ws_client.state is State.RESTORING
        started = time.monotonic()
        ws_client.close()
        assert time.monotonic() - started < 5.0
    assert ws_client.state is State.CLOSED
    (closed,) = recorder.wait_for(Closed)
    assert (closed.failed, closed.reason) == (False, "closed by the client")
    assert [e.connection for e in recorder.of(SessionRestored)] == [1]
    assert [e.attempt for e in recorder.of(Reconnecting)] == [1]
    assert [e.connection for e in recorder.of(Connected)] == [1, 2]


def test_public_auth_answered_without_a_result_fails_the_session(recorder: Recorder) -> None:
    """A server that answers ``public/auth`` with a bare ``"ok"``: the session does not start,
    says what was wrong, sends the key's signature rather than its secret and announces no
    authentication."""
    seen: list[dict[str, Any]] = []

    def script(request: dict[str, Any]) -> list[str]:
        seen.append(request)
        return []

    with scripted_server(script) as url:
        configuration = Configuration(
            host=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, retries=0
        )
        with pytest.raises(ApiException, match="public/auth answered without a result") as failed:
            WebSocketApiClient(configuration, heartbeat=None, on_event=recorder)
    assert failed.value.status == 200
    (closed,) = recorder.wait_for(Closed)
    assert closed.failed is True and "answered without a result" in closed.reason
    assert [request["method"] for request in seen] == ["public/hello", "public/auth"]
    grant = seen[1]["params"]
    assert grant["grant_type"] == "client_signature" and grant["client_id"] == CLIENT_ID
    assert CLIENT_SECRET not in json.dumps(seen)
    assert "Authenticated" not in _kinds(recorder)


def test_a_connection_lost_as_its_restore_ends_is_not_announced_restored(
    recorder: Recorder,
) -> None:
    """The second connection goes away instead of answering the renewed subscription, the last
    step of its restore: the session does not announce it restored (nor take calls on it) but
    moves on to a third connection, where the subscription is back."""
    served = iter(range(1, 100))

    def serve_connection(
        sock: socket.socket, protocol: ServerProtocol, stop: threading.Event
    ) -> None:
        number = next(served)
        flush(sock, protocol)  # the handshake's response
        for request in requests_of(sock, protocol, stop):
            method, params = request["method"], request.get("params", {})
            if method == "public/subscribe" and number == 2:
                return  # dropped, no close frame, the restore's last answer never given
            if method == "public/subscribe":
                protocol.send_text(ok(request["id"], params["channels"]))
            elif method == "public/test" and number == 1:
                return  # dropped, no close frame
            else:
                protocol.send_text(ok(request["id"]))
            flush(sock, protocol)

    with raw_server(serve_connection) as url:
        configuration = Configuration(host=url, retries=0)
        with session(configuration, recorder, heartbeat=None) as ws_client:
            ws_client.subscribe("platform_state", lambda channel, data: None)
            with pytest.raises(ApiConnectionError):
                ws_client.call("public/test")
            restored = recorder.wait_for(SessionRestored, 2)
            assert [event.connection for event in restored] == [1, 3]
            assert restored[1].channels == ("platform_state",)
            assert ws_client.call("public/test")["result"] == "ok"
    attempts = recorder.of(Reconnecting)
    assert [event.attempt for event in attempts] == [1, 2]
    assert attempts[1].error.startswith("the connection was lost while the session was restored")
    assert [event.connection for event in recorder.of(Connected)] == [1, 2, 3]


def test_an_evicted_session_is_announced_and_the_session_authenticates_again(
    recorder: Recorder,
) -> None:
    """Another process granting tokens with the same key (over HTTP, each grant a session of
    its own) uses up the key's 16 sessions: Deribit drops the session's, whose token then gets
    13009. The session says so (``SessionEvicted``), authenticates again once, and the call goes
    through on the same connection."""
    from test_simulator_fidelity import grant

    from openapi_client import SessionManagementApi
    from openapi_client.websocket import SessionEvicted

    clock = ManualClock()
    with DeribitSimulator(time_scale=CALM_SCALE, clock=clock) as sim:
        with session(key_configuration(sim), recorder, heartbeat=None) as ws_client:
            api = SessionManagementApi(ws_client)
            assert api.private_get_cancel_on_disconnect_get()["result"]["enabled"] is False
            clock.advance(600)  # the session's token has 300 s left; each new one gets 899
            for _ in range(16):
                grant(sim)
            assert [e.name for e in sim.session_evictions] == ["openapi-client"]
            assert api.private_get_cancel_on_disconnect_get()["result"]["enabled"] is False
            (evicted,) = recorder.wait_for(SessionEvicted)
            assert evicted.connection == 1 and "session:openapi-client" in evicted.scope
            assert "16 sessions" in evicted.reason
            assert [e.connection for e in recorder.of(SessionRestored)] == [1]
            assert recorder.of(Disconnected) == []
