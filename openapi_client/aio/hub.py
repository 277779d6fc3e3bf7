"""Where an asyncio session's events go: a bounded backlog for ``async for event in
client.events()``, and one task of the session's that runs callbacks (``on_event`` and
subscription callbacks) in order.

A callback may be a plain function or a coroutine function (anything whose call returns an
awaitable is awaited). Callbacks run in the dispatcher task, never in the task that reads the
socket, so a coroutine callback that awaits for a long time never delays a heartbeat answer; a
plain function runs on the event loop like any other code there, so keep it short. The queues are
bounded as the threaded session's are (:data:`~openapi_client.websocket.hub.MAX_BACKLOG`,
:data:`~openapi_client.websocket.hub.MAX_PENDING_CALLBACKS`): the oldest are dropped, with a
warning.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
from collections.abc import AsyncIterator
from typing import Any, Callable

from openapi_client.websocket.events import Closed, Event, logger
from openapi_client.websocket.hub import MAX_BACKLOG, MAX_PENDING_CALLBACKS

__all__ = ["AsyncEventHub", "EventIterator"]

#: Seconds :meth:`AsyncEventHub.close` lets queued callbacks run before it cancels the rest.
_DRAIN_SECONDS = 2.0

_Job = tuple[Callable[..., Any], tuple[Any, ...]]


def _wake(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


class AsyncEventHub:
    """Queues events for iterators and runs callbacks in the session's dispatcher task.

    Every method but :meth:`close` is plain and is called on the event loop.

    :param on_event: called with every event (a plain or a coroutine function), or None.
    """

    def __init__(self, on_event: Callable[[Event], Any] | None) -> None:
        self._on_event = on_event
        self._backlog: collections.deque[Event] = collections.deque()
        self._readers: list[asyncio.Future[bool]] = []
        self._jobs: collections.deque[_Job] = collections.deque()
        self._jobs_ready: asyncio.Future[bool] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._closed = False
        self._dropped = 0

    # -- producing ------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Queue ``event`` for the iterators and ``on_event`` (the core redacted it already)."""
        logger.debug("event %r", event)
        backlog = self._backlog
        if len(backlog) >= MAX_BACKLOG:
            backlog.popleft()
        backlog.append(event)
        if self._readers:
            for reader in self._readers:
                _wake(reader, True)
            self._readers.clear()
        if self._on_event is not None:
            self.run_callback(self._on_event, event)

    def run_callback(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` (awaiting what it returns, if awaitable) in the dispatcher
        task, after the callbacks queued before it."""
        if self._closed and self._dispatcher is None:
            return
        jobs = self._jobs
        if len(jobs) >= MAX_PENDING_CALLBACKS:
            jobs.popleft()
            self._dropped += 1
            if self._dropped == 1:
                logger.warning(
                    "callbacks fall behind: more than %d wait; dropping the oldest",
                    MAX_PENDING_CALLBACKS,
                )
        jobs.append((callback, args))
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())
        elif self._jobs_ready is not None:
            _wake(self._jobs_ready, True)

    async def _dispatch(self) -> None:
        jobs = self._jobs
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not jobs:
                    if self._closed:
                        return
                    self._dropped = 0
                    self._jobs_ready = loop.create_future()
                    await self._jobs_ready
                    continue
                callback, args = jobs.popleft()
                try:
                    result = callback(*args)
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # the session carries on, and so do later callbacks
                    logger.exception("a WebSocket session callback raised; the session carries on")
        finally:
            # Cancelled (the session closing, or the loop shutting down) or done: a callback
            # queued later starts a new dispatcher, unless the hub is closed.
            self._dispatcher = None
            self._jobs_ready = None

    # -- consuming ------------------------------------------------------------------------------

    def iterate(self, timeout: float | None) -> EventIterator:
        """Events as they come; the iteration ends after :class:`Closed`, or when ``timeout``
        seconds pass without one."""
        return EventIterator(self, timeout)

    async def _next(self, timeout: float | None) -> Event | None:
        backlog = self._backlog
        if not backlog and not self._closed:
            loop = asyncio.get_running_loop()
            reader: asyncio.Future[bool] = loop.create_future()
            self._readers.append(reader)
            timer = None if timeout is None else loop.call_later(timeout, _wake, reader, False)
            try:
                await reader
            finally:
                if timer is not None:
                    timer.cancel()
                if reader in self._readers:
                    self._readers.remove(reader)
        return backlog.popleft() if backlog else None

    # -- ending ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """No more events: iterators end once they have taken what is queued; the callbacks
        already queued run (for at most a few seconds; the rest are dropped). Not from a
        callback: there it only stops new callbacks."""
        self._closed = True
        for reader in self._readers:
            _wake(reader, True)
        self._readers.clear()
        dispatcher = self._dispatcher
        if dispatcher is None or dispatcher is asyncio.current_task():
            return
        if self._jobs_ready is not None:
            _wake(self._jobs_ready, True)
        done, _ = await asyncio.wait({dispatcher}, timeout=_DRAIN_SECONDS)
        if not done:
            logger.warning("callbacks still running after %g s were cancelled", _DRAIN_SECONDS)
            self._jobs.clear()
            dispatcher.cancel()
            await asyncio.wait({dispatcher})


class EventIterator:
    """``async for event in client.events()``: the session's events in order, from the first
    not yet taken; ends after :class:`~openapi_client.websocket.Closed`, or when ``timeout``
    seconds pass without an event."""

    def __init__(self, hub: AsyncEventHub, timeout: float | None) -> None:
        self._hub = hub
        self._timeout = timeout
        self._over = False

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._over:
            raise StopAsyncIteration
        event = await self._hub._next(self._timeout)
        if event is None:
            self._over = True
            raise StopAsyncIteration
        if type(event) is Closed:
            self._over = True
        return event
