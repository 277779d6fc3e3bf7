"""The command line with an asymmetric API key: ``--private-key-file``, its password from the
environment only, and nothing of the key or password in its output; with ``--simulator``, the
key pair tried offline (its public half registered with the simulator the command starts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_asymmetric import (
    CLIENT_ID,
    DATA,
    ED25519,
    ED25519_ENCRYPTED,
    ED25519_PUBLIC,
    PASSWORD,
    RSA_2048,
    RSA_2048_PUBLIC,
    auth_requests,
    body_lines,
    check_grant,
)
from test_cli import ENVIRONMENT, fail, run

import openapi_client.simulator
from openapi_client.cli import SIMULATED_CLIENT_ID
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


# -- --simulator with a key pair: tried offline --------------------------------------------------

#: Credentials meant for Deribit, in the environment: none of them may reach the simulator (the
#: key file named here is not the one on the command line, the auth method not the key's).
DERIBIT_ENVIRONMENT = {
    "DERIBIT_CLIENT_SECRET": "real-deribit-secret-0123",
    "DERIBIT_ACCESS_TOKEN": "real-deribit-token-4567",
    "DERIBIT_AUTH_METHOD": "client_credentials",
    "DERIBIT_PRIVATE_KEY_FILE": str(RSA_2048),
}


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[DeribitSimulator]:
    """The simulators the command starts: the real class, each kept for a look at what it
    received once the command is done."""
    kept: list[DeribitSimulator] = []

    class Kept(DeribitSimulator):
        def __init__(self, **settings: Any) -> None:
            super().__init__(**settings)
            kept.append(self)

    monkeypatch.setattr(openapi_client.simulator, "DeribitSimulator", Kept)
    for name, value in DERIBIT_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return kept


def assert_environment_unsent(sim: DeribitSimulator) -> None:
    """Nothing the environment holds for Deribit reached ``sim``: its client id, secret, token,
    nor the other key's signatures (every grant is checked against the command line's key)."""
    unsent = [CLIENT_ID, PASSWORD, *DERIBIT_ENVIRONMENT.values()]
    for request in sim.requests:
        sent = " ".join([request.target, *request.query.values(), *request.headers.values()])
        for value in unsent:
            assert value not in sent, (request, value)


@pytest.mark.parametrize(
    ("key_file", "public_pem", "password"),
    [(ED25519, ED25519_PUBLIC, None), (ED25519_ENCRYPTED, ED25519_PUBLIC, PASSWORD),
     (RSA_2048, RSA_2048_PUBLIC, None)],
    ids=["ed25519", "encrypted", "rsa"],
)
def test_simulator_tries_the_key_pair_on_http_commands(
    started: list[DeribitSimulator],
    monkeypatch: pytest.MonkeyPatch,
    key_file: Path,
    public_pem: Path,
    password: str | None,
) -> None:
    if password is not None:
        monkeypatch.setenv("DERIBIT_PRIVATE_KEY_PASSWORD", password)
    status, out, err = run("--simulator", "--private-key-file", str(key_file), *CALL)
    assert (status, err) == (0, "")
    assert json.loads(out)["result"] == {"scope": "account", "enabled": False}
    (sim,) = started
    (grant,) = auth_requests(sim)
    check_grant(grant, public_pem, client_id=SIMULATED_CLIENT_ID)
    assert_environment_unsent(sim)
    assert_nothing_secret(out)


def test_simulator_tries_the_key_pair_on_the_session(
    started: list[DeribitSimulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session is ready before the command counts its duration out: a short one will do.
    monkeypatch.setenv("DERIBIT_PRIVATE_KEY_PASSWORD", PASSWORD)
    argv = ["--simulator", "--private-key-file", str(ED25519_ENCRYPTED), "session"]
    status, out, err = run(*argv, "--cancel-on-disconnect", "--duration", "0.1")
    assert (status, err) == (0, "")
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[:3] == ["Connected", "Authenticated", "SessionRestored"]
    (sim,) = started
    grants = auth_requests(sim)
    assert grants and all(grant.transport == "websocket" for grant in grants)
    check_grant(grants[0], ED25519_PUBLIC, client_id=SIMULATED_CLIENT_ID)
    assert_environment_unsent(sim)
    assert_nothing_secret(out)


@pytest.mark.parametrize(
    ("key_file", "says"),
    [
        (ED25519_PUBLIC, "is a public key"),
        (ED25519_ENCRYPTED, "is encrypted: give its password"),
        (DATA / "test-only-rsa-1024.pem", "1024-bit RSA key"),
    ],
    ids=["public-key", "no-password", "rsa-1024"],
)
def test_simulator_refuses_a_key_it_cannot_use_before_starting(
    started: list[DeribitSimulator], key_file: Path, says: str
) -> None:
    line = fail(2, "--simulator", "--private-key-file", str(key_file), *CALL)
    assert says in line
    assert_nothing_secret(line)
    assert started == []


def test_help_mentions_the_key_file() -> None:
    status, text, _ = run("--help")
    assert status == 0
    assert "--private-key-file" in text and "DERIBIT_PRIVATE_KEY_PASSWORD" in text
    assert "--private-key-password" not in text
