"""Deribit's WebSocket API: one connection's loop around ``websockets``' sans-I/O protocol.

The HTTP server hands over a connection whose request is an ``Upgrade: websocket`` GET on
``/ws/api/v2``. From there the connection's own thread runs :meth:`WebSocketEndpoint.serve`: the
opening handshake, framing, ping/pong and the closing handshake come from
:class:`websockets.server.ServerProtocol`; this module moves bytes between it and the socket, turns
text messages into JSON-RPC requests for the :class:`~.dispatch.Dispatcher`, and runs the timers
(heartbeats, idle rules, delayed answers, silences) with ``selectors`` timeouts.

Every write to the protocol and the socket holds the connection's lock, so notifications can be
published from other threads.

This module needs the ``websockets`` package (the ``[websocket]`` extra); the rest of the
simulator imports it only when it is installed.
"""

from __future__ import annotations

import heapq
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import InvalidState, ProtocolError
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from .connections import WebSocketRegistry
from .deribit import (
    CLOSE_HEARTBEAT,
    CLOSE_INACTIVITY,
    CLOSE_TOO_MANY_REQUESTS,
    INACTIVITY_SECONDS,
    MAX_REQUEST_BYTES,
    UNAUTHENTICATED_IDLE_SECONDS,
    WS_PATH,
)
from .dispatch import Dispatcher, internal_error
from .faults import API_PREFIX, Fault, FaultQueue, FaultSpec
from .methods import Call
from .recording import (
    WEBSOCKET,
    CancelOnDisconnectEvent,
    RecordedRequest,
    RequestLog,
    params_as_query,
)
from .rpc import (
    INVALID_REQUEST,
    NO_ID,
    TOO_MANY_REQUESTS,
    RpcError,
    encode,
    notification,
    now_us,
    read_request,
)
from .state import ConnectionState, SessionState

__all__ = ["MAX_FRAME_BYTES", "WebSocketEndpoint"]

#: The largest frame ``websockets`` reads from a client. Messages above
#: :data:`~.deribit.MAX_REQUEST_BYTES` but within this are answered with -32600 and the connection
#: stays open; a bigger frame makes ``websockets`` close the connection with 1009.
MAX_FRAME_BYTES = 1 << 20
#: Real seconds to wait for the client's close frame (or TCP close) after the server's.
CLOSE_TIMEOUT = 2.0

# Silent unless the application configures logging: the package logger's NullHandler covers it.
_LOGGER = logging.getLogger("openapi_client.simulator.websocket")

_TEST_REQUEST = notification("heartbeat", {"type": "test_request"})
_HEARTBEAT = notification("heartbeat", {"type": "heartbeat"})
_TOO_LARGE = RpcError(INVALID_REQUEST[0], "request entity too large")


@dataclass(frozen=True)
class _Request:
    """A JSON-RPC request read from the socket."""

    rpc_id: Any
    method_path: str  # below /api/v2, e.g. /public/test
    params: Mapping[str, Any]
    us_in: int
    record: RecordedRequest


class WebSocketEndpoint:
    """What every WebSocket connection shares: dispatcher, faults, log, registry and timing.

    :param time_scale: real seconds per API second for every timer (heartbeats, idle rules).
    :param stopping: set when the simulator stops.
    """

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        faults: FaultQueue,
        log: RequestLog,
        registry: WebSocketRegistry,
        state: SessionState,
        time_scale: float,
        stopping: threading.Event,
    ) -> None:
        self.dispatcher = dispatcher
        self.faults = faults
        self.log = log
        self.registry = registry
        self.state = state
        self.time_scale = time_scale
        self.stopping = stopping

    def serve(
        self,
        sock: socket.socket,
        client_address: tuple[str, int],
        connection_id: int,
        raw_request: bytes,
        headers: Mapping[str, str],
    ) -> None:
        """Complete the opening handshake of ``raw_request`` and serve the connection until it
        ends; the caller closes the socket afterwards."""
        protocol = ServerProtocol(
            extensions=[ServerPerMessageDeflateFactory()],
            max_size=MAX_FRAME_BYTES,
            logger=_LOGGER,
        )
        protocol.receive_data(raw_request)
        events = protocol.events_received()
        if events and isinstance(events[0], Request):
            response = protocol.accept(events[0])
            protocol.send_response(response)
            accepted = response.status_code == 101
        else:  # websockets could not parse it and has queued its own error response
            accepted = False
        for chunk in protocol.data_to_send():
            sock.sendall(chunk)
        if not accepted:
            return
        state = ConnectionState(
            connection_id, client_address, self.state.account_cancel_on_disconnect
        )
        connection = _Connection(self, sock, protocol, state, headers)
        self.registry.add(connection)
        try:
            connection.run()
        finally:
            self.registry.remove(connection)
            client_id = state.client_id or connection.last_client_id
            if state.cancel_on_disconnect and client_id is not None and not connection.logged_out:
                self.registry.record(
                    CancelOnDisconnectEvent(
                        connection_id, client_id, connection.end_reason or "closed", time.time()
                    )
                )


class _Connection:
    """One open WebSocket connection: its protocol, socket, settings and timers."""

    def __init__(
        self,
        endpoint: WebSocketEndpoint,
        sock: socket.socket,
        protocol: ServerProtocol,
        state: ConnectionState,
        headers: Mapping[str, str],
    ) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.protocol = protocol
        self.state = state
        self.headers = headers
        self._scale = endpoint.time_scale
        self._lock = threading.RLock()
        #: Why the connection ended, for cancel-on-disconnect; the first reason set wins.
        self.end_reason: str | None = None
        self.logged_out = False
        self.last_client_id: str | None = None
        self._finished = False
        self._close_deadline: float | None = None
        self._silent_until: float | None = None
        self._delayed: list[tuple[float, int, _Request]] = []
        self._sequence = 0
        self._fragments: list[bytes] | None = None
        self._fragment_size = 0
        now = time.monotonic()
        self._last_received = now
        # Heartbeats: the settings they were scheduled for, and the next events, in real seconds.
        self._heartbeat_epoch = 0
        self._heartbeat_period: float | None = None
        self._next_test_request: float | None = None
        self._test_request_deadline: float | None = None
        self._last_tick = now

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            while not self._finished:
                now = time.monotonic()
                if self._silent_until is not None and now < self._silent_until:
                    # Read nothing, send nothing; only the simulator stopping cuts it short.
                    if self.endpoint.stopping.wait(self._silent_until - now):
                        self._end("closed")
                    else:
                        self._run_timers(time.monotonic())
                    continue
                deadline = self._next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - now)
                if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                    timeout = 0.0  # bytes already decrypted: select would not see them
                    ready = True
                else:
                    ready = bool(selector.select(timeout))
                if ready:
                    self._read()
                if not self._finished:
                    self._run_timers(time.monotonic())

    def _read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        except OSError:
            data = b""
        with self._lock:
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            events = self.protocol.events_received()
            self._flush()  # pongs, and the answer to a close frame
        if not data:
            self._end("closed")
            return
        for event in events:
            if self._finished:
                return
            if isinstance(event, Frame):
                self._on_frame(event)
        if self.protocol.state is State.CLOSED:
            self._end("closed")

    def _on_frame(self, frame: Frame) -> None:
        data = bytes(frame.data)
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            if frame.fin:
                self._on_message(data)
            else:
                self._fragments, self._fragment_size = [data], len(data)
        elif frame.opcode is Opcode.CONT and self._fragments is not None:
            self._fragment_size += len(data)
            if self._fragment_size <= MAX_REQUEST_BYTES:
                self._fragments.append(data)
            if frame.fin:
                fragments, size = self._fragments, self._fragment_size
                self._fragments = None
                self._on_message(b"".join(fragments) if size <= MAX_REQUEST_BYTES else None)
        # A close frame needs nothing here: the protocol has answered it and ended the stream
        # (a server closes the TCP connection at once), so _flush has already ended the loop.

    # -- requests ----------------------------------------------------------------------------

    def _on_message(self, payload: bytes | None) -> None:
        """One client message; None stands for one too large to keep."""
        us_in = now_us()
        self._last_received = time.monotonic()
        envelope = self.endpoint.dispatcher.envelope
        if payload is None or len(payload) > MAX_REQUEST_BYTES:
            self._record(None, {}, NO_ID)
            self._send(envelope.error(_TOO_LARGE, us_in))
            return
        message = read_request(payload)
        rpc_id, method_path, params = message.rpc_id, message.method_path, message.params
        if message.error is not None:
            record = self._record(method_path, params, rpc_id)
            self.endpoint.log.annotate(record, message.error.code, message.error.explanation)
            self._send(envelope.error(message.error, us_in, rpc_id))
            return
        assert method_path is not None
        record = self._record(method_path, params, rpc_id)
        request = _Request(rpc_id, method_path, params, us_in, record)
        fault = self.endpoint.faults.take(method_path, websocket=True)
        if fault is None:
            self._handle(request)
        else:
            self._deliver(fault, request)

    def _record(
        self, method_path: str | None, params: Mapping[str, Any], rpc_id: Any
    ) -> RecordedRequest:
        path = WS_PATH if method_path is None else API_PREFIX + method_path
        return self.endpoint.log.append(
            RecordedRequest(
                method="WS",
                target=WS_PATH,
                path=path,
                query=params_as_query(params),
                headers=self.headers,
                client_address=self.state.client_address,
                time=time.time(),
                transport=WEBSOCKET,
                connection_id=self.state.connection_id,
                rpc_id=None if rpc_id is NO_ID else rpc_id,
            ),
            is_auth=method_path == "/public/auth",
        )

    def _handle(self, request: _Request) -> None:
        """Answer one request (now, or when its delay or silence is over)."""
        if request.method_path == "/public/test":
            self._test_request_deadline = None  # the test_request is answered
        call = Call(
            WEBSOCKET,
            self.state.connection_id,
            self.state.client_address[0],
            connection=self.state,
        )
        rpc_id, us_in = request.rpc_id, request.us_in
        dispatcher = self.endpoint.dispatcher
        try:
            result = dispatcher.call(request.method_path, request.params, call)
        except Exception as exc:
            error = exc if isinstance(exc, RpcError) else internal_error(exc)
            self.endpoint.log.annotate(request.record, error.code, error.explanation)
            self._send(dispatcher.envelope.error(error, us_in, rpc_id))
            if error.code == TOO_MANY_REQUESTS[0]:
                self._close(*CLOSE_TOO_MANY_REQUESTS, reason="closed")
            return
        if call.client_id is not None:
            self.last_client_id = call.client_id
        if call.close_instead is not None:  # private/logout: no answer, no cancel-on-disconnect
            self.logged_out = True
            self._close(*call.close_instead, reason="closed")
            return
        self._send(dispatcher.envelope.success(result, us_in, rpc_id))
        self._reschedule_heartbeat()

    def _deliver(self, fault: FaultSpec, request: _Request) -> None:
        kind, params = fault.kind, fault.params
        now = time.monotonic()
        if kind is Fault.WS_DROP:
            self._end("fault")
        elif kind is Fault.WS_CLOSE:
            self._close(params["code"], params["reason"], reason="fault")
        elif kind is Fault.WS_SILENCE:
            self._silent_until = now + params["seconds"]
            self._postpone(self._silent_until, request)
        elif kind is Fault.WS_DELAY:
            self._postpone(now + params["seconds"], request)
        elif kind is Fault.WS_MALFORMED_FRAME:
            self.end_reason = self.end_reason or "fault"
            self._send(b"\xff\xfe")  # not UTF-8: the client must fail the connection (1007)
        elif kind is Fault.WS_OVERSIZED:
            self.end_reason = self.end_reason or "fault"
            self._send(_oversized(request.rpc_id, params["size"]))
        elif kind is Fault.WS_IGNORE_TEST:
            pass  # lost on the way: no answer, and a test_request stays unanswered
        else:  # pragma: no cover - the queue hands WebSocket requests WebSocket faults only
            raise AssertionError(kind)

    def _postpone(self, when: float, request: _Request) -> None:
        self._sequence += 1
        heapq.heappush(self._delayed, (when, self._sequence, request))

    # -- timers ------------------------------------------------------------------------------

    def _reschedule_heartbeat(self) -> None:
        """Follow set_heartbeat / disable_heartbeat: the first test_request one period later."""
        if self.state.heartbeat_epoch == self._heartbeat_epoch:
            return
        self._heartbeat_epoch = self.state.heartbeat_epoch
        interval = self.state.heartbeat_interval
        now = time.monotonic()
        self._heartbeat_period = None if interval is None else interval * self._scale
        self._next_test_request = (
            None if self._heartbeat_period is None else now + self._heartbeat_period
        )
        self._test_request_deadline = None
        self._last_tick = now

    def _idle_deadline(self) -> tuple[float, bool]:
        """When the connection idles out, and whether it is then dropped without a close."""
        if self.state.client_id is None and not self.state.subscriptions:
            return self._last_received + UNAUTHENTICATED_IDLE_SECONDS * self._scale, True
        return self._last_received + INACTIVITY_SECONDS * self._scale, False

    def _next_deadline(self) -> float | None:
        candidates = [
            self._close_deadline,
            self._test_request_deadline,
            self._next_test_request,
            self._delayed[0][0] if self._delayed else None,
        ]
        if self._close_deadline is None:
            candidates.append(self._idle_deadline()[0])
        return min((when for when in candidates if when is not None), default=None)

    def _run_timers(self, now: float) -> None:
        if self._silent_until is not None:
            if now < self._silent_until:
                return
            self._end_silence(now)
        if self._close_deadline is not None:
            if now >= self._close_deadline:
                self._end(self.end_reason or "closed")
            return  # closing: no more answers or heartbeats
        while self._delayed and self._delayed[0][0] <= now and not self._finished:
            self._handle(heapq.heappop(self._delayed)[2])
            if self._close_deadline is not None or self._silent_until is not None:
                return
        if self._finished:
            return
        if self._test_request_deadline is not None and now >= self._test_request_deadline:
            self._close(*CLOSE_HEARTBEAT, reason="heartbeat")
            return
        if self._next_test_request is not None and now >= self._next_test_request:
            self._send_test_request(now)
        idle_at, drop = self._idle_deadline()
        if now >= idle_at:
            if drop:
                self._end("inactivity")
            else:
                self._close(*CLOSE_INACTIVITY, reason="inactivity")

    def _send_test_request(self, now: float) -> None:
        assert self._heartbeat_period is not None
        if self._last_received <= self._last_tick:  # nothing arrived since the last one
            self._send(_HEARTBEAT)
        self._send(_TEST_REQUEST)
        self._test_request_deadline = now + self._heartbeat_period
        self._next_test_request = now + self._heartbeat_period
        self._last_tick = now

    def _end_silence(self, now: float) -> None:
        """Carry on after a silence, forgiving what it caused: the client could not be heard."""
        self._silent_until = None
        self._last_received = now
        if self._heartbeat_period is not None:
            self._next_test_request = now + self._heartbeat_period
            self._test_request_deadline = None
            self._last_tick = now
        with self._lock:
            self._flush()  # what was published meanwhile

    # -- writing and closing -----------------------------------------------------------------

    def notify(self, payload: bytes) -> bool:
        """Send a notification; safe from any thread."""
        return self._send(payload)

    def _send(self, payload: bytes) -> bool:
        with self._lock:
            try:
                self.protocol.send_text(payload)
            except (InvalidState, ProtocolError):  # closing or closed
                return False
            return self._flush()

    def _flush(self) -> bool:
        """Write what the protocol has queued (hold the lock); False once the socket failed."""
        if self._silent_until is not None:
            return True  # kept in the protocol until the silence ends
        for chunk in self.protocol.data_to_send():
            if not chunk:  # end of stream: the server closes the TCP connection
                self._end(self.end_reason or "closed")
                return True
            try:
                self.sock.sendall(chunk)
            except OSError:
                self._end(self.end_reason or "closed")
                return False
        return True

    def _close(self, code: int, reason_text: str, *, reason: str) -> None:
        """Start the closing handshake with ``code``; ``reason`` is for cancel-on-disconnect."""
        self.end_reason = self.end_reason or reason
        with self._lock:
            try:
                self.protocol.send_close(code, reason_text)
            except (InvalidState, ProtocolError):
                pass
            self._flush()
        if self._close_deadline is None:
            self._close_deadline = time.monotonic() + CLOSE_TIMEOUT

    def _end(self, reason: str) -> None:
        """Stop serving; the caller closes the TCP connection without a close frame."""
        self.end_reason = self.end_reason or reason
        self._finished = True


def _oversized(rpc_id: Any, size: int) -> bytes:
    """A JSON answer of exactly ``size`` bytes (or the smallest possible, for a huge id)."""
    head = b'{"jsonrpc":"2.0",' + (b"" if rpc_id is NO_ID else b'"id":' + encode(rpc_id) + b",")
    head += b'"result":"'
    tail = b'"}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail
