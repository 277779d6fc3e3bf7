"""The dead man's switch (issue 19): ``WebSocketApiClient(watchdog=SECONDS)`` and ``check_in()``.

When the bot stops checking in, the session closes its connection without logging out, so that
Deribit's cancel-on-disconnect cancels its orders; it says so (``WatchdogExpired`` then
``Disconnected``), reconnects only at the next check-in, and refuses calls meanwhile. The timing
is the library's own thread's: it holds while the bot's threads are stuck or busy. Against the
simulator, over real loopback sockets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_websocket_support import (
    SOON,
    Recorder,
    key_configuration,
    session,
    wait_until,
)

from openapi_client import ApiConnectionError, ApiValueError, Configuration, SessionManagementApi
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import DeribitTestKit
from openapi_client.websocket import (
    Connected,
    Disconnected,
    SessionRestored,
    State,
    WatchdogExpired,
    WebSocketApiClient,
)

pytestmark = pytest.mark.timeout(60)

#: A test_request every simulated 10 s, each a real second here: these tests are not about them.
CALM_SCALE = 0.1
#: How late the watchdog may fire (issue 19).
PROMPT = 0.1


class Reference:
    """Threads that do nothing but sleep until a moment and note how late they woke: what the
    machine and the interpreter allow any thread at that moment (beside busy threads, Python
    hands its lock to one waiting thread at a time, every 5 ms, in no promised order). The
    watchdog must fire within :data:`PROMPT` of its deadline; only when the latest of these
    threads was itself held back by more than half of that (the scheduler, or other processes
    saturating the CPUs) does the bound grow, by that much: the library cannot be faster than
    the scheduler lets any thread be."""

    def __init__(self, at: float, threads: int = 3) -> None:
        self.lates: list[float] = []
        self._threads = [
            threading.Thread(target=self._sleep, args=(at,), daemon=True) for _ in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _sleep(self, at: float) -> None:
        threading.Event().wait(max(0.0, at - time.monotonic()))
        self.lates.append(time.monotonic() - at)

    def bound(self) -> float:
        for thread in self._threads:
            thread.join(SOON)
        return PROMPT + max(0.0, max(self.lates) - PROMPT / 2)


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=CALM_SCALE) as simulator:
        yield simulator


@pytest.fixture
def short_watchdogs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lets a watchdog be shorter than its floor of 1 s, so that a thousand check-ins take
    seconds, not minutes."""
    monkeypatch.setattr("openapi_client.websocket.session_core.MIN_WATCHDOG", 0.01)


def watched(sim: DeribitSimulator, recorder: Recorder, **options: Any) -> WebSocketApiClient:
    settings: dict[str, Any] = {"cancel_on_disconnect": True, "watchdog": 1.0, "heartbeat": None}
    settings.update(options)
    return session(key_configuration(sim), recorder, **settings)


@pytest.mark.timing
def test_a_bot_that_stops_checking_in_has_its_orders_cancelled(
    sim: DeribitSimulator,
) -> None:
    recorder = Recorder()
    kit = DeribitTestKit(sim)
    with watched(sim, recorder) as ws_client:
        assert repr(ws_client).endswith("watchdog=1)") and ws_client.watchdog == 1.0
        for _ in range(3):
            ws_client.check_in()
            time.sleep(0.2)
        (expired,) = recorder.wait_for(WatchdogExpired)
        fired = kit.assert_cancelled_on_disconnect(reason="closed", connection=1)
        assert fired.connection_id == 1
        lost = recorder.wait_for(Disconnected)[0]
        kinds = [type(e).__name__ for e in recorder.events]
        kinds = [kind for kind in kinds if kind != "HeartbeatAnswered"]
        assert kinds[-2:] == ["WatchdogExpired", "Disconnected"], recorder.events
        assert expired.connection == 1 and expired.since_check_in >= 1.0
        assert lost.cancel_on_disconnect_may_have_fired is True and "watchdog" in lost.reason
        assert not any(r.path.endswith("/private/logout") for r in sim.requests)
        assert ws_client.state is State.WATCHDOG_EXPIRED
        with pytest.raises(ApiConnectionError, match="watchdog expired") as refused:
            SessionManagementApi(ws_client).private_get_cancel_on_disconnect_get()
        assert "check_in()" in str(refused.value)
        time.sleep(0.5)  # no reconnect by itself
        assert len(recorder.of(Connected)) == 1 and sim.ws_connections == []
        ws_client.check_in()  # the bot is back: a new connection, restored
        restored = recorder.wait_for(SessionRestored, 2)[-1]
        assert restored.connection == 2 and restored.cancel_on_disconnect is True
        answer = SessionManagementApi(ws_client).private_get_cancel_on_disconnect_get()
        assert answer["result"]["enabled"] is True
        assert ws_client.state is State.READY


def _last_check_in(ws_client: WebSocketApiClient) -> float:
    """Check in, and return a moment at or after it (monotonic)."""
    ws_client.check_in()
    return time.monotonic()


@pytest.mark.timing
def test_the_watchdog_fires_on_time_while_the_bot_is_stuck_in_a_lock(
    sim: DeribitSimulator,
) -> None:
    recorder = Recorder()
    stuck = threading.Lock()
    stuck.acquire()
    arrived: list[float] = []

    def on_event(event: Any) -> None:
        if isinstance(event, WatchdogExpired):
            arrived.append(time.monotonic())
        recorder(event)

    with watched(sim, recorder, on_event=on_event) as ws_client:
        checked_in: list[float] = []
        started = threading.Event()

        def bot() -> None:
            checked_in.append(_last_check_in(ws_client))
            started.set()
            stuck.acquire(timeout=SOON)  # deadlocked, as far as the test goes

        thread = threading.Thread(target=bot)
        thread.start()
        try:
            assert started.wait(SOON)
            reference = Reference(checked_in[0] + 1.0)
            (expired,) = recorder.wait_for(WatchdogExpired)
        finally:
            stuck.release()
            thread.join(SOON)
        assert expired.late < reference.bound(), (expired, reference.lates)
        # Seen from outside: published well within a second of the deadline.
        assert arrived[0] - (checked_in[0] + 1.0) < 1.0


@pytest.mark.timing
def test_the_watchdog_fires_on_time_beside_eight_busy_threads(sim: DeribitSimulator) -> None:
    recorder = Recorder()
    stop = threading.Event()

    def busy() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    with watched(sim, recorder) as ws_client:
        hogs = [threading.Thread(target=busy) for _ in range(8)]
        for hog in hogs:
            hog.start()
        try:
            reference = Reference(_last_check_in(ws_client) + 1.0)
            (expired,) = recorder.wait_for(WatchdogExpired)
        finally:
            stop.set()
            for hog in hogs:
                hog.join(SOON)
        assert expired.late < reference.bound(), (expired, reference.lates)
        DeribitTestKit(sim).assert_cancelled_on_disconnect(reason="closed")


@pytest.mark.timing
@pytest.mark.usefixtures("short_watchdogs")
def test_check_ins_in_time_never_fire_the_watchdog(sim: DeribitSimulator) -> None:
    """A thousand check-ins at a tenth of the period (0.05 s): the watchdog fires only after a
    check-in that really came late (a busy machine may hold the bot's thread back), never
    otherwise."""
    period, interval = 0.05, 0.005
    recorder = Recorder()
    with watched(sim, recorder, watchdog=period, cancel_on_disconnect=False) as ws_client:
        times: list[float] = []
        for _ in range(1000):
            ws_client.check_in()
            times.append(time.monotonic())
            time.sleep(interval)
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        late = [gap for gap in gaps if gap >= period * 0.9]
        fired = recorder.of(WatchdogExpired)
        assert len(fired) <= len(late), (len(fired), sorted(gaps)[-5:])
        if not late:
            assert fired == [] and ws_client.state is State.READY


@pytest.mark.parametrize("watchdog", [0.5, 0, -1, True, "10", float("inf"), float("nan")])
def test_the_watchdog_setting_is_checked(watchdog: Any) -> None:
    with pytest.raises(ApiValueError, match="watchdog must be None or a number of seconds >= 1"):
        WebSocketApiClient(Configuration(host="http://127.0.0.1:9/api/v2"), watchdog=watchdog)


def test_without_a_watchdog_check_in_does_nothing(sim: DeribitSimulator) -> None:
    recorder = Recorder()
    with session(key_configuration(sim), recorder) as ws_client:
        assert ws_client.watchdog is None and "watchdog" not in repr(ws_client)
        ws_client.check_in()
        assert ws_client.call("public/test")["result"]["version"]
        wait_until(lambda: ws_client.state is State.READY, "ready")
    assert recorder.of(WatchdogExpired) == []
