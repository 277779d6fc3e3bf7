"""Parameters at the edges: values sent unchecked, values no query can hold, wrong text types.

With ``client_side_validation`` off a value goes to Deribit as given, for the server to judge,
over HTTP (the query string) and over a WebSocket (JSON params); a value that cannot be written
at all is still refused before anything is sent.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from openapi_client import (
    ApiClient,
    ApiTypeError,
    ApiValueError,
    AuthenticationApi,
    BadRequestException,
    Configuration,
    SessionManagementApi,
)
from openapi_client.api.endpoints import PUBLIC_AUTH, SET_HEARTBEAT
from openapi_client.endpoint import NumberParam
from openapi_client.simulator import DeribitSimulator
from openapi_client.websocket import WebSocketApiClient

pytestmark = pytest.mark.timeout(15)


@pytest.fixture
def unchecked(simulator: DeribitSimulator) -> Configuration:
    return Configuration(
        host=simulator.url, access_token="sim-token", retries=0, client_side_validation=False
    )


def test_unchecked_values_reach_the_query_as_given(
    simulator: DeribitSimulator, unchecked: Configuration
) -> None:
    with ApiClient(unchecked) as client:
        api = SessionManagementApi(client)
        with pytest.raises(BadRequestException) as refused:
            api.public_set_heartbeat_get(True)
        assert refused.value.error_code == -32602
        assert refused.value.error_data == {
            "param": "interval",
            "reason": "must be a number not less than 10",
        }
        api.public_set_heartbeat_get("25 ")  # text: sent as text, and Deribit reads a number
        assert simulator.heartbeat_interval == 25.0
    assert [request.target for request in simulator.requests] == [
        "/api/v2/public/set_heartbeat?interval=True",
        "/api/v2/public/set_heartbeat?interval=25%20",
    ]


def test_unchecked_number_no_float_can_hold_is_refused_before_sending(
    simulator: DeribitSimulator, unchecked: Configuration
) -> None:
    with ApiClient(unchecked) as client:
        with pytest.raises(ApiValueError) as refused:
            SessionManagementApi(client).public_set_heartbeat_get(Fraction(10**400, 3))
    assert str(refused.value) == (
        "interval must be a finite number >= 10 seconds, got a Fraction that cannot be "
        "written as one"
    )
    assert isinstance(refused.value.__cause__, OverflowError)
    assert simulator.requests == []


def test_unchecked_values_reach_websocket_params_as_given(
    simulator: DeribitSimulator, unchecked: Configuration
) -> None:
    with WebSocketApiClient(unchecked, url=simulator.ws_url, heartbeat=None) as ws_client:
        api = SessionManagementApi(ws_client)
        simulator.clear_requests()
        with pytest.raises(BadRequestException) as refused:
            api.public_set_heartbeat_get(True)
        assert refused.value.error_code == -32602
        api.public_set_heartbeat_get("40")
        api.public_set_heartbeat_get(Fraction(45, 2) * 2)  # a Fraction: sent as the int 45
    sent = [request.query for request in simulator.requests if request.path.endswith("heartbeat")]
    assert sent == [{"interval": "true"}, {"interval": "40"}, {"interval": "45"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"client_id": 5}, "client_id must be str, got int"),
        ({"timestamp": 1.5}, "timestamp must be str or int, got float"),
        ({"nonce": True}, "nonce must be str, got bool"),
    ],
)
def test_text_parameters_of_the_wrong_type_are_refused(
    simulator: DeribitSimulator, args: dict[str, object], message: str
) -> None:
    with ApiClient(Configuration(host=simulator.url)) as client:
        with pytest.raises(ApiTypeError) as refused:
            AuthenticationApi(client).public_auth_get("client_signature", **args)  # type: ignore[arg-type]
    assert str(refused.value) == message
    assert simulator.requests == []


def test_unknown_argument_to_a_declared_endpoint(simulator: DeribitSimulator) -> None:
    with ApiClient(Configuration(host=simulator.url)) as client:
        with pytest.raises(ApiTypeError) as refused:
            client.call(SET_HEARTBEAT, {"intervall": 30}, {})
    assert str(refused.value) == (
        "Got an unexpected keyword argument 'intervall' to method public_set_heartbeat_get"
    )
    assert simulator.requests == []


def test_endpoints_and_parameters_describe_themselves() -> None:
    assert repr(SET_HEARTBEAT) == (
        "Endpoint('public_set_heartbeat_get', '/public/set_heartbeat', private=False)"
    )
    assert [repr(param) for param in PUBLIC_AUTH.params[:2]] == [
        "ChoiceParam('grant_type', required=True)",
        "TextParam('client_id', required=False)",
    ]


def test_number_without_a_minimum_says_only_what_it_must_be() -> None:
    price = NumberParam("price", unit="USD")
    with pytest.raises(ApiTypeError) as refused:
        price.check("cheap")
    assert str(refused.value) == "price must be a finite number USD (int or float), got str 'cheap'"
    assert price.encode(2.50, True) == "2.5"
