"""TLS against the simulator serving HTTPS with a throwaway CA (trustme).

Verification is on by default against certifi's bundle, which does not hold the throwaway CA: the
call fails as a certificate problem, once. ``ssl_ca_cert`` trusts the CA; ``verify_ssl = False``
works and warns once per client.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import trustme
import urllib3
from conftest import FAST_RETRIES, TOKEN

from openapi_client import (
    ApiClient,
    ApiConnectionError,
    ApiException,
    ApiSSLError,
    Configuration,
    SessionManagementApi,
)
from openapi_client.rest import InsecureTLSWarning
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture
def tls_simulator(ca: trustme.CA) -> Iterator[DeribitSimulator]:
    with DeribitSimulator(
        ssl_context=server_context(ca, "127.0.0.1", "localhost"), legacy_http=True
    ) as sim:
        yield sim


def configuration_for(url: str, **settings: Any) -> Configuration:
    settings.setdefault("retries", FAST_RETRIES)
    settings.setdefault("request_timeout", (2.0, 2.0))
    return Configuration(host=url, access_token=TOKEN, **settings)


def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether ``condition`` holds within ``seconds`` (the server notices a failure a moment
    after the client gives up)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def heartbeat(configuration: Configuration, calls: int = 1) -> list[Any]:
    with ApiClient(configuration) as client:
        api = SessionManagementApi(client)
        return [api.public_set_heartbeat_get(30) for _ in range(calls)]


def failure(configuration: Configuration) -> ApiException:
    with pytest.raises(ApiException) as caught:
        heartbeat(configuration)
    return caught.value


def test_untrusted_certificate_is_a_certificate_error_not_retried(
    tls_simulator: DeribitSimulator, ca_file: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert tls_simulator.url.startswith("https://127.0.0.1:")
    error = failure(configuration_for(tls_simulator.url))  # certifi's bundle: CA unknown
    assert type(error) is ApiSSLError
    assert isinstance(error, ApiConnectionError)
    assert error.status == 0
    assert isinstance(error.__cause__, (ssl.SSLError, urllib3.exceptions.SSLError))
    text = str(error)
    assert "certificate" in text
    assert "ssl_ca_cert" in text
    assert f"127.0.0.1:{tls_simulator.port}" in text
    assert TOKEN not in text + repr(error)
    # Not retried: one connection, whose handshake failed; no HTTP request got through.
    assert eventually(lambda: tls_simulator.tls_failures == 1)
    assert tls_simulator.connections_accepted == 1
    assert tls_simulator.requests == []
    # The server shrugged the failed handshake off: no traceback, and it still serves.
    assert heartbeat(configuration_for(tls_simulator.url, ssl_ca_cert=ca_file))[0]["result"] == "ok"
    assert capfd.readouterr() == ("", "")


def test_trusted_via_ssl_ca_cert(tls_simulator: DeribitSimulator, ca_file: str) -> None:
    results = heartbeat(configuration_for(tls_simulator.url, ssl_ca_cert=ca_file), calls=3)
    assert [result["result"] for result in results] == ["ok"] * 3
    assert len(tls_simulator.requests) == 3
    assert tls_simulator.requests[0].header("Authorization") == f"Bearer {TOKEN}"
    assert tls_simulator.connections_accepted == 1  # kept alive over TLS
    assert tls_simulator.tls_failures == 0


def test_trusted_by_host_name(tls_simulator: DeribitSimulator, ca_file: str) -> None:
    url = f"https://localhost:{tls_simulator.port}/api/v2"
    assert heartbeat(configuration_for(url, ssl_ca_cert=ca_file))[0]["result"] == "ok"


def test_certificate_for_another_name_is_refused(ca: trustme.CA, ca_file: str) -> None:
    context = server_context(ca, "deribit.invalid")
    with DeribitSimulator(ssl_context=context, legacy_http=True) as simulator:
        error = failure(configuration_for(simulator.url, ssl_ca_cert=ca_file))
        assert type(error) is ApiSSLError
        assert error.status == 0
        assert "certificate" in str(error)
        assert simulator.connections_accepted == 1


def test_verify_ssl_false_works_and_warns_once_per_client(tls_simulator: DeribitSimulator) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = heartbeat(configuration_for(tls_simulator.url, verify_ssl=False), calls=3)
        first_client = [warning.category for warning in caught]
        heartbeat(configuration_for(tls_simulator.url, verify_ssl=False), calls=2)
    assert [result["result"] for result in results] == ["ok"] * 3
    assert first_client == [InsecureTLSWarning]
    assert [warning.category for warning in caught] == [InsecureTLSWarning] * 2
    message = str(caught[0].message)
    assert "verify_ssl" in message
    # Attributed to the code that built the client, not to the library.
    assert caught[0].filename == __file__
    assert len(tls_simulator.requests) == 5


def test_unverified_client_leaves_other_urllib3_users_warned(
    tls_simulator: DeribitSimulator,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        heartbeat(configuration_for(tls_simulator.url, verify_ssl=False))
        caught.clear()
        # Someone else's urllib3 code, in the same process, that chose not to verify either.
        with urllib3.PoolManager(cert_reqs="CERT_NONE") as other:
            other.request("GET", f"{tls_simulator.url}/public/test", retries=False)
    assert urllib3.exceptions.InsecureRequestWarning in [w.category for w in caught]


@pytest.mark.parametrize("client", ["direct", "urllib3", "websocket"])
def test_no_connection_writes_its_session_keys_to_sslkeylogfile(
    tls_simulator: DeribitSimulator,
    ca_file: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    client: str,
) -> None:
    """``SSLKEYLOGFILE`` would let anyone who reads that file decrypt the traffic, tokens
    included: no TLS context of the library writes it, on either HTTP path or the session."""
    key_log = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(key_log))
    configuration = configuration_for(
        tls_simulator.url, ssl_ca_cert=ca_file, fast_path=client == "direct"
    )
    if client == "websocket":
        from openapi_client.websocket import WebSocketApiClient

        with WebSocketApiClient(configuration, heartbeat=None) as ws_client:
            assert ws_client.call("public/test")["result"]
    else:
        assert heartbeat(configuration)[0]["result"] == "ok"
    assert not key_log.exists()


def test_verified_client_does_not_warn(tls_simulator: DeribitSimulator, ca_file: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        heartbeat(configuration_for(tls_simulator.url, ssl_ca_cert=ca_file), calls=2)
    assert caught == []


@pytest.mark.parametrize("fault", ["reset", "reset_mid_body", "truncated"])
def test_transient_faults_over_tls_are_retried(
    tls_simulator: DeribitSimulator, ca_file: str, fault: str
) -> None:
    tls_simulator.inject(fault)
    assert heartbeat(configuration_for(tls_simulator.url, ssl_ca_cert=ca_file))[0]["result"] == "ok"
    assert len(tls_simulator.requests) == 2


@pytest.mark.timing
def test_hang_over_tls_is_cut_off(tls_simulator: DeribitSimulator, ca_file: str) -> None:
    tls_simulator.inject("hang")  # 30 s
    configuration = configuration_for(
        tls_simulator.url, ssl_ca_cert=ca_file, retries=0, request_timeout=(2.0, 0.3)
    )
    started = time.monotonic()
    error = failure(configuration)
    assert type(error).__name__ == "ApiTimeoutError"
    assert 0.3 <= time.monotonic() - started < 5.0


def test_plain_http_to_the_tls_port_fails_cleanly(
    tls_simulator: DeribitSimulator, ca_file: str, capfd: pytest.CaptureFixture[str]
) -> None:
    url = tls_simulator.url.replace("https://", "http://")
    error = failure(configuration_for(url, retries=0))
    assert error.status == 0
    assert tls_simulator.requests == []
    assert heartbeat(configuration_for(tls_simulator.url, ssl_ca_cert=ca_file))[0]["result"] == "ok"
    assert capfd.readouterr() == ("", "")


@pytest.mark.timing
def test_stalled_handshake_holds_up_no_one(tls_simulator: DeribitSimulator, ca_file: str) -> None:
    with socket.create_connection((tls_simulator.host, tls_simulator.port), timeout=5) as idle:
        started = time.monotonic()
        result = heartbeat(configuration_for(tls_simulator.url, ssl_ca_cert=ca_file))[0]
        # Neither waited for the stalled handshake's 5 s timeout (HANDSHAKE_TIMEOUT).
        assert result["result"] == "ok"
        assert time.monotonic() - started < 3.0
        started = time.monotonic()
        tls_simulator.stop()
        assert time.monotonic() - started < 3.0
        assert idle.recv(1) == b""  # the server closed the stalled connection


def test_ssl_context_must_be_a_context() -> None:
    with pytest.raises(ValueError, match=r"ssl_context must be an ssl\.SSLContext"):
        DeribitSimulator(ssl_context="cert.pem")  # type: ignore[arg-type]


def test_plain_simulator_url_is_http(simulator: DeribitSimulator) -> None:
    assert simulator.url.startswith("http://127.0.0.1:")
    assert simulator.tls_failures == 0


def test_connection_closed_during_handshake_is_a_retried_connection_error() -> None:
    # Not the simulator: a listener that reads the ClientHello and closes cleanly, as an
    # overloaded edge may.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stopping = threading.Event()
    accepted: list[int] = []

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:  # nothing to accept yet
                continue
            accepted.append(1)
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(65536)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/api/v2"
        error = failure(configuration_for(url))
    finally:
        stopping.set()
        thread.join(2)
        listener.close()
    assert error.status == 0
    assert type(error) is ApiConnectionError
    assert len(accepted) == FAST_RETRIES.total + 1


def common_name_only(tmp_path: Any) -> tuple[ssl.SSLContext, str]:
    """A server context whose certificate names its host only in the subject's common name (no
    subject alternative name), from a CA of its own; and that CA's file."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "common-name test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file, ca_file = tmp_path / "cn.pem", tmp_path / "cn.key", tmp_path / "cn-ca.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    return context, str(ca_file)


@pytest.mark.parametrize("client", ["direct", "urllib3", "websocket"])
def test_a_host_named_only_in_the_common_name_is_not_trusted(tmp_path: Any, client: str) -> None:
    """Host names are checked in the certificate's subject alternative names only, never the
    common name (as browsers and urllib3's own checks do), on every connection."""
    if client == "urllib3" and urllib3.__version__.startswith("1."):
        pytest.skip("urllib3 1.26 checks the names itself, and falls back to the common name")
    context, ca_file = common_name_only(tmp_path)
    with DeribitSimulator(ssl_context=context, legacy_http=True) as sim:
        configuration = configuration_for(
            f"https://localhost:{sim.port}/api/v2", ssl_ca_cert=ca_file, retries=0,
            fast_path=client == "direct",
        )
        if client == "websocket":
            from openapi_client.websocket import WebSocketApiClient

            with pytest.raises(ApiException) as refused:
                WebSocketApiClient(configuration, heartbeat=None)
            error = refused.value
        else:
            error = failure(configuration)
    assert "certificate" in str(error) and "localhost" in str(error), error
    assert sim.requests == []
