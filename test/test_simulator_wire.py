"""The simulator's HTTP/1.1 reader and writer, driven with raw bytes over loopback sockets.

What a client sends that is not quite HTTP must get the answer a careful server gives (a status
that says what was wrong, then a close), and what is HTTP but unusual (folded or repeated header
lines, HTTP/1.0, request bodies, ``Expect: 100-continue``, pipelining during a delay) must be
served and recorded as sent.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from typing import BinaryIO

import pytest
from test_simulator import raw_exchange, read_until_closed

from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(15)

TEST = "/api/v2/public/test"


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator() as simulator:
        yield simulator


def connect(sim: DeribitSimulator, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((sim.host, sim.port), timeout=timeout)


def exchange(sim: DeribitSimulator, request: bytes) -> bytes:
    """Send ``request``, read until the server closes the connection."""
    return raw_exchange(sim, request, timeout=5.0)


def read_response(rfile: BinaryIO) -> tuple[str, dict[str, str], bytes]:
    """One response off a kept-alive connection: status line, headers (lower-case), body."""
    status_line = rfile.readline().decode("latin-1").rstrip("\r\n")
    assert status_line, "the connection closed before a response"
    headers = {}
    while True:
        line = rfile.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = rfile.read(int(headers.get("content-length", "0")))
    return status_line, headers, body


def status_and_body(answer: bytes) -> tuple[str, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), body


# -- malformed heads -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "reason"),
    [
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", "414 Request-URI Too Long", b"too long"),
        (b"GET / HTTP/2.0\r\n\r\n", "505 HTTP Version Not Supported", b"version HTTP/2.0"),
        (
            b"GET / HTTP/1.1\r\nX-Long: " + b"b" * 70_000 + b"\r\n\r\n",
            "431 Request Header Fields Too Large",
            b"header line too long",
        ),
        (
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n",
            "431 Request Header Fields Too Large",
            b"more than 100 header lines",
        ),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "400 Bad Request", b"malformed header line"),
        (b"GET / HTTP/1.1\r\n: nameless\r\n\r\n", "400 Bad Request", b"malformed header line"),
    ],
    ids=["long-request-line", "http2", "long-header", "101-headers", "no-colon", "no-name"],
)
def test_malformed_head_is_answered_with_its_status_then_closed(
    sim: DeribitSimulator, request_bytes: bytes, status: str, reason: bytes
) -> None:
    answer = exchange(sim, request_bytes)
    status_line, body = status_and_body(answer)
    assert status_line == f"HTTP/1.1 {status}"
    assert reason in body
    assert b"\r\nConnection: close\r\n" in answer
    assert sim.requests == []  # nothing reached the API


def test_head_cut_off_by_the_client_gets_400(sim: DeribitSimulator) -> None:
    with connect(sim) as sock:
        sock.sendall(b"GET /api/v2/public/test HTTP/1.1\r\nHost: x\r\n")
        sock.shutdown(socket.SHUT_WR)
        answer = read_until_closed(sock)
    status_line, body = status_and_body(answer)
    assert status_line == "HTTP/1.1 400 Bad Request"
    assert body == b"connection closed inside the request head\n"


def test_client_resetting_mid_head_leaves_nothing_behind(capfd: pytest.CaptureFixture[str]) -> None:
    with DeribitSimulator(max_connections=1) as sim:
        sock = connect(sim)
        sock.sendall(b"GET /api/v2/public/test HTTP/1.1\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a TCP reset while the server waits for the rest of the head
        # The only connection slot is free again, and nothing was printed.
        deadline = time.monotonic() + 5
        while True:
            status, _ = status_and_body(exchange(sim, get(TEST, close=True)))
            if status.startswith("HTTP/1.1 200"):
                break
            assert time.monotonic() < deadline, "the reset connection kept its slot"
            time.sleep(0.01)
    assert capfd.readouterr().err == ""


def get(target: str, *, close: bool = False, extra: str = "", version: str = "HTTP/1.1") -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return f"GET {target} {version}\r\nHost: x\r\n{connection}{extra}\r\n".encode()


# -- unusual but valid requests ------------------------------------------------------------------


def test_blank_lines_before_a_request_are_skipped(sim: DeribitSimulator) -> None:
    status, body = status_and_body(exchange(sim, b"\r\n\n\r\n" + get(TEST, close=True)))
    assert status == "HTTP/1.1 200 OK"
    assert "version" in json.loads(body)["result"]


def test_folded_and_repeated_header_lines_are_recorded_joined(sim: DeribitSimulator) -> None:
    extra = "X-Folded: first\r\n \t second part\r\nX-Twice: one\r\nX-Twice: two\r\n"
    status, _ = status_and_body(exchange(sim, get(TEST, close=True, extra=extra)))
    assert status == "HTTP/1.1 200 OK"
    (request,) = sim.requests
    assert request.headers["X-Folded"] == "first second part"
    assert request.header("x-twice") == "one, two"


def test_http_10_closes_unless_asked_to_keep_alive(sim: DeribitSimulator) -> None:
    answer = exchange(sim, get(TEST, version="HTTP/1.0"))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in answer

    with connect(sim) as sock, sock.makefile("rb") as rfile:
        for _ in range(2):
            sock.sendall(get(TEST, version="HTTP/1.0", extra="Connection: keep-alive\r\n"))
            status_line, headers, _ = read_response(rfile)
            assert status_line == "HTTP/1.1 200 OK" and "connection" not in headers
    first, second = sim.requests[1:]
    assert first.connection_id == second.connection_id


def test_request_body_is_read_and_the_connection_reused(sim: DeribitSimulator) -> None:
    with connect(sim) as sock, sock.makefile("rb") as rfile:
        sock.sendall(get(TEST, extra="Content-Length: 5\r\n") + b"hello" + get(TEST))
        assert read_response(rfile)[0] == "HTTP/1.1 200 OK"
        assert read_response(rfile)[0] == "HTTP/1.1 200 OK"
    assert [request.path for request in sim.requests] == [TEST, TEST]


def test_expect_100_continue_gets_an_interim_answer(sim: DeribitSimulator) -> None:
    with connect(sim) as sock:
        sock.sendall(get(TEST, close=True, extra="Content-Length: 3\r\nExpect: 100-continue\r\n"))
        interim = sock.recv(25)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abc")
        status, _ = status_and_body(read_until_closed(sock))
    assert status == "HTTP/1.1 200 OK"


@pytest.mark.parametrize("length", ["lots", "-1", str(2 << 20)])
def test_unreadable_or_huge_body_is_refused_with_413(sim: DeribitSimulator, length: str) -> None:
    answer = exchange(sim, get(TEST, extra=f"Content-Length: {length}\r\n"))
    status, body = status_and_body(answer)
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert body == b"request body too large or malformed\n"
    assert b"\r\nConnection: close\r\n" in answer
    assert len(sim.requests) == 1  # recorded, not answered by the API


def test_body_cut_short_gets_no_answer(sim: DeribitSimulator) -> None:
    with connect(sim) as sock:
        sock.sendall(get(TEST, extra="Content-Length: 10\r\n") + b"short")
        sock.shutdown(socket.SHUT_WR)
        assert read_until_closed(sock) == b""
    assert len(sim.requests) == 1


def test_chunked_request_is_answered_and_the_connection_closed(sim: DeribitSimulator) -> None:
    answer = exchange(sim, get(TEST, extra="Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n")
    status, _ = status_and_body(answer)
    assert status == "HTTP/1.1 200 OK"
    assert b"\r\nConnection: close\r\n" in answer


def test_a_chunked_post_is_refused_with_411_and_the_connection_closed(
    sim: DeribitSimulator,
) -> None:
    request = get(TEST, extra="Transfer-Encoding: chunked\r\n").replace(b"GET ", b"POST ", 1)
    answer = exchange(sim, request + b"2\r\n{}\r\n0\r\n\r\n")
    assert status_and_body(answer)[0] == "HTTP/1.1 411 Length Required"
    assert b"\r\nConnection: close\r\n" in answer
    assert sim.requests[-1].method == "POST"


# -- delays and hangs ------------------------------------------------------------------------


def test_request_pipelined_behind_a_delay_is_answered_after_it(sim: DeribitSimulator) -> None:
    sim.inject("delay", seconds=0.2, path="/public/test")
    started = time.monotonic()
    with connect(sim) as sock, sock.makefile("rb") as rfile:
        sock.sendall(get(TEST))
        time.sleep(0.05)  # the first request is being delayed when the second arrives
        sock.sendall(get("/api/v2/public/no_such_method", close=True))
        first = read_response(rfile)
        second = read_response(rfile)
        assert rfile.read() == b""  # then closed
    assert time.monotonic() - started >= 0.2
    assert first[0] == "HTTP/1.1 200 OK" and "version" in json.loads(first[2])["result"]
    assert second[0] == "HTTP/1.1 400 Bad Request"  # no such method
    assert json.loads(second[2])["error"]["code"] == -32601
    assert [request.path for request in sim.requests] == [TEST, "/api/v2/public/no_such_method"]


def test_hung_request_reset_by_the_client_frees_its_slot() -> None:
    with DeribitSimulator(max_connections=1) as sim:
        sim.inject("hang", seconds=30)
        sock = connect(sim)
        sock.sendall(get(TEST))
        deadline = time.monotonic() + 5
        while not sim.requests:
            assert time.monotonic() < deadline, "the request never arrived"
            time.sleep(0.01)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        while True:
            status, _ = status_and_body(exchange(sim, get(TEST, close=True)))
            if status == "HTTP/1.1 200 OK":
                break
            assert time.monotonic() < deadline, "the reset request kept its slot"
            time.sleep(0.01)
