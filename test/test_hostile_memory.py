"""Promise 2: a response larger than ``max_response_size`` is refused while it is being read, and
no declared length or chunk size makes the client allocate what the server only claims.

The memory a call takes is measured from outside: a client in a child process calls a server here
that sends far more than the cap, and this process reads the child's peak resident set size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_hostile_server import (
    OK_BODY,
    HostileServer,
    Peer,
    always,
    api_for,
    path_fixture,  # noqa: F401 - the `path` fixture
    response,
)

from openapi_client import ApiException, Configuration
from openapi_client.configuration import DEFAULT_MAX_RESPONSE_SIZE
from openapi_client.exceptions import ApiProtocolError, ApiResponseTooLargeError

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def endless(head: bytes) -> Any:
    """A script sending ``head`` and then body bytes until the client goes away."""
    block = b"x" * 65536

    def script(peer: Peer) -> None:
        peer.read_request()
        if not peer.send(head):
            return
        while peer.send(block):
            pass

    return script


def refused(api: Any, **options: Any) -> ApiResponseTooLargeError:
    started = time.monotonic()
    with pytest.raises(ApiResponseTooLargeError) as caught:
        result = api.public_set_heartbeat_get(30, **options)
        if options.get("_preload_content") is False:
            result.read()
    assert time.monotonic() - started < 5.0
    return caught.value


def test_default_cap_is_a_few_mib() -> None:
    assert Configuration().max_response_size == DEFAULT_MAX_RESPONSE_SIZE == 8 * MIB


@pytest.mark.parametrize("length", [10**15, 10**18 - 1, 2 * MIB])
def test_declared_length_beyond_the_cap_is_refused_before_reading(length: int, path: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length
    with HostileServer(endless(head)) as server:
        api = api_for(server.url, path, max_response_size=MIB)
        error = refused(api)
        api.api_client.close()
    assert error.status == 200
    assert f"declares {length} bytes" in str(error)
    assert f"max_response_size ({MIB} bytes)" in str(error)


def test_overlong_declared_length_is_a_protocol_error(path: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 400 + b"\r\n\r\n"
    with HostileServer(always(head)) as server:
        api = api_for(server.url, path)
        with pytest.raises(ApiProtocolError) as caught:
            api.public_set_heartbeat_get(30)
        api.api_client.close()
    assert caught.value.status == 0


@pytest.mark.parametrize("size", [b"ffffffffffffffff", b"7fffffff", b"100001"])
def test_claimed_chunk_size_beyond_the_cap_is_refused(size: bytes, path: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\n"
    with HostileServer(endless(head)) as server:
        api = api_for(server.url, path, max_response_size=MIB)
        started = time.monotonic()
        with pytest.raises(ApiException) as caught:
            api.public_set_heartbeat_get(30)
        assert time.monotonic() - started < 5.0
        api.api_client.close()
    if path == "direct":  # it reads chunk sizes itself, and refuses the claim at once
        assert isinstance(caught.value, ApiResponseTooLargeError)
    # urllib3's path reads at most the cap before refusing, or stops at the broken framing.


@pytest.mark.parametrize("framing", ["until-close", "chunked", "lying-length"])
def test_body_beyond_the_cap_is_refused_while_reading(framing: str, path: str) -> None:
    if framing == "until-close":
        head = b"HTTP/1.1 200 OK\r\n\r\n"
    elif framing == "chunked":
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    else:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"

    def chunked(peer: Peer) -> None:
        peer.read_request()
        peer.send(head)
        block = b"10000\r\n" + b"x" * 65536 + b"\r\n"
        while peer.send(block):
            pass

    script = chunked if framing == "chunked" else endless(head)
    with HostileServer(script) as server:
        api = api_for(server.url, path, max_response_size=MIB)
        if framing == "lying-length":
            # 1000 bytes are read, the rest is beyond the answer: the connection is dropped.
            with pytest.raises(ApiException):
                api.public_set_heartbeat_get(30)
        else:
            error = refused(api)
            assert "is larger" in str(error)
        api.api_client.close()


def test_streamed_body_is_held_to_the_cap(path: str) -> None:
    with HostileServer(endless(b"HTTP/1.1 200 OK\r\n\r\n")) as server:
        api = api_for(server.url, path, max_response_size=MIB)
        unread = api.public_set_heartbeat_get(30, _preload_content=False)
        total = 0
        with pytest.raises(ApiResponseTooLargeError):
            for piece in unread.stream(65536):
                total += len(piece)
        assert MIB - 65536 <= total <= MIB
        assert unread.closed
        api.api_client.close()


def test_answer_exactly_at_the_cap_is_accepted(path: str) -> None:
    body = OK_BODY + b" " * (4096 - len(OK_BODY))
    with HostileServer(always(response(body))) as server:
        api = api_for(server.url, path, max_response_size=4096)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()


# -- measured from outside -----------------------------------------------------------------------

CHILD = r"""
import sys
from openapi_client import ApiClient, Configuration, SessionManagementApi
from openapi_client.exceptions import ApiResponseTooLargeError

url, path = sys.argv[1], sys.argv[2]
configuration = Configuration(host=url, fast_path=path == "direct", retries=0,
                              request_timeout=(5, 5))
api = SessionManagementApi(ApiClient(configuration))
api.public_disable_heartbeat_get()  # everything imported and warmed up
print("baseline", flush=True)
sys.stdin.readline()
try:
    api.public_set_heartbeat_get(30)
except ApiResponseTooLargeError as error:
    print("refused", flush=True)
else:
    print("accepted", flush=True)
sys.stdin.readline()
"""


def peak_rss(pid: int) -> int:
    """The peak resident set size of process ``pid``, in bytes (Linux's VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_huge_body_costs_no_more_memory_than_the_cap(path: str) -> None:
    """The server declares 500 MB and sends bytes until the client hangs up; the client's
    peak memory grows by a small multiple of the 8 MiB cap, not by hundreds of megabytes."""
    declared = 500 * 1000 * 1000
    first = [True]

    def script(peer: Peer) -> None:
        while True:
            head = peer.read_request()
            if head is None:
                return
            if b"disable_heartbeat" in head:
                peer.send(response())
                continue
            # Claims a length within no cap, sends it in pieces: read while it arrives.
            peer.send(b"HTTP/1.1 200 OK\r\n\r\n")
            block = b"y" * 262144
            for _ in range(declared // len(block)):
                if not peer.send(block):
                    return
            first[0] = False
            return

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    with HostileServer(script) as server:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, server.url, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline().strip() == "baseline"
            before = peak_rss(child.pid)
            child.stdin.write("\n")
            child.stdin.flush()
            outcome = child.stdout.readline().strip()
            after = peak_rss(child.pid)
            child.stdin.write("\n")
            child.stdin.flush()
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert outcome == "refused"
    grown = after - before
    assert grown < 4 * DEFAULT_MAX_RESPONSE_SIZE, f"peak memory grew by {grown / MIB:.1f} MiB"
    assert first[0], "the client hung up long before the server had sent everything"
