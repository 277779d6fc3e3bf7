"""No thread of the session dies in silence (issue 16, promise 2). Faults are injected into the
session's threads (a handler of the reader that raises, a report that fails, a supervisor that
fails, a callback that exits): the session notices, says so in an event and a log line, fails
the calls in flight with the library's error at once, and comes back, or ends clearly (``state``
FAILED, a ``Closed`` event, calls refused). Never a call left waiting for its timeout."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from test_websocket_support import Recorder, session, token_configuration

from openapi_client import ApiConnectionError
from openapi_client.simulator import DeribitSimulator
from openapi_client.websocket import (
    Closed,
    Disconnected,
    Event,
    HeartbeatAnswered,
    SessionRestored,
    State,
    WebSocketApiClient,
)
from openapi_client.websocket.session import Session

pytestmark = [pytest.mark.timeout(30), pytest.mark.timing]

#: A test_request every simulated 10 s, each a real second here.
CALM_SCALE = 0.1


class InjectedFault(BaseException):
    """A fault no handler of the library expects: not even an ``Exception``."""


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=CALM_SCALE) as simulator:
        yield simulator


def once(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    fault: BaseException,
    when: Callable[..., bool] = lambda *args: True,
    owner: type = Session,
) -> None:
    """Make ``owner.<name>`` (the threaded session's, by default) raise ``fault`` the first
    time it is called with arguments ``when`` accepts."""
    original = getattr(owner, name)
    fired: list[bool] = []

    def faulty(self: Any, *args: Any) -> Any:
        if not fired and when(*args):
            fired.append(True)
            raise fault
        return original(self, *args)

    monkeypatch.setattr(owner, name, faulty)


def test_a_reader_that_dies_fails_the_call_in_flight_and_the_session_comes_back(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection's thread dies while it hands over the answer to a ``test_request``.
    The call waiting on the main thread fails at once with ``ApiConnectionError`` (its answer
    is held back 20 s, its timeout is 15 s); ``Disconnected`` says the reader failed; the
    session reconnects. Before, the main thread read the socket itself and the fault came out
    of the call as it was."""
    once(
        monkeypatch,
        "_publish",
        InjectedFault("injected"),
        lambda event: isinstance(event, HeartbeatAnswered),
    )
    recorder = Recorder()
    with session(token_configuration(sim), recorder) as ws_client:
        sim.inject("ws_delay", path="/public/get_time", seconds=20.0)
        started = time.monotonic()
        with pytest.raises(ApiConnectionError, match="the reader failed") as failed:
            ws_client.call("public/get_time", timeout=15)
        assert time.monotonic() - started < 5.0
        lost = recorder.wait_for(Disconnected)[0]
        assert lost.reason == "the reader failed (InjectedFault)"
        recorder.wait_for(SessionRestored, 2)
        assert ws_client.call("public/test")["result"]["version"]
        assert ws_client.state is State.READY
    assert failed.value.status == 0
    assert "the reader of the WebSocket connection" in caplog.text
    assert "InjectedFault: injected" in caplog.text


def test_a_connection_that_ended_unannounced_is_replaced(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Telling the session that the connection dropped fails: the supervisor finds the
    connection over on its next look, within a second, and replaces it. Before, the session
    stayed READY on the dead connection, and every call failed from then on."""
    once(monkeypatch, "connection_lost", RuntimeError("injected"))
    recorder = Recorder()
    with session(token_configuration(sim), recorder) as ws_client:
        sim.inject("ws_drop", path="/public/test")
        with pytest.raises(ApiConnectionError):
            ws_client.call("public/test")
        recorder.wait_for(SessionRestored, 2)
        assert ws_client.call("public/test")["result"]["version"]
    assert "the session could not be told" in caplog.text
    assert "ended unannounced; replacing it" in caplog.text


def test_a_supervisor_that_fails_ends_the_session_clearly(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The supervisor fails as it starts a reconnect: the session gives up at once, with
    ``Closed(failed=True)`` and state FAILED, and calls are refused without waiting. Before, it
    stayed RECONNECTING for good and every call waited for a session that never came."""
    recorder = Recorder()
    ws_client = session(token_configuration(sim), recorder)
    once(monkeypatch, "_open", RuntimeError("injected"))  # the supervisor opens connections
    try:
        sim.inject("ws_drop", path="/public/test")
        with pytest.raises(ApiConnectionError):
            ws_client.call("public/test")
        (closed,) = recorder.wait_for(Closed)
        assert closed.failed and closed.reason == "the session's supervisor failed (RuntimeError)"
        assert ws_client.state is State.FAILED
        started = time.monotonic()
        with pytest.raises(ApiConnectionError, match="gave up"):
            ws_client.call("public/test", timeout=(10, 10))
        assert time.monotonic() - started < 1.0
    finally:
        ws_client.close()
    assert caplog.records and any(
        r.levelno == logging.ERROR and "supervisor" in r.getMessage() for r in caplog.records
    )


def test_a_callback_that_exits_does_not_end_the_callbacks(sim: DeribitSimulator) -> None:
    """``sys.exit()`` in ``on_event`` ends that callback, not the thread that runs them all:
    the events after it still arrive. Before, the first ``SystemExit`` ended that thread."""
    seen: list[Event] = []

    def on_event(event: Event) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise SystemExit(3)

    ws_client = WebSocketApiClient(
        token_configuration(sim), heartbeat=None, on_event=on_event, close_timeout=0.5
    )
    ws_client.close()
    kinds = [type(event) for event in seen if not isinstance(event, HeartbeatAnswered)]
    assert kinds[-1] is Closed and SessionRestored in kinds
