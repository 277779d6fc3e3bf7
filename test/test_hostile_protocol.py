"""Promises 3 and 4: whatever a server sends, the caller sees one of the library's exceptions with
its cause chained; informational answers are skipped; a connection whose framing is in doubt is
closed, never reused; a body in an encoding the client did not ask for is refused by name.

Every server here is a few lines of raw socket on loopback; every test runs through both request
paths (the client's own connections and urllib3's ``PoolManager.urlopen``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_hostile_server import (
    OK_BODY,
    QUICK_RETRIES,
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
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiTransportError,
    SessionManagementApi,
    TooManyRequestsException,
)

pytestmark = pytest.mark.timeout(30)


def failure(api: SessionManagementApi, **options: Any) -> ApiException:
    """The exception a call raises; fails the test on a foreign exception or none."""
    try:
        api.public_set_heartbeat_get(30, **options)
    except ApiException as error:
        return error
    except BaseException as error:  # the point of these tests
        pytest.fail(f"a foreign exception escaped: {type(error).__module__}.{error!r}")
    pytest.fail("the call succeeded")


def answer_and_close(raw: bytes) -> Any:
    """A script that answers one request with ``raw`` and closes the connection."""

    def script(peer: Peer) -> None:
        if peer.read_request() is not None:
            peer.send(raw)

    return script


def first_answer_is(raw: bytes, path: str, **settings: Any) -> tuple[ApiException, HostileServer]:
    """Answer the request with ``raw`` and close; the call's exception."""
    with HostileServer(answer_and_close(raw)) as server:
        api = api_for(server.url, path, **settings)
        error = failure(api)
        api.api_client.close()
    assert error.__cause__ is not None or error.status != 0, "the cause is chained"
    return error, server


# -- any status line, any header, any framing ------------------------------------------------

GARBAGE_HEADS = {
    "http2-preface": b"HTTP/2 200\r\n\r\n",
    "icy": b"ICY 200 OK\r\n\r\n",
    "two-digit-status": b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
    "four-digit-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    "letters-status": b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
    "binary": b"\x00\xff\xfe\x01garbage\r\n\r\n",
    "no-colon": b"HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\n{}",
    "huge-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    "length-letters": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}",
    "length-negative": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}",
    "length-conflict": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "length-list-conflict": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}",
    "transfer-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}",
    "chunk-size-letters": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    ),
    "chunk-overrun": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n",
    "chunk-line-endless": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 9000,
    "truncated-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"result\"",
    "truncated-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"re",
    "truncated-head": b"HTTP/1.1 200 OK\r\nContent-Len",
    "nothing": b"",
    "switching-protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
}


#: What http.client, under urllib3's path, reads leniently where the direct path refuses: a
#: header line without a colon is skipped, a body in an unknown Transfer-Encoding or after a
#: head cut short by the close is read until the close.
LENIENT_ON_URLLIB3 = {"no-colon", "transfer-gzip", "chunk-line-endless", "truncated-head"}


@pytest.mark.parametrize("name", GARBAGE_HEADS)
def test_broken_http_is_a_transport_error(name: str, path: str) -> None:
    raw = GARBAGE_HEADS[name]
    if path == "urllib3" and name in LENIENT_ON_URLLIB3:
        with HostileServer(answer_and_close(raw)) as server:
            api = api_for(server.url, path)
            try:
                api.public_set_heartbeat_get(30)
            except ApiException as error:
                assert error.__cause__ is not None or error.status != 0
            api.api_client.close()
        return
    error, server = first_answer_is(raw, path)
    assert isinstance(error, ApiTransportError), repr(error)
    assert error.status == 0
    assert server.connections == 1, "retries are off: one attempt"


def test_a_close_without_an_answer_is_called_so_on_both_paths(path: str) -> None:
    error, _ = first_answer_is(b"", path)
    assert type(error) is ApiConnectionError
    assert "closed the connection without answering" in str(error)


BAD_BODIES = {
    "not-json": b"<html>oops</html>",
    "not-utf8": b"\xff\xfe\xfd",
    "json-array": b"[1, 2]",
    "nested-arrays": b"[" * 100_000 + b"]" * 100_000,
    "nested-objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "long-integer": b'{"result": ' + b"9" * 50_000 + b"}",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_any_body_on_a_success_status_is_an_api_exception(body: bytes, path: str) -> None:
    error, _ = first_answer_is(response(body), path)
    assert type(error) is ApiException
    assert error.status == 200
    assert "JSON" in str(error)
    if body != BAD_BODIES["json-array"]:
        assert error.__cause__ is not None


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_any_body_on_an_error_status_is_an_api_exception(body: bytes, path: str) -> None:
    error, _ = first_answer_is(response(body, "400 Bad Request"), path)
    assert error.status == 400
    str(error), repr(error)  # renderable, whatever the body


def test_deeply_nested_error_data_renders(path: str) -> None:
    nested = "[" * 500 + '"deep"' + "]" * 500  # deeper is refused by json.loads: no code
    body = f'{{"error": {{"code": 11050, "message": "bad_request", "data": {nested}}}}}'
    error, _ = first_answer_is(response(body.encode(), "400 Bad Request"), path)
    assert error.error_code == 11050
    assert "11050" in str(error) and "11050" in repr(error)


RETRY_AFTER = ["1e400", "-5", "nan", "inf", "Wed, 99 Foo 2026 00:00:00 GMT",
               "Fri, 31 Dec 9999 23:59:59 GMT", "9" * 400, "", "\x7f"]


@pytest.mark.parametrize("value", RETRY_AFTER)
def test_any_retry_after_is_an_api_exception_and_no_long_sleep(value: str, path: str) -> None:
    throttled = response(
        rpc_error(10028, "too_many_requests"), "429 Too Many Requests", (("Retry-After", value),)
    )
    with HostileServer(always(throttled)) as server:
        api = api_for(server.url, path, retries=QUICK_RETRIES, call_timeout=10.0)
        waits: list[float] = []
        api.api_client.sleep = waits.append  # recorded, not taken
        error = failure(api)
        api.api_client.close()
    assert type(error) is TooManyRequestsException
    # Either the value is ignored (the policy's own backoff) or it is too long to wait for and
    # the error comes at once; never a long sleep.
    assert all(wait <= QUICK_RETRIES.backoff_max for wait in waits), waits
    assert len(server.requests) == len(waits) + 1
    retry_after = error.retry_after
    assert retry_after is None or retry_after >= 0


def test_status_and_reason_of_any_shape_are_kept_printable(path: str) -> None:
    raw = response(b"gone", "599 \x01Weird\x7f Reason \xe9")
    error, _ = first_answer_is(raw, path)
    assert error.status == 599
    assert "\x01" not in str(error)


# -- informational answers ----------------------------------------------------------------------


def test_informational_answers_are_skipped(path: str) -> None:
    """100 Continue, 102 Processing and 103 Early Hints before the answer, twice on one
    connection: each call gets its own answer, never an informational one or the previous."""
    def answer(head: bytes) -> bytes:
        interval = head.split(b"interval=")[1].split(b" ")[0]
        body = json.dumps({"jsonrpc": "2.0", "result": interval.decode()}).encode()
        return (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 102 Processing\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + response(body)
        )

    with HostileServer(serve_each(answer)) as server:
        api = api_for(server.url, path)
        results: list[Any] = []
        for interval in (30, 31, 32):
            try:
                results.append(api.public_set_heartbeat_get(interval)["result"])
            except ApiProtocolError as error:
                results.append(error)
        api.api_client.close()
    if path == "direct":
        assert results == ["30", "31", "32"]
        assert server.connections == 1
    else:
        # urllib3 (through http.client) can skip only 100 Continue; it would take 102 as the
        # answer. The path refuses it and closes the connection instead: never a wrong answer.
        assert all(isinstance(result, ApiProtocolError) for result in results)
        assert "informational" in str(results[0])
        assert server.connections == 3


def test_endless_informational_answers_are_refused(path: str) -> None:
    raw = b"HTTP/1.1 103 Early Hints\r\n\r\n" * 50 + response()
    error, _ = first_answer_is(raw, path)
    assert isinstance(error, ApiProtocolError)
    assert "informational" in str(error)


# -- framing in doubt: the connection is closed, never reused -------------------------------------

def echo(head: bytes) -> bytes:
    """The body of an answer to ``head``: its interval, so that each call knows its own."""
    interval = head.split(b"interval=")[1].split(b" ")[0].decode()
    return json.dumps({"jsonrpc": "2.0", "result": interval}).encode()


POISON = response(json.dumps({"jsonrpc": "2.0", "result": "poison"}).encode())

DOUBTFUL = {
    "bytes-beyond-the-length": lambda body: response(body) + POISON,
    "length-and-chunked": lambda body: (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) + POISON
    ),
    "connection-close": lambda body: response(body, headers=(("Connection", "close"),)) + POISON,
    "http-1.0": lambda body: b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body) + POISON,
    "read-until-close": lambda body: response(body, length=False),
}


@pytest.mark.parametrize("make", DOUBTFUL.values(), ids=DOUBTFUL.keys())
def test_connection_whose_framing_is_in_doubt_is_not_reused(make: Any, path: str) -> None:
    def script(peer: Peer) -> None:
        while True:
            head = peer.read_request()
            if head is None:
                return
            raw = make(echo(head))
            if not peer.send(raw) or (raw.endswith(b'"}') and POISON not in raw):
                return  # read until close: the close ends the body

    with HostileServer(script) as server:
        api = api_for(server.url, path)
        results = [api.public_set_heartbeat_get(interval)["result"] for interval in (30, 31, 32)]
        api.api_client.close()
    assert results == ["30", "31", "32"], "never another call's answer, never the poison"
    if path == "urllib3" and make is DOUBTFUL["bytes-beyond-the-length"]:
        # http.client drops the extra bytes with its read buffer, and urllib3 drops a pooled
        # connection that has bytes waiting: safe, though the connection is reused.
        return
    assert server.connections == 3


def test_obsolete_folded_header_lines_are_unfolded(path: str) -> None:
    raw = response(headers=(("X-Folded", "one\r\n\ttwo"), ("Content-Type", "application/json")))
    with HostileServer(always(raw)) as server:
        api = api_for(server.url, path)
        _, _, headers = api.public_set_heartbeat_get_with_http_info(30)
        api.api_client.close()
    assert headers["X-Folded"] in ("one two", "one\r\n\ttwo")
    assert headers["Content-Type"] == "application/json"


def test_folded_line_before_any_header_is_ignored(path: str) -> None:
    raw = b"HTTP/1.1 200 OK\r\n folded\r\n" + response().split(b"\r\n", 1)[1]
    with HostileServer(always(raw)) as server:
        api = api_for(server.url, path)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()


def test_chunked_answers_with_trailers_keep_the_connection(path: str) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(
            b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (OK_BODY[:10], OK_BODY[10:])
        )
        + b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    with HostileServer(always(chunked)) as server:
        api = api_for(server.url, path)
        for interval in (30, 31, 32):
            assert api.public_set_heartbeat_get(interval)["result"] == "ok"
        api.api_client.close()
    assert server.connections == 1


def test_idle_connection_the_server_dropped_is_replaced(path: str) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(response())  # one answer, then close (without saying so)

    with HostileServer(script) as server:
        api = api_for(server.url, path)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        waiting_since = time.monotonic()
        while server.open_now and time.monotonic() - waiting_since < 5.0:
            time.sleep(0.01)  # until the server has closed the connection
        assert api.public_set_heartbeat_get(31)["result"] == "ok"
        api.api_client.close()
    assert server.connections == 2


def test_connection_the_server_closes_without_answering_is_retried(path: str) -> None:
    answered: list[int] = []

    def script(peer: Peer) -> None:
        peer.read_request()
        if not answered:
            answered.append(1)
            return  # closed without a word
        peer.send(response())

    with HostileServer(script) as server:
        api = api_for(server.url, path, retries=2)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()
    assert server.connections == 2


# -- Content-Encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip", "x-" + "z" * 100])
def test_body_in_an_encoding_not_asked_for_is_refused_by_name(encoding: str, path: str) -> None:
    seen: list[str | None] = []

    def answer(head: bytes) -> bytes:
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"accept-encoding:"):
                seen.append(line.split(b":", 1)[1].strip().decode())
        if len(seen) > 1:  # the next call is answered plainly
            return response()
        return response(b"\x1f\x8b\x08\x00garbage", headers=(("Content-Encoding", encoding),))

    with HostileServer(serve_each(answer)) as server:
        api = api_for(server.url, path)
        error = failure(api)
        assert api.public_disable_heartbeat_get()["result"] == "ok"  # the client is still usable
        api.api_client.close()
    assert type(error) is ApiException and error.status == 200
    assert "Content-Encoding" in str(error) and encoding[:20] in str(error)
    assert seen == ["identity", "identity"]


def test_identity_encoding_is_accepted(path: str) -> None:
    with HostileServer(always(response(headers=(("Content-Encoding", "identity"),)))) as server:
        api = api_for(server.url, path)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()


# -- reading an unread response --------------------------------------------------------------


@pytest.mark.parametrize("raw", [GARBAGE_HEADS["truncated-body"], GARBAGE_HEADS["chunk-overrun"]],
                         ids=["truncated", "chunk-overrun"])
def test_reading_a_streamed_response_raises_only_library_errors(raw: bytes, path: str) -> None:
    with HostileServer(answer_and_close(raw)) as server:
        api = api_for(server.url, path)
        response_ = api.public_set_heartbeat_get(30, _preload_content=False)
        with pytest.raises(ApiProtocolError) as caught:
            for _ in response_.stream(4):
                pass
        assert caught.value.__cause__ is not None
        assert response_.closed
        assert response_.read() == b""
        api.api_client.close()
