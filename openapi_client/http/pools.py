"""urllib3's pools, made to keep the client's promises: connections counted in slots
(:class:`PoolQueue`) and reporting to the exchange that sends on them (its watchdog, its
rate-limit turn)."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

import urllib3
from urllib3 import connection as urllib3_connection
from urllib3 import connectionpool as urllib3_connectionpool

from openapi_client.http.slots import Slot, Slots
from openapi_client.http.watchdog import Watch
from openapi_client.redaction import RedactingFilter

__all__ = [
    "CURRENT_WATCH",
    "NO_RETRIES",
    "PoolQueue",
    "WatchedHTTPConnection",
    "WatchedHTTPConnectionPool",
    "WatchedHTTPSConnection",
    "WatchedHTTPSConnectionPool",
    "urllib3_is_stock",
]

# urllib3 logs each request target at DEBUG; public/auth carries credentials in its query.
logging.getLogger("urllib3.connectionpool").addFilter(RedactingFilter())

NO_RETRIES = urllib3.Retry(total=False, redirect=False, raise_on_redirect=False)


def urllib3_is_stock() -> bool:
    """Whether urllib3's connection classes are its own HTTP/1.1 ones (not, for instance,
    replaced by ``urllib3.http2.inject_into_urllib3()``)."""
    return (
        urllib3_connectionpool.HTTPConnectionPool.ConnectionCls
        is urllib3_connection.HTTPConnection
        and urllib3_connectionpool.HTTPSConnectionPool.ConnectionCls
        is urllib3_connection.HTTPSConnection
    )


class _CurrentWatch(threading.local):
    """The one thread-local of the HTTP transport: the exchange (its :class:`Watch`) that urllib3
    is running in this thread, set around its ``urlopen`` call only.

    It cannot be passed explicitly through urllib3's public API. The pool's queue
    (:class:`PoolQueue`, urllib3's ``QueueCls``) is asked for a connection with no word of the
    request that wants it. A connection's ``request()`` gets nothing of the caller's but the
    headers, and ``ProxyManager.urlopen`` rebuilds those as a plain dict for an http URL; the
    other keywords of ``urlopen`` go to the response, not the connection. And a pool per request
    would not pool. urllib3 runs an exchange in the calling thread from start to end, so the
    thread says which exchange a connection serves: its slot, its watchdog and its rate-limit
    turn (:meth:`Watch.sending`) reach the connection through here.
    """

    watch: Watch | None = None


CURRENT_WATCH = _CurrentWatch()


def _after_fork_in_child() -> None:
    CURRENT_WATCH.watch = None


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class PoolQueue:
    """The connections of one urllib3 pool (its ``QueueCls``), counted by :class:`Slots` like the
    direct path's.

    urllib3 keeps its connections in a ``queue.LifoQueue`` holding one item per connection it may
    open (the connection, or ``None`` for one to make). That queue's methods run Python code under
    its lock, so an interrupt can leave the lock held (every later request then hangs) or an item
    taken and lost; and an interrupt that lands in urllib3's own code after it made an answer loses
    the answer and the connection it holds. Here a slot is taken by the exchange running in this
    thread (its :class:`Watch`) and then by its connection, and comes back when urllib3 gives
    either back, or when nothing references it any more.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.slots = Slots(maxsize, maxsize)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """An idle connection, or ``None`` for urllib3 to make one (``queue.Empty`` if neither
        came within ``timeout``; without ``block``, an idle connection only)."""
        if not block:
            connection = self.slots.take_idle()
            if connection is None:
                raise queue.Empty
            return connection
        until = float("inf") if timeout is None else time.monotonic() + timeout
        held = self.slots.take(until)
        if held is None:
            raise queue.Empty
        watch: Watch | None = CURRENT_WATCH.watch
        if isinstance(held, Slot):
            if watch is not None:
                watch.slot = held  # until the new connection takes it (_before_request)
            return None
        if watch is not None:
            watch.slot = held.slot
        return held

    def put(self, connection: Any, block: bool = True, timeout: float | None = None) -> None:
        """Take a connection back; ``None`` gives up the slot of the exchange in this thread."""
        if connection is None:
            # urllib3 fills a new pool with a None per connection it may open (this queue counts
            # them itself), and puts one back when it closed the connection of a failed exchange.
            watch: Watch | None = CURRENT_WATCH.watch
            if watch is not None and watch.slot is not None:
                given_up, watch.slot = watch.slot, None
                given_up.free()
            return
        if connection.pooled:
            return  # put back already, by a put() an interrupt cut short after its work was done
        slot: Slot | None = getattr(connection, "slot", None)
        if slot is None:
            connection.close()  # not one of this pool's connections
        elif connection.sock is None or not self.slots.keep(connection):
            connection.close()
            slot.free()

    def qsize(self) -> int:
        """Connections that can be had without waiting (idle, or slots free)."""
        slots = self.slots
        return slots.cap - slots.open + slots.idle


def _before_request(connection: Any) -> None:
    """Report ``connection`` to the exchange about to send on it (its slot, and its watchdog);
    first close it if its last answer left the framing in doubt (urllib3 puts a connection back in
    its pool as soon as a body is read to the end, before the client can close it)."""
    if getattr(connection, "framing_in_doubt", False):
        connection.framing_in_doubt = False
        connection.close()  # http.client opens a new socket for the request
    watch: Watch | None = CURRENT_WATCH.watch
    if watch is not None:
        if watch.slot is not None:
            connection.slot = watch.slot
        watch.attach(connection)
        watch.sending()


class _Watched:
    """What the watched connections add to urllib3's (a base class before urllib3's own)."""

    framing_in_doubt = False
    slot: Slot | None = None
    pooled = False

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _before_request(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def close(self) -> None:
        if not self.pooled:  # else a stale holder's close (see Slots)
            super().close()  # type: ignore[misc]


class WatchedHTTPConnection(_Watched, urllib3_connection.HTTPConnection):
    """urllib3's connection, reporting to the exchange that sends on it."""


class WatchedHTTPSConnection(_Watched, urllib3_connection.HTTPSConnection):
    """urllib3's TLS connection, reporting to the exchange that sends on it."""


class WatchedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection
    QueueCls = PoolQueue  # type: ignore[assignment]


class WatchedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection
    QueueCls = PoolQueue  # type: ignore[assignment]
