"""``deribit-session session``: a WebSocket session held open, one JSON object per event on stdout,
a clean end on Ctrl-C or after --duration, one stderr line when it cannot connect or authenticate.

Real subprocesses against the embedded simulator (``--simulator``, which scales its time so that
heartbeats come within a second), and the same code in-process against a simulator of the test's.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET
from test_cli import ENVIRONMENT, clean_environment, refused_url  # noqa: F401 (autouse fixture)

from openapi_client.cli import main
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Generous bound for a subprocess to start, run and end, in seconds.
BOUND = 30.0


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=0.01) as simulator:
        yield simulator


def child_environment(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in ENVIRONMENT}
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if part
    )
    env.update(extra)
    return env


def command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "openapi_client", *argv]


def events_of(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line is one JSON object naming its event."""
    events = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(event, dict) and event.get("event") for event in events), stdout
    return events


def names(events: list[dict[str, Any]]) -> list[str]:
    return [event["event"] for event in events]


def run_in_process(*argv: str) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, events_of(out.getvalue()), err.getvalue()


# -- subprocesses against --simulator -------------------------------------------------------------


@pytest.mark.timing
def test_duration_ends_the_session_cleanly() -> None:
    ran = subprocess.run(
        command(
            "--simulator", "session", "--heartbeat", "10", "--cancel-on-disconnect",
            "--duration", "2",
        ),
        capture_output=True,
        text=True,
        timeout=BOUND,
        cwd=str(REPO_ROOT),
        env=child_environment(),
        check=False,
    )
    assert (ran.returncode, ran.stderr) == (0, "")
    events = events_of(ran.stdout)
    assert names(events)[:3] == ["Connected", "Authenticated", "SessionRestored"]
    restored = events[2]
    assert (restored["heartbeat"], restored["cancel_on_disconnect"]) == (10, True)
    # One every 0.5 s at the simulator's time scale; the duration counts from before connecting,
    # so 2 s leaves a busy machine 1.5 s to connect and answer the first.
    assert "HeartbeatAnswered" in names(events)
    assert names(events)[-2:] == ["Disconnected", "Closed"]
    lost, closed = events[-2:]
    assert lost["cancel_on_disconnect_may_have_fired"] is True
    assert closed["failed"] is False


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)
    into.put("")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
@pytest.mark.timing
def test_ctrl_c_ends_the_session_cleanly() -> None:
    child = subprocess.Popen(
        command("--simulator", "session", "--heartbeat", "10"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO_ROOT),
        env=child_environment(),
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_lines, args=(child.stdout, lines), daemon=True).start()
        seen: list[str] = []
        deadline = time.monotonic() + BOUND
        while "HeartbeatAnswered" not in seen:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line, f"the session ended early: {seen}"
            seen.append(json.loads(line)["event"])
        child.send_signal(signal.SIGINT)
        assert child.wait(BOUND) == 0
        rest: list[str] = []
        while True:
            line = lines.get(timeout=BOUND)
            if not line:
                break
            rest.append(json.loads(line)["event"])
        assert rest[-2:] == ["Disconnected", "Closed"]
        assert child.stderr.read() == ""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(BOUND)


def test_cannot_connect_is_one_stderr_line_and_exit_1() -> None:
    url = refused_url()
    ran = subprocess.run(
        command("--host", url, "--retries", "0", "session"),
        capture_output=True,
        text=True,
        timeout=BOUND,
        cwd=str(REPO_ROOT),
        env=child_environment(),
        check=False,
    )
    assert ran.returncode == 1 and ran.stdout == ""
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.startswith("deribit-session: error: ")
    assert url.split("/")[2] in ran.stderr and "refused" in ran.stderr


# -- in-process against a simulator of the test's -------------------------------------------------


@pytest.mark.timing
def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERIBIT_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DERIBIT_CLIENT_SECRET", CLIENT_SECRET)
    # Real time: the default 30 s heartbeat never comes within the test, so no heartbeat a busy
    # machine answers late can end the connection (test_ctrl_c_ends_the_session_cleanly and
    # test_duration_ends_the_session_cleanly see heartbeats answered).
    with DeribitSimulator() as sim:
        status, events, err = run_in_process(
            "--host", sim.url, "session", "--cancel-on-disconnect", "--duration", "0.5"
        )
    assert (status, err) == (0, "")
    assert names(events)[:3] == ["Connected", "Authenticated", "SessionRestored"]
    assert events[0]["url"] == sim.ws_url
    assert events[2]["heartbeat"] == 30
    assert names(events)[-2:] == ["Disconnected", "Closed"]
    assert [event.reason for event in sim.cancel_on_disconnect_events] == ["closed"]
    assert CLIENT_SECRET not in json.dumps(events)


def test_wrong_credentials_are_one_stderr_line(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERIBIT_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DERIBIT_CLIENT_SECRET", "not-the-secret")
    status, events, err = run_in_process("--host", sim.url, "session", "--duration", "5")
    assert (status, events) == (1, [])
    assert err.count("\n") == 1 and err.startswith("deribit-session: error: Deribit error 13004")
    assert "not-the-secret" not in err


@pytest.mark.timing
def test_session_that_gives_up_exits_1(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token dies while the connection is down: the session cannot be restored."""
    monkeypatch.setenv("DERIBIT_ACCESS_TOKEN", sim.issue_token())

    def break_it() -> None:
        deadline = time.monotonic() + BOUND
        while not any(c.cancel_on_disconnect for c in sim.ws_connections):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        sim.revoke_tokens()
        sim.inject("ws_drop", path="/public/test")

    breaker = threading.Thread(target=break_it, daemon=True)
    breaker.start()
    status, events, err = run_in_process(
        "--host", sim.url, "--retries", "0", "session", "--heartbeat", "10",
        "--cancel-on-disconnect", "--duration", str(BOUND),
    )
    breaker.join(BOUND)
    assert status == 1
    assert names(events)[-3:] == ["Connected", "Disconnected", "Closed"]
    assert events[-1]["failed"] is True and "13009" in events[-1]["reason"]
    assert err.count("\n") == 1
    assert err.startswith("deribit-session: error: the session ended: ") and "13009" in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["session", "--heartbeat", "5"], "interval must be"),
        (["session", "--duration", "0"], "must be a number of seconds > 0"),
        (["session", "--duration", "soon"], "must be a number of seconds > 0"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], says: str) -> None:
    status, events, err = run_in_process("--host", refused_url(), *argv)
    assert (status, events) == (2, [])
    assert says in err and "Traceback" not in err


def test_cancel_on_disconnect_needs_credentials(sim: DeribitSimulator) -> None:
    status, events, err = run_in_process("--host", sim.url, "session", "--cancel-on-disconnect")
    assert (status, events) == (2, [])
    assert "needs credentials" in err
    assert sim.ws_connections == []


@pytest.mark.timing
def test_watchdog_checks_in_from_the_commands_loop_and_a_freeze_fires_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--watchdog 1``: the command checks in from its own loop, so the session lives; with
    ``--freeze-after 0.5`` it stops checking in, as a frozen bot would: the watchdog closes the
    connection without logging out and cancel-on-disconnect fires."""
    monkeypatch.setenv("DERIBIT_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DERIBIT_CLIENT_SECRET", CLIENT_SECRET)
    with DeribitSimulator(time_scale=0.1) as sim:
        status, events, err = run_in_process(
            "--host", sim.url, "session", "--cancel-on-disconnect", "--watchdog", "1",
            "--duration", "2",
        )
        assert (status, err) == (0, "")
        assert "WatchdogExpired" not in names(events)
        status, events, err = run_in_process(
            "--host", sim.url, "session", "--cancel-on-disconnect", "--watchdog", "1",
            "--freeze-after", "0.5", "--duration", "3",
        )
        assert (status, err) == (0, "")
        kinds = [kind for kind in names(events) if kind != "HeartbeatAnswered"]
        assert kinds[:3] == ["Connected", "Authenticated", "SessionRestored"]
        assert kinds[3:] == ["WatchdogExpired", "Disconnected", "Closed"], events
        expired = events[names(events).index("WatchdogExpired")]
        assert expired["connection"] == 1 and expired["since_check_in"] >= 1.0
        assert events[names(events).index("Disconnected")]["cancel_on_disconnect_may_have_fired"]
        assert not any(r.path.endswith("/private/logout") for r in sim.requests)
        assert [event.reason for event in sim.cancel_on_disconnect_events] == ["closed", "closed"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["session", "--watchdog", "0.5"], "watchdog must be None or a number of seconds >= 1"),
        (["session", "--freeze-after", "1"], "--freeze-after goes with --watchdog"),
        (["session", "--watchdog", "x"], "must be a number of seconds > 0"),
    ],
)
def test_watchdog_usage_errors_exit_2(argv: list[str], says: str) -> None:
    status, events, err = run_in_process("--host", refused_url(), *argv)
    assert (status, events) == (2, [])
    assert says in err and "Traceback" not in err
