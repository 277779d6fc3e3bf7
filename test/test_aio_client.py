"""``openapi_client.aio.WebSocketApiClient``: the public asyncio client, as a pytest-asyncio user
tests it. What its driver shares with the threaded session is pinned by the behaviour tests run
on both drivers (``open_session``); here, what only the asyncio client has: ``async with`` and
``open()``, the API classes' keywords awaited, ``async for`` over events, coroutine callbacks,
cancellation from ``wait_for``/``asyncio.timeout``, the loop it belongs to, and the connection
it opens itself (TLS, a proxy's tunnel, a redirect not followed, errors
as the library's).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
from typing import Any

import pytest
import trustme
from test_websocket_proxy import (
    ORIGIN_NAME,
    PROXY_HEADER,
    PROXY_TOKEN,
    REFUSALS,
    ROUTE_IDS,
    ROUTES,
    Pki,
    assert_no_proxy_secret,
    configuration_through,
    header,
    pki,
    refuse,
    routed,
    with_credentials,
)
from test_websocket_support import SOON, key_configuration, run_script, token_configuration
from test_websocket_transport import ca, ca_file, raw_http_server, tls_simulator

from openapi_client import (
    ApiConnectionError,
    ApiException,
    ApiTypeError,
    ApiValueError,
    Configuration,
    aio,
)
from openapi_client.rest import InsecureTLSWarning
from openapi_client.simulator import DeribitSimulator
from openapi_client.websocket import Closed, Connected, SessionRestored, State
from openapi_client.websocket.client import RawAnswer

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio]

__all__ = ["ca", "ca_file", "pki"]  # fixtures, shared with the threaded transport's tests


@pytest.fixture
def sim() -> Any:
    with DeribitSimulator(time_scale=0.1) as simulator:
        yield simulator


async def test_a_session_used_as_async_with(sim: DeribitSimulator) -> None:
    seen: list[Any] = []

    async def on_event(event: Any) -> None:  # a coroutine function: awaited in order
        await asyncio.sleep(0)
        seen.append(type(event).__name__)

    configuration = key_configuration(sim)
    async with aio.WebSocketApiClient(
        configuration, cancel_on_disconnect=True, on_event=on_event
    ) as ws:
        assert ws.state is State.READY and repr(ws).startswith("WebSocketApiClient(url='ws://")
        api = aio.SessionManagementApi(ws)
        answer = await api.private_get_cancel_on_disconnect_get()
        assert answer["result"] == {"scope": "connection", "enabled": True}
        data, status, headers = await api.public_set_heartbeat_get_with_http_info(30)
        assert (data["result"], status, headers) == ("ok", 200, {})
        raw = await api.public_set_heartbeat_get(30, _preload_content=False, _request_timeout=2)
        assert isinstance(raw, RawAnswer) and raw.json()["result"] == "ok"
        with pytest.raises(ApiTypeError, match="async_req"):
            await api.public_set_heartbeat_get(30, async_req=True)
        assert (await ws.call("public/test"))["result"]["version"]
        assert ws.heartbeat == 30 and ws.cancel_on_disconnect and ws.watchdog is None
    assert ws.closed and ws.state is State.CLOSED
    assert seen[:3] == ["Connected", "Authenticated", "SessionRestored"]
    assert seen[-2:] == ["Disconnected", "Closed"]
    with pytest.raises(ApiValueError, match="closed"):
        await ws.call("public/test")
    with pytest.raises(ApiValueError, match="opened already"):
        await ws.open()


async def test_open_and_close_without_async_with(sim: DeribitSimulator) -> None:
    ws = aio.WebSocketApiClient(token_configuration(sim), heartbeat=None)
    with pytest.raises(ApiValueError, match="not open"):
        await ws.call("public/test")
    assert await ws.open() is ws
    got: list[Any] = []

    async def on_notice(channel: str, data: Any) -> None:
        got.append((channel, data))

    assert await ws.subscribe("platform_state", on_notice) == ["platform_state"]
    sim.publish_platform_state({"maintenance": True})
    await ws.close()
    await ws.close()  # twice is fine
    assert got == [("platform_state", {"maintenance": True})]  # queued callbacks run first
    names = [type(event).__name__ async for event in ws.events(timeout=1)]
    assert names == ["Connected", "SessionRestored", "Disconnected", "Closed"]
    assert [event async for event in ws.events(timeout=0.1)] == []


async def test_events_end_after_closed_or_a_quiet_timeout(sim: DeribitSimulator) -> None:
    async with aio.WebSocketApiClient(token_configuration(sim), heartbeat=None) as ws:
        first = [event async for event in ws.events(timeout=0.2)]
        assert [type(event) for event in first] == [Connected, SessionRestored]

        async def until_closed() -> list[Any]:
            return [type(event) async for event in ws.events()]

        waiting = asyncio.ensure_future(until_closed())
        await asyncio.sleep(0.05)
    assert (await asyncio.wait_for(waiting, SOON))[-1] is Closed


async def test_a_call_cancelled_from_outside_leaves_the_session_sound(
    sim: DeribitSimulator,
) -> None:
    sim.inject("ws_delay", path="/public/get_time", seconds=0.5)
    async with aio.WebSocketApiClient(token_configuration(sim), heartbeat=None) as ws:
        api = aio.SessionManagementApi(ws)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.call("public/get_time"), 0.05)
        if sys.version_info >= (3, 11):
            sim.inject("ws_delay", path="/public/get_time", seconds=0.5)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await ws.call("public/get_time")
        answers = await asyncio.gather(*(api.public_set_heartbeat_get(10) for _ in range(20)))
        assert all(answer["result"] == "ok" for answer in answers)
        assert ws._session.core._router.pending == {}  # nothing left of the cancelled calls


async def test_a_session_belongs_to_its_loop(sim: DeribitSimulator) -> None:
    async with aio.WebSocketApiClient(token_configuration(sim), heartbeat=None) as ws:

        def elsewhere() -> Any:
            return asyncio.run(ws.call("public/test"))

        with pytest.raises(ApiValueError, match="event loop that opened it"):
            await asyncio.get_running_loop().run_in_executor(None, elsewhere)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"heartbeat": 5}, "interval"),
        ({"max_reconnects": -1}, "max_reconnects"),
        ({"watchdog": 0.5}, "watchdog"),
        ({"max_message_size": 10}, "max_message_size"),
    ],
)
async def test_settings_are_checked_as_on_the_threaded_client(
    settings: dict[str, Any], says: str
) -> None:
    with pytest.raises(ApiValueError, match=says):
        aio.WebSocketApiClient(Configuration(host="http://127.0.0.1:9/api/v2"), **settings)


async def test_settings_the_asyncio_client_refuses() -> None:
    remote = Configuration(host="http://deribit.invalid/api/v2", access_token="t")
    with pytest.raises(ApiValueError, match="plain ws://"):
        aio.WebSocketApiClient(remote)
    with pytest.raises(ApiValueError, match="cancel_on_disconnect=True needs credentials"):
        aio.WebSocketApiClient(
            Configuration(host="http://127.0.0.1:9/api/v2"), cancel_on_disconnect=True
        )


async def test_unreachable_and_refused_handshakes_are_the_librarys_errors() -> None:
    with raw_http_server(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n") as url:
        with pytest.raises(ApiException, match="503") as refused:
            await aio.WebSocketApiClient(Configuration(host=url, retries=0)).open()
        assert refused.value.status == 503
    with raw_http_server(None) as url:
        with pytest.raises(ApiException, match=r"timed out after 0\.3 s"):
            await aio.WebSocketApiClient(
                Configuration(host=url, retries=0), open_timeout=0.3
            ).open()
    refused_port = Configuration(host="http://127.0.0.1:9/api/v2", retries=0)
    with pytest.raises(ApiConnectionError) as unreachable:
        await aio.WebSocketApiClient(refused_port).open()
    assert unreachable.value.status == 0 and unreachable.value.__cause__ is not None
    with pytest.raises(ApiValueError, match="compression"):
        await aio.WebSocketApiClient(refused_port, compression="brotli").open()


async def test_a_redirect_is_refused_not_followed() -> None:
    """The session's credentials travel inside the connection: a redirect would carry them to
    another origin, so it is a refused handshake, as on the threaded client."""
    moved = (
        b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/ws/api/v2\r\nContent-Length: 0\r\n\r\n"
    )
    with raw_http_server(moved) as url:
        with pytest.raises(ApiException) as refused:
            await aio.WebSocketApiClient(Configuration(host=url, retries=0)).open()
    assert refused.value.status == 302


async def test_wss_with_the_threaded_clients_tls_settings(ca: trustme.CA, ca_file: str) -> None:
    with tls_simulator(ca, "127.0.0.1") as sim:
        trusted = token_configuration(sim, ssl_ca_cert=ca_file)
        async with aio.WebSocketApiClient(trusted, heartbeat=None) as ws:
            assert ws.url.startswith("wss://") and (await ws.call("public/test"))["result"]
        with pytest.raises(ApiConnectionError) as untrusted:
            await aio.WebSocketApiClient(token_configuration(sim, retries=0)).open()
        assert "certificate" in str(untrusted.value).lower()
        with pytest.warns(InsecureTLSWarning):
            unverified = aio.WebSocketApiClient(token_configuration(sim, verify_ssl=False))
        async with unverified as ws:
            assert (await ws.call("public/test"))["result"]


# -- through a proxy: the session opens the tunnel ------------------------------------------------


async def open_through(configuration: Configuration) -> None:
    async with aio.WebSocketApiClient(configuration, heartbeat=None) as ws:
        assert (await ws.call("public/test"))["result"]["version"]


TLS_IN_TLS = pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="asyncio runs TLS inside TLS (wss:// through an https:// proxy) from Python 3.11 on; "
    "before, the client refuses that route (test_tls_inside_tls_needs_python_3_11)",
)


@pytest.mark.parametrize(
    "route_id",
    [
        pytest.param(route_id, marks=TLS_IN_TLS if route_id == "wss-via-https" else ())
        for route_id in ROUTE_IDS
    ],
)
async def test_every_route_through_a_proxy_carries_the_session(route_id: str, pki: Pki) -> None:
    """ws:// and wss://, through http:// and https:// proxies (the proxy verified with the
    threaded session's TLS settings), with the proxy URL's credentials."""
    route = ROUTES[route_id]
    with routed(route, pki) as (sim, proxy):
        await open_through(configuration_through(with_credentials(proxy.url), pki, sim))
    (head,) = proxy.heads
    host = ORIGIN_NAME if route.secure else sim.host
    assert head.startswith(f"CONNECT {host}:{sim.port} HTTP/1.1\r\n".encode())
    assert header(head, "Proxy-Authorization") == f"Basic {PROXY_TOKEN}"
    assert header(head, "User-Agent") == Configuration().user_agent


@pytest.mark.parametrize(
    "route_id",
    [
        pytest.param(route_id, marks=TLS_IN_TLS if route_id == "wss-via-https" else ())
        for route_id in ROUTE_IDS
    ],
)
async def test_proxy_headers_go_to_the_proxy_only(route_id: str, pki: Pki) -> None:
    """The session writes its own CONNECT: every proxy header is sent, on every route (a
    Proxy-Authorization among them wins over the URL's credentials), and none goes further."""
    other = base64.b64encode(b"other-user:other-password").decode()
    headers = {PROXY_HEADER[0]: PROXY_HEADER[1], "Proxy-Authorization": f"Basic {other}"}
    route = ROUTES[route_id]
    with routed(route, pki) as (sim, proxy):
        configuration = configuration_through(
            with_credentials(proxy.url), pki, sim, proxy_headers=headers
        )
        await open_through(configuration)
    (head,) = proxy.heads
    sent = [
        line for line in head.decode("latin-1").split("\r\n") if line.startswith(("X-", "Proxy-"))
    ]
    assert sent == [f"{PROXY_HEADER[0]}: {PROXY_HEADER[1]}", f"Proxy-Authorization: Basic {other}"]
    for through in proxy.through if not route.secure else []:
        assert PROXY_HEADER[1].encode() not in through and other.encode() not in through


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="asyncio runs TLS inside TLS here")
async def test_tls_inside_tls_needs_python_3_11(pki: Pki) -> None:
    with routed(ROUTES["wss-via-https"], pki) as (sim, proxy):
        with pytest.raises(ApiValueError, match=r"Python 3\.11"):
            aio.WebSocketApiClient(configuration_through(proxy.url, pki, sim))
    assert proxy.heads == []


async def test_a_refusing_proxy_gives_a_clear_error_without_its_password(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status, headers, advice = REFUSALS["407"]
    with routed(ROUTES["ws-via-https"], pki, refuse(status, *headers)) as (sim, proxy):
        configuration = configuration_through(with_credentials(proxy.url), pki, sim)
        with pytest.raises(ApiConnectionError) as refused:
            await open_through(configuration)
    text = str(refused.value)
    assert "refused the tunnel" in text and advice in text and refused.value.status == 0
    assert_no_proxy_secret(refused.value, caplog.text)


async def test_an_evicted_session_authenticates_again_on_the_same_connection() -> None:
    """13009 for a token that had worked: ``SessionEvicted``, one re-authentication awaited by
    the call (the core's ticket, as a future), and the call goes through; nothing reconnects."""
    from test_simulator_fidelity import grant

    from openapi_client.testing import ManualClock
    from openapi_client.websocket import Disconnected, SessionEvicted

    clock = ManualClock()
    events: list[Any] = []
    with DeribitSimulator(time_scale=0.1, clock=clock) as sim:
        configuration = key_configuration(sim)
        async with aio.WebSocketApiClient(
            configuration, heartbeat=None, on_event=events.append
        ) as ws:
            api = aio.SessionManagementApi(ws)
            assert (await api.private_get_cancel_on_disconnect_get())["result"]["enabled"] is False
            clock.advance(600)
            for _ in range(16):  # another process uses up the key's sessions
                grant(sim)
            assert (await api.private_get_cancel_on_disconnect_get())["result"]["enabled"] is False
            await asyncio.sleep(0.05)  # the callbacks run
            (evicted,) = [event for event in events if isinstance(event, SessionEvicted)]
            assert evicted.connection == 1 and "16 sessions" in evicted.reason
            assert not any(isinstance(event, Disconnected) for event in events)


async def test_an_asymmetric_key_authenticates_the_session() -> None:
    from test_asymmetric_e2e import ED25519_PUBLIC, grants, key_configuration, signed_grants
    from test_asymmetric_e2e import simulator as key_simulator

    with key_simulator() as sim:
        async with aio.WebSocketApiClient(key_configuration(sim), heartbeat=None) as ws:
            answer = await aio.SessionManagementApi(ws).private_get_cancel_on_disconnect_get()
            assert answer["result"]["enabled"] is False
        assert [grant.transport for grant in grants(sim)] == ["websocket"]
        assert len(signed_grants(sim, ED25519_PUBLIC)) == 1


NO_HTTP_CLIENT = r"""
import asyncio, sys
from openapi_client import Configuration, aio

async def main():
    configuration = Configuration(host=sys.argv[1], access_token="sim-token")
    async with aio.WebSocketApiClient(configuration, heartbeat=None) as ws:
        await aio.SessionManagementApi(ws).private_get_cancel_on_disconnect_get()

asyncio.run(main())
http = ("urllib3", "openapi_client.rest", "openapi_client.http", "openapi_client.api_client")
print(sorted(name for name in sys.modules if name.startswith(http)))
"""


async def test_the_asyncio_session_needs_no_http_client(sim: DeribitSimulator) -> None:
    """A program that opens an asyncio session and calls through it loads neither urllib3 nor
    the HTTP transport."""
    loop = asyncio.get_running_loop()
    loaded = await loop.run_in_executor(
        None, lambda: run_script(NO_HTTP_CLIENT, sim.url, timeout=30)
    )
    assert loaded == []
