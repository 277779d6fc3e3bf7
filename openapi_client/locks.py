"""Locks that an interrupt cannot leave held for ever.

A ``KeyboardInterrupt`` (Ctrl-C, a notebook's "interrupt kernel", a signal handler that raises)
is raised in the main thread where the interpreter runs the signal handler. Since Python 3.10
that is only at a function's entry, just after a call returns, or on a loop's backward jump: a
``with`` block over a ``threading.Lock`` enters and leaves in C, so the lock is always released,
whatever a handler raises. Python 3.9 runs a handler between almost any two bytecodes, among them
those between the end of a ``with`` block and the call of the lock's ``__exit__``; an interrupt
landing there leaves the lock held, and every later call that needs it waits for ever.

:func:`new_lock` gives a plain ``threading.Lock`` where the interpreter keeps that promise, and on
3.9 a :class:`RecoverableLock`, which knows its holder (a reentrant lock records it in C, when it
is taken, with no bytecode in between). These locks are never nested, so a thread that asks for
one, or that is back in the library's entry point after an interrupt, is inside none of them:
whatever it still holds is a hold an interrupt cut short, and it gives it back
(:meth:`RecoverableLock.acquire`, :func:`give_back_leftovers`). A semaphore (a lock released by
another thread than the one that took it) must stay a plain ``threading.Lock``.
"""

from __future__ import annotations

import sys
import threading
import weakref
from types import TracebackType
from typing import Protocol

__all__ = [
    "HANDLERS_RUN_BETWEEN_ANY_BYTECODES",
    "Lock",
    "RecoverableLock",
    "give_back_leftovers",
    "new_lock",
]

#: Whether this interpreter can run a signal handler between the end of a ``with`` block and the
#: call of its ``__exit__`` (Python 3.9).
HANDLERS_RUN_BETWEEN_ANY_BYTECODES: bool = sys.version_info < (3, 10)


class Lock(Protocol):
    """What the library's mutual-exclusion locks offer (``threading.Lock``'s methods)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...

    def locked(self) -> bool: ...

    def __enter__(self) -> bool: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


_RECOVERABLE: weakref.WeakSet[RecoverableLock] = weakref.WeakSet()


class RecoverableLock:
    """A mutual-exclusion lock that gives back a hold an interrupt left (see the module)."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        _RECOVERABLE.add(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.give_back_leftover()
        return self._lock.acquire(blocking, timeout)

    def give_back_leftover(self) -> None:
        """Release whatever this thread still holds of the lock (it is not inside it)."""
        try:
            while True:
                self._lock.release()
        except RuntimeError:  # not held by this thread (any more)
            pass

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        """Whether a thread, this one included, holds the lock."""
        if not self._lock.acquire(False):
            return True  # another thread holds it
        self._lock.release()
        try:
            self._lock.release()  # works only if this thread held it before
        except RuntimeError:
            return False
        self._lock.acquire()  # this thread's hold, as it was
        return True

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return f"<RecoverableLock {self._lock!r}>"


def give_back_leftovers() -> None:
    """In the main thread, back at the library's entry point after an interrupt: release every
    lock it still holds. Nothing to do where :data:`HANDLERS_RUN_BETWEEN_ANY_BYTECODES` is false
    (no :class:`RecoverableLock` exists there), nor in another thread: signal handlers run only
    in the main thread, so only it can have been cut short inside a lock."""
    if threading.current_thread() is not threading.main_thread():
        return
    for lock in list(_RECOVERABLE):
        lock.give_back_leftover()


def new_lock() -> Lock:
    """A mutual-exclusion lock no interrupt leaves held: ``threading.Lock`` on Python 3.10 and
    later, a :class:`RecoverableLock` on 3.9."""
    if HANDLERS_RUN_BETWEEN_ANY_BYTECODES:
        return RecoverableLock()  # pragma: no cover - Python 3.9
    return threading.Lock()
