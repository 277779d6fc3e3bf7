"""The asyncio API classes: the synchronous classes' methods, as coroutines over an asyncio client.

Most tests give them ``Recorder``, a small asyncio client written here (a double of our own
``AsyncCaller`` protocol) that records each call and answers a canned envelope: the classes'
part is the arguments they pass, the keywords they accept and refuse, and the client they
require. One test puts the real HTTP client under them (its calls moved to a worker thread)
against the simulator, over loopback.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from typing import Any

import pytest

import openapi_client
from openapi_client import ApiClient, ApiTypeError, ApiValueError, Configuration, aio
from openapi_client.api.endpoints import (
    APIS,
    ENABLE_CANCEL_ON_DISCONNECT,
    ENDPOINTS,
    PUBLIC_AUTH,
    SET_HEARTBEAT,
)
from openapi_client.endpoint import Endpoint
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(15)

OK = {"jsonrpc": "2.0", "result": "ok", "testnet": True, "usIn": 1, "usOut": 2, "usDiff": 1}


class Recorder:
    """An asyncio client that records what it is asked and answers ``answer``."""

    def __init__(self, answer: Any = OK) -> None:
        self.answer = answer
        self.calls: list[tuple[Endpoint, dict[str, Any], dict[str, Any], bool]] = []

    async def call(self, *call: Any) -> Any:
        await asyncio.sleep(0)  # a real client yields to the loop while it waits
        endpoint, args, options, http_info = call
        self.calls.append((endpoint, dict(args), dict(options), http_info))
        return self.answer


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_methods_await_the_client_with_the_endpoint_and_arguments() -> None:
    recorder = Recorder()
    api = aio.SessionManagementApi(recorder)
    assert run(api.public_set_heartbeat_get(30)) is OK
    assert run(api.private_enable_cancel_on_disconnect_get_with_http_info(scope="account")) is OK
    assert run(api.public_disable_heartbeat_get(_request_timeout=(1, 2))) is OK
    assert recorder.calls == [
        (SET_HEARTBEAT, {"interval": 30}, {}, False),
        (ENABLE_CANCEL_ON_DISCONNECT, {"scope": "account"}, {}, True),
        (ENDPOINTS[1], {}, {"_request_timeout": (1, 2)}, False),
    ]


def test_authentication_passes_every_parameter_by_name() -> None:
    recorder = Recorder()
    run(
        aio.AuthenticationApi(recorder).public_auth_get(
            "client_credentials", "id", client_secret="secret", _preload_content=False
        )
    )
    [(endpoint, args, options, http_info)] = recorder.calls
    assert endpoint is PUBLIC_AUTH and http_info is False
    assert args == {
        "grant_type": "client_credentials",
        "client_id": "id",
        "client_secret": "secret",
        "refresh_token": None,
        "timestamp": None,
        "signature": None,
        "nonce": None,
        "data": None,
        "state": None,
        "scope": None,
    }
    assert options == {"_preload_content": False}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.operation)
def test_every_declared_endpoint_has_both_coroutines(endpoint: Endpoint) -> None:
    [api] = [api for api in APIS if endpoint in api.endpoints]
    recorder = Recorder()
    instance = getattr(aio, api.name)(recorder)
    required = {param.name: "x" for param in endpoint.params if param.required}
    twins = ((False, endpoint.operation), (True, f"{endpoint.operation}_with_http_info"))
    for http_info, name in twins:
        method = getattr(instance, name)
        assert inspect.iscoroutinefunction(method)
        run(method(**required, _return_http_data_only=False))
        called, args, options, flag = recorder.calls.pop()
        assert (called, flag, options) == (endpoint, http_info, {"_return_http_data_only": False})
        assert args == {param.name: required.get(param.name) for param in endpoint.params}


def test_async_req_is_refused_with_what_to_do_instead() -> None:
    recorder = Recorder()
    api = aio.SessionManagementApi(recorder)
    for value in (True, False):
        with pytest.raises(ApiTypeError) as refused:
            run(api.public_set_heartbeat_get(30, async_req=value))
        message = str(refused.value)
        assert "public_set_heartbeat_get does not take async_req" in message
        assert "asyncio.create_task" in message and "asyncio.gather" in message
    with pytest.raises(ApiTypeError, match="async_req"):
        run(aio.AuthenticationApi(recorder).public_auth_get_with_http_info("x", async_req=True))
    assert recorder.calls == []


def test_an_unknown_keyword_is_refused_before_the_client_is_called() -> None:
    recorder = Recorder()
    with pytest.raises(ApiTypeError, match="unexpected keyword argument '_timeout'"):
        run(aio.SessionManagementApi(recorder).public_disable_heartbeat_get(_timeout=3))
    assert recorder.calls == []


def test_there_is_no_default_client() -> None:
    with pytest.raises(ApiTypeError) as refused:
        aio.SessionManagementApi(None)  # type: ignore[arg-type]
    assert "needs the asyncio client to call through" in str(refused.value)
    assert "no default client" in str(refused.value)


def test_a_synchronous_client_is_refused_by_the_asyncio_classes(
    configuration: Configuration,
) -> None:
    with ApiClient(configuration) as client:
        for api in APIS:
            with pytest.raises(ApiTypeError) as refused:
                getattr(aio, api.name)(client)
            assert f"use openapi_client.{api.name}" in str(refused.value)


def test_an_asyncio_client_is_refused_by_the_synchronous_classes() -> None:
    for api in APIS:
        with pytest.raises(ApiTypeError) as refused:
            getattr(openapi_client, api.name)(Recorder())
        assert f"use openapi_client.aio.{api.name} with it" in str(refused.value)


def test_same_methods_and_parameters_as_the_synchronous_classes() -> None:
    for api in APIS:
        sync_class = getattr(openapi_client, api.name)
        async_class = getattr(aio, api.name)
        public = {name for name in vars(sync_class) if not name.startswith("_")}
        assert public == {name for name in vars(async_class) if not name.startswith("_")}
        for name in public:
            assert inspect.signature(getattr(sync_class, name)) == inspect.signature(
                getattr(async_class, name)
            ), name
        assert repr(async_class(Recorder())).startswith(f"{api.name}(<")


class Threaded:
    """An asyncio client over a synchronous one: each call runs in a worker thread."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def call(self, *call: Any) -> Any:
        return await asyncio.to_thread(self.client.call, *call)


def test_calls_reach_the_simulator_through_a_real_client(
    simulator: DeribitSimulator, configuration: Configuration
) -> None:
    async def session(api: aio.SessionManagementApi) -> None:
        assert (await api.public_set_heartbeat_get(30))["result"] == "ok"
        await api.private_enable_cancel_on_disconnect_get(scope="account")
        data, status, _ = await api.private_get_cancel_on_disconnect_get_with_http_info(
            scope="account"
        )
        assert (status, data["result"]) == (200, {"scope": "account", "enabled": True})
        with pytest.raises(ApiValueError, match="interval must be a finite number >= 10"):
            await api.public_set_heartbeat_get(5)

    with ApiClient(configuration) as client:
        run(session(aio.SessionManagementApi(Threaded(client))))
    assert simulator.heartbeat_interval == 30
    assert [request.target.split("?")[0] for request in simulator.requests] == [
        "/api/v2/public/set_heartbeat",
        "/api/v2/private/enable_cancel_on_disconnect",
        "/api/v2/private/get_cancel_on_disconnect",
    ]


def test_the_asyncio_classes_do_not_load_a_transport() -> None:
    """Importing ``openapi_client.aio`` loads neither the HTTP transport nor the threaded
    WebSocket session: an asyncio program pays only for the client it gives them."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, openapi_client.aio; print(' '.join(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    for module in ("urllib3", "openapi_client.rest", "openapi_client.api_client", "websockets"):
        assert module not in loaded
    assert "openapi_client.websocket" not in loaded
