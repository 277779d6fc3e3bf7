"""Small parts of the public surface a user touches directly: lazy exports, the header mapping
handed back with responses, ApiClient's cookie and user agent, the secret registry, and the
settings a Configuration refuses by type."""

from __future__ import annotations

import pytest

import openapi_client
import openapi_client.api
from openapi_client import (
    ApiClient,
    ApiTypeError,
    ApiValueError,
    Configuration,
    RetryPolicy,
    SessionManagementApi,
)
from openapi_client.headers import HTTPHeaders
from openapi_client.redaction import _REGISTRY, forget_secrets, redact, register_secret
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(15)


def test_api_package_exports_its_classes_lazily() -> None:
    assert openapi_client.api.SessionManagementApi is openapi_client.SessionManagementApi
    assert openapi_client.api.AuthenticationApi is openapi_client.AuthenticationApi
    with pytest.raises(AttributeError) as missing:
        openapi_client.api.Nope  # noqa: B018
    assert str(missing.value) == "module 'openapi_client.api' has no attribute 'Nope'"
    assert {"ApiClient", "Configuration", "SessionManagementApi"} <= set(dir(openapi_client))


def test_response_headers_can_be_set_copied_and_printed(simulator: DeribitSimulator) -> None:
    with ApiClient(Configuration(host=simulator.url)) as client:
        _, status, headers = SessionManagementApi(
            client
        ).public_disable_heartbeat_get_with_http_info()
    assert status == 200 and isinstance(headers, HTTPHeaders)
    copy = headers.copy()
    copy["CONTENT-TYPE"] = "text/plain"  # replaces, whatever the case it came in
    assert copy["content-type"] == "text/plain" and copy.getlist("Content-Type") == ["text/plain"]
    assert headers["Content-Type"] == "application/json"  # the original is untouched
    assert ("CONTENT-TYPE", "text/plain") in copy.pairs()
    assert repr(headers).startswith("HTTPHeaders({") and "'Content-Type': 'application/json'" in (
        repr(headers)
    )
    repeated = HTTPHeaders([("Set-Cookie", "a=1"), ("set-cookie", "b=2")])
    assert repeated.pairs() == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_cookie_and_user_agent_are_sent_with_every_request(simulator: DeribitSimulator) -> None:
    with ApiClient(Configuration(host=simulator.url), cookie="session=abc") as client:
        assert client.cookie == "session=abc"
        client.user_agent = "my-bot/2.0"
        assert client.user_agent == "my-bot/2.0" == client.configuration.user_agent
        SessionManagementApi(client).public_disable_heartbeat_get()
    (request,) = simulator.requests
    assert request.header("cookie") == "session=abc"
    assert request.header("user-agent") == "my-bot/2.0"


def test_default_header_that_is_not_text_is_refused_before_sending(
    simulator: DeribitSimulator,
) -> None:
    with ApiClient(Configuration(host=simulator.url)) as client:
        client.default_headers["X-Count"] = 5  # type: ignore[assignment]
        with pytest.raises(ApiValueError) as refused:
            SessionManagementApi(client).public_disable_heartbeat_get()
    assert str(refused.value) == (
        "ApiClient.default_headers: the value of X-Count must be a string, got int"
    )
    assert simulator.requests == []


def test_forgotten_secrets_are_no_longer_redacted_by_value() -> None:
    secret = "plain-looking-value-42"
    known = list(_REGISTRY._secrets)
    try:
        register_secret(secret)
        assert redact(f"echo {secret}") == "echo ***"
        forget_secrets()
        assert redact(f"echo {secret}") == f"echo {secret}"
        assert redact(f"client_secret={secret}") == "client_secret=***"  # by shape: still
    finally:
        for value in known:
            register_secret(value)


@pytest.mark.parametrize(
    ("setting", "value", "error", "message"),
    [
        ("client_id", 5, ApiTypeError, "Configuration.client_id must be a string or None, got int"),
        ("client_secret", 5, ApiTypeError, "Configuration.client_secret must be a string or None"),
        ("proxy", 8080, ApiTypeError, "Configuration.proxy must be a URL or None, got int"),
        ("proxy_headers", [("a", "b")], ApiTypeError, "proxy_headers must be a mapping"),
        ("call_timeout", 10**400, ApiValueError, "call_timeout must be finite and greater than 0"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_when_set(
    setting: str, value: object, error: type[Exception], message: str
) -> None:
    configuration = Configuration()
    with pytest.raises(error) as refused:
        setattr(configuration, setting, value)
    assert message in str(refused.value)


def test_repr_shows_the_settings_that_differ_from_the_defaults() -> None:
    configuration = Configuration(verify_ssl=False, attempt_timeout=7, call_timeout=20)
    text = repr(configuration)
    assert "verify_ssl=False" in text
    assert "attempt_timeout=7.0" in text and "call_timeout=20.0" in text
    assert "attempt_timeout" not in repr(Configuration())


def test_retry_policies_compare_by_value() -> None:
    assert RetryPolicy(total=2, backoff_factor=0.5) == RetryPolicy(total=2, backoff_factor=0.5)
    assert RetryPolicy(total=2) != RetryPolicy(total=3)
    assert RetryPolicy() != "RetryPolicy()"
    assert len({RetryPolicy(total=2), RetryPolicy(total=2)}) == 1
