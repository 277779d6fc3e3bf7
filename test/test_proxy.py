"""Configuration.proxy: requests go to the proxy, in absolute form, with proxy_headers.

The simulator accepts absolute-form targets as an HTTP proxy receives them, so it stands in for
the proxy here. The exchange is a port nothing listens on, at 0.0.0.0 (not loopback to the
plain-http guard, no name to resolve); the client never connects to it, only to the proxy.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import trustme

from openapi_client import (
    ApiClient,
    ApiSSLError,
    ApiValueError,
    Configuration,
    SessionManagementApi,
)
from openapi_client.simulator import DeribitSimulator


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


EXCHANGE_AUTHORITY = f"0.0.0.0:{refused_port()}"
EXCHANGE = f"http://{EXCHANGE_AUTHORITY}/api/v2"


def proxy_of(simulator: DeribitSimulator) -> str:
    return f"http://{simulator.host}:{simulator.port}"


def test_requests_go_through_the_proxy_with_its_headers(simulator: DeribitSimulator) -> None:
    configuration = Configuration(
        host=EXCHANGE,
        proxy=proxy_of(simulator),
        proxy_headers={"Proxy-Authorization": "Basic cHJveHk6cGFzcw=="},
        retries=0,
        request_timeout=(2.0, 2.0),
    )
    with ApiClient(configuration) as client:
        api = SessionManagementApi(client)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        data, status, headers = api.public_disable_heartbeat_get_with_http_info()
    assert (data["result"], status, headers["Content-Type"]) == ("ok", 200, "application/json")
    first, second = simulator.requests
    assert first.target == "/api/v2/public/set_heartbeat?interval=30"
    assert first.header("Host") == EXCHANGE_AUTHORITY
    assert first.header("Proxy-Authorization") == "Basic cHJveHk6cGFzcw=="
    assert second.path == "/api/v2/public/disable_heartbeat"
    assert simulator.heartbeat_interval is None


def test_proxy_repr_hides_the_proxy_url(simulator: DeribitSimulator) -> None:
    configuration = Configuration(host=EXCHANGE, proxy="http://user:pass@127.0.0.1:1")
    assert "pass" not in repr(configuration)
    assert "proxy=set" in repr(configuration)


def test_credentials_through_a_plain_http_proxy_to_a_remote_host_are_refused(
    simulator: DeribitSimulator,
) -> None:
    configuration = Configuration(
        host=EXCHANGE, proxy=proxy_of(simulator), access_token="sim-token", retries=0
    )
    with ApiClient(configuration) as client:
        api = SessionManagementApi(client)
        with pytest.raises(ApiValueError, match="allow_insecure_http"):
            api.private_get_cancel_on_disconnect_get()
    assert simulator.requests == []


def test_an_https_proxy_is_verified_with_the_configured_ca(tmp_path: Path) -> None:
    """The connection to an https proxy is TLS, verified like any other: against
    ``ssl_ca_cert`` when set (here the only CA that trusts the proxy), else refused."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    with DeribitSimulator(ssl_context=server_context, legacy_http=True) as proxy:
        settings = {"host": EXCHANGE, "proxy": f"https://127.0.0.1:{proxy.port}", "retries": 0}
        trusted = Configuration(ssl_ca_cert=str(ca_file), **settings)
        with ApiClient(trusted) as client:
            assert SessionManagementApi(client).public_set_heartbeat_get(30)["result"] == "ok"
        assert proxy.requests[0].header("Host") == EXCHANGE_AUTHORITY
        with ApiClient(Configuration(**settings)) as client:
            with pytest.raises(ApiSSLError, match="certificate verification failed"):
                SessionManagementApi(client).public_set_heartbeat_get(30)
    assert len(proxy.requests) == 1
