"""The bytes of one WebSocket connection: a socket driven through ``websockets``' sans-I/O core.

:class:`SocketTransport` owns the socket and a :class:`websockets.client.ClientProtocol`, the
documented sans-I/O API of ``websockets``: the opening handshake, framing, masking, the closing
handshake, UTF-8 and size checks and the answers to pings are all the protocol's; this module only
moves bytes between it and the socket, assembles fragmented messages and runs the timers
(keepalive pings, the close timeout).

One thread reads (the connection's own: :meth:`~SocketTransport.read`); any thread may write a
frame (:meth:`~SocketTransport.send`), close, or cut the connection. The socket is non-blocking:
a read happens only once ``poll`` says there is something, and a write that does not fit waits
for room without holding up the reader. On a TLS connection every operation on the TLS object
(``SSL_read``, ``SSL_write``, ``SSL_pending``) runs under one lock, since OpenSSL does not support
one connection used from two threads at once (a read in one thread while another writes lost a
handshake request in ``websockets``' threaded client: session tickets read mid-write). A cut
(:meth:`~SocketTransport.abort`) shuts the TCP connection down through a plain handle of its
own, so that it needs no lock and works from any thread at any time.

Through a proxy (``Configuration.proxy``) the same transport runs over the proxy's ``CONNECT``
tunnel, which :func:`open_socket` opens itself (TLS to an ``https://`` proxy too; a refusal or a
broken answer is a :class:`TunnelError`). Only ``wss://`` through an ``https://`` proxy (TLS
inside TLS) is opened by ``websockets.sync.client.connect``, which :class:`ThreadedTransport`
adapts: ``websockets``' own thread then reads that TLS connection while callers write on it,
the race described above, which this path cannot lock out; and that client sends no
``CONNECT`` header but the proxy URL's credentials.
"""

from __future__ import annotations

import base64
import errno
import inspect
import logging
import math
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Protocol

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect
from websockets.uri import WebSocketURI, parse_uri

from openapi_client.locks import new_lock
from openapi_client.redaction import install_filter
from openapi_client.websocket.messages import Assembler, Data
from openapi_client.websocket.tunnel import (
    TunnelBroken,
    TunnelClosed,
    TunnelError,
    TunnelRefused,
    connect_headers,
    connect_request,
    printable,
    proxy_authority,
    tunnel_answer,
)

__all__ = [
    "LONGEST_WAIT",
    "Closed",
    "Data",
    "SocketTransport",
    "ThreadedTransport",
    "Transport",
    "TunnelBroken",
    "TunnelClosed",
    "TunnelError",
    "TunnelRefused",
    "open_socket",
    "open_through_proxy",
    "printable",
    "proxy_authority",
]

#: Bytes asked of the socket per read (a TLS socket returns at most one record).
_READ_SIZE = 65536

_PONG = Opcode.PONG
_OPEN, _CLOSED = State.OPEN, State.CLOSED
_INVALID_DATA = 1007
_INTERNAL_ERROR = 1011
_monotonic = time.monotonic

#: The longest single wait on the socket, in seconds: a longer one (a timer from a setting or a
#: server, whatever its size) is waited in turns of this length.
LONGEST_WAIT = 3600.0

#: What a non-blocking operation raises when it must wait for the socket.
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

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
    """What a connection needs from the wire. Only the connection's own thread calls
    :meth:`read`; any thread may call the others."""

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
        """Start the closing handshake (``read`` completes it, and cuts the connection when the
        close timeout passes)."""

    def abort(self, code: int = 1001, reason: str = "") -> None:
        """Cut the connection without waiting (a close frame first if it can go at once): the
        next ``read`` reports its end."""

    def cut(self) -> None:
        """Cut the connection now, without a close frame and without any lock (any thread)."""

    def release(self) -> None:
        """Free the socket once the connection has ended and nobody reads any more."""


class SocketTransport:
    """A socket and the ``ClientProtocol`` that frames it.

    :param sock: connected, TLS done, handshake done.
    :param protocol: the protocol after a successful opening handshake.
    :param backlog: frames that came with the handshake's response.
    :param keepalive: seconds between pings, and how long a pong may take; None: no pings.
    :param close_timeout: seconds to wait for the closing handshake before cutting the socket.
    :param write_timeout: the longest a write may wait for room in the socket's buffer.
    :param cut: a plain handle on the same TCP connection, to shut it down from any thread
        (for a TLS socket; a plain socket is its own).
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: ClientProtocol,
        backlog: list[Frame],
        keepalive: float | None,
        close_timeout: float,
        write_timeout: float = 10.0,
        cut: socket.socket | None = None,
    ) -> None:
        self._sock = sock
        self._protocol = protocol
        self._backlog = backlog
        self._keepalive = keepalive
        self._close_timeout = close_timeout
        self._write_timeout = write_timeout
        self._cut = cut if cut is not None else sock
        sock.setblocking(False)
        secure = isinstance(sock, ssl.SSLSocket)
        #: Serializes every operation on the TLS object (None for a plain socket, whose reads
        #: and writes may run at once). Held only for one non-blocking call at a time.
        self._tls: threading.Lock | None = threading.Lock() if secure else None
        #: Guards the protocol: held only while it parses or makes frames.
        self._lock = new_lock()
        #: Held by a writer for a whole write, so that frames leave whole and in the order the
        #: protocol made them. Taken before ``_lock`` by whoever takes both.
        self._write_lock = new_lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._poll = _Readable(sock, self._wake_r)
        #: Whether TLS has decrypted bytes that no read returned yet (no ``poll`` needed then).
        self._tls_pending = secure and self._pending_now()
        self._assembler = Assembler()
        now = _monotonic()
        self._next_ping = None if keepalive is None else now + keepalive
        self._ping: bytes | None = None
        self._ping_deadline = 0.0
        self._pong_looked_for = False
        self._pings = 0
        self._close_deadline: float | None = None
        self._released = False
        # Frames that came with the handshake's answer were processed with it: a close frame
        # among them is answered now, and its close timeout runs from now.
        with self._lock:
            writes = protocol.data_to_send()
            if protocol.close_expected():
                self._close_deadline = now + close_timeout
        self._write_quietly(writes)

    # -- reading (the connection's own thread) --------------------------------------------------

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
            if self._tls_pending or self._poll.wait(wait):
                messages = self._receive()
                if messages:
                    return messages
            now = _monotonic()

    def _receive(self) -> list[Data]:
        """One read of the socket, fed to the protocol; the messages it completed."""
        sock = self._sock
        tls = self._tls
        try:
            if tls is None:
                data = sock.recv(_READ_SIZE)
            else:
                with tls:
                    try:
                        data = sock.recv(_READ_SIZE)
                    finally:
                        self._tls_pending = self._pending_now()
        except ssl.SSLWantWriteError:  # TLS must write before it can read: wait for room
            self._poll.wait_writable(min(self._write_timeout, 1.0))
            return []
        except _WOULD_BLOCK:  # not a whole TLS record yet, or a wake-up with nothing to read
            return []
        except OSError:  # reset, a cut, or a TLS failure: the end of the stream either way
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
        if writes:
            self._write_quietly(writes)
        messages = self._assemble(events) if events else []
        if ended:
            self.release()
            if not messages:
                raise self._ended()
        return messages

    def _pending_now(self) -> bool:
        """Whether TLS holds decrypted bytes (under ``_tls``)."""
        try:
            return bool(self._sock.pending())  # type: ignore[attr-defined]
        except (OSError, ValueError):
            return False

    def _assemble(self, frames: list[Frame]) -> list[Data]:
        messages: list[Data] = []
        for frame in frames:
            if frame.opcode is _PONG:
                if bytes(frame.data) == self._ping:
                    self._ping = None
                continue
            try:
                message = self._assembler.add(frame)
            except UnicodeDecodeError as error:
                self._fail(_INVALID_DATA, f"{error.reason} at position {error.start}")
                break
            if message is not None:
                messages.append(message)
        return messages

    def _timers(self, now: float) -> float | None:
        """Run what is due (a ping, a ping's timeout, the close timeout); seconds until the
        next one, None when nothing is scheduled."""
        wait: float | None = None
        close_deadline = self._close_deadline
        if close_deadline is not None:
            if now >= close_deadline:
                self.cut()  # the next read sees the end of the stream
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
                    self.cut()
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
        return self._tls_pending or self._poll.wait(0)

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
                self.cut()  # a write cut short: nothing more can go on this stream
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
        self._wake()  # the reader waits for the answer until the close timeout, from now

    def abort(self, code: int = 1001, reason: str = "") -> None:
        if self._write_lock.acquire(blocking=False):  # a close frame, if it can go at once
            try:
                if self._lock.acquire(blocking=False):
                    try:
                        protocol = self._protocol
                        if protocol.state is _OPEN:
                            protocol.send_close(code, reason)
                        writes = protocol.data_to_send()
                    finally:
                        self._lock.release()
                    self._write_once(writes)
            finally:
                self._write_lock.release()
        self.cut()

    def cut(self) -> None:
        """Shut the TCP connection down (both ways): wakes a read in progress; the descriptor
        stays until :meth:`release`. Needs no lock: any thread, at any time."""
        try:
            self._cut.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._wake()

    def _wake(self) -> None:
        """Make the reader look at its timers again now."""
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (a wake-up is pending anyway) or released
            pass

    def release(self) -> None:
        with self._write_lock:  # no write in progress may meet a closed (and reused) descriptor
            with self._lock:
                if self._released:
                    return
                self._released = True
                self._protocol.receive_eof()  # idempotent: the protocol is CLOSED from here on
                tls = self._tls
                if tls is not None:
                    with tls:
                        self._sock.close()
                else:
                    self._sock.close()
                if self._cut is not self._sock:
                    self._cut.close()
                self._poll.close()
                self._wake_r.close()
                self._wake_w.close()

    def _write(self, writes: list[bytes]) -> None:
        """Write what the protocol made (holding ``_write_lock``, not ``_lock``), waiting for
        room at most ``write_timeout`` seconds.

        :raises OSError: the connection failed, or had no room for that long.
        """
        deadline: float | None = None
        for data in writes:
            if not data:  # the protocol is done sending: half-close
                try:
                    self._cut.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            while data:
                sent = self._send_some(data)
                if sent == len(data):
                    break
                if sent:
                    data = data[sent:]  # a plain socket's partial write (TLS writes all or none)
                if deadline is None:
                    deadline = _monotonic() + self._write_timeout
                left = deadline - _monotonic()
                if left <= 0:
                    raise OSError(errno.ETIMEDOUT, "no room to write for the write timeout")
                self._poll.wait_writable(left)

    def _send_some(self, data: bytes) -> int:
        """One non-blocking write; the bytes written (0 when the socket has no room: a TLS
        write is then repeated with the same bytes, as OpenSSL requires)."""
        tls = self._tls
        try:
            if tls is None:
                return self._sock.send(data)
            with tls:
                return self._sock.send(data)
        except _WOULD_BLOCK:
            return 0

    def _write_once(self, writes: list[bytes]) -> None:
        """What fits at once of ``writes``, without waiting (for a last close frame)."""
        for data in writes:
            if data:
                try:
                    self._send_some(data)
                except OSError:
                    return

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
            self.cut()


class _Readable:
    """Waits until a socket has something to read (or a wake-up came), for at most a given time."""

    def __init__(self, sock: socket.socket, wake: socket.socket) -> None:
        self._sock = sock
        self._wake = wake
        self._poller: Any = None
        self._out_poller: Any = None
        poll = getattr(select, "poll", None)
        if poll is not None:
            self._poller = poll()
            self._poller.register(sock, select.POLLIN)
            self._poller.register(wake, select.POLLIN)
            self._out_poller = poll()
            self._out_poller.register(sock, select.POLLOUT)
            self._sock_fd = sock.fileno()

    def wait(self, timeout: float | None) -> bool:
        """Whether the socket became readable within ``timeout`` seconds (at most
        :data:`LONGEST_WAIT`: the caller looks again); False also after a wake-up."""
        timeout = LONGEST_WAIT if timeout is None else min(max(timeout, 0.0), LONGEST_WAIT)
        poller = self._poller
        if poller is None:  # pragma: no cover - platforms without poll (Windows)
            ready = select.select([self._sock, self._wake], [], [], timeout)[0]
            woken = self._wake in ready
            readable = self._sock in ready
        else:
            events = poller.poll(math.ceil(timeout * 1000))
            woken = readable = False
            for fd, _ in events:
                if fd == self._sock_fd:
                    readable = True
                else:
                    woken = True
        if woken:
            try:
                self._wake.recv(4096)
            except OSError:
                pass
        return readable

    def wait_writable(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for room to write."""
        timeout = min(max(timeout, 0.0), LONGEST_WAIT)
        try:
            if self._out_poller is None:  # pragma: no cover - platforms without poll (Windows)
                select.select([], [self._sock], [], timeout)
            else:
                self._out_poller.poll(math.ceil(timeout * 1000))
        except (OSError, ValueError):  # closed meanwhile: the write that follows says so
            pass

    def close(self) -> None:
        """Forget the descriptors (before they are closed and maybe reused)."""
        for poller, targets in (
            (self._poller, (self._sock_fd, self._wake)),
            (self._out_poller, (self._sock_fd,)),
        ):
            if poller is None:
                continue
            for target in targets:
                try:
                    poller.unregister(target)
                except (KeyError, ValueError, OSError):
                    pass


class ThreadedTransport:
    """A connection ``websockets.sync.client.connect`` opened (``wss://`` through an ``https://``
    proxy): its own thread reads the socket and answers pings; ``read`` takes the messages from
    it."""

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
        # websockets waits for the closing handshake (at most its close timeout) itself: on a
        # thread of its own, so that the caller (maybe the reader) does not wait.
        threading.Thread(
            target=self._ws.close, args=(code, reason), name="openapi_client-ws-close", daemon=True
        ).start()

    def abort(self, code: int = 1001, reason: str = "") -> None:
        """Close as at once as ``websockets`` lets: the close frame goes now, and it drops the
        socket at its close timeout."""
        self.close(code, reason)

    def cut(self) -> None:
        """As :meth:`abort`: ``websockets`` owns the socket."""
        self.abort(1001, "")

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
    proxy: str | None = None,
    proxy_headers: Mapping[str, str] | None = None,
    proxy_ssl_context: ssl.SSLContext | None = None,
) -> SocketTransport:
    """Connect to ``url``: TCP (through ``proxy``'s tunnel when given: TLS to an ``https://``
    proxy with ``proxy_ssl_context``), TLS for ``wss://``, then the opening handshake, all within
    ``open_timeout`` seconds.

    :raises Exception: what the socket, ``ssl`` or ``websockets`` raised (``InvalidURI``,
        ``InvalidStatus``, ``InvalidHandshake``, ``OSError``, ``TimeoutError``, ``ValueError``),
        or :class:`TunnelError`; the caller turns it into the library's exception.
    """
    uri = parse_uri(url)
    extensions = _extensions(compression)
    deadline = _monotonic() + open_timeout
    cut: socket.socket | None = None
    if proxy is None:
        sock = socket.create_connection((uri.host, uri.port), timeout=open_timeout)
    else:
        sock, cut = _tunnel(proxy, proxy_headers, uri, deadline, proxy_ssl_context, user_agent)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        if uri.secure:  # (through an http:// proxy: wss:// through an https:// one is not here)
            context = ssl_context if ssl_context is not None else ssl.create_default_context()
            cut = sock.dup()  # a plain handle on the TCP connection, to cut it from any thread
            sock.settimeout(_left(deadline))
            sock = context.wrap_socket(sock, server_hostname=server_hostname or uri.host)
        protocol = ClientProtocol(
            uri, extensions=extensions, max_size=max_message_size, logger=_PROTOCOL_LOGGER
        )
        backlog = _handshake(sock, protocol, uri, user_agent, deadline)
    except BaseException:
        sock.close()
        if cut is not None:
            cut.close()
        raise
    return SocketTransport(
        sock, protocol, backlog, keepalive, close_timeout, write_timeout=open_timeout, cut=cut
    )


def _tunnel(
    proxy: str,
    headers: Mapping[str, str] | None,
    uri: WebSocketURI,
    deadline: float,
    context: ssl.SSLContext | None,
    user_agent: str,
) -> tuple[socket.socket, socket.socket | None]:
    """A connection to ``uri``'s host through ``proxy``'s ``CONNECT`` tunnel, before
    ``deadline``: TLS with an ``https://`` proxy (verified with ``context``, the configuration's),
    then the request and the head of the answer. Returns the socket, and for a TLS one a plain
    handle on its TCP connection (see :class:`SocketTransport`'s ``cut``).

    The request and the answer's head are handled here, not by ``http.client``: its
    ``set_tunnel`` documents no way to take the tunnel's socket, cannot speak TLS to the proxy,
    bounds each read rather than the whole answer, and reads through a buffer that would keep
    whatever follows the head; urllib3 builds on it and would do the TLS to the origin itself,
    away from this transport's lock.

    :raises TunnelError: the proxy could not be reached (the cause chained), or gave no tunnel.
    """
    parsed = urllib.parse.urlsplit(proxy)
    host = parsed.hostname or ""
    secure = parsed.scheme == "https"
    name = proxy_authority(proxy)
    request = connect_request(proxy, headers, uri.host, uri.port, user_agent)
    try:
        address = (host, parsed.port or (443 if secure else 80))
        sock = socket.create_connection(address, _left(deadline))
    except OSError as error:
        raise TunnelError(name) from error
    plain: socket.socket | None = None
    try:
        try:
            if secure:
                plain = sock.dup()
                context = context if context is not None else ssl.create_default_context()
                sock.settimeout(_left(deadline))
                sock = context.wrap_socket(sock, server_hostname=host)
            sock.settimeout(_left(deadline))
            sock.sendall(request)
            _read_tunnel_answer(sock, deadline, name)
        except OSError as error:
            raise TunnelError(name) from error
    except BaseException:
        sock.close()
        if plain is not None:
            plain.close()
        raise
    return sock, plain


def _read_tunnel_answer(sock: socket.socket, deadline: float, proxy: str) -> None:
    """Read the head of the proxy's answer to ``CONNECT``: nothing more, since the tunnel
    carries the client's bytes first (the WebSocket or TLS handshake).

    :raises TunnelError: the answer refused the tunnel, broke HTTP, or never came whole.
    """
    answer = bytearray()
    while True:
        sock.settimeout(_left(deadline))
        data = sock.recv(4096)
        answer += data
        if tunnel_answer(answer, proxy, eof=not data):
            return


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
    proxy_headers: Mapping[str, str] | None = None,
) -> ThreadedTransport:
    """Connect to a ``wss://`` URL through an ``https://`` proxy (TLS inside TLS) with
    ``websockets.sync.client.connect``: ``ssl_context`` verifies both the proxy and the origin.

    :raises Exception: as :func:`open_socket` (``websockets``' ``ProxyError`` and
        ``InvalidProxy`` in place of :class:`TunnelError`); ``ValueError`` for
        ``proxy_headers`` this client cannot send.
    """
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    kwargs: dict[str, Any] = {
        "open_timeout": open_timeout,
        "close_timeout": close_timeout,
        "max_size": max_message_size,
        "ping_interval": keepalive,
        "ping_timeout": keepalive,
        "compression": compression,
        "user_agent_header": user_agent,
        "logger": _PROTOCOL_LOGGER,
        "ssl": context,
        # Given, it makes websockets run the origin's TLS inside the proxy's; without it
        # websockets would wrap the proxy's TLS socket as if it were plain TCP.
        "proxy_ssl": context,
        "proxy": _proxy_with_credentials(proxy, proxy_headers),
    }
    if server_hostname is not None:
        kwargs["server_hostname"] = server_hostname
    if "legacy" in _CONNECT_PARAMETERS:
        kwargs["legacy"] = True  # the connection object itself: the transport closes it
    return ThreadedTransport(connect(url, **kwargs))


def _proxy_with_credentials(proxy: str, headers: Mapping[str, str] | None) -> str:
    """``proxy`` as ``websockets``' client takes it (``scheme://[user:password@]host:port``, the
    path it would refuse dropped, as the session's own tunnel ignores it): that client sends only
    the proxy URL's user info (as a Basic ``Proxy-Authorization``), so the Basic credentials of
    a ``Proxy-Authorization`` in ``headers`` go into the URL; nothing else can be sent.

    :raises ValueError: ``headers`` holds another header, or credentials that are not Basic.
    """
    parsed = urllib.parse.urlsplit(proxy)
    headers = connect_headers(parsed, headers)  # registers the credentials for redaction
    authority = proxy_authority(proxy)
    if not headers:
        return f"{parsed.scheme}://{authority}"
    others = sorted(name for name in headers if name.lower() != "proxy-authorization")
    credentials = None if others else _basic_credentials(next(iter(headers.values())))
    if credentials is None:
        refused = ", ".join(others) or "a Proxy-Authorization that is not Basic"
        raise ValueError(
            f"Configuration.proxy_headers ({refused}) cannot be sent to an https:// proxy for "
            "a wss:// session: that tunnel is opened by websockets' client, which sends only "
            "the proxy URL's credentials. Put them in Configuration.proxy "
            "(https://user:password@host:port) or use an http:// proxy"
        )
    user, password = (urllib.parse.quote(part, safe="") for part in credentials)
    return f"{parsed.scheme}://{user}:{password}@{authority}"


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    """``(user, password)`` of a Basic ``Proxy-Authorization`` value, None for another."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
        user, colon, password = decoded.partition(":")
    except ValueError:  # not base64, or not UTF-8
        return None
    return (user, password) if colon else None
