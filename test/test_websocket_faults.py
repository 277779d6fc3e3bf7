"""The session survives each WebSocket fault of the simulator and comes back with its settings;
calls in flight fail with a transport error, and only idempotent ones are sent again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_websocket_support import (
    FAST_BACKOFF,
    TIME_SCALE,
    Recorder,
    SessionOpener,
    key_configuration,
    token_configuration,
    wait_until,
)

from openapi_client import (
    ApiConnectionError,
    ApiValueError,
    BadRequestException,
    Configuration,
    TooManyRequestsException,
)
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import ManualClock
from openapi_client.websocket import (
    Closed,
    Disconnected,
    Reconnecting,
    SessionRestored,
    State,
)

pytestmark = [pytest.mark.timeout(30), pytest.mark.timing]

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The time scale of the tests that are not about heartbeats: a test_request every second, and a
#: second to answer it, so that a busy machine never misses one (TIME_SCALE leaves 0.1 s) and an
#: extra Disconnected never appears. The settings restored still include the heartbeat.
CALM_SCALE = 0.1


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=CALM_SCALE) as simulator:
        yield simulator


@pytest.fixture
def fast_heartbeats() -> Iterator[DeribitSimulator]:
    """Heartbeats every 0.1 s, for the tests about them."""
    with DeribitSimulator(time_scale=TIME_SCALE) as simulator:
        yield simulator


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def assert_restored(sim: DeribitSimulator) -> None:
    """The session's only connection is a new one with every setting the session asked for.
    (The simulator numbers every opening handshake, refused ones included.)"""

    def only_a_new_one() -> list:
        connections = sim.ws_connections
        if len(connections) == 1 and connections[0].id > 1 and connections[0].heartbeat_interval:
            return connections
        return []

    (newest,) = wait_until(only_a_new_one, "one new connection with its settings")
    assert newest.client_name == "openapi-client-deribit-session"
    assert newest.client_id == "sim-client"
    assert "session:openapi-client" in newest.token_scope.split()
    assert newest.heartbeat_interval == 10
    assert newest.cancel_on_disconnect is True


@pytest.mark.parametrize(
    ("fault", "params", "code"),
    [
        ("ws_drop", {}, None),
        ("ws_close", {"code": 4000, "reason": "heartbeat close"}, 4000),
        ("ws_close", {"code": 1001, "reason": "restart"}, 1001),
        ("ws_malformed_frame", {}, 1007),
        ("ws_oversized", {"size": 2 << 20}, 1009),
    ],
    ids=["drop", "close-4000", "close-1001", "malformed", "oversized"],
)
def test_call_in_flight_is_retried_on_the_restored_session(
    sim: DeribitSimulator,
    recorder: Recorder,
    fault: str,
    params: dict,
    code: object,
    open_session: SessionOpener,
) -> None:
    with open_session(
        key_configuration(sim), recorder, cancel_on_disconnect=True, max_message_size=1 << 20
    ) as ws_client:
        api = ws_client.api
        sim.inject(fault, path="/private/get_cancel_on_disconnect", **params)
        answer = api.private_get_cancel_on_disconnect_get()
        assert answer["result"] == {"scope": "connection", "enabled": True}
        (lost,) = recorder.wait_for(Disconnected)
        assert lost.connection == 1
        if code is not None and fault != "ws_oversized":
            assert lost.code == code
        assert lost.cancel_on_disconnect_may_have_fired is True
        assert recorder.wait_for(SessionRestored, 2)[-1].connection == 2
        assert_restored(sim)
        assert [event.reason for event in sim.cancel_on_disconnect_events] == ["fault"]


def test_unanswered_heartbeat_closes_with_4000_and_the_session_returns(
    fast_heartbeats: DeribitSimulator, recorder: Recorder, open_session: SessionOpener
) -> None:
    sim = fast_heartbeats
    with open_session(key_configuration(sim), recorder, cancel_on_disconnect=True):
        sim.inject("ws_ignore_test", path="/public/test")
        (lost,) = recorder.wait_for(Disconnected)
        assert (lost.code, lost.cancel_on_disconnect_may_have_fired) == (4000, True)
        assert "heartbeat close" in lost.reason
        recorder.wait_for(SessionRestored, 2)
        assert_restored(sim)
        assert [event.reason for event in sim.cancel_on_disconnect_events] == ["heartbeat"]


def test_silent_connection_is_declared_dead_and_replaced(
    fast_heartbeats: DeribitSimulator, recorder: Recorder, open_session: SessionOpener
) -> None:
    # Heartbeats every 0.1 s keep a live connection well inside the 0.6 s liveness timeout; the
    # silence lasts 0.9 s longer than that, so only the liveness timeout can end the call, and a
    # busy machine has room both ways.
    sim = fast_heartbeats
    with open_session(
        key_configuration(sim), recorder, cancel_on_disconnect=True, liveness_timeout=0.6
    ) as ws_client:
        sim.inject("ws_silence", path="/private/get_cancel_on_disconnect", seconds=1.5)
        answer = ws_client.api.private_get_cancel_on_disconnect_get()
        assert answer["result"]["enabled"] is True
        (lost,) = recorder.wait_for(Disconnected)
        assert lost.code is None and "declared dead" in lost.reason
        assert_restored(sim)


def test_refused_handshake_waits_for_retry_after(
    sim: DeribitSimulator, recorder: Recorder, open_session: SessionOpener
) -> None:
    with open_session(key_configuration(sim), recorder, cancel_on_disconnect=True) as ws_client:
        sim.inject("ws_refuse", retry_after="1")
        sim.inject("ws_drop", path="/public/test")
        assert ws_client.call("public/test", idempotent=True)["result"]
        recorder.wait_for(SessionRestored, 2)
        first, second = recorder.of(Reconnecting)[:2]
        assert first.delay < 0.3  # the first attempt comes quickly
        assert "429" in second.error and second.delay >= 1.0  # then Retry-After is honoured
        assert_restored(sim)
        assert ws_client.state is State.READY


def test_too_many_requests_ends_the_connection_and_backs_off_longer(
    recorder: Recorder, open_session: SessionOpener
) -> None:
    # The credit pool is on a manual clock: it refills only when the test says so, not while a
    # busy machine makes the 40 calls slowly.
    clock = ManualClock()
    with DeribitSimulator(
        time_scale=CALM_SCALE,
        rate_limit=True,
        rate_limit_burst=20,
        rate_limit_per_second=20,
        clock=clock,
    ) as simulator:
        configuration = key_configuration(simulator, retries=0)
        with open_session(
            configuration, recorder, cancel_on_disconnect=True, throttle_delay=0.5
        ) as ws_client:
            with pytest.raises(TooManyRequestsException) as refused:
                for _ in range(40):
                    ws_client.call("public/test", idempotent=True)
            assert refused.value.error_code == 10028
            clock.advance(1.0)  # the pool refills for the reconnect
            lost = recorder.wait_for(Disconnected)[0]
            assert lost.cancel_on_disconnect_may_have_fired is True
            recorder.wait_for(SessionRestored, 2)
            # Every attempt waits the longer delay (one may meet the empty credit pool again).
            reconnecting = recorder.of(Reconnecting)
            assert reconnecting and all(event.delay >= 0.5 for event in reconnecting)
            assert_restored(simulator)
            assert ws_client.call("public/test")["result"]


def test_answers_out_of_order_reach_their_callers(
    sim: DeribitSimulator, recorder: Recorder, open_session: SessionOpener
) -> None:
    """A late answer overtaken by later ones still goes to its own caller; nothing reconnects."""
    with open_session(key_configuration(sim), recorder, cancel_on_disconnect=True) as ws_client:
        api = ws_client.api
        # One round trip after the delayed request arrived, its answer is still a second away.
        sim.inject("ws_delay", path="/private/get_cancel_on_disconnect", seconds=1.0)
        late = api.private_get_cancel_on_disconnect_get(scope="account", async_req=True)
        wait_until(
            lambda: any(r.path.endswith("/get_cancel_on_disconnect") for r in sim.requests),
            "the delayed call",
        )
        overtaking = [ws_client.call("public/test")["result"]["version"]]
        assert not late.ready()
        overtaking += [ws_client.call("public/test")["result"]["version"] for _ in range(2)]
        assert api.private_get_cancel_on_disconnect_get()["result"] == {
            "scope": "connection",
            "enabled": True,
        }
        assert late.get(timeout=5)["result"] == {"scope": "account", "enabled": False}
        assert len(overtaking) == 3 and recorder.of(Disconnected) == []
        (connection,) = sim.ws_connections
        assert (connection.id, connection.heartbeat_interval, connection.cancel_on_disconnect) == (
            1,
            10,
            True,
        )


def test_only_idempotent_calls_are_sent_again(
    sim: DeribitSimulator, open_session: SessionOpener
) -> None:
    with open_session(token_configuration(sim), heartbeat=None) as ws_client:
        sim.inject("ws_drop", path="/public/get_time")
        with pytest.raises(ApiConnectionError) as lost:
            ws_client.call("public/get_time")
        assert lost.value.status == 0 and lost.value.__cause__ is not None
        sim.inject("ws_drop", path="/public/test")
        assert ws_client.call("public/test", idempotent=True)["result"]
        assert len([r for r in sim.requests if r.path.endswith("/public/get_time")]) == 1


def test_gives_up_after_max_reconnects(recorder: Recorder, open_session: SessionOpener) -> None:
    simulator = DeribitSimulator(time_scale=TIME_SCALE).start()
    ws_client = open_session(token_configuration(simulator), recorder, max_reconnects=2)
    simulator.stop()
    (closed,) = recorder.wait_for(Closed)
    assert closed.failed and "gave up after 2" in closed.reason
    assert [event.attempt for event in recorder.of(Reconnecting)] == [1, 2]
    assert ws_client.state is State.FAILED
    with pytest.raises(ApiConnectionError, match="gave up"):
        ws_client.call("public/test", idempotent=True)
    ws_client.close()


def test_first_connection_failure_raises(open_session: SessionOpener) -> None:
    simulator = DeribitSimulator().start()
    url = simulator.url
    simulator.stop()
    configuration = Configuration(host=url, retries=0, request_timeout=(1.0, 1.0))
    with pytest.raises(ApiConnectionError, match="refused the connection") as refused:
        open_session(
            suite_defaults=False, configuration=configuration, reconnect_backoff=FAST_BACKOFF
        )
    assert refused.value.status == 0 and refused.value.__cause__ is not None


def test_refused_first_handshake_is_an_http_error(
    sim: DeribitSimulator, open_session: SessionOpener
) -> None:
    sim.inject("ws_refuse", count=5, retry_after="0")
    configuration = token_configuration(sim, retries=0)
    with pytest.raises(TooManyRequestsException) as refused:
        open_session(configuration)
    assert refused.value.status == 429 and refused.value.retry_after == 0


def test_wrong_credentials_fail_without_retrying(
    sim: DeribitSimulator, open_session: SessionOpener
) -> None:
    configuration = key_configuration(sim)
    configuration.client_secret = "not-the-secret"
    with pytest.raises(BadRequestException) as refused:
        open_session(configuration)
    assert refused.value.error_code == 13004
    assert "not-the-secret" not in str(refused.value) + repr(refused.value)
    assert sim.auth_requests == 1


def test_credentials_never_cross_plain_ws_off_loopback(open_session: SessionOpener) -> None:
    configuration = Configuration(host="http://203.0.113.9/api/v2", access_token="secret")
    with pytest.raises(ApiValueError, match="plain ws://"):
        open_session(suite_defaults=False, configuration=configuration)


def test_script_without_close_exits_promptly(sim: DeribitSimulator) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from openapi_client import Configuration, SessionManagementApi
        from openapi_client.websocket import WebSocketApiClient
        configuration = Configuration(host={sim.url!r}, access_token="sim-token")
        ws_client = WebSocketApiClient(configuration, heartbeat=10, cancel_on_disconnect=True)
        api = SessionManagementApi(ws_client)
        api.private_get_cancel_on_disconnect_get()
        pending = api.public_disable_heartbeat_get(async_req=True)
        print(time.time(), flush=True)
        """
    )
    sim.inject("ws_delay", path="/public/disable_heartbeat", seconds=20)
    ran = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    ended = time.time()
    assert ran.returncode == 0, ran.stderr
    last_line = float(ran.stdout.strip().splitlines()[-1])
    # Far below the 20 s the pending call would hold a process that waited for it.
    assert ended - last_line < 10.0, f"exited {ended - last_line:.1f} s after its last line"


def test_import_without_websockets_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['websockets'] = None\n"
        "try:\n"
        "    import openapi_client.websocket\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert "pip install 'openapi-client-deribit-session[websocket]'" in ran.stdout
