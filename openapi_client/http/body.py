"""What a call gets back: a read answer (:class:`RESTResponse`), or one to read
(:class:`StreamedResponse`) over a :class:`Body` that either path's reader implements."""

from __future__ import annotations

import http.client
from typing import Any

from openapi_client.headers import HTTPHeaders
from openapi_client.http.message import RECV_SIZE

__all__ = ["Body", "RESTResponse", "StreamedResponse", "finish"]


class _Answer:
    """What either kind of answer has: ``status``, ``reason`` (the standard phrase when the
    server sent none) and ``headers``."""

    __slots__ = ("headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: HTTPHeaders) -> None:
        self.status = status
        self.reason = reason or http.client.responses.get(status, "")
        #: The response headers (case-insensitive).
        self.headers = headers

    def getheaders(self) -> HTTPHeaders:
        """The response headers (case-insensitive)."""
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """One response header, or ``default``."""
        value: str | None = self.headers.get(name, default)
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, reason={self.reason!r})"


class RESTResponse(_Answer):
    """A fully read HTTP response: ``status``, ``reason``, ``data`` (bytes) and ``headers``."""

    __slots__ = ("data",)

    def __init__(self, status: int, reason: str, data: bytes, headers: HTTPHeaders) -> None:
        super().__init__(status, reason, headers)
        self.data = data


class Body:
    """The body of one answer, read within the attempt's limits; raises only library errors."""

    def read(self, amount: int) -> bytes:  # pragma: no cover - interface
        """Up to ``amount`` bytes (at least one unless the body has ended)."""
        raise NotImplementedError

    def read_all(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            chunk = self.read(RECV_SIZE)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def release(self) -> None:  # pragma: no cover - interface
        """The caller is done: keep the connection if the body was read to its end."""
        raise NotImplementedError

    def discard(self) -> None:  # pragma: no cover - interface
        """Close the connection, whatever was read."""
        raise NotImplementedError


def finish(
    status: int, reason: str, headers: HTTPHeaders, body: Body, preload: bool
) -> RESTResponse | StreamedResponse:
    if not preload:
        return StreamedResponse(status, reason, headers, body)
    return RESTResponse(status, reason, body.read_all(), headers)


class StreamedResponse(_Answer):
    """An unread answer (``_preload_content=False``): ``status``, ``reason``, ``headers``, and a
    body to read with :meth:`read` or :meth:`stream`, or all at once as :attr:`data`.

    Reading is held to the same limits as any answer (the attempt's deadline, the read
    timeout, ``max_response_size``) and raises only the library's exceptions. Call
    :meth:`release_conn` (or use it as a context manager) when done; a body read to its end
    releases its connection by itself.
    """

    def __init__(self, status: int, reason: str, headers: HTTPHeaders, body: Body) -> None:
        super().__init__(status, reason, headers)
        self._body: Body | None = body
        self._data: bytes | None = None

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes of the body (all that is left when ``amt`` is None)."""
        body = self._body
        if body is None:
            return b""
        try:
            if amt is None:
                data = body.read_all()
                self._finish()
                return data
            data = body.read(max(1, amt))
        except BaseException:
            self._body = None
            body.discard()
            raise
        if not data:
            self._finish()
        return data

    def stream(self, amt: int = 65536) -> Any:
        """The body in pieces of at most ``amt`` bytes."""
        while True:
            data = self.read(amt)
            if not data:
                return
            yield data

    __iter__ = stream

    @property
    def data(self) -> bytes:
        """The whole body (read on first use)."""
        if self._data is None:
            self._data = self.read()
        return self._data

    def _finish(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.release()

    def release_conn(self) -> None:
        """Done with this answer: its connection is kept if the body was read to the end,
        closed otherwise."""
        self._finish()

    def close(self) -> None:
        """Close the connection, whatever was read."""
        body, self._body = self._body, None
        if body is not None:
            body.discard()

    @property
    def closed(self) -> bool:
        return self._body is None

    def __enter__(self) -> StreamedResponse:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release_conn()
