"""The command line with an asymmetric API key: ``--private-key-file``, its password from the
environment only, and nothing of the key or password in its output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_asymmetric import (
    CLIENT_ID,
    ED25519,
    ED25519_ENCRYPTED,
    ED25519_PUBLIC,
    PASSWORD,
    auth_requests,
    body_lines,
    check_grant,
)
from test_cli import ENVIRONMENT, fail, run

from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(20)

CALL = ("get-cancel-on-disconnect", "--scope", "account")


@pytest.fixture(autouse=True)
def key_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DERIBIT_CLIENT_ID", CLIENT_ID)


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    # It does not know the key: it records the grant and refuses it (13004).
    with DeribitSimulator() as simulator:
        yield simulator


def assert_nothing_secret(text: str) -> None:
    assert PASSWORD not in text
    for line in body_lines(ED25519_ENCRYPTED) + body_lines(ED25519):
        assert line not in text


@pytest.mark.parametrize(
    ("key_file", "environment"),
    [
        # The command line's key wins over a secret in the environment.
        (ED25519, {"DERIBIT_CLIENT_SECRET": "an-hmac-secret"}),
        (ED25519_ENCRYPTED, {"DERIBIT_PRIVATE_KEY_PASSWORD": PASSWORD}),
    ],
    ids=["plain", "encrypted"],
)
def test_private_key_file_signs_the_grant(
    sim: DeribitSimulator,
    monkeypatch: pytest.MonkeyPatch,
    key_file: Path,
    environment: dict[str, str],
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    line = fail(1, "--host", sim.url, "--private-key-file", str(key_file), *CALL)
    assert "Deribit error 13004: invalid_credentials" in line
    (grant,) = auth_requests(sim)
    check_grant(grant, ED25519_PUBLIC)
    assert_nothing_secret(line)


def test_key_file_from_the_environment(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERIBIT_PRIVATE_KEY_FILE", str(ED25519_ENCRYPTED))
    monkeypatch.setenv("DERIBIT_PRIVATE_KEY_PASSWORD", PASSWORD)
    fail(1, "--host", sim.url, *CALL)
    check_grant(auth_requests(sim)[0], ED25519_PUBLIC)


def test_a_wrong_password_is_a_usage_error_that_shows_nothing(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERIBIT_PRIVATE_KEY_PASSWORD", "wrong-password-value")
    line = fail(2, "--host", sim.url, "--private-key-file", str(ED25519_ENCRYPTED), *CALL)
    assert "could not be decrypted: wrong private_key_password" in line
    assert "wrong-password-value" not in line
    assert_nothing_secret(line)
    assert sim.requests == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--private-key-password", "hunter2-password"],
        ["--private-key-password=hunter2-password"],
        ["--private-key-pass", "hunter2-password"],
    ],
)
def test_a_password_on_the_command_line_is_refused(argv: list[str]) -> None:
    status, out, err = run("--private-key-file", str(ED25519_ENCRYPTED), *argv, *CALL)
    assert (status, out) == (2, "")
    assert "hunter2-password" not in err
    assert "set DERIBIT_PRIVATE_KEY_PASSWORD instead" in err


def test_private_key_file_is_not_for_the_simulator() -> None:
    status, out, err = run("--simulator", "--private-key-file", str(ED25519), *CALL)
    assert (status, out) == (2, "")
    assert "--private-key-file is for Deribit" in err


def test_help_mentions_the_key_file() -> None:
    status, text, _ = run("--help")
    assert status == 0
    assert "--private-key-file" in text and "DERIBIT_PRIVATE_KEY_PASSWORD" in text
    assert "--private-key-password" not in text
