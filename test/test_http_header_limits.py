"""Issue 16, promise 7 (HTTP): the limits on an answer's header sections hold however its bytes
arrive.

On the direct path the heads of one answer (informational ones included) may take 65536 bytes and
100 header lines in all, and a trailer section as much again; a server writes them here in one
piece, in two (the first just under the limit, as one read takes it), in many, with the blank line
that ends the head in the first piece, in the last, or split between two. On urllib3's path
http.client reads the head: a line over 65536 bytes, or 100 header lines in one head (it counts the
blank line among its 100), is refused with the library's ``ApiProtocolError``, saying so.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from test_hostile_server import (
    OK_BODY,
    HostileServer,
    Peer,
    Script,
    api_for,
    path_fixture,  # noqa: F401 - the `path` fixture
)

from openapi_client import ApiException, ApiProtocolError

pytestmark = pytest.mark.timeout(30)

LIMIT = 65536
TERMINATOR = b"\r\n\r\n"


def head(
    size: int | None = None,
    lines: int = 2,
    status: bytes = b"200 OK",
    body: bytes | None = OK_BODY,
) -> bytes:
    """A head (status line, header lines, blank line) of exactly ``size`` bytes when given, with
    ``lines`` header lines (Content-Type and Content-Length for a final answer, then padding)."""
    first = [b"HTTP/1.1 " + status]
    fields = [b"Content-Type: application/json", b"Content-Length: %d" % len(body)] if body else []
    padding = lines - len(fields)
    assert padding >= 0
    pads = [b"X-Pad-%d: " % index for index in range(padding)]
    if size is not None:
        assert padding > 0
        fixed = sum(len(line) + 2 for line in first + fields + pads) + 2
        spare = size - fixed
        assert spare >= 0, "too small for that many lines"
        share, extra = divmod(spare, padding)
        pads = [pad + b"a" * (share + (index < extra)) for index, pad in enumerate(pads)]
    else:
        pads = [pad + b"a" for pad in pads]
    raw = b"\r\n".join(first + fields + pads) + TERMINATOR
    assert size is None or len(raw) == size, (len(raw), size)
    return raw


def in_pieces(data: bytes, cuts: Sequence[int], pause: float = 0.02) -> Script:
    """A script that answers the request with ``data`` cut at ``cuts``, pausing between pieces
    so that the client reads them apart."""
    bounds = [0, *cuts, len(data)]

    def script(peer: Peer) -> None:
        if peer.read_request() is None:
            return
        for index, (start, end) in enumerate(zip(bounds, bounds[1:])):
            if index and peer.server.stopping.wait(pause):
                return
            if not peer.send(data[start:end]):
                return
        peer.hold()

    return script


def outcome(script: Script, path: str) -> ApiException | dict[str, object]:
    """The call's exception, or its result."""
    with HostileServer(script) as server:
        api = api_for(server.url, path)
        try:
            return dict(api.public_set_heartbeat_get(30))
        except ApiException as error:
            return error
        finally:
            api.api_client.close()


def cut_patterns(head_size: int) -> dict[str, list[int]]:
    """Where to cut an answer whose head takes ``head_size`` bytes."""
    end = head_size  # the blank line takes bytes end-4 .. end
    return {
        "one-piece": [],
        "under-the-limit-then-the-rest": [min(LIMIT, end - 4)],
        "many-pieces": list(range(8192, end, 8192)),
        "blank-line-in-the-first-piece": [end],
        "blank-line-in-the-last-piece": [end - 4],
        "blank-line-split-in-two": [end - 2],
        "blank-line-split-after-cr": [end - 1],
        "byte-by-byte-around-the-blank-line": list(range(end - 6, end + 1)),
    }


CUTS = list(cut_patterns(LIMIT))


def refused_as_too_big(result: object) -> bool:
    return isinstance(result, ApiProtocolError) and (
        f"more than {LIMIT} bytes of status lines and headers" in str(result)
    )


# -- bytes, on the direct path --------------------------------------------------------------------


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("size", [LIMIT + 1, 118_000])
def test_a_head_over_the_limit_is_refused_however_it_arrives(cut: str, size: int) -> None:
    data = head(size, lines=90) + OK_BODY
    result = outcome(in_pieces(data, cut_patterns(size)[cut]), "direct")
    assert refused_as_too_big(result), result
    assert isinstance(result, ApiException) and result.__cause__ is not None


@pytest.mark.parametrize("cut", CUTS)
def test_a_head_of_exactly_the_limit_is_read_however_it_arrives(cut: str) -> None:
    data = head(LIMIT, lines=90) + OK_BODY
    result = outcome(in_pieces(data, cut_patterns(LIMIT)[cut]), "direct")
    assert result == {"jsonrpc": "2.0", "result": "ok", "usIn": 1, "usOut": 2, "usDiff": 1}


def test_informational_heads_count_toward_the_limit() -> None:
    """Two heads of 40,000 bytes each: neither alone is over 65536 bytes, together they are."""
    data = head(40_000, lines=3, status=b"100 Continue", body=None) + head(40_000, lines=40)
    result = outcome(in_pieces(data + OK_BODY, [40_000, LIMIT]), "direct")
    assert refused_as_too_big(result), result


def test_a_trailer_section_has_the_same_limit() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(OK_BODY) + OK_BODY + b"\r\n0\r\n"
    )
    trailers = b"".join(b"X-Trailer-%d: %s\r\n" % (n, b"t" * 2000) for n in range(34)) + b"\r\n"
    result = outcome(in_pieces(chunked + trailers, [len(chunked), len(chunked) + 30_000]), "direct")
    assert isinstance(result, ApiProtocolError), result
    assert f"more than {LIMIT} bytes of trailers" in str(result)


# -- lines, on both paths -------------------------------------------------------------------------


@pytest.mark.parametrize("pieces", ["one-piece", "many-pieces"])
@pytest.mark.parametrize("lines", [101, 1000])
def test_more_than_100_header_lines_are_refused(lines: int, pieces: str, path: str) -> None:
    data = head(lines=lines) + OK_BODY
    cuts = [] if pieces == "one-piece" else list(range(1000, len(data), 1000))
    result = outcome(in_pieces(data, cuts, pause=0.005), path)
    assert isinstance(result, ApiProtocolError), result
    assert (
        "more than 100 header lines" if path == "direct" else "99 header lines or more"
    ) in str(result)
    assert result.__cause__ is not None


#: The most header lines a head may have: http.client counts the blank line that ends it too.
MOST_LINES = {"direct": 100, "urllib3": 99}


def test_the_most_header_lines_allowed_are_read_and_one_more_is_refused(path: str) -> None:
    most = MOST_LINES[path]
    result = outcome(in_pieces(head(lines=most) + OK_BODY, []), path)
    assert isinstance(result, dict) and result["result"] == "ok", result
    result = outcome(in_pieces(head(lines=most + 1) + OK_BODY, []), path)
    assert isinstance(result, ApiProtocolError), result


def test_an_informational_head_with_too_many_lines_is_refused(path: str) -> None:
    informational = head(lines=101, status=b"100 Continue", body=None)
    result = outcome(in_pieces(informational + head() + OK_BODY, []), path)
    assert isinstance(result, ApiProtocolError), result
    assert "header lines" in str(result)


def test_informational_and_final_lines_count_together_on_the_direct_path() -> None:
    data = head(lines=60, status=b"100 Continue", body=None) + head(lines=50) + OK_BODY
    result = outcome(in_pieces(data, []), "direct")
    assert isinstance(result, ApiProtocolError), result
    assert "more than 100 header lines" in str(result)


def test_a_trailer_section_with_too_many_lines_is_refused() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(OK_BODY) + OK_BODY + b"\r\n0\r\n"
    )
    trailers = b"".join(b"X-Trailer-%d: t\r\n" % n for n in range(101)) + b"\r\n"
    result = outcome(in_pieces(chunked + trailers, []), "direct")
    assert isinstance(result, ApiProtocolError), result
    assert "more than 100 trailer lines" in str(result)


# -- urllib3's path: http.client's per-line limit -------------------------------------------------


def test_urllib3_path_refuses_a_line_over_65536_bytes_by_name() -> None:
    data = head(lines=3)[:-4] + b"\r\nX-Long: " + b"a" * 70_000 + TERMINATOR + OK_BODY
    result = outcome(in_pieces(data, [LIMIT]), "urllib3")
    assert isinstance(result, ApiProtocolError), result
    assert "a line longer than 65536 bytes" in str(result)


# -- where a head ends ----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [None, 1, 2, 5])
def test_a_head_ends_at_its_first_blank_line_however_it_arrives(cut: int | None, path: str) -> None:
    """A bare-LF blank line before a CRLF one ends the head wherever the reads fall (here: in
    one piece, between its two LFs, just after it, or in the next line); what follows is body."""
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\nX-After: 1\r\n\r\n{}"
    blank = data.index(b"\n\n")
    result = outcome(in_pieces(data, [] if cut is None else [blank + cut]), path)
    assert isinstance(result, ApiException) and result.status == 200, result
    assert "JSON" in str(result)
