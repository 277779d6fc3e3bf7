"""RateLimit: Deribit's credit model on the client, alone and against the simulator's credit mode.

The simulator records every request, so with the limiter on the number of requests equals the
number of calls (no 10028 answer, no retry); with it off, retries absorb the 10028 answers and the
requests outnumber the calls.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from conftest import TOKEN

from openapi_client import (
    ApiClient,
    BadRequestException,
    Configuration,
    RateLimit,
    RetryPolicy,
    SessionManagementApi,
)
from openapi_client.rate_limit import DEFAULT_MARGIN
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(20)

#: Deribit's numbers scaled up tenfold, so a burst of 250 calls takes about a second.
PER_SECOND = 200.0
BURST = 50
CALLS = 250


def run_threads(target: Callable[[], None], count: int, timeout: float = 10.0) -> None:
    """Run ``target`` on ``count`` threads at once and wait for all of them."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads)


def limited_simulator(per_second: float = PER_SECOND, burst: int = BURST) -> DeribitSimulator:
    return DeribitSimulator(
        rate_limit=True,
        rate_limit_per_second=per_second,
        rate_limit_burst=burst,
        legacy_http=True,  # the heartbeat methods over HTTP are the vehicle here
    )


def client_for(simulator: DeribitSimulator, **settings: Any) -> ApiClient:
    settings.setdefault("request_timeout", (2.0, 2.0))
    return ApiClient(Configuration(host=simulator.url, access_token=TOKEN, **settings))


# -- the bucket, with a fake clock --------------------------------------------------------------


def test_burst_then_rate() -> None:
    clock = ManualClock()
    limit = RateLimit(per_second=10, burst=3, clock=clock)
    assert [limit.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.09)
    assert not limit.try_acquire()
    clock.advance(0.01)
    assert limit.try_acquire()
    assert not limit.try_acquire()
    clock.advance(60)  # the pool refills to the burst, no further
    assert [limit.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_reserve_queues_callers_behind_each_other() -> None:
    clock = ManualClock()
    limit = RateLimit(per_second=10, burst=2, margin=0, clock=clock)
    waits = [limit.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])
    clock.advance(0.3)  # three slots refilled, all three already promised
    assert limit.reserve() == pytest.approx(0.1)
    assert not limit.try_acquire()


def test_margin_delays_only_a_nearly_empty_pool() -> None:
    clock = ManualClock()
    limit = RateLimit(per_second=10, burst=3, margin=0.02, clock=clock)
    # The pool pays for the first three; the third leaves it empty, so it waits the margin.
    waits = [limit.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.02, 0.12, 0.22])
    assert RateLimit().margin == DEFAULT_MARGIN == 0.01


def test_sustained_rate_is_exact_whatever_the_margin() -> None:
    clock = ManualClock()
    limit = RateLimit(per_second=20, burst=100, margin=0.05, clock=clock)
    for _ in range(100):
        assert limit.reserve() <= 0.05
    # 200 more at one per refill: the 200th is due 10 s later, plus the margin, not more.
    last = 0.0
    for _ in range(200):
        last = limit.reserve()
    assert last == pytest.approx(10.0 + 0.05)


def test_acquire_waits_for_the_next_slot() -> None:
    clock = ManualClock()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    limit = RateLimit(per_second=50, burst=2, margin=0, clock=clock, sleep=sleep)
    for _ in range(5):
        limit.acquire()
    # The burst goes at once; each of the next three waits for its slot at 50 a second.
    assert waits == pytest.approx([0.02, 0.02, 0.02])


@pytest.mark.timing
def test_acquire_sleeps_on_the_real_clock_by_default() -> None:
    limit = RateLimit(per_second=50, burst=2, margin=0)
    started = time.monotonic()
    for _ in range(5):
        limit.acquire()
    # Three slots beyond the burst at 50 a second: at least 60 ms really passed. The upper bound
    # only says that nobody waited far longer than asked (a busy machine stretches any sleep).
    assert 0.06 - 0.001 <= time.monotonic() - started < 5.0


# -- threads ------------------------------------------------------------------------------------


def test_concurrent_reservations_hand_out_each_slot_once() -> None:
    clock = ManualClock()
    limit = RateLimit(per_second=100, burst=10, margin=0, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def reserve_many() -> None:
        start.wait()
        for _ in range(25):
            wait = limit.reserve()
            with lock:
                waits.append(wait)

    run_threads(reserve_many, 8)
    expected = [0.0] * 10 + [slot / 100 for slot in range(1, 191)]
    assert sorted(waits) == pytest.approx(expected)


def test_concurrent_try_acquire_never_overspends() -> None:
    limit = RateLimit(per_second=0.001, burst=100, clock=ManualClock())  # time stands still
    granted = []
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        granted.append(sum(limit.try_acquire() for _ in range(50)))

    run_threads(take, 8)
    assert sum(granted) == 100


def test_concurrent_acquire_keeps_to_the_rate() -> None:
    per_second, burst = 200.0, 10
    clock = ManualClock()
    limit = RateLimit(per_second=per_second, burst=burst, margin=0, clock=clock,
                      sleep=clock.advance)
    stamps: list[float] = []
    lock = threading.Lock()
    started = clock()

    def acquire_many() -> None:
        for _ in range(15):
            limit.acquire()
            with lock:
                stamps.append(clock() - started)

    run_threads(acquire_many, 6)
    stamps.sort()
    assert len(stamps) == 90
    # By any moment t, at most burst + rate * t requests went out.
    for index, stamp in enumerate(stamps):
        assert index + 1 <= burst + per_second * stamp + 1e-6
    assert stamps[-1] >= (90 - burst) / per_second - 1e-6


# -- construction -------------------------------------------------------------------------------


def test_repr() -> None:
    assert repr(RateLimit()) == "RateLimit(per_second=20, burst=100)"
    assert repr(RateLimit(per_second=0.5, burst=1)) == "RateLimit(per_second=0.5, burst=1)"
    assert repr(RateLimit(2, 3, margin=0)) == "RateLimit(per_second=2, burst=3, margin=0)"
    configuration = Configuration(rate_limit=RateLimit(20, 100))
    assert "rate_limit=RateLimit(per_second=20, burst=100)" in repr(configuration)


@pytest.mark.parametrize(
    ("arguments", "error_type", "words"),
    [
        ({"per_second": 0}, ValueError, "per_second must be a finite number > 0, got 0"),
        ({"per_second": -1}, ValueError, "per_second"),
        ({"per_second": float("inf")}, ValueError, "per_second"),
        ({"per_second": float("nan")}, ValueError, "per_second"),
        ({"per_second": "20"}, TypeError, "per_second must be a number"),
        ({"per_second": True}, TypeError, "per_second"),
        ({"burst": 0}, ValueError, "burst must be a whole number >= 1, got 0"),
        ({"burst": 1.5}, ValueError, "burst"),
        ({"burst": True}, ValueError, "burst"),
        ({"margin": -0.1}, ValueError, "margin must be a finite number of seconds >= 0"),
        ({"margin": float("inf")}, ValueError, "margin"),
        ({"margin": "0"}, TypeError, "margin"),
    ],
)
def test_bad_arguments(arguments: dict[str, Any], error_type: type[Exception], words: str) -> None:
    with pytest.raises(error_type, match=words.replace("(", r"\(")):
        RateLimit(**arguments)


def test_off_by_default() -> None:
    assert Configuration().rate_limit is None


# -- against the simulator's credit mode, on one manual clock ------------------------------------
#
# The simulator's credit pool and the client's limiter read the same ManualClock, and every wait
# (the limiter's, a retry's backoff) advances it instead of sleeping: exact on any machine, under
# any load.


@contextlib.contextmanager
def on_one_clock(
    per_second: float = PER_SECOND, burst: int = BURST, limiter: bool = True, **settings: Any
) -> Iterator[tuple[DeribitSimulator, SessionManagementApi, ManualClock]]:
    clock = ManualClock()
    if limiter:
        settings["rate_limit"] = RateLimit(per_second, burst, clock=clock, sleep=clock.advance)
    with DeribitSimulator(
        rate_limit=True,
        rate_limit_per_second=per_second,
        rate_limit_burst=burst,
        legacy_http=True,  # the heartbeat methods over HTTP are the vehicle here
        clock=clock,
    ) as simulator, client_for(simulator, **settings) as client:
        client.sleep = clock.advance
        yield simulator, SessionManagementApi(client), clock


def test_burst_with_the_limiter_gets_no_10028() -> None:
    # No retries: a single 10028 would fail the call.
    with on_one_clock(retries=0) as (simulator, api, clock):
        started = clock()
        for _ in range(CALLS):
            assert api.public_set_heartbeat_get(30)["result"] == "ok"
        elapsed = clock() - started
        assert len(simulator.requests) == CALLS
    # The limiter held the calls back to the pool's pace, plus its margin, no more.
    assert (CALLS - BURST) / PER_SECOND <= elapsed <= (CALLS - BURST) / PER_SECOND + 0.02


def test_without_the_limiter_retries_absorb_10028() -> None:
    retries = RetryPolicy(total=10, backoff_factor=0.005, backoff_max=0.05)
    with on_one_clock(limiter=False, retries=retries) as (simulator, api, _):
        for _ in range(CALLS):
            assert api.public_set_heartbeat_get(30)["result"] == "ok"
        assert len(simulator.requests) > CALLS


def test_without_the_limiter_or_retries_the_burst_meets_10028() -> None:
    with on_one_clock(limiter=False, retries=0) as (simulator, api, _):
        errors = []
        for _ in range(BURST + 5):
            try:
                api.public_set_heartbeat_get(30)
            except BadRequestException as error:
                errors.append(error.error_code)
        assert errors == [10028] * 5  # the clock stood still: exactly the burst went through
        assert len(simulator.requests) == BURST + 5


def test_limiter_shared_by_threads_gets_no_10028() -> None:
    with on_one_clock(retries=0) as (simulator, api, _):
        failures: list[BaseException] = []

        def call_many() -> None:
            for _ in range(40):
                try:
                    api.public_set_heartbeat_get(30)
                except Exception as error:  # reported below
                    failures.append(error)

        run_threads(call_many, 4)
        assert failures == []
        assert len(simulator.requests) == 160


def test_deribit_numbers_burst_then_twenty_a_second() -> None:
    calls = 120  # the burst of 100, then 20 more at 20 a second
    with on_one_clock(per_second=20, burst=100, retries=0) as (simulator, api, clock):
        started = clock()
        for _ in range(calls):
            api.public_set_heartbeat_get(30)
        elapsed = clock() - started
        assert len(simulator.requests) == calls
    assert 1.0 <= elapsed <= 1.0 + 0.02


@pytest.mark.timing
def test_limiter_with_real_time_against_the_simulator() -> None:
    """The same on the real clock: the limiter really sleeps, and the simulator sends no 10028.

    The two pools start at different moments (the simulator's when the first request arrives),
    so the client's burst is smaller than the simulator's: the simulator's pool keeps 40 spare
    requests, 200 ms of slack however late a busy machine delivers that first request.
    """
    client_burst, calls = 10, BURST + 20
    with limited_simulator() as simulator:
        limit = RateLimit(PER_SECOND, client_burst)
        with client_for(simulator, rate_limit=limit, retries=0) as client:
            api = SessionManagementApi(client)
            started = time.monotonic()
            for _ in range(calls):
                assert api.public_set_heartbeat_get(30)["result"] == "ok"
            elapsed = time.monotonic() - started
        assert len(simulator.requests) == calls
    assert elapsed >= (calls - client_burst - 1) / PER_SECOND
