"""Serving connections: keep-alive, the connection limit, request recording and faults.

Built on :mod:`socketserver` with one daemon thread per connection. Each response is written with
a single ``send`` and Nagle's algorithm is off, so a request costs one round trip on loopback.
With an :class:`ssl.SSLContext` each accepted connection is wrapped server-side and its TLS
handshake runs on the connection's own thread, so a client that fails or stalls the handshake
never holds up the others.

A GET on ``/ws/api/v2`` asking to upgrade to WebSocket is handed, with its connection, to
:class:`~.ws.WebSocketEndpoint` (when the ``websockets`` package is installed).
"""

from __future__ import annotations

import selectors
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from itertools import count
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from .deribit import WS_PATH
from .dispatch import Dispatcher
from .faults import API_PREFIX, Fault, FaultQueue, FaultSpec
from .methods import Call
from .recording import HTTP, RecordedRequest, RequestLog, params_as_query
from .rpc import (
    BAD_REQUEST,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NO_ID,
    TOO_MANY_REQUESTS,
    RpcError,
    now_us,
    read_request,
)
from .wire import BadRequest, RequestHead, read_head, response

if TYPE_CHECKING:
    from .ws import WebSocketEndpoint

__all__ = ["HttpServer", "without_session_tickets"]

JSON = "application/json"
#: Largest request body read (and discarded); a bigger one is refused and the connection closed.
MAX_BODY = 1 << 20

HTML_503_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Temporarily Unavailable</title></head>\n"
    b"<body><h1>503 Service Temporarily Unavailable</h1>\n"
    b"<p>The server is temporarily unable to service your request.</p>\n"
    b"<hr><p>edge</p></body></html>\n"
)
NON_JSON_BODY = b"OK - this answer is deliberately not JSON (simulator fault non_json)\n"
_RESET_LINGER = struct.pack("ii", 1, 0)
#: The longest a client may take over its TLS handshake, in seconds.
HANDSHAKE_TIMEOUT = 5.0
_ALLOW = (("Allow", "GET, POST"),)
#: What a WebSocket upgrade gets when the ``websockets`` package is missing.
NO_WEBSOCKETS_BODY = (
    b"The simulator's WebSocket API needs the 'websockets' package: "
    b"pip install 'openapi-client-deribit-session[websocket]'\n"
)


def without_session_tickets(context: ssl.SSLContext) -> ssl.SSLContext:
    """Stop ``context`` from sending session tickets after the TLS handshake; returns it.

    An OpenSSL server sends TLS 1.3 session tickets right after the handshake, while the client
    writes its first request. A client that reads and writes one TLS socket from two threads at
    once (the threaded client of ``websockets`` 15 sits in a blocking read from the start) then
    processes the tickets in one thread while the other writes, which OpenSSL does not support:
    now and then the request never reaches the socket, and both sides wait for each other until
    a timeout. Without tickets the reader has nothing to process before the server answers. The
    simulator loses nothing by it: its clients never resume a TLS session.

    ``num_tickets`` can only be set on a ``PROTOCOL_TLS_SERVER`` context. A generic
    ``PROTOCOL_TLS`` one (what ``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)`` makes
    on Python 3.9) is held to TLS 1.2 instead, whose tickets travel inside the handshake.

    :raises ValueError: for a client-side context, or a generic one that requires TLS 1.3.
    """
    if context.protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError(
            "ssl_context must be a server-side context holding a certificate and key, e.g. "
            "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) and load_cert_chain(); "
            "got a client-side one (PROTOCOL_TLS_CLIENT)"
        )
    if context.protocol == ssl.PROTOCOL_TLS_SERVER:
        context.num_tickets = 0
        return context
    if context.minimum_version == ssl.TLSVersion.TLSv1_3:
        raise ValueError(
            "ssl_context requires TLS 1.3 but is not a PROTOCOL_TLS_SERVER context, so the "
            "simulator cannot turn its session tickets off: create it with "
            "ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"
        )
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


class _HttpRequest:
    """One HTTP request as the API sees it: which method it calls, with what, and, for a POSTed
    JSON-RPC request, its ``id`` (or why it cannot be read).

    :param target: the request target (path and query).
    :param path: the target's path; for a POST to the API root, the path of the method its
        body names (``/api/v2/public/test``).
    :param params: the query's parameters (GET) or the JSON-RPC ``params`` (POST).
    :param body: a POST's body as text, which a request signature covers.
    """

    __slots__ = (
        "_posted",
        "body",
        "in_api",
        "invalid",
        "method_path",
        "params",
        "path",
        "rpc_id",
        "target",
    )

    def __init__(
        self,
        target: str,
        path: str,
        params: Mapping[str, Any],
        *,
        body: str = "",
        rpc_id: Any = NO_ID,
        invalid: RpcError | None = None,
        posted: bool = False,
    ) -> None:
        self.target = target
        self.path = path
        self.in_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        self.method_path = path[len(API_PREFIX) :] if self.in_api else path
        self.params = params
        self.body = body
        self.rpc_id = rpc_id
        self.invalid = invalid
        self._posted = posted

    @classmethod
    def of(cls, verb: str, target: str, body: bytes) -> _HttpRequest:
        path, _, query_string = target.partition("?")
        if verb == "POST" and (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
            return cls._posted_request(target, path, body)
        query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        return cls(target, path, query)

    @classmethod
    def _posted_request(cls, target: str, path: str, raw: bytes) -> _HttpRequest:
        """A JSON-RPC request in a POST body, at the API root or at the method's own path."""
        at_root = path.rstrip("/") == API_PREFIX
        url_method = None if at_root else path[len(API_PREFIX) :]
        message = read_request(raw, method=url_method)
        error = message.error
        if message.method_path is not None:
            if url_method is not None and message.method_path != url_method:
                error = error or RpcError.of(
                    INVALID_REQUEST,
                    {"reason": "method_mismatch"},
                    explanation=f"the body calls {message.method_path.lstrip('/')!r} but the URL "
                    f"names {url_method.lstrip('/')!r}",
                )
            else:
                path = API_PREFIX + message.method_path
        body = raw.decode("utf-8", errors="replace")
        return cls(
            target,
            path,
            message.params,
            body=body,
            rpc_id=message.rpc_id,
            invalid=error,
            posted=True,
        )

    def recorded_query(self) -> dict[str, str]:
        """The parameters as :attr:`RecordedRequest.query` holds them."""
        if self._posted:
            return params_as_query(self.params)
        return dict(self.params)


class _Connection:
    """What the server needs to know about one accepted connection."""

    __slots__ = ("admitted", "id", "reset", "sock")

    def __init__(self, sock: socket.socket, admitted: bool, connection_id: int) -> None:
        self.sock = sock
        self.admitted = admitted
        self.id = connection_id
        self.reset = False


class HttpServer(socketserver.TCPServer):
    """Accepts connections and serves each on its own daemon thread.

    :param address: ``(host, port)`` to listen on.
    :param family: ``socket.AF_INET`` or ``socket.AF_INET6``.
    :param dispatcher: answers API requests.
    :param faults: faults to deliver instead of answers.
    :param log: where requests are recorded.
    :param max_connections: simultaneous connections served; further ones get HTTP 429.
    :param ssl_context: a server-side TLS context to serve HTTPS; None serves plain HTTP.
    :param websocket: serves WebSocket connections; None when ``websockets`` is not installed.
    """

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        *,
        dispatcher: Dispatcher,
        faults: FaultQueue,
        log: RequestLog,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        websocket: WebSocketEndpoint | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.address_family = family
        self.websocket = websocket
        self.ssl_context = ssl_context
        self.dispatcher = dispatcher
        self.faults = faults
        self.log = log
        self.max_connections = max_connections
        #: Set when the server stops; wakes hung and delayed requests.
        self.stopping = stopping if stopping is not None else threading.Event()
        self._ids = count(1)
        self._lock = threading.Lock()
        self._open: dict[_Connection, threading.Thread] = {}
        self._admitted = 0
        #: Connections accepted since the start, and TLS handshakes that failed.
        self.connections_accepted = 0
        self.tls_failures = 0
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, _Handler)

    def serve(self) -> None:
        """Accept connections until :meth:`stop_serving`; run it on its own thread."""
        self.socket.setblocking(False)  # a connection aborted before accept must not block us
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self._accept()

    def _accept(self) -> None:
        try:
            sock, address = self.socket.accept()
        except OSError:  # nothing to accept after all, or the listener was closed
            return
        sock.setblocking(True)
        with self._lock:
            self.connections_accepted += 1
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                # No I/O here: the handshake happens on the connection's thread.
                sock = self.ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
        except OSError:  # the peer is already gone
            sock.close()
            return
        self.process_request(sock, address)

    def stop_serving(self) -> None:
        """Stop accepting: wakes :meth:`serve` at once; then call :meth:`close_connections`."""
        self.stopping.set()
        self._wake_writer.send(b"\0")  # once: DeribitSimulator.stop runs this a single time

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            admitted = self._admitted < self.max_connections and not self.stopping.is_set()
            self._admitted += admitted
            connection = _Connection(request, admitted, next(self._ids))
            thread = threading.Thread(
                target=self._serve_connection,
                args=(connection, client_address),
                name=f"deribit-simulator connection {client_address[1]}",
                daemon=True,
            )
            self._open[connection] = thread
        try:
            thread.start()
        except RuntimeError:  # out of threads: drop this connection, keep accepting
            with self._lock:
                self._admitted -= admitted
                del self._open[connection]
            request.close()

    def _serve_connection(self, connection: _Connection, client_address: Any) -> None:
        try:
            if isinstance(connection.sock, ssl.SSLSocket) and not self._handshake(connection.sock):
                return
            _Handler(connection, client_address, self)
        except (OSError, ValueError):  # the peer went away mid-request: nothing to report
            pass
        finally:
            with self._lock:
                self._admitted -= connection.admitted
                del self._open[connection]
            # Connection-scoped tokens die with their connection.
            self.dispatcher.context.auth.forget_connection(connection.id)
            if connection.reset:
                try:
                    connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_LINGER)
                except OSError:
                    pass
                connection.sock.close()
            else:
                self.shutdown_request(connection.sock)

    def _handshake(self, sock: ssl.SSLSocket) -> bool:
        """Complete the TLS handshake; False (counted, nothing printed) when it fails."""
        try:
            sock.settimeout(HANDSHAKE_TIMEOUT)
            sock.do_handshake()
            sock.settimeout(None)
        except (OSError, ValueError):  # ssl.SSLError is an OSError: untrusted cert, bad version...
            with self._lock:
                self.tls_failures += 1
            return False
        return True

    def close_connections(self, timeout: float) -> None:
        """Shut every open connection and wait for their threads (after :meth:`stop_serving`).

        :param timeout: the longest to wait for all connection threads together, in seconds.
        """
        with self._lock:
            open_connections = list(self._open.items())
        for connection, _ in open_connections:
            try:
                # The plain socket's shutdown: SSLSocket.shutdown would also drop its TLS state
                # under the feet of the thread still using it.
                socket.socket.shutdown(connection.sock, socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for _, thread in open_connections:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(socketserver.StreamRequestHandler):
    """Serves the requests of one connection in turn (HTTP/1.1 keep-alive)."""

    server: HttpServer

    def __init__(self, connection: _Connection, client_address: Any, server: HttpServer) -> None:
        self.conn = connection
        self.close_connection = False
        self.head: RequestHead | None = None
        super().__init__(connection.sock, client_address, server)

    def handle(self) -> None:
        while not self.close_connection:
            try:
                head = read_head(self.rfile)
            except BadRequest as bad:
                self.close_connection = True
                self.head = None
                self._send(bad.status, f"{bad.reason}\n".encode(), content_type="text/plain")
                return
            if head is None:
                return
            self.head = head
            self.close_connection = not head.keep_alive
            self._serve_request(head)

    # -- one request -------------------------------------------------------------------------

    def _serve_request(self, head: RequestHead) -> None:
        us_in = now_us()
        server = self.server
        target = head.target
        if not target.startswith("/"):  # absolute form, as sent to a proxy
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body, body_refused = self._read_body(head)
        request = _HttpRequest.of(head.method, target, body or b"")
        record = server.log.append(
            RecordedRequest(
                method=head.method,
                target=target,
                path=request.path,
                query=request.recorded_query(),
                headers=head.headers,
                client_address=(str(self.client_address[0]), int(self.client_address[1])),
                time=time.time(),
                transport=HTTP,
                connection_id=self.conn.id,
                rpc_id=None if request.rpc_id is NO_ID else request.rpc_id,
            ),
            is_auth=request.in_api and request.method_path == "/public/auth",
        )
        if body_refused is not None:
            self.close_connection = True
            self._send(*body_refused, content_type="text/plain")
            return
        if body is None:  # the peer went away, or a body that is not read
            return
        if not self.conn.admitted:
            self.close_connection = True
            limit = server.max_connections
            reason = f"too many simultaneous connections (at most {limit})"
            refusal = RpcError.of(TOO_MANY_REQUESTS, status=429, explanation=reason)
            server.log.annotate(record, refusal.code, refusal.explanation)
            self._send_error(refusal, us_in)
            return
        if request.path == WS_PATH and head.method == "GET":
            self._upgrade(head, target, us_in)
            return
        fault = server.faults.take(request.method_path)
        if fault is not None:
            if fault.kind is not Fault.DELAY:
                self._deliver(fault, request, record, us_in)
                return
            if not self._wait(fault.params["seconds"]):
                self.close_connection = True
                return
        status, answer = self._answer(request, record, us_in)
        self._send(status, answer, extra=_ALLOW if status == 405 else ())

    def _answer(
        self, request: _HttpRequest, record: RecordedRequest, us_in: int
    ) -> tuple[int, bytes]:
        """The status and body answering ``request``; an error is noted on its ``record``."""
        assert self.head is not None
        status, answer, error = self._dispatch(request, us_in)
        if error is not None:
            self.server.log.annotate(record, error.code, error.explanation)
        return status, answer

    def _dispatch(self, request: _HttpRequest, us_in: int) -> tuple[int, bytes, RpcError | None]:
        assert self.head is not None
        envelope = self.server.dispatcher.envelope
        verb = self.head.method
        error = request.invalid
        if verb not in ("GET", "POST"):
            error = RpcError.of(
                BAD_REQUEST,
                status=405,
                explanation=f"HTTP method {verb} not allowed: API methods take GET or POST",
            )
        elif not request.in_api:
            error = RpcError.of(
                METHOD_NOT_FOUND,
                status=404,
                explanation=f"{request.path} is outside the API; methods live under {API_PREFIX}/",
            )
        if error is not None:
            return error.status, envelope.error(error, us_in, request.rpc_id), error
        call = Call(
            HTTP,
            self.conn.id,
            str(self.client_address[0]),
            authorization=self.head.header("authorization"),
            target=request.target,
            verb=verb,
            body=request.body,
        )
        return self.server.dispatcher.answer(
            request.method_path, request.params, call, us_in, request.rpc_id
        )

    # -- WebSocket ---------------------------------------------------------------------------

    def _upgrade(self, head: RequestHead, target: str, us_in: int) -> None:
        """Hand the connection to the WebSocket endpoint, or refuse the handshake."""
        self.close_connection = True
        server = self.server
        if server.websocket is None:
            self._send(501, NO_WEBSOCKETS_BODY, content_type="text/plain; charset=utf-8")
            return
        refusal = server.faults.take_handshake()
        if refusal is not None:
            retry_after = refusal.params["retry_after"]
            self._send_error(
                RpcError.of(TOO_MANY_REQUESTS, status=429),
                us_in,
                extra=() if retry_after is None else (("Retry-After", retry_after),),
            )
            return
        lines = [f"{head.method} {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in head.headers.items()]
        raw_request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        server.websocket.serve(
            self.connection,
            (str(self.client_address[0]), int(self.client_address[1])),
            self.conn.id,
            raw_request,
            head.headers,
        )

    def _read_body(self, head: RequestHead) -> tuple[bytes | None, tuple[int, bytes] | None]:
        """The request body (empty when none was sent), or None when the connection ended
        before it did; and the status and text to refuse it with, which the caller sends after
        recording the request: 413 for a body too large or a malformed ``Content-Length``, 411
        for a chunked POST (chunked bodies are not read)."""
        if head.header("transfer-encoding"):
            self.close_connection = True  # the body is not read: do not reuse the connection
            if head.method == "POST":
                return b"", (411, b"send the body with a Content-Length, not chunked\n")
            return b"", None
        length_header = head.header("content-length")
        if not length_header:
            return b"", None
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return b"", (413, b"request body too large or malformed\n")
        if (head.header("expect") or "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return None, None
        return body, None

    # -- faults ------------------------------------------------------------------------------

    def _deliver(
        self, fault: FaultSpec, request: _HttpRequest, record: RecordedRequest, us_in: int
    ) -> None:
        kind, params = fault.kind, fault.params
        if kind is Fault.RESET:
            self._reset()
        elif kind is Fault.RESET_MID_BODY or kind is Fault.TRUNCATED:
            # The server did the work; the answer is lost on the way back.
            status, body = self._answer(request, record, us_in)
            self.close_connection = True
            self._send(status, body[: len(body) // 2], content_length=len(body))
            if kind is Fault.RESET_MID_BODY:
                self._reset()
        elif kind is Fault.HANG:
            self._wait(params["seconds"])
            self.close_connection = True
        elif kind is Fault.HTML_503:
            self._send(503, HTML_503_PAGE, content_type="text/html; charset=utf-8")
        elif kind is Fault.TOO_MANY_REQUESTS:
            retry_after = params["retry_after"]
            self._send_error(
                RpcError.of(TOO_MANY_REQUESTS, status=429),
                us_in,
                extra=() if retry_after is None else (("Retry-After", retry_after),),
            )
        elif kind is Fault.RPC_ERROR:
            error = RpcError(params["code"], params["message"], params["data"])
            error.status = params["status"]
            self._send_error(error, us_in)
        elif kind is Fault.NON_JSON:
            self._send(200, NON_JSON_BODY, content_type="text/plain; charset=utf-8")
        elif kind is Fault.REDIRECT:
            self._send(params["status"], b"", extra=(("Location", params["location"]),))
        else:  # pragma: no cover - FaultSpec.build accepts no other kind
            raise AssertionError(kind)

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False as soon as the peer hangs up or the server stops.

        Watching the socket lets a hung request end when its client gives up, so it does not
        hold a connection slot for the full ``seconds``. Stopping shuts the socket down, which
        wakes this wait too.
        """
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ)
            while not self.server.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                if selector.select(remaining):
                    try:
                        # Peek at the raw bytes (a TLS socket refuses recv flags): none means
                        # the peer closed.
                        peer_closed = not socket.socket.recv(self.connection, 1, socket.MSG_PEEK)
                    except OSError:
                        peer_closed = True
                    if peer_closed:
                        return False
                    # The client sent more (a pipelined request): just sit out the time.
                    return not self.server.stopping.wait(max(0.0, deadline - time.monotonic()))
        return False

    def _reset(self) -> None:
        """End the connection with a TCP reset once this request returns."""
        self.conn.reset = True
        self.close_connection = True

    # -- writing -----------------------------------------------------------------------------

    def _send_error(
        self, error: RpcError, us_in: int, extra: Iterable[tuple[str, str]] = ()
    ) -> None:
        envelope = self.server.dispatcher.envelope
        self._send(error.status, envelope.error(error, us_in), extra=extra)

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = JSON,
        extra: Iterable[tuple[str, str]] = (),
        content_length: int | None = None,
    ) -> None:
        """Write the whole response in one call; HEAD answers get the headers only."""
        self.wfile.write(
            response(
                status,
                body,
                content_type=content_type,
                extra=extra,
                close=self.close_connection,
                content_length=content_length,
                head_only=self.head is not None and self.head.method == "HEAD",
            )
        )
