"""The simulator judges the client, so it must not share the client's code for what it judges.

Known-answer vectors: fixed secret, timestamp, nonce and data with the HMAC-SHA256 digest worked
out independently of this code base, e.g. for the first vector::

    printf '1700000000000\\nabcd1234\\n' | openssl dgst -sha256 -hmac 'sim-secret'

Both the client's ``openapi_client.signing.sign`` and the simulator's own verifier must match
them. The simulator's credit pool is checked against Deribit's numbers with a fake clock.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from openapi_client import signing
from openapi_client.api.endpoints import ENDPOINTS
from openapi_client.simulator.auth import Authenticator, expected_signature, signed_request_data
from openapi_client.simulator.credits import (
    CREDITS_PER_REQUEST,
    POOL_CREDITS,
    REFILL_CREDITS_PER_SECOND,
    AccountCredits,
    CreditPool,
)
from openapi_client.simulator.keys import ApiKey
from openapi_client.simulator.methods import METHODS
from openapi_client.simulator.rpc import RpcError

SIMULATOR = Path(__file__).resolve().parent.parent / "openapi_client" / "simulator"

#: (secret, timestamp, nonce, data, hex digest): digests computed with openssl, not with Python.
VECTORS = [
    (
        "sim-secret",
        1700000000000,
        "abcd1234",
        "",
        "46810e37ad438dc9c2719cceeb981b338b6a3790fec0473835cafb6baf3f9dc5",
    ),
    (
        "sim-secret",
        1700000000000,
        "abcd1234",
        "some data",
        "10e4d09564d39035e7ca760b6b75831d6e3423118b5f722a0c1b27767fdb51cf",
    ),
    # The example in Deribit's authentication documentation.
    (
        "AMANDASECRECT",
        1576074319000,
        "1iqt2wls",
        "",
        "56590594f97921b09b18f166befe0d1319b198bbcdad7ca73382de2f88fe9aa1",
    ),
]

#: The deri-hmac-sha256 form: data is "GET\n<path with query>\n<empty body>\n".
REQUEST_TARGET = "/api/v2/private/get_cancel_on_disconnect?scope=account"
REQUEST_VECTOR = (
    "sim-secret",
    1700000000000,
    "n-42",
    "1d4f634ede12c0db9e9275948da7773034412f2a1bbc57f300ae471f423b4db6",
)


@pytest.mark.parametrize(("secret", "timestamp", "nonce", "data", "digest"), VECTORS)
def test_both_sides_match_the_known_answers(
    secret: str, timestamp: int, nonce: str, data: str, digest: str
) -> None:
    assert signing.sign(secret, timestamp, nonce, data) == digest
    assert expected_signature(secret, timestamp, nonce, data) == digest


def test_request_signature_known_answer() -> None:
    secret, timestamp, nonce, digest = REQUEST_VECTOR
    client_data = signing.request_data("GET", REQUEST_TARGET, "")
    server_data = signed_request_data("GET", REQUEST_TARGET)
    assert client_data == server_data == f"GET\n{REQUEST_TARGET}\n\n"
    assert signing.sign(secret, timestamp, nonce, client_data) == digest
    assert expected_signature(secret, timestamp, nonce, server_data) == digest


def test_simulator_accepts_hand_signed_credentials() -> None:
    # The verifier's clock is set to the vectors' time, so their fixed timestamps are fresh.
    secret, timestamp, nonce, _, digest = VECTORS[0]
    auth = Authenticator(
        tokens=(),
        keys={"kat": ApiKey("kat", client_secret=secret)},
        token_ttl=60,
        wall_clock=lambda: timestamp / 1000,
    )
    grant = {
        "grant_type": "client_signature",
        "client_id": "kat",
        "timestamp": str(timestamp),
        "nonce": nonce,
        "signature": digest,
    }
    assert auth.grant(grant, connection_id=1, transport="websocket")["token_type"] == "bearer"
    header = f"deri-hmac-sha256 id=kat,ts={timestamp},sig={REQUEST_VECTOR[3]},nonce=n-42"
    assert auth.authorize(header, 2, target=REQUEST_TARGET).client_id == "kat"
    wrong = header.replace(REQUEST_VECTOR[3][:8], "00000000").replace("n-42", "n-43")
    with pytest.raises(RpcError, match="13004"):
        auth.authorize(wrong, 2, target=REQUEST_TARGET)


def test_the_simulator_and_the_client_agree_on_each_methods_permission() -> None:
    """Two copies of one fact from Deribit's method pages, kept apart on purpose (the simulator
    judges the client): when they differ, one of them misreads Deribit."""
    for endpoint in ENDPOINTS:
        method = METHODS[endpoint.path]
        assert (method.private, method.scope) == (endpoint.private, endpoint.required_scope), (
            endpoint.path
        )


def test_simulator_imports_nothing_from_the_client() -> None:
    offenders: list[str] = []
    for path in sorted(SIMULATOR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
                if node.level > 1:
                    offenders.append(f"{path.name}: from {'.' * node.level}{node.module}")
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offenders += [
                f"{path.name}: {name}"
                for name in names
                if name.startswith("openapi_client") and not name.startswith("openapi_client.sim")
            ]
    assert not offenders, offenders


# -- credits ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_deribit_numbers() -> None:
    assert (CREDITS_PER_REQUEST, POOL_CREDITS, REFILL_CREDITS_PER_SECOND) == (500, 50_000, 10_000)


def test_pool_bursts_100_then_refills_20_a_second() -> None:
    clock = FakeClock()
    pool = CreditPool(clock=clock)
    assert sum(pool.spend() for _ in range(150)) == 100
    assert pool.available < CREDITS_PER_REQUEST
    clock.now += 0.049
    assert not pool.spend()
    clock.now += 0.001
    assert pool.spend()
    assert not pool.spend()
    clock.now += 1.0
    assert sum(pool.spend() for _ in range(50)) == 20
    clock.now += 3600
    assert pool.available == POOL_CREDITS  # never above the pool


def test_refused_request_takes_nothing() -> None:
    clock = FakeClock()
    pool = CreditPool(1000, 100, clock=clock)
    assert pool.spend() and pool.spend(499)
    assert not pool.spend() and pool.available == pytest.approx(1)


def test_accounts_have_their_own_pools() -> None:
    clock = FakeClock()
    credits = AccountCredits(1000, 500, clock=clock)
    assert [credits.spend("a") for _ in range(3)] == [True, True, False]
    assert credits.spend("b")
    clock.now += 1
    assert credits.spend("a")


@pytest.mark.parametrize(
    ("args", "error"),
    [((0, 1), ValueError), ((1, float("inf")), ValueError), (("1", 1), TypeError)],
)
def test_pool_checks_its_numbers(args: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        CreditPool(*args)


def test_simulator_limits_in_requests_become_credits() -> None:
    clock = FakeClock()
    credits = AccountCredits.from_requests(per_second=20, burst=100, clock=clock)
    assert sum(credits.spend("x") for _ in range(120)) == 100
    clock.now += 0.5
    assert sum(credits.spend("x") for _ in range(20)) == 10
    with pytest.raises(ValueError, match="burst"):
        AccountCredits.from_requests(20, 0)
