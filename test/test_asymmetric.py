"""Asymmetric API keys (Ed25519, RSA): loading and checking the key, the signature against
known answers computed once with OpenSSL, the settings, and what ``public/auth`` carries on the
wire over HTTP and WebSocket.

The known answers and test-only keys are in ``test/data/asymmetric`` (its README has the OpenSSL
commands). Signatures on the wire are checked here with ``cryptography`` directly, never with the
client's own signing code.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_RETRIES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from test_websocket_support import Recorder, session

from openapi_client import (
    ApiClient,
    ApiException,
    ApiTypeError,
    ApiValueError,
    Configuration,
    SessionManagementApi,
    signing,
)
from openapi_client.asymmetric import PrivateKey, load_private_key
from openapi_client.exceptions import ApiMissingDependencyError
from openapi_client.simulator import DeribitSimulator, Fault, RecordedRequest

pytestmark = pytest.mark.timeout(30)

DATA = Path(__file__).parent / "data" / "asymmetric"
ED25519 = DATA / "test-only-ed25519.pem"
ED25519_ENCRYPTED = DATA / "test-only-ed25519-encrypted.pem"
ED25519_PUBLIC = DATA / "test-only-ed25519.pub.pem"
RSA_2048 = DATA / "test-only-rsa-2048.pem"
RSA_2048_PUBLIC = DATA / "test-only-rsa-2048.pub.pem"
PASSWORD = "test-only-password"
#: A client id the simulator does not know: it records the grant and refuses it (13004).
CLIENT_ID = "asym-client"


def pem_of(path: Path) -> str:
    return path.read_text(encoding="ascii")


def body_lines(path: Path) -> list[str]:
    """The base64 lines of a PEM file: any of them showing anywhere is a leak."""
    return [line for line in pem_of(path).splitlines() if line and not line.startswith("-----")]


def b64url_decode(text: str) -> bytes:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", text), "expected base64url without padding"
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(public_pem: Path, signature: str, message: bytes) -> None:
    """Check ``signature`` with ``cryptography`` directly (raises InvalidSignature if wrong)."""
    key = load_pem_public_key(public_pem.read_bytes())
    raw = b64url_decode(signature)
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(raw, message)
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())


def assert_nothing_chained(error: BaseException) -> None:
    assert error.__cause__ is None and error.__context__ is None


# -- known answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2])
@pytest.mark.parametrize(
    ("key_file", "password", "vector"),
    [
        (ED25519, None, "ed25519"),
        (ED25519_ENCRYPTED, PASSWORD, "ed25519"),
        (RSA_2048, None, "rsa-2048"),
    ],
)
def test_signatures_match_openssl(
    key_file: Path, password: str | None, vector: str, number: int
) -> None:
    message = (DATA / f"message-{number}.bin").read_bytes()
    timestamp, nonce, data = message.decode("ascii").split("\n")
    assert signing.string_to_sign(int(timestamp), nonce, data) == message
    expected = (DATA / f"{vector}-message-{number}.sig.b64url").read_text().strip()
    key = load_private_key(key_file.read_bytes(), password)
    assert key.sign(message) == expected


def test_key_kinds_and_public_key() -> None:
    ed = load_private_key(pem_of(ED25519))
    assert (ed.kind, repr(ed)) == ("Ed25519", "PrivateKey(Ed25519)")
    assert ed.public_key_pem() == pem_of(ED25519_PUBLIC)
    rsa_key = load_private_key(pem_of(RSA_2048))
    assert (rsa_key.kind, repr(rsa_key)) == ("RSA-2048", "PrivateKey(RSA-2048)")
    assert rsa_key.public_key_pem() == pem_of(RSA_2048_PUBLIC)


# -- what is refused, and how it is said ----------------------------------------------------------


@pytest.mark.parametrize(
    ("pem", "password", "says"),
    [
        (lambda: pem_of(DATA / "test-only-rsa-1024.pem"), None,
         "1024-bit RSA key; Deribit requires at least 2048"),
        (lambda: pem_of(DATA / "test-only-ec-p256.pem"), None, "elliptic-curve (secp256r1) key"),
        (lambda: pem_of(ED25519_PUBLIC), None, "is a public key: give the private key"),
        (lambda: pem_of(RSA_2048_PUBLIC), None, "is a public key"),
        (lambda: pem_of(ED25519_ENCRYPTED), None, "is encrypted: give its password"),
        (lambda: pem_of(ED25519_ENCRYPTED), "not-the-password", "could not be decrypted: wrong"),
        (lambda: pem_of(ED25519), PASSWORD, "is not encrypted, yet a private_key_password"),
        (lambda: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None,
         "holds a PEM certificate, not a private key"),
        (lambda: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
         None, "OpenSSH private key; Deribit's keys are PEM"),
        (lambda: pem_of(ED25519).replace("MC4CAQAw", "MC4CAQBw"), None,
         "is not a readable PEM private key"),
        (lambda: "just some text", None, "is not a PEM private key"),
        (lambda: "-----BEGIN PRIVATE KEY-----\n\u00e9\n", None, "is not PEM text"),
        (lambda: "-----BEGIN PRIVATE KEY-----\n" + "A" * 70_000, None, "too large"),
    ],
    ids=[
        "rsa-1024", "ec", "ed25519-public", "rsa-public", "no-password", "wrong-password",
        "password-for-plain-key", "certificate", "openssh", "damaged", "not-pem", "not-ascii",
        "too-large",
    ],
)
def test_refused_keys_say_which_and_show_nothing(pem: Any, password: str | None, says: str) -> None:
    text = pem()
    with pytest.raises(ApiValueError) as caught:
        Configuration(client_id=CLIENT_ID, private_key=text, private_key_password=password)
    message = str(caught.value)
    assert says in message
    assert message.startswith("Configuration.private_key ")
    assert_nothing_chained(caught.value)
    for line in text.splitlines():
        if len(line) >= 8 and not line.startswith("-----"):
            assert line not in message
    if password:
        assert password not in message


@pytest.mark.parametrize("value", [42, ["pem"], object()])
def test_a_key_of_the_wrong_type_is_refused(value: Any) -> None:
    with pytest.raises(ApiTypeError, match="must be PEM text"):
        Configuration(client_id=CLIENT_ID, private_key=value)
    with pytest.raises(ApiTypeError, match="private_key_password must be"):
        Configuration(client_id=CLIENT_ID, private_key=pem_of(ED25519), private_key_password=value)


def test_a_private_key_is_not_pickled_and_copies_are_itself() -> None:
    import copy
    import pickle

    key = load_private_key(pem_of(ED25519))
    with pytest.raises(ApiTypeError, match="not pickled"):
        pickle.dumps(key)
    assert copy.copy(key) is key and copy.deepcopy(key) is key
    configuration = Configuration(client_id=CLIENT_ID, private_key=key)
    assert copy.copy(configuration).private_key is key


# -- the settings -------------------------------------------------------------------------------


def test_private_key_as_text_bytes_or_loaded() -> None:
    for value in (pem_of(ED25519), ED25519.read_bytes(), load_private_key(pem_of(ED25519))):
        configuration = Configuration(client_id=CLIENT_ID, private_key=value)
        assert configuration.private_key is not None
        assert configuration.private_key.kind == "Ed25519"
        assert configuration.private_key_file is None
        assert configuration.auth_method == "client_signature"
    encrypted = Configuration(
        client_id=CLIENT_ID, private_key=pem_of(ED25519_ENCRYPTED), private_key_password=PASSWORD
    )
    assert encrypted.private_key is not None and encrypted.private_key.kind == "Ed25519"


def test_private_key_file(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    shutil.copyfile(ED25519_ENCRYPTED, path)
    path.chmod(0o600)
    configuration = Configuration(
        client_id=CLIENT_ID, private_key_file=path, private_key_password=PASSWORD.encode()
    )
    assert configuration.private_key_file == str(path)
    assert configuration.private_key is not None
    assert configuration.private_key.kind == "Ed25519"
    # Another key set directly replaces the file's; clearing the file clears its key only.
    configuration.private_key_password = None
    configuration.private_key = pem_of(RSA_2048)
    assert configuration.private_key_file is None
    assert configuration.private_key.kind == "RSA-2048"
    configuration.private_key_file = None
    assert configuration.private_key is not None
    configuration.private_key = None
    assert configuration.private_key is None
    with pytest.raises(ApiValueError, match="no such file"):
        configuration.private_key_file = tmp_path / "missing.pem"
    with pytest.raises(ApiValueError, match=r"private_key_file '.*key.pem' is encrypted"):
        configuration.private_key_file = path


def test_from_env_reads_the_key_file_and_its_password(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    shutil.copyfile(ED25519_ENCRYPTED, path)
    path.chmod(0o600)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    configuration = Configuration.from_env(
        {
            "DERIBIT_CLIENT_ID": CLIENT_ID,
            "DERIBIT_PRIVATE_KEY_FILE": str(path),
            "DERIBIT_PRIVATE_KEY_PASSWORD": PASSWORD,
        }
    )
    assert configuration.private_key is not None
    message = signing.string_to_sign(1, "nonce", "")
    verify(ED25519_PUBLIC, configuration.private_key.sign(message), message)
    # The encrypted file is only read: unchanged, and nothing written beside it.
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert os.listdir(tmp_path) == ["key.pem"]


def test_password_without_a_key_and_two_keys_are_refused() -> None:
    with pytest.raises(ApiValueError, match="no private_key or private_key_file"):
        Configuration(client_id=CLIENT_ID, private_key_password=PASSWORD)
    with pytest.raises(ApiValueError, match="private_key or private_key_file, not both"):
        Configuration(client_id=CLIENT_ID, private_key=pem_of(ED25519), private_key_file=ED25519)


BOTH = r"either HMAC \(client_secret\) or asymmetric"


def test_a_secret_and_a_private_key_do_not_mix() -> None:
    with pytest.raises(ApiValueError, match=BOTH):
        Configuration(
            client_id=CLIENT_ID, client_secret="s3cret-value", private_key=pem_of(ED25519)
        )
    configuration = Configuration(client_id=CLIENT_ID, private_key=pem_of(ED25519))
    with pytest.raises(ApiValueError, match=BOTH):
        configuration.client_secret = "s3cret-value"
    configuration.private_key = None
    configuration.client_secret = "s3cret-value"
    with pytest.raises(ApiValueError, match=BOTH):
        configuration.private_key = pem_of(ED25519)


@pytest.mark.parametrize("method", ["client_credentials", "signature"])
def test_only_client_signature_goes_with_a_private_key(method: str) -> None:
    reason = "authenticates only with auth_method='client_signature': Deribit accepts no other"
    with pytest.raises(ApiValueError, match=reason):
        Configuration(client_id=CLIENT_ID, private_key=pem_of(ED25519), auth_method=method)
    configuration = Configuration(client_id=CLIENT_ID, private_key=pem_of(ED25519))
    with pytest.raises(ApiValueError, match=f"auth_method='{method}' refused: .*{reason}"):
        configuration.auth_method = method
    assert configuration.auth_method == "client_signature"


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_key_file_others_may_read_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "key.pem"
    shutil.copyfile(ED25519, path)
    caplog.set_level(logging.WARNING, logger="openapi_client")
    path.chmod(0o600)
    Configuration(client_id=CLIENT_ID, private_key_file=path)
    assert not caplog.records
    for mode in (0o640, 0o604, 0o620):
        path.chmod(mode)
        configuration = Configuration(client_id=CLIENT_ID, private_key_file=path)
        assert configuration.private_key is not None
        (record,) = caplog.records
        assert record.name == "openapi_client.configuration"
        assert record.levelno == logging.WARNING
        text = record.getMessage()
        assert str(path) in text and f"mode {mode:04o}" in text and "chmod 600" in text
        caplog.clear()


def test_repr_names_the_key_kind_only() -> None:
    configuration = Configuration(
        client_id=CLIENT_ID, private_key=pem_of(ED25519_ENCRYPTED), private_key_password=PASSWORD
    )
    text = repr(configuration) + str(configuration) + configuration.to_debug_report()
    assert "client_signature (client_id='asym-client', Ed25519 key)" in text
    assert PASSWORD not in text
    assert not any(line in text for line in body_lines(ED25519_ENCRYPTED) + body_lines(ED25519))


# -- without the cryptography package -------------------------------------------------------------

_WITHOUT_CRYPTOGRAPHY = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "cryptography" or name.startswith("cryptography."):
                raise ImportError("No module named " + repr(name))
            return None

    for name in [m for m in sys.modules if m.split(".")[0] == "cryptography"]:
        del sys.modules[name]
    sys.meta_path.insert(0, Block())

    import openapi_client
    from openapi_client.exceptions import ApiMissingDependencyError

    openapi_client.Configuration(client_id="x", client_secret="s3cret-value")  # needs nothing
    try:
        openapi_client.Configuration(client_id="x", private_key=sys.argv[1])
    except ApiMissingDependencyError as error:
        assert isinstance(error, openapi_client.ApiValueError), "a setting error"
        print("configure:", error)
    try:
        import openapi_client.asymmetric
    except ImportError as error:
        assert isinstance(error, ApiMissingDependencyError)
        print("import:", error)
    """
)


def test_without_cryptography_the_error_names_the_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CRYPTOGRAPHY, pem_of(ED25519)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["configure", "import"]
    for line in lines:
        assert "pip install 'openapi-client-deribit-session[asymmetric]'" in line
    assert not any(line in done.stdout + done.stderr for line in body_lines(ED25519))


# -- on the wire -----------------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    # It does not know the key yet: it records each public/auth and refuses it with 13004.
    with DeribitSimulator(time_scale=0.1) as simulator:
        yield simulator


def key_configuration(
    sim: DeribitSimulator, key_file: Path = ED25519, **settings: Any
) -> Configuration:
    values: dict[str, Any] = {
        "host": sim.url,
        "client_id": CLIENT_ID,
        "private_key": pem_of(key_file),
        "request_timeout": (2.0, 2.0),
        "retries": FAST_RETRIES,
    }
    values.update(settings)
    return Configuration(**values)


def auth_requests(sim: DeribitSimulator) -> list[RecordedRequest]:
    return [r for r in sim.requests if r.path.endswith("/public/auth")]


def check_grant(request: RecordedRequest, public_pem: Path, client_id: str = CLIENT_ID) -> str:
    """The grant as Deribit's asymmetric keys take it, for ``client_id``; returns its nonce."""
    query = dict(request.query)
    assert set(query) == {"grant_type", "client_id", "timestamp", "nonce", "signature", "scope"}
    assert query["grant_type"] == "client_signature"
    assert query["client_id"] == client_id
    assert query["scope"] == "session:openapi-client"
    timestamp = int(query["timestamp"])
    assert abs(timestamp / 1000 - time.time()) < 30
    message = f"{timestamp}\n{query['nonce']}\n".encode()
    verify(public_pem, query["signature"], message)
    return query["nonce"]


@pytest.mark.parametrize(
    ("key_file", "public_pem"), [(ED25519, ED25519_PUBLIC), (RSA_2048, RSA_2048_PUBLIC)]
)
def test_http_grant_is_signed_with_the_private_key(
    sim: DeribitSimulator, key_file: Path, public_pem: Path
) -> None:
    with ApiClient(key_configuration(sim, key_file)) as client:
        with pytest.raises(ApiException) as caught:
            SessionManagementApi(client).private_get_cancel_on_disconnect_get("account")
    assert caught.value.error_code == 13004
    (grant,) = auth_requests(sim)  # refused credentials are not retried
    check_grant(grant, public_pem)
    assert not [r for r in sim.requests if "/private/" in r.path]


def test_each_attempt_of_the_grant_is_signed_anew(sim: DeribitSimulator) -> None:
    sim.inject(Fault.HTML_503, path="/public/auth", count=2)
    with ApiClient(key_configuration(sim)) as client:
        with pytest.raises(ApiException, match="13004"):
            SessionManagementApi(client).private_get_cancel_on_disconnect_get("account")
    grants = auth_requests(sim)
    assert len(grants) == 3
    nonces = [check_grant(grant, ED25519_PUBLIC) for grant in grants]
    assert len(set(nonces)) == 3
    assert len({grant.query["signature"] for grant in grants}) == 3


def test_websocket_grant_is_signed_with_the_private_key(sim: DeribitSimulator) -> None:
    recorder = Recorder()
    with pytest.raises(ApiException) as caught:
        session(key_configuration(sim), recorder)
    assert caught.value.error_code == 13004
    (grant,) = auth_requests(sim)
    assert grant.transport == "websocket"
    check_grant(grant, ED25519_PUBLIC)


def test_the_key_and_its_password_never_show(
    sim: DeribitSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    configuration = key_configuration(
        sim, ED25519_ENCRYPTED, private_key_password=PASSWORD, debug=True
    )
    try:
        with ApiClient(configuration) as client:
            with pytest.raises(ApiException) as caught:
                SessionManagementApi(client).private_get_cancel_on_disconnect_get("account")
            with pytest.raises(ApiException):
                session(configuration, Recorder())
    finally:
        configuration.debug = False
    error = caught.value
    shown = "\n".join(
        [
            *(record.getMessage() for record in caplog.records),
            repr(configuration),
            repr(configuration.private_key),
            str(error),
            repr(error),
            "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        ]
    )
    signatures = [grant.query["signature"] for grant in auth_requests(sim)]
    assert len(signatures) == 2
    for secret in [PASSWORD, *signatures, *body_lines(ED25519_ENCRYPTED), *body_lines(ED25519)]:
        assert secret not in shown
    assert isinstance(configuration.private_key, PrivateKey)


def test_missing_dependency_error_is_both_kinds() -> None:
    error = ApiMissingDependencyError("install the extra")
    assert isinstance(error, ApiValueError) and isinstance(error, ImportError)


def test_a_private_key_grant_over_plain_http_is_refused_before_connecting() -> None:
    from test_credentials import INSECURE_HOST

    configuration = Configuration(
        host=INSECURE_HOST, client_id=CLIENT_ID, private_key=pem_of(ED25519), retries=0
    )
    with ApiClient(configuration) as client:
        with pytest.raises(ApiValueError, match="allow_insecure_http"):
            SessionManagementApi(client).private_get_cancel_on_disconnect_get("account")


def test_a_private_key_session_over_plain_ws_is_refused_before_connecting() -> None:
    from test_credentials import INSECURE_HOST

    configuration = Configuration(
        host=INSECURE_HOST, client_id=CLIENT_ID, private_key=pem_of(ED25519)
    )
    with pytest.raises(ApiValueError, match="would send credentials over plain ws://"):
        session(configuration, max_reconnects=0)
