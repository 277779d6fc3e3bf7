"""Deadlines on urllib3's path: each exchange's :class:`Watch`, and one watchdog thread that shuts
the socket of an exchange that outlives its deadline."""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import socket
import threading
import time
import weakref
from typing import Any, Callable

from openapi_client.deadline import Deadline
from openapi_client.http.slots import Slot
from openapi_client.locks import new_lock

__all__ = ["WATCHDOG", "Watch", "Watchdog"]


class Watch:
    """One exchange on urllib3's path: its deadline, the connections it uses and the pool slot it
    holds."""

    __slots__ = (
        "__weakref__",
        "at",
        "connections",
        "deadline",
        "expired",
        "lock",
        "ready",
        "requested",
        "slot",
    )

    def __init__(self, at: float) -> None:
        self.at = at
        self.connections: list[Any] = []
        self.expired = False
        self.lock = new_lock()
        #: Called once, when a connection is about to send (see ``RESTClientObject.send``).
        self.ready: Callable[[], Deadline] | None = None
        #: The deadline ``ready`` returned, when it was called.
        self.deadline: Deadline | None = None
        #: The pool slot this exchange took (see ``PoolQueue``), until urllib3 gives it back.
        self.slot: Slot | None = None
        #: Whether a connection has begun the request (before, urllib3 was connecting: TCP, a
        #: proxy's tunnel, TLS).
        self.requested = False

    def sending(self) -> None:
        """The request is about to leave: the rate limiter's turn, which may move the deadline
        later by the time it waited."""
        self.requested = True
        ready, self.ready = self.ready, None
        if ready is None:
            return
        deadline = ready()
        self.deadline = deadline
        if deadline.at != self.at:
            WATCHDOG.move(self, deadline.at)

    def attach(self, connection: Any) -> None:
        with self.lock:
            self.connections.append(connection)
            expired = self.expired
        if expired:
            _shut(connection)

    def expire(self) -> None:
        with self.lock:
            if self.at == float("inf"):
                return  # cancelled
            self.expired = True
            connections = list(self.connections)
        for connection in connections:
            _shut(connection)

    def cancel(self) -> None:
        """The exchange is over: the watchdog forgets it."""
        with self.lock:
            self.at = float("inf")
            self.connections = []
            self.slot = None

    def abandon(self) -> None:
        """The exchange failed or was interrupted: close the connections it was using and free the
        slot it still holds. urllib3 gives the slot back itself when it closes a connection after a
        failure, but not for an answer it had made when an interrupt landed in its own code (the
        answer, holding the connection, is then lost). After :meth:`cancel`, nothing is left."""
        with self.lock:
            self.at = float("inf")
            connections, self.connections = self.connections, []
            slot, self.slot = self.slot, None
        for connection in connections:
            connection.close()
        if slot is not None:
            slot.free()


def _shut(connection: Any) -> None:
    """Interrupt whatever is blocked on ``connection``'s socket (from the watchdog thread)."""
    sock = getattr(connection, "sock", None)
    try:
        sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    except (OSError, AttributeError, ValueError):  # already closed, or not a plain socket
        pass


class Watchdog:
    """One daemon thread that cuts off urllib3-path exchanges that outlive their deadline.

    The callers' side is safe against an interrupt landing anywhere: a plain lock taken in
    ``with`` blocks, a C ``SimpleQueue`` to wake the thread (``threading.Condition`` can be left
    holding its lock), and weak references to the watches, so that the registration of an
    exchange abandoned without :meth:`Watch.cancel` goes with the exchange.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, weakref.ref[Watch]]] = []
        self._lock = new_lock()
        self._wakeup: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._count = itertools.count()

    def add(self, watch: Watch) -> None:
        """Cut off ``watch``'s exchange at ``watch.at`` unless it is cancelled first."""
        self._push(watch, watch.at)
        # Not Thread.is_alive(): an interrupt inside it can mark the running thread stopped.
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    thread = threading.Thread(
                        target=self._run, name="openapi_client-watchdog", daemon=True
                    )
                    thread.start()
                    self._thread = thread

    def move(self, watch: Watch, at: float) -> None:
        """Hold ``watch`` to a new moment; its earlier entry in the heap goes stale."""
        with watch.lock:
            if watch.at == float("inf"):
                return  # cancelled
            watch.at = at
        self._push(watch, at)

    def _push(self, watch: Watch, at: float) -> None:
        entry = (at, next(self._count), weakref.ref(watch))
        with self._lock:
            heapq.heappush(self._heap, entry)
            first = self._heap[0] is entry
        if first:
            self._wakeup.put(None)

    def live(self) -> int:
        """Exchanges watched now (neither over nor abandoned)."""
        with self._lock:
            entries = list(self._heap)
        return sum(1 for at, _, ref in entries if getattr(ref(), "at", None) == at)

    def _due(self, now: float) -> tuple[list[Watch], float | None]:
        """The watches whose moment has come, and the seconds until the next one."""
        due: list[Watch] = []
        heap = self._heap
        with self._lock:
            while heap:
                at, _, ref = heap[0]
                watch = ref()
                if watch is not None and watch.at == at and at > now:
                    return due, at - now
                heapq.heappop(heap)
                if watch is not None and watch.at == at:
                    due.append(watch)
        return due, None

    def _run(self) -> None:
        try:
            while True:
                due, wait = self._due(time.monotonic())
                while due:
                    due.pop().expire()
                try:
                    self._wakeup.get(timeout=wait)
                except queue.Empty:
                    pass
        finally:  # pragma: no cover - only an interpreter shutting down stops this thread
            self._thread = None

    def after_fork(self) -> None:
        self._heap = []
        self._lock = new_lock()
        self._wakeup = queue.SimpleQueue()
        self._thread = None


WATCHDOG = Watchdog()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=WATCHDOG.after_fork)
