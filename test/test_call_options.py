"""The generated-style call options: *_with_http_info, _return_http_data_only, async_req,
_preload_content, _request_timeout; and the client's context manager and close()."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import urllib3

from openapi_client import (
    ApiClient,
    ApiTimeoutError,
    ApiValueError,
    AsyncResult,
    BadRequestException,
    Configuration,
    SessionManagementApi,
)
from openapi_client.rest import StreamedResponse
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(15)

#: (method, positional args, expected "result")
METHODS = [
    ("public_set_heartbeat_get", (30,), "ok"),
    ("public_disable_heartbeat_get", (), "ok"),
    ("private_enable_cancel_on_disconnect_get", ("account",), "ok"),
    ("private_disable_cancel_on_disconnect_get", ("account",), "ok"),
    ("private_get_cancel_on_disconnect_get", ("account",), {"scope": "account", "enabled": False}),
]


def check_http_info(info: Any, expected_result: Any) -> None:
    assert isinstance(info, tuple)
    assert len(info) == 3
    data, status, headers = info
    assert type(data) is dict
    assert data["result"] == expected_result
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["content-type"] == "application/json"
    assert int(headers["Content-Length"]) > 0


def async_threads() -> list:
    """The ``async_req`` threads (not the one watchdog that urllib3's path shares)."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("openapi_client") and t.name != "openapi_client-watchdog"
    ]


# -- (data, status, headers) ---------------------------------------------------------------------


@pytest.mark.parametrize(("method", "args", "result"), METHODS)
def test_with_http_info(api: SessionManagementApi, method: str, args: tuple, result: Any) -> None:
    check_http_info(getattr(api, f"{method}_with_http_info")(*args), result)


@pytest.mark.parametrize(("method", "args", "result"), METHODS)
def test_return_http_data_only_false(
    api: SessionManagementApi, method: str, args: tuple, result: Any
) -> None:
    check_http_info(getattr(api, method)(*args, _return_http_data_only=False), result)


def test_with_http_info_data_only(api: SessionManagementApi) -> None:
    data = api.public_set_heartbeat_get_with_http_info(30, _return_http_data_only=True)
    assert type(data) is dict
    assert data["result"] == "ok"


# -- async_req -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "args", "result"), METHODS)
def test_async_req(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    method: str,
    args: tuple,
    result: Any,
) -> None:
    pending = getattr(api, method)(*args, async_req=True)
    assert isinstance(pending, AsyncResult)
    data = pending.get(5)
    assert type(data) is dict
    assert data["result"] == result
    assert pending.ready()
    assert pending.successful()
    assert len(simulator.requests) == 1


def test_async_req_with_http_info(api: SessionManagementApi, simulator: DeribitSimulator) -> None:
    pending = api.public_set_heartbeat_get_with_http_info(33, async_req=True)
    check_http_info(pending.get(5), "ok")
    assert simulator.heartbeat_interval == 33


def test_async_req_reraises_the_error(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.retries = 0
    simulator.inject("rpc_error", code=11050, message="bad_request")
    pending = api.public_disable_heartbeat_get(async_req=True)
    with pytest.raises(BadRequestException) as caught:
        pending.get(5)
    assert caught.value.error_code == 11050
    assert pending.ready()
    assert not pending.successful()


@pytest.mark.timing
def test_async_req_runs_in_the_background(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("delay", seconds=1.0)
    started = time.monotonic()
    pending = api.public_set_heartbeat_get(44, async_req=True)
    assert not pending.ready()  # a call made in the foreground would have its answer by now
    assert pending.get(5)["result"] == "ok"
    assert time.monotonic() - started >= 1.0
    assert simulator.heartbeat_interval == 44


@pytest.mark.timing
def test_async_wait_returns_after_its_timeout(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("delay", seconds=1.0)
    pending = api.public_disable_heartbeat_get(async_req=True)
    started = time.monotonic()
    pending.wait(0.1)
    # Back after its 0.1 s, not with the answer (at least 1 s away): a busy machine has 0.9 s.
    assert 0.1 <= time.monotonic() - started < 0.9
    assert not pending.ready()
    pending.wait(5)
    assert pending.ready()


# -- _preload_content=False ----------------------------------------------------------------------


@pytest.mark.parametrize("read", ["data", "read"])
def test_preload_content_false_returns_the_unread_response(
    api: SessionManagementApi, simulator: DeribitSimulator, read: str
) -> None:
    response = api.public_set_heartbeat_get(30, _preload_content=False)
    # The library's own reader: reading it can raise only the library's exceptions.
    assert isinstance(response, StreamedResponse)
    assert not isinstance(response, urllib3.response.HTTPResponse)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.data if read == "data" else response.read()
    assert isinstance(body, bytes)
    envelope = json.loads(body)
    assert envelope["result"] == "ok"
    assert envelope["jsonrpc"] == "2.0"
    response.release_conn()
    assert response.closed
    assert simulator.heartbeat_interval == 30
    assert api.public_disable_heartbeat_get()["result"] == "ok"
    assert simulator.connections_accepted == 1, "the connection went back to the pool"


def test_preload_content_false_still_raises_errors(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.retries = 0
    simulator.inject("rpc_error", code=11050, message="bad_request")
    with pytest.raises(BadRequestException):
        api.public_disable_heartbeat_get(_preload_content=False)


# -- _request_timeout ---------------------------------------------------------------------------


@pytest.mark.timing
@pytest.mark.parametrize("timeout", [0.2, (2.0, 0.2)], ids=["number", "pair"])
def test_request_timeout_cuts_off_a_slow_answer(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    configuration: Configuration,
    timeout: Any,
) -> None:
    configuration.retries = 0
    simulator.inject("delay", seconds=10.0)  # the simulator ends it when the client gives up
    started = time.monotonic()
    with pytest.raises(ApiTimeoutError) as caught:
        api.public_set_heartbeat_get(30, _request_timeout=timeout)
    assert 0.2 <= time.monotonic() - started < 5.0  # the timeout, not the answer, ended it
    assert caught.value.status == 0
    assert "0.2 s" in str(caught.value)
    assert "read timeout" in str(caught.value)


@pytest.mark.timing
@pytest.mark.parametrize("timeout", [2, (0.2, 2.0)], ids=["number", "pair"])
def test_request_timeout_allows_a_slow_answer(
    api: SessionManagementApi, simulator: DeribitSimulator, timeout: Any
) -> None:
    simulator.inject("delay", seconds=0.25)
    started = time.monotonic()
    assert api.public_set_heartbeat_get(30, _request_timeout=timeout)["result"] == "ok"
    assert time.monotonic() - started >= 0.2
    assert simulator.heartbeat_interval == 30


@pytest.mark.timing
def test_request_timeout_with_async_req(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.retries = 0
    simulator.inject("delay", seconds=10.0)
    pending = api.public_disable_heartbeat_get(async_req=True, _request_timeout=0.2)
    with pytest.raises(ApiTimeoutError):
        pending.get(5)


# -- lifecycle ------------------------------------------------------------------------------------


def test_context_manager_closes(configuration: Configuration, simulator: DeribitSimulator) -> None:
    with ApiClient(configuration) as client:
        api = SessionManagementApi(client)
        assert api.public_set_heartbeat_get(30, async_req=True).get(5)["result"] == "ok"
        threads = async_threads()
        assert threads
    assert client.closed
    assert not any(thread.is_alive() for thread in threads)
    with pytest.raises(ApiValueError, match="closed"):
        api.public_set_heartbeat_get(30)
    assert simulator.connections_accepted == 1, "a closed client does not quietly reopen"


def test_close_twice_is_fine(configuration: Configuration) -> None:
    client = ApiClient(configuration)
    assert SessionManagementApi(client).public_disable_heartbeat_get()["result"] == "ok"
    client.close()
    client.close()
    with client:
        pass
    client.close()
    assert client.closed


def test_close_without_any_call_starts_no_thread(configuration: Configuration) -> None:
    before = set(async_threads())
    with ApiClient(configuration) as client:
        assert repr(client) == f"ApiClient(host={configuration.host!r})"
    client.close()
    assert set(async_threads()) <= before
