"""The asyncio session's own connection (``openapi_client.aio.connection``): ``websockets``'
sans-I/O protocol over an asyncio protocol of the library's, against hand-written servers on
loopback. What the behaviour tests run on both drivers do not reach: flow control against a server
that floods and reads nothing, keepalive pings, fragmented and binary messages, and the session's
own ``CONNECT`` tunnel meeting broken proxy answers on every route.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import ssl
import threading
import time
from typing import Any

import pytest
import trustme
from test_aio_client import TLS_IN_TLS, open_through
from test_websocket_hostile_server import (
    BINARY,
    PING,
    PONG,
    TEXT,
    WsPeer,
    answering,
    api_url,
    frame,
    ok,
    serving,
)
from test_websocket_proxy import (
    ANSWERS,
    ORIGIN_NAME,
    ROUTES,
    Pki,
    Route,
    TunnelProxy,
    assert_no_proxy_secret,
    configuration_through,
    dribble,
    origin,
    pki,
    routed,
    with_credentials,
)
from test_websocket_support import SOON

from openapi_client import ApiConnectionError, ApiSSLError, ApiTimeoutError, Configuration, aio
from openapi_client.simulator import DeribitSimulator
from openapi_client.websocket import Disconnected, State

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio]

__all__ = ["pki"]  # a fixture, shared with the proxy tests

#: A continuation frame's opcode.
CONT = 0x0
#: Bytes of pings the flooding server sends: their pongs would be about as many.
FLOOD = 4 << 20


def session_ready(ws: WsPeer) -> bool:
    """Accept, and answer ``public/hello``: all a session without credentials sends before it
    is ready (then the script does what its test needs); False when the client went away."""
    if not ws.accept():
        return False
    for request in ws.requests():
        return ws.send(ok(request))
    return False


def connection_of(ws: aio.WebSocketApiClient) -> Any:
    """The session's open connection (its asyncio transport is ``_transport``)."""
    (connection,) = ws._session._connections.values()
    return connection


async def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + SOON
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {SOON} s")
        await asyncio.sleep(0.005)


async def test_a_server_flooding_pings_and_reading_nothing_pauses_reading() -> None:
    """Each ping read makes a pong to write. A server that floods pings and reads nothing
    would make them pile up in the client's write buffer; the connection stops reading once
    that buffer passes its high-water mark, and reads on when the server takes the pongs."""
    drain = threading.Event()
    flooded = threading.Event()

    def script(ws: WsPeer) -> None:
        sock = ws.peer.sock
        if not session_ready(ws):
            return
        ping = frame(PING, b"p" * 125)
        count = FLOOD // len(ping)
        flood = memoryview(ping * count)
        pongs = count * (len(ping) + 4)  # the client's frames are masked: 4 bytes more each
        sock.setblocking(False)
        deadline = time.monotonic() + 3 * SOON
        while (flood or pongs) and time.monotonic() < deadline:
            if ws.server.stopping.is_set():
                return
            wanted = [sock] if drain.is_set() else []
            readable, writable, _ = select.select(wanted, [sock] if flood else [], [], 0.05)
            if readable:
                try:
                    pongs -= len(sock.recv(min(pongs, 1 << 20)))  # thrown away
                except BlockingIOError:
                    pass
            if writable:
                try:
                    flood = flood[sock.send(flood) :]
                except BlockingIOError:
                    pass
        flooded.set()
        for request in ws.requests():
            ws.send(ok(request))

    with serving(script) as server:
        configuration = Configuration(host=api_url(server), retries=0)
        async with aio.WebSocketApiClient(configuration, heartbeat=None) as ws:
            connection = connection_of(ws)
            transport = connection._transport
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the kernel holds little
            seen = {"largest": 0, "paused": False}

            async def watch() -> None:
                while True:
                    seen["largest"] = max(seen["largest"], transport.get_write_buffer_size())
                    seen["paused"] = seen["paused"] or not transport.is_reading()
                    await asyncio.sleep(0.002)

            watcher = asyncio.ensure_future(watch())
            try:
                await wait_for(lambda: seen["paused"], "reading paused")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)  # small made slow
                drain.set()
                await wait_for(flooded.is_set, "the whole flood read")
                assert (await ws.call("public/test"))["result"] == "ok"
            finally:
                watcher.cancel()
            assert transport.is_reading() and not connection.writing_paused
            assert ws.state is State.READY
    assert seen["largest"] < 1 << 20, seen  # about 4 MiB of pongs without flow control


@pytest.mark.timing
@pytest.mark.parametrize("answered", [True, False], ids=["answered", "unanswered"])
async def test_keepalive_pings(answered: bool) -> None:
    """A ping every 0.1 s, each answered within 0.1 s or the connection ends (1011); the next
    ping goes only once the last one's pong came."""
    pings: list[bytes] = []
    lost: list[Disconnected] = []

    def script(ws: WsPeer) -> None:
        if not session_ready(ws):
            return
        for opcode, payload in iter(ws.read_frame, None):  # type: ignore[misc]
            if opcode == PING:
                pings.append(payload)
                if answered:
                    ws.peer.send(frame(PONG, payload))

    def on_event(event: Any) -> None:
        if isinstance(event, Disconnected):
            lost.append(event)

    with serving(script) as server:
        configuration = Configuration(host=api_url(server), retries=0)
        async with aio.WebSocketApiClient(
            configuration,
            heartbeat=None,
            keepalive_ping=0.1,
            close_timeout=0.2,
            max_reconnects=0,
            on_event=on_event,
        ) as ws:
            if answered:
                await wait_for(lambda: len(pings) >= 3, "three keepalive pings")
                assert ws.state is State.READY
                assert len(set(pings)) == len(pings)  # each ping its own payload
            else:
                await wait_for(lambda: lost, "the connection to end")
                assert lost[0].code == 1011 and "keepalive ping timeout" in lost[0].reason
                assert len(pings) == 1


async def test_fragmented_and_binary_messages() -> None:
    """A text answer in three fragments, and one in a binary frame, reach their callers."""

    def script(ws: WsPeer) -> None:
        if not ws.accept():
            return
        for request in ws.requests():
            method = request["method"]
            if method == "public/fragmented":
                data = json.dumps(ok(request, "é" * 100)).encode()
                parts = data[:10], data[10:60], data[60:]
                ws.peer.send(
                    frame(TEXT, parts[0], fin=False)
                    + frame(CONT, parts[1], fin=False)
                    + frame(CONT, parts[2])
                )
            elif method == "public/binary":
                ws.peer.send(frame(BINARY, json.dumps(ok(request, "bytes")).encode()))
            else:
                ws.send(ok(request))

    with serving(script) as server:
        configuration = Configuration(host=api_url(server), retries=0)
        async with aio.WebSocketApiClient(configuration, heartbeat=None) as ws:
            assert (await ws.call("public/fragmented"))["result"] == "é" * 100
            assert (await ws.call("public/binary"))["result"] == "bytes"
            assert (await ws.call("public/test"))["result"] == "ok"


@pytest.mark.parametrize("answer_id", sorted(ANSWERS))
@pytest.mark.parametrize(
    "route_id",
    [
        "ws-via-http",
        pytest.param("wss-via-https", marks=TLS_IN_TLS),
    ],
)
async def test_a_broken_proxy_answer_is_refused_clearly(
    route_id: str, answer_id: str, pki: Pki
) -> None:
    """The session reads the proxy's answer itself on every route, TLS inside TLS included:
    the same refusals, in the same words, as the threaded session's."""
    answer, kind, says = ANSWERS[answer_id]
    with routed(ROUTES[route_id], pki, answer) as (sim, proxy):
        configuration = configuration_through(with_credentials(proxy.url), pki, sim)
        started = time.monotonic()
        with pytest.raises(kind) as refused:
            async with aio.WebSocketApiClient(configuration, heartbeat=None):
                pass
    assert time.monotonic() - started < SOON
    text = str(refused.value)
    assert f"the proxy {proxy.url.split('://')[1]}" in text and says in text, text
    assert_no_proxy_secret(refused.value)


@pytest.fixture(scope="module")
def untrusted_tls() -> ssl.SSLContext:
    """A proxy's TLS with a certificate for 127.0.0.1 from a CA the tests' configuration does
    not trust."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.mark.parametrize("secure", [False, pytest.param(True, marks=TLS_IN_TLS)], ids=["ws", "wss"])
async def test_the_https_proxy_certificate_is_checked(
    secure: bool, pki: Pki, untrusted_tls: ssl.SSLContext
) -> None:
    """Nothing is said to a proxy whose certificate the configuration does not trust."""
    with origin(pki, secure) as sim:
        proxy = TunnelProxy(tls=untrusted_tls, names={ORIGIN_NAME: sim.host})
        with proxy.server, pytest.raises(ApiSSLError, match="certificate"):
            await open_through(configuration_through(proxy.url, pki, sim))
    assert proxy.heads == []


@pytest.mark.parametrize(
    "proxy_scheme",
    ["http", pytest.param("https", marks=TLS_IN_TLS)],
)
async def test_the_origin_certificate_is_checked_for_the_origin_name(
    proxy_scheme: str, pki: Pki
) -> None:
    """Through the tunnel the origin's certificate is checked against the origin's name, not
    the proxy's: one naming only the proxy's address is refused."""
    with routed(Route(True, proxy_scheme == "https"), pki, names=("127.0.0.1",)) as (sim, proxy):
        with pytest.raises(ApiSSLError) as refused:
            await open_through(configuration_through(proxy.url, pki, sim))
    assert f"{ORIGIN_NAME}:{sim.port}" in str(refused.value)
    assert len(proxy.heads) == 1


async def test_an_unreachable_proxy_is_named(pki: Pki) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    with origin(pki, False) as sim, pytest.raises(ApiConnectionError) as refused:
        await open_through(
            configuration_through(with_credentials(f"http://127.0.0.1:{port}"), pki, sim)
        )
    text = str(refused.value)
    assert f"the proxy 127.0.0.1:{port} refused the connection" in text, text
    assert_no_proxy_secret(refused.value)


@pytest.mark.timing
async def test_a_proxy_answer_that_never_ends_is_bounded_by_the_open_timeout(pki: Pki) -> None:
    endless = dribble(b"HTTP/1.1 200 Connection established\r\nX-Slow: " + b"a" * 2000, 0.05)
    with routed(ROUTES["ws-via-https"], pki, endless) as (sim, proxy):
        configuration = configuration_through(proxy.url, pki, sim)
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError, match="timed out after 1 s"):
            async with aio.WebSocketApiClient(configuration, heartbeat=None, open_timeout=1.0):
                pass
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 8.0, elapsed  # the 1 s open timeout, not the dribble's 100 s


@pytest.mark.timing
async def test_a_call_waits_for_room_at_most_the_write_timeout() -> None:
    """A server that reads nothing: once the transport's buffer is full, a call's message waits
    for room, and after the write timeout (the open timeout, 1 s) the connection is cut and the
    calls fail, rather than waiting for ever (their own timeout only starts once sent)."""
    held = threading.Event()

    def script(ws: WsPeer) -> None:
        if not session_ready(ws):
            return
        held.set()
        ws.hold()

    lost: list[Disconnected] = []
    with serving(script) as server:
        configuration = Configuration(host=api_url(server), retries=0, request_timeout=(30, 30))
        async with aio.WebSocketApiClient(
            configuration,
            heartbeat=None,
            keepalive_ping=None,
            open_timeout=1.0,
            max_reconnects=0,
            on_event=lambda event: lost.append(event) if isinstance(event, Disconnected) else None,
        ) as ws:
            await wait_for(held.is_set, "the server to stop reading")
            connection = connection_of(ws)
            sock = connection._transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            blob = "x" * (30 << 10)  # under the 32 KiB Deribit takes
            calls = [
                asyncio.ensure_future(ws.call("public/test", {"blob": blob})) for _ in range(8)
            ]
            await wait_for(lambda: connection.writing_paused, "the write buffer to fill")
            started = time.monotonic()
            outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), SOON)
            assert time.monotonic() - started < SOON
            assert all(isinstance(outcome, ApiConnectionError) for outcome in outcomes), outcomes
            await wait_for(lambda: lost, "Disconnected")


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_compression_is_offered_only_when_asked(compression: str | None) -> None:
    """``compression="deflate"`` offers permessage-deflate in the handshake (the simulator
    accepts it and the session runs compressed); by default nothing is offered."""
    with serving(answering()) as server:
        configuration = Configuration(host=api_url(server), retries=0)
        async with aio.WebSocketApiClient(
            configuration, heartbeat=None, compression=compression
        ) as ws:
            assert (await ws.call("public/test"))["result"] == "ok"
        (head,) = server.requests
    assert (b"permessage-deflate" in head) is (compression == "deflate")
    if compression is not None:
        with DeribitSimulator() as sim:
            configuration = Configuration(host=sim.url, retries=0)
            async with aio.WebSocketApiClient(
                configuration, heartbeat=None, compression=compression
            ) as ws:
                assert (await ws.call("public/test"))["result"]["version"]
