"""``DeribitSimulator``: the public face that wires credentials, state, faults and the server."""

from __future__ import annotations

import importlib
import ipaddress
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

from .auth import Authenticator
from .connections import WebSocketRegistry, platform_state
from .credits import AccountCredits
from .deribit import WS_PATH
from .dispatch import Dispatcher
from .faults import API_PREFIX, Fault, FaultQueue, FaultSpec
from .keys import ApiKey, keys_from
from .methods import Context
from .recording import CancelOnDisconnectEvent, RecordedRequest, RequestLog
from .rpc import Envelope
from .server import HttpServer, without_session_tickets
from .sessions import SessionEviction, SessionInfo
from .state import SessionState, WsConnectionInfo

if TYPE_CHECKING:
    from .ws import WebSocketEndpoint

__all__ = ["DEFAULT_CREDENTIALS", "DEFAULT_TOKENS", "DeribitSimulator", "loopback_family"]

#: Static access tokens accepted when none are given.
DEFAULT_TOKENS = ("sim-token",)
#: ``client_id -> client_secret`` accepted when none are given.
DEFAULT_CREDENTIALS: Mapping[str, str] = MappingProxyType({"sim-client": "sim-secret"})

#: How long :meth:`DeribitSimulator.stop` waits for threads to end, in seconds.
_STOP_TIMEOUT = 2.0


def loopback_family(host: str) -> socket.AddressFamily:
    """The address family to listen on ``host``; ValueError unless ``host`` is loopback.

    The simulator accepts fixed, well-known credentials, so it never listens beyond this machine.
    """
    if host.lower() == "localhost":
        return socket.AF_INET
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"refusing to listen on {host!r}: the simulator accepts well-known test credentials, "
            "so it only listens on loopback (127.0.0.0/8, ::1 or localhost)"
        )
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def _websocket_endpoint(**services: Any) -> WebSocketEndpoint | None:
    """The WebSocket endpoint, or None when the ``websockets`` package is not installed."""
    try:
        ws = importlib.import_module(f"{__package__}.ws")
    except ImportError:
        return None
    endpoint: WebSocketEndpoint = ws.WebSocketEndpoint(**services)
    return endpoint


class DeribitSimulator:
    """A local stand-in for Deribit's API, for testing clients and bots offline.

    It answers ``public/auth``, ``public/test``, the heartbeat and cancel-on-disconnect methods
    and more over real HTTP/1.1 (:attr:`url`) and WebSocket (:attr:`ws_url`, with the
    ``[websocket]`` extra) on loopback, records every request, and can be told to misbehave
    (see :meth:`inject`).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with DeribitSimulator() as sim:
            configuration.host = sim.url

    :param host: loopback address to listen on.
    :param port: TCP port; 0 picks a free one (read it from :attr:`port`).
    :param tokens: static access tokens that are always valid, never expire and may do
        anything.
    :param credentials: ``client_id -> client_secret`` pairs for ``public/auth``,
        ``deri-hmac-sha256`` signatures and ``Basic`` authorization, each a key allowed
        everything. Default: ``sim-client``/``sim-secret``, unless ``keys`` are given.
    :param keys: :class:`ApiKey` objects, for keys with their own maximum scope (read-only
        keys), name or features; added to ``credentials``.
    :param token_ttl: seconds every access token issued by ``public/auth`` lives; None (the
        default) for Deribit's lifetimes: 900 for a session's token, 899 for the session an
        HTTP grant without a scope creates, 31536000 for a connection-scoped token on a
        WebSocket.
    :param rate_limit: enforce Deribit's credit model (error 10028 once a pool is empty).
    :param rate_limit_per_second: requests per second each pool refills (Deribit: 20).
    :param rate_limit_burst: requests a full pool allows back to back (Deribit: 100).
    :param max_connections: simultaneous connections served, HTTP and WebSocket together; the
        next one gets HTTP 429.
    :param time_scale: real seconds per API second for the WebSocket timers (heartbeats, idle
        rules): with 0.01 a heartbeat interval of 10 s runs as 0.1 s, while ``set_heartbeat``
        still requires ``interval >= 10``. Fault durations are real seconds.
    :param legacy_http: answer ``public/set_heartbeat``, ``public/disable_heartbeat`` and the
        cancel-on-disconnect methods with scope ``connection`` over HTTP, as the published API
        description says, with state shared by all HTTP requests. By default they answer
        HTTP 400 with error 10030 ``must_be_websocket_request``, as Deribit does today.
    :param request_log_size: how many recent requests :attr:`requests` keeps.
    :param ssl_context: a server-side :class:`ssl.SSLContext` holding a certificate and key:
        serve HTTPS instead of HTTP (:attr:`url` then starts with ``https://``). The certificate
        must name the host the client connects to (``127.0.0.1`` or ``localhost``). The
        simulator turns its TLS 1.3 session tickets off (``num_tickets = 0``): see
        ``docs/Simulator.md``, HTTPS.
    :param clock: a monotonic clock in seconds for token expiry and the credit pools, so a test
        can move time forward instead of sleeping (``time.monotonic`` by default). The WebSocket
        timers keep real time, scaled by ``time_scale``.
    :param testnet: the ``testnet`` flag of every answer: True (the default) imitates
        ``test.deribit.com``, False production.
    :param rest_sessions: an HTTP ``public/auth`` that names no session (and no ``connection``
        scope) creates a new session ``rest-<id>``, which counts toward the key's 16, as
        Deribit does; False binds its tokens to the HTTP connection instead.
    :param account_cod_over_http: cancel-on-disconnect with scope ``account`` works over HTTP
        (True, the default); False answers it with 10030 as the heartbeat methods. Deribit's
        docs disagree on it: see ``docs/Simulator.md``, "Fidelity".
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Iterable[str] = DEFAULT_TOKENS,
        credentials: Mapping[str, str] | None = None,
        keys: Iterable[ApiKey] = (),
        token_ttl: float | None = None,
        rate_limit: bool = False,
        rate_limit_per_second: float = 20.0,
        rate_limit_burst: int = 100,
        max_connections: int = 32,
        time_scale: float = 1.0,
        legacy_http: bool = False,
        request_log_size: int = 100_000,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] | None = None,
        testnet: bool = True,
        rest_sessions: bool = True,
        account_cod_over_http: bool = True,
    ) -> None:
        self._family = loopback_family(host)
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise ValueError(
                f"ssl_context must be an ssl.SSLContext or None, got {type(ssl_context).__name__}"
            )
        self._ssl_context = None if ssl_context is None else without_session_tickets(ssl_context)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be a whole number from 0 to 65535, got {port!r}")
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(
                f"max_connections must be a whole number >= 1, got {max_connections!r}"
            )
        if (
            isinstance(time_scale, bool)
            or not isinstance(time_scale, (int, float))
            or not (math.isfinite(time_scale) and time_scale > 0)
        ):
            raise ValueError(f"time_scale must be a finite number > 0, got {time_scale!r}")
        self._address = (host.strip("[]"), port)
        self._max_connections = max_connections
        self._time_scale = float(time_scale)
        if clock is None:
            clock = time.monotonic
        elif not callable(clock):
            raise ValueError(f"clock must be a callable returning seconds, got {clock!r}")
        for name, flag in (
            ("testnet", testnet),
            ("rest_sessions", rest_sessions),
            ("account_cod_over_http", account_cod_over_http),
        ):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        self._auth = Authenticator(
            tokens=tokens,
            keys=keys_from(credentials, keys, DEFAULT_CREDENTIALS),
            token_ttl=token_ttl,
            rest_sessions=rest_sessions,
            clock=clock,
        )
        self._state = SessionState()
        self._faults = FaultQueue()
        self._log = RequestLog(request_log_size)
        self._registry = WebSocketRegistry()
        credits = (
            AccountCredits.from_requests(rate_limit_per_second, rate_limit_burst, clock=clock)
            if rate_limit
            else None
        )
        context = Context(self._state, self._auth, bool(legacy_http), account_cod_over_http)
        self._dispatcher = Dispatcher(context, credits, Envelope(testnet))
        self._stopping = threading.Event()
        self._websocket = _websocket_endpoint(
            dispatcher=self._dispatcher,
            faults=self._faults,
            log=self._log,
            registry=self._registry,
            state=self._state,
            time_scale=self._time_scale,
            stopping=self._stopping,
        )
        self._lifecycle = threading.Lock()
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DeribitSimulator:
        """Listen and serve on a background thread; returns ``self``.

        :raises OSError: when the address cannot be bound (e.g. the port is taken).
        :raises RuntimeError: when already started or stopped (create a new simulator).
        """
        with self._lifecycle:
            if self._server is not None or self._stopped:
                raise RuntimeError("a DeribitSimulator starts once; create a new one to restart")
            server = HttpServer(
                self._address,
                self._family,
                dispatcher=self._dispatcher,
                faults=self._faults,
                log=self._log,
                max_connections=self._max_connections,
                ssl_context=self._ssl_context,
                websocket=self._websocket,
                stopping=self._stopping,
            )
            self._thread = threading.Thread(
                target=server.serve,
                name="deribit-simulator",
                daemon=True,
            )
            self._server = server
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake hung requests, close every connection and the listening socket.

        Safe to call more than once, and before :meth:`start`.
        """
        with self._lifecycle:
            if self._stopped:
                return
            self._stopped = True
            server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stop_serving()
        thread.join(_STOP_TIMEOUT)
        server.close_connections(_STOP_TIMEOUT)
        server.server_close()

    def __enter__(self) -> DeribitSimulator:
        """Start (unless :meth:`start` was already called) and return ``self``."""
        with self._lifecycle:
            started = self._server is not None and not self._stopped
        return self if started else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it listens --------------------------------------------------------------------

    def _bound(self) -> HttpServer:
        if self._server is None:
            raise RuntimeError("the simulator is not started; call start() or use 'with'")
        return self._server

    @property
    def host(self) -> str:
        """The address the simulator listens on (e.g. ``127.0.0.1``)."""
        return str(self._bound().server_address[0])

    @property
    def port(self) -> int:
        """The TCP port the simulator listens on."""
        return int(self._bound().server_address[1])

    @property
    def url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:8080/api/v2``: use it as ``Configuration.host``.

        ``https://`` when the simulator was given an ``ssl_context``.
        """
        return self._root("http" if self._ssl_context is None else "https", API_PREFIX)

    @property
    def ws_url(self) -> str:
        """The WebSocket API, e.g. ``ws://127.0.0.1:8080/ws/api/v2`` (``wss://`` with an
        ``ssl_context``). Serving it needs the ``websockets`` package (the ``[websocket]``
        extra); without it a handshake is answered with HTTP 501 naming the extra."""
        return self._root("ws" if self._ssl_context is None else "wss", WS_PATH)

    def _root(self, scheme: str, path: str) -> str:
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}{path}"

    @property
    def time_scale(self) -> float:
        """Real seconds per API second of the WebSocket timers, as given to the constructor
        (0.01: a heartbeat interval of 10 s runs as 0.1 s)."""
        return self._time_scale

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections were accepted since :meth:`start` (refused ones included)."""
        return self._bound().connections_accepted

    @property
    def tls_failures(self) -> int:
        """How many TLS handshakes failed (e.g. the client did not trust the certificate)."""
        return self._bound().tls_failures

    # -- credentials -------------------------------------------------------------------------

    def issue_token(
        self, client_id: str = "sim-client", ttl: float | None = None, *, scope: str | None = None
    ) -> str:
        """Mint an access token as ``public/auth`` would, without a request; it works on any
        connection and belongs to no session.

        :param client_id: the account the token belongs to.
        :param ttl: seconds it lives; default ``token_ttl``, else 900.
        :param scope: what it may do, e.g. ``"account:read"``; default everything.
        """
        return self._auth.issue_access_token(client_id, ttl, scope)

    def add_token(self, token: str) -> None:
        """Accept ``token`` as a static access token (valid until the simulator stops)."""
        self._auth.add_token(token)

    def revoke_tokens(self, *, refresh_tokens: bool = False) -> None:
        """Invalidate every issued access token, so private calls answer 13009 until the client
        authenticates again. Static tokens stay valid; refresh tokens too unless asked.
        """
        self._auth.revoke(refresh_tokens=refresh_tokens)

    @property
    def sessions(self) -> list[SessionInfo]:
        """A snapshot of the live sessions of every key, per key oldest first: those named by
        ``session:NAME`` grants and the ``rest-<id>`` ones HTTP grants created."""
        return self._auth.sessions

    @property
    def session_evictions(self) -> list[SessionEviction]:
        """Every session removed to make room for a key's 17th, oldest first (a copy): which
        session, why, what replaced it and when. Its tokens answer 13009 afterwards."""
        return self._auth.evictions

    def clear_session_evictions(self) -> None:
        """Forget the recorded evictions."""
        self._auth.clear_evictions()

    # -- faults ------------------------------------------------------------------------------

    def inject(
        self, kind: Fault | str, count: int = 1, *, path: str | None = None, **params: Any
    ) -> None:
        """Deliver fault ``kind`` instead of an answer to the next ``count`` matching requests.

        :param kind: a :class:`Fault` or its value, e.g. ``"reset"`` or ``"429"``.
        :param count: how many requests get the fault.
        :param path: only requests to this method path, e.g. ``"/public/set_heartbeat"``
            (``/api/v2`` may be included); None matches every request.
        :param params: the fault's parameters (see :class:`Fault`).
        :raises ValueError: on an unknown kind, a bad count or path, or bad parameters.
        """
        self._faults.add(FaultSpec.build(kind, path, params), count)

    def clear_faults(self) -> None:
        """Drop every fault not yet delivered."""
        self._faults.clear()

    # -- what clients did --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first (faulted ones included)."""
        return self._log.snapshot()

    @property
    def auth_requests(self) -> int:
        """How many ``public/auth`` requests arrived since the last :meth:`clear_requests`."""
        return self._log.auth_requests

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._log.clear()

    # -- session state -----------------------------------------------------------------------

    @property
    def heartbeat_interval(self) -> float | None:
        """The interval set by ``public/set_heartbeat`` over HTTP in ``legacy_http`` mode, in
        seconds; None if not set. A WebSocket connection's own interval is in
        :attr:`ws_connections`."""
        return self._state.heartbeat_interval

    @property
    def cancel_on_disconnect(self) -> dict[str, bool]:
        """Cancel-on-disconnect per scope (a copy): ``"account"`` is the account default every
        new connection starts with (set with scope ``account`` over HTTP or WebSocket);
        ``"connection"`` is the flag HTTP requests share in ``legacy_http`` mode. A WebSocket
        connection's own setting is in :attr:`ws_connections`."""
        return self._state.cancel_on_disconnect

    def reset_state(self) -> None:
        """Forget the legacy HTTP heartbeat and turn both flags of :attr:`cancel_on_disconnect`
        off (open WebSocket connections keep their own settings)."""
        self._state.reset()

    # -- WebSocket connections ---------------------------------------------------------------

    @property
    def ws_connections(self) -> list[WsConnectionInfo]:
        """A snapshot of the open WebSocket connections, oldest first."""
        return self._registry.snapshot()

    @property
    def cancel_on_disconnect_events(self) -> list[CancelOnDisconnectEvent]:
        """Every time cancel-on-disconnect fired, oldest first (a copy)."""
        return self._registry.events

    def clear_cancel_on_disconnect_events(self) -> None:
        """Forget the recorded cancel-on-disconnect events."""
        self._registry.clear_events()

    def publish_platform_state(self, data: Mapping[str, Any]) -> int:
        """Send a ``platform_state`` notice to every WebSocket connection subscribed to it::

            {"jsonrpc": "2.0", "method": "subscription",
             "params": {"channel": "platform_state", "data": data}}

        :param data: the notice, e.g. ``{"maintenance": True}`` or ``{"locked": True}``.
        :returns: how many connections it was sent to.
        """
        return self._registry.publish("platform_state", platform_state(data))

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        status = "stopped" if self._stopped else where
        return f"<DeribitSimulator {status}>"
