"""With debug on, no credential shows up in logs, output, reprs, exception text or URLs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, TOKEN

from openapi_client import (
    ApiClient,
    ApiException,
    Configuration,
    OpenApiException,
    SessionManagementApi,
)
from openapi_client.redaction import redact
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(15)

BAD_TOKEN = "bad-token-f00dfeed"
WRONG_SECRET = "wrong-secret-c0ffee"
LOGGERS = ("openapi_client", "urllib3")


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Root logging captured at DEBUG; the package loggers' levels restored afterwards."""
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    caplog.set_level(logging.DEBUG)
    yield caplog
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def debug_configuration(
    debug_logging: pytest.LogCaptureFixture, configuration: Configuration
) -> Configuration:
    """The shared configuration with debug on and a single attempt per call."""
    configuration.debug = True
    configuration.retries = 0
    return configuration


def key_configuration(simulator: DeribitSimulator) -> Configuration:
    """An API key used by the client_credentials grant (the secret travels in the query)."""
    return Configuration(
        host=simulator.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        auth_method="client_credentials",
        retries=0,
        debug=True,
        request_timeout=(2.0, 2.0),
    )


def secrets_seen_by(simulator: DeribitSimulator) -> set[str]:
    """Every credential that crossed the wire: tokens, refresh tokens, secrets, signatures."""
    found = {TOKEN, CLIENT_SECRET, BAD_TOKEN, WRONG_SECRET}
    for request in simulator.requests:
        authorization = request.header("Authorization")
        if authorization:
            scheme, _, credential = authorization.partition(" ")
            if scheme == "Bearer":
                found.add(credential)
            else:
                parts = credential.split(",")
                found.update(part[len("sig=") :] for part in parts if part.startswith("sig="))
        for key in ("refresh_token", "client_secret", "signature", "access_token"):
            if request.query.get(key):
                found.add(request.query[key])
    return {secret for secret in found if len(secret) >= 8}


def expect_failure(call: Any, *args: Any, **kwargs: Any) -> OpenApiException:
    with pytest.raises(OpenApiException) as caught:
        call(*args, **kwargs)
    return caught.value


def assert_no_secret(texts: list[str], secrets: set[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"credential {secret[:3]}... leaked into: {text[:200]!r}"


def test_no_credential_anywhere_with_debug_on(
    debug_logging: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    simulator: DeribitSimulator,
    debug_configuration: Configuration,
    api: SessionManagementApi,
) -> None:
    configuration = debug_configuration
    failures: list[OpenApiException] = []

    # Bearer: public, private, a Deribit error, a transport error, a refused token.
    api.public_set_heartbeat_get(30)
    api.private_enable_cancel_on_disconnect_get(scope="account")
    simulator.inject("rpc_error", code=11050, message="bad_request", data={"reason": "no"})
    failures.append(expect_failure(api.private_disable_cancel_on_disconnect_get, "account"))
    simulator.inject("reset")
    failures.append(expect_failure(api.private_get_cancel_on_disconnect_get))
    configuration.access_token = BAD_TOKEN
    failures.append(expect_failure(api.private_get_cancel_on_disconnect_get))
    bearer_targets = [r.target for r in simulator.requests if r.header("Authorization")]
    assert len(bearer_targets) == 5

    # client_credentials: a token, a refresh after the token is revoked, then a wrong secret.
    key_config = key_configuration(simulator)
    with ApiClient(key_config) as client:
        key_api = SessionManagementApi(client)
        key_api.private_enable_cancel_on_disconnect_get(scope="account")
        simulator.revoke_tokens()
        assert key_api.private_get_cancel_on_disconnect_get("account")["result"]["enabled"]
        key_config.client_secret = WRONG_SECRET
        simulator.revoke_tokens(refresh_tokens=True)
        failures.append(expect_failure(key_api.private_get_cancel_on_disconnect_get))
    simulator.inject("reset", path="/public/auth")
    with ApiClient(key_configuration(simulator)) as client:
        read_setting = SessionManagementApi(client).private_get_cancel_on_disconnect_get
        failures.append(expect_failure(read_setting))
    grants = [r.query.get("grant_type") for r in simulator.requests if r.path.endswith("/auth")]
    assert grants[:2] == ["client_credentials", "refresh_token"]
    assert "client_credentials" in grants[2:]

    # The flows happened and were logged, so the checks below are not vacuous.
    secrets = secrets_seen_by(simulator)
    assert len(secrets) >= 7  # 4 fixed, 2 issued access tokens, 1 refresh token
    assert [type(error).__name__ for error in failures] == [
        "BadRequestException",
        "ApiConnectionError",
        "BadRequestException",
        "BadRequestException",
        "ApiConnectionError",
    ]
    assert failures[3].error_code == 13004  # type: ignore[attr-defined]
    messages = [record.getMessage() for record in debug_logging.records]
    assert any("/public/auth" in m and "client_secret=***" in m for m in messages)
    assert any(
        r.name.startswith("openapi_client") and "GET" in r.getMessage()
        for r in debug_logging.records
    )

    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert_no_secret(
        messages
        + [debug_logging.text, out, err]
        + [repr(configuration), str(configuration), repr(key_config), str(key_config)]
        + [key_config.to_debug_report()]
        + [text for error in failures for text in (repr(error), str(error))]
        + [repr(error.__cause__) for error in failures if error.__cause__ is not None]
        + [str(getattr(error, "body", "")) for error in failures]
        + bearer_targets,
        secrets,
    )


@pytest.mark.parametrize("fast_path", [True, False], ids=["direct", "urllib3"])
def test_every_logger_is_the_packages_or_urllib3(
    debug_logging: pytest.LogCaptureFixture,
    simulator: DeribitSimulator,
    debug_configuration: Configuration,
    fast_path: bool,
) -> None:
    debug_configuration.fast_path = fast_path
    with ApiClient(debug_configuration) as client:
        api = SessionManagementApi(client)
        api.public_set_heartbeat_get(30)
        simulator.inject("html_503")
        expect_failure(api.public_disable_heartbeat_get)
    names = {record.name for record in debug_logging.records}
    assert any(name.startswith("openapi_client.") for name in names)
    # urllib3 logs only the requests that take its path.
    assert any(name.startswith("urllib3.") for name in names) is not fast_path
    for name in names:
        assert name.split(".")[0] in LOGGERS, name


def test_debug_switches_both_loggers(
    debug_logging: pytest.LogCaptureFixture, configuration: Configuration
) -> None:
    configuration.debug = True
    assert configuration.debug is True
    assert [logging.getLogger(name).level for name in LOGGERS] == [logging.DEBUG] * 2
    configuration.debug = False
    # Off hands the levels back to the application's logging configuration.
    assert [logging.getLogger(name).level for name in LOGGERS] == [logging.NOTSET] * 2


def test_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("openapi_client").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


@pytest.mark.parametrize(
    ("settings", "summary"),
    [
        ({"access_token": TOKEN}, "'access_token'"),
        ({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, "client_signature"),
        ({"token_provider": lambda: TOKEN}, "'token_provider'"),
        ({}, "'none'"),
    ],
)
def test_configuration_repr_names_the_kind_of_credential_only(settings: Any, summary: str) -> None:
    configuration = Configuration(host="https://test.deribit.com/api/v2", **settings)
    for text in (repr(configuration), str(configuration)):
        assert text.startswith("Configuration(host='https://test.deribit.com/api/v2'")
        assert summary in text
        assert TOKEN not in text
        assert CLIENT_SECRET not in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/public/auth?client_id=a&client_secret=s3cr3t&x=1", "client_id=a&client_secret=***&x=1"),
        ("refresh_token=abc.def-ghi", "refresh_token=***"),
        ('{"access_token": "tok", "expires_in": 900}', '"access_token": "***"'),
        ("Authorization: Bearer abc.DEF_123", "Authorization: Bearer ***"),
        ("deri-hmac-sha256 id=a,ts=1,sig=0f0f,nonce=n", "sig=***"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    cleaned: str | None = redact(text)
    assert cleaned is not None
    assert expected in cleaned
    for secret in ("s3cr3t", "abc.def-ghi", "tok", "abc.DEF_123", "0f0f"):
        assert f"={secret}" not in cleaned
        assert f'"{secret}"' not in cleaned
        assert f" {secret}" not in cleaned


def test_exception_text_is_redacted() -> None:
    body = '{"jsonrpc": "2.0", "refresh_token": "r3fr3sh-value", "note": "x"}'
    error = ApiException(502, "Bad Gateway", body=body)
    assert "r3fr3sh-value" not in str(error)
    assert "r3fr3sh-value" not in repr(error)


def test_logger_keyword_replaces_a_switched_logger() -> None:
    mine = logging.getLogger("my_bot.deribit")
    configuration = Configuration(logger={"package_logger": mine})
    assert configuration.logger["package_logger"] is mine
    assert configuration.logger["urllib3_logger"] is logging.getLogger("urllib3")
    configuration.debug = True
    try:
        assert mine.level == logging.DEBUG
    finally:
        configuration.debug = False
    assert mine.level == logging.NOTSET
