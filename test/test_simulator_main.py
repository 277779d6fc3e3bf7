"""``python -m openapi_client.simulator``: what it says when it cannot serve, and its exit status.

Serving until a signal is tested in a child process (test_simulator.py); the refusals below happen
before serving, so they run in this process, with its signal handlers put back afterwards.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator

import pytest

from openapi_client.simulator.__main__ import main

pytestmark = pytest.mark.timeout(15)


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_client_id_without_secret_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", "--client-id", "bot"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "give --client-id and --client-secret together" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--time-scale", "0"], "time_scale must be a finite number > 0, got 0.0"),
        (["--max-connections", "0"], "max_connections must be a whole number >= 1, got 0"),
        (["--token", "two words"], "a static token must be a non-empty string without whitespace"),
        (["--token-ttl", "nan"], "token_ttl must be a finite number of seconds >= 0, got nan"),
        (["--port", "70000"], "port must be a whole number from 0 to 65535, got 70000"),
    ],
)
def test_settings_the_simulator_refuses_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"error: {message}" in err


def test_port_in_use_exits_1_saying_why(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no URL printed: nothing is served
    assert err.startswith(f"cannot listen on 127.0.0.1 port {port}: ")
    assert "in use" in err
