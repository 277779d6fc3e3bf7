"""Connection slots: how both paths count their open connections under ``max_connections``.

The structure is built so that an asynchronous exception (a KeyboardInterrupt from Ctrl-C, a
notebook's "interrupt kernel", a signal handler that raises) can land at any moment of a call
without leaking a place under the cap or a lock.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from openapi_client.deadline import RECHECK_SECONDS
from openapi_client.locks import new_lock

__all__ = ["Slot", "Slots"]


class Slot:
    """One place under a connection cap (``max_connections``), owned by a :class:`Slots`.

    A slot is taken while anything references it (the connection that holds it, idle or busy, or
    the exchange still making that connection) until it is given back with :meth:`free`. The
    number of open connections is the number of these objects alive, not a counter every exit
    path must remember to decrement: an exchange abandoned halfway by an interrupt gives its slot
    back when its frames are dropped, without any code having to run.
    """

    __slots__ = ("__weakref__", "owner")

    def __init__(self, owner: Slots) -> None:
        self.owner = owner

    def free(self) -> None:
        """Give this slot back (its connection is closed, or was never made)."""
        self.owner.free(self)


class Slots:
    """The connections to one origin: at most ``cap`` open at once (idle, busy or being made), at
    most ``idle_limit`` of them idle, and the threads waiting for one.

    The lock is a plain ``threading.Lock`` (:func:`openapi_client.locks.new_lock`) taken only in
    ``with`` blocks, which the interpreter enters and leaves without running Python code in
    between; never ``threading.Condition``,
    whose ``__enter__`` and ``wait()`` are Python code that an interrupt can leave with the lock
    still held (every later call then hangs) or released twice. A waiter parks on a lock of its
    own that whoever frees a slot releases, and looks again every ``RECHECK_SECONDS`` in case the
    wake-up was lost to an interrupt, or the slot came free with the frames that held it.
    """

    __slots__ = ("_idle", "_lock", "_taken", "_waiting", "cap", "idle_limit")

    def __init__(self, cap: int, idle_limit: int) -> None:
        self.cap = cap
        self.idle_limit = idle_limit
        self._idle: list[Any] = []
        self._taken: weakref.WeakSet[Slot] = weakref.WeakSet()
        self._lock = new_lock()
        self._waiting: list[threading.Lock] = []

    @property
    def open(self) -> int:
        """Connections open (idle, busy or being made): the slots taken."""
        return len(self._taken)

    @property
    def idle(self) -> int:
        return len(self._idle)

    # Each idle connection has ``pooled`` set while it is in the list (set and cleared under the
    # lock, next to the list operation with no call in between): an interrupt can land just after
    # keep() put a connection back, and the caller, taking keep() to have failed, then closes it or
    # puts it back again; urllib3's path ignores both for a pooled connection.

    def take(self, until: float) -> Any:
        """The idle connection put back last, or else a new :class:`Slot` for a connection to be
        made, waiting until ``until`` (``time.monotonic()``) for either; ``None`` if none came."""
        while True:
            with self._lock:
                if self._idle:
                    connection = self._idle.pop()
                    connection.pooled = False
                    return connection
                if len(self._taken) < self.cap:
                    slot = Slot(self)
                    self._taken.add(slot)
                    return slot
                remaining = until - time.monotonic()
                if remaining <= 0.0:
                    return None
                parked = threading.Lock()
                parked.acquire()
                self._waiting.append(parked)
            parked.acquire(True, min(remaining, RECHECK_SECONDS))
            with self._lock:
                if parked in self._waiting:
                    self._waiting.remove(parked)

    def take_idle(self) -> Any:
        """An idle connection, or ``None`` without waiting."""
        with self._lock:
            if not self._idle:
                return None
            connection = self._idle.pop()
            connection.pooled = False
            return connection

    def keep(self, connection: Any) -> bool:
        """Put an idle connection back, to be handed out again; False when ``idle_limit`` are
        idle already (the caller then closes it and frees its slot)."""
        with self._lock:
            if len(self._idle) >= self.idle_limit:
                return False
            connection.pooled = True
            self._idle.append(connection)
            if self._waiting:
                self._wake()
        return True

    def free(self, slot: Slot) -> None:
        self._taken.discard(slot)
        with self._lock:
            if self._waiting:
                self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        for parked in waiting:
            parked.release()

    def drain(self) -> list[Any]:
        """Take every idle connection out (to close them)."""
        with self._lock:
            idle, self._idle = self._idle, []
            for connection in idle:
                connection.pooled = False
        return idle

    def abandoned(self) -> list[Any]:
        """The idle connections, read without the lock: in a forked child, its holder may be a
        thread that does not exist there. The caller replaces this object."""
        return list(self._idle)
