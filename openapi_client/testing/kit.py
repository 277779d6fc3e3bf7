"""The test kit: :class:`DeribitTestKit`, :class:`ManualClock` and the simulator's settings for
clients (imported through :mod:`openapi_client.testing`)."""

from __future__ import annotations

import copy
import threading
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from openapi_client.api.session_management_api import SessionManagementApi
from openapi_client.api_client import ApiClient
from openapi_client.configuration import Configuration
from openapi_client.retry import RetryPolicy
from openapi_client.simulator import (
    DEFAULT_CREDENTIALS,
    CancelOnDisconnectEvent,
    DeribitSimulator,
    Fault,
    RecordedRequest,
    WsConnectionInfo,
)

if TYPE_CHECKING:
    from openapi_client import aio
    from openapi_client.websocket import WebSocketApiClient

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "DeribitTestKit",
    "Fault",
    "ManualClock",
    "simulator_configuration",
]

#: The API key the simulator accepts out of the box (``public/auth``, signatures, Basic).
CLIENT_ID, CLIENT_SECRET = next(iter(DEFAULT_CREDENTIALS.items()))

#: Retries as the default policy, with waits short enough for a test.
TEST_RETRIES = RetryPolicy(total=3, backoff_factor=0.01, backoff_max=0.05)

#: Where an HTTP request for a JSON-RPC method lands: ``/api/v2/<method>``.
_API_ROOT = "/api/v2/"
#: How often an assertion that waits looks again, in seconds.
_POLL_SECONDS = 0.01


class ManualClock:
    """A monotonic clock that moves only when told to: pass it as ``DeribitSimulator(clock=...)``
    and call :meth:`advance` instead of sleeping, so token expiry and rate limits are exact on
    any machine.

    :param start: the first reading, in seconds.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` forward (never back); returns the new reading."""
        if not seconds >= 0:
            raise ValueError(f"a clock only moves forward, got {seconds!r} seconds")
        with self._lock:
            self._now += seconds
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self():.6f})"


def simulator_configuration(simulator: DeribitSimulator, **settings: Any) -> Configuration:
    """A :class:`Configuration` for ``simulator``: its host, its default API key, short
    timeouts and quick retries; ``settings`` override any of them (e.g. ``retries=0``).

    Over TLS, pass the CA that signed the simulator's certificate as ``ssl_ca_cert``.
    """
    values: dict[str, Any] = {
        "host": simulator.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "request_timeout": (2.0, 5.0),
        "retries": TEST_RETRIES,
    }
    values.update(settings)
    return Configuration(**values)


def _method_of(request: RecordedRequest) -> str:
    """The JSON-RPC method a recorded request called (``public/set_heartbeat``), or ``""``."""
    path = request.path
    return path[len(_API_ROOT) :] if path.startswith(_API_ROOT) else ""


class DeribitTestKit:
    """One simulator, the clients a test opened on it, and assertions about what they did.

    :param simulator: a started simulator.
    :param configuration: settings for the clients the kit opens (see :meth:`configuration`).
    """

    def __init__(
        self, simulator: DeribitSimulator, configuration: Configuration | None = None
    ) -> None:
        self.simulator = simulator
        self._configuration = configuration
        self._opened = ExitStack()

    # -- clients -----------------------------------------------------------------------------

    def configuration(self, **settings: Any) -> Configuration:
        """A fresh copy of the kit's client settings, with ``settings`` changed."""
        if self._configuration is None:
            return simulator_configuration(self.simulator, **settings)
        copied = copy.copy(self._configuration)
        for name, value in settings.items():
            setattr(copied, name, value)
        return copied

    def api_client(self, **settings: Any) -> ApiClient:
        """An HTTP :class:`ApiClient` on the simulator, closed when the kit closes."""
        return self._opened.enter_context(ApiClient(self.configuration(**settings)))

    def session_api(self, **settings: Any) -> SessionManagementApi:
        """:class:`SessionManagementApi` over a new HTTP client (see :meth:`api_client`)."""
        return SessionManagementApi(self.api_client(**settings))

    def ws_client(
        self, configuration: Configuration | None = None, **options: Any
    ) -> WebSocketApiClient:
        """An open :class:`~openapi_client.websocket.WebSocketApiClient` on the simulator,
        closed when the kit closes; ``options`` are its keyword arguments (``heartbeat=10``,
        ``cancel_on_disconnect=True``, ``on_event=...``). Needs the ``[websocket]`` extra.
        """
        from openapi_client.websocket import WebSocketApiClient

        client = WebSocketApiClient(
            configuration if configuration is not None else self.configuration(), **options
        )
        return self._opened.enter_context(client)

    def aio_client(
        self, configuration: Configuration | None = None, **options: Any
    ) -> aio.WebSocketApiClient:
        """An :class:`openapi_client.aio.WebSocketApiClient` on the simulator, for an asyncio
        test: not open yet, since opening it is a coroutine; open and close it in the test::

            async with deribit.aio_client(heartbeat=10) as session:
                ...

        ``options`` are its keyword arguments, as for :meth:`ws_client`. Needs the
        ``[websocket]`` extra.
        """
        from openapi_client.aio import WebSocketApiClient as AsyncWebSocketApiClient

        return AsyncWebSocketApiClient(
            configuration if configuration is not None else self.configuration(), **options
        )

    def close(self) -> None:
        """Close every client the kit opened, newest first."""
        self._opened.close()

    def __enter__(self) -> DeribitTestKit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- faults ------------------------------------------------------------------------------

    def inject(
        self, kind: Fault | str, count: int = 1, *, method: str | None = None, **params: Any
    ) -> None:
        """Make the simulator misbehave for the next ``count`` requests, or only for those
        calling ``method`` (``"public/set_heartbeat"``); see
        :meth:`DeribitSimulator.inject <openapi_client.simulator.DeribitSimulator.inject>`.
        """
        path = None if method is None else "/" + method.strip("/")
        self.simulator.inject(kind, count, path=path, **params)

    # -- what the clients did ----------------------------------------------------------------

    def requests(
        self, method: str | None = None, *, transport: str | None = None
    ) -> list[RecordedRequest]:
        """The recorded requests, oldest first, optionally only those calling ``method`` and
        only over ``transport`` (``"http"`` or ``"websocket"``)."""
        wanted = None if method is None else method.strip("/")
        return [
            request
            for request in self.simulator.requests
            if (wanted is None or _method_of(request) == wanted)
            and (transport is None or request.transport == transport)
        ]

    def calls(self, *, transport: str | None = None) -> list[str]:
        """The methods called, in order (``["public/auth", "public/set_heartbeat", ...]``)."""
        return [_method_of(request) for request in self.requests(transport=transport)]

    def assert_called(
        self, method: str, *, times: int | None = None, transport: str | None = None
    ) -> list[RecordedRequest]:
        """Fail unless ``method`` was called (exactly ``times`` times, when given); returns the
        matching requests."""
        found = self.requests(method, transport=transport)
        if (times is None and not found) or (times is not None and len(found) != times):
            expected = "at least once" if times is None else f"{times} time(s)"
            raise AssertionError(
                f"expected {method} to be called {expected}{_over(transport)}, it was called "
                f"{len(found)} time(s); calls: {self.calls(transport=transport)}"
            )
        return found

    def assert_not_called(self, method: str, *, transport: str | None = None) -> None:
        """Fail if ``method`` was called."""
        found = self.requests(method, transport=transport)
        if found:
            raise AssertionError(
                f"expected {method} not to be called{_over(transport)}, it was called "
                f"{len(found)} time(s)"
            )

    def assert_param(self, method: str, name: str, value: Any) -> None:
        """Fail unless the last call of ``method`` sent parameter ``name`` equal to ``value``
        (compared as the simulator recorded it: text)."""
        last = self.assert_called(method)[-1]
        sent = last.query.get(name)
        expected = value if isinstance(value, str) else _as_text(value)
        if sent != expected:
            raise AssertionError(
                f"expected the last {method} to send {name}={expected!r}, it sent "
                f"{'nothing' if sent is None else repr(sent)}"
            )

    # -- sessions and cancel-on-disconnect ---------------------------------------------------

    @property
    def ws_connections(self) -> list[WsConnectionInfo]:
        """The WebSocket connections open now, with their session state."""
        return self.simulator.ws_connections

    @property
    def cancel_on_disconnect_events(self) -> list[CancelOnDisconnectEvent]:
        """Each time cancel-on-disconnect fired (a connection that had it on ended)."""
        return self.simulator.cancel_on_disconnect_events

    def assert_cancel_on_disconnect_fired(
        self, *, reason: str | None = None, times: int | None = None
    ) -> list[CancelOnDisconnectEvent]:
        """Fail unless cancel-on-disconnect fired (for ``reason``: ``"closed"``,
        ``"heartbeat"``, ``"inactivity"`` or ``"fault"``; exactly ``times`` times, when given).
        Returns the matching events."""
        found = [
            event
            for event in self.cancel_on_disconnect_events
            if reason is None or event.reason == reason
        ]
        if (times is None and not found) or (times is not None and len(found) != times):
            expected = "at least once" if times is None else f"{times} time(s)"
            what = "" if reason is None else f" for reason {reason!r}"
            seen = [event.reason for event in self.cancel_on_disconnect_events]
            raise AssertionError(
                f"expected cancel-on-disconnect to fire{what} {expected}; it fired "
                f"{len(found)} time(s) (all reasons seen: {seen})"
            )
        return found

    def assert_cancelled_on_disconnect(
        self,
        *,
        reason: str = "closed",
        connection: int | None = None,
        timeout: float = 5.0,
    ) -> CancelOnDisconnectEvent:
        """Fail unless cancel-on-disconnect cancelled a connection's orders for ``reason``
        within ``timeout`` seconds: "the bot froze and its orders were cancelled". A frozen
        bot's watchdog closes the connection without logging out, which Deribit (and the
        simulator) treats like any lost connection: reason ``"closed"`` (a logout would keep
        the orders). ``connection`` narrows it to one connection id. The simulator notices a
        closed connection a moment after the client does, hence the wait. Returns the (last
        matching) event; a failure says what happened instead: which connections are still
        open, which logged out, what fired.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [
                event
                for event in self.cancel_on_disconnect_events
                if event.reason == reason
                and (connection is None or event.connection_id == connection)
            ]
            if found or time.monotonic() >= deadline:
                break
            time.sleep(_POLL_SECONDS)
        which = "" if connection is None else f" for connection {connection}"
        if not found:
            raise AssertionError(
                f"expected cancel-on-disconnect to cancel the orders{which} (reason {reason!r}) "
                f"within {timeout:g} s; {self._cancel_on_disconnect_story(connection)}"
            )
        return found[-1]

    def _cancel_on_disconnect_story(self, connection: int | None) -> str:
        """What happened instead, for a failed :meth:`assert_cancelled_on_disconnect`."""
        events = [
            f"connection {e.connection_id} ({e.reason})" for e in self.cancel_on_disconnect_events
        ]
        still_open = [
            info for info in self.ws_connections if connection is None or info.id == connection
        ]
        parts = [f"it fired for {', '.join(events)}" if events else "it never fired"]
        if still_open:
            parts.append(
                "still open: "
                + ", ".join(
                    f"connection {info.id} (cancel-on-disconnect "
                    f"{'on' if info.cancel_on_disconnect else 'off'})"
                    for info in still_open
                )
            )
        logged_out = {request.connection_id for request in self.requests("private/logout")}
        if logged_out:
            parts.append(
                "logged out (which keeps the orders): "
                + ", ".join(f"connection {c}" for c in sorted(logged_out, key=str))
            )
        return "; ".join(parts)

    def assert_cancel_on_disconnect_not_fired(self) -> None:
        """Fail if cancel-on-disconnect fired: no connection's orders were cancelled."""
        events = self.cancel_on_disconnect_events
        if events:
            raise AssertionError(
                "expected cancel-on-disconnect not to fire; it fired for "
                + ", ".join(f"connection {e.connection_id} ({e.reason})" for e in events)
            )

    def publish_platform_state(self, **data: Any) -> int:
        """Send a ``platform_state`` notice to every subscriber; returns how many got it."""
        return self.simulator.publish_platform_state(data)

    def __repr__(self) -> str:
        return f"DeribitTestKit({self.simulator!r})"


def _over(transport: str | None) -> str:
    return "" if transport is None else f" over {transport}"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
