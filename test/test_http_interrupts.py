"""Issue 16, promise 7 (HTTP): a call interrupted at any moment gives back everything it held.

A ``KeyboardInterrupt`` (Ctrl-C in a script, "interrupt kernel" in a notebook, a signal handler
that raises) can land between any two bytecodes of a call. Whatever the moment, the call must give
back its slot under ``max_connections``, every lock, its pooled connection (never leaving a
half-read answer on one that is reused), its watchdog registration and its rate-limit turn; the
interrupt reaches the caller and the client stays usable.

The main test runs thousands of calls in a child process (so that the interrupted main thread is
not the pytest worker's), each interrupted at a random moment by the kernel's interval timer
(``setitimer``), whose signal a handler turns into ``KeyboardInterrupt``. A timer *thread* would not
do: it needs the interpreter lock to send its signal, so its interrupts land almost only where the
main thread waits for the network, never in the Python code in between. The child then checks that
the client is whole: 100 more calls from two threads succeed at once, the open-connection count is
the number of sockets actually open, the pool and the watchdog hold nothing stale.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_hostile_lifecycle import child_env

from openapi_client import (
    ApiCallTimeoutError,
    ApiClient,
    Configuration,
    RateLimit,
    SessionManagementApi,
)
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(60)

PATHS = ("direct", "urllib3")

INTERRUPTED_CALLS_CHILD = r"""
import faulthandler, json, os, random, signal, sys, threading, time

faulthandler.dump_traceback_later(40, exit=True)  # a wedged client: show where, then give up

from openapi_client import ApiClient, ApiException, Configuration, RateLimit, SessionManagementApi
from openapi_client import rest

url, path = sys.argv[1], sys.argv[2]
calls, seconds, rng = int(sys.argv[3]), float(sys.argv[4]), random.Random(int(sys.argv[5]))

armed = False

def interrupt(signum, frame):
    global armed
    if armed:  # one interrupt per call, and none outside the calls
        armed = False
        raise KeyboardInterrupt

signal.signal(signal.SIGALRM, interrupt)
# Only the main thread takes the timer's signal (threads started from now on inherit the mask).
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})

configuration = Configuration(
    host=url, access_token="sim-token", fast_path=path == "direct", retries=0,
    max_connections=2, connection_pool_maxsize=2, call_timeout=5.0, request_timeout=(5.0, 5.0),
    rate_limit=RateLimit(per_second=1e6, burst=10**6),  # never waits: every turn is taken
)
client = ApiClient(configuration)
api = SessionManagementApi(client)

def streamed():
    answer = api.public_set_heartbeat_get(30, _preload_content=False)
    with answer:
        answer.read(7)
        answer.read()

def in_the_background():
    api.public_set_heartbeat_get(30, async_req=True).get(5)

work = [lambda: api.public_set_heartbeat_get(30)] * 6 + [streamed, in_the_background]
for call in work * 5:  # warm: connections, the watchdog and the async thread exist
    call()
started = time.perf_counter()
for _ in range(40):
    api.public_set_heartbeat_get(30)
span = 2 * (time.perf_counter() - started) / 40  # adapted below: about half the calls complete
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})

made = interrupted = 0
errors = {}
give_up = time.monotonic() + seconds
while made < calls and time.monotonic() < give_up:
    made += 1
    call = rng.choice(work)
    try:
        try:
            armed = True
            signal.setitimer(signal.ITIMER_REAL, max(1e-6, rng.uniform(0.0, span)))
            call()
        finally:
            armed = False
    except KeyboardInterrupt:
        interrupted += 1
        span *= 1.02
    except ApiException as error:
        errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
    else:
        span *= 0.98
signal.setitimer(signal.ITIMER_REAL, 0)

# The client is whole: 100 calls from two threads (both slots needed at once), all prompt.
api.public_set_heartbeat_get(30)
failures = []
def fifty():
    for _ in range(50):
        try:
            api.public_set_heartbeat_get(30)
        except ApiException as error:
            failures.append(repr(error)[:200])
started = time.monotonic()
threads = [threading.Thread(target=fifty) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({
    "made": made, "interrupted": interrupted, "errors": errors,
    "after_failures": failures, "after_seconds": time.monotonic() - started,
}), flush=True)

# What the client holds now that no call is running, against what is actually open.
def sockets_open():
    if not os.path.isdir("/proc/self/fd"):
        return None  # not Linux: the count is not checked
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # the descriptor listdir itself used
            pass
    return count
sockets = sockets_open()
rest_client = client.rest_client
if path == "direct":
    slots = [lane.slots for lane in rest_client._lanes.values()]
else:
    pools = rest_client.pool_manager.pools
    slots = [pools[key].pool.slots for key in pools.keys()]
print(json.dumps({
    "sockets": sockets,
    "open": sum(s.open for s in slots),
    "idle": sum(s.idle for s in slots),
    "waiting": sum(len(s._waiting) for s in slots),
    "watched": rest._WATCHDOG.live(),
    "current_watch": getattr(rest._CURRENT_WATCH, "watch", None) is not None,
}), flush=True)
"""


@pytest.mark.timing
@pytest.mark.parametrize("path", PATHS)
def test_calls_interrupted_at_random_moments_leak_nothing(
    simulator: DeribitSimulator, path: str
) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_CALLS_CHILD, simulator.url, path, "3000", "8", "16"],
        capture_output=True, text=True, env=child_env(), timeout=50, check=False,
    )
    report = [json.loads(line) for line in ran.stdout.splitlines()]
    assert report, f"the child wedged or failed: {ran.stderr[-4000:]}"
    behaviour = report[0]
    # The interrupts landed in calls, and calls completed too: every phase of a call was hit.
    assert behaviour["interrupted"] >= 300, behaviour
    assert behaviour["made"] - behaviour["interrupted"] >= 300, behaviour
    assert behaviour["errors"] == {}, behaviour
    # A slot leaked shows here: two threads need both slots, and call_timeout is 5 s.
    assert behaviour["after_failures"] == [], behaviour
    assert behaviour["after_seconds"] < 4.0, behaviour
    assert ran.returncode == 0 and len(report) == 2, ran.stderr[-4000:]
    held = report[1]
    # Both threads' connections went back idle, and the count is what is actually open.
    assert 1 <= held["open"] <= 2, held
    assert held["idle"] == held["open"], held
    if held["sockets"] is not None:
        assert held["sockets"] == held["open"], held
    assert held["waiting"] == 0, held
    assert held["watched"] == 0, held
    assert not held["current_watch"], held


# -- rate-limit turns ---------------------------------------------------------------------------


def interrupting_sleep(seconds: float) -> None:
    """A wait for the rate limiter's turn cut short by Ctrl-C."""
    raise KeyboardInterrupt


@pytest.mark.parametrize("path", PATHS)
def test_a_wait_for_a_turn_refused_or_interrupted_gives_the_turn_back(
    simulator: DeribitSimulator, path: str
) -> None:
    clock = ManualClock()
    limit = RateLimit(per_second=10, burst=1, margin=0.0, clock=clock, sleep=interrupting_sleep)
    configuration = Configuration(
        host=simulator.url, access_token="sim-token", fast_path=path == "direct", retries=0,
        rate_limit=limit,
    )
    with ApiClient(configuration) as client:
        api = SessionManagementApi(client)
        api.public_set_heartbeat_get(30)  # the one turn the burst holds
        for _ in range(5):
            with pytest.raises(KeyboardInterrupt):
                api.public_set_heartbeat_get(30)
        configuration.call_timeout = 0.05  # shorter than the 0.1 s wait for the next turn
        for _ in range(5):
            with pytest.raises(ApiCallTimeoutError):
                api.public_set_heartbeat_get(30)
    # No request left after the first, so the next turn is still one refill (0.1 s) away, not
    # eleven: the ten waits that never led to a request took no turn.
    assert len(simulator.requests) == 1
    assert limit.reserve() == pytest.approx(0.1)


def test_rate_limit_acquire_interrupted_gives_the_turn_back() -> None:
    clock = ManualClock()
    limit = RateLimit(per_second=10, burst=1, margin=0.0, clock=clock, sleep=interrupting_sleep)
    limit.acquire()
    for _ in range(3):
        with pytest.raises(KeyboardInterrupt):
            limit.acquire()
    assert limit.reserve() == pytest.approx(0.1)
