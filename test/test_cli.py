"""The deribit-session command line: JSON on stdout, one line on stderr on failure."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN

from openapi_client.cli import COMMANDS, main
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(20)

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENT = (
    "DERIBIT_ACCESS_TOKEN",
    "DERIBIT_CLIENT_ID",
    "DERIBIT_CLIENT_SECRET",
    "DERIBIT_PRIVATE_KEY_FILE",
    "DERIBIT_PRIVATE_KEY_PASSWORD",
    "DERIBIT_AUTH_METHOD",
    "DERIBIT_HOST",
    "DERIBIT_TESTNET",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def succeed(*argv: str) -> dict[str, Any]:
    status, out, err = run(*argv)
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert isinstance(data, dict)
    assert data["jsonrpc"] == "2.0"
    assert out.endswith("}\n")
    return data


def fail(expected_status: int, *argv: str) -> str:
    """Run a failing command; return its one stderr line."""
    status, out, err = run(*argv)
    assert status == expected_status
    assert out == ""
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("deribit-session: error: ")
    return err.strip()


# -- --simulator ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "result"),
    [
        (["enable-cancel-on-disconnect", "--scope", "account"], "ok"),
        (["disable-cancel-on-disconnect", "--scope", "account"], "ok"),
        (
            ["get-cancel-on-disconnect", "--scope", "account"],
            {"scope": "account", "enabled": False},
        ),
    ],
)
def test_simulator_commands_that_work_over_http(argv: list[str], result: Any) -> None:
    data = succeed("--simulator", *argv)
    assert data["result"] == result
    assert data["testnet"] is True


@pytest.mark.parametrize(
    ("argv", "instead"),
    [
        (["set-heartbeat", "30"], "deribit-session session --heartbeat SECONDS"),
        (["disable-heartbeat"], "deribit-session session --heartbeat SECONDS"),
        (["enable-cancel-on-disconnect"], "deribit-session session --cancel-on-disconnect"),
        (
            ["disable-cancel-on-disconnect", "--scope", "connection"],
            "deribit-session session --cancel-on-disconnect",
        ),
        (["get-cancel-on-disconnect"], "--scope account over HTTP"),
    ],
)
def test_websocket_only_commands_point_to_the_session_command(
    argv: list[str], instead: str
) -> None:
    """Today's Deribit answers these over HTTP with 10030, and so does the simulator."""
    line = fail(1, "--simulator", *argv)
    assert line.startswith(
        "deribit-session: error: Deribit error 10030: must_be_websocket_request (HTTP 400): "
        f"{argv[0]} works only on a WebSocket on today's Deribit"
    )
    assert instead in line and "--legacy-http" in line


@pytest.mark.parametrize(
    ("argv", "result"),
    [
        (["set-heartbeat", "30"], "ok"),
        (["set-heartbeat", "30.5"], "ok"),
        (["disable-heartbeat"], "ok"),
        (["enable-cancel-on-disconnect"], "ok"),
        (["enable-cancel-on-disconnect", "--scope", "account"], "ok"),
        (["disable-cancel-on-disconnect", "--scope", "connection"], "ok"),
        (["disable-cancel-on-disconnect"], "ok"),
        (["get-cancel-on-disconnect"], {"scope": "connection", "enabled": False}),
        (
            ["get-cancel-on-disconnect", "--scope", "account"],
            {"scope": "account", "enabled": False},
        ),
    ],
)
def test_legacy_http_simulator_answers_every_command(argv: list[str], result: Any) -> None:
    """--legacy-http: the simulator answers as the older published API description says."""
    data = succeed("--simulator", "--legacy-http", *argv)
    assert data["result"] == result


def test_legacy_http_goes_with_the_simulator(simulator: DeribitSimulator) -> None:
    status, out, err = run("--host", simulator.url, "--legacy-http", "disable-heartbeat")
    assert (status, out) == (2, "")
    assert err.strip().endswith("deribit-session: error: --legacy-http goes with --simulator")
    assert simulator.requests == []


def test_every_command_is_covered() -> None:
    assert set(COMMANDS) == {
        "set-heartbeat",
        "disable-heartbeat",
        "enable-cancel-on-disconnect",
        "disable-cancel-on-disconnect",
        "get-cancel-on-disconnect",
    }


def test_python_dash_m_with_simulator() -> None:
    env = {name: value for name, value in os.environ.items() if name not in ENVIRONMENT}
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if part
    )
    started = time.monotonic()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_client",
            "--simulator",
            "enable-cancel-on-disconnect",
            "--scope",
            "account",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=str(REPO_ROOT),
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    data = json.loads(completed.stdout)
    assert data["result"] == "ok"
    assert set(data) == {"jsonrpc", "result", "testnet", "usIn", "usOut", "usDiff"}
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "environment",
    [
        {"DERIBIT_ACCESS_TOKEN": "a-real-deribit-token"},
        {"DERIBIT_CLIENT_ID": "real-id", "DERIBIT_CLIENT_SECRET": "real-secret"},
    ],
    ids=["token", "key"],
)
def test_simulator_ignores_credentials_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    data = succeed("--simulator", "get-cancel-on-disconnect", "--scope", "account")
    assert data["result"] == {"scope": "account", "enabled": False}


# -- --host with credentials from the environment -------------------------------------------------


def test_host_with_token_from_environment(
    simulator: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERIBIT_ACCESS_TOKEN", TOKEN)
    succeed("--host", simulator.url, "enable-cancel-on-disconnect", "--scope", "account")
    assert simulator.cancel_on_disconnect == {"connection": False, "account": True}
    data = succeed("--host", simulator.url, "get-cancel-on-disconnect", "--scope", "account")
    assert data["result"] == {"scope": "account", "enabled": True}
    succeed("--host", simulator.url, "set-heartbeat", "45")
    assert simulator.heartbeat_interval == 45
    requests = simulator.requests
    assert [r.target for r in requests] == [
        "/api/v2/private/enable_cancel_on_disconnect?scope=account",
        "/api/v2/private/get_cancel_on_disconnect?scope=account",
        "/api/v2/public/set_heartbeat?interval=45",
    ]
    assert {r.header("Authorization") for r in requests} == {f"Bearer {TOKEN}"}


def test_host_from_environment(
    simulator: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERIBIT_HOST", simulator.url)
    succeed("disable-heartbeat")
    assert [r.path for r in simulator.requests] == ["/api/v2/public/disable_heartbeat"]


# -- failures -------------------------------------------------------------------------------------


def test_bad_interval_is_a_usage_error() -> None:
    line = fail(2, "--simulator", "--legacy-http", "set-heartbeat", "5")
    assert "interval must be a finite number >= 10" in line
    assert "got 5" in line


def test_private_call_without_credentials(simulator: DeribitSimulator) -> None:
    line = fail(2, "--host", simulator.url, "enable-cancel-on-disconnect")
    assert "needs credentials" in line
    assert "DERIBIT_ACCESS_TOKEN" in line
    assert simulator.requests == []


def test_deribit_error_exits_1_with_the_code(
    simulator: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERIBIT_ACCESS_TOKEN", "not-a-valid-token")
    line = fail(1, "--host", simulator.url, "get-cancel-on-disconnect", "--scope", "account")
    assert "13009" in line
    assert "unauthorized" in line
    assert "not-a-valid-token" not in line


def test_injected_error_exits_1(simulator: DeribitSimulator) -> None:
    simulator.inject("rpc_error", code=11050, message="bad_request", data={"reason": "nope"})
    line = fail(1, "--host", simulator.url, "--retries", "0", "disable-heartbeat")
    assert line.startswith("deribit-session: error: Deribit error 11050: bad_request")
    assert "HTTP 400" in line


def refused_url() -> str:
    """An API root on a loopback port where nothing listens (a port just freed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v2"


def test_unreachable_host_exits_1() -> None:
    url = refused_url()
    line = fail(1, "--host", url, "--retries", "0", "set-heartbeat", "30")
    assert url.split("/")[2] in line and "refused" in line


@pytest.mark.timing
def test_timeout_option(simulator: DeribitSimulator) -> None:
    simulator.inject("hang")  # 30 s
    started = time.monotonic()
    line = fail(
        1, "--host", simulator.url, "--timeout", "0.3", "--retries", "0", "disable-heartbeat"
    )
    assert time.monotonic() - started < 5.0  # the 0.3 s timeout, not the hang, ended the call
    assert "0.3 s" in line


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["set-heartbeat"],
        ["set-heartbeat", "abc"],
        ["frobnicate"],
        ["--simulator", "--testnet", "disable-heartbeat"],
        ["get-cancel-on-disconnect", "--scope", "global"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(*argv)
    captured = capsys.readouterr()
    assert status == 2
    assert out == "" and captured.out == "" and captured.err == ""
    assert "error:" in err
    assert "Traceback" not in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, text, err = run("--help")
    assert capsys.readouterr().out == "", "help goes to main()'s stdout"
    assert status == 0
    assert err == ""
    assert text.startswith("usage: deribit-session")
    for option in ("--host", "--testnet", "--simulator", "--legacy-http", "session", *COMMANDS):
        assert option in text
    assert "DERIBIT_ACCESS_TOKEN" in text


def test_command_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, text, _ = run("get-cancel-on-disconnect", "--help")
    assert capsys.readouterr().out == ""
    assert status == 0
    assert "--scope" in text
    assert "account" in text
