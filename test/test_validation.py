"""Arguments are checked before any request; the simulator proves that nothing was sent."""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

from openapi_client import (
    ApiTypeError,
    ApiValueError,
    BadRequestException,
    Configuration,
    OpenApiException,
    SessionManagementApi,
)
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(15)


@pytest.fixture
def nothing_sent(simulator: DeribitSimulator) -> Iterator[None]:
    """Fails the test if any request reached the simulator."""
    yield
    assert simulator.requests == []
    assert simulator.heartbeat_interval is None
    assert simulator.cancel_on_disconnect == {"connection": False, "account": False}


# -- interval -------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_sent")
def test_interval_missing(api: SessionManagementApi) -> None:
    with pytest.raises(ApiValueError, match="interval") as caught:
        api.public_set_heartbeat_get()
    assert "required" in str(caught.value)


@pytest.mark.usefixtures("nothing_sent")
def test_interval_none_is_missing(api: SessionManagementApi) -> None:
    with pytest.raises(ApiValueError, match=r"required parameter `interval`"):
        api.public_set_heartbeat_get(None)


@pytest.mark.usefixtures("nothing_sent")
@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ("30", "str"),
        (b"30", "bytes"),
        (True, "bool"),
        (False, "bool"),
        ([], "list"),
        ({"interval": 30}, "dict"),
        (30j, "complex"),
    ],
)
def test_interval_wrong_type(api: SessionManagementApi, value: Any, type_name: str) -> None:
    with pytest.raises(ApiTypeError) as caught:
        api.public_set_heartbeat_get(value)
    message = str(caught.value)
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, OpenApiException)
    assert message.startswith("interval must be a finite number >= 10 seconds")
    assert f"got {type_name} {value!r}" in message


@pytest.mark.usefixtures("nothing_sent")
@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, 9.99, 5, 0, -1, -30.5, Fraction(19, 2)],
    ids=repr,
)
def test_interval_out_of_range(api: SessionManagementApi, value: Any) -> None:
    with pytest.raises(ApiValueError) as caught:
        api.public_set_heartbeat_get(value)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == f"interval must be a finite number >= 10 seconds, got {value!r}"


@pytest.mark.parametrize(
    ("value", "sent", "stored"),
    [
        (10, "10", 10.0),
        (10.0, "10", 10.0),
        (30.5, "30.5", 30.5),
        (Fraction(21, 2), "10.5", 10.5),
        (86400, "86400", 86400.0),
    ],
    ids=repr,
)
def test_interval_accepted(
    api: SessionManagementApi, simulator: DeribitSimulator, value: Any, sent: str, stored: float
) -> None:
    assert api.public_set_heartbeat_get(value)["result"] == "ok"
    assert [r.query for r in simulator.requests] == [{"interval": sent}]
    assert simulator.heartbeat_interval == stored


# -- unknown keywords and scope ---------------------------------------------------------------


@pytest.mark.usefixtures("nothing_sent")
@pytest.mark.parametrize(
    ("method", "kwargs", "unexpected"),
    [
        ("public_set_heartbeat_get", {"interval": 30, "intervall": 30}, "intervall"),
        ("public_disable_heartbeat_get", {"interval": 30}, "interval"),
        ("private_enable_cancel_on_disconnect_get", {"scope": "account", "foo": 1}, "foo"),
        ("private_get_cancel_on_disconnect_get", {"request_timeout": 1}, "request_timeout"),
        ("public_set_heartbeat_get_with_http_info", {"interval": 30, "x": 1}, "x"),
    ],
)
def test_unknown_keyword(
    api: SessionManagementApi, method: str, kwargs: Any, unexpected: str
) -> None:
    with pytest.raises(ApiTypeError) as caught:
        getattr(api, method)(**kwargs)
    message = str(caught.value)
    assert f"unexpected keyword argument {unexpected!r}" in message
    assert method.replace("_with_http_info", "") in message


@pytest.mark.usefixtures("nothing_sent")
@pytest.mark.parametrize(
    ("scope", "error"),
    [
        (1, ApiTypeError),
        (True, ApiTypeError),
        (b"account", ApiTypeError),
        ("global", ApiValueError),
        ("Account", ApiValueError),
        ("", ApiValueError),
    ],
    ids=repr,
)
@pytest.mark.parametrize(
    "method",
    [
        "private_enable_cancel_on_disconnect_get",
        "private_disable_cancel_on_disconnect_get",
        "private_get_cancel_on_disconnect_get",
    ],
)
def test_bad_scope(
    api: SessionManagementApi, method: str, scope: Any, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        getattr(api, method)(scope=scope)
    message = str(caught.value)
    assert message.startswith("scope must be 'connection' or 'account'")
    assert repr(scope) in message


# -- credentials ------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_sent")
@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("private_enable_cancel_on_disconnect_get", {}),
        ("private_disable_cancel_on_disconnect_get", {"scope": "account"}),
        ("private_get_cancel_on_disconnect_get", {}),
        ("private_get_cancel_on_disconnect_get_with_http_info", {"scope": "account"}),
    ],
)
def test_private_method_without_credentials(
    api: SessionManagementApi, configuration: Configuration, method: str, kwargs: Any
) -> None:
    configuration.access_token = None
    with pytest.raises(ApiValueError) as caught:
        getattr(api, method)(**kwargs)
    message = str(caught.value)
    assert method.replace("_with_http_info", "") in message
    for setting in ("Configuration.access_token", "client_id", "client_secret"):
        assert setting in message
    assert "DERIBIT_ACCESS_TOKEN" in message


@pytest.mark.usefixtures("nothing_sent")
def test_private_method_without_credentials_async(
    api: SessionManagementApi, configuration: Configuration
) -> None:
    configuration.access_token = None
    pending = api.private_enable_cancel_on_disconnect_get(async_req=True)
    with pytest.raises(ApiValueError, match=r"Configuration\.access_token"):
        pending.get(5)


@pytest.mark.usefixtures("nothing_sent")
def test_client_id_without_secret_is_not_a_credential(
    api: SessionManagementApi, configuration: Configuration
) -> None:
    configuration.access_token = None
    configuration.client_id = "sim-client"
    with pytest.raises(ApiValueError, match="client_secret"):
        api.private_enable_cancel_on_disconnect_get()


# -- client_side_validation off ---------------------------------------------------------------


def test_without_client_side_validation_the_server_refuses(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.client_side_validation = False
    configuration.retries = 0
    with pytest.raises(BadRequestException) as caught:
        api.public_set_heartbeat_get(5)
    error = caught.value
    assert error.status == 400
    assert error.error_code == -32602
    assert error.error_message == "Invalid params"
    assert isinstance(error.error_data, dict)
    assert error.error_data["param"] == "interval"
    assert "10" in error.error_data["reason"]
    assert [r.target for r in simulator.requests] == ["/api/v2/public/set_heartbeat?interval=5"]
    assert simulator.heartbeat_interval is None


def test_without_client_side_validation_missing_is_still_refused(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.client_side_validation = False
    with pytest.raises(ApiValueError, match="interval"):
        api.public_set_heartbeat_get()
    assert simulator.requests == []


# -- _request_timeout ----------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_sent")
@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (0, ApiValueError),
        (-1, ApiValueError),
        (math.nan, ApiValueError),
        (math.inf, ApiValueError),
        ((1, 0), ApiValueError),
        ((1, 2, 3), ApiValueError),
        ((), ApiValueError),
        ("x", ApiTypeError),
        (True, ApiTypeError),
        ((1, "2"), ApiTypeError),
        ((None, 2), ApiTypeError),
    ],
    ids=repr,
)
@pytest.mark.parametrize("async_req", [False, True])
def test_bad_request_timeout(
    api: SessionManagementApi, timeout: Any, error: type[Exception], async_req: bool
) -> None:
    with pytest.raises(error) as caught:
        api.public_set_heartbeat_get(30, _request_timeout=timeout, async_req=async_req)
    assert str(caught.value).startswith("_request_timeout must be")
    assert f"got {timeout!r}" in str(caught.value)


@pytest.mark.usefixtures("nothing_sent")
@pytest.mark.parametrize(
    ("interval", "timeout"),
    [(10**400, 1.0), (Fraction(10**400, 3), 1.0), (30, 10**400)],
    ids=["huge-int", "huge-fraction", "huge-timeout"],
)
def test_numbers_too_large_for_a_float(
    api: SessionManagementApi, interval: Any, timeout: Any
) -> None:
    with pytest.raises(ApiValueError, match="must be"):
        api.public_set_heartbeat_get(interval, _request_timeout=timeout)


@pytest.mark.usefixtures("nothing_sent")
@pytest.mark.parametrize("timeout", [[1, 2], {"read": 1}], ids=repr)
def test_unhashable_request_timeout(api: SessionManagementApi, timeout: Any) -> None:
    with pytest.raises(ApiTypeError, match="_request_timeout must be"):
        api.public_set_heartbeat_get(30, _request_timeout=timeout)
