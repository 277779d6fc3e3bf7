"""Faults the simulator can be told to produce instead of a normal answer.

A fault is queued with :meth:`FaultQueue.add` for the next ``count`` requests whose method path
matches, and taken by the server with :meth:`FaultQueue.take` as each request arrives. HTTP faults
apply to HTTP requests only and WebSocket faults (``ws_*``) to WebSocket requests only, except
:attr:`Fault.WS_REFUSE`, which applies to the WebSocket opening handshake.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["API_PREFIX", "WEBSOCKET_FAULTS", "Fault", "FaultQueue", "FaultSpec"]

#: Where the API lives on the simulator; fault paths are matched below it.
API_PREFIX = "/api/v2"


class Fault(str, Enum):
    """The kinds of faults; each also accepts its value as a plain string (``"reset"``)."""

    #: Close the connection with a TCP reset instead of answering.
    RESET = "reset"
    #: Send the status line, headers and part of the body, then reset the connection.
    RESET_MID_BODY = "reset_mid_body"
    #: Read the request, answer nothing for ``seconds`` (default 30), then close the connection.
    HANG = "hang"
    #: HTTP 503 with an HTML page, as a CDN edge sends when the origin is down.
    HTML_503 = "html_503"
    #: HTTP 429 with ``Retry-After: retry_after`` (default 1) and a 10028 JSON-RPC error.
    TOO_MANY_REQUESTS = "429"
    #: A JSON-RPC error with ``code``, ``message``, optional ``data`` and ``status`` (400).
    RPC_ERROR = "rpc_error"
    #: HTTP 200 with a text/plain body that is not JSON.
    NON_JSON = "non_json"
    #: HTTP 200 whose Content-Length promises more bytes than are sent before a clean close.
    TRUNCATED = "truncated"
    #: A redirect (``status``, default 302) to ``location``.
    REDIRECT = "redirect"
    #: Wait ``seconds``, then answer normally.
    DELAY = "delay"

    # -- WebSocket ---------------------------------------------------------------------------
    #: Drop the TCP connection without a close frame instead of answering.
    WS_DROP = "ws_drop"
    #: Close with ``code`` (default 1011) and ``reason`` (default "") instead of answering.
    WS_CLOSE = "ws_close"
    #: From this request on, read and send nothing (no answers, no heartbeats) for ``seconds``
    #: (real seconds, not scaled), then carry on with this request.
    WS_SILENCE = "ws_silence"
    #: Answer this request ``seconds`` late while later answers go out at once (reordering).
    WS_DELAY = "ws_delay"
    #: Refuse the next WebSocket opening handshake with HTTP 429 and ``Retry-After:
    #: retry_after`` (default 1); takes no ``path``.
    WS_REFUSE = "ws_refuse"
    #: Answer with a text frame that is not valid UTF-8.
    WS_MALFORMED_FRAME = "ws_malformed_frame"
    #: Answer with one JSON message of ``size`` bytes (default 20 MiB).
    WS_OVERSIZED = "ws_oversized"
    #: Neither answer this request nor count it as the answer to a ``test_request`` (use with
    #: ``path="/public/test"``), so the client's heartbeat fails as if its answers were lost.
    WS_IGNORE_TEST = "ws_ignore_test"


#: The faults that apply to WebSocket requests (and handshakes), not to HTTP requests.
WEBSOCKET_FAULTS = frozenset(fault for fault in Fault if fault.value.startswith("ws_"))
#: Largest ``size`` of :attr:`Fault.WS_OVERSIZED`, in bytes.
MAX_OVERSIZED = 1 << 30


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError
    if value < 0:
        raise ValueError
    return float(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return int(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _http_status(value: Any) -> int:
    status = _int(value)
    if not 200 <= status <= 599:
        raise ValueError
    return status


def _redirect_status(value: Any) -> int:
    status = _int(value)
    if status not in (301, 302, 303, 307, 308):
        raise ValueError
    return status


def _retry_after(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(max(0, _int(value)))


def _close_code(value: Any) -> int:
    code = _int(value)
    if not (
        code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
        or 3000 <= code <= 4999
    ):
        raise ValueError
    return code


def _close_reason(value: Any) -> str:
    reason = _text(value)
    if len(reason.encode()) > 123:
        raise ValueError
    return reason


def _size(value: Any) -> int:
    size = _int(value)
    if not 64 <= size <= MAX_OVERSIZED:
        raise ValueError
    return size


def _location(value: Any) -> str:
    location = _text(value)
    if not location or any(c in location for c in "\r\n"):
        raise ValueError
    return location


def _data(value: Any) -> Any:
    if value is not None and not isinstance(value, Mapping):
        raise TypeError
    return None if value is None else dict(value)


_REQUIRED = object()


@dataclass(frozen=True)
class _Param:
    convert: Callable[[Any], Any]
    default: Any
    expects: str


#: For each fault, the parameters it takes: how to check them and their defaults.
_PARAMS: Mapping[Fault, Mapping[str, _Param]] = {
    Fault.RESET: {},
    Fault.RESET_MID_BODY: {},
    Fault.HANG: {"seconds": _Param(_seconds, 30.0, "a number of seconds >= 0")},
    Fault.HTML_503: {},
    Fault.TOO_MANY_REQUESTS: {
        "retry_after": _Param(
            _retry_after, "1", "whole seconds, an HTTP date string, or None to omit the header"
        ),
    },
    Fault.RPC_ERROR: {
        "code": _Param(_int, _REQUIRED, "an int error code"),
        "message": _Param(_text, _REQUIRED, "a str error message"),
        "data": _Param(_data, None, "a mapping or None"),
        "status": _Param(_http_status, 400, "an HTTP status from 200 to 599"),
    },
    Fault.NON_JSON: {},
    Fault.TRUNCATED: {},
    Fault.REDIRECT: {
        "location": _Param(_location, _REQUIRED, "a non-empty URL on one line"),
        "status": _Param(_redirect_status, 302, "one of 301, 302, 303, 307, 308"),
    },
    Fault.DELAY: {"seconds": _Param(_seconds, _REQUIRED, "a number of seconds >= 0")},
    Fault.WS_DROP: {},
    Fault.WS_CLOSE: {
        "code": _Param(_close_code, 1011, "a close code a server may send (1000-1014, 3000-4999)"),
        "reason": _Param(_close_reason, "", "a str of at most 123 UTF-8 bytes"),
    },
    Fault.WS_SILENCE: {"seconds": _Param(_seconds, _REQUIRED, "a number of seconds >= 0")},
    Fault.WS_DELAY: {"seconds": _Param(_seconds, _REQUIRED, "a number of seconds >= 0")},
    Fault.WS_REFUSE: {
        "retry_after": _Param(
            _retry_after, "1", "whole seconds, an HTTP date string, or None to omit the header"
        ),
    },
    Fault.WS_MALFORMED_FRAME: {},
    Fault.WS_OVERSIZED: {
        "size": _Param(_size, 20 << 20, f"a whole number of bytes from 64 to {MAX_OVERSIZED}")
    },
    Fault.WS_IGNORE_TEST: {},
}


@dataclass(frozen=True)
class FaultSpec:
    """A validated fault: its kind, its parameters (defaults filled in) and its path filter."""

    kind: Fault
    params: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None

    @classmethod
    def build(cls, kind: Fault | str, path: str | None, params: Mapping[str, Any]) -> FaultSpec:
        """Check ``kind``, ``path`` and ``params``; raise ValueError saying what is wrong."""
        try:
            fault = Fault(kind)
        except ValueError:
            kinds = ", ".join(repr(f.value) for f in Fault)
            raise ValueError(f"unknown fault kind {kind!r}; use one of {kinds}") from None
        accepted = _PARAMS[fault]
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            takes = ", ".join(accepted) or "no parameters"
            raise ValueError(
                f"fault {fault.value!r} does not take {', '.join(unknown)}; it takes {takes}"
            )
        checked: dict[str, Any] = {}
        for name, param in accepted.items():
            if name not in params:
                if param.default is _REQUIRED:
                    raise ValueError(f"fault {fault.value!r} needs {name}= ({param.expects})")
                checked[name] = param.default
                continue
            try:
                checked[name] = param.convert(params[name])
            except (TypeError, ValueError):
                raise ValueError(
                    f"fault {fault.value!r}: {name} must be {param.expects}, got {params[name]!r}"
                ) from None
        if fault is Fault.WS_REFUSE and path is not None:
            raise ValueError("fault 'ws_refuse' applies to the next handshakes: it takes no path")
        return cls(fault, checked, _method_path(path))

    @property
    def websocket(self) -> bool:
        """Whether this fault applies to WebSocket requests rather than HTTP ones."""
        return self.kind in WEBSOCKET_FAULTS


def _method_path(path: str | None) -> str | None:
    if path is None:
        return None
    if not isinstance(path, str) or not path.startswith("/") or "?" in path:
        raise ValueError(
            f"path must be a method path like '/public/set_heartbeat' (no query), got {path!r}"
        )
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        path = path[len(API_PREFIX) :]
    return path


class FaultQueue:
    """Queued faults, each for a number of matching requests; thread-safe, first in first out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[list[Any]] = []  # [FaultSpec, remaining count]

    def add(self, spec: FaultSpec, count: int) -> None:
        """Apply ``spec`` to the next ``count`` requests it matches."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a whole number >= 1, got {count!r}")
        with self._lock:
            self._pending.append([spec, count])

    def take(self, method_path: str, *, websocket: bool = False) -> FaultSpec | None:
        """The fault for a request to ``method_path`` (path below /api/v2), if any is due.

        :param websocket: whether the request came over a WebSocket (it then takes only
            WebSocket faults, an HTTP request only HTTP faults).
        """
        return self._take(
            lambda spec: (
                spec.websocket == websocket
                and spec.kind is not Fault.WS_REFUSE
                and (spec.path is None or spec.path == method_path)
            )
        )

    def take_handshake(self) -> FaultSpec | None:
        """The :attr:`Fault.WS_REFUSE` due for a WebSocket opening handshake, if any."""
        return self._take(lambda spec: spec.kind is Fault.WS_REFUSE)

    def _take(self, matches: Callable[[FaultSpec], bool]) -> FaultSpec | None:
        if not self._pending:
            return None
        with self._lock:
            for index, entry in enumerate(self._pending):
                spec: FaultSpec = entry[0]
                if matches(spec):
                    entry[1] -= 1
                    if entry[1] == 0:
                        del self._pending[index]
                    return spec
        return None

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._pending.clear()
