"""Where a threaded session's events go: a bounded backlog for an iterator, and one dispatcher
thread that runs callbacks (``on_event`` and subscription callbacks).

Callbacks run on the dispatcher thread, never on the thread that reads the socket, so a slow
callback never delays a heartbeat answer. Both queues are bounded: when a callback falls behind
by :data:`MAX_PENDING_CALLBACKS`, or nobody iterates and :data:`MAX_BACKLOG` events wait, the
oldest are dropped (and a warning logged).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import Any, Callable

from openapi_client.websocket.events import Closed, Event, logger

__all__ = ["MAX_BACKLOG", "MAX_PENDING_CALLBACKS", "EventHub"]

#: Events kept for :meth:`WebSocketApiClient.events` until it takes them.
MAX_BACKLOG = 1000
#: Callback runs waiting for the dispatcher thread.
MAX_PENDING_CALLBACKS = 10_000

#: Seconds :meth:`EventHub.close` waits for callbacks still queued.
_DRAIN_SECONDS = 2.0

Job = tuple[Callable[..., Any], tuple[Any, ...]]


class EventHub:
    """Queues events for the iterator and runs callbacks on the dispatcher thread.

    :param on_event: called with every event (on the dispatcher thread), or None.
    """

    def __init__(self, on_event: Callable[[Event], Any] | None) -> None:
        self._on_event = on_event
        self._lock = threading.Lock()
        self._backlog: collections.deque[Event] = collections.deque()
        self._backlog_ready = threading.Condition(self._lock)
        self._jobs: collections.deque[Job] = collections.deque()
        self._jobs_ready = threading.Condition(threading.Lock())
        self._dispatcher: threading.Thread | None = None
        self._closed = False
        self._dropped = 0

    # -- producing ------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Queue ``event`` for the iterator and ``on_event`` (never blocks). The session core
        redacted its texts already."""
        logger.debug("event %r", event)
        with self._lock:
            if len(self._backlog) >= MAX_BACKLOG:
                self._backlog.popleft()
            self._backlog.append(event)
            self._backlog_ready.notify_all()
        if self._on_event is not None:
            self.run_callback(self._on_event, event)

    def run_callback(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the dispatcher thread (never blocks)."""
        with self._jobs_ready:
            if self._closed and self._dispatcher is None:
                return
            if len(self._jobs) >= MAX_PENDING_CALLBACKS:
                self._jobs.popleft()
                self._dropped += 1
                if self._dropped == 1:
                    logger.warning(
                        "callbacks fall behind: more than %d wait; dropping the oldest",
                        MAX_PENDING_CALLBACKS,
                    )
            self._jobs.append((callback, args))
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch, name="openapi_client-ws-callbacks", daemon=True
                )
                self._dispatcher.start()
            self._jobs_ready.notify()

    def _dispatch(self) -> None:
        while True:
            with self._jobs_ready:
                while not self._jobs:
                    if self._closed:
                        return
                    self._jobs_ready.wait()
                callback, args = self._jobs.popleft()
                if not self._jobs:
                    self._dropped = 0
            try:
                callback(*args)
            except BaseException:  # even SystemExit: the thread serves every later callback
                logger.exception("a WebSocket session callback raised; the session carries on")

    # -- consuming ------------------------------------------------------------------------------

    def iterate(self, timeout: float | None) -> Iterator[Event]:
        """Events as they come; ends after :class:`Closed`, or when ``timeout`` seconds pass
        without one."""
        while True:
            with self._lock:
                if not self._backlog:
                    if self._closed:
                        return
                    self._backlog_ready.wait_for(
                        lambda: bool(self._backlog) or self._closed, timeout
                    )
                    if not self._backlog:
                        return
                event = self._backlog.popleft()
            yield event
            if isinstance(event, Closed):
                return

    # -- ending ---------------------------------------------------------------------------------

    def close(self) -> None:
        """No more events: wake iterators, let the dispatcher finish what is queued (waiting
        at most a few seconds, and not at all from a callback)."""
        with self._lock:
            self._closed = True
            self._backlog_ready.notify_all()
        with self._jobs_ready:
            dispatcher = self._dispatcher
            self._jobs_ready.notify_all()
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(_DRAIN_SECONDS)
