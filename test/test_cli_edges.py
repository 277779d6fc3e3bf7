"""``deribit-session`` at the edges: 10030 from a real host, Ctrl-C during a call, a session run
from another thread, and a reader that goes away. In-process, through ``cli.main``."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from openapi_client.cli import EXIT_FAILED, EXIT_INTERRUPTED, main
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("DERIBIT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator() as simulator:
        yield simulator


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_websocket_only_command_against_a_host_says_what_to_run_instead(
    sim: DeribitSimulator,
) -> None:
    status, out, err = run("--host", sim.url, "set-heartbeat", "30")
    assert (status, out) == (EXIT_FAILED, "")
    assert err == (
        "deribit-session: error: Deribit error 10030: must_be_websocket_request (HTTP 400): "
        "set-heartbeat works only on a WebSocket on today's Deribit; run deribit-session "
        "session --heartbeat SECONDS\n"
    )  # no word of --legacy-http: that is for the simulator only


def test_ctrl_c_during_a_call_exits_130(sim: DeribitSimulator) -> None:
    sim.inject("hang", seconds=30)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        status, out, err = run("--host", sim.url, "disable-heartbeat")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert (status, out, err) == (EXIT_INTERRUPTED, "", "deribit-session: interrupted\n")


def test_session_runs_from_a_thread_other_than_the_main_one() -> None:
    outcome: list[tuple[int, str, str]] = []
    thread = threading.Thread(
        target=lambda: outcome.append(run("--simulator", "session", "--duration", "0.3"))
    )
    thread.start()
    thread.join(15)
    ((status, out, err),) = outcome
    assert (status, err) == (0, "")
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[0] == "Connected" and events[-1] == "Closed"


def test_session_ends_when_its_reader_goes_away() -> None:
    out, err = io.StringIO(), io.StringIO()
    out.close()  # as a pipe whose reader has exited
    assert main(["--simulator", "session", "--duration", "10"], stdout=out, stderr=err) == 0
    assert err.getvalue() == ""
