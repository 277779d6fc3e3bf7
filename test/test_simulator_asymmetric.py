"""Asymmetric API keys in the simulator: it registers Ed25519 and RSA public keys and verifies
``client_signature`` grants signed with the private key, with its own code on ``cryptography``.

Known answers: ``test/data/asymmetric`` holds test-only keys and signatures made once with
OpenSSL (the commands are in its README); the simulator's verifier must accept exactly those.
The end-to-end tests sign fresh grants here, with ``cryptography`` directly: never with the
client's signing code, which the simulator judges.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from test_simulator import rpc
from test_simulator_ws import open_client

from openapi_client.simulator import ApiKey, DeribitSimulator
from openapi_client.simulator.auth import Authenticator
from openapi_client.simulator.rpc import RpcError

pytestmark = pytest.mark.timeout(20)

DATA = Path(__file__).resolve().parent / "data" / "asymmetric"
REPO_ROOT = DATA.parent.parent.parent
#: (timestamp, nonce, data) of message-1.bin and message-2.bin (see the README there).
MESSAGES = {
    1: (1700000000000, "abcd", ""),
    2: (1714000000123, "q1w2e3r4t5y6u7i8", "openapi-client test vector"),
}
KINDS = ("ed25519", "rsa-2048")


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def vector(kind: str, number: int) -> str:
    return data(f"{kind}-message-{number}.sig.b64url").decode().strip()


def private_key(kind: str) -> Any:
    return load_pem_private_key(data(f"test-only-{kind}.pem"), password=None)


def sign(kind: str, message: bytes) -> str:
    """An unpadded base64url signature of ``message`` with a test-only private key."""
    key = private_key(kind)
    if isinstance(key, RSAPrivateKey):
        raw = key.sign(message, PKCS1v15(), SHA256())
    else:
        assert isinstance(key, Ed25519PrivateKey)
        raw = key.sign(message)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def signed_grant(client_id: str, kind: str, *, nonce: str, data: str = "") -> dict[str, Any]:
    timestamp = int(time.time() * 1000)
    message = f"{timestamp}\n{nonce}\n{data}".encode()
    grant = {
        "grant_type": "client_signature",
        "client_id": client_id,
        "timestamp": timestamp,
        "nonce": nonce,
        "signature": sign(kind, message),
    }
    if data:
        grant["data"] = data
    return grant


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    keys = [ApiKey(kind, public_key=data(f"test-only-{kind}.pub.pem")) for kind in KINDS]
    with DeribitSimulator(keys=keys) as simulator:
        yield simulator


# -- known answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("number", sorted(MESSAGES))
@pytest.mark.parametrize("kind", KINDS)
def test_the_verifier_accepts_the_openssl_vectors(kind: str, number: int) -> None:
    timestamp, nonce, extra = MESSAGES[number]
    assert data(f"message-{number}.bin") == f"{timestamp}\n{nonce}\n{extra}".encode()
    key = ApiKey("kat", public_key=data(f"test-only-{kind}.pub.pem"))
    auth = Authenticator(
        tokens=(), keys={"kat": key}, token_ttl=None, wall_clock=lambda: timestamp / 1000
    )
    grant = {
        "grant_type": "client_signature",
        "client_id": "kat",
        "timestamp": str(timestamp),
        "nonce": nonce,
        "data": extra,
        "signature": vector(kind, number),
    }
    assert auth.grant(grant, 1, "websocket")["token_type"] == "bearer"
    # Deterministic schemes: the test's own signer agrees with OpenSSL byte for byte.
    assert sign(kind, data(f"message-{number}.bin")) == vector(kind, number)


def forms(signature: str) -> list[str]:
    """The same signature in encodings Deribit's article does not use, and one changed byte."""
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    return [
        base64.urlsafe_b64encode(raw).decode(),  # padded
        base64.b64encode(raw).decode().rstrip("="),  # the standard alphabet, when it differs
        raw.hex(),
        base64.urlsafe_b64encode(flipped).decode().rstrip("="),
        signature[:-2],
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_the_verifier_refuses_everything_else(kind: str) -> None:
    timestamp, nonce, _ = MESSAGES[1]
    key = ApiKey("kat", public_key=data(f"test-only-{kind}.pub.pem"))
    other = "rsa-2048" if kind == "ed25519" else "ed25519"
    auth = Authenticator(
        tokens=(), keys={"kat": key}, token_ttl=None, wall_clock=lambda: timestamp / 1000
    )
    refused = [form for form in forms(vector(kind, 1)) if form != vector(kind, 1)]
    refused.append(vector(other, 1))  # the other key's signature of the same message
    for signature in refused:  # (a refused grant claims no nonce)
        grant = {
            "grant_type": "client_signature",
            "client_id": "kat",
            "timestamp": str(timestamp),
            "nonce": nonce,
            "signature": signature,
        }
        with pytest.raises(RpcError) as raised:
            auth.grant(grant, 1, "websocket")
        assert (raised.value.code, raised.value.data) == (13004, None), signature
    grant["signature"] = vector(kind, 1)
    assert auth.grant(grant, 1, "websocket")["token_type"] == "bearer"  # the nonce was free


# -- end to end, over real sockets ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_signed_grant_authenticates_over_http_and_websocket(
    sim: DeribitSimulator, kind: str
) -> None:
    status, body = rpc(
        sim, "public/auth", {**signed_grant(kind, kind, nonce="h1"), "scope": "session:bot"}
    )
    assert status == 200, body
    token = body["result"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert rpc(sim, "private/get_cancel_on_disconnect", {"scope": "account"}, headers)[0] == 200
    client = open_client(sim)
    result = client.result("public/auth", signed_grant(kind, kind, nonce="w1", data="w"))
    assert "connection" in result["scope"].split()
    assert client.result("private/enable_cancel_on_disconnect") == "ok"
    refreshed = client.result(
        "public/auth", {"grant_type": "refresh_token", "refresh_token": result["refresh_token"]}
    )
    assert refreshed["scope"] == result["scope"]
    client.ws.close()


def test_a_wrong_signature_is_13004(sim: DeribitSimulator) -> None:
    forged = signed_grant("ed25519", "rsa-2048", nonce="f1")  # signed with another key
    status, body = rpc(sim, "public/auth", forged)
    assert (status, body["error"]) == (400, {"code": 13004, "message": "invalid_credentials"})
    assert "ed25519 public key" in str(sim.requests[-1].explanation)
    replayed = signed_grant("ed25519", "ed25519", nonce="r1")
    assert rpc(sim, "public/auth", replayed)[0] == 200
    status, body = rpc(sim, "public/auth", replayed)
    assert body["error"]["code"] == 13004 and "nonce" in str(sim.requests[-1].explanation)
    stale = {**signed_grant("ed25519", "ed25519", nonce="s1"), "timestamp": 1700000000000}
    assert rpc(sim, "public/auth", stale)[1]["error"]["code"] == 13004


def test_only_client_signature_works_for_an_asymmetric_key(sim: DeribitSimulator) -> None:
    params = {"grant_type": "client_credentials", "client_id": "ed25519", "client_secret": "x"}
    _, body = rpc(sim, "public/auth", params)
    assert body["error"] == {"code": 13004, "message": "invalid_credentials"}
    assert "client_signature" in str(sim.requests[-1].explanation)
    basic = base64.b64encode(b"ed25519:x").decode()
    ts = int(time.time() * 1000)
    for authorization, explained in (
        (f"Basic {basic}", "asymmetric"),
        (f"deri-hmac-sha256 id=ed25519,ts={ts},sig=00,nonce=n", "asymmetric"),
    ):
        _, body = rpc(
            sim,
            "private/get_cancel_on_disconnect",
            {"scope": "account"},
            {"Authorization": authorization},
        )
        assert body["error"] == {"code": 13004, "message": "invalid_credentials"}
        assert explained in str(sim.requests[-1].explanation)


# -- registering keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (lambda: data("test-only-ed25519.pem"), "private key"),
        (lambda: pub_of("test-only-rsa-1024.pem"), "1024 bits; Deribit takes 2048"),
        (lambda: pub_of("test-only-ec-p256.pem"), "EC keys are not taken; Deribit takes Ed25519"),
        (lambda: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM"),
        (lambda: b"not a key", "not a PEM"),
    ],
)
def test_keys_the_simulator_cannot_use_are_refused(pem: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ApiKey("k", public_key=pem())


def pub_of(name: str) -> bytes:
    key = load_pem_private_key(data(name), password=None)
    return bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))


def test_keys_generated_at_run_time_work_too() -> None:
    private = generate_private_key(public_exponent=65537, key_size=3072)
    public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    timestamp = int(time.time() * 1000)
    message = f"{timestamp}\nn\n".encode()
    signature = base64.urlsafe_b64encode(private.sign(message, PKCS1v15(), SHA256()))
    with DeribitSimulator(keys=[ApiKey("fresh", public_key=public.decode())]) as sim:
        grant = {
            "grant_type": "client_signature",
            "client_id": "fresh",
            "timestamp": timestamp,
            "nonce": "n",
            "signature": signature.decode().rstrip("="),
        }
        assert rpc(sim, "public/auth", grant)[0] == 200


def test_without_cryptography_the_simulator_works_and_asymmetric_keys_name_the_extra() -> None:
    script = """
import sys
sys.modules["cryptography"] = None  # as if the package were not installed
from openapi_client.simulator import ApiKey, DeribitSimulator
with DeribitSimulator() as sim:
    pass
try:
    ApiKey("k", public_key=b"-----BEGIN PUBLIC KEY-----")
except ValueError as error:
    print(error)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stderr
    assert "'cryptography' package" in done.stdout
    assert "openapi-client-deribit-session[asymmetric]" in done.stdout
