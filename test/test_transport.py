"""No HTTP response: ApiException with status 0, its cause chained, no urllib3 error escaping."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from conftest import FAST_RETRIES, TOKEN

from openapi_client import (
    ApiClient,
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiTimeoutError,
    ApiTransportError,
    Configuration,
    SessionManagementApi,
)
from openapi_client.simulator import DeribitSimulator

pytestmark = [pytest.mark.timeout(15), pytest.mark.usefixtures("single_attempt")]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def offline_api() -> Iterator[SessionManagementApi]:
    """An API whose host is chosen per test; no credential, one attempt."""
    configuration = Configuration(
        host="http://127.0.0.1:1/api/v2", retries=0, request_timeout=(2.0, 2.0)
    )
    with ApiClient(configuration) as client:
        yield SessionManagementApi(client)


def check_transport_error(error: ApiException, cls: type[ApiTransportError], where: str) -> None:
    assert type(error) is cls
    assert error.status == 0
    assert error.__cause__ is not None
    assert isinstance(
        error.__cause__, (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)
    )
    assert not isinstance(error, (OSError, urllib3.exceptions.HTTPError))
    text = str(error) + repr(error)
    assert where in str(error)
    assert TOKEN not in text
    assert "Bearer" not in text
    assert "\n" not in str(error)


def fail(api: SessionManagementApi, **options: Any) -> ApiException:
    with pytest.raises(ApiException) as caught:
        api.public_set_heartbeat_get(30, **options)
    return caught.value


def test_connection_refused(offline_api: SessionManagementApi) -> None:
    port = free_port()
    offline_api.api_client.configuration.host = f"http://127.0.0.1:{port}/api/v2"
    error = fail(offline_api)
    check_transport_error(error, ApiConnectionError, f"127.0.0.1:{port}")
    assert "refused" in str(error)


@pytest.fixture
def no_such_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """A host name every lookup fails for, as a resolver says: the system's is never asked."""

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return "nothing.example"


@pytest.mark.parametrize("fast_path", [True, False], ids=["direct", "urllib3"])
def test_unresolvable_host(
    offline_api: SessionManagementApi, no_such_name: str, fast_path: bool
) -> None:
    configuration = offline_api.api_client.configuration
    configuration.fast_path = fast_path
    with ApiClient(configuration) as client:
        configuration.host = f"http://{no_such_name}/api/v2"
        error = fail(SessionManagementApi(client))
    check_transport_error(error, ApiConnectionError, f"{no_such_name}:80")
    assert str(error).startswith(f"could not connect to {no_such_name}:80 (")
    assert "the host name could not be resolved" in str(error)


@pytest.mark.parametrize(
    ("fault", "params", "cls", "words"),
    [
        ("reset", {}, ApiConnectionError, "reset"),
        # Reset after part of the body: a reset or a short body, as the platform reports it.
        ("reset_mid_body", {}, (ApiConnectionError, ApiProtocolError), ""),
        ("truncated", {}, ApiProtocolError, "cut short"),
    ],
)
def test_fault_is_a_transport_error(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    fault: str,
    params: dict[str, Any],
    cls: Any,
    words: str,
) -> None:
    simulator.inject(fault, **params)
    error = fail(api)
    assert isinstance(error, cls)
    check_transport_error(error, type(error), f"127.0.0.1:{simulator.port}")
    assert words in str(error)
    assert len(simulator.requests) == 1


@pytest.mark.timing
def test_hang_is_cut_off_by_request_timeout(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("hang")  # 30 s
    started = time.monotonic()
    error = fail(api, _request_timeout=0.3)
    elapsed = time.monotonic() - started
    check_transport_error(error, ApiTimeoutError, f"127.0.0.1:{simulator.port}")
    assert "0.3 s" in str(error)
    assert 0.3 <= elapsed < 5.0  # the timeout, not the hang, ended it
    assert len(simulator.requests) == 1


@pytest.mark.timing
def test_hang_is_cut_off_by_configured_timeout(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.request_timeout = (1.0, 0.3)
    simulator.inject("hang")  # 30 s
    started = time.monotonic()
    error = fail(api)
    assert 0.3 <= time.monotonic() - started < 5.0
    check_transport_error(error, ApiTimeoutError, f"127.0.0.1:{simulator.port}")


def test_private_call_transport_error_hides_the_token(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("reset")
    with pytest.raises(ApiConnectionError) as caught:
        api.private_enable_cancel_on_disconnect_get(scope="account")
    check_transport_error(caught.value, ApiConnectionError, f"127.0.0.1:{simulator.port}")


def test_client_recovers_after_a_transport_error(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("reset")
    fail(api)
    assert api.public_set_heartbeat_get(42)["result"] == "ok"
    assert simulator.heartbeat_interval == 42


def test_transport_error_is_retried_by_default(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.retries = FAST_RETRIES
    simulator.inject("reset", count=2)
    assert api.public_set_heartbeat_get(31)["result"] == "ok"
    assert len(simulator.requests) == 3
    assert simulator.heartbeat_interval == 31


def test_ipv6_loopback_address_is_bracketed_in_messages(
    offline_api: SessionManagementApi,
) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
            port = int(sock.getsockname()[1])
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    offline_api.api_client.configuration.host = f"http://[::1]:{port}/api/v2"
    error = fail(offline_api)
    check_transport_error(error, ApiConnectionError, f"[::1]:{port}")
