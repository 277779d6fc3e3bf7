"""Issue 16, promise 7 (HTTP): a call interrupted at any moment gives back everything it held.

A ``KeyboardInterrupt`` (Ctrl-C in a script, "interrupt kernel" in a notebook, a signal handler
that raises) can land between any two bytecodes of a call. Whatever the moment, the call must give
back its slot under ``max_connections``, every lock, its pooled connection (never leaving a
half-read answer on one that is reused), its watchdog registration and its rate-limit turn; the
interrupt reaches the caller and the client stays usable.

Two tests, over real loopback sockets:

* thousands of calls in a child process (so that the interrupted main thread is not the pytest
  worker's), each interrupted at a random moment by the kernel's interval timer (``setitimer``),
  whose signal a handler turns into ``KeyboardInterrupt``. A timer *thread* would not do: it needs
  the interpreter lock to send its signal, so its interrupts land almost only where the main thread
  waits for the network, never in the Python code in between;
* every moment of a call, one after the other: CPython runs a signal handler only at a function's
  entry, just after a call returns, or on a loop's backward jump (3.10 and later). A profile
  function raising ``KeyboardInterrupt`` at the first two kinds of moment, in the library's code and
  the standard library's locking code it calls, makes the exception surface exactly where a
  handler's would.

After either, the client must be whole: more calls from two threads succeed at once, the
open-connection count is what is actually open, the pool and the watchdog hold nothing stale.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import CodeType, FrameType, ModuleType
from typing import Callable

import pytest
import urllib3
from test_hostile_lifecycle import child_env

import openapi_client.api_client
import openapi_client.calls
import openapi_client.core
import openapi_client.deadline
import openapi_client.http
import openapi_client.net
import openapi_client.rate_limit
import openapi_client.rest
from openapi_client import (
    ApiCallTimeoutError,
    ApiClient,
    Configuration,
    RateLimit,
    SessionManagementApi,
)
from openapi_client.http.pools import CURRENT_WATCH
from openapi_client.http.slots import Slots
from openapi_client.http.watchdog import WATCHDOG
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(60)

PATHS = ("direct", "urllib3")

INTERRUPTED_CALLS_CHILD = r"""
import faulthandler, json, os, random, signal, sys, threading, time

faulthandler.dump_traceback_later(40, exit=True)  # a wedged client: show where, then give up

from openapi_client import ApiClient, ApiException, Configuration, RateLimit, SessionManagementApi
from openapi_client.http import pools, watchdog

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
slots = client.rest_client._slots()
print(json.dumps({
    "sockets": sockets,
    "open": sum(s.open for s in slots),
    "idle": sum(s.idle for s in slots),
    "waiting": sum(len(s._waiting) for s in slots),
    "watched": watchdog.WATCHDOG.live(),
    "current_watch": pools.CURRENT_WATCH.watch is not None,
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


# -- every moment, one after the other ------------------------------------------------------------

def package_modules(*packages: ModuleType) -> list[ModuleType]:
    """Every module of ``packages`` (imported here: some load only on the path that needs them)."""
    return [
        importlib.import_module(found.name)
        for package in packages
        for found in pkgutil.iter_modules(package.__path__, package.__name__ + ".")
    ]


#: The code whose moments are swept: the client's own (every module of the HTTP transport and of
#: the wire modules it shares with the WebSocket session), and the standard library's locks,
#: threads and queues it calls (where a ``threading.Condition`` used to leave a lock held).
SWEPT_FILES = frozenset(
    module.__file__ or ""
    for module in (
        openapi_client.api_client,
        openapi_client.calls,
        openapi_client.core,
        openapi_client.deadline,
        openapi_client.rate_limit,
        openapi_client.rest,
        *package_modules(openapi_client.http, openapi_client.net),
        threading,
        queue,
    )
)
#: On urllib3's path, urllib3's own code too (an answer it made can be lost to an interrupt).
URLLIB3_FILES = SWEPT_FILES | frozenset(
    module.__file__ or ""
    for module in (
        urllib3.connection,
        urllib3.connectionpool,
        urllib3.poolmanager,
        urllib3.response,
    )
)


GENERATOR = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


class InjectedInterrupt:
    """Counts the moments at which CPython could run a signal handler while code of ``files`` runs
    in this thread (a function's entry, or just after a call made there returns), and raises
    ``KeyboardInterrupt`` at the ``at``-th (never when ``at`` is 0). Raised from a profile
    function, the exception surfaces at the call, as a signal handler's would."""

    def __init__(
        self, at: int, files: frozenset[str] = SWEPT_FILES, within: CodeType | None = None
    ) -> None:
        self.at = at
        self.files = files
        #: Only moments while this function runs count.
        self.within = within
        self.moments = 0

    def __enter__(self) -> InjectedInterrupt:
        sys.setprofile(self._event)
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.setprofile(None)

    def _event(self, frame: FrameType, event: str, arg: object) -> None:
        if event in ("call", "return") and frame.f_code.co_flags & GENERATOR:
            # A generator resuming or pausing (no call returns there), or being closed as it is
            # collected, where an exception is only printed.
            return
        if event == "call":
            place: FrameType | None = frame
        elif event == "return":
            place = frame.f_back
        elif event == "c_return":
            place = frame
        else:
            return
        if place is None or place.f_code.co_filename not in self.files:
            return
        if self.within is not None and not any(
            caller.f_code is self.within for caller in callers(place)
        ):
            return
        self.moments += 1
        if self.moments == self.at:
            sys.setprofile(None)
            raise KeyboardInterrupt


def callers(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def interrupt_every_moment(work: Callable[[], object], files: frozenset[str]) -> int:
    """Run ``work`` once per moment it has in ``files``, interrupted at that moment; how many it
    has."""
    counting = InjectedInterrupt(0, files)
    with counting:
        work()
    # A run after an interrupted one can take longer (a new connection): half as many again.
    for at in range(1, counting.moments * 3 // 2 + 1):
        try:
            with InjectedInterrupt(at, files):
                work()
        except KeyboardInterrupt:
            pass
    return counting.moments


def assert_whole(client: ApiClient) -> None:
    """More calls from two threads succeed at once, and the client holds nothing stale."""
    api = SessionManagementApi(client)
    failures: list[BaseException] = []

    def calls() -> None:
        for _ in range(20):
            try:
                api.public_set_heartbeat_get(30)
            except BaseException as error:  # reported below
                failures.append(error)

    started = time.monotonic()
    threads = [threading.Thread(target=calls) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not failures, failures[:3]
    assert time.monotonic() - started < 4.0  # a leaked slot waits call_timeout (5 s)
    every = client.rest_client._slots()
    assert len(every) == 1
    for slots in every:
        assert 1 <= slots.open <= 2 and slots.idle == slots.open, (slots.open, slots.idle)
        assert not slots._waiting and not slots._lock.locked()
        for connection in slots._idle:
            assert connection.pooled and connection.sock is not None
    assert WATCHDOG.live() == 0
    assert CURRENT_WATCH.watch is None
    watchdogs = [t for t in threading.enumerate() if t.name == "openapi_client-watchdog"]
    assert len(watchdogs) <= 1, watchdogs


def sweep_configuration(url: str, path: str) -> Configuration:
    return Configuration(
        host=url, access_token="sim-token", fast_path=path == "direct", retries=0,
        max_connections=2, connection_pool_maxsize=2, call_timeout=5.0,
        request_timeout=(5.0, 5.0), rate_limit=RateLimit(per_second=1e6, burst=10**6),
    )


# An interrupt at the start of a weak set's removal callback is reported by Python as ignored
# (test_a_slot_whose_removal_an_interrupt_stopped_is_not_counted shows that nothing leaks).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timing
@pytest.mark.parametrize("path", PATHS)
def test_a_call_interrupted_at_each_of_its_moments_leaks_nothing(
    simulator: DeribitSimulator, path: str
) -> None:
    with ApiClient(sweep_configuration(simulator.url, path)) as client:
        api = SessionManagementApi(client)

        def streamed() -> None:
            with api.public_set_heartbeat_get(30, _preload_content=False) as answer:
                answer.read(7)
                answer.read()

        def in_the_background() -> None:
            api.public_set_heartbeat_get(30, async_req=True).get(5)

        files = SWEPT_FILES if path == "direct" else URLLIB3_FILES
        in_the_background()  # the pool thread exists
        assert interrupt_every_moment(lambda: api.public_set_heartbeat_get(30), files) > 50
        assert interrupt_every_moment(streamed, files) > 50
        # (In the calling thread: the call itself runs on the pool's.)
        assert interrupt_every_moment(in_the_background, files) > 40
        in_the_background()  # the pool thread runs calls in order: every earlier one is over
        assert_whole(client)


def test_an_async_call_interrupted_before_it_is_handed_back_is_never_sent(
    simulator: DeribitSimulator,
) -> None:
    """An interrupt that lands while ``async_req=True`` queues the call (starting the pool's
    thread can take a while) leaves the caller without an ``AsyncResult``: the call must not then
    run unseen, sending a request nobody waits for."""
    submit = openapi_client.core._DaemonPool.submit.__code__
    with ApiClient(sweep_configuration(simulator.url, "direct")) as client:
        api = SessionManagementApi(client)
        api.public_set_heartbeat_get(30, async_req=True).get(5)  # the pool thread exists
        simulator.inject("delay", seconds=0.2, path="/public/disable_heartbeat")
        busy = api.public_disable_heartbeat_get(async_req=True)  # the one thread is busy
        handed_back = 0
        counting = InjectedInterrupt(0, within=submit)
        with counting:
            api.public_set_heartbeat_get(31, async_req=True)
        assert counting.moments > 3
        for at in range(1, counting.moments + 1):
            try:
                with InjectedInterrupt(at, within=submit):
                    api.public_set_heartbeat_get(31, async_req=True)
                handed_back += 1
            except KeyboardInterrupt:
                pass
        busy.get(5)
        api.public_set_heartbeat_get(32, async_req=True).get(5)  # every queued call is over
    sent = [r for r in simulator.requests if r.query.get("interval") == "31"]
    assert len(sent) == 1 + handed_back  # the counting run, and the calls the caller got back


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


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_slot_whose_removal_an_interrupt_stopped_is_not_counted() -> None:
    """A slot that goes is dropped from its weak set by a weakref callback; an interrupt landing
    at the callback's start stops it (Python reports the exception as ignored) and leaves a dead
    reference in the set. The count of open connections, and so the cap, must not see it."""
    slots = Slots(cap=1, idle_limit=1)
    slot = slots.take(time.monotonic() + 1.0)
    assert slots.open == 1

    def interrupt_the_removal(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_name == "_remove":
            sys.setprofile(None)
            raise KeyboardInterrupt

    sys.setprofile(interrupt_the_removal)
    try:
        del slot  # the last reference: the weak set's callback runs, and is interrupted
    finally:
        sys.setprofile(None)
    assert len(slots._taken.data) == 1  # the dead reference the callback did not remove
    assert slots.open == 0
    again = slots.take(time.monotonic() + 1.0)  # not None: the cap is free
    assert again is not None
