"""Hostile WebSocket servers for the test_websocket_hostile_* suites: the accept loop of
``test_hostile_server.HostileServer``, with the WebSocket side written by hand here (the opening
handshake's answer, frames, their masks), so that a test decides every byte the client gets and
when: a close frame in the same packet as the ``101``, answers whose ``id`` is an object, close
reasons that echo a token.

Each connection runs a script, ``script(ws)``, on a :class:`WsPeer`. The tests at the end check the
server itself, so that a hostile test cannot pass because its server was broken.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, Union

import pytest
from test_hostile_server import HOST, HostileServer, Peer

from openapi_client import Configuration
from openapi_client.websocket import WebSocketApiClient

pytestmark = pytest.mark.timeout(30)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA

#: A message as a script writes it: a JSON value (encoded), or text or bytes sent as they are.
Message = Union[dict, list, str, bytes]


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A server frame (never masked), written byte by byte as RFC 6455 section 5.2 says."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([length])
    elif length < 1 << 16:
        head += bytes([126]) + struct.pack("!H", length)
    else:
        head += bytes([127]) + struct.pack("!Q", length)
    return head + payload


def text_frame(message: Message) -> bytes:
    if isinstance(message, bytes):
        return frame(TEXT, message)
    data = message if isinstance(message, str) else json.dumps(message)
    return frame(TEXT, data.encode())


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(CLOSE, struct.pack("!H", code) + reason.encode())


def ok(request: dict[str, Any], result: Any = "ok") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


class WsPeer:
    """One accepted WebSocket connection, as a script sees it."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.server = peer.server
        #: The close frame the client sent, as (code, reason), once read.
        self.close_received: tuple[int, str] | None = None
        #: When it was read (``time.monotonic()``).
        self.close_received_at: float | None = None

    def accept(self, after: bytes = b"") -> bool:
        """Read the opening handshake and answer ``101``, with ``after`` (frames) in the same
        write; False when the client went away first."""
        head = self.peer.read_request()
        if head is None:
            return False
        key = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        answer = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        return self.peer.send(answer + after)

    def send(self, *messages: Message) -> bool:
        """Write ``messages`` as text frames, in one write."""
        return self.peer.send(b"".join(text_frame(message) for message in messages))

    def close(self, code: int, reason: str = "") -> bool:
        return self.peer.send(close_frame(code, reason))

    def _read_exactly(self, count: int) -> bytes | None:
        peer = self.peer
        while len(peer.buffer) < count:
            try:
                chunk = peer.sock.recv(65536)
            except socket.timeout:
                if self.server.stopping.is_set():
                    return None
                continue
            except OSError:
                return None
            if not chunk:
                return None
            peer.buffer += chunk
        data, peer.buffer = peer.buffer[:count], peer.buffer[count:]
        return data

    def read_frame(self) -> tuple[int, bytes] | None:
        """The next frame from the client, unmasked, as (opcode, payload); None when the
        client closed the TCP connection (or the server stops)."""
        self.peer.sock.settimeout(0.05)
        head = self._read_exactly(2)
        if head is None:
            return None
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        masked = head[1] & 0x80
        if length == 126:
            extended = self._read_exactly(2)
            length = struct.unpack("!H", extended)[0] if extended else 0
        elif length == 127:
            extended = self._read_exactly(8)
            length = struct.unpack("!Q", extended)[0] if extended else 0
        mask = self._read_exactly(4) if masked else b"\0\0\0\0"
        payload = self._read_exactly(length) if length else b""
        if mask is None or payload is None:
            return None
        return opcode, bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))

    def requests(self, echo_close: bool = True) -> Iterator[dict[str, Any]]:
        """The client's requests, decoded; pings are answered on the way. Ends when the client
        closes: its close frame is recorded and echoed (unless ``echo_close`` is False)."""
        while True:
            read = self.read_frame()
            if read is None:
                return
            opcode, payload = read
            if opcode == PING:
                self.peer.send(frame(PONG, payload))
            elif opcode == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_received = (code, payload[2:].decode("utf-8", "replace"))
                self.close_received_at = time.monotonic()
                if echo_close:
                    self.peer.send(close_frame(code))
                return
            elif opcode == TEXT:
                yield json.loads(payload)

    def hold(self) -> None:
        """Read nothing more and answer nothing: a half-open connection, until the test ends."""
        self.server.stopping.wait()


Script = Callable[[WsPeer], None]

#: What a script answers: the messages to write for a request (None: the default answer).
Answers = Callable[[dict[str, Any]], Union[list[Message], None]]


def session_answers(request: dict[str, Any]) -> list[Message]:
    """What a Deribit-like server answers to the requests a session makes while it restores:
    a token for ``public/auth``, the setting for ``private/get_cancel_on_disconnect``, the
    channels for a subscription, ``"ok"`` for anything else."""
    method = request["method"]
    if method == "public/auth":
        result: Any = {
            "access_token": "hostile-access-5f0c2b7e91",
            "refresh_token": "hostile-refresh-8d1e44a3c6",
            "expires_in": 900,
            "scope": "session:openapi-client",
            "token_type": "bearer",
        }
    elif method == "private/get_cancel_on_disconnect":
        result = {"scope": "connection", "enabled": False}
    elif method.endswith("/subscribe"):
        result = request["params"]["channels"]
    else:
        result = "ok"
    return [ok(request, result)]


def answering(answers: Answers = session_answers, after: bytes = b"") -> Script:
    """A script that accepts (``after`` written with the ``101``) and answers every request
    with ``answers(request)``, falling back to :func:`session_answers`."""

    def script(ws: WsPeer) -> None:
        if not ws.accept(after):
            return
        for request in ws.requests():
            written = answers(request)
            if not ws.send(*(session_answers(request) if written is None else written)):
                return

    return script


def serving(script: Script) -> HostileServer:
    """A :class:`HostileServer` that runs ``script`` on each connection, as a :class:`WsPeer`."""
    return HostileServer(lambda peer: script(WsPeer(peer)))


def api_url(server: HostileServer) -> str:
    return f"http://{HOST}:{server.port}/api/v2"


# -- the server's own checks --------------------------------------------------------------------


def test_the_server_answers_a_session_and_echoes_its_close() -> None:
    peers: list[WsPeer] = []

    def echo(request: dict[str, Any]) -> list[Message] | None:
        if request["method"] == "public/echo":  # 16-bit lengths in, a 64-bit length out
            return [ok(request, request["params"]["text"] * 4)]
        return None

    def script(ws: WsPeer) -> None:
        peers.append(ws)
        answering(echo)(ws)

    with serving(script) as server:
        configuration = Configuration(
            host=api_url(server), client_id="hostile-id", client_secret="hostile-secret-77"
        )
        with WebSocketApiClient(configuration, heartbeat=None) as ws_client:
            assert ws_client.call("public/test")["result"] == "ok"
            text = "x" * 20_000
            assert ws_client.call("public/echo", {"text": text})["result"] == text * 4
        (ws,) = peers
        assert ws.close_received == (1000, "")
    assert server.connections == 1


def test_frames_are_written_as_rfc_6455_says() -> None:
    assert frame(TEXT, b"hi") == b"\x81\x02hi"
    assert frame(TEXT, b"a" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert frame(BINARY, b"a" * 70_000)[:10] == b"\x82\x7f" + struct.pack("!Q", 70_000)
    assert frame(TEXT, b"x", fin=False)[0] == 0x01
    assert close_frame(1001, "bye") == b"\x88\x05\x03\xe9bye"


def test_a_peer_reads_a_masked_frame() -> None:
    received: list[tuple[int, bytes] | None] = []
    done = threading.Event()

    def script(peer: Peer) -> None:
        received.append(WsPeer(peer).read_frame())
        done.set()

    with HostileServer(script) as server:
        with socket.create_connection((HOST, server.port), timeout=5) as client:
            mask = b"\x01\x02\x03\x04"
            payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(b"hello"))
            client.sendall(b"\x81\x85" + mask + payload)
            assert done.wait(5)
    assert received == [(TEXT, b"hello")]
