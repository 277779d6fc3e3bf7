"""Failed requests become ApiException subclasses carrying Deribit's JSON-RPC error."""

from __future__ import annotations

from typing import Any

import pytest

import openapi_client
import openapi_client.exceptions
import openapi_client.rest
from openapi_client import (
    ApiException,
    BadRequestException,
    Configuration,
    ForbiddenException,
    NotFoundException,
    OpenApiException,
    ServiceException,
    SessionManagementApi,
    TooManyRequestsException,
    UnauthorizedException,
)
from openapi_client.simulator import DeribitSimulator

pytestmark = [pytest.mark.timeout(15), pytest.mark.usefixtures("single_attempt")]


def raised(api: SessionManagementApi, method: str = "public_disable_heartbeat_get") -> ApiException:
    with pytest.raises(ApiException) as caught:
        getattr(api, method)()
    return caught.value


def test_api_exception_is_importable_from_package_and_rest() -> None:
    assert openapi_client.ApiException is openapi_client.rest.ApiException
    assert openapi_client.ApiException is openapi_client.exceptions.ApiException
    assert issubclass(openapi_client.ApiException, openapi_client.OpenApiException)
    assert issubclass(openapi_client.ApiTypeError, TypeError)
    assert issubclass(openapi_client.ApiValueError, ValueError)
    assert issubclass(openapi_client.ApiKeyError, KeyError)
    for name in ("ApiTypeError", "ApiValueError", "ApiKeyError", "ApiException"):
        assert issubclass(getattr(openapi_client, name), OpenApiException)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestException),
        (401, UnauthorizedException),
        (403, ForbiddenException),
        (404, NotFoundException),
        (429, TooManyRequestsException),
        (500, ServiceException),
        (502, ServiceException),
        (503, ServiceException),
        (504, ServiceException),
        (418, ApiException),
    ],
)
def test_rpc_error_by_status(
    api: SessionManagementApi, simulator: DeribitSimulator, status: int, cls: type[ApiException]
) -> None:
    data = {"reason": "just testing", "param": "scope"}
    simulator.inject("rpc_error", code=13021, message="forbidden", data=data, status=status)
    error = raised(api)
    assert type(error) is cls
    assert error.status == status
    assert error.error_code == 13021
    assert error.error_message == "forbidden"
    assert error.error_data == data
    assert error.headers is not None
    assert error.headers["Content-Type"] == "application/json"
    assert '"code":13021' in (error.body or "")
    assert str(error).startswith("Deribit error 13021: forbidden (")
    assert "just testing" in str(error).splitlines()[0]
    assert f"HTTP status: {status}" in str(error)
    assert len(simulator.requests) == 1


@pytest.mark.parametrize(
    ("data", "headline"),
    [
        (None, "Deribit error 11050: bad_request"),
        ({"reason": "nope"}, "Deribit error 11050: bad_request (reason: nope)"),
    ],
)
def test_str_leads_with_the_rpc_error(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    data: dict[str, Any] | None,
    headline: str,
) -> None:
    simulator.inject("rpc_error", code=11050, message="bad_request", data=data)
    error = raised(api)
    assert error.error_data == data
    assert str(error).splitlines()[0] == headline


def test_repr_is_short_and_informative(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("rpc_error", code=10000, message="authorization_required", status=400)
    error = raised(api)
    assert repr(error) == (
        "BadRequestException(status=400, error_code=10000, error_message='authorization_required')"
    )


def test_bad_token_is_13009(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.access_token = "not-a-valid-token"
    error = raised(api, "private_enable_cancel_on_disconnect_get")
    assert isinstance(error, BadRequestException)
    assert error.status == 400
    assert error.error_code == 13009
    assert error.error_message == "unauthorized"
    assert str(error).startswith("Deribit error 13009: unauthorized")
    assert "not-a-valid-token" not in str(error) + repr(error)
    assert len(simulator.requests) == 1  # a fixed token is not retried
    assert simulator.cancel_on_disconnect["connection"] is False


def test_revoked_token_is_13009(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.access_token = simulator.issue_token()
    assert api.private_get_cancel_on_disconnect_get()["result"]["enabled"] is False
    simulator.revoke_tokens()
    assert raised(api, "private_get_cancel_on_disconnect_get").error_code == 13009


def test_non_json_success_body_raises(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("non_json")
    error = raised(api)
    assert type(error) is ApiException
    assert error.status == 200
    assert error.error_code is None
    assert "not JSON" in error.reason
    assert "text/plain" in error.reason
    assert (error.body or "").startswith("OK - this answer is deliberately not JSON")
    assert "deliberately not JSON" in str(error)


@pytest.mark.parametrize("status", [200, 201])
def test_success_status_with_error_member_raises(
    api: SessionManagementApi, simulator: DeribitSimulator, status: int
) -> None:
    simulator.inject(
        "rpc_error", code=11094, message="internal_server_error", data={"x": 1}, status=status
    )
    error = raised(api)
    assert isinstance(error, ApiException)
    assert error.status == status
    assert error.error_code == 11094
    assert error.error_message == "internal_server_error"
    assert error.error_data == {"x": 1}
    assert str(error).startswith("Deribit error 11094: internal_server_error")


def test_html_503_is_a_service_exception(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("html_503")
    error = raised(api)
    assert type(error) is ServiceException
    assert error.status == 503
    assert error.reason == "Service Unavailable"
    assert error.error_code is None
    assert error.error_data is None
    assert (error.body or "").startswith("<!DOCTYPE html>")
    assert str(error).splitlines()[0] == "HTTP 503 Service Unavailable"
    assert repr(error) == "ServiceException(status=503, reason='Service Unavailable')"


def test_429_carries_retry_after(api: SessionManagementApi, simulator: DeribitSimulator) -> None:
    simulator.inject("429", retry_after=7)
    error = raised(api)
    assert type(error) is TooManyRequestsException
    assert error.error_code == 10028
    assert error.retry_after == 7.0


def test_server_side_validation_error(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject(
        "rpc_error",
        code=-32602,
        message="Invalid params",
        data={"param": "interval", "reason": "must be a number not less than 10"},
    )
    with pytest.raises(BadRequestException) as caught:
        api.public_set_heartbeat_get(30)
    assert caught.value.error_code == -32602
    assert caught.value.error_data == {
        "param": "interval",
        "reason": "must be a number not less than 10",
    }
    assert simulator.heartbeat_interval is None


def test_redirect_is_not_followed(api: SessionManagementApi, simulator: DeribitSimulator) -> None:
    simulator.inject("redirect", location="http://127.0.0.1:9/elsewhere")
    error = raised(api)
    assert error.status == 302
    assert "redirects are not followed" in error.reason
    assert len(simulator.requests) == 1


def test_errors_with_http_info_and_async(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("rpc_error", code=13021, message="forbidden", status=403, count=2)
    with pytest.raises(ForbiddenException):
        api.public_disable_heartbeat_get_with_http_info()
    pending = api.public_disable_heartbeat_get(async_req=True)
    with pytest.raises(ForbiddenException):
        pending.get(5)
    assert api.public_disable_heartbeat_get()["result"] == "ok"
