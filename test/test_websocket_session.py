"""The WebSocket session against the simulator, over real loopback sockets: every method, many
threads, heartbeats, events, state, closing and cancel-on-disconnect."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import TOKEN
from test_websocket_support import (
    SOON,
    Recorder,
    SessionOpener,
    key_configuration,
    session,
    token_configuration,
    wait_until,
)

from openapi_client import (
    ApiTimeoutError,
    ApiValueError,
    AsyncResult,
    BadRequestException,
    SessionManagementApi,
)
from openapi_client.exceptions import ApiException
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import ManualClock
from openapi_client.websocket import (
    Authenticated,
    Closed,
    Connected,
    Disconnected,
    HeartbeatAnswered,
    SessionRestored,
    State,
    TokenRefreshed,
)
from openapi_client.websocket.client import RawAnswer

pytestmark = pytest.mark.timeout(30)

#: Simulator time for the tests that are not about heartbeats: a test_request every second and a
#: second to answer it, so that a busy machine never misses one (an extra Disconnected or a second
#: connection would fail these tests for the wrong reason).
CALM_SCALE = 0.1
#: Simulator time for the tests about heartbeats: one every 0.5 s, and 0.5 s to answer it.
HEARTBEAT_SCALE = 0.05


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=CALM_SCALE) as simulator:
        yield simulator


@pytest.fixture
def heartbeat_sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=HEARTBEAT_SCALE) as simulator:
        yield simulator


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_settings_are_applied_on_connect(
    sim: DeribitSimulator, recorder: Recorder, open_session: SessionOpener
) -> None:
    with open_session(key_configuration(sim), recorder, cancel_on_disconnect=True) as ws_client:
        assert ws_client.state is State.READY
        (connection,) = sim.ws_connections
        assert connection.client_name == "openapi-client-deribit-session"
        assert connection.client_id == "sim-client"
        assert "session:openapi-client" in connection.token_scope.split()
        assert connection.heartbeat_interval == 10
        assert connection.cancel_on_disconnect is True
    kinds = [type(event) for event in recorder.events if not isinstance(event, HeartbeatAnswered)]
    assert kinds == [Connected, Authenticated, SessionRestored, Disconnected, Closed]


def test_every_session_method(sim: DeribitSimulator, open_session: SessionOpener) -> None:
    with open_session(key_configuration(sim), heartbeat=None) as ws_client:
        api = ws_client.api
        assert api.public_set_heartbeat_get(15)["result"] == "ok"
        assert sim.ws_connections[0].heartbeat_interval == 15
        assert ws_client.heartbeat == 15  # adopted: restored after a reconnect
        assert api.public_disable_heartbeat_get()["result"] == "ok"
        assert sim.ws_connections[0].heartbeat_interval is None
        assert api.private_enable_cancel_on_disconnect_get()["result"] == "ok"
        assert sim.ws_connections[0].cancel_on_disconnect is True
        assert ws_client.cancel_on_disconnect is True
        got = api.private_get_cancel_on_disconnect_get(scope="connection")
        assert got["result"] == {"scope": "connection", "enabled": True}
        assert api.private_disable_cancel_on_disconnect_get()["result"] == "ok"
        assert sim.ws_connections[0].cancel_on_disconnect is False
        data, status, headers = api.private_get_cancel_on_disconnect_get_with_http_info()
        assert (data["result"]["enabled"], status, dict(headers)) == (False, 200, {})
        assert data["jsonrpc"] == "2.0" and "usIn" in data


def test_access_token_goes_with_each_private_call(
    sim: DeribitSimulator, open_session: SessionOpener
) -> None:
    with open_session(token_configuration(sim), cancel_on_disconnect=True) as ws_client:
        assert sim.ws_connections[0].cancel_on_disconnect is True
        api = ws_client.api
        assert api.private_get_cancel_on_disconnect_get()["result"]["enabled"] is True
        sent = [r for r in sim.requests if r.path.endswith("/private/get_cancel_on_disconnect")]
        assert sent and all(r.query.get("access_token") == TOKEN for r in sent)


def test_private_call_without_credentials_is_refused_before_sending(
    sim: DeribitSimulator,
    open_session: SessionOpener,
) -> None:
    configuration = key_configuration(sim)
    configuration.client_id = configuration.client_secret = None
    with open_session(configuration) as ws_client:
        with pytest.raises(ApiValueError, match="needs credentials"):
            ws_client.api.private_get_cancel_on_disconnect_get()
    with pytest.raises(ApiValueError, match="needs credentials"):
        open_session(configuration, cancel_on_disconnect=True)


@pytest.mark.timing
def test_generated_style_keywords(sim: DeribitSimulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="openapi_client.websocket")
    with session(token_configuration(sim)) as ws_client:
        api = SessionManagementApi(ws_client)
        pending = api.public_set_heartbeat_get(20, async_req=True)
        assert isinstance(pending, AsyncResult)
        assert pending.get(timeout=10)["result"] == "ok"
        raw = api.public_set_heartbeat_get(30, _preload_content=False)
        assert isinstance(raw, RawAnswer) and raw.status == 200
        assert raw.json()["result"] == "ok" and raw.read().startswith(b"{")
        data, status, headers = api.public_set_heartbeat_get(30, _return_http_data_only=False)
        assert (data["result"], status, dict(headers)) == ("ok", 200, {})
        ws_client.configuration.retries = 0
        # The answer comes 1 s late; a call that took it would return it instead of raising,
        # so the timeout is told apart by its error, and 0.2 s is its least duration.
        sim.inject("ws_delay", path="/public/disable_heartbeat", seconds=1.0)
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError, match=r"did not answer within 0\.2 s") as late:
            api.public_disable_heartbeat_get(_request_timeout=0.2)
        assert late.value.status == 0 and time.monotonic() - started >= 0.2
        with pytest.raises(ApiValueError):
            api.public_disable_heartbeat_get(_request_timeout=-1)
        # The late answer arrives, is dropped, and the session carries on.
        wait_until(lambda: "came after its caller gave up" in caplog.text, "the late answer")
        assert api.public_set_heartbeat_get(10)["result"] == "ok"
        assert ws_client.state is State.READY and [c.id for c in sim.ws_connections] == [1]


def test_error_answers_raise_like_http(sim: DeribitSimulator, open_session: SessionOpener) -> None:
    with open_session(token_configuration(sim, client_side_validation=False)) as ws_client:
        with pytest.raises(BadRequestException) as refused:
            ws_client.api.public_set_heartbeat_get(5)
        error = refused.value
        assert (error.status, error.error_code) == (400, -32602)
        assert error.error_message == "Invalid params"
        assert error.error_data["param"] == "interval"
        assert error.data is not None and error.data["error"]["code"] == -32602
        assert "Deribit error -32602" in str(error)
        ws_client.configuration.client_side_validation = True
        with pytest.raises(ApiValueError, match="interval must be"):
            ws_client.api.public_set_heartbeat_get(5)


def test_call_any_method(sim: DeribitSimulator, open_session: SessionOpener) -> None:
    with open_session(token_configuration(sim)) as ws_client:
        assert ws_client.call("public/test")["result"]["version"]
        assert ws_client.call("private/get_cancel_on_disconnect", {"scope": "account"})[
            "result"
        ] == {"scope": "account", "enabled": False}
        with pytest.raises(ApiException) as unknown:
            ws_client.call("public/no_such_method", idempotent=True)
        assert unknown.value.error_code == -32601
        for bad in ("get_time", "public/../x", ""):
            with pytest.raises(ApiValueError, match="must name a Deribit method"):
                ws_client.call(bad)
        with pytest.raises(ApiValueError, match="close\\(logout=True\\)"):
            ws_client.call("private/logout")
        with pytest.raises(ApiValueError, match="JSON"):
            ws_client.call("public/test", {"x": float("nan")})
        with pytest.raises(ApiValueError, match="at most 32768"):
            ws_client.call("public/test", {"x": "y" * 40_000})


@pytest.mark.timing
def test_many_threads_share_one_connection(sim: DeribitSimulator) -> None:
    """Each caller gets its own answer, also when answers come back out of order."""
    with session(token_configuration(sim), heartbeat=None) as ws_client:
        api = SessionManagementApi(ws_client)
        sim.inject("ws_delay", count=5, path="/private/get_cancel_on_disconnect", seconds=0.2)

        def work(index: int) -> list[str]:
            scopes = []
            for round_ in range(25):
                scope = "account" if (index + round_) % 2 else "connection"
                answer = api.private_get_cancel_on_disconnect_get(scope=scope)
                scopes.append(answer["result"]["scope"] == scope)
            return scopes

        with ThreadPoolExecutor(8) as pool:
            results = [ok for scopes in pool.map(work, range(8)) for ok in scopes]
        assert len(results) == 200 and all(results)
        assert len(sim.ws_connections) == 1 and sim.ws_connections[0].id == 1


@pytest.mark.timing
def test_heartbeats_answered_under_load(
    heartbeat_sim: DeribitSimulator, recorder: Recorder
) -> None:
    """A test_request every 0.5 s, each answered within 0.5 s, while 6 threads call as fast as
    they can: three in a row answered, none missed (a miss closes the connection with 4000)."""
    sim = heartbeat_sim
    with session(token_configuration(sim), recorder) as ws_client:
        api = SessionManagementApi(ws_client)
        stop = threading.Event()
        calls = [0] * 6

        def hammer(index: int) -> None:
            while not stop.is_set():
                api.private_get_cancel_on_disconnect_get()
                calls[index] += 1

        with ThreadPoolExecutor(6) as pool:
            running = [pool.submit(hammer, index) for index in range(6)]
            try:
                wait_until(lambda: sum(calls) >= 50, "the callers to get going")
                answered = len(recorder.of(HeartbeatAnswered))
                busy = sum(calls)
                recorder.wait_for(HeartbeatAnswered, answered + 3)
                assert sum(calls) > busy + 50  # the callers kept calling meanwhile
            finally:
                stop.set()
            for future in running:
                future.result()
        assert recorder.of(Disconnected) == []
        assert [c.id for c in sim.ws_connections] == [1]


@pytest.mark.timing
def test_slow_callbacks_never_delay_heartbeat_answers(
    heartbeat_sim: DeribitSimulator, open_session: SessionOpener
) -> None:
    sim = heartbeat_sim
    release = threading.Event()
    entered = threading.Event()

    def stuck(*args: Any) -> None:
        entered.set()
        release.wait(SOON)  # user code that does not return until the test lets it

    with open_session(token_configuration(sim), on_event=stuck) as ws_client:
        try:
            ws_client.subscribe("platform_state", stuck)
            for _ in range(3):
                sim.publish_platform_state({"maintenance": False})
            assert entered.wait(SOON)
            # Every callback since is stuck behind the first; a test_request unanswered for
            # 0.5 s would close the connection with 4000.
            answered = _heartbeats(sim)
            wait_until(
                lambda: _heartbeats(sim) >= answered + 3,
                "three heartbeat answers while the callbacks are stuck",
            )
            assert [c.id for c in sim.ws_connections] == [1]
        finally:
            release.set()


def _heartbeats(sim: DeribitSimulator) -> int:
    return sum(1 for r in sim.requests if r.path.endswith("/public/test"))


def test_subscriptions_reach_the_callback_and_are_renewed(
    sim: DeribitSimulator,
    recorder: Recorder,
    open_session: SessionOpener,
) -> None:
    notices: list[dict[str, Any]] = []
    with open_session(token_configuration(sim), recorder) as ws_client:
        confirmed = ws_client.subscribe(
            ["platform_state"], lambda channel, data: notices.append(data)
        )
        assert confirmed == ["platform_state"]
        assert sim.publish_platform_state({"maintenance": True}) == 1
        wait_until(lambda: notices == [{"maintenance": True}], "the first notice")
        sim.inject("ws_drop", path="/public/test")
        ws_client.call("public/test", idempotent=True)  # meets the drop, answered after it
        recorder.wait_for(SessionRestored, 2)
        assert "platform_state" in sim.ws_connections[-1].subscriptions
        assert recorder.of(SessionRestored)[-1].channels == ("platform_state",)
        sim.publish_platform_state({"locked": True})
        wait_until(lambda: len(notices) == 2, "the notice after the reconnect")
        ws_client.unsubscribe("platform_state")
        assert sim.publish_platform_state({"x": 1}) == 0


def test_events_iterator_and_state(sim: DeribitSimulator, open_session: SessionOpener) -> None:
    ws_client = open_session(token_configuration(sim), heartbeat=None)
    assert ws_client.state is State.READY
    sim.inject("ws_close", path="/public/test", code=1011, reason="going")
    ws_client.call("public/test", idempotent=True)
    ws_client.close()
    assert ws_client.state is State.CLOSED
    names = [type(event).__name__ for event in ws_client.events(timeout=5)]
    assert names == [
        "Connected",
        "SessionRestored",
        "Disconnected",
        "Reconnecting",
        "Connected",
        "SessionRestored",
        "Disconnected",
        "Closed",
    ]
    assert list(ws_client.events(timeout=0.1)) == []
    with pytest.raises(ApiValueError, match="closed"):
        ws_client.call("public/test")
    ws_client.close()  # twice is fine


#: For the tests that look at the simulator after a close: the client waits for the simulator to
#: end the connection (it records cancel-on-disconnect first), however busy the machine.
PATIENT_CLOSE = 5.0


def test_close_fires_cancel_on_disconnect(
    sim: DeribitSimulator, recorder: Recorder, open_session: SessionOpener
) -> None:
    with open_session(
        key_configuration(sim), recorder, cancel_on_disconnect=True, close_timeout=PATIENT_CLOSE
    ):
        pass
    (fired,) = sim.cancel_on_disconnect_events
    assert (fired.connection_id, fired.reason) == (1, "closed")
    assert recorder.of(Disconnected)[-1].cancel_on_disconnect_may_have_fired is True


def test_close_with_logout_keeps_the_orders(
    sim: DeribitSimulator, recorder: Recorder, open_session: SessionOpener
) -> None:
    ws_client = open_session(
        key_configuration(sim), recorder, cancel_on_disconnect=True, close_timeout=PATIENT_CLOSE
    )
    ws_client.close(logout=True)
    assert any(r.path.endswith("/private/logout") for r in sim.requests)
    assert sim.cancel_on_disconnect_events == []
    lost = recorder.of(Disconnected)[-1]
    assert (lost.code, lost.cancel_on_disconnect_may_have_fired) == (1000, False)
    assert "logout" in lost.reason  # the simulator ended it after the logout
    assert isinstance(recorder.events[-1], Closed)


def test_cancel_on_disconnect_may_have_fired_only_when_on(
    sim: DeribitSimulator,
    recorder: Recorder,
    open_session: SessionOpener,
) -> None:
    with open_session(key_configuration(sim), recorder, close_timeout=PATIENT_CLOSE):
        pass
    assert recorder.of(Disconnected)[-1].cancel_on_disconnect_may_have_fired is False
    assert sim.cancel_on_disconnect_events == []


@pytest.mark.timing
@pytest.mark.usefixtures("short_token_lifetimes")
def test_token_refreshed_during_a_long_session(open_session: SessionOpener) -> None:
    """Tokens live 1 s (``expires_in`` is whole seconds) and are renewed 0.8 s after each grant
    (the margin is capped at a fifth of the lifetime), on the open connection, with calls going
    on. The simulator's clock, which expires tokens, moves only when the test says: after each
    renewal, far enough that the token before it has expired, so every later call must go with
    the renewed one. A busy machine that renews late only makes the test slower."""
    recorder = Recorder()
    clock = ManualClock()
    started = time.time()
    with DeribitSimulator(time_scale=CALM_SCALE, token_ttl=1.0, clock=clock) as simulator:
        configuration = key_configuration(simulator, token_refresh_margin=0.5)
        with open_session(configuration, recorder) as ws_client:
            api = ws_client.api
            calls = 0

            def call() -> None:
                nonlocal calls
                assert api.private_get_cancel_on_disconnect_get()["result"]["enabled"] is False
                calls += 1

            for renewal in (1, 2):
                clock.advance(0.6)  # the token in use has 0.4 s left; the one before expired
                granted = simulator.auth_requests  # a grant counted later was issued after this
                deadline = time.monotonic() + SOON
                while not (
                    simulator.auth_requests > granted
                    and len(recorder.of(TokenRefreshed)) >= renewal
                ):
                    assert time.monotonic() < deadline, f"no renewal {renewal} within {SOON} s"
                    call()
                    time.sleep(0.02)
                call()
            clock.advance(0.6)
            call()
            refreshed = recorder.of(TokenRefreshed)
            assert refreshed and all(event.expires_in == 1.0 for event in refreshed)
            assert recorder.of(Disconnected) == []
            # No call was refused for an expired token and sent again.
            sent = [r for r in simulator.requests if r.path.endswith("/get_cancel_on_disconnect")]
            assert len(sent) == calls + 1  # and the one that restored the session
            # Never renewed before its time: each renewal 0.8 s after the grant before at least.
            grants = [r.time for r in simulator.requests if r.path.endswith("/public/auth")]
            assert all(when >= started + 0.8 * k - 0.01 for k, when in enumerate(grants))


@pytest.mark.timing
def test_one_client_thread_safe_close_during_calls(sim: DeribitSimulator) -> None:
    ws_client = session(token_configuration(sim), heartbeat=None)
    # An answer 20 s late: a close that waited for it would take far longer than the bound.
    sim.inject("ws_delay", path="/public/disable_heartbeat", seconds=20.0)
    failures: list[BaseException] = []

    def in_flight() -> None:
        try:
            SessionManagementApi(ws_client).public_disable_heartbeat_get()
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=in_flight)
    thread.start()
    wait_until(
        lambda: any(r.path.endswith("/public/disable_heartbeat") for r in sim.requests), "the call"
    )
    started = time.monotonic()
    ws_client.close()
    thread.join(SOON)
    assert time.monotonic() - started < 5.0 and not thread.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], (ApiException, ApiValueError))
