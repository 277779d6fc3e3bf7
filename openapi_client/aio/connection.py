"""One connection of the asyncio session: ``websockets``' sans-I/O ``ClientProtocol`` driven
over an asyncio protocol of the library's own.

:func:`open_connection` connects (TCP; a proxy's ``CONNECT`` tunnel when ``Configuration.proxy``
is set, TLS to an ``https://`` proxy; TLS to a ``wss://`` origin with the context the threaded
session uses; the opening handshake; all within the open timeout) and returns a
:class:`SessionConnection`. ``websockets`` makes and parses every frame (the handshake, masking,
the closing handshake, UTF-8 and size checks, answers to pings); this module moves bytes between
it and the asyncio transport, joins fragmented messages and runs the timers (keepalive pings,
the close timeout).

Messages are handed over in the protocol's own callback, ``data_received``, the moment their
bytes are parsed (:meth:`SessionConnection.start` says to whom): the session answers a
``test_request`` there and completes an answer's caller there, in the same turn of the event
loop, with no task between the socket and the caller.

Flow control both ways: a write never waits in the callback, but while the transport's buffer
is above its high-water mark (``pause_writing``) the connection stops reading, so a server that
floods pings or ``test_request``\\ s and reads nothing cannot make its answers pile up; and a
caller's message waits for room (:meth:`SessionConnection.wait_for_room`, at most the write
timeout, after which the connection is cut, as on the threaded session). A handshake is never
redirected: a 3xx answer is a refused handshake (the session's credentials travel inside the
connection, so a redirect would carry them to another origin).

:meth:`SessionConnection.cut` shuts the TCP connection down from any thread, without the event
loop (the watchdog's, while the loop may be blocked): the server sees the connection end at
once; the loop sees the end when it runs again.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.parse
from typing import Any, Callable, Optional

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from openapi_client.exceptions import OpenApiException
from openapi_client.redaction import redacted_exception
from openapi_client.websocket.connection import ConnectOptions, _connect_error
from openapi_client.websocket.events import logger
from openapi_client.websocket.jsonrpc import caused_by
from openapi_client.websocket.messages import Assembler
from openapi_client.websocket.transport import _PROTOCOL_LOGGER, _extensions
from openapi_client.websocket.tunnel import (
    TunnelError,
    connect_request,
    proxy_authority,
    tunnel_answer,
)
from openapi_client.websocket.url import Target

__all__ = ["SessionConnection", "open_connection"]

#: asyncio's own timeout error where it is not the builtin ``TimeoutError`` (Python < 3.11).
_ASYNCIO_TIMEOUT: tuple[type[Exception], ...] = (
    () if asyncio.TimeoutError is TimeoutError else (asyncio.TimeoutError,)
)

_TEXT, _PONG = Opcode.TEXT, Opcode.PONG
_OPEN, _CLOSED = State.OPEN, State.CLOSED
_INVALID_DATA = 1007
_INTERNAL_ERROR = 1011

#: What the session is given: each message (text decoded, binary as bytes), and the end.
OnMessage = Callable[[Any], None]
#: ``on_lost(closed, failure, cause)``: the close frames as ``ConnectionClosed`` (None if the
#: connection never got that far), a failure of the session's own, and what caused it.
OnLost = Callable[[Optional[ConnectionClosed], Optional[str], Optional[BaseException]], None]


class SessionConnection(asyncio.Protocol):
    """An open WebSocket connection: ``websockets``' ``ClientProtocol`` over an asyncio transport.

    Every method but :meth:`cut` runs on the event loop.

    :param protocol: the sans-I/O protocol, before its opening handshake.
    :param options: the timeouts (the write timeout is the open timeout), keepalive pings.
    """

    def __init__(self, protocol: ClientProtocol, options: ConnectOptions) -> None:
        self._protocol = protocol
        self._keepalive = options.keepalive_ping
        self._close_timeout = options.close_timeout
        self._write_timeout = options.open_timeout
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        #: A handle on the TCP connection to shut it down from any thread (:meth:`cut`).
        self._cut_socket: socket.socket | None = None
        self._handshake: asyncio.Future[None] | None = None
        self._on_message: OnMessage | None = None
        self._on_lost: OnLost | None = None
        #: Messages parsed before :meth:`start` (those that came with the handshake's answer).
        self._backlog: list[Any] = []
        self._assembler = Assembler()
        self._room: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._ping: bytes | None = None
        self._pings = 0
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._failure: str | None = None
        self._failure_cause: BaseException | None = None
        self._lost = False
        self._reported = False
        #: Done once the connection has ended (its transport closed).
        self.ended: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio's callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # a handle of its own: the descriptor cannot be another's later
            self._cut_socket = sock.dup()

    def data_received(self, data: bytes) -> None:
        protocol = self._protocol
        try:
            protocol.receive_data(data)
        except EOFError:  # bytes after the end of the stream (a cut): nothing to parse
            return
        events: list[Any] = protocol.events_received()  # frames, after the handshake's answer
        writes = protocol.data_to_send()  # pongs, the answer to a close, a failure's close
        if writes:
            self._write(writes)
        if self._close_timer is None and protocol.close_expected():
            self._start_close_timer()
        if not events and self._handshake is None:
            return
        handshake = self._handshake
        if handshake is not None:  # the first event answers the handshake, or it failed
            if not events and protocol.handshake_exc is None:
                return
            self._handshake = None
            if events and isinstance(events[0], Response):
                events = events[1:]
            if not handshake.done():
                handshake.set_result(None)
        deliver = self._on_message
        for frame in events:
            if frame.opcode is _TEXT and frame.fin:  # the usual message, whole in one frame
                try:
                    message: Any = str(frame.data, "utf-8")
                except UnicodeDecodeError as error:
                    self._invalid(error)
                    return
            elif frame.opcode is _PONG:
                if self._ping is not None and bytes(frame.data) == self._ping:
                    self._ping = None
                continue
            else:
                try:
                    message = self._assembler.add(frame)
                except UnicodeDecodeError as error:
                    self._invalid(error)
                    return
                if message is None:
                    continue
            if deliver is None:
                self._backlog.append(message)
                continue
            try:
                deliver(message)
            except BaseException as error:  # a fault of the library's: end the connection
                self._fail_reader(error)
                return

    def eof_received(self) -> bool | None:
        self._protocol.receive_eof()
        return None  # the transport closes: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if not self.ended.done():
            self.ended.set_result(None)
        protocol = self._protocol
        protocol.receive_eof()  # idempotent: the protocol is CLOSED from here on
        for timer in (self._keepalive_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._keepalive_timer = self._close_timer = None
        handshake = self._handshake
        if handshake is not None and not handshake.done():
            handshake.set_result(None)  # the opener finds the handshake failed
        self._writing_paused = False  # nothing more is written: no writer waits
        self._wake_writers()
        cut, self._cut_socket = self._cut_socket, None
        if cut is not None:
            cut.close()
        if self._on_lost is not None:
            self._report()

    def pause_writing(self) -> None:
        """The transport's buffer is full: read nothing more (answers to what is read would
        pile up) until it drains; callers' messages wait for room."""
        if self._lost:
            return
        self._writing_paused = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()
        self._wake_writers()

    # -- the session's side ---------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Whether messages may be sent (the closing handshake has not begun)."""
        return self._protocol.state is _OPEN and not self._lost

    @property
    def writing_paused(self) -> bool:
        """Whether the transport's buffer is above its high-water mark: a caller's message
        waits for room first (:meth:`wait_for_room`)."""
        return self._writing_paused

    def start(self, on_message: OnMessage, on_lost: OnLost) -> None:
        """Hand every message to ``on_message`` from now on (first those that came with the
        handshake's answer), and the connection's end to ``on_lost`` (at once if it has ended
        already)."""
        self._on_message = on_message
        self._on_lost = on_lost
        backlog, self._backlog = self._backlog, []
        for message in backlog:
            try:
                on_message(message)
            except BaseException as error:
                self._fail_reader(error)
                break
        if self._keepalive is not None and self._protocol.state is _OPEN:
            self._keepalive_timer = self._loop.call_later(self._keepalive, self._send_ping)
        if self._lost:
            self._report()

    def send(self, text: str) -> None:
        """Write ``text`` as one frame, without waiting (nothing when the connection is
        closing)."""
        protocol = self._protocol
        if protocol.state is not _OPEN or self._lost:
            return
        protocol.send_text(text.encode())
        self._write(protocol.data_to_send())

    async def wait_for_room(self) -> None:
        """Wait until the transport's buffer is below its low-water mark (every waiter is
        woken then: look at :attr:`writing_paused` again before writing); at most the write
        timeout, after which the connection is cut (the end is reported as usual)."""
        if not self._writing_paused or self._lost:
            return
        room = self._room
        if room is None:
            room = self._room = self._loop.create_future()
        timer = self._loop.call_later(self._write_timeout, self._no_room, room)
        try:
            await asyncio.shield(room)
        finally:
            timer.cancel()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake: the close frame now; the connection is cut if the
        server has not ended it within the close timeout."""
        protocol = self._protocol
        if protocol.state is not _OPEN or self._lost:
            return
        protocol.send_close(code, reason)
        self._write(protocol.data_to_send())
        if self._close_timer is None:
            self._start_close_timer()

    def abort(self, code: int = 1001, reason: str = "") -> None:
        """Drop the connection now: the close frame first if the socket takes it at once."""
        protocol = self._protocol
        transport = self._transport
        if protocol.state is _OPEN and not self._lost and transport is not None:
            protocol.send_close(code, reason)
            for data in protocol.data_to_send():
                if data:
                    transport.write(data)
        if transport is not None:
            transport.abort()

    def cut(self) -> None:
        """Shut the TCP connection down, both ways, from any thread: the server sees it end at
        once, even while the event loop is blocked; the loop sees the end when it runs again."""
        sock = self._cut_socket
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError) as error:  # already gone
            logger.debug("cutting a connection: %r", redacted_exception(error))

    # -- inside ---------------------------------------------------------------------------------

    def _write(self, writes: list[bytes]) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        for data in writes:
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # the protocol is done sending: half-close
                transport.write_eof()

    def _invalid(self, error: UnicodeDecodeError) -> None:
        """A text message that is not UTF-8: the server's fault (close code 1007)."""
        self._fail(_INVALID_DATA, f"{error.reason} at position {error.start}")

    def _fail(self, code: int, reason: str) -> None:
        """End the connection for a fault of the server's (the protocol sends the close frame,
        and the server has the close timeout to end the connection)."""
        protocol = self._protocol
        if protocol.state is _CLOSED:
            return
        protocol.fail(code, reason)
        self._write(protocol.data_to_send())
        if self._close_timer is None:
            self._start_close_timer()

    def drop(self, failure: str, cause: BaseException | None = None) -> None:
        """Drop the connection for a reason of the session's own (``failure``, reported as
        how the connection ended), the close frame first if the socket takes it at once."""
        if self._failure is None:
            self._failure = failure
            self._failure_cause = cause
        self.abort(_INTERNAL_ERROR if cause is not None else 1001, "")

    def _fail_reader(self, error: BaseException) -> None:
        """Handing a message over failed (a fault of the library's): the connection ends
        with "the reader failed"."""
        logger.error(
            "the reader of the WebSocket connection failed; the connection is closed",
            exc_info=redacted_exception(error),
        )
        self.drop(f"the reader failed ({type(error).__name__})", error)

    def _start_close_timer(self) -> None:
        transport = self._transport
        if transport is not None:
            self._close_timer = self._loop.call_later(self._close_timeout, transport.abort)

    def _send_ping(self) -> None:
        """Keepalive: a ping, and its pong due within the same period."""
        protocol = self._protocol
        keepalive = self._keepalive
        if protocol.state is not _OPEN or keepalive is None:
            return
        if self._ping is not None:  # the last ping's pong never came
            self._fail(_INTERNAL_ERROR, "keepalive ping timeout")
            transport = self._transport
            if transport is not None:
                transport.abort()
            return
        self._pings += 1
        self._ping = self._pings.to_bytes(4, "big")
        protocol.send_ping(self._ping)
        self._write(protocol.data_to_send())
        self._keepalive_timer = self._loop.call_later(keepalive, self._send_ping)

    def _no_room(self, room: asyncio.Future[None]) -> None:
        """A write waited the write timeout for room: nothing more can go; cut."""
        if not room.done():
            logger.debug("no room to write for %g s: cutting the connection", self._write_timeout)
            transport = self._transport
            if transport is not None:
                transport.abort()

    def _wake_writers(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    def _report(self) -> None:
        if self._reported:
            return
        self._reported = True
        on_lost = self._on_lost
        assert on_lost is not None
        protocol = self._protocol
        closed = None if protocol.handshake_exc is not None else protocol.close_exc
        on_lost(closed, self._failure, self._failure_cause)

    # -- opening --------------------------------------------------------------------------------

    async def handshake(self, user_agent: str) -> None:
        """Send the opening handshake's request and wait for its answer.

        :raises Exception: what ``websockets`` found wrong with the answer (``InvalidStatus``
            for a refusal or a redirect, ``InvalidHandshake``), ``ConnectionError`` when the
            server closed the connection first.
        """
        protocol = self._protocol
        request = protocol.connect()
        request.headers.pop("User-Agent", None)
        request.headers["User-Agent"] = user_agent
        self._handshake = self._loop.create_future()
        protocol.send_request(request)
        self._write(protocol.data_to_send())
        await self._handshake
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc


class _TunnelAnswer(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT``, and nothing after it (reading stops there)."""

    def __init__(self, proxy: str) -> None:
        self._proxy = proxy
        self._answer = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._answer += data
        self._settle(False)

    def eof_received(self) -> bool | None:
        self._settle(True)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is not None:
                self.done.set_exception(exc)
            else:
                self._settle(True)

    def _settle(self, eof: bool) -> None:
        if self.done.done():
            return
        try:
            if not tunnel_answer(self._answer, self._proxy, eof):
                return
        except TunnelError as error:
            self.done.set_exception(error)
            return
        assert self.transport is not None
        self.transport.pause_reading()  # what follows is the session's
        self.done.set_result(None)


async def open_connection(
    target: Target,
    options: ConnectOptions,
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    user_agent: str,
    proxy: str | None,
    proxy_headers: Any = None,
) -> SessionConnection:
    """Open a connection to ``target`` (through the tunnel of ``proxy``, sending it
    ``proxy_headers`` and the credentials of its URL), within ``options.open_timeout`` seconds;
    ``ssl_context`` verifies a ``wss://`` origin and an ``https://`` proxy.

    :raises OpenApiException: the handshake was answered with an HTTP status (e.g. 429 with
        ``retry_after``, or a redirect); :class:`~openapi_client.exceptions.ApiTransportError`
        subclasses when no connection was made (a proxy that refused the tunnel included);
        ``ApiValueError`` for a URL or setting that cannot work.
    """
    failure: OpenApiException | None = None
    try:
        return await asyncio.wait_for(
            _open(target, options, ssl_context, server_hostname, user_agent, proxy, proxy_headers),
            options.open_timeout,
        )
    except Exception as error:
        failure = caused_by(_connect_error(_as_handled(error), target, options, proxy), error)
    raise failure  # outside the except: no unredacted context


async def _open(target: Target, options: ConnectOptions, *settings: Any) -> SessionConnection:
    """:func:`open_connection`'s work; ``settings`` are its keyword arguments, in order."""
    ssl_context, server_hostname, user_agent, proxy, proxy_headers = settings
    uri = parse_uri(target.url)
    protocol = ClientProtocol(
        uri,
        extensions=_extensions(options.compression),
        max_size=options.max_message_size,
        logger=_PROTOCOL_LOGGER,
    )
    loop = asyncio.get_running_loop()
    connection = SessionConnection(protocol, options)
    tls = None
    if uri.secure:
        tls = ssl_context if ssl_context is not None else ssl.create_default_context()
    hostname = server_hostname or uri.host
    transport: asyncio.Transport | None = None
    try:
        if proxy is None:
            transport, _ = await loop.create_connection(
                lambda: connection,
                uri.host,
                uri.port,
                ssl=tls,
                server_hostname=hostname if tls is not None else None,
            )
        else:
            transport = await _tunnel(
                proxy, proxy_headers, uri.host, uri.port, ssl_context, user_agent
            )
            transport.set_protocol(connection)
            if tls is not None:
                transport = await _start_tls(loop, transport, connection, tls, hostname)
            else:
                transport.resume_reading()
            connection.connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        await connection.handshake(user_agent)
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    return connection


async def _tunnel(
    proxy: str,
    headers: Any,
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    user_agent: str,
) -> asyncio.Transport:
    """A connection to ``host:port`` through ``proxy``'s ``CONNECT`` tunnel (TLS to an
    ``https://`` proxy, verified with ``context``), reading paused after the proxy's answer.

    :raises TunnelError: the proxy could not be reached (the cause chained), or gave no tunnel.
    """
    parsed = urllib.parse.urlsplit(proxy)
    secure = parsed.scheme == "https"
    name = proxy_authority(proxy)
    request = connect_request(proxy, headers, host, port, user_agent)
    loop = asyncio.get_running_loop()
    answer = _TunnelAnswer(name)
    proxy_host = parsed.hostname or ""
    try:
        transport, _ = await loop.create_connection(
            lambda: answer,
            proxy_host,
            parsed.port or (443 if secure else 80),
            ssl=(context if context is not None else ssl.create_default_context())
            if secure
            else None,
            server_hostname=proxy_host if secure else None,
        )
    except OSError as error:
        raise TunnelError(name) from error
    try:
        transport.write(request)
        try:
            await answer.done
        except OSError as error:
            raise TunnelError(name) from error
    except BaseException:
        transport.abort()
        raise
    return transport


async def _start_tls(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    connection: SessionConnection,
    context: ssl.SSLContext,
    hostname: str,
) -> asyncio.Transport:
    """``loop.start_tls``: TLS to the origin over the tunnel, inside the proxy's TLS when the
    proxy is ``https://``.

    On CPython 3.11 a TLS handshake that fails inside another TLS connection (an untrusted
    origin certificate, say) raises a ``TypeError`` of asyncio's own as it closes the outer
    connection (its ``_SSLProtocolTransport._force_close`` passes ``SSLProtocol._abort`` an
    argument that method does not take); the handshake's error is that ``TypeError``'s context,
    and is raised in its place.
    """
    try:
        started = await loop.start_tls(transport, connection, context, server_hostname=hostname)
    except TypeError as error:
        handshake = error.__context__
        if isinstance(handshake, ssl.SSLError):
            raise handshake from None
        raise
    assert started is not None
    return started


def _as_handled(error: Exception) -> Exception:
    """``error`` as the threaded session's error mapping knows it: asyncio's own
    ``TimeoutError`` (not the builtin one before Python 3.11) as a timeout."""
    if isinstance(error, _ASYNCIO_TIMEOUT):
        return TimeoutError(str(error))
    return error
