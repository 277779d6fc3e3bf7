"""The WebSocket transport at its edges: TLS, URLs, settings, hostile servers, credentials and the
session's less travelled paths. Real loopback sockets: the simulator, or small servers written
here that misbehave on purpose."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
import trustme
from conftest import TOKEN
from test_websocket_support import (
    TIME_SCALE,
    Recorder,
    key_configuration,
    session,
    token_configuration,
    wait_until,
)
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
from openapi_client.websocket import (
    Disconnected,
    Reconnecting,
    SessionRestored,
    State,
    WebSocketApiClient,
    websocket_url,
)
from openapi_client.websocket.client import RawAnswer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=TIME_SCALE) as simulator:
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
def tls_simulator(ca: trustme.CA, *names: str) -> Iterator[DeribitSimulator]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    with DeribitSimulator(ssl_context=context, time_scale=TIME_SCALE) as simulator:
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
        with pytest.raises(ApiValueError, match="ssl_ca_cert cannot be loaded"):
            session(token_configuration(sim, ssl_ca_cert=str(garbage)))
        with pytest.raises(ApiValueError, match="cert_file/key_file cannot be loaded"):
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
    ):
        sim.inject("ws_refuse", retry_after="3600")
        sim.inject("ws_drop", path="/public/test")
        recorder.wait_for(SessionRestored, 2)
        assert all(event.delay <= 0.2 for event in recorder.of(Reconnecting))


def test_calls_wait_for_a_session_only_so_long(sim: DeribitSimulator) -> None:
    slow = RetryPolicy(backoff_factor=2.0, backoff_max=2.0, jitter=0.0)
    with session(token_configuration(sim), reconnect_backoff=slow, heartbeat=None) as ws_client:
        sim.inject("ws_drop", path="/public/test")
        with pytest.raises(ApiConnectionError):
            ws_client.call("public/test")
        with pytest.raises(ApiTimeoutError, match=r"not ready within 0\.1 s"):
            ws_client.call("public/test", timeout=(0.1, 1.0))


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
            connection = ws_client._session.connection
            assert connection is not None and connection.throttled
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
        (None, ApiTimeoutError, "timed out after 0.3 s"),
    ],
    ids=["503", "503-no-reason", "not-websocket", "silent"],
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


def test_a_lost_connection_refuses_requests(sim: DeribitSimulator) -> None:
    with session(token_configuration(sim), heartbeat=None) as ws_client:
        connection = ws_client._session.connection
        assert connection is not None
        sim.inject("ws_drop", path="/public/test")
        ws_client.call("public/test", idempotent=True)
        assert connection.wait_lost(5) and "lost" in repr(connection)
        with pytest.raises(ApiConnectionError, match="dropped without a close frame"):
            connection.request("public/test", {}, 1.0)
        with pytest.raises(ApiConnectionError):
            connection.send_only("public/test", {})
        connection.close()  # closing again is harmless


# -- events: bounded queues, failing callbacks ---------------------------------------------------


def test_event_queues_are_bounded_and_callbacks_may_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from openapi_client.websocket.events import (
        MAX_BACKLOG,
        MAX_PENDING_CALLBACKS,
        Closed,
        EventHub,
        Reconnecting,
    )

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


def test_listener_defaults_and_a_hub_that_never_ran() -> None:
    from openapi_client.websocket.connection import Listener
    from openapi_client.websocket.events import EventHub

    assert Listener().idle_limit() is None
    hub = EventHub(None)
    hub.close()
    hub.run_callback(print, "never printed")  # no dispatcher after the end


def test_a_renewal_lost_with_its_connection_is_done_on_the_next() -> None:
    recorder = Recorder()
    with DeribitSimulator(time_scale=TIME_SCALE, token_ttl=1.0) as simulator:
        configuration = key_configuration(simulator, token_refresh_margin=0.5)
        with session(configuration, recorder, heartbeat=None):
            simulator.inject("ws_drop", path="/public/auth")  # the renewal meets a drop
            recorder.wait_for(SessionRestored, 2)
            assert recorder.of(Disconnected)[0].code is None
