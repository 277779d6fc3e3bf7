"""The direct path: the client's own keep-alive HTTP/1.1 connections to one origin (a lane),
made with the standard library's ``socket`` and ``ssl``."""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Mapping
from typing import Any, Callable

from openapi_client.configuration import Configuration
from openapi_client.deadline import Deadline
from openapi_client.exceptions import (
    ApiException,
)
from openapi_client.http.body import RESTResponse, StreamedResponse
from openapi_client.http.message import request_head
from openapi_client.http.slots import Slot, Slots
from openapi_client.http.timeouts import (
    RequestTimeout,
    deadline_error,
    pool_wait_timeout,
    time_left,
)
from openapi_client.http.wire import Wire, WireBody
from openapi_client.locks import new_lock
from openapi_client.net.errors import CONNECT, TLS_HANDSHAKE, transport_error
from openapi_client.net.origin import Origin
from openapi_client.net.tls import client_context

__all__ = ["Connection", "DirectPath", "Lane"]


class Connection:
    """One socket to the origin, with what was received but not yet consumed, and its slot."""

    __slots__ = ("buffer", "poller", "pooled", "slot", "sock")

    def __init__(self, sock: socket.socket, slot: Slot) -> None:
        self.sock = sock
        self.slot = slot
        self.pooled = False
        self.buffer = bytearray()
        poller: Any = None
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
        self.poller = poller

    def dropped(self) -> bool:
        """Whether the server closed (or wrote to) this idle connection."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        if self.poller is not None:
            return bool(self.poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)  # pragma: no cover - no poll()
        return bool(readable)  # pragma: no cover

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover - closing a socket fails only if already broken
            pass


class Lane:
    """The direct path to one origin: its connections, at most ``max_connections`` open at once
    (idle or busy); a thread that needs one more waits, within its deadline, for another to come
    back. See :class:`Slots` for why an interrupted call cannot leak one."""

    __slots__ = ("origin", "slots", "tls")

    def __init__(
        self, origin: Origin, tls: ssl.SSLContext | None, maxsize: int, max_connections: int
    ) -> None:
        self.origin = origin
        self.tls = tls if origin.scheme == "https" else None
        self.slots = Slots(max_connections, maxsize)

    # -- connections ----------------------------------------------------------------------------

    def _checkout(self, deadline: Deadline) -> Connection | Slot:
        """An idle connection, or a slot for a new one."""
        slots = self.slots
        while True:
            held: Connection | Slot | None = slots.take(deadline.at)
            if held is None:
                raise pool_wait_timeout(self.origin.display, deadline, slots.cap)
            if isinstance(held, Slot) or not held.dropped():
                return held
            self._discard(held)

    def _checkin(self, connection: Connection) -> None:
        if not self.slots.keep(connection):
            self._discard(connection)

    def _discard(self, held: Connection | Slot) -> None:
        """Close a connection and free its slot (or free a slot whose connection was not made)."""
        if isinstance(held, Connection):
            held.close()
            held = held.slot
        held.free()

    def close(self) -> None:
        for connection in self.slots.drain():
            self._discard(connection)

    def abandon(self) -> None:
        """Forget every connection (in a forked child). Closing a socket here closes only the
        child's copy of its descriptor: the parent's connection is untouched, as no shutdown
        and no TLS close_notify is sent."""
        slots = self.slots
        self.slots = Slots(slots.cap, slots.idle_limit)
        for connection in slots.abandoned():
            connection.close()

    def _connect(self, slot: Slot, timeout: RequestTimeout, deadline: Deadline) -> Connection:
        origin = self.origin
        where = origin.display
        remaining = time_left(deadline, where)
        binding = remaining < timeout.connect
        try:
            sock = socket.create_connection(
                (origin.hostname, origin.port), timeout=min(timeout.connect, remaining)
            )
        except (OSError, ValueError) as error:
            raise _connect_error(error, where, timeout, deadline, binding, False) from error
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                # The handshake is part of connecting: the connect timeout bounds it.
                remaining = time_left(deadline, where)
                binding = remaining < timeout.connect
                sock.settimeout(min(timeout.connect, remaining))
                sock = self.tls.wrap_socket(sock, server_hostname=origin.hostname)
            return Connection(sock, slot)
        except BaseException as error:
            sock.close()
            if not isinstance(error, (OSError, ValueError)):
                raise  # the library's own errors, and interrupts, as they are
            raise _connect_error(error, where, timeout, deadline, binding, True) from error

    # -- one exchange ---------------------------------------------------------------------------

    def exchange(
        self,
        target: str,
        headers: Mapping[str, str],
        timeout: RequestTimeout,
        deadline: Deadline,
        ready: Callable[[], Deadline] | None,
        limit: int,
        preload: bool,
    ) -> RESTResponse | StreamedResponse:
        origin = self.origin
        request = request_head(origin, target, headers)
        # `held` is the slot until the connection that takes it is made. Whatever happens from
        # here, the connection is closed and its slot freed in the handler below, or (if an
        # interrupt lands before that handler could run) when this frame is dropped.
        held = self._checkout(deadline)
        body: WireBody | None = None
        try:
            reused = isinstance(held, Connection)
            if not isinstance(held, Connection):
                held = self._connect(held, timeout, deadline)
            if ready is not None:
                deadline = ready()
            wire = Wire(held, origin.display, timeout.read, deadline)
            wire.send(request)
            status, reason, response_headers, body = wire.read_head(limit, reused)
            if preload:
                data = body.read_all()
        except BaseException:
            if body is not None:
                body.connection = None
            self._discard(held)
            raise
        if not preload:
            body.lane = self
            return StreamedResponse(status, reason, response_headers, body)
        # Not in the handler's reach: a connection just put back idle must not be closed there.
        if body.reusable:
            self._checkin(held)
        else:
            self._discard(held)
        return RESTResponse(status, reason, data, response_headers)


def _connect_error(
    error: OSError | ValueError,
    where: str,
    timeout: RequestTimeout,
    deadline: Deadline,
    binding: bool,
    handshake: bool,
) -> ApiException:
    """The library's exception for a failure to connect (``binding``: the deadline, not the
    connect timeout, limited the wait; ``handshake``: in the TLS handshake)."""
    if binding and isinstance(error, socket.timeout):
        return deadline_error(where, deadline)
    return transport_error(error, where, timeout, TLS_HANDSHAKE if handshake else CONNECT)


class DirectPath:
    """The direct path to every origin: a :class:`Lane` each, made when first needed."""

    __slots__ = ("_lock", "configuration", "lanes", "tls")

    def __init__(self, configuration: Configuration, tls: ssl.SSLContext | None) -> None:
        self.configuration = configuration
        #: The TLS context of the https lanes; made when the first one needs it, if not given.
        self.tls = tls
        #: The lanes by origin (``scheme://host:port``).
        self.lanes: dict[str, Lane] = {}
        self._lock = new_lock()

    def lane(self, origin: Origin) -> Lane:
        """The lane to ``origin``, made now if there is none yet."""
        with self._lock:
            lane = self.lanes.get(origin.origin)
            if lane is None:
                tls = self.tls
                if tls is None and origin.scheme == "https":
                    tls = self.tls = client_context(self.configuration)
                configuration = self.configuration
                lane = Lane(
                    origin,
                    tls,
                    configuration.connection_pool_maxsize,
                    configuration.max_connections,
                )
                self.lanes[origin.origin] = lane
            return lane

    def slots(self) -> list[Slots]:
        """The connection slots of every lane."""
        with self._lock:
            return [lane.slots for lane in self.lanes.values()]

    def close(self) -> None:
        """Close every idle connection, and forget the lanes."""
        with self._lock:
            lanes, self.lanes = self.lanes, {}
        for lane in lanes.values():
            lane.close()

    def after_fork(self) -> None:
        """In a child process just forked: forget the parent's connections without touching
        them."""
        self._lock = new_lock()
        for lane in self.lanes.values():
            lane.abandon()
        self.lanes = {}
