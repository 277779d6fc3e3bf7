"""The WebSocket transport at its edges: TLS, URLs, settings, hostile servers, credentials and the
session's less travelled paths. Real loopback sockets: the simulator, or small servers written
here that misbehave on purpose."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import struct
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
import trustme
from conftest import TOKEN
from test_hostile_server import HostileServer, Peer
from test_websocket_support import (
    SOON,
    Recorder,
    key_configuration,
    session,
    token_configuration,
    wait_until,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.sync.server import ServerConnection, serve

from openapi_client import (
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiTimeoutError,
    ApiTypeError,
    ApiValueError,
    Configuration,
    RateLimit,
    RetryPolicy,
    SessionManagementApi,
)
from openapi_client.rest import InsecureTLSWarning
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import ManualClock
from openapi_client.websocket import (
    Disconnected,
    Reconnecting,
    SessionRestored,
    State,
    WebSocketApiClient,
    websocket_url,
)
from openapi_client.websocket.client import RawAnswer
from openapi_client.websocket.transport import SocketTransport, open_socket

pytestmark = pytest.mark.timeout(30)

#: Simulator time for these tests, none of them about heartbeats: a test_request every second and
#: a second to answer it, so that a busy machine never misses one (a heartbeat close in the middle
#: of a test would fail it for the wrong reason).
CALM_SCALE = 0.1


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=CALM_SCALE) as simulator:
        yield simulator


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@contextlib.contextmanager
def tls_simulator(
    ca: trustme.CA, *names: str, host: str = "127.0.0.1"
) -> Iterator[DeribitSimulator]:
    """A simulator on ``host`` serving TLS with a certificate for ``names`` from ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    with DeribitSimulator(host=host, ssl_context=context, time_scale=CALM_SCALE) as simulator:
        yield simulator


def test_wss_trusted_by_the_configured_ca(ca: trustme.CA, ca_file: str) -> None:
    with tls_simulator(ca, "127.0.0.1") as sim:
        configuration = token_configuration(sim, ssl_ca_cert=ca_file)
        with session(configuration) as ws_client:
            assert ws_client.url.startswith("wss://127.0.0.1:")
            assert SessionManagementApi(ws_client).public_set_heartbeat_get(10)["result"] == "ok"


def test_wss_with_the_expected_name_or_no_name_check(ca: trustme.CA, ca_file: str) -> None:
    with tls_simulator(ca, "deribit.test") as sim:
        named = token_configuration(sim, ssl_ca_cert=ca_file, assert_hostname="deribit.test")
        with session(named) as ws_client:
            assert ws_client.call("public/test")["result"]
        unchecked = token_configuration(sim, ssl_ca_cert=ca_file, assert_hostname=False)
        with session(unchecked) as ws_client:
            assert ws_client.call("public/test")["result"]
        with pytest.raises(ApiConnectionError) as refused:
            session(token_configuration(sim, ssl_ca_cert=ca_file, retries=0))
        assert refused.value.status == 0


def test_wss_untrusted_certificate_fails(ca: trustme.CA) -> None:
    with tls_simulator(ca, "127.0.0.1") as sim:
        with pytest.raises(ApiConnectionError) as refused:
            session(token_configuration(sim, retries=0))
        assert refused.value.status == 0 and "certificate" in str(refused.value).lower()


def test_wss_without_verification_warns(ca: trustme.CA) -> None:
    with tls_simulator(ca, "127.0.0.1") as sim:
        with pytest.warns(InsecureTLSWarning):
            ws_client = session(token_configuration(sim, verify_ssl=False))
        with ws_client:
            assert ws_client.call("public/test")["result"]


def test_tls_files_that_cannot_be_loaded(ca: trustme.CA, tmp_path: Any) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n", encoding="ascii")
    with tls_simulator(ca, "127.0.0.1") as sim:
        with pytest.raises(ApiValueError, match=r"ssl_ca_cert: .* is not a usable CA bundle"):
            session(token_configuration(sim, ssl_ca_cert=str(garbage)))
        with pytest.raises(ApiValueError, match="cert_file/key_file: not a usable"):
            session(token_configuration(sim, cert_file=str(garbage)))


# -- URLs and settings ----------------------------------------------------------------------------


def test_websocket_urls() -> None:
    assert websocket_url("https://www.deribit.com/api/v2") == "wss://www.deribit.com/ws/api/v2"
    assert websocket_url("https://test.deribit.com/api/v2/") == "wss://test.deribit.com/ws/api/v2"
    assert websocket_url("http://127.0.0.1:8080/api/v2") == "ws://127.0.0.1:8080/ws/api/v2"
    assert websocket_url("http://127.0.0.1:80/x/api/v2") == "ws://127.0.0.1:80/x/ws/api/v2"
    with pytest.raises(ApiValueError, match="does not end in /api/v2"):
        websocket_url("https://www.deribit.com/v2")
    with pytest.raises(ApiValueError, match="must start with wss://"):
        WebSocketApiClient(Configuration(), url="https://www.deribit.com/ws/api/v2")


def test_explicit_url(sim: DeribitSimulator) -> None:
    configuration = Configuration(host="https://www.deribit.com/api/v2", retries=0)
    with WebSocketApiClient(configuration, url=sim.ws_url, heartbeat=None) as ws_client:
        assert ws_client.url == sim.ws_url
        assert repr(ws_client) == f"WebSocketApiClient(url={sim.ws_url!r}, state='ready')"
        assert (ws_client.heartbeat, ws_client.cancel_on_disconnect) == (None, False)
        assert "open" in repr(ws_client._session.connection)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"max_reconnects": -1}, "max_reconnects"),
        ({"max_reconnects": True}, "max_reconnects"),
        ({"throttle_delay": -1}, "throttle_delay"),
        ({"liveness_timeout": "soon"}, "liveness_timeout"),
        ({"max_message_size": 10}, "max_message_size"),
        ({"heartbeat": 5}, "interval must be"),
    ],
)
def test_settings_are_checked(settings: dict[str, Any], says: str) -> None:
    with pytest.raises(ApiValueError, match=says):
        WebSocketApiClient(Configuration(host="http://127.0.0.1:9/api/v2"), **settings)


def test_call_arguments_are_checked(sim: DeribitSimulator) -> None:
    with session(token_configuration(sim), heartbeat=None) as ws_client:
        with pytest.raises(ApiTypeError, match="mapping"):
            ws_client.call("public/test", ["not", "named"])  # type: ignore[arg-type]
        with pytest.raises(ApiValueError, match="channels"):
            ws_client.subscribe([], print)
        with pytest.raises(ApiTypeError):
            ws_client.call("public/test", timeout=[1, 2])
        for seconds in range(1, 70):  # more distinct timeouts than are kept
            assert ws_client.call("public/test", timeout=float(seconds))["result"]
        answer = SessionManagementApi(ws_client).public_set_heartbeat_get(
            10, _preload_content=False
        )
        assert isinstance(answer, RawAnswer)
        assert answer.read() == answer.data and answer.getheaders() == {}
        assert answer.getheader("Content-Type", "none") == "none"
        assert repr(answer) == f"RawAnswer({len(answer.data)} bytes)"


def test_subscribe_refused_and_unsubscribe(sim: DeribitSimulator) -> None:
    with session(token_configuration(sim), heartbeat=None) as ws_client:
        with pytest.raises(ApiValueError, match=r"subscribed none of book\.X"):
            ws_client.subscribe("book.X", print)
        assert ws_client.subscribe(["platform_state", "book.X"], print) == ["platform_state"]
        assert sim.ws_connections[0].subscriptions == frozenset({"platform_state"})
        extra = "platform_state.public_methods_state"
        sim.inject("ws_drop", path="/public/subscribe")  # sent again on the new connection
        assert ws_client.subscribe(extra, print) == [extra]
        ws_client.configuration.retries = 0
        sim.inject("ws_drop", path="/public/subscribe")
        with pytest.raises(ApiConnectionError):
            ws_client.subscribe("platform_state", print)
        ws_client.configuration.retries = 3
        ws_client.unsubscribe([extra])
        wait_until(lambda: sim.ws_connections[0].subscriptions == frozenset(), "unsubscribed")


# -- the session's own calls ----------------------------------------------------------------------


def test_calls_change_what_reconnects_restore(sim: DeribitSimulator) -> None:
    recorder = Recorder()
    with session(key_configuration(sim), recorder) as ws_client:
        api = SessionManagementApi(ws_client)
        api.public_disable_heartbeat_get()
        api.private_enable_cancel_on_disconnect_get(scope="account")
        assert (ws_client.heartbeat, ws_client.cancel_on_disconnect) == (None, False)
        api.private_enable_cancel_on_disconnect_get()
        assert ws_client.cancel_on_disconnect is True
        sim.inject("ws_drop", path="/public/test")
        ws_client.call("public/test", idempotent=True)
        restored = recorder.wait_for(SessionRestored, 2)[-1]
        assert (restored.heartbeat, restored.cancel_on_disconnect) == (None, True)


def test_expired_token_is_renewed_once(sim: DeribitSimulator) -> None:
    with session(key_configuration(sim), heartbeat=None) as ws_client:
        api = SessionManagementApi(ws_client)
        api.private_get_cancel_on_disconnect_get()
        before = sim.auth_requests
        sim.revoke_tokens()
        assert api.private_get_cancel_on_disconnect_get()["result"]["enabled"] is False
        assert sim.auth_requests == before + 1


def test_token_provider_and_a_bad_one(sim: DeribitSimulator) -> None:
    configuration = token_configuration(sim)
    configuration.access_token = None
    configuration.token_provider = lambda: TOKEN
    with session(configuration, heartbeat=None) as ws_client:
        answer = SessionManagementApi(ws_client).private_get_cancel_on_disconnect_get()
        assert answer["result"]["enabled"] is False
    configuration.token_provider = lambda: ""
    with pytest.raises(ApiValueError, match="token_provider"):
        session(configuration, heartbeat=None)


def test_logout_keeps_a_configured_token(sim: DeribitSimulator) -> None:
    ws_client = session(token_configuration(sim), heartbeat=None)
    ws_client.close(logout=True)
    (logout,) = [r for r in sim.requests if r.path.endswith("/private/logout")]
    assert logout.query["invalidate_token"] == "false"
    with session(token_configuration(sim), heartbeat=None) as again:  # the token still works
        assert SessionManagementApi(again).private_get_cancel_on_disconnect_get()["result"]
        again.close(logout=True)


def test_logout_without_credentials_just_closes(sim: DeribitSimulator) -> None:
    ws_client = WebSocketApiClient(Configuration(host=sim.url), heartbeat=None)
    ws_client.close(logout=True)
    assert not any(r.path.endswith("/private/logout") for r in sim.requests)
    assert ws_client.state is State.CLOSED


def test_rate_limit_applies_to_the_session(sim: DeribitSimulator) -> None:
    configuration = token_configuration(sim, rate_limit=RateLimit(1000, 100))
    with session(configuration) as ws_client:
        assert ws_client.call("public/test")["result"]


def test_first_handshake_refused_once_is_retried(sim: DeribitSimulator) -> None:
    sim.inject("ws_refuse", retry_after="0")
    with session(token_configuration(sim)) as ws_client:
        assert ws_client.state is State.READY


def test_long_retry_after_is_capped_by_the_backoff(sim: DeribitSimulator) -> None:
    recorder = Recorder()
    backoff = RetryPolicy(backoff_factor=0.01, backoff_max=0.05, retry_after_max=0.2)
    with session(
        token_configuration(sim), recorder, reconnect_backoff=backoff, throttle_delay=0.1
    ) as ws_client:
        sim.inject("ws_refuse", retry_after="3600")
        sim.inject("ws_drop", path="/public/test")
        ws_client.call("public/test", idempotent=True)  # meets the drop, answered after it
        recorder.wait_for(SessionRestored, 2)
        assert all(event.delay <= 0.2 for event in recorder.of(Reconnecting))


@pytest.mark.timing
def test_calls_wait_for_a_session_only_so_long(sim: DeribitSimulator) -> None:
    # The session reconnects only 30 s after the drop: never within this test.
    slow = RetryPolicy(backoff_factor=30.0, backoff_max=30.0, jitter=0.0)
    with session(token_configuration(sim), reconnect_backoff=slow, heartbeat=None) as ws_client:
        sim.inject("ws_drop", path="/public/test")
        with pytest.raises(ApiConnectionError):
            ws_client.call("public/test")
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError, match=r"not ready within 0\.1 s"):
            ws_client.call("public/test", timeout=(0.1, 1.0))
        assert 0.1 <= time.monotonic() - started < 5.0
        assert ws_client.state is State.RECONNECTING


# -- small hostile servers ------------------------------------------------------------------------

Answer = Callable[[dict[str, Any]], Optional[list[str]]]


@contextlib.contextmanager
def scripted_server(script: Answer) -> Iterator[str]:
    """A WebSocket server answering every request ``"ok"``, after the raw frames ``script``
    returns for it (``None``: no answer at all). Yields an API root URL for the client."""

    def handler(ws: ServerConnection) -> None:
        for text in ws:
            request = json.loads(text)
            frames = script(request)
            if frames is None:
                continue
            for frame in frames:
                ws.send(frame)
            ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "ok"}))

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}/api/v2"
        finally:
            server.shutdown()
            thread.join(5)


def test_stray_messages_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    noise = [
        "not json",
        "[1, 2]",
        json.dumps({"jsonrpc": "2.0", "error": {"code": 11050, "message": "bad_request"}}),
        json.dumps({"jsonrpc": "2.0", "id": 99999, "error": {"code": 1, "message": "late"}}),
        json.dumps({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "heartbeat"}}),
        json.dumps({"jsonrpc": "2.0", "method": "mystery", "params": {}}),
        json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "x"}}),
        json.dumps({"jsonrpc": "2.0", "error": {"code": 10028, "message": "too_many_requests"}}),
    ]

    def script(request: dict[str, Any]) -> list[str]:
        return noise if request["method"] == "public/noise" else []

    caplog.set_level(logging.DEBUG, logger="openapi_client.websocket")
    with scripted_server(script) as url:
        configuration = Configuration(host=url, retries=0)
        with WebSocketApiClient(configuration, heartbeat=None) as ws_client:
            assert ws_client.call("public/noise")["result"] == "ok"
            link = ws_client._session.core._links.current  # the 10028 outside any call was noted
            assert link is not None and link.throttled
    text = caplog.text
    for expected in ("not JSON", "not an object", "outside any call", "came after its caller"):
        assert expected in text


def test_unreadable_cancel_on_disconnect_setting_counts_as_unknown() -> None:
    recorder = Recorder()

    def script(request: dict[str, Any]) -> list[str] | None:
        if request["method"] == "private/get_cancel_on_disconnect":
            error = {"code": 13021, "message": "forbidden"}
            return [json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error})]
        return []

    with scripted_server(script) as url:
        configuration = Configuration(host=url, access_token="t", retries=0)
        with WebSocketApiClient(configuration, heartbeat=None, on_event=recorder):
            pass
    assert recorder.of(SessionRestored)[0].cancel_on_disconnect is False
    assert recorder.of(Disconnected)[0].cancel_on_disconnect_may_have_fired is True


def test_a_refused_setting_fails_the_session() -> None:
    def script(request: dict[str, Any]) -> list[str] | None:
        if request["method"] == "public/set_heartbeat":
            error = {"code": 11029, "message": "invalid_arguments"}
            return [json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error})]
        return []

    with scripted_server(script) as url:
        with pytest.raises(ApiException) as refused:
            WebSocketApiClient(Configuration(host=url, retries=0))
    assert refused.value.error_code == 11029


@contextlib.contextmanager
def raw_http_server(reply: bytes | None) -> Iterator[str]:
    """Answers each connection's handshake with ``reply`` (None: never answers)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # so that the loop sees ``stop`` soon
    stop = threading.Event()
    held: list[socket.socket] = []

    def run() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            held.append(connection)
            connection.settimeout(5)
            connection.recv(65536)
            if reply is not None:
                connection.sendall(reply)
                connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/v2"
    finally:
        stop.set()
        listener.close()
        for connection in held:
            connection.close()
        thread.join(5)


@pytest.mark.parametrize(
    ("reply", "error", "says"),
    [
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", ApiException, "503"),
        (b"HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n", ApiException, "503"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", ApiProtocolError, "handshake"),
        pytest.param(None, ApiTimeoutError, "timed out after 0.3 s", marks=pytest.mark.timing),
        (b"", ApiProtocolError, "handshake"),
    ],
    ids=["503", "503-no-reason", "not-websocket", "silent", "closed"],
)
def test_handshake_failures(reply: bytes | None, error: type, says: str) -> None:
    with raw_http_server(reply) as url, pytest.raises(error, match=says) as failed:
        WebSocketApiClient(Configuration(host=url, retries=0), open_timeout=0.3)
    assert isinstance(failed.value, ApiException)


def test_warnings_about_tls_are_not_raised_on_plain_ws(sim: DeribitSimulator) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with session(token_configuration(sim, verify_ssl=False)) as ws_client:
            assert ws_client.call("public/test")["result"]


# -- credentials after 13009, and a restore refused by the client itself --------------------------


def test_an_expired_fixed_token_is_not_renewed(sim: DeribitSimulator) -> None:
    configuration = token_configuration(sim, retries=0)
    configuration.access_token = sim.issue_token()
    with session(configuration, heartbeat=None) as ws_client:
        sim.revoke_tokens()
        with pytest.raises(ApiException) as refused:
            SessionManagementApi(ws_client).private_get_cancel_on_disconnect_get()
        assert refused.value.error_code == 13009


def test_a_token_provider_is_asked_again_after_13009(sim: DeribitSimulator) -> None:
    current: dict[str, Any] = {"token": sim.issue_token(), "renew": False}

    def provider() -> str:
        """Hands out its token; once told to renew, hands it out one last time."""
        token = current["token"]
        if current["renew"]:
            current["token"], current["renew"] = sim.issue_token(), False
        return str(token)

    configuration = token_configuration(sim)
    configuration.access_token = None
    configuration.token_provider = provider
    with session(configuration, heartbeat=None) as ws_client:
        api = SessionManagementApi(ws_client)
        api.private_get_cancel_on_disconnect_get()
        sim.revoke_tokens()
        current["renew"] = True  # the next call is refused (13009), the one after gets a new token
        assert api.private_get_cancel_on_disconnect_get()["result"]["enabled"] is False
        assert current["renew"] is False


def test_a_credential_refused_by_the_client_on_reconnect_fails_the_session(
    sim: DeribitSimulator,
) -> None:
    recorder = Recorder()
    tokens = [TOKEN]
    configuration = token_configuration(sim)
    configuration.access_token = None
    configuration.token_provider = lambda: tokens[-1]
    ws_client = session(configuration, recorder, heartbeat=None)
    tokens.append("")  # from now on the provider gives nothing usable
    sim.inject("ws_drop", path="/public/test")
    with pytest.raises(ApiConnectionError):
        ws_client.call("public/test")
    wait_until(lambda: ws_client.state is State.FAILED, "the session to give up")
    ws_client.close()


def test_a_lost_connection_takes_no_more_calls(sim: DeribitSimulator) -> None:
    with session(token_configuration(sim), heartbeat=None) as ws_client:
        connection = ws_client._session.connection
        assert connection is not None
        sim.inject("ws_drop", path="/public/test")
        with pytest.raises(ApiConnectionError, match="dropped without a close frame"):
            ws_client.call("public/test")
        assert connection.ended.wait(5) and "lost" in repr(connection)
        connection.send('{"jsonrpc": "2.0", "id": 1, "method": "public/test"}')  # harmless
        connection.close(1000, "")  # closing again is harmless
        connection.abort(1000, "")
        assert ws_client.call("public/test", idempotent=True)["result"]
        assert ws_client._session.connection is not connection


# -- events: bounded queues, failing callbacks ---------------------------------------------------


def test_event_queues_are_bounded_and_callbacks_may_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from openapi_client.websocket.events import Closed, Reconnecting
    from openapi_client.websocket.hub import MAX_BACKLOG, MAX_PENDING_CALLBACKS, EventHub

    release = threading.Event()
    seen: list[Any] = []

    def callback(event: Any) -> None:
        release.wait(5)  # the first call holds the dispatcher while the queue overflows
        seen.append(event)
        if len(seen) == 2:
            raise RuntimeError("a bug in the bot's callback")

    hub = EventHub(callback)
    for attempt in range(MAX_PENDING_CALLBACKS + 5):
        hub.emit(Reconnecting(attempt, 0.0, "", 0.0))
    release.set()
    hub.emit(Closed("done", False, 0.0))
    hub.close()
    kept = list(hub.iterate(0.1))
    assert len(kept) == MAX_BACKLOG and isinstance(kept[-1], Closed)
    assert "callbacks fall behind" in caplog.text
    assert "callback raised" in caplog.text
    hub.run_callback(callback, "after the end")  # ignored once closed
    assert "after the end" not in seen


def test_a_hub_that_never_ran() -> None:
    from openapi_client.websocket.hub import EventHub

    hub = EventHub(None)
    hub.close()
    hub.run_callback(print, "never printed")  # no dispatcher after the end


@pytest.mark.timing
@pytest.mark.usefixtures("short_token_lifetimes")
def test_a_renewal_lost_with_its_connection_is_done_on_the_next() -> None:
    # The client renews 0.8 s after the grant (expires_in 1 s); the simulator's clock stands
    # still, so the token never expires there, however late a busy machine renews.
    recorder = Recorder()
    with DeribitSimulator(
        time_scale=CALM_SCALE, token_ttl=1.0, clock=ManualClock()
    ) as simulator:
        configuration = key_configuration(simulator, token_refresh_margin=0.5)
        with session(configuration, recorder, heartbeat=None):
            simulator.inject("ws_drop", path="/public/auth")  # the renewal meets a drop
            recorder.wait_for(SessionRestored, 2)
            assert recorder.of(Disconnected)[0].code is None
            # The grant and the lost renewal on the first connection; then the next one's own.
            auths = [r.connection_id for r in simulator.requests if r.path.endswith("/auth")]
            assert auths[1] == auths[0] and auths[2] != auths[0]


# -- the sans-I/O transport: frames, pings, proxies, over real loopback sockets -------------------


@contextlib.contextmanager
def raw_server(
    serve_connection: Callable[[socket.socket, ServerProtocol, threading.Event], None],
) -> Iterator[str]:
    """A WebSocket server on websockets' sans-I/O ``ServerProtocol``, so that a test decides
    what is written and when (frames with the handshake's response, fragments, unanswered
    pings). ``serve_connection`` runs after the handshake; yields an API root URL."""

    def handshake(peer: Peer) -> None:
        sock = peer.sock
        sock.settimeout(5)
        protocol = ServerProtocol()
        while True:
            data = sock.recv(65536)
            if not data:
                return
            protocol.receive_data(data)
            events = protocol.events_received()
            if events and isinstance(events[0], Request):
                protocol.send_response(protocol.accept(events[0]))
                serve_connection(sock, protocol, peer.server.stopping)
                return

    with HostileServer(handshake) as server:
        yield server.url


def open_transport(url: str, keepalive: float | None) -> SocketTransport:
    """The sans-I/O transport on its own (no session), connected to a ``raw_server``."""
    return open_socket(
        websocket_url(url),
        open_timeout=5,
        close_timeout=0.2,
        max_message_size=1 << 20,
        keepalive=keepalive,
        compression=None,
        ssl_context=None,
        server_hostname=None,
        user_agent="test",
    )


def flush(sock: socket.socket, protocol: ServerProtocol) -> None:
    """Write what the protocol has to send; at its end of stream (after the closing handshake)
    shut the writing side, as a server closes the TCP connection first."""
    for chunk in protocol.data_to_send():
        if chunk:
            sock.sendall(chunk)
        else:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)


def ok(request_id: Any, result: Any = "ok") -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode()


def requests_of(
    sock: socket.socket,
    protocol: ServerProtocol,
    stop: threading.Event,
    pings: list[bytes] | None = None,
) -> Iterator[dict[str, Any]]:
    """The JSON requests a client sends, answering its pings (their payloads are appended to
    ``pings``) and close frame on the way."""
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            return
        protocol.receive_data(data)
        events = protocol.events_received()
        flush(sock, protocol)  # pongs, the echo of a close frame
        for event in events:
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                yield json.loads(event.data)
            elif isinstance(event, Frame) and event.opcode is Opcode.PING and pings is not None:
                pings.append(bytes(event.data))


@pytest.mark.timing
def test_fragments_binary_frames_pings_and_a_frame_sent_with_the_handshake() -> None:
    answered_test_requests: list[str] = []
    pings: list[bytes] = []

    def serve_connection(
        sock: socket.socket, protocol: ServerProtocol, stop: threading.Event
    ) -> None:
        test_request = {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
        protocol.send_text(json.dumps(test_request).encode())
        flush(sock, protocol)  # in one write with the 101 response
        for request in requests_of(sock, protocol, stop, pings):
            method, request_id = request["method"], request["id"]
            if method == "public/test":
                answered_test_requests.append(method)
                protocol.send_text(ok(request_id, {"version": "raw"}))
            elif method == "public/fragmented":
                answer = ok(request_id, "é" * 100)
                protocol.send_text(answer[:7], fin=False)
                protocol.send_continuation(answer[7:60], fin=False)
                protocol.send_continuation(answer[60:], fin=True)
            elif method == "public/binary":
                protocol.send_binary(ok(request_id, "bytes"))
            else:
                protocol.send_text(ok(request_id))
            flush(sock, protocol)

    with raw_server(serve_connection) as url:
        with WebSocketApiClient(
            Configuration(host=url, retries=0), heartbeat=None, keepalive_ping=0.5
        ) as ws_client:
            assert ws_client.call("public/fragmented")["result"] == "é" * 100
            assert ws_client.call("public/binary")["result"] == "bytes"
            # A ping every 0.5 s, each to be answered within 0.5 s: the next one goes only once
            # the pong came, so a second ping means the first was answered and accepted.
            wait_until(lambda: len(pings) >= 2, "two keepalive pings")
            assert ws_client.call("public/status")["result"] == "ok"
            assert ws_client.state is State.READY
    assert answered_test_requests == ["public/test"]


@pytest.mark.timing
def test_an_unanswered_keepalive_ping_ends_the_connection() -> None:
    recorder = Recorder()

    def serve_connection(
        sock: socket.socket, protocol: ServerProtocol, stop: threading.Event
    ) -> None:
        flush(sock, protocol)  # the handshake's response
        for request in requests_of(sock, protocol, stop):
            protocol.send_text(ok(request["id"]))
            flush(sock, protocol)
            break  # public/hello answered; then nothing is read, so no ping is answered
        stop.wait()

    with raw_server(serve_connection) as url:
        started = time.monotonic()
        ws_client = WebSocketApiClient(
            Configuration(host=url, retries=0),
            heartbeat=None,
            keepalive_ping=0.1,
            close_timeout=0.2,
            max_reconnects=0,
            on_event=recorder,
        )
        (lost,) = recorder.wait_for(Disconnected)
        assert lost.code == 1011 and "keepalive ping timeout" in lost.reason
        assert time.monotonic() - started >= 0.2  # the ping after 0.1 s, its pong due 0.1 s later
        wait_until(lambda: ws_client.state is State.FAILED, "the session to give up")
        ws_client.close()


def test_an_unknown_compression_is_refused() -> None:
    with pytest.raises(ApiValueError, match="unsupported compression"):
        WebSocketApiClient(
            Configuration(host="http://127.0.0.1:9/api/v2", retries=0), compression="brotli"
        )


def test_compressed_session(sim: DeribitSimulator) -> None:
    with session(token_configuration(sim), compression="deflate") as ws_client:
        assert ws_client.call("public/test")["result"]["version"]


def answer_hello_then(
    then: Callable[[socket.socket, ServerProtocol, threading.Event], None],
) -> Callable[[socket.socket, ServerProtocol, threading.Event], None]:
    """A connection that answers ``public/hello`` (all a session without credentials sends
    before it is ready), then does ``then``."""

    def serve_connection(
        sock: socket.socket, protocol: ServerProtocol, stop: threading.Event
    ) -> None:
        flush(sock, protocol)
        for request in requests_of(sock, protocol, stop):
            protocol.send_text(ok(request["id"]))
            flush(sock, protocol)
            break
        then(sock, protocol, stop)

    return serve_connection


def reset(sock: socket.socket, protocol: ServerProtocol, stop: threading.Event) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def reset_at_the_next_request(
    sock: socket.socket, protocol: ServerProtocol, stop: threading.Event
) -> None:
    for _ in requests_of(sock, protocol, stop):
        break
    reset(sock, protocol, stop)


def never_read(sock: socket.socket, protocol: ServerProtocol, stop: threading.Event) -> None:
    stop.wait()  # until the server stops, after the test


@pytest.mark.timing
def test_a_pong_waiting_for_a_late_reader_keeps_the_connection() -> None:
    pings: list[bytes] = []

    def serve(sock: socket.socket, protocol: ServerProtocol, stop: threading.Event) -> None:
        flush(sock, protocol)
        for _ in requests_of(sock, protocol, stop, pings):  # answers each ping with its pong
            pass

    with raw_server(serve) as url:
        transport = open_transport(url, keepalive=0.2)
        time.sleep(0.25)
        assert transport.read(0) == []  # the ping is due: sent; nothing is read
        wait_until(lambda: pings, "the ping answered")  # the pong is on its way
        time.sleep(0.3)  # the reader comes back after the pong's deadline, the pong waiting
        assert transport.read(0.05) == []  # reads the pong before judging: no 1011
        transport.send("{}")  # still open
        transport.release()


def test_a_reset_connection_is_a_drop() -> None:
    recorder = Recorder()
    with raw_server(answer_hello_then(reset_at_the_next_request)) as url:
        with WebSocketApiClient(
            Configuration(host=url, retries=0), heartbeat=None, max_reconnects=0, on_event=recorder
        ) as ws_client:
            with pytest.raises(ApiConnectionError, match="dropped without a close frame"):
                ws_client.call("public/test")
            (lost,) = recorder.wait_for(Disconnected)
    assert lost.code is None and "dropped without a close frame" in lost.reason


@pytest.mark.timing
def test_close_is_bounded_by_the_close_timeout_when_the_server_does_not_answer() -> None:
    with raw_server(answer_hello_then(never_read)) as url:
        ws_client = WebSocketApiClient(
            Configuration(host=url, retries=0), heartbeat=None, close_timeout=0.2
        )
        started = time.monotonic()
        ws_client.close()
        # The close frame is never answered: close waits its timeout, and only that (the server
        # would keep the connection until the test ends).
        assert 0.2 <= time.monotonic() - started < 5.0
        assert ws_client.state is State.CLOSED


@pytest.mark.timing
def test_a_silent_server_times_calls_out_whoever_reads() -> None:
    held = threading.Event()
    release = threading.Event()

    def script(request: dict[str, Any]) -> list[str] | None:
        if request["method"] == "public/held":  # answered once the test says so
            held.set()
            release.wait(SOON)
        return None if request["method"] == "public/silent" else []

    with scripted_server(script) as url:
        with WebSocketApiClient(Configuration(host=url, retries=0), heartbeat=None) as ws_client:
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError, match=r"did not answer within 0\.2 s"):
                ws_client.call("public/silent", timeout=0.2)  # reading for itself
            assert time.monotonic() - started >= 0.2
            answers: list[Any] = []
            waiting = threading.Thread(
                target=lambda: answers.append(ws_client.call("public/held", timeout=SOON))
            )
            waiting.start()
            try:
                assert held.wait(SOON)  # sent: another thread reads for it from now on
                started = time.monotonic()
                with pytest.raises(ApiTimeoutError, match=r"within 0\.2 s"):
                    ws_client.call("public/silent", timeout=0.2)
                # Its own deadline, not the other call's answer (held until after this).
                assert 0.2 <= time.monotonic() - started < 5.0
            finally:
                release.set()
            waiting.join(SOON)
            assert [answer["result"] for answer in answers] == ["ok"]
            assert ws_client.call("public/status")["result"] == "ok"


def test_a_request_on_a_closing_connection_fails_at_once(sim: DeribitSimulator) -> None:
    with session(token_configuration(sim), heartbeat=None) as ws_client:
        connection = ws_client._session.connection
        assert connection is not None
        connection.transport.close(1000, "")  # closing: nothing more may be sent
        started = time.monotonic()
        # Sent before the session saw the server's close answer, the call is not sent and the
        # connection's end fails it; after, it waits for the next connection and is answered
        # there (the simulator echoes the close at once, so either can come first). Never does
        # it wait for its 30 s.
        try:
            ws_client.call("public/test", timeout=30)
        except ApiConnectionError as error:
            assert "no answer" in str(error), error
        assert time.monotonic() - started < 5.0


def test_a_transport_on_a_reset_connection_refuses_to_send() -> None:
    from websockets.exceptions import ConnectionClosed

    gone = threading.Event()

    def reset_at_once(
        sock: socket.socket, protocol: ServerProtocol, stop: threading.Event
    ) -> None:
        flush(sock, protocol)
        reset(sock, protocol, stop)
        sock.close()  # the reset goes now, before the test is told
        gone.set()

    with raw_server(reset_at_once) as url:
        transport = open_transport(url, keepalive=None)
        assert gone.wait(SOON)
        deadline = time.monotonic() + SOON
        with pytest.raises(OSError):
            while time.monotonic() < deadline:  # a write or two may go before the reset is seen
                transport.send("{}")
                time.sleep(0.01)
        with pytest.raises(ConnectionClosed):
            transport.read(1.0)
        with pytest.raises(ConnectionClosed):
            transport.read(1.0)  # and it stays closed
        transport.release()


def test_connect_errors_are_the_librarys() -> None:
    from websockets.exceptions import InvalidURI

    from openapi_client.websocket.connection import ConnectOptions, _connect_error
    from openapi_client.websocket.url import resolve

    target = resolve("http://127.0.0.1:9/api/v2", None)
    options = ConnectOptions(1.0, 1.0, 1 << 20, None, None)
    invalid = _connect_error(InvalidURI(target.url, "bad"), target, options)
    assert isinstance(invalid, ApiValueError) and "not a valid WebSocket URL" in str(invalid)
    unresolved = _connect_error(socket.gaierror(-2, "unknown"), target, options)
    assert isinstance(unresolved, ApiConnectionError) and "resolved" in str(unresolved)
    other = _connect_error(RuntimeError("?"), target, options)
    assert isinstance(other, ApiException) and "RuntimeError" in str(other)
