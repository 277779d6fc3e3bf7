"""One exchange on a direct-path connection: writing the request, reading the head of the answer
and its body (by length, by chunks, or to the end of the stream), every wait bounded."""

from __future__ import annotations

import http.client
import socket
from typing import TYPE_CHECKING

from openapi_client.deadline import Deadline
from openapi_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiTimeoutError,
)
from openapi_client.headers import HTTPHeaders
from openapi_client.http.body import Body
from openapi_client.http.message import (
    MAX_HEAD,
    MAX_HEADER_LINES,
    RECV_SIZE,
    broken,
    check_declared,
    check_encoding,
    content_length,
    printable,
    too_large,
)
from openapi_client.http.timeouts import deadline_error
from openapi_client.net.errors import transport_error

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.http.direct import Connection, Lane

__all__ = ["Wire", "WireBody"]

#: Informational answers skipped before the final one; more is a server in a loop.
_MAX_INFORMATIONAL = 16
#: A chunk-size line: hex digits (at most 16: 2**64 bytes), extensions, CRLF.
_MAX_CHUNK_LINE = 4096


class Wire:
    """Reading and writing one exchange on a connection, every wait bounded by the read timeout
    and by the attempt's deadline."""

    __slots__ = ("connection", "deadline", "read_timeout", "received", "where")

    def __init__(
        self, connection: Connection, where: str, read_timeout: float, deadline: Deadline
    ) -> None:
        self.connection = connection
        self.where = where
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.received = 0

    def _arm(self) -> bool:
        """Set the socket's timeout for the next wait; whether the deadline is what binds."""
        remaining = self.deadline.remaining()
        if remaining <= 0.0:
            raise deadline_error(self.where, self.deadline)
        binding = remaining < self.read_timeout
        self.connection.sock.settimeout(remaining if binding else self.read_timeout)
        return binding

    def send(self, data: bytes) -> None:
        binding = self._arm()
        try:
            self.connection.sock.sendall(data)
        except (OSError, ValueError) as error:
            raise self._failure(error, binding) from error

    def fill(self) -> bool:
        """Receive more bytes into the connection's buffer; False at the end of the stream."""
        binding = self._arm()
        try:
            chunk = self.connection.sock.recv(RECV_SIZE)
        except (OSError, ValueError) as error:
            raise self._failure(error, binding) from error
        if not chunk:
            return False
        self.received += len(chunk)
        self.connection.buffer += chunk
        return True

    def _failure(self, error: OSError | ValueError, binding: bool) -> ApiException:
        if isinstance(error, socket.timeout):
            if binding:
                return deadline_error(self.where, self.deadline)
            return ApiTimeoutError(
                f"{self.where} did not answer within {self.read_timeout:g} s (read timeout)"
            )
        return transport_error(error, self.where)

    # -- the head -------------------------------------------------------------------------------

    def read_head(
        self, limit: int, reused: bool
    ) -> tuple[int, str, HTTPHeaders, WireBody]:
        """Status, reason, headers and a reader for the body of the final answer."""
        room, lines = MAX_HEAD, MAX_HEADER_LINES  # for all the heads of this answer
        for _ in range(_MAX_INFORMATIONAL + 1):
            head, room = self._head_bytes(reused, room)
            lines -= head.count(b"\n")  # the lines after the status line
            if lines < 0:
                raise _too_many_lines(self.where, "header")
            status, reason, headers, http10 = _parse_head(head, self.where)
            if status >= 200:
                check_encoding(status, headers)
                return status, reason, headers, self._body(status, headers, http10, limit)
            if status == 101:
                raise broken(
                    f"{self.where} switched protocols (101) without being asked to"
                )
            reused = False  # an answer has begun: an end of stream now is a cut-short answer
        raise broken(f"{self.where} sent more than {_MAX_INFORMATIONAL} informational "
                               "answers")

    def _head_bytes(self, reused: bool, room: int) -> tuple[bytes, int]:
        """The next head, without the blank line that ends it, and what is left of ``room``
        bytes once it is counted, however the reads that brought it fell."""
        buffer = self.connection.buffer
        start = 0
        while True:
            # The first blank line, CRLF or bare LF (as some servers send), so that where a head
            # ends never depends on how its bytes arrived.
            end, blank = buffer.find(b"\r\n\r\n", start), 4
            bare = buffer.find(b"\n\n", start)
            if bare >= 0 and (end < 0 or bare < end):
                end, blank = bare, 2
            if end >= 0:
                if end + blank > room:
                    raise _section_too_big(self.where, "status lines and headers")
                head = bytes(buffer[:end])
                del buffer[: end + blank]
                return head, room - end - blank
            if len(buffer) >= room:  # and its blank line is still to come
                raise _section_too_big(self.where, "status lines and headers")
            start = max(0, len(buffer) - 3)
            if not self.fill():
                if not buffer.strip():
                    text = f"{self.where} closed the connection without answering"
                    raise ApiConnectionError(
                        text + (" (an idle connection it had dropped)" if reused else "")
                    ) from http.client.RemoteDisconnected(text)
                raise broken(
                    f"the response from {self.where} was cut short (in its headers)",
                    http.client.IncompleteRead(b""),
                )

    def _body(
        self, status: int, headers: HTTPHeaders, http10: bool, limit: int
    ) -> WireBody:
        reusable = not http10
        connection_tokens = headers.get("Connection", "").lower()
        if "close" in connection_tokens:
            reusable = False
        transfer = headers.get("Transfer-Encoding")
        length: int | None
        if transfer is not None:
            if transfer.strip().lower() != "chunked":
                raise broken(
                    f"{self.where} sent a body in Transfer-Encoding "
                    f"{transfer[:40]!r}, which HTTP/1.1 clients need not read",
                    http.client.UnknownTransferEncoding(),
                )
            if "Content-Length" in headers:
                reusable = False  # both framings: answer by the chunks, trust nothing after
            length = None
            mode = _CHUNKED
        else:
            length = content_length(headers)
            if length is not None:
                mode = _LENGTH
            elif status in (204, 304):
                mode, length = _LENGTH, 0
            else:
                mode = _UNTIL_CLOSE
                reusable = False
            check_declared(status, headers, length, limit)
        return WireBody(self, mode, length, limit, reusable, status, headers)


_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2


def _section_too_big(where: str, what: str) -> ApiProtocolError:
    return broken(
        f"{where} sent more than {MAX_HEAD} bytes of {what}; refused",
        http.client.LineTooLong(what),
    )


def _too_many_lines(where: str, kind: str) -> ApiProtocolError:
    return broken(
        f"{where} sent more than {MAX_HEADER_LINES} {kind} lines; refused",
        http.client.HTTPException(f"got more than {MAX_HEADER_LINES} headers"),
    )


def _parse_head(head: bytes, where: str) -> tuple[int, str, HTTPHeaders, bool]:
    lines = head.split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    parts = status_line.split(b" ", 2)
    version = parts[0]
    if (
        len(parts) < 2
        or version not in (b"HTTP/1.1", b"HTTP/1.0")
        or len(parts[1]) != 3
        or not parts[1].isdigit()
    ):
        shown = status_line[:60].decode("latin-1")
        raise broken(
            f"{where} did not answer in HTTP/1.1 (status line {shown!r})",
            http.client.BadStatusLine(shown),
        )
    status = int(parts[1])
    if status < 100:
        raise broken(f"{where} answered with an invalid status ({status})")
    reason = printable(parts[2].decode("latin-1")) if len(parts) > 2 else ""
    fields: list[list[str]] = []
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            # An obsolete folded line continues the previous field: read as one space (RFC 9112
            # section 5.2), as http.client does on urllib3's path.
            if not fields:
                continue  # nothing to continue: ignored, as http.client does
            fields[-1][1] += " " + line.strip(b" \t").decode("latin-1")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise broken(f"{where} sent a malformed header line")
        fields.append([name.decode("latin-1"), value.strip(b" \t").decode("latin-1")])
    headers = HTTPHeaders((name, value) for name, value in fields)
    return status, reason, headers, version == b"HTTP/1.0"


class WireBody(Body):
    """A body read from the direct path's own connection."""

    def __init__(
        self,
        wire: Wire,
        mode: int,
        length: int | None,
        limit: int,
        reusable: bool,
        status: int,
        headers: HTTPHeaders,
    ) -> None:
        self.wire = wire
        self.connection: Connection | None = wire.connection
        self.lane: Lane | None = None
        self.mode = mode
        self.left = length if mode == _LENGTH else 0  # bytes left: in the body or the chunk
        self.limit = limit
        self.total = 0
        self.done = mode == _LENGTH and length == 0
        self.reusable = reusable
        self.status = status
        self.headers = headers

    def read_all(self) -> bytes:
        connection = self.connection
        if self.mode == _LENGTH and connection is not None and not self.done:
            # The usual answer: all of it, often in the buffer already.
            buffer = connection.buffer
            length = self.left or 0
            while len(buffer) < length:
                if not self.wire.fill():
                    raise self._cut_short()
            self.total = length
            self.left = 0
            self.done = True
            if len(buffer) > length:
                self.reusable = False  # bytes beyond the declared length: framing in doubt
            data = bytes(buffer[:length])
            del buffer[:]
            return data
        return super().read_all()

    def read(self, amount: int) -> bytes:
        if self.done or self.connection is None:
            return b""
        if self.mode == _LENGTH:
            return self._take(min(amount, self.left or 0), final=True)
        if self.mode == _UNTIL_CLOSE:
            connection = self.connection
            if not connection.buffer and not self.wire.fill():
                self.done = True
                return b""
            return self._take(min(amount, len(connection.buffer)), final=False)
        if self.left == 0:
            self.left = self._chunk_size()
            if self.left == 0:
                self._trailers()
                self.done = True
                return b""
        data = self._take(min(amount, self.left or 0), final=False)
        self.left = (self.left or 0) - len(data)
        if self.left == 0:
            self._line(expect_empty=True)
        return data

    def _take(self, amount: int, final: bool) -> bytes:
        """``amount`` bytes (at least 1) from the buffer, receiving first when it is empty."""
        connection = self.connection
        assert connection is not None
        while not connection.buffer:
            if not self.wire.fill():
                raise self._cut_short()
        buffer = connection.buffer
        data = bytes(buffer[:amount])
        del buffer[:amount]
        self.total += len(data)
        if self.total > self.limit:
            raise too_large(self.status, self.headers, "is larger", self.limit)
        if final:
            self.left = (self.left or 0) - len(data)
            if self.left == 0:
                self.done = True
                if connection.buffer:
                    self.reusable = False
        return data

    def _line(self, expect_empty: bool = False) -> bytes:
        connection = self.connection
        assert connection is not None
        buffer = connection.buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[:end]).rstrip(b"\r")
                del buffer[: end + 1]
                if expect_empty and line:
                    raise broken(f"a chunk from {self.wire.where} overran its size")
                return line
            if len(buffer) > _MAX_CHUNK_LINE:
                raise broken(f"{self.wire.where} sent an overlong chunk-size line")
            if not self.wire.fill():
                raise self._cut_short()

    def _chunk_size(self) -> int:
        line = self._line().split(b";", 1)[0].strip()
        if not line or len(line) > 16 or line.strip(b"0123456789abcdefABCDEF"):
            raise broken(f"{self.wire.where} sent an invalid chunk size")
        size = int(line, 16)
        if self.total + size > self.limit:
            raise too_large(self.status, self.headers, "is larger", self.limit)
        return size

    def _trailers(self) -> None:
        """Read the trailer section to its blank line: a header section, with the same limits."""
        room, lines = MAX_HEAD, MAX_HEADER_LINES
        while True:
            line = self._line()
            room -= len(line) + 2
            if room < 0:
                raise _section_too_big(self.wire.where, "trailers")
            if not line:
                if self.connection is not None and self.connection.buffer:
                    self.reusable = False
                return
            lines -= 1
            if lines < 0:
                raise _too_many_lines(self.wire.where, "trailer")

    def _cut_short(self) -> ApiProtocolError:
        return broken(
            f"the response from {self.wire.where} was cut short (truncated body)",
            http.client.IncompleteRead(b""),
        )

    def release(self) -> None:
        lane, connection = self.lane, self.connection
        self.connection = None
        if lane is None or connection is None:
            return
        if self.done and self.reusable:
            lane._checkin(connection)
        else:
            lane._discard(connection)

    def discard(self) -> None:
        lane, connection = self.lane, self.connection
        self.connection = None
        if lane is not None and connection is not None:
            lane._discard(connection)
