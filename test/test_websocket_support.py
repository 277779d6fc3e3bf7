"""Shared helpers of the WebSocket session tests (no tests here): an event recorder and clients
configured for a test suite's time scale."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, TypeVar

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, FAST_RETRIES, TOKEN
from test_hostile_lifecycle import child_env

from openapi_client import Configuration, RetryPolicy
from openapi_client.simulator import DeribitSimulator
from openapi_client.websocket import Event, WebSocketApiClient

#: Simulator seconds per real second: a heartbeat interval of 10 s runs as 0.1 s.
TIME_SCALE = 0.01
#: Reconnect quickly in tests (the default waits about 0.1 s first, then doubles).
FAST_BACKOFF = RetryPolicy(backoff_factor=0.02, backoff_max=0.2, jitter=0.5, retry_after_max=5.0)
#: Generous bound for anything that should happen "at once" on loopback, in seconds.
SOON = 10.0

E = TypeVar("E")


class Recorder:
    """Collects events from ``on_event`` (the callback thread) for assertions."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: type[E]) -> list[E]:
        with self._cond:
            return [event for event in self.events if isinstance(event, kind)]

    def wait_for(
        self, kind: type[E], count: int = 1, where: Callable[[E], bool] = lambda _: True
    ) -> list[E]:
        deadline = time.monotonic() + SOON
        with self._cond:
            while True:
                found = [e for e in self.events if isinstance(e, kind) and where(e)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [type(e).__name__ for e in self.events]
                    pytest.fail(f"no {count} {kind.__name__} event(s) within {SOON} s: {names}")
                self._cond.wait(left)


def wait_until(condition: Callable[[], Any], what: str, bound: float = SOON) -> Any:
    deadline = time.monotonic() + bound
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {bound} s")
        time.sleep(0.01)


def key_configuration(sim: DeribitSimulator, **settings: Any) -> Configuration:
    options: Any = {"request_timeout": (3.0, 3.0), "retries": FAST_RETRIES}
    options.update(settings)
    return Configuration(
        host=sim.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **options
    )


def token_configuration(sim: DeribitSimulator, **settings: Any) -> Configuration:
    options: Any = {"request_timeout": (3.0, 3.0), "retries": FAST_RETRIES}
    options.update(settings)
    return Configuration(host=sim.url, access_token=TOKEN, **options)


def session(
    configuration: Configuration, recorder: Recorder | None = None, **options: Any
) -> WebSocketApiClient:
    """A threaded session with the test suite's settings (see :func:`session_options`)."""
    return WebSocketApiClient(configuration, **session_options(recorder, **options))


def run_script(script: str, *arguments: str, timeout: float) -> Any:
    """Run ``script`` in a child Python (the repository importable, DeprecationWarning off: a
    fork in a process with threads warns on new Pythons) and decode its last line of output as
    JSON; the test fails with the child's stderr when it did not end well."""
    ran = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script, *arguments],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(ran.stdout.strip().splitlines()[-1])


# -- one behaviour, every driver ------------------------------------------------------------------
#
# The session's behaviour tests open their session through the ``open_session`` fixture, which is
# parametrized over the session drivers in DRIVERS: each driver gives a SessionHandle, the same
# synchronous calls from the test's thread whatever drives the session (the threaded client is
# one already; an asyncio client's coroutines are run on its loop by the handle). A difference
# between the drivers is then a failing test.


class SessionHandle:
    """A session under test, driven by whatever driver, used synchronously from the test.

    ``call``, ``subscribe``, ``unsubscribe``, ``close``, ``check_in``, ``events``, ``state``,
    ``heartbeat``, ``cancel_on_disconnect``, ``url``, ``watchdog`` behave as on the threaded
    :class:`WebSocketApiClient`; ``api`` is ``SessionManagementApi`` on it (its methods called
    synchronously); ``client`` is the driver's own object, for what only it has.

    :param client: the driver's client.
    :param api: ``SessionManagementApi`` over it.
    :param run: turns what a method returned into its result (runs a coroutine to its end).
    """

    def __init__(self, client: Any, api: Any, run: Callable[[Any], Any] = lambda value: value):
        self.client = client
        self._run = run
        self.api = _Synchronous(api, run)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.client, name)
        if not callable(value):
            return value
        return lambda *args, **kwargs: self._run(value(*args, **kwargs))

    def __repr__(self) -> str:
        return repr(self.client)

    def __enter__(self) -> SessionHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Synchronous:
    """``target``'s methods, each result passed through ``run``."""

    def __init__(self, target: Any, run: Callable[[Any], Any]) -> None:
        self._target = target
        self._run = run

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)
        return lambda *args, **kwargs: self._run(method(*args, **kwargs))


def open_threaded(configuration: Configuration, **options: Any) -> SessionHandle:
    """The threaded driver: :class:`WebSocketApiClient`."""
    from openapi_client import SessionManagementApi

    client = WebSocketApiClient(configuration, **options)
    return SessionHandle(client, SessionManagementApi(client))


#: The session drivers the behaviour tests run against, by name: each opens a session with the
#: WebSocketApiClient keyword arguments and returns its handle.
DRIVERS: dict[str, Callable[..., SessionHandle]] = {"threaded": open_threaded}

#: Opens a session for a test: ``open_session(configuration, recorder, **options)``.
SessionOpener = Callable[..., SessionHandle]


@pytest.fixture(params=sorted(DRIVERS))
def open_session(request: pytest.FixtureRequest) -> Iterator[SessionOpener]:
    """Opens sessions through each driver in turn, with the suite's settings
    (:func:`session_options`) unless ``suite_defaults=False``; closes them after the test."""
    opener = DRIVERS[request.param]
    opened: list[SessionHandle] = []

    def open_one(
        configuration: Configuration,
        recorder: Recorder | None = None,
        *,
        suite_defaults: bool = True,
        **options: Any,
    ) -> SessionHandle:
        if suite_defaults:
            options = session_options(recorder, **options)
        elif recorder is not None:
            options["on_event"] = recorder
        handle = opener(configuration, **options)
        opened.append(handle)
        return handle

    yield open_one
    for handle in reversed(opened):
        handle.close()


def session_options(recorder: Recorder | None = None, **options: Any) -> dict[str, Any]:
    """The test suite's session settings (quick reconnects, a short close), with ``options``."""
    settings: Any = {
        "heartbeat": 10,
        "reconnect_backoff": FAST_BACKOFF,
        "throttle_delay": 0.3,
        "close_timeout": 0.5,
        "on_event": recorder,
    }
    settings.update(options)
    return dict(settings)
