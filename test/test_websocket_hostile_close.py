"""The closing handshake in every order of arrival (issue 16, promise 3): a close frame that comes
in the same packet as the ``101`` is answered at once, one that comes with an answer after it,
and on a half-open connection ``close()`` keeps to its close timeout. Hand-written WebSocket
servers on loopback."""

from __future__ import annotations

import itertools
import time

import pytest
from test_websocket_hostile_server import (
    WsPeer,
    answering,
    api_url,
    close_frame,
    ok,
    serving,
    text_frame,
)
from test_websocket_support import (
    FAST_BACKOFF,
    SOON,
    Recorder,
    SessionOpener,
    wait_until,
)

from openapi_client import Configuration, RetryPolicy
from openapi_client.websocket import Disconnected, SessionRestored, State

pytestmark = pytest.mark.timeout(30)

#: Open the first connection again at once when it fails.
RETRY_AT_ONCE = RetryPolicy(total=2, backoff_factor=0.0, jitter=0.0)


@pytest.mark.timing
def test_a_close_frame_with_the_101_is_answered_at_once(open_session: SessionOpener) -> None:
    """The server's close frame comes in the same packet as the handshake's answer. The client
    echoes it at once (RFC 6455, 5.5.1) and opens the next connection; before, the frame was
    read with the handshake but never answered, and the client waited its close timeout plus
    a margin (here 5 + 1 s) before it moved on."""
    numbers = itertools.count(1)
    first: list[WsPeer] = []

    def script(ws: WsPeer) -> None:
        if next(numbers) == 1:
            first.append(ws)
            if ws.accept(after=close_frame(1001, "going away")):
                for _ in ws.requests(echo_close=False):
                    pass  # the client sends nothing before its echo
            return  # then the TCP connection closes, as a server does after the handshake
        answering()(ws)

    with serving(script) as server:
        started = time.monotonic()
        ws_client = open_session(
            suite_defaults=False,
            configuration=Configuration(host=api_url(server), retries=RETRY_AT_ONCE),
            heartbeat=None,
            close_timeout=5.0,
        )
        elapsed = time.monotonic() - started
        try:
            assert ws_client.call("public/test")["result"] == "ok"
        finally:
            ws_client.close()
    (ws,) = first
    assert ws.close_received is not None and ws.close_received[0] == 1001
    assert ws.close_received_at is not None and ws.close_received_at - started < 3.0
    assert elapsed < 3.0  # not the close timeout (5 s) and more
    assert server.connections == 2


def test_a_close_frame_behind_an_answer_in_one_packet(open_session: SessionOpener) -> None:
    """The answer goes to its caller, then the close is seen, echoed and reported."""
    recorder = Recorder()
    peers: list[WsPeer] = []

    def script(ws: WsPeer) -> None:
        peers.append(ws)
        if not ws.accept():
            return
        for request in ws.requests(echo_close=False):
            if request["method"] == "public/last":  # the answer and the close in one write
                ws.peer.send(text_frame(ok(request, "bye")) + close_frame(4000, "heartbeat close"))
            else:
                ws.send(ok(request))

    with serving(script) as server:
        with open_session(
            suite_defaults=False,
            configuration=Configuration(host=api_url(server), retries=0),
            heartbeat=None,
            max_reconnects=0,
            on_event=recorder,
        ) as ws_client:
            assert ws_client.call("public/last")["result"] == "bye"
            (lost,) = recorder.wait_for(Disconnected)
            wait_until(lambda: ws_client.state is State.FAILED, "the session to give up")
    assert (lost.code, "heartbeat close" in lost.reason) == (4000, True)
    assert peers[0].close_received is not None and peers[0].close_received[0] == 4000
    assert recorder.of(SessionRestored)[0].connection == 1


@pytest.mark.timing
def test_close_keeps_to_its_timeout_on_a_half_open_connection(open_session: SessionOpener) -> None:
    """After the session is restored the server reads nothing and answers nothing. ``close()``
    waits the close timeout for an answer to its close frame, then cuts the socket: 2 s, as
    documented; before, a reader already waiting on the socket kept it 1 s longer."""
    held: list[WsPeer] = []

    def script(ws: WsPeer) -> None:
        if not ws.accept():
            return
        for request in ws.requests():
            ws.send(ok(request))
            break  # public/hello answered: the session is ready
        held.append(ws)
        ws.hold()

    with serving(script) as server:
        ws_client = open_session(
            suite_defaults=False,
            configuration=Configuration(host=api_url(server), retries=0),
            heartbeat=None,
            reconnect_backoff=FAST_BACKOFF,
        )
        wait_until(lambda: held, "the server to stop answering")
        time.sleep(0.2)  # the connection's thread waits on the socket
        started = time.monotonic()
        ws_client.close()
        elapsed = time.monotonic() - started
        assert ws_client.state is State.CLOSED
    assert 2.0 <= elapsed < 2.8, elapsed
    assert elapsed < SOON
