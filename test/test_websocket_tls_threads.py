"""One TLS connection is never used from two threads at once (issue 17).

OpenSSL does not support one connection (``SSL`` object) read in one thread while another writes
on it; ``websockets``' own threaded client does exactly that, and lost a handshake request to it
(TLS 1.3 session tickets read mid-write). The session's transport runs every operation on the TLS
object under one lock. Here eight threads call as fast as they can over ``wss://`` while
notifications and heartbeats stream in, and every operation on the client's TLS socket checks
that no other was in progress (the TLS context builds sockets of a checking class, through the
documented ``SSLContext.sslsocket_class``).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest
import trustme
from test_websocket_support import Recorder, session, token_configuration, wait_until

from openapi_client.simulator import DeribitSimulator
from openapi_client.websocket import Disconnected, HeartbeatAnswered, tls

pytestmark = [pytest.mark.timeout(60), pytest.mark.timing]

THREADS = 8
CALLS = 150
NOTICES = 400


class CheckedSocket(ssl.SSLSocket):
    """Counts operations on the TLS object that overlapped one in progress in another thread
    (``sendall`` calls ``send``: one thread nesting is no overlap)."""

    guard = threading.Lock()
    users: ClassVar[dict[int, int]] = {}
    overlaps = 0
    operations = 0

    def _using(self, operation: Any, *args: Any) -> Any:
        cls = type(self)
        me = threading.get_ident()
        with cls.guard:
            cls.operations += 1
            if any(count for user, count in cls.users.items() if user != me):
                cls.overlaps += 1
            cls.users[me] = cls.users.get(me, 0) + 1
        try:
            return operation(*args)
        finally:
            with cls.guard:
                cls.users[me] -= 1

    def recv(self, *args: Any) -> bytes:
        return self._using(super().recv, *args)  # type: ignore[no-any-return]

    def send(self, *args: Any) -> int:
        return self._using(super().send, *args)  # type: ignore[no-any-return]

    def sendall(self, *args: Any) -> None:
        self._using(super().sendall, *args)

    def pending(self) -> int:
        return self._using(super().pending)  # type: ignore[no-any-return]


@pytest.fixture
def checked_tls(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[CheckedSocket]]:
    """The session's TLS context makes :class:`CheckedSocket` sockets."""
    built = tls.ssl_context

    def checked(configuration: Any) -> ssl.SSLContext:
        context = built(configuration)
        context.sslsocket_class = CheckedSocket
        return context

    monkeypatch.setattr(tls, "ssl_context", checked)
    CheckedSocket.users = {}
    CheckedSocket.overlaps = CheckedSocket.operations = 0
    yield CheckedSocket


def test_no_two_threads_use_one_tls_connection_at_once(
    checked_tls: type[CheckedSocket], tmp_path: Any
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    recorder = Recorder()
    notices: list[Any] = []
    # A test_request every 0.1 s (and 0.1 s to answer it): the reader writes too.
    with DeribitSimulator(ssl_context=server_context, time_scale=0.01) as sim:
        configuration = token_configuration(sim, ssl_ca_cert=str(ca_file))
        with session(configuration, recorder, heartbeat=10) as ws_client:
            assert ws_client.url.startswith("wss://")
            ws_client.subscribe("platform_state", lambda channel, data: notices.append(data))
            stop = threading.Event()

            def stream() -> None:
                for index in range(NOTICES):
                    if stop.is_set():
                        return
                    sim.publish_platform_state({"index": index})

            def hammer(index: int) -> list[bool]:
                return [
                    ws_client.call("public/test")["result"]["version"] != ""
                    for _ in range(CALLS)
                ]

            streamer = threading.Thread(target=stream)
            streamer.start()
            try:
                with ThreadPoolExecutor(THREADS) as pool:
                    results = [ok for oks in pool.map(hammer, range(THREADS)) for ok in oks]
            finally:
                stop.set()
                streamer.join(10)
            assert results == [True] * (THREADS * CALLS)
            wait_until(lambda: recorder.of(HeartbeatAnswered), "a heartbeat answered")
            wait_until(lambda: notices, "the notices")
            assert recorder.of(Disconnected) == []
            assert len(sim.ws_connections) == 1
    assert checked_tls.operations > THREADS * CALLS  # every write and read went through it
    assert checked_tls.overlaps == 0
