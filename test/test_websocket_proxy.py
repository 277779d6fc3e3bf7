"""The WebSocket session through a proxy (``Configuration.proxy``), over real loopback sockets.

A small CONNECT proxy written here tunnels to the simulator (``ws://`` or ``wss://``, on
127.0.0.1 or ::1), or answers as a test tells it: refusals, answers too long or never ending,
early closes, bytes through the tunnel before the client spoke. The session opens the tunnel
itself for every route but ``wss://`` through an ``https://`` proxy, which ``websockets``' own
client opens; every route is run. Certificates come from trustme: the proxy's names its address,
the origin's (for ``wss://``) the name the client connects to, ``deribit.test``, which only the
proxy resolves (to loopback: nothing here asks a resolver).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import select
import socket
import ssl
import time
import traceback
from collections.abc import Iterator
from typing import Callable, NamedTuple

import pytest
import trustme
from conftest import TOKEN
from test_hostile_server import HostileServer, Peer, response
from test_websocket_hostile_secrets import chain_of
from test_websocket_support import SOON, Recorder, session, wait_until
from test_websocket_transport import CALM_SCALE, tls_simulator
from websockets.exceptions import ConnectionClosed

from openapi_client import (
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiSSLError,
    ApiTimeoutError,
    ApiValueError,
    Configuration,
    RetryPolicy,
)
from openapi_client.simulator import DeribitSimulator
from openapi_client.websocket import Disconnected, Reconnecting, SessionRestored, tls
from openapi_client.websocket.transport import open_socket

pytestmark = pytest.mark.timeout(30)

#: The name the client gives a wss:// origin; the test proxy resolves it to loopback.
ORIGIN_NAME = "deribit.test"
#: The proxy's credentials, as a user puts them in Configuration.proxy.
PROXY_USER = "desk-trader"
PROXY_PASSWORD = "hunter2-proxy-pw"
PROXY_TOKEN = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
#: A header for the proxy only (Configuration.proxy_headers).
PROXY_HEADER = ("X-Proxy-Desk", "desk-7-routing")

#: How a proxy answers one CONNECT: given the connection and the request head.
Answer = Callable[[Peer, bytes], None]


class Route(NamedTuple):
    """A way through a proxy: TLS to the origin (``wss://``), TLS to the proxy (``https://``)."""

    secure: bool
    proxy_tls: bool


ROUTES = {
    "ws-via-http": Route(False, False),
    "ws-via-https": Route(False, True),
    "wss-via-http": Route(True, False),
    "wss-via-https": Route(True, True),  # websockets' own client (TLS inside TLS)
}
ROUTE_IDS = sorted(ROUTES)


def bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class TunnelProxy:
    """A CONNECT proxy on ``host``: TLS when given ``tls``; ``answer`` answers each CONNECT (by
    default :meth:`tunnel`, whose answer is ``established``). ``names`` maps host names to the
    addresses it tunnels to."""

    def __init__(
        self,
        answer: Answer | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        names: dict[str, str] | None = None,
        established: bytes = b"HTTP/1.1 200 Connection established\r\n\r\n",
    ) -> None:
        self.answer = answer or self.tunnel
        self.tls = tls
        self.names = dict(names or {})
        self.established = established
        #: What clients sent through tunnels (to the origin), per tunnel.
        self.through: list[bytes] = []
        self._generation = 0  # tunnels opened before the last cut end
        self.server = HostileServer(self._serve, host=host)
        self.url = f"{'https' if tls else 'http'}://{bracketed(host)}:{self.server.port}"

    def cut(self) -> None:
        """Cut the tunnels open now (not those opened later)."""
        self._generation += 1

    @property
    def heads(self) -> list[bytes]:
        """The CONNECT request heads received, in order."""
        with self.server.lock:
            return list(self.server.requests)

    def _serve(self, peer: Peer) -> None:
        if self.tls is not None:
            peer.start_tls(self.tls)
        head = peer.read_request()
        if head is not None:
            self.answer(peer, head)

    def tunnel(self, peer: Peer, head: bytes) -> None:
        """Connect to the target and relay bytes both ways, on this one thread (a TLS socket is
        never used from two threads), until either side closes, :meth:`cut` is called or the
        server stops."""
        host, _, port = head.split(b" ")[1].decode().rpartition(":")
        host = host.strip("[]")
        address = self.names.get(host, host)
        with socket.create_connection((address, int(port)), timeout=5) as upstream:
            peer.send(self.established)
            sent = bytearray(peer.buffer)  # whatever came behind the head
            upstream.sendall(peer.buffer)
            try:
                self._relay(peer, upstream, sent)
            finally:
                self.through.append(bytes(sent))

    def _relay(self, peer: Peer, upstream: socket.socket, sent: bytearray) -> None:
        client = peer.sock
        other = {client: upstream, upstream: client}
        stop = peer.server.stopping
        generation = self._generation
        while not stop.is_set() and generation == self._generation:
            pending = isinstance(client, ssl.SSLSocket) and client.pending()
            ready = [client] if pending else select.select([client, upstream], [], [], 0.05)[0]
            for source in ready:
                source.settimeout(0.05)
                try:
                    data = source.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError):
                    continue  # a part of a TLS record
                except OSError:
                    return
                if not data:
                    return
                if source is client:
                    sent += data
                other[source].settimeout(5)
                other[source].sendall(data)


def refuse(status: str, *headers: tuple[str, str]) -> Answer:
    """Answer CONNECT with ``status`` and ``headers`` (and a body), then keep the connection
    open: the client must not wait for its end."""

    def answer(peer: Peer, head: bytes) -> None:
        body = f"<html><body>{status}</body></html>".encode()
        if peer.send(response(body, status, (("Content-Type", "text/html"), *headers))):
            peer.hold()

    return answer


def say(data: bytes, then_hold: bool = True) -> Answer:
    """Answer CONNECT with ``data``; keep the connection open, or close it."""

    def answer(peer: Peer, head: bytes) -> None:
        if peer.send(data) and then_hold:
            peer.hold()

    return answer


def dribble(data: bytes, every: float) -> Answer:
    """Answer CONNECT with ``data`` one byte at a time, ``every`` seconds apart."""

    def answer(peer: Peer, head: bytes) -> None:
        if peer.dribble(data, every):
            peer.hold()

    return answer


class Pki(NamedTuple):
    """The tests' certificates: a CA (its PEM file for Configuration.ssl_ca_cert), and the
    proxy's TLS with a certificate for its addresses (127.0.0.1 and ::1) only."""

    ca: trustme.CA
    ca_file: str
    proxy_tls: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    proxy_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "::1").configure_cert(proxy_tls)
    return Pki(ca, str(ca_file), proxy_tls)


@contextlib.contextmanager
def origin(
    pki: Pki,
    secure: bool,
    host: str = "127.0.0.1",
    names: tuple[str, ...] = (ORIGIN_NAME,),
) -> Iterator[DeribitSimulator]:
    """The simulator on ``host``: plain, or TLS with a certificate for ``names``."""
    if secure:
        with tls_simulator(pki.ca, *names, host=host) as sim:
            yield sim
    else:
        with DeribitSimulator(host=host, time_scale=CALM_SCALE) as sim:
            yield sim


def configuration_through(
    proxy: str, pki: Pki, sim: DeribitSimulator, **settings: object
) -> Configuration:
    """A client of ``sim`` through ``proxy``: a ``wss://`` origin by :data:`ORIGIN_NAME` (only
    the proxy resolves it), a ``ws://`` one by its loopback address (a token goes over plain
    ws:// only to loopback)."""
    secure = sim.url.startswith("https:")
    host = ORIGIN_NAME if secure else bracketed(sim.host)
    options: dict[str, object] = {
        "access_token": TOKEN,
        "ssl_ca_cert": pki.ca_file,
        "request_timeout": (3.0, 3.0),
        "retries": 0,
    }
    options.update(settings)
    return Configuration(
        host=f"{'https' if secure else 'http'}://{host}:{sim.port}/api/v2",
        proxy=proxy,
        **options,  # type: ignore[arg-type]
    )


@contextlib.contextmanager
def routed(
    route: Route,
    pki: Pki,
    answer: Answer | None = None,
    *,
    host: str = "127.0.0.1",
    names: tuple[str, ...] = (ORIGIN_NAME,),
) -> Iterator[tuple[DeribitSimulator, TunnelProxy]]:
    """The simulator (see :func:`origin`) and a running proxy on ``host`` for ``route``, which
    resolves :data:`ORIGIN_NAME` to the simulator."""
    with origin(pki, route.secure, host, names) as sim:
        proxy = TunnelProxy(
            answer,
            tls=pki.proxy_tls if route.proxy_tls else None,
            host=sim.host,
            names={ORIGIN_NAME: sim.host},
        )
        with proxy.server:
            yield sim, proxy


def call_through(proxy: str, pki: Pki, sim: DeribitSimulator, **settings: object) -> None:
    """Open a session on ``sim`` through ``proxy``, make a call on it, close it."""
    with session(configuration_through(proxy, pki, sim, **settings)) as ws_client:
        assert ws_client.call("public/test")["result"]["version"]


def with_credentials(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{PROXY_USER}:{PROXY_PASSWORD}@{rest}"


def header(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


# -- every route carries the session --------------------------------------------------------------


@pytest.mark.parametrize("family", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("route_id", ROUTE_IDS)
def test_every_route_through_a_proxy_carries_the_session(
    route_id: str,
    family: str,
    pki: Pki,
) -> None:
    route = ROUTES[route_id]
    with routed(route, pki, host=family) as (sim, proxy):
        call_through(proxy.url, pki, sim)
    (head,) = proxy.heads
    host = ORIGIN_NAME if route.secure else bracketed(family)
    assert head.startswith(f"CONNECT {host}:{sim.port} HTTP/1.1\r\n".encode())
    assert header(head, "Host") == f"{host}:{sim.port}"
    assert header(head, "User-Agent") == Configuration().user_agent
    (through,) = proxy.through
    if route.secure:
        assert through.startswith(b"\x16\x03")  # a TLS handshake record: TLS with the origin
    else:
        assert through.startswith(b"GET /ws/api/v2 HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "established",
    [
        b"HTTP/1.0 200 OK\r\nProxy-Agent: test\r\n\r\n",
        b"HTTP/1.1 204 Tunnel open\r\nContent-Length: 12\r\n\r\n",  # no body after a 2xx
        b"HTTP/1.1 200 Connection established\n\n",  # bare line feeds, which HTTP tolerates
    ],
    ids=["http10-200", "http11-204", "bare-lf"],
)
def test_any_2xx_answer_opens_the_tunnel(established: bytes, pki: Pki) -> None:
    with origin(pki, False) as sim:
        proxy = TunnelProxy(established=established)
        with proxy.server:
            call_through(proxy.url, pki, sim)


@pytest.mark.parametrize("proxy_scheme", ["http", "https"])
def test_the_origin_certificate_is_checked_for_the_origin_name(
    proxy_scheme: str,
    pki: Pki,
) -> None:
    # The origin's certificate names the proxy's address, not the origin's name: through the
    # tunnel it must be refused (it would pass a check against the proxy's name).
    route = Route(True, proxy_scheme == "https")
    with routed(route, pki, names=("127.0.0.1",)) as (sim, proxy):
        with pytest.raises(ApiSSLError) as refused:
            call_through(proxy.url, pki, sim)
    assert f"{ORIGIN_NAME}:{sim.port}" in str(refused.value)
    assert "certificate" in str(refused.value)
    assert len(proxy.heads) == 1  # the tunnel was open; TLS with the origin refused it


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_the_https_proxy_certificate_is_checked(secure: bool, pki: Pki) -> None:
    other_ca = trustme.CA()
    untrusted = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other_ca.issue_cert("127.0.0.1").configure_cert(untrusted)
    with origin(pki, secure) as sim:
        proxy = TunnelProxy(tls=untrusted, names={ORIGIN_NAME: sim.host})
        with proxy.server, pytest.raises(ApiSSLError) as refused:
            call_through(proxy.url, pki, sim)
    assert "certificate" in str(refused.value)
    assert proxy.heads == []  # nothing was said to a proxy that could not be verified


# -- credentials and headers go to the proxy, and only to it --------------------------------------


@pytest.mark.parametrize("route_id", ROUTE_IDS)
def test_credentials_in_the_proxy_url_go_to_the_proxy_only(
    route_id: str,
    pki: Pki,
) -> None:
    route = ROUTES[route_id]
    with routed(route, pki) as (sim, proxy):
        call_through(with_credentials(proxy.url), pki, sim)
    (head,) = proxy.heads
    assert header(head, "Proxy-Authorization") == f"Basic {PROXY_TOKEN}"
    if not route.secure:  # what reached the origin, readable on ws://
        (through,) = proxy.through
        assert PROXY_TOKEN.encode() not in through and b"Proxy-" not in through


@pytest.mark.parametrize("route_id", ["ws-via-http", "wss-via-https"])
def test_a_path_in_the_proxy_url_is_ignored(route_id: str, pki: Pki) -> None:
    with routed(ROUTES[route_id], pki) as (sim, proxy):
        call_through(with_credentials(proxy.url) + "/corporate/proxy?region=eu", pki, sim)
    (head,) = proxy.heads
    assert header(head, "Proxy-Authorization") == f"Basic {PROXY_TOKEN}"


@pytest.mark.parametrize("route_id", ["ws-via-http", "ws-via-https", "wss-via-http"])
def test_proxy_headers_go_to_the_proxy_only(
    route_id: str,
    pki: Pki,
) -> None:
    # A Proxy-Authorization among proxy_headers wins over credentials in the URL.
    route = ROUTES[route_id]
    other = base64.b64encode(b"other-user:other-password").decode()
    headers = {PROXY_HEADER[0]: PROXY_HEADER[1], "Proxy-Authorization": f"Basic {other}"}
    with routed(route, pki) as (sim, proxy):
        call_through(with_credentials(proxy.url), pki, sim, proxy_headers=headers)
    (head,) = proxy.heads
    assert header(head, PROXY_HEADER[0]) == PROXY_HEADER[1]
    assert header(head, "Proxy-Authorization") == f"Basic {other}"
    assert head.count(b"Proxy-Authorization") == 1
    if not route.secure:
        (through,) = proxy.through
        assert PROXY_HEADER[1].encode() not in through and other.encode() not in through


def test_proxy_basic_credentials_in_headers_reach_an_https_proxy_for_wss(
    pki: Pki,
) -> None:
    # websockets' client (TLS inside TLS) sends only the credentials of the proxy URL: a Basic
    # Proxy-Authorization among proxy_headers is given to it that way.
    headers = {"Proxy-Authorization": f"Basic {PROXY_TOKEN}"}
    with routed(ROUTES["wss-via-https"], pki) as (sim, proxy):
        call_through(proxy.url, pki, sim, proxy_headers=headers)
    (head,) = proxy.heads
    assert header(head, "Proxy-Authorization") == f"Basic {PROXY_TOKEN}"


@pytest.mark.parametrize(
    "headers",
    [{PROXY_HEADER[0]: PROXY_HEADER[1]}, {"Proxy-Authorization": "Bearer proxy-bearer-token"}],
    ids=["other-header", "not-basic"],
)
def test_proxy_headers_an_https_proxy_for_wss_cannot_carry_are_refused(
    headers: dict[str, str],
    pki: Pki,
) -> None:
    with routed(ROUTES["wss-via-https"], pki) as (sim, proxy):
        with pytest.raises(ApiValueError) as refused:
            call_through(proxy.url, pki, sim, proxy_headers=headers)
    assert "proxy_headers" in str(refused.value) and "http://" in str(refused.value)
    assert "proxy-bearer-token" not in str(refused.value)
    assert proxy.heads == []


# -- a proxy that refuses -------------------------------------------------------------------------

REFUSALS = {
    # The reason phrase echoes the password: redaction must catch it.
    "407": (
        f"407 Proxy Authentication Required for {PROXY_USER}:{PROXY_PASSWORD}",
        (("Proxy-Authenticate", 'Basic realm="trading-desk"'),),
        "asks for credentials",
    ),
    "403": ("403 Forbidden", (), "does not allow"),
    "502": ("502 Bad Gateway", (), "could not reach"),
}


def assert_no_proxy_secret(error: BaseException, *texts: str) -> None:
    """Neither the proxy's password nor its Proxy-Authorization credential shows in ``error``
    (its text, its causes, its printed traceback) or in ``texts``."""
    shown = [*texts, "".join(traceback.format_exception(type(error), error, error.__traceback__))]
    shown += [f"{item!s} {item!r}" for item in chain_of(error)]
    for text in shown:
        assert PROXY_PASSWORD not in text and PROXY_TOKEN not in text, text


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
@pytest.mark.parametrize("route_id", ROUTE_IDS)
def test_a_refusing_proxy_gives_a_clear_error_without_its_password(
    route_id: str,
    refusal: str,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
) -> None:
    status, headers, advice = REFUSALS[refusal]
    recorder = Recorder()
    caplog.set_level(logging.DEBUG)
    with routed(ROUTES[route_id], pki, refuse(status, *headers)) as (sim, proxy):
        configuration = configuration_through(with_credentials(proxy.url), pki, sim)
        with pytest.raises(ApiConnectionError) as refused:
            session(configuration, recorder)
    error = refused.value
    text = str(error)
    where = proxy.url.split("://")[1]
    assert f"the proxy {where} refused the tunnel" in text, text
    assert f"HTTP {refusal}" in text and advice in text, text
    assert error.status == 0 and error.retriable  # no answer from the origin: retried
    if refusal == "407":
        assert '(Basic, realm="trading-desk")' in text, text
    assert_no_proxy_secret(error, caplog.text, *(repr(event) for event in recorder.events))


@pytest.mark.timing
@pytest.mark.parametrize("route_id", ["ws-via-http", "wss-via-https"])
def test_a_proxy_that_refuses_after_a_loss_gets_reconnects_that_back_off(
    route_id: str,
    pki: Pki,
) -> None:
    route = ROUTES[route_id]
    backoff = RetryPolicy(backoff_factor=0.1, backoff_max=0.4, jitter=0.0)
    recorder = Recorder()
    refusal = refuse("407 Proxy Authentication Required", ("Proxy-Authenticate", "Basic"))
    refused_at: list[float] = []

    with routed(route, pki) as (sim, proxy):

        def tunnel_once(peer: Peer, head: bytes) -> None:
            if len(proxy.heads) == 1:
                proxy.tunnel(peer, head)
            else:
                refused_at.append(time.monotonic())
                refusal(peer, head)

        proxy.answer = tunnel_once
        configuration = configuration_through(proxy.url, pki, sim)
        with session(configuration, recorder, reconnect_backoff=backoff) as ws_client:
            assert ws_client.call("public/test")["result"]["version"]
            proxy.cut()  # the tunnel drops; every later CONNECT is refused
            recorder.wait_for(Disconnected)
            attempts = recorder.wait_for(
                Reconnecting, 4, where=lambda event: "HTTP 407" in event.error
            )
            refusals_seen = len(refused_at)
    delays = [event.delay for event in attempts[:4]]
    assert delays == sorted(delays) and delays[0] > 0 and delays[-1] == pytest.approx(0.4)
    assert all(PROXY_PASSWORD not in event.error for event in attempts)
    # Each refused CONNECT waited its turn: the first four refusals took at least the backoff
    # between them (a busy machine only waits longer), and no attempt came unannounced.
    assert refused_at[3] - refused_at[0] >= sum(delays[:3]) - 0.05
    assert refusals_seen <= len(recorder.of(Reconnecting))
    assert not recorder.of(SessionRestored)[1:]


# -- a proxy answer that breaks the rules ---------------------------------------------------------

#: A status line that never ends: 70000 bytes without a line end.
LONG_ANSWER = b"HTTP/1.1 200 Connection established\r\nX-Padding: " + b"a" * 70000
ANSWERS: dict[str, tuple[Answer, type[ApiException], str]] = {
    "too-long": (say(LONG_ANSWER), ApiProtocolError, "65536"),
    "not-http": (say(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), ApiProtocolError, "HTTP"),
    "closes-silently": (say(b"", then_hold=False), ApiConnectionError, "closed the connection"),
    "closes-midway": (
        say(b"HTTP/1.1 200 Connection est", then_hold=False),
        ApiConnectionError,
        "closed the connection",
    ),
    "speaks-first": (
        say(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n"),
        ApiProtocolError,
        "before",
    ),
}


@pytest.mark.parametrize("answer_id", sorted(ANSWERS))
@pytest.mark.parametrize("route_id", ROUTE_IDS)
def test_a_broken_proxy_answer_is_refused_clearly(
    route_id: str,
    answer_id: str,
    pki: Pki,
) -> None:
    answer, kind, says = ANSWERS[answer_id]
    if route_id == "wss-via-https":  # websockets' client reads the answer
        if answer_id == "speaks-first":
            pytest.skip("websockets' client drops what follows the answer")
        if answer_id == "too-long":
            says = "valid HTTP"  # over websockets' own limit on a line, 8192 bytes
    with routed(ROUTES[route_id], pki, answer) as (sim, proxy):
        started = time.monotonic()
        with pytest.raises(kind) as refused:
            call_through(with_credentials(proxy.url), pki, sim)
    assert time.monotonic() - started < SOON
    text = str(refused.value)
    assert f"the proxy {proxy.url.split('://')[1]}" in text and says in text, text
    assert_no_proxy_secret(refused.value)


@pytest.mark.timing
@pytest.mark.parametrize("route_id", ROUTE_IDS)
def test_a_proxy_answer_that_never_ends_is_bounded_by_the_open_timeout(
    route_id: str,
    pki: Pki,
) -> None:
    # A byte every 50 ms would keep a per-read timeout from ever expiring.
    endless = dribble(b"HTTP/1.1 200 Connection established\r\nX-Slow: " + b"a" * 2000, 0.05)
    with routed(ROUTES[route_id], pki, endless) as (sim, proxy):
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as timed_out:
            call_through(proxy.url, pki, sim, request_timeout=(1.0, 1.0))
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 8.0, elapsed  # the 1 s open timeout, not the dribble's 100 s
    assert "timed out after 1 s" in str(timed_out.value)


def test_an_unreachable_proxy_is_named(pki: Pki) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    with origin(pki, False) as sim, pytest.raises(ApiConnectionError) as refused:
        call_through(with_credentials(f"http://127.0.0.1:{port}"), pki, sim)
    text = str(refused.value)
    assert f"the proxy 127.0.0.1:{port} refused the connection" in text, text
    assert_no_proxy_secret(refused.value)


def test_the_session_comes_back_through_the_proxy(pki: Pki) -> None:
    # A tunnel that drops is replaced by a new one, and the session restored over it.
    recorder = Recorder()
    with routed(ROUTES["ws-via-http"], pki) as (sim, proxy):
        with session(configuration_through(proxy.url, pki, sim), recorder) as ws_client:
            assert ws_client.call("public/test")["result"]["version"]
            proxy.cut()
            recorder.wait_for(Disconnected)
            recorder.wait_for(SessionRestored, 2)
            assert ws_client.call("public/test")["result"]["version"]
            wait_until(lambda: len(proxy.heads) >= 2, "a second CONNECT")


def test_a_connection_over_tls_to_the_proxy_is_cut_through_a_plain_handle(pki: Pki) -> None:
    # A cut comes from any thread, without a lock: made on the TLS socket itself it would drop
    # that socket's TLS state under a reader between ssl's check of it and its use (a ValueError
    # or AttributeError in the reader instead of the end of the stream). The transport keeps a
    # plain handle on the TCP connection for it, as for wss://: TLS stays as it was.
    with origin(pki, False) as sim:
        proxy = TunnelProxy(tls=pki.proxy_tls)
        context = tls.ssl_context(Configuration(ssl_ca_cert=pki.ca_file))
        with proxy.server:
            transport = open_socket(
                sim.ws_url,
                open_timeout=3.0,
                close_timeout=1.0,
                max_message_size=1 << 20,
                keepalive=None,
                compression=None,
                ssl_context=None,
                server_hostname=None,
                user_agent="test",
                proxy=proxy.url,
                proxy_ssl_context=context,
            )
            sock = transport._sock
            assert isinstance(sock, ssl.SSLSocket) and sock.version() is not None
            transport.cut()
            assert sock.version() is not None  # its TLS state untouched by the cut
            with pytest.raises(ConnectionClosed):
                deadline = time.monotonic() + SOON
                while time.monotonic() < deadline:
                    transport.read(0.1)
            transport.release()
