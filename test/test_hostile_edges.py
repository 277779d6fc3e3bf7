"""The transport's less travelled roads, each with a small server of its own: unread answers and
their reading, odd but valid framing, TLS handshakes that fail in every way, a proxy that refuses,
settings read when the client is built, and a forked child's fresh start.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from test_hostile_server import (
    OK_BODY,
    HostileServer,
    Peer,
    always,
    api_for,
    configuration_for,
    path_fixture,  # noqa: F401 - the `path` fixture
    response,
    serve_each,
)

from openapi_client import (
    ApiClient,
    ApiConnectionError,
    ApiException,
    ApiSSLError,
    ApiTimeoutError,
    ApiValueError,
    RateLimit,
    SessionManagementApi,
)
from openapi_client.deadline import Deadline
from openapi_client.rest import Origin, RESTResponse, StreamedResponse
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def tls_context(ca: trustme.CA, name: str = "127.0.0.1") -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    return context


def tls_script(context: ssl.SSLContext, answer: bytes) -> Any:
    def script(peer: Peer) -> None:
        try:
            peer.sock = context.wrap_socket(peer.sock, server_side=True)
        except (OSError, ssl.SSLError):
            return
        while peer.read_request() is not None:
            if not peer.send(answer):
                return

    return script


def https(server: HostileServer) -> str:
    return server.url.replace("http://", "https://")


# -- unread answers -------------------------------------------------------------------------------


def test_streamed_response_reads_in_every_way(path: str) -> None:
    with HostileServer(always(response())) as server:
        api = api_for(server.url, path)
        with api.public_set_heartbeat_get(30, _preload_content=False) as unread:
            assert isinstance(unread, StreamedResponse)
            assert repr(unread) == "StreamedResponse(status=200, reason='OK')"
            assert unread.getheader("content-length") == str(len(OK_BODY))
            assert unread.getheader("X-None", "no") == "no"
            assert unread.getheaders()["Content-Type"] == "application/json"
            assert unread.read(5) + b"".join(unread) == OK_BODY
            assert unread.read() == b"" and unread.read(3) == b""
            assert unread.closed
        again = api.public_set_heartbeat_get(31, _preload_content=False)
        assert again.data == OK_BODY and again.data == OK_BODY
        assert again.closed
        api.api_client.close()
    assert server.connections == 1, "bodies read to the end give their connection back"


@pytest.mark.parametrize("finish", ["close", "release_conn", "exit"])
def test_streamed_response_left_half_read_closes_its_connection(path: str, finish: str) -> None:
    big = response(OK_BODY + b" " * 200_000)
    with HostileServer(always(big)) as server:
        api = api_for(server.url, path)
        unread = api.public_set_heartbeat_get(30, _preload_content=False)
        assert unread.read(10) == OK_BODY[:10]
        if finish == "exit":
            with unread:
                pass
        else:
            getattr(unread, finish)()
        assert unread.closed and unread.read() == b""
        unread.close()  # twice is fine
        assert api.public_set_heartbeat_get(31)["result"] == "ok"
        api.api_client.close()
    assert server.connections == 2


@pytest.mark.timing
def test_streamed_response_dribbled_is_cut_off_by_the_attempt_deadline(path: str) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        body = OK_BODY + b" " * 200
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        peer.dribble(body, 0.05)  # 10 s in all

    with HostileServer(script) as server:
        api = api_for(server.url, path, attempt_timeout=0.4)
        unread = api.public_set_heartbeat_get(30, _preload_content=False)
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError, match="attempt_timeout"):
            for _ in unread.stream(1):
                pass
        assert time.monotonic() - started < 5.0  # the deadline, not the end of the body
        assert unread.closed
        api.api_client.close()


def test_streamed_bytes_beyond_the_length_drop_the_connection() -> None:
    with HostileServer(always(response() + b"junk")) as server:
        api = api_for(server.url, "direct")
        for interval in (30, 31):
            unread = api.public_set_heartbeat_get(interval, _preload_content=False)
            assert b"".join(unread.stream(7)) == OK_BODY
        api.api_client.close()
    assert server.connections == 2


def test_rest_response_repr_and_headers() -> None:
    from openapi_client.headers import HTTPHeaders

    answer = RESTResponse(204, "", b"", HTTPHeaders({"X-A": "1"}))
    assert repr(answer) == "RESTResponse(status=204, reason='No Content')"
    assert answer.getheader("x-a") == "1"


# -- valid but unusual framing --------------------------------------------------------------------


def test_bare_line_feeds_are_read(path: str) -> None:
    raw = b"HTTP/1.1 200 OK\nContent-Length: %d\n\n%s" % (len(OK_BODY), OK_BODY)
    with HostileServer(always(raw)) as server:
        api = api_for(server.url, path)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()


def test_no_content_keeps_the_connection(path: str) -> None:
    with HostileServer(always(b"HTTP/1.1 204 No Content\r\n\r\n")) as server:
        api = api_for(server.url, path)
        for _ in range(2):
            with pytest.raises(ApiException, match="not JSON") as caught:
                api.public_set_heartbeat_get(30)
            assert caught.value.status == 204
        api.api_client.close()
    assert server.connections == 1


MORE_GARBAGE = {
    "status-below-100": b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
    "trailers-cut-short": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T",
    "endless-trailers": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
        + b"X: 1\r\n" * 33_000 + b"\r\n"
    ),
}


@pytest.mark.parametrize("name", MORE_GARBAGE)
def test_more_broken_http(name: str, path: str) -> None:
    def script(peer: Peer) -> None:
        if peer.read_request() is not None:
            peer.send(MORE_GARBAGE[name])

    with HostileServer(script) as server:
        api = api_for(server.url, path)
        try:
            api.public_set_heartbeat_get(30)
        except ApiException as error:
            assert error.__cause__ is not None
        else:
            # http.client reads any number of trailer lines; the direct path stops at 32768.
            assert path == "urllib3" and name == "endless-trailers"
        api.api_client.close()


# -- TLS ------------------------------------------------------------------------------------------


def test_plain_http_answer_to_a_tls_handshake_is_a_tls_error(path: str, ca_file: str) -> None:
    def script(peer: Peer) -> None:
        peer.sock.settimeout(5)
        peer.sock.recv(65536)  # the ClientHello
        peer.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with HostileServer(script) as server:
        api = api_for(https(server), path, ssl_ca_cert=ca_file)
        with pytest.raises((ApiSSLError, ApiConnectionError)) as caught:
            api.public_set_heartbeat_get(30)
        api.api_client.close()
    assert "TLS" in str(caught.value)


@pytest.mark.timing
def test_handshake_that_outlives_the_attempt_says_attempt_timeout(
    path: str, ca_file: str
) -> None:
    def script(peer: Peer) -> None:
        peer.server.stopping.wait(30)

    with HostileServer(script) as server:
        api = api_for(https(server), path, ssl_ca_cert=ca_file, request_timeout=(20.0, 20.0),
                      attempt_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as caught:
            api.public_set_heartbeat_get(30)
        api.api_client.close()
    assert time.monotonic() - started < 5.0  # the attempt's 0.3 s, not the 20 s connect timeout
    assert "attempt_timeout (0.3 s)" in str(caught.value)


def test_no_hostname_check_when_asked(path: str, ca: trustme.CA, ca_file: str) -> None:
    context = tls_context(ca, "somewhere-else.example")
    with HostileServer(tls_script(context, response())) as server:
        api = api_for(https(server), path, ssl_ca_cert=ca_file)
        with pytest.raises(ApiSSLError):
            api.public_set_heartbeat_get(30)
        api.api_client.close()
        api = api_for(https(server), path, ssl_ca_cert=ca_file, assert_hostname=False)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()


def test_assert_hostname_by_name_takes_urllib3s_path(ca: trustme.CA, ca_file: str) -> None:
    context = tls_context(ca, "exchange.example")
    with HostileServer(tls_script(context, response())) as server:
        api = api_for(https(server), "direct", ssl_ca_cert=ca_file,
                      assert_hostname="exchange.example")
        assert api.api_client.rest_client.direct is False
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()


def test_encrypted_client_key_is_a_setting_error_not_a_prompt(
    ca: trustme.CA, tmp_path: Path
) -> None:
    issued = ca.issue_cert("client.example")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert_path))
    key_path.write_bytes(encrypted)
    configuration = configuration_for("https://127.0.0.1:9/api/v2", "direct",
                                      cert_file=str(cert_path), key_file=str(key_path))
    with pytest.raises(ApiValueError, match="key unencrypted"):
        ApiClient(configuration)


def test_verify_ssl_off_accepts_any_certificate(path: str, ca: trustme.CA) -> None:
    context = tls_context(ca, "anything.example")
    with HostileServer(tls_script(context, response())) as server:
        with pytest.warns(UserWarning, match="verification is off"):
            api = api_for(https(server), path, verify_ssl=False)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()


# -- a proxy that refuses -------------------------------------------------------------------------


def test_proxy_refusing_the_tunnel_is_a_connection_error() -> None:
    refusal = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    with HostileServer(always(refusal)) as proxy:
        configuration = configuration_for(
            "https://127.0.0.1:9/api/v2", "direct", proxy=f"http://127.0.0.1:{proxy.port}"
        )
        with ApiClient(configuration) as client:
            with pytest.raises(ApiConnectionError, match="proxy") as caught:
                SessionManagementApi(client).public_set_heartbeat_get(30)
    assert caught.value.status == 0
    assert proxy.requests[0].startswith(b"CONNECT 127.0.0.1:9 ")


# -- the raw transport ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a\nb", "snow\u2603"])
def test_unchecked_header_given_to_send_is_a_value_error(path: str, value: str) -> None:
    with HostileServer(always(response())) as server:
        client = ApiClient(configuration_for(server.url, path))
        rest = client.rest_client
        origin = Origin(server.url)
        with pytest.raises(ApiValueError, match="header") as caught:
            rest.send(origin, "/api/v2/public/test", {"X-Bad": value}, rest.timeout(None))
        assert "\u2603" not in str(caught.value)
        client.close()
    assert server.requests == []


def test_request_checks_its_headers() -> None:
    with ApiClient(configuration_for("http://127.0.0.1:9/api/v2", "direct")) as client:
        with pytest.raises(ApiValueError, match="headers"):
            client.rest_client.request("GET", "http://127.0.0.1:9/api/v2/x", headers={"X": "\n"})


def test_rate_limit_on_urllib3s_own_connection_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib3

    class OtherConnection(urllib3.connection.HTTPConnection):
        pass

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "ConnectionCls", OtherConnection)
    waits: list[float] = []
    with HostileServer(always(response())) as server:
        clock = ManualClock()  # stands still: each call after the first waits its turn
        limit = RateLimit(per_second=1000, burst=1, margin=0, clock=clock, sleep=waits.append)
        api = api_for(server.url, "direct", rate_limit=limit)
        for _ in range(3):
            assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()
    assert len(waits) == 2  # the first call had the pool's one request


def test_idle_connections_beyond_the_pool_size_are_closed() -> None:
    """On the direct path; urllib3's pool keeps up to max_connections idle (its one maxsize)."""
    path = "direct"
    def slow(head: bytes) -> bytes:
        time.sleep(0.05)
        return response()

    with HostileServer(serve_each(slow)) as server:
        api = api_for(server.url, path, connection_pool_maxsize=1, max_connections=4)
        threads = [threading.Thread(target=api.public_set_heartbeat_get, args=(30,))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        waiting_since = time.monotonic()
        while server.open_now > 1 and time.monotonic() - waiting_since < 5.0:
            time.sleep(0.01)
        assert server.open_now <= 1, "one idle connection kept, the others closed"
        api.api_client.close()


def test_after_fork_starts_afresh_and_leaves_the_connection_alone(path: str) -> None:
    """What a forked child does (called here directly): forget the pooled connections without
    shutting them down, and make new ones."""
    with HostileServer(always(response())) as server:
        client = ApiClient(configuration_for(server.url, path))
        api = SessionManagementApi(client)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        client._calls.after_fork()  # what the at-fork hook does in a child
        assert api.public_set_heartbeat_get(31)["result"] == "ok"
        client.close()
    assert server.connections == 2


def test_deadline_describes_its_setting() -> None:
    deadline = Deadline.after(1.5, "attempt_timeout")
    assert deadline.describe() == "attempt_timeout (1.5 s)"
    earlier = Deadline.after(0.5, "call_timeout")
    assert Deadline.after(10, "attempt_timeout", earlier) is earlier
    assert 0 < deadline.remaining() <= 1.5


def test_connection_reset_by_the_server_is_a_connection_error(path: str) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.05)
        peer.reset()

    with HostileServer(script) as server:
        api = api_for(server.url, path)
        with pytest.raises(ApiConnectionError) as caught:
            api.public_set_heartbeat_get(30)
        api.api_client.close()
    assert caught.value.status == 0


def test_json_answer_is_decoded_once(path: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "result": {"nested": [1, 2, {"a": None}]}}).encode()
    with HostileServer(always(response(body))) as server:
        api = api_for(server.url, path)
        assert api.public_set_heartbeat_get(30)["result"] == {"nested": [1, 2, {"a": None}]}
        api.api_client.close()


def test_server_closing_before_the_request_is_read(path: str) -> None:
    with HostileServer(lambda peer: None) as server:
        api = api_for(server.url, path)
        with pytest.raises(ApiConnectionError):
            api.public_set_heartbeat_get(30)
        api.api_client.close()


def test_refused_port_on_both_paths(path: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = api_for(f"http://127.0.0.1:{port}/api/v2", path)
    with pytest.raises(ApiConnectionError, match="refused"):
        api.public_set_heartbeat_get(30)
    api.api_client.close()
