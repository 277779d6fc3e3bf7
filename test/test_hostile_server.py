"""A hostile HTTP server for the test_hostile_* suites: raw sockets on 127.0.0.1, no simulator.

Each accepted connection is handed to a script, ``script(peer)``, which reads requests and writes
whatever bytes it likes: a status line no client should accept, a body one byte at a time, a
Content-Length in the petabytes. The server records every request it reads and every connection
it accepts, and stops cleanly (listener and connections closed, threads joined) at the end.

The tests here check the server itself, so that a hostile test that passes cannot pass because
its server was broken.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import pytest

from openapi_client import ApiClient, Configuration, RetryPolicy, SessionManagementApi

HOST = "127.0.0.1"
TOKEN = "hostile-token-5e55e55e"

#: Both request paths of the HTTP transport; every behaviour test runs through each.
PATHS = ("direct", "urllib3")

OK_BODY = b'{"jsonrpc": "2.0", "result": "ok", "usIn": 1, "usOut": 2, "usDiff": 1}'


class Peer:
    """One accepted connection, as a script sees it."""

    def __init__(self, server: HostileServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.buffer = b""

    def read_request(self, timeout: float = 5.0) -> bytes | None:
        """The next request's head (request line and headers), or None when the client closed."""
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.server.record(head)
        return head

    def send(self, data: bytes) -> bool:
        """Write ``data``; False when the client has gone."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def dribble(self, data: bytes, every: float) -> bool:
        """Write ``data`` one byte at a time, ``every`` seconds apart, until the client goes."""
        for index in range(len(data)):
            if not self.send(data[index : index + 1]):
                return False
            if self.server.stopping.wait(every):
                return False
        return True

    def hold(self) -> None:
        """Say nothing until the client closes the connection (or the server stops)."""
        self.sock.settimeout(0.05)
        while not self.server.stopping.is_set():
            try:
                if not self.sock.recv(65536):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def start_tls(self, context: ssl.SSLContext, timeout: float = 5.0) -> None:
        """Speak TLS from here on (the server's side of the handshake, within ``timeout``
        seconds); the server's stop shuts the TLS socket down like any other."""
        self.sock.settimeout(timeout)
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self.server.adopt(self.sock)

    def reset(self) -> None:
        """Close with a TCP reset (RST) instead of an orderly close."""
        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        self.sock.close()


Script = Callable[[Peer], None]


class HostileServer:
    """A loopback server running ``script`` for every connection (see the module docstring)."""

    def __init__(
        self, script: Script, tls: ssl.SSLContext | None = None, host: str = HOST
    ) -> None:
        self.script = script
        self.tls = tls
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, 0), family=family)
        self.port: int = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[bytes] = []
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self._peers: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{HOST}:{self.port}/api/v2"

    def record(self, head: bytes) -> None:
        with self.lock:
            self.requests.append(head)

    def targets(self) -> list[str]:
        """The request targets received, in order."""
        return [head.split(b" ")[1].decode() for head in self.requests]

    def adopt(self, sock: socket.socket) -> None:
        """Shut ``sock`` down too when the server stops (a socket a script made, e.g. by TLS)."""
        with self.lock:
            self._peers.append(sock)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()  # woken by stop()'s shutdown of the listener
            except OSError:
                continue
            with self.lock:
                self.connections += 1
                self.open_now += 1
                self.most_open = max(self.most_open, self.open_now)
                self._peers.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        peer = Peer(self, sock)
        try:
            self.script(peer)
        except OSError:
            pass
        finally:
            with self.lock:
                self.open_now -= 1
            for used in (peer.sock, sock):  # a TLS socket the script started, then the TCP one
                try:
                    used.close()
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopping.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:  # pragma: no cover - platforms where a listener cannot be shut down
            pass
        self._acceptor.join(5)
        self.listener.close()
        with self.lock:
            peers = list(self._peers)
        for sock in peers:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


# -- answers ------------------------------------------------------------------------------------


def response(
    body: bytes = OK_BODY,
    status: str = "200 OK",
    headers: Sequence[tuple[str, str]] = (("Content-Type", "application/json"),),
    length: bool = True,
) -> bytes:
    """An HTTP/1.1 answer (with a Content-Length unless ``length`` is false)."""
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers)]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def rpc_error(code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return json.dumps({"jsonrpc": "2.0", "error": error}).encode()


def serve_each(answer: Callable[[bytes], bytes | None]) -> Script:
    """A script answering every request on the connection with ``answer(head)`` (None: close)."""

    def script(peer: Peer) -> None:
        while True:
            head = peer.read_request()
            if head is None:
                return
            data = answer(head)
            if data is None or not peer.send(data):
                return

    return script


def always(data: bytes) -> Script:
    return serve_each(lambda head: data)


# -- clients ------------------------------------------------------------------------------------

#: Retries as the default policy, with waits short enough for a test suite.
QUICK_RETRIES = RetryPolicy(total=3, backoff_factor=0.01, backoff_max=0.05)


def configuration_for(url: str, path: str, **settings: Any) -> Configuration:
    """A client configuration for ``url`` on one of the two request paths."""
    settings.setdefault("retries", 0)
    settings.setdefault("request_timeout", (2.0, 2.0))
    settings.setdefault("access_token", TOKEN)
    return Configuration(host=url, fast_path=path == "direct", **settings)


def api_for(url: str, path: str, **settings: Any) -> SessionManagementApi:
    return SessionManagementApi(ApiClient(configuration_for(url, path, **settings)))


@pytest.fixture(params=PATHS, name="path")
def path_fixture(request: pytest.FixtureRequest) -> str:
    """``direct`` (the client's own connections) or ``urllib3`` (PoolManager.urlopen).

    Other modules import it as ``path_fixture`` and ask for ``path``."""
    return str(request.param)


def serving(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[HostileServer]:
    with HostileServer(script, tls) as server:
        yield server


# -- the server's own checks --------------------------------------------------------------------


def test_server_answers_and_records_over_both_paths(path: str) -> None:
    with HostileServer(always(response())) as server:
        api = api_for(server.url, path)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        assert api.public_set_heartbeat_get(31)["result"] == "ok"
        api.api_client.close()
    assert server.targets() == [
        "/api/v2/public/set_heartbeat?interval=30",
        "/api/v2/public/set_heartbeat?interval=31",
    ]
    assert server.connections == 1  # kept alive on either path


def test_dribble_and_reset_do_what_they_say() -> None:
    received = b""

    def script(peer: Peer) -> None:
        peer.read_request()
        peer.dribble(b"abc", 0.05)
        peer.read_request()  # the client has it all: a reset now loses nothing unread
        peer.reset()

    with HostileServer(script) as server:
        with socket.create_connection((HOST, server.port), timeout=5) as client:
            started = time.monotonic()
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            while len(received) < 3:
                chunk = client.recv(10)
                assert chunk, f"closed after {received!r}"
                received += chunk
            elapsed = time.monotonic() - started
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with pytest.raises(ConnectionResetError):
                client.recv(10)
    assert received == b"abc"
    assert elapsed >= 0.1  # two pauses of 0.05 s between the bytes: it did arrive in pieces
