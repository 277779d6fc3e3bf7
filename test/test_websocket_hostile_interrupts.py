"""Ctrl-C never wedges a session (issue 16, promise 7): a ``KeyboardInterrupt`` may land in a
caller at any point of a call, and the session goes on with the same connection.

Python raises ``KeyboardInterrupt`` (and the exception of any signal handler) only in the main
thread, so the calls run in a child process whose main thread an alarm (``setitimer``, a handler
that raises ``KeyboardInterrupt``) interrupts at random points: the test runner's own main thread
is never interrupted. The child runs the simulator and prints what it saw as JSON.
"""

from __future__ import annotations

import signal

import pytest
from test_websocket_support import run_script

pytestmark = pytest.mark.timeout(60)

#: Calls interrupted at random points, then calls that must all succeed.
INTERRUPTED_CALLS = 1000
CALLS_AFTER = 50

INTERRUPTED_SESSION = r"""
import json, random, signal, sys, time
from openapi_client import ApiException, Configuration
from openapi_client.simulator import DeribitSimulator
from openapi_client.websocket import Connected, Disconnected, WebSocketApiClient


def interrupt(number, frame):
    raise KeyboardInterrupt  # what Ctrl-C raises; any handler's exception lands the same way


signal.signal(signal.SIGALRM, interrupt)
calls, after, seed = (int(argument) for argument in sys.argv[1:4])
rng = random.Random(seed)
events = []
with DeribitSimulator(time_scale=0.1) as sim:
    configuration = Configuration(
        host=sim.url, access_token="sim-token", request_timeout=(5, 5), retries=0
    )
    ws_client = WebSocketApiClient(configuration, heartbeat=10, on_event=events.append)
    in_call = after_call = answered = 0
    failures = []
    started = time.monotonic()
    for _ in range(calls):
        calling = False
        try:
            # An alarm somewhere in the call, or just after it (a call takes a few hundred
            # microseconds); its handler raises in the main thread wherever that is.
            signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.00001, 0.0006))
            calling = True
            try:
                ws_client.call("public/test")
                answered += 1
            except ApiException as error:
                failures.append(type(error).__name__ + ": " + str(error).splitlines()[0])
            calling = False
            while True:  # until the alarm, not raised yet, ends this wait
                time.sleep(0.01)
        except KeyboardInterrupt:
            if calling:
                in_call += 1
            else:
                after_call += 1
    interrupted_seconds = time.monotonic() - started
    started = time.monotonic()
    outcomes = []
    for _ in range(after):
        try:
            outcomes.append(ws_client.call("public/test", timeout=5)["result"]["version"] != "")
        except ApiException as error:
            outcomes.append(type(error).__name__ + ": " + str(error).splitlines()[0])
    after_seconds = time.monotonic() - started
    state = ws_client.state.value
    ws_client.close()
print(json.dumps({
    "in_call": in_call,
    "after_call": after_call,
    "answered": answered,
    "failures": failures[:5],
    "failed": len(failures),
    "interrupted_seconds": round(interrupted_seconds, 2),
    "after": outcomes,
    "after_seconds": round(after_seconds, 2),
    "state": state,
    "connections": sum(isinstance(event, Connected) for event in events),
    "disconnects": [event.reason for event in events if isinstance(event, Disconnected)],
}))
"""


@pytest.mark.timing
@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no setitimer")
@pytest.mark.parametrize("seed", [1, 2])
def test_a_session_survives_a_thousand_interrupted_calls(seed: int) -> None:
    seen = run_script(
        INTERRUPTED_SESSION, str(INTERRUPTED_CALLS), str(CALLS_AFTER), str(seed), timeout=50
    )
    # Every alarm interrupted the main thread, a good share of them inside a call; no call
    # failed for an interrupt that hit an earlier one.
    assert seen["in_call"] + seen["after_call"] == INTERRUPTED_CALLS, seen
    assert seen["in_call"] >= INTERRUPTED_CALLS // 10, seen
    assert seen["failed"] == 0, seen
    # Every later call is answered, promptly, on the same connection: no reconnect was needed.
    assert seen["after"] == [True] * CALLS_AFTER, seen
    assert seen["after_seconds"] < 10.0, seen
    assert (seen["connections"], seen["disconnects"]) == (1, ["closed by the client"]), seen
    assert seen["state"] == "ready", seen
