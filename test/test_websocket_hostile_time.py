"""Timers a server feeds the session are held to documented ranges (issue 16, promise 1): a token
lifetime (``expires_in``) of 0, negative, a few milliseconds, 1e300, infinite or hundreds of
digits, and a ``Retry-After`` at the handshake of any size, never make the session renew in a
loop, never overflow a clock (in the constructor or the session's threads), and are reported.
Hand-written WebSocket servers on loopback (``test_websocket_hostile_server``)."""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import pytest
from test_websocket_hostile_server import (
    Message,
    WsPeer,
    answering,
    api_url,
    ok,
    serving,
    session_answers,
)
from test_websocket_support import (
    FAST_BACKOFF,
    Recorder,
    SessionOpener,
)

from openapi_client import ApiConnectionError, ApiException, Configuration, RetryPolicy
from openapi_client.credentials import MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME
from openapi_client.websocket import (
    Authenticated,
    Disconnected,
    Reconnecting,
    SessionRestored,
    State,
    WebSocketApiClient,
)

pytestmark = pytest.mark.timeout(30)

#: The call a test makes to have the hostile server close the connection (code 1001).
DROP = "public/drop_me"


class AuthServer:
    """Answers a session like Deribit, but ``public/auth`` with ``expires_in`` as given (raw
    JSON text, so that ``Infinity`` and 500-digit numbers go out as they are), and closes the
    connection when asked to with :data:`DROP`. Counts the grants."""

    def __init__(self, expires_in: str) -> None:
        self.expires_in = expires_in
        self.grants = 0
        self._lock = threading.Lock()

    def answers(self, request: dict[str, Any]) -> list[Message] | None:
        if request["method"] == "public/auth":
            with self._lock:
                self.grants += 1
            result = (
                '{"access_token": "odd-lifetime-token-01", "refresh_token": '
                f'"odd-lifetime-refresh-01", "expires_in": {self.expires_in}, "scope": '
                '"session:openapi-client", "token_type": "bearer"}'
            )
            return [f'{{"jsonrpc": "2.0", "id": {request["id"]}, "result": {result}}}']
        return None

    def script(self, ws: WsPeer) -> None:
        if not ws.accept():
            return
        for request in ws.requests():
            if request["method"] == DROP:
                ws.close(1001, "going away")
                continue  # the client's echo ends the loop
            written = self.answers(request)
            if not ws.send(*(session_answers(request) if written is None else written)):
                return


def dropped_and_restored(ws_client: WebSocketApiClient, recorder: Recorder) -> None:
    """Have the server drop the connection; the session restores itself on a new one."""
    with pytest.raises(ApiConnectionError):
        ws_client.call(DROP)
    recorder.wait_for(SessionRestored, 2)
    assert ws_client.call("public/test")["result"] == "ok"
    assert ws_client.state is State.READY


def key_configuration(url: str) -> Configuration:
    return Configuration(
        host=url,
        client_id="odd-lifetime-id",
        client_secret="odd-lifetime-secret",
        retries=0,
        request_timeout=(3.0, 3.0),
    )


@pytest.mark.parametrize(
    ("expires_in", "counted_on"),
    [
        ("0", MIN_TOKEN_LIFETIME),
        ("-1", MIN_TOKEN_LIFETIME),
        ("0.001", MIN_TOKEN_LIFETIME),
        ("-Infinity", MIN_TOKEN_LIFETIME),
        ("1e300", MAX_TOKEN_LIFETIME),
        ("Infinity", MAX_TOKEN_LIFETIME),
        ("9" * 500, MAX_TOKEN_LIFETIME),
        ("900", 900.0),
    ],
    ids=[
        "zero",
        "negative",
        "a-millisecond",
        "minus-infinity",
        "1e300",
        "infinity",
        "500-digits",
        "ordinary",
    ],
)
def test_an_odd_token_lifetime_never_storms_nor_overflows(
    caplog: pytest.LogCaptureFixture,
    expires_in: str,
    counted_on: float,
    open_session: SessionOpener,
) -> None:
    """One grant per connection, whatever ``expires_in`` says (a lifetime of 0 made the session
    renew in a tight loop: thousands of grants a second; 1e300 killed its supervisor with an
    ``OverflowError``, so the session never came back after the next drop; 500 digits raised
    ``OverflowError`` from the constructor). The lifetime counted on is in the events, and a
    warning says when the server's was out of range."""
    server_side = AuthServer(expires_in)
    recorder = Recorder()
    with serving(server_side.script) as server:
        with caplog.at_level(logging.WARNING, logger="openapi_client"):
            with open_session(
                key_configuration(api_url(server)), recorder, heartbeat=None
            ) as ws_client:
                dropped_and_restored(ws_client, recorder)  # the supervisor lives
    assert server_side.grants == 2
    assert [event.expires_in for event in recorder.of(Authenticated)] == [counted_on] * 2
    warnings = [r.getMessage() for r in caplog.records if "expires_in" in r.getMessage()]
    if counted_on == 900.0:
        assert warnings == []
    else:
        assert len(warnings) == 2 and all("outside the 20 to" in text for text in warnings)
    assert "OverflowError" not in caplog.text


@pytest.mark.parametrize("expires_in", ['"900"', "true", "NaN", "null", "{}"])
def test_a_lifetime_that_is_not_a_number_is_refused_once(
    expires_in: str, open_session: SessionOpener
) -> None:
    server_side = AuthServer(expires_in)
    with serving(server_side.script) as server:
        with pytest.raises(ApiException, match="without a numeric expires_in") as refused:
            open_session(
                suite_defaults=False,
                configuration=key_configuration(api_url(server)),
                heartbeat=None,
            )
    assert refused.value.status == 200
    assert server_side.grants == 1


@pytest.mark.parametrize(
    ("retry_after", "longest"),
    [
        ("1e400", 0.5),
        ("9" * 500, 0.5),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 0.5),
        ("-5", FAST_BACKOFF.backoff_max),
        ("nan", FAST_BACKOFF.backoff_max),
        ("soon", FAST_BACKOFF.backoff_max),
    ],
    ids=["1e400", "500-digits", "year-9999", "negative", "nan", "not-a-number"],
)
def test_retry_after_at_the_handshake_is_held_in_range(
    caplog: pytest.LogCaptureFixture, retry_after: str, longest: float, open_session: SessionOpener
) -> None:
    """After a drop, the next handshake is refused with 429 and an odd ``Retry-After``: the
    session waits at most ``retry_after_max`` (a huge value is logged and cut to it), and never
    less than ``throttle_delay`` after a 429; then it comes back."""
    numbers = itertools.count(1)
    recorder = Recorder()
    backoff = RetryPolicy(backoff_factor=0.02, backoff_max=0.2, jitter=0.5, retry_after_max=0.5)
    throttle = 0.1

    def script(ws: WsPeer) -> None:
        if next(numbers) == 2:
            if ws.peer.read_request() is not None:
                ws.peer.send(
                    f"HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after}\r\n"
                    "Content-Length: 0\r\n\r\n".encode()
                )
            return
        if not ws.accept():
            return
        for request in ws.requests():
            if request["method"] == DROP:
                ws.close(1001, "going away")
                continue
            ws.send(ok(request))

    with serving(script) as server:
        with caplog.at_level(logging.WARNING, logger="openapi_client"):
            with open_session(
                Configuration(host=api_url(server), retries=0),
                recorder,
                heartbeat=None,
                reconnect_backoff=backoff,
                throttle_delay=throttle,
            ) as ws_client:
                dropped_and_restored(ws_client, recorder)
    refused = recorder.of(Reconnecting)[1]
    assert "429" in refused.error
    assert throttle <= refused.delay <= max(longest, throttle)
    beyond = [r.getMessage() for r in caplog.records if "Retry-After" in r.getMessage()]
    assert len(beyond) == (1 if longest == 0.5 else 0), beyond
    assert "OverflowError" not in caplog.text


@pytest.mark.parametrize("interval", [-5, 0, 9.99, True, "30"])
def test_a_heartbeat_interval_the_session_cannot_use_is_not_adopted(
    caplog: pytest.LogCaptureFixture, interval: Any, open_session: SessionOpener
) -> None:
    """``call("public/set_heartbeat", ...)`` sends its parameters as given, and a server may
    answer ``"ok"`` to anything. The session adopts (for its liveness limit and later
    connections) only an interval Deribit accepts: a negative one declared the connection dead
    on the next read, and every connection after it."""
    recorder = Recorder()
    with serving(answering()) as server:
        with open_session(
            Configuration(host=api_url(server), retries=0), recorder, heartbeat=None
        ) as ws_client:
            assert ws_client.call("public/set_heartbeat", {"interval": interval})["result"] == "ok"
            for _ in range(3):
                assert ws_client.call("public/test")["result"] == "ok"
            assert ws_client.heartbeat is None and ws_client.state is State.READY
            assert recorder.of(Disconnected) == []
    assert "the session keeps its heartbeat" in caplog.text
