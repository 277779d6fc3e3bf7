"""RESTClientObject.request: the generated-style transport entry point, over the simulator."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import TOKEN
from test_hostile_lifecycle import child_env

from openapi_client import ApiClient, ApiValueError, BadRequestException, Configuration
from openapi_client.simulator import DeribitSimulator


def test_get_with_query_params_and_headers(
    api_client: ApiClient, simulator: DeribitSimulator
) -> None:
    response = api_client.rest_client.request(
        "GET",
        f"{simulator.url}/public/set_heartbeat?interval=30",
        query_params={"extra": "a b"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        _request_timeout=2,
    )
    assert response.status == 200
    assert json.loads(response.data)["result"] == "ok"
    assert response.getheader("content-type") == "application/json"
    assert response.getheaders()["Content-Length"] == str(len(response.data))
    (recorded,) = simulator.requests
    assert recorded.target == "/api/v2/public/set_heartbeat?interval=30&extra=a+b"
    assert recorded.header("Authorization") == f"Bearer {TOKEN}"
    assert simulator.heartbeat_interval == 30


def test_error_status_raises_the_typed_exception(
    api_client: ApiClient, simulator: DeribitSimulator
) -> None:
    with pytest.raises(BadRequestException) as refused:
        api_client.rest_client.request("GET", f"{simulator.url}/public/set_heartbeat")
    assert refused.value.error_code == -32602


def test_unread_response_is_returned_as_is(
    api_client: ApiClient, simulator: DeribitSimulator
) -> None:
    response = api_client.rest_client.request(
        "GET", f"{simulator.url}/public/disable_heartbeat", _preload_content=False
    )
    assert json.loads(response.read())["result"] == "ok"
    response.release_conn()


@pytest.mark.parametrize(
    ("method", "body"), [("POST", None), ("GET", {"interval": 30})], ids=["post", "body"]
)
def test_only_bodiless_gets(configuration: Configuration, method: str, body: object) -> None:
    with ApiClient(configuration) as client, pytest.raises(ApiValueError):
        client.rest_client.request(method, f"{configuration.host}/public/test", body=body)


LOADED_AFTER_A_CALL = """
import sys
from openapi_client import ApiClient, Configuration, SessionManagementApi
fast_path = sys.argv[2] == "1"
configuration = Configuration(host=sys.argv[1], access_token="sim-token", fast_path=fast_path)
with ApiClient(configuration) as client:
    assert SessionManagementApi(client).public_set_heartbeat_get(30)["result"] == "ok"
    print("urllib3" in sys.modules, client.rest_client.direct)
    client.rest_client.pool_manager  # there when asked for
    print("urllib3" in sys.modules)
"""


@pytest.mark.parametrize("fast_path", [True, False], ids=["direct", "urllib3"])
def test_urllib3_is_loaded_only_by_a_client_that_takes_its_path(
    simulator: DeribitSimulator, fast_path: bool
) -> None:
    """The direct path needs none of urllib3, which takes a third of a first call's imports."""
    ran = subprocess.run(
        [sys.executable, "-c", LOADED_AFTER_A_CALL, simulator.url, "1" if fast_path else "0"],
        capture_output=True, text=True, timeout=30, check=True, env=child_env(),
    )
    after_the_call, after_asking = ran.stdout.splitlines()
    assert after_the_call == ("False True" if fast_path else "True False")
    assert after_asking == "True"
