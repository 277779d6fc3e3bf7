"""openapi_client.locks: no interrupt leaves one of the library's locks held.

On Python 3.9 an interrupt can land between the end of a ``with`` block and the release of its
lock (see the module); the first test shows it cannot wedge a lock from ``new_lock()`` on any
supported version, the others pin how a :class:`RecoverableLock` gives back a hold left behind.
"""

from __future__ import annotations

import random
import signal
import threading

import pytest

from openapi_client.locks import RecoverableLock, give_back_leftovers, new_lock


def taken_by_another_thread(lock: object, timeout: float = 5.0) -> bool:
    got: list[bool] = []

    def take() -> None:
        ok = lock.acquire(True, timeout)  # type: ignore[attr-defined]
        got.append(ok)
        if ok:
            lock.release()  # type: ignore[attr-defined]

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(timeout + 5.0)
    return got == [True]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_interrupts_at_random_moments_never_leave_the_lock_held() -> None:
    lock = new_lock()
    rng = random.Random(7)
    armed = False

    def interrupt(signum: int, frame: object) -> None:
        nonlocal armed
        if armed:
            armed = False
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    interrupted = 0
    try:
        for _ in range(3000):
            try:
                armed = True
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.0, 20e-6))
                for _ in range(30):
                    with lock:
                        pass
                armed = False
            except KeyboardInterrupt:
                interrupted += 1
            finally:
                armed = False
            # This thread asks again (whatever it left is given back first), then another one.
            if not lock.acquire(True, 5.0):
                pytest.fail("the lock stayed held after an interrupt")
            lock.release()
            if not taken_by_another_thread(lock, 0.0) and not taken_by_another_thread(lock):
                pytest.fail("the lock stayed held after an interrupt, for another thread")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert interrupted > 100


def test_a_hold_left_behind_is_given_back_when_the_thread_asks_again() -> None:
    lock = RecoverableLock()
    assert not lock.locked()
    lock.acquire()  # as if an interrupt cut the with block short: never released
    assert lock.locked()
    assert not taken_by_another_thread(lock, 0.2)
    assert lock.locked()
    with lock:  # the same thread, outside the lock, asks again
        assert not taken_by_another_thread(lock, 0.0)
    assert taken_by_another_thread(lock)


def test_the_entry_point_gives_back_every_hold_of_its_thread() -> None:
    first, second = RecoverableLock(), RecoverableLock()
    first.acquire()
    second.acquire()
    second.acquire(False)
    give_back_leftovers()
    assert taken_by_another_thread(first) and taken_by_another_thread(second)


def test_another_threads_hold_is_not_given_back() -> None:
    lock = RecoverableLock()
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(5)
    give_back_leftovers()
    assert lock.locked()
    assert not lock.acquire(True, 0.1)
    done.set()
    thread.join(5)
    assert lock.acquire(True, 5)
    lock.release()


def test_only_the_main_thread_gives_back_at_the_entry_point() -> None:
    """Signal handlers run only in the main thread: another thread's holds are never leftovers,
    even when it passes the library's entry point (a call made while it holds a lock)."""
    lock = RecoverableLock()
    seen: list[bool] = []

    def hold_and_pass_the_entry_point() -> None:
        with lock:
            give_back_leftovers()
            seen.append(lock.locked())

    thread = threading.Thread(target=hold_and_pass_the_entry_point)
    thread.start()
    thread.join(5)
    assert seen == [True]
    assert taken_by_another_thread(lock)
