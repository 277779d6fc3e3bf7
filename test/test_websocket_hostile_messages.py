"""A message the session cannot route or parse is logged and dropped, and the connection stays up
(issue 16, promise 6): on Deribit, a dropped connection fires cancel-on-disconnect, so one bad
message must never cost the orders. Hand-written WebSocket servers on loopback."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from test_websocket_hostile_server import Message, WsPeer, answering, api_url, ok, serving
from test_websocket_support import (
    Recorder,
    SessionOpener,
)

from openapi_client import ApiProtocolError, Configuration
from openapi_client.websocket import Disconnected, State
from openapi_client.websocket.core.routing import Router

pytestmark = pytest.mark.timeout(30)

#: Messages no client can route, each with what the log line about it says.
UNROUTABLE: list[tuple[str, str]] = [
    ('{"jsonrpc": "2.0", "id": {"a": 1}, "result": "?"}', "is not one the client gives"),
    ('{"jsonrpc": "2.0", "id": [2], "result": "?"}', "is not one the client gives"),
    ('{"jsonrpc": "2.0", "id": 2.0, "result": "?"}', "is not one the client gives"),
    ('{"jsonrpc": "2.0", "id": true, "result": "?"}', "is not one the client gives"),
    ('{"jsonrpc": "2.0", "id": "2", "result": "?"}', "is not one the client gives"),
    ('{"jsonrpc": "2.0", "id": ' + "9" * 400 + ', "result": "?"}', "came after its caller"),
    ('{"jsonrpc": "2.0", "id": -1, "result": "?", "error": {"code": 1}}', "both a result"),
    ("[1, 2]", "not an object"),
    ('"a string"', "not an object"),
    ("null", "not an object"),
    ("not json at all", "not JSON"),
    ("[" * 100_000, "not JSON"),  # deeper than Python's parser goes
    ('{"jsonrpc": "2.0", "method": "mystery", "params": {}}', "ignored a message"),
    ('{"jsonrpc": "2.0", "method": "subscription", "params": [1]}', "ignored a message"),
    ('{"jsonrpc": "2.0", "method": "heartbeat", "params": "test_request"}', ""),
    ('{"jsonrpc": "2.0", "error": {"code": 11050, "message": "bad_request"}}', "outside any"),
]


def one_connection(open_session: SessionOpener, server: Any, recorder: Recorder) -> Any:
    """A session on ``server`` that never reconnects, without heartbeats."""
    configuration = Configuration(host=api_url(server), retries=0)
    return open_session(
        configuration, recorder, suite_defaults=False, heartbeat=None, max_reconnects=0
    )


def noisy(request: dict[str, Any]) -> list[Message] | None:
    if request["method"] == "public/noise":
        return [text for text, _ in UNROUTABLE] + [ok(request)]
    if request["method"] == "public/ambiguous":
        both = {**ok(request), "error": {"code": 10000, "message": "maybe"}}
        return [both]
    return None


def test_unroutable_messages_are_logged_and_dropped_and_the_connection_stays(
    caplog: pytest.LogCaptureFixture, open_session: SessionOpener
) -> None:
    """Before, an ``id`` that is an object raised ``TypeError`` in the reader, which dropped
    the connection ("the reader failed"); a JSON document nested too deeply did the same."""
    recorder = Recorder()
    caplog.set_level(logging.DEBUG, logger="openapi_client.websocket")
    with serving(answering(noisy)) as server:
        with one_connection(open_session, server, recorder) as ws_client:
            assert ws_client.call("public/noise")["result"] == "ok"
            assert ws_client.call("public/test")["result"] == "ok"
            assert ws_client.state is State.READY
            assert recorder.of(Disconnected) == []
    assert server.connections == 1
    text = caplog.text
    for _, says in UNROUTABLE:
        assert says in text
    assert "9" * 50 not in text  # what a server sent is shortened in a log line
    assert "reader failed" not in text


def test_an_answer_with_both_a_result_and_an_error_fails_its_call_only(
    open_session: SessionOpener,
) -> None:
    """The outcome of that call is unknown: its caller gets a protocol error at once (not a
    timeout), and the connection goes on."""
    recorder = Recorder()
    with serving(answering(noisy)) as server:
        with one_connection(open_session, server, recorder) as ws_client:
            with pytest.raises(ApiProtocolError, match="both a result and an error"):
                ws_client.call("public/ambiguous", timeout=30)
            assert ws_client.call("public/test")["result"] == "ok"
            assert recorder.of(Disconnected) == []
    assert server.connections == 1


def test_a_message_whose_handling_fails_is_dropped_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, open_session: SessionOpener
) -> None:
    """A fault while one notification is handled (here the session's handler raises) costs
    that notification, not the connection."""
    original = Router._subscription

    def faulty(self: Router, params: Any) -> None:
        if params.get("channel") == "explodes":
            raise RuntimeError("injected fault")
        original(self, params)

    monkeypatch.setattr(Router, "_subscription", faulty)
    received: list[Any] = []

    def notifications(request: dict[str, Any]) -> list[Message] | None:
        if request["method"] == "public/notify":
            return [
                {
                    "jsonrpc": "2.0",
                    "method": "subscription",
                    "params": {"channel": name, "data": name},
                }
                for name in ("explodes", "platform_state")
            ] + [ok(request)]
        return None

    def script(ws: WsPeer) -> None:
        answering(notifications)(ws)

    recorder = Recorder()
    with serving(script) as server:
        with one_connection(open_session, server, recorder) as ws_client:
            ws_client.subscribe("platform_state", lambda channel, data: received.append(data))
            assert ws_client.call("public/notify")["result"] == "ok"
            assert ws_client.call("public/test")["result"] == "ok"
            assert recorder.of(Disconnected) == []
    assert "could not be handled; it was dropped" in caplog.text
    assert "injected fault" in caplog.text
    assert received == ["platform_state"]
    assert server.connections == 1
