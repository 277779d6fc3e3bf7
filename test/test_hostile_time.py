"""Promise 1: every attempt and every call is bounded in time, whatever the server does.

Servers that dribble, stall a TLS handshake, or keep failing; the error says which limit ran out.
These are real-time behaviours (socket timeouts, the client's monotonic deadlines): times are
checked from below where a limit must not fire early, and from above only by PROMPT, far above a
loaded machine's delays and far below what an unbounded call takes. Waits that are the client's
choice (a limiter's, a retry's) are recorded instead of taken.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from typing import Any

import pytest
import trustme
from test_hostile_server import (
    OK_BODY,
    HostileServer,
    Peer,
    always,
    api_for,
    path_fixture,  # noqa: F401 - the `path` fixture
    response,
    rpc_error,
    serve_each,
)

from openapi_client import (
    ApiException,
    ApiTimeoutError,
    RateLimit,
    RetryPolicy,
    SessionManagementApi,
)
from openapi_client.exceptions import ApiCallTimeoutError
from openapi_client.testing import ManualClock

pytestmark = [pytest.mark.timeout(30), pytest.mark.timing]

#: Seconds within which a bounded call must have ended: "it did not hang", not a speed. Every
#: unbounded alternative here takes at least twice as long.
PROMPT = 5.0


def fail(api: SessionManagementApi, **options: Any) -> ApiException:
    with pytest.raises(ApiException) as caught:
        api.public_set_heartbeat_get(30, **options)
    return caught.value


def timed_failure(api: SessionManagementApi) -> tuple[ApiException, float]:
    started = time.monotonic()
    error = fail(api)
    return error, time.monotonic() - started


def test_body_dribbled_a_byte_at_a_time_is_cut_off_by_attempt_timeout(path: str) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        answer = response(OK_BODY + b" " * 200)
        head, _, body = answer.partition(b"\r\n\r\n")
        peer.send(head + b"\r\n\r\n")
        peer.dribble(body, 0.05)  # each byte well within the 2 s read timeout; 10 s in all

    with HostileServer(script) as server:
        api = api_for(server.url, path, attempt_timeout=0.5)
        error, elapsed = timed_failure(api)
        api.api_client.close()
    assert type(error) is ApiTimeoutError
    assert "attempt_timeout (0.5 s)" in str(error)
    assert error.__cause__ is not None
    assert 0.5 <= elapsed < PROMPT


def test_headers_dribbled_a_byte_at_a_time_are_cut_off_too(path: str) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        # 429 bytes, 0.025 s apart: more than 10 s in all.
        peer.dribble(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\n\r\n", 0.025)

    with HostileServer(script) as server:
        api = api_for(server.url, path, attempt_timeout=0.5)
        error, elapsed = timed_failure(api)
        api.api_client.close()
    assert type(error) is ApiTimeoutError
    assert "attempt_timeout" in str(error)
    assert 0.5 <= elapsed < PROMPT


def test_silence_is_a_read_timeout_with_its_number(path: str) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.hold()

    with HostileServer(script) as server:
        api = api_for(server.url, path, request_timeout=(2.0, 0.3))
        error, elapsed = timed_failure(api)
        api.api_client.close()
    assert type(error) is ApiTimeoutError
    assert "0.3 s" in str(error)
    assert "read timeout" in str(error)
    assert 0.3 <= elapsed < PROMPT


def test_call_timeout_bounds_retries_and_their_backoff(path: str) -> None:
    with HostileServer(always(response(b"busy", "503 Service Unavailable"))) as server:
        # Unbounded, 50 retries at 0.2 s would take 10 s. The call has 2 s: long enough for the
        # first 503 to come back on a busy machine, so that its failure can be told.
        policy = RetryPolicy(total=50, backoff_factor=0.1, backoff_max=0.2, jitter=0)
        api = api_for(server.url, path, retries=policy, call_timeout=2.0)
        error, elapsed = timed_failure(api)
        api.api_client.close()
    assert type(error) is ApiCallTimeoutError
    assert isinstance(error, ApiTimeoutError)
    assert "call_timeout (2 s)" in str(error)
    assert "503" in str(error)  # the last attempt's failure is told too
    assert error.__cause__ is not None and error.__cause__.status == 503  # type: ignore[attr-defined]
    assert elapsed < PROMPT
    # It did retry (the first wait is 0.1 s), and each retry waited: at most one per 0.1 s.
    assert 2 <= len(server.requests) <= 21


def test_call_timeout_bounds_a_slow_attempt(path: str) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.hold()

    with HostileServer(script) as server:
        api = api_for(server.url, path, call_timeout=0.4, attempt_timeout=20.0, retries=3)
        error, elapsed = timed_failure(api)
        api.api_client.close()
    assert type(error) is ApiCallTimeoutError
    assert "call_timeout (0.4 s)" in str(error)
    assert 0.4 <= elapsed < PROMPT
    assert len(server.requests) == 1


def test_call_timeout_bounds_the_rate_limiters_wait(path: str) -> None:
    waits: list[float] = []
    with HostileServer(always(response())) as server:
        # The second call would wait 2 s; the limiter's clock stands still, its waits are kept.
        clock = ManualClock()
        limit = RateLimit(per_second=0.5, burst=1, margin=0, clock=clock, sleep=waits.append)
        api = api_for(server.url, path, rate_limit=limit, call_timeout=0.5)
        api.public_set_heartbeat_get(30)
        error = fail(api)
        api.api_client.close()
    assert type(error) is ApiCallTimeoutError
    assert "rate limit would delay this request by 2.00 s" in str(error)
    assert waits == []  # refused at once, not after sleeping
    assert len(server.requests) == 1


def test_retry_after_beyond_the_call_timeout_is_not_slept(path: str) -> None:
    throttled = response(rpc_error(10028, "too_many_requests"), "429 Too Many Requests",
                         (("Retry-After", "5"),))
    waits: list[float] = []
    with HostileServer(always(throttled)) as server:
        api = api_for(server.url, path, retries=3, call_timeout=1.0)
        api.api_client.sleep = waits.append
        error = fail(api)
        api.api_client.close()
    assert type(error) is ApiCallTimeoutError
    assert waits == []  # not slept, neither the 5 s nor what is left of the call's second
    assert len(server.requests) == 1


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_stalled_tls_handshake_is_a_connect_timeout_with_its_number(
    path: str, ca: trustme.CA, tmp_path: Any
) -> None:
    # A server that accepts the TCP connection and never says a word of TLS.
    def script(peer: Peer) -> None:
        peer.server.stopping.wait(30)

    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with HostileServer(script) as server:
        url = server.url.replace("http://", "https://")
        api = api_for(url, path, ssl_ca_cert=str(ca_file), request_timeout=(0.3, 5.0))
        error, elapsed = timed_failure(api)
        api.api_client.close()
    assert type(error) is ApiTimeoutError
    assert "connect" in str(error)
    assert "0.3 s" in str(error)
    assert 0.3 <= elapsed < PROMPT


def test_threads_beyond_max_connections_wait_for_one(path: str) -> None:
    def slow(head: bytes) -> bytes:
        time.sleep(0.15)
        return response()

    with HostileServer(serve_each(slow)) as server:
        api = api_for(server.url, path, max_connections=2)
        failures: list[BaseException] = []

        def call() -> None:
            try:
                api.public_set_heartbeat_get(30)
            except BaseException as error:  # reported below
                failures.append(error)

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        api.api_client.close()
    assert failures == []
    assert len(server.requests) == 6
    assert server.most_open <= 2
    assert server.connections == 2


def test_waiting_for_a_connection_is_bounded_by_the_deadline(path: str) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.hold()

    with HostileServer(script) as server:
        api = api_for(server.url, path, max_connections=1, call_timeout=5.0)
        holder = threading.Thread(target=lambda: fail(api))
        holder.start()  # takes the only connection and keeps it past the waiter's deadline
        waiting_since = time.monotonic()
        while not server.requests:
            assert time.monotonic() - waiting_since < PROMPT, "the holder's request never came"
            time.sleep(0.01)
        api.api_client.configuration.call_timeout = 0.5  # read by each call as it starts
        error, elapsed = timed_failure(api)
        most_open = server.most_open
    holder.join(5)  # the server's stop ended the held exchange
    api.api_client.close()
    assert type(error) is ApiCallTimeoutError
    assert "max_connections = 1" in str(error)
    assert 0.5 <= elapsed < PROMPT
    assert most_open == 1
    assert len(server.requests) == 1


@pytest.mark.parametrize("burst", [10, 100])
def test_rate_limit_is_charged_when_the_request_leaves_not_before_a_slow_handshake(
    ca: trustme.CA, tmp_path: Any, path: str, burst: int
) -> None:
    """A first connection that takes 0.5 s to set up (a slow TLS handshake) must not make the
    limiter's pool run ahead of the server's, which charges requests when they arrive: with
    Deribit's numbers and the limiter's defaults, call 101 must not meet 10028.

    Client and server read one manual clock; the handshake moves it by 0.5 s, and so does any
    wait of the limiter, so the outcome is the same on any machine."""
    per_second, delay = 20.0, 0.5
    clock = ManualClock()
    server_pool = RateLimit(per_second=per_second, burst=burst, margin=0, clock=clock)
    context = tls_server_context(ca)

    def script(peer: Peer) -> None:
        clock.advance(delay)  # the handshake is slow
        try:
            peer.sock = context.wrap_socket(peer.sock, server_side=True)
        except OSError:
            return
        while True:
            head = peer.read_request()
            if head is None:
                return
            if server_pool.try_acquire():  # charged on arrival, as Deribit does
                answer = response()
            else:
                answer = response(rpc_error(10028, "too_many_requests"), "400 Bad Request")
            if not peer.send(answer):
                return

    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    calls = burst + 6
    with HostileServer(script) as server:
        url = server.url.replace("http://", "https://")
        limit = RateLimit(per_second=per_second, burst=burst, clock=clock, sleep=clock.advance)
        api = api_for(url, path, rate_limit=limit, ssl_ca_cert=str(ca_file))
        results = [api.public_set_heartbeat_get(30)["result"] for _ in range(calls)]
        api.api_client.close()
    assert results == ["ok"] * calls
    assert len(server.requests) == calls


def test_answer_after_the_deadline_is_not_taken(path: str) -> None:
    # The whole answer arrives, but only after the attempt's deadline.
    def script(peer: Peer) -> None:
        peer.read_request()
        time.sleep(0.6)
        peer.send(response(json.dumps({"result": "late"}).encode()))

    with HostileServer(script) as server:
        api = api_for(server.url, path, attempt_timeout=0.3)
        error, elapsed = timed_failure(api)
        api.api_client.close()
    # Normally the attempt ends at 0.3 s, before the answer; on a machine so busy that the client
    # only looks again after 0.6 s, the answer is there and must still be refused. The message
    # names the limit that ran out, also when urllib3's socket timeout (capped at the deadline)
    # fires before the watchdog has marked the deadline.
    assert type(error) is ApiTimeoutError
    assert "attempt_timeout (0.3 s)" in str(error)
    assert 0.3 <= elapsed < PROMPT


def test_refused_port_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = api_for(f"http://127.0.0.1:{port}/api/v2", "direct", retries=0)
    error, elapsed = timed_failure(api)
    assert "refused" in str(error)
    assert elapsed < PROMPT  # no connect timeout waited for
