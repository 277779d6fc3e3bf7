"""The bytes of one WebSocket connection: a socket driven through ``websockets``' sans-I/O core.

:class:`SocketTransport` owns the socket and a :class:`websockets.client.ClientProtocol`, the
documented sans-I/O API of ``websockets``: the opening handshake, framing, masking, the closing
handshake, UTF-8 and size checks and the answers to pings are all the protocol's; this module only
moves bytes between it and the socket, assembles fragmented messages and runs the timers
(keepalive pings, the close timeout). It has no thread of its own: whichever thread holds the
connection's read role calls :meth:`Transport.read`, so an answer is read by the thread that
waits for it, or handed over once by the one that read it (see ``connection.py``).

Through a proxy, the connection is opened by ``websockets.sync.client.connect`` (which knows how
to tunnel) and :class:`ThreadedTransport` adapts it: a fallback path, with the extra hand-over
between ``websockets``' reader thread and ours.
"""

from __future__ import annotations

import inspect
import logging
import math
import select
import socket
import ssl
import threading
import time
from typing import Any, Protocol, Union

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect
from websockets.uri import WebSocketURI, parse_uri

from openapi_client.redaction import install_filter

__all__ = [
    "Closed",
    "Data",
    "SocketTransport",
    "ThreadedTransport",
    "Transport",
    "open_socket",
    "open_through_proxy",
]

#: A message as received: text frames decoded, binary frames as bytes.
Data = Union[str, bytes]

#: Bytes asked of the socket per read (a TLS socket returns at most one record).
_READ_SIZE = 65536

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_OPEN, _CLOSED = State.OPEN, State.CLOSED
_INVALID_DATA = 1007
_INTERNAL_ERROR = 1011
_monotonic = time.monotonic

#: The longest single wait on the socket, in seconds: a longer one (a liveness limit or a
#: heartbeat from a setting or a server, whatever its size) is waited in turns of this length.
LONGEST_WAIT = 3600.0

#: Where ``websockets`` logs (its lines redacted like the library's). Its debug lines show the
#: frames, cut at 75 characters, which can cut a token too short to be recognised: they are off
#: unless this logger's level is set to DEBUG itself.
_PROTOCOL_LOGGER = install_filter(logging.getLogger("openapi_client.websocket.protocol"))
_PROTOCOL_LOGGER.setLevel(logging.INFO)

# Keyword arguments of websockets' connect() that not every supported release has.
_CONNECT_PARAMETERS = frozenset(inspect.signature(connect).parameters)


class Closed(Exception):
    """The connection is closing or closed: nothing more can be sent on it."""


class Transport(Protocol):
    """What a connection needs from the wire. Only the thread holding the connection's read role
    calls :meth:`read`; any thread may call the others."""

    def read(self, timeout: float | None) -> list[Data]:
        """The messages that arrived, waiting at most ``timeout`` seconds (None: until something
        arrives); an empty list when the time ran out.

        :raises ConnectionClosed: the connection has ended (its close frames say how).
        """

    def send(self, text: str) -> None:
        """Send one text message.

        :raises Closed: (or ``ConnectionClosed``, ``OSError``) it could not be sent.
        """

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (``read`` completes it)."""

    def abort(self) -> None:
        """Cut the connection without waiting: the next ``read`` reports its end."""

    def release(self) -> None:
        """Free the socket once the connection has ended and nobody reads any more."""


class SocketTransport:
    """A socket and the ``ClientProtocol`` that frames it.

    :param sock: connected, TLS done, in timeout mode (the longest a write or a half-received
        TLS record may stall).
    :param protocol: the protocol after a successful opening handshake.
    :param backlog: frames that came with the handshake's response.
    :param keepalive: seconds between pings, and how long a pong may take; None: no pings.
    :param close_timeout: seconds to wait for the closing handshake before cutting the socket.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: ClientProtocol,
        backlog: list[Frame],
        keepalive: float | None,
        close_timeout: float,
    ) -> None:
        self._sock = sock
        self._protocol = protocol
        self._backlog = backlog
        self._keepalive = keepalive
        self._close_timeout = close_timeout
        #: Guards the protocol: held only while it parses or makes frames, never while the
        #: socket is written, so that the reader never waits for a write in progress.
        self._lock = threading.Lock()
        #: Guards the socket's writing side, so that frames leave whole and in the order the
        #: protocol made them. Taken before ``_lock`` by whoever takes both.
        self._write_lock = threading.Lock()
        #: Bytes TLS has decrypted but not yet returned: readable without the socket being so.
        self._tls_pending = sock.pending if isinstance(sock, ssl.SSLSocket) else None
        self._poll = _Readable(sock)
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        now = _monotonic()
        self._next_ping = None if keepalive is None else now + keepalive
        self._ping: bytes | None = None
        self._ping_deadline = 0.0
        self._pong_looked_for = False
        self._pings = 0
        self._close_deadline: float | None = None
        # Frames that came with the handshake's answer were processed with it: a close frame
        # among them is answered now, and its close timeout runs from now.
        with self._lock:
            writes = protocol.data_to_send()
            if protocol.close_expected():
                self._close_deadline = now + close_timeout
        self._write_quietly(writes)

    # -- reading (the read role's holder only) --------------------------------------------------

    def read(self, timeout: float | None) -> list[Data]:
        protocol = self._protocol
        if protocol.state is _CLOSED:
            raise self._ended()
        if self._backlog:
            frames, self._backlog = self._backlog, []
            messages = self._assemble(frames)
            if messages:
                return messages
        now = _monotonic()
        deadline = None if timeout is None else now + timeout
        while True:
            wait = self._timers(now)
            if deadline is not None:
                left = deadline - now
                if left <= 0:
                    return []
                if wait is None or left < wait:
                    wait = left
            tls_pending = self._tls_pending
            if (tls_pending is not None and tls_pending()) or self._poll.wait(wait):
                messages = self._receive()
                if messages:
                    return messages
            now = _monotonic()

    def _receive(self) -> list[Data]:
        """One read of the socket, fed to the protocol; the messages it completed."""
        try:
            data = self._sock.recv(_READ_SIZE)
        except OSError:  # reset, or a TLS record stalled: the end of the stream either way
            data = b""
        protocol = self._protocol
        with self._lock:
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            # After the opening handshake the protocol's events are frames.
            events: list[Frame] = protocol.events_received()  # type: ignore[assignment]
            writes = protocol.data_to_send()  # pongs, the answer to a close
            if self._close_deadline is None and protocol.close_expected():
                self._close_deadline = _monotonic() + self._close_timeout
            ended = protocol.state is _CLOSED
        self._write_quietly(writes)
        messages = self._assemble(events) if events else []
        if ended:
            self.release()
            if not messages:
                raise self._ended()
        return messages

    def _assemble(self, frames: list[Frame]) -> list[Data]:
        messages: list[Data] = []
        for frame in frames:
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY:
                if not frame.fin:
                    self._fragments = [bytes(frame.data)]
                    self._fragments_text = opcode is _TEXT
                    continue
                data = frame.data
                text = opcode is _TEXT
            elif opcode is _CONT:
                fragments = self._fragments
                assert fragments is not None  # the protocol checks the order of frames
                fragments.append(bytes(frame.data))
                if not frame.fin:
                    continue
                data = b"".join(fragments)
                self._fragments = None
                text = self._fragments_text
            else:
                if opcode is _PONG and bytes(frame.data) == self._ping:
                    self._ping = None
                continue
            if not text:
                messages.append(bytes(data))
                continue
            try:
                messages.append(str(data, "utf-8"))
            except UnicodeDecodeError as error:
                self._fail(_INVALID_DATA, f"{error.reason} at position {error.start}")
                break
        return messages

    def _timers(self, now: float) -> float | None:
        """Run what is due (a ping, a ping's timeout, the close timeout); seconds until the
        next one, None when nothing is scheduled."""
        wait: float | None = None
        close_deadline = self._close_deadline
        if close_deadline is not None:
            if now >= close_deadline:
                self.abort()  # the next read sees the end of the stream
                return None
            wait = close_deadline - now
        keepalive = self._keepalive
        if keepalive is not None and self._protocol.state is _OPEN:
            if self._ping is not None:
                due = self._ping_deadline
                if now >= due and not self._pong_looked_for and self._readable_now():
                    # A reader that comes late may find the pong waiting: read before judging.
                    self._pong_looked_for = True
                    return 0.0
                if now >= due:
                    self._fail(_INTERNAL_ERROR, "keepalive ping timeout")
                    self.abort()
                    return None
            else:
                due = self._next_ping  # type: ignore[assignment]
                if now >= due:
                    self._send_ping(now, keepalive)
                    due = self._ping_deadline
            left = due - now
            if wait is None or left < wait:
                wait = left
        return wait

    def _readable_now(self) -> bool:
        tls_pending = self._tls_pending
        return bool(tls_pending is not None and tls_pending()) or self._poll.wait(0)

    def _send_ping(self, now: float, keepalive: float) -> None:
        self._pings += 1
        payload = self._pings.to_bytes(4, "big")
        with self._write_lock:
            with self._lock:
                if self._protocol.state is _OPEN:  # not closed by another thread meanwhile
                    self._protocol.send_ping(payload)
                writes = self._protocol.data_to_send()
            self._write_quietly(writes, locked=True)
        self._ping = payload
        self._pong_looked_for = False
        self._ping_deadline = now + keepalive
        self._next_ping = now + keepalive

    def _fail(self, code: int, reason: str) -> None:
        """End the connection for a fault of the server's (the protocol sends the close frame)."""
        with self._write_lock:
            with self._lock:
                self._protocol.fail(code, reason)
                writes = self._protocol.data_to_send()
                if self._close_deadline is None:
                    self._close_deadline = _monotonic() + self._close_timeout
            self._write_quietly(writes, locked=True)

    def _ended(self) -> ConnectionClosed:
        return self._protocol.close_exc

    # -- writing (any thread) -------------------------------------------------------------------

    def send(self, text: str) -> None:
        with self._write_lock:
            with self._lock:
                protocol = self._protocol
                if protocol.state is not _OPEN:
                    raise Closed(f"the connection is {protocol.state.name.lower()}")
                protocol.send_text(text.encode())
                writes = protocol.data_to_send()
            try:
                self._write(writes)
            except OSError:
                self.abort()  # a write cut short: nothing more can go on this stream
                raise

    def close(self, code: int, reason: str) -> None:
        with self._write_lock:
            with self._lock:
                protocol = self._protocol
                if protocol.state is not _OPEN:
                    return
                protocol.send_close(code, reason)
                writes = protocol.data_to_send()
                if self._close_deadline is None:
                    self._close_deadline = _monotonic() + self._close_timeout
            self._write_quietly(writes, locked=True)

    def abort(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a read in progress; the fd stays
        except OSError:
            pass

    def release(self) -> None:
        with self._write_lock:  # no write in progress may meet a closed (and reused) descriptor
            with self._lock:
                self._protocol.receive_eof()  # idempotent: the protocol is CLOSED from here on
                self._sock.close()

    def _write(self, writes: list[bytes]) -> None:
        """Write what the protocol made (holding ``_write_lock``, not ``_lock``)."""
        for data in writes:
            if data:
                self._sock.sendall(data)
            else:  # the protocol is done sending: half-close
                try:
                    self._sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def _write_quietly(self, writes: list[bytes], locked: bool = False) -> None:
        """:meth:`_write`, a failure cutting the connection (the read that follows reports the
        end); takes ``_write_lock`` unless ``locked``."""
        if not writes:
            return
        try:
            if locked:
                self._write(writes)
            else:
                with self._write_lock:
                    self._write(writes)
        except OSError:
            self.abort()


class _Readable:
    """Waits until a socket has something to read, for at most a given time."""

    def __init__(self, sock: socket.socket) -> None:
        poll = getattr(select, "poll", None)
        self._sock = sock
        self._poller: Any = None
        if poll is not None:
            self._poller = poll()
            self._poller.register(sock, select.POLLIN)

    def wait(self, timeout: float | None) -> bool:
        """Whether the socket became readable within ``timeout`` seconds (at most
        :data:`LONGEST_WAIT`: the caller looks again)."""
        timeout = LONGEST_WAIT if timeout is None else min(timeout, LONGEST_WAIT)
        poller = self._poller
        if poller is None:  # pragma: no cover - platforms without poll (Windows)
            return bool(select.select([self._sock], [], [], timeout)[0])
        return bool(poller.poll(math.ceil(timeout * 1000)))


class ThreadedTransport:
    """A connection ``websockets.sync.client.connect`` opened (the proxy path): its own thread
    reads the socket and answers pings; ``read`` takes the messages from it."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    def read(self, timeout: float | None) -> list[Data]:
        try:
            return [self._ws.recv(LONGEST_WAIT if timeout is None else min(timeout, LONGEST_WAIT))]
        except TimeoutError:
            return []

    def send(self, text: str) -> None:
        self._ws.send(text)

    def close(self, code: int, reason: str) -> None:
        self._ws.close(code, reason)  # waits at most its close timeout, then drops the socket

    def abort(self) -> None:
        """Nothing to do: ``websockets`` drops the socket at its close timeout itself."""

    def release(self) -> None:
        """Nothing to do: ``websockets`` closes the socket when the connection ends."""


def _left(deadline: float) -> float:
    """Seconds left until ``deadline``: past it, so little that the next wait times out."""
    return max(deadline - _monotonic(), 1e-6)


def _extensions(compression: str | None) -> list[ClientPerMessageDeflateFactory] | None:
    if compression is None:
        return None
    if compression == "deflate":
        return [ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})]
    raise ValueError(f"unsupported compression: {compression!r} (use 'deflate' or None)")


def open_socket(
    url: str,
    *,
    open_timeout: float,
    close_timeout: float,
    max_message_size: int,
    keepalive: float | None,
    compression: str | None,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    user_agent: str,
) -> SocketTransport:
    """Connect to ``url``: TCP, TLS for ``wss://``, then the opening handshake, all within
    ``open_timeout`` seconds.

    :raises Exception: what the socket, ``ssl`` or ``websockets`` raised (``InvalidURI``,
        ``InvalidStatus``, ``InvalidHandshake``, ``OSError``, ``TimeoutError``, ``ValueError``);
        the caller turns it into the library's exception.
    """
    uri = parse_uri(url)
    extensions = _extensions(compression)
    deadline = _monotonic() + open_timeout
    sock = socket.create_connection((uri.host, uri.port), timeout=open_timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        if uri.secure:
            context = ssl_context if ssl_context is not None else ssl.create_default_context()
            sock.settimeout(_left(deadline))
            sock = context.wrap_socket(sock, server_hostname=server_hostname or uri.host)
        protocol = ClientProtocol(
            uri, extensions=extensions, max_size=max_message_size, logger=_PROTOCOL_LOGGER
        )
        backlog = _handshake(sock, protocol, uri, user_agent, deadline)
        sock.settimeout(open_timeout)  # from here: how long a write or a TLS record may stall
    except BaseException:
        sock.close()
        raise
    return SocketTransport(sock, protocol, backlog, keepalive, close_timeout)


def _handshake(
    sock: socket.socket,
    protocol: ClientProtocol,
    uri: WebSocketURI,
    user_agent: str,
    deadline: float,
) -> list[Frame]:
    """Send the handshake request and read the response; the frames that came after it."""
    request = protocol.connect()
    request.headers.pop("User-Agent", None)
    request.headers["User-Agent"] = user_agent
    protocol.send_request(request)
    for data in protocol.data_to_send():
        sock.settimeout(_left(deadline))
        sock.sendall(data)
    while True:
        sock.settimeout(_left(deadline))
        data = sock.recv(_READ_SIZE)
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        events = protocol.events_received()
        if events or not data:
            break
    if protocol.handshake_exc is not None:
        raise protocol.handshake_exc
    if not events:  # pragma: no cover - the protocol sets handshake_exc for an early EOF
        raise ConnectionError(f"{uri.host} closed the connection during the handshake")
    return [event for event in events[1:] if isinstance(event, Frame)]


def open_through_proxy(
    url: str,
    proxy: str,
    *,
    open_timeout: float,
    close_timeout: float,
    max_message_size: int,
    keepalive: float | None,
    compression: str | None,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    user_agent: str,
) -> ThreadedTransport:
    """Connect through an HTTP(S) proxy with ``websockets.sync.client.connect``.

    :raises Exception: as :func:`open_socket`.
    """
    kwargs: dict[str, Any] = {
        "open_timeout": open_timeout,
        "close_timeout": close_timeout,
        "max_size": max_message_size,
        "ping_interval": keepalive,
        "ping_timeout": keepalive,
        "compression": compression,
        "user_agent_header": user_agent,
        "logger": _PROTOCOL_LOGGER,
    }
    if url.lower().startswith("wss:"):
        kwargs["ssl"] = ssl_context
        if server_hostname is not None:
            kwargs["server_hostname"] = server_hostname
    if "proxy" not in _CONNECT_PARAMETERS:  # pragma: no cover - websockets < 15
        raise ValueError("Configuration.proxy on a WebSocket needs websockets >= 15")
    kwargs["proxy"] = proxy
    if "legacy" in _CONNECT_PARAMETERS:
        kwargs["legacy"] = True  # the connection object itself: the transport closes it
    return ThreadedTransport(connect(url, **kwargs))
