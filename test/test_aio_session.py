"""The asyncio driver of the session core (``openapi_client.aio.session``), against the simulator
over loopback: what only an event loop has to get right. Calls as futures that the connection's
callback completes (a thousand in flight), cancellation (a cancelled caller abandons its call and
the late answer is dropped), ``test_request`` answered at once while tasks hammer the session,
callbacks (plain and coroutine) off the connection, the watchdog on a blocked loop, and no task left
behind after ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET
from test_hostile_lifecycle import child_env
from test_websocket_hostile_threads import InjectedFault, once
from test_websocket_support import FAST_BACKOFF, SOON, run_script
from test_websocket_watchdog import Reference

from openapi_client import ApiConnectionError, ApiTimeoutError, Configuration, RetryPolicy
from openapi_client.aio.connection import open_connection
from openapi_client.aio.hub import AsyncEventHub
from openapi_client.aio.session import AsyncSession
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import DeribitTestKit
from openapi_client.websocket import (
    Closed,
    Disconnected,
    Event,
    HeartbeatAnswered,
    SessionRestored,
    State,
    WatchdogExpired,
)
from openapi_client.websocket.connection import ConnectOptions
from openapi_client.websocket.core import routing
from openapi_client.websocket.session_core import CoreSettings, SessionCore
from openapi_client.websocket.url import resolve

pytestmark = pytest.mark.timeout(60)


class Events:
    """The session's events, as ``on_event`` (a plain function here) gets them."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self._arrived = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.seen.append(event)
        self._arrived.set()

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.seen if isinstance(event, kind)]

    async def wait_for(self, kind: type, count: int = 1) -> list[Any]:
        async def arrived() -> list[Any]:
            while len(self.of(kind)) < count:
                self._arrived.clear()
                await self._arrived.wait()
            return self.of(kind)

        return await asyncio.wait_for(arrived(), SOON)


@pytest.fixture
def sim() -> Any:
    with DeribitSimulator(time_scale=0.05) as simulator:
        yield simulator


def key_configuration(sim: DeribitSimulator) -> Configuration:
    return Configuration(host=sim.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


@contextlib.asynccontextmanager
async def opened(
    sim: DeribitSimulator, events: Events | None = None, **settings: Any
) -> AsyncIterator[AsyncSession]:
    """A started session on ``sim`` (API key, cancel-on-disconnect, heartbeat 10 s), closed
    after the block."""
    configuration = settings.pop("configuration", None) or key_configuration(sim)
    target = resolve(configuration.host, None)
    options = ConnectOptions(5.0, 0.5, 1 << 24, 20.0, None)
    values: dict[str, Any] = {
        "url": target.url,
        "display": target.display,
        "heartbeat": 10,
        "cancel_on_disconnect": True,
        "reconnect_backoff": FAST_BACKOFF,
        "call_timeout": 5.0,
        "close_timeout": 0.5,
    }
    values.update(settings)

    def connect() -> Any:
        return open_connection(
            target,
            options,
            ssl_context=None,
            server_hostname=None,
            user_agent="t",
            proxy=None,
            proxy_headers=None,
        )

    session = AsyncSession(configuration, CoreSettings(**values), connect, AsyncEventHub(events))
    await session.start(RetryPolicy(total=0))
    try:
        yield session
    finally:
        await session.close(logout=False)


@pytest.mark.asyncio
async def test_a_thousand_calls_in_flight_each_get_their_own_answer(sim: DeribitSimulator) -> None:
    async with opened(sim) as session:
        calls = await asyncio.gather(
            *(
                session.call("public/set_heartbeat", {"interval": 10 + n % 50}, 5, 5)
                for n in range(1000)
            )
        )
        ids = [call.id for call in calls]
        assert len(set(ids)) == 1000
        assert all(call.error is None and call.message["id"] == call.id for call in calls)
        assert all(call.message["result"] == "ok" for call in calls)


@pytest.mark.asyncio
async def test_a_cancelled_call_is_abandoned_and_its_late_answer_dropped(
    sim: DeribitSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.inject("ws_delay", path="/public/get_time", seconds=0.3)
    caplog.set_level(logging.DEBUG, "openapi_client.websocket")
    async with opened(sim) as session:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(session.call("public/get_time", {}, 5, 5), 0.05)
        assert session.core._router.pending == {}  # forgotten at once
        await asyncio.sleep(0.5)  # the answer comes, to nobody
        assert "came after its caller gave up" in caplog.text
        task = asyncio.ensure_future(session.call("public/test", {}, 5, 5))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        answer = await session.call("public/test", {}, 5, 5)  # the session goes on
        assert answer.message["result"]["version"] and session.state is State.READY


@pytest.mark.timing
@pytest.mark.asyncio
async def test_heartbeats_are_answered_at_once_while_eight_tasks_hammer_calls(
    sim: DeribitSimulator,
) -> None:
    """The tasks hammer for 1.2 s, and on until two heartbeats (a test_request every 0.5 s)
    were answered, however late a loaded machine delivers them (at most :data:`SOON`)."""
    events = Events()
    async with opened(sim, events) as session:
        started = time.monotonic()

        def hammering() -> bool:
            elapsed = time.monotonic() - started
            if elapsed >= SOON:
                return False
            return elapsed < 1.2 or len(events.of(HeartbeatAnswered)) < 2

        async def hammer() -> int:
            count = 0
            while hammering() and count < 100_000:
                await session.call("public/get_time", {}, 5, 5)
                count += 1
            return count

        counts = await asyncio.gather(*(hammer() for _ in range(8)))
        assert sum(counts) > 100
        answered = events.of(HeartbeatAnswered)
        assert len(answered) >= 2
        assert max(event.answered_in for event in answered) < 1.0
    assert [type(e) for e in events.of(Disconnected)] == [Disconnected]  # the close only


@pytest.mark.timing
@pytest.mark.asyncio
async def test_a_slow_coroutine_callback_never_delays_heartbeat_answers(
    sim: DeribitSimulator,
) -> None:
    events = Events()  # on_event: a plain function
    slow: list[Any] = []

    async def slowly(channel: str, data: Any) -> None:
        await asyncio.sleep(1.2)  # two heartbeat intervals go by meanwhile
        slow.append(data)

    async with opened(sim, events) as session:
        session.add_subscriptions(["platform_state"], slowly)
        await session.call("public/subscribe", {"channels": ["platform_state"]}, 5, 5)
        assert DeribitTestKit(sim).publish_platform_state(locked=True) == 1
        await asyncio.sleep(1.3)
        assert slow == [{"locked": True}]
        answered = await events.wait_for(HeartbeatAnswered, 2)
        assert max(event.answered_in for event in answered) < 0.5
        assert events.of(Disconnected) == [] and session.core.connection == 1


@pytest.mark.timing
@pytest.mark.asyncio
async def test_the_watchdog_cuts_the_connection_while_the_loop_is_blocked(
    sim: DeribitSimulator,
) -> None:
    events = Events()
    kit = DeribitTestKit(sim)
    async with opened(sim, events, watchdog=0.4, heartbeat=None) as session:
        session.check_in()
        checked_in = time.monotonic()
        reference = Reference(checked_in + 0.4)
        time.sleep(1.0)  # the bot froze: the event loop runs nothing for a second
        unblocked = time.time()
        fired = kit.assert_cancelled_on_disconnect(reason="closed", connection=1)
        assert fired.time < unblocked  # Deribit saw the end while the loop was still blocked
        (expired,) = await events.wait_for(WatchdogExpired)
        assert expired.late < reference.bound(), (expired, reference.lates)
        lost = (await events.wait_for(Disconnected))[0]
        assert lost.cancel_on_disconnect_may_have_fired and "watchdog" in lost.reason
        assert session.state is State.WATCHDOG_EXPIRED
        with pytest.raises(ApiConnectionError, match="check_in"):
            await session.call("public/test", {}, 5, 5)
        threading.Thread(target=session.check_in).start()  # from any thread
        restored = (await events.wait_for(SessionRestored, 2))[-1]
        assert restored.connection == 2 and restored.cancel_on_disconnect
        assert (await session.call("public/test", {}, 5, 5)).message


@pytest.mark.asyncio
async def test_cancelled_while_starting_leaves_nothing_running(sim: DeribitSimulator) -> None:
    sim.inject("ws_delay", path="/public/hello", seconds=5)
    before = asyncio.all_tasks()

    async def start() -> None:
        async with opened(sim):
            pytest.fail("the session cannot be ready: its hello is not answered yet")

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(start(), 0.3)
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


NO_TASK_LEFT = textwrap.dedent(
    """
    import asyncio, sys
    sys.path[:0] = sys.argv[2:]
    from test_aio_session import opened, Events
    from openapi_client.simulator import DeribitSimulator

    async def main(url):
        with DeribitSimulator(time_scale=0.05) as sim:
            events = Events()
            async with opened(sim, events, watchdog=5.0) as session:
                await asyncio.gather(*(session.call("public/test", {}, 5, 5) for _ in range(50)))
                sim.inject("ws_drop", path="/public/get_time")
                await session.call("public/get_time", {}, 5, 5)
                await events.wait_for(SessionRestored, 2)
            assert asyncio.all_tasks() == {asyncio.current_task()}, asyncio.all_tasks()

    from openapi_client.websocket import SessionRestored
    loop = asyncio.new_event_loop()
    loop.run_until_complete(main(sys.argv[1]))
    loop.close()  # at once: a task still pending would be reported destroyed
    print("ok")
    """
)


def test_close_leaves_no_task_nor_transport_behind() -> None:
    """In a child process with asyncio's debug mode and every warning an error: a session that
    made calls and lost a connection closes without a pending task or an unclosed transport,
    and the loop closes at once without a complaint."""
    test_dir = str(__import__("pathlib").Path(__file__).parent)
    env = {**child_env(), "PYTHONASYNCIODEBUG": "1"}
    ran = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", "-c", NO_TASK_LEFT, "unused", test_dir],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0 and ran.stdout.strip().endswith("ok"), ran.stderr[-3000:]
    for complaint in ("was destroyed but it is pending", "unclosed", "never retrieved"):
        assert complaint not in ran.stderr, ran.stderr[-3000:]


@pytest.mark.asyncio
async def test_a_reader_that_dies_fails_the_call_in_flight_and_the_session_comes_back(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The reader task fails while it publishes a heartbeat's answer: the call waiting for a
    late answer fails at once, ``Disconnected`` says the reader failed, the session comes back."""
    once(
        monkeypatch,
        "_publish",
        InjectedFault("injected"),
        lambda event: isinstance(event, HeartbeatAnswered),
        owner=AsyncSession,
    )
    events = Events()
    async with opened(sim, events) as session:
        sim.inject("ws_delay", path="/public/get_time", seconds=20.0)
        started = time.monotonic()
        failed = await session.call("public/get_time", {}, 15, 15)
        assert isinstance(failed.error, ApiConnectionError), failed.error
        assert "the reader failed" in str(failed.error) and failed.error.status == 0
        assert time.monotonic() - started < 5.0
        lost = (await events.wait_for(Disconnected))[0]
        assert lost.reason == "the reader failed (InjectedFault)"
        await events.wait_for(SessionRestored, 2)
        assert (await session.call("public/test", {}, 5, 5)).message
    assert "InjectedFault: injected" in caplog.text


@pytest.mark.asyncio
async def test_a_timer_that_fails_ends_the_session_clearly(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The timer task fails as a reconnect is due: the session gives up at once (FAILED,
    ``Closed(failed=True)``), and calls are refused without waiting."""
    events = Events()
    async with opened(sim, events) as session:
        once(monkeypatch, "timer", RuntimeError("injected"), owner=SessionCore)
        sim.inject("ws_drop", path="/public/test")
        assert isinstance((await session.call("public/test", {}, 5, 5)).error, ApiConnectionError)
        (closed,) = await events.wait_for(Closed)
        assert closed.failed and closed.reason == "the session's timer failed (RuntimeError)"
        assert session.state is State.FAILED
        started = time.monotonic()
        with pytest.raises(ApiConnectionError, match="gave up"):
            await session.call("public/test", {}, 10, 10)
        assert time.monotonic() - started < 1.0
    assert "the timer of the WebSocket session failed" in caplog.text


@pytest.mark.timing
@pytest.mark.asyncio
async def test_check_ins_in_time_never_fire_the_watchdog(sim: DeribitSimulator) -> None:
    """A thousand check-ins from a task, at a tenth of the period: the watchdog fires only after
    a check-in that really came late (a busy machine may hold the loop back), never otherwise."""
    period, interval = 0.025, 0.0025
    events = Events()
    async with opened(sim, events, watchdog=period, cancel_on_disconnect=False) as session:
        times: list[float] = []
        for _ in range(1000):
            session.check_in()
            times.append(time.monotonic())
            await asyncio.sleep(interval)
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        late = [gap for gap in gaps if gap >= period * 0.9]
        fired = events.of(WatchdogExpired)
        assert len(fired) <= len(late), (len(fired), sorted(gaps)[-5:])
        if not late:
            assert fired == [] and session.state is State.READY


FORKING_SESSION = r"""
import asyncio, json, os, sys
from openapi_client import ApiException, Configuration, aio

configuration = Configuration(
    host=sys.argv[1], access_token="sim-token", request_timeout=(5, 5), retries=0
)
loop = asyncio.new_event_loop()
ws = aio.WebSocketApiClient(configuration, heartbeat=10)
loop.run_until_complete(ws.open())
assert loop.run_until_complete(ws.call("public/test"))["result"]["version"]
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # the child: asyncio carries no loop across a fork, so it runs one of its own
    outcome = {"calls": []}

    async def child():
        for attempt in range(10):
            try:
                answer = await ws.call("public/get_time")
                outcome["calls"].append(f"answered: {answer.get('result')!r}")
            except BaseException as error:
                outcome["calls"].append(f"{type(error).__name__}: {error}")
        outcome["state"] = ws.state.value
        await ws.close()  # the parent's connection: nothing to do here
        outcome["events"] = [type(event).__name__ async for event in ws.events(timeout=0.1)]

    try:
        asyncio.new_event_loop().run_until_complete(child())
    finally:
        os.write(write, json.dumps(outcome).encode())
        os._exit(0)
os.close(write)


async def parent():
    wrong = []
    for _ in range(40):
        try:
            result = (await ws.call("public/test"))["result"]
            if not (isinstance(result, dict) and "version" in result):
                wrong.append(repr(result))
        except ApiException as error:
            wrong.append(repr(error))
    return wrong


wrong = loop.run_until_complete(parent())
child = json.loads(os.read(read, 1 << 20) or b"{}")
_, status = os.waitpid(pid, 0)
state = ws.state.value
loop.run_until_complete(ws.close())
loop.close()
print(json.dumps({"child": child, "child_exit": status, "parent_wrong": wrong, "state": state}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_refuses_calls_and_the_parent_gets_only_its_answers(
    sim: DeribitSimulator,
) -> None:
    """A process forks between two runs of its event loop; the child's copy of the session
    never touches the parent's connection: every call says to build a new client."""
    seen = run_script(FORKING_SESSION, sim.url, timeout=25)
    child = seen["child"]
    assert len(child["calls"]) == 10 and all(
        call.startswith("ApiValueError: this WebSocketApiClient was created in another process")
        for call in child["calls"]
    ), child
    assert (child["state"], child["events"], seen["child_exit"]) == ("closed", [], 0)
    assert seen["parent_wrong"] == [] and seen["state"] == "ready", seen
    assert not any(r.path.endswith("/public/get_time") for r in sim.requests)
    assert len({r.connection_id for r in sim.requests}) == 1


@pytest.mark.timing
@pytest.mark.asyncio
async def test_each_unanswered_call_times_out_at_its_own_deadline(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One timer of the loop watches every call's deadline: a call made later with a shorter
    timeout times out at its own deadline, not at the earlier call's; answered calls between
    them change nothing. (The core's sweep, its backstop, is put out of reach.)"""
    monkeypatch.setattr(routing, "SWEEP_SECONDS", 60.0)
    sim.inject("ws_delay", path="/public/get_time", seconds=30.0, count=2)
    async with opened(sim) as session:
        patient = asyncio.ensure_future(session.call("public/get_time", {}, 5, 20.0))
        await asyncio.sleep(0.05)
        for _ in range(20):
            assert (await session.call("public/test", {}, 5, 5)).error is None
        started = time.monotonic()
        hasty = await session.call("public/get_time", {}, 5, 0.3)
        assert isinstance(hasty.error, ApiTimeoutError), hasty.error
        assert time.monotonic() - started < SOON  # its own 0.3 s, not the first call's 20 s
        assert not patient.done()
        patient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await patient
