"""A thread of the library's own that fires a session's watchdog on time.

A bot's threads may be busy, blocked or deadlocked, and an event loop may be blocked: that is
what a watchdog is for, so its timing cannot depend on any of them. :class:`Watchdog` runs one
daemon thread that sleeps until the deadline a session gives it, asks again (a check-in moves the
deadline later without waking it), and calls ``fire`` once the deadline has passed. ``fire``
must not block for long: it closes the connection (``shutdown`` of a socket works from any
thread) and tells the session.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from openapi_client.redaction import redacted_exception
from openapi_client.websocket.events import logger

__all__ = ["Watchdog"]

#: The longest single sleep, in seconds: the thread looks at the deadline again after it.
_LONGEST_SLEEP = 3600.0


class Watchdog:
    """Calls ``fire(now)`` when ``deadline()`` has passed.

    :param deadline: when the watchdog is due (``time.monotonic()``), None while it is not
        armed (off, fired, or the session over); read without any lock, often.
    :param fire: what to do once it is due (called on the watchdog's thread with the monotonic
        time); it is asked again only after :meth:`rearm`, or when ``deadline()`` still says so.
    :param name: the thread's name.
    """

    def __init__(
        self,
        deadline: Callable[[], float | None],
        fire: Callable[[float], object],
        name: str = "openapi_client-ws-watchdog",
    ) -> None:
        self._deadline = deadline
        self._fire = fire
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def rearm(self) -> None:
        """The deadline may have become due sooner, or armed again: look now."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread (waiting at most ``timeout`` seconds, and not at all from itself)."""
        self._stopped = True
        self._wake.set()
        thread = self._thread
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        wake = self._wake
        while not self._stopped:
            deadline = self._deadline()
            if deadline is None:
                wake.wait(_LONGEST_SLEEP)
                wake.clear()
                continue
            left = deadline - time.monotonic()
            if left > 0:
                if wake.wait(min(left, _LONGEST_SLEEP)):
                    wake.clear()
                continue
            try:
                self._fire(time.monotonic())
            except Exception as error:  # never dies in silence; the next deadline still counts
                logger.error(
                    "the session's watchdog failed to fire", exc_info=redacted_exception(error)
                )
                wake.wait(1.0)
                wake.clear()
