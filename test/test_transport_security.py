"""Credentials stay safe on the way: the plain-http guard, redirects, and debug output.

Unreachable hosts are a port nothing listens on, at 0.0.0.0 (not loopback to the guard, and no
name to resolve): a call that got as far as connecting fails with ``ApiConnectionError``
(status 0), which tells it apart from the guard's ``ApiValueError`` raised before any
connection.
"""

from __future__ import annotations

import http.client
import socket
from typing import Any, Callable

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, FAST_RETRIES, TOKEN
from test_logging_secrets import debug_logging  # noqa: F401 - a fixture: root logging at DEBUG

from openapi_client import (
    ApiClient,
    ApiConnectionError,
    ApiException,
    ApiValueError,
    AuthenticationApi,
    Configuration,
    OpenApiException,
    SessionManagementApi,
)
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(20)


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Not loopback to the client's plain-http guard, yet connecting reaches this machine (0.0.0.0
#: is "this host"), where nothing listens on the port: no name to resolve, nothing remote.
UNREACHABLE = f"0.0.0.0:{refused_port()}"
INSECURE_HOST = f"http://{UNREACHABLE}/api/v2"
SECURE_UNREACHABLE_HOST = f"https://{UNREACHABLE}/api/v2"


def settings_for(host: str, **credentials: Any) -> Configuration:
    return Configuration(host=host, retries=0, request_timeout=(2.0, 2.0), **credentials)


def raised_by(call: Callable[[], Any]) -> OpenApiException:
    with pytest.raises(OpenApiException) as caught:
        call()
    return caught.value


CREDENTIALS: dict[str, dict[str, Any]] = {
    "access_token": {"access_token": TOKEN},
    "token_provider": {"token_provider": lambda: TOKEN},
    "client_credentials": {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "auth_method": "client_credentials",
    },
    "client_signature": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    "signature": {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "auth_method": "signature",
    },
}


# -- no credential over plain http to another machine -----------------------------------------


@pytest.mark.parametrize("kind", list(CREDENTIALS))
def test_credential_over_insecure_http_is_refused_before_connecting(kind: str) -> None:
    with ApiClient(settings_for(INSECURE_HOST, **CREDENTIALS[kind])) as client:
        api = SessionManagementApi(client)
        error = raised_by(lambda: api.private_get_cancel_on_disconnect_get(scope="account"))
    # Had it tried to connect, it would have failed with status 0.
    assert type(error) is ApiValueError
    text = str(error)
    assert "plain http" in text
    assert "0.0.0.0" in text
    assert "allow_insecure_http" in text
    assert TOKEN not in text
    assert CLIENT_SECRET not in text


def test_public_call_with_a_token_over_insecure_http_is_refused() -> None:
    with ApiClient(settings_for(INSECURE_HOST, access_token=TOKEN)) as client:
        error = raised_by(lambda: SessionManagementApi(client).public_set_heartbeat_get(30))
    assert type(error) is ApiValueError


def test_allow_insecure_http_lets_the_call_through() -> None:
    configuration = settings_for(INSECURE_HOST, access_token=TOKEN, allow_insecure_http=True)
    with ApiClient(configuration) as client:
        api = SessionManagementApi(client)
        error = raised_by(lambda: api.private_get_cancel_on_disconnect_get(scope="account"))
    assert type(error) is ApiConnectionError
    assert error.status == 0
    assert UNREACHABLE in str(error)


def test_https_is_not_blocked_by_the_guard() -> None:
    with ApiClient(settings_for(SECURE_UNREACHABLE_HOST, access_token=TOKEN)) as client:
        api = SessionManagementApi(client)
        error = raised_by(lambda: api.private_get_cancel_on_disconnect_get(scope="account"))
    assert type(error) is ApiConnectionError
    assert error.status == 0


def test_public_call_without_credentials_over_http_is_not_blocked() -> None:
    with ApiClient(settings_for(INSECURE_HOST)) as client:
        error = raised_by(lambda: SessionManagementApi(client).public_set_heartbeat_get(30))
    assert type(error) is ApiConnectionError
    assert error.status == 0


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("kind", ["access_token", "client_credentials", "signature"])
def test_loopback_http_is_allowed(simulator: DeribitSimulator, name: str, kind: str) -> None:
    host = f"http://{name}:{simulator.port}/api/v2"
    with ApiClient(settings_for(host, **CREDENTIALS[kind])) as client:
        api = SessionManagementApi(client)
        assert api.private_enable_cancel_on_disconnect_get(scope="account")["result"] == "ok"
    assert simulator.cancel_on_disconnect["account"] is True


# -- redirects are not followed ---------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_is_not_followed(
    simulator: DeribitSimulator, api: SessionManagementApi, status: int
) -> None:
    location = f"http://{UNREACHABLE}/api/v2/private/get_cancel_on_disconnect?scope=account"
    simulator.inject("redirect", location=location, status=status)
    error = raised_by(lambda: api.private_get_cancel_on_disconnect_get(scope="account"))
    assert type(error) is ApiException
    assert error.status == status
    text = str(error)
    assert "redirects are not followed" in text
    assert UNREACHABLE in text
    # One request, to the simulator; with retries on, none was repeated or sent elsewhere.
    assert len(simulator.requests) == 1
    assert simulator.requests[0].header("Authorization") == f"Bearer {TOKEN}"


def test_redirect_to_the_same_host_is_not_followed(
    simulator: DeribitSimulator, api: SessionManagementApi
) -> None:
    simulator.inject("redirect", location=f"{simulator.url}/public/set_heartbeat?interval=60")
    error = raised_by(lambda: api.public_set_heartbeat_get(30))
    assert isinstance(error, ApiException)
    assert error.status == 302
    assert len(simulator.requests) == 1
    assert simulator.heartbeat_interval is None


def test_redirect_target_is_redacted(
    simulator: DeribitSimulator, api: SessionManagementApi
) -> None:
    secret = "leaked-token-5ca1ab1e"
    location = f"https://{UNREACHABLE}/login?access_token={secret}&next=1"
    simulator.inject("redirect", location=location)
    error = raised_by(lambda: api.public_set_heartbeat_get(30))
    assert "access_token=***" in str(error)
    assert secret not in str(error) + repr(error)


# -- debug output: no credential on any channel -------------------------------------------------


def credentials_on_the_wire(simulator: DeribitSimulator) -> set[str]:
    """Every credential the simulator received: tokens, refresh tokens, secrets, signatures."""
    found: set[str] = set()
    for request in simulator.requests:
        scheme, _, value = (request.header("Authorization") or "").partition(" ")
        if scheme == "Bearer":
            found.add(value)
        elif scheme == "deri-hmac-sha256":
            found.update(part[4:] for part in value.split(",") if part.startswith("sig="))
        for key in ("client_secret", "refresh_token", "signature"):
            if request.query.get(key):
                found.add(request.query[key])
    return found


@pytest.mark.usefixtures("debug_logging", "short_token_lifetimes")
def test_no_credential_on_any_channel_with_debug_on(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    texts: list[str] = []
    failures: list[OpenApiException] = []
    issued: set[str] = set()

    def expect_failure(call: Callable[[], Any]) -> None:
        failures.append(raised_by(call))

    clock = ManualClock()  # token lifetimes move when told to, not with the machine's load
    with DeribitSimulator(token_ttl=0.5, legacy_http=True, clock=clock) as simulator:
        # A bearer token: success, a retried fault, Deribit errors, a transport failure.
        bearer = Configuration(
            host=simulator.url, access_token=TOKEN, retries=FAST_RETRIES, debug=True
        )
        assert http.client.HTTPConnection.debuglevel == 0
        with ApiClient(bearer) as client:
            api = SessionManagementApi(client)
            api.private_enable_cancel_on_disconnect_get(scope="account")
            simulator.inject("reset")
            simulator.inject("html_503")
            api.public_set_heartbeat_get(30)  # two retries, logged with the errors
            simulator.inject("rpc_error", code=13009, message="unauthorized")
            expect_failure(lambda: api.private_get_cancel_on_disconnect_get(scope="account"))
            simulator.inject("reset", 4)
            expect_failure(lambda: api.private_get_cancel_on_disconnect_get(scope="account"))
            texts += [repr(client), repr(bearer), str(bearer), bearer.to_debug_report()]

        # An API key whose secret travels in public/auth's query; the token expires, so the
        # client refreshes it with the refresh-token grant.
        key = Configuration(
            host=simulator.url,
            retries=FAST_RETRIES,
            debug=True,
            **CREDENTIALS["client_credentials"],
        )
        with ApiClient(key) as client:
            client.credentials.clock = clock
            api = SessionManagementApi(client)
            api.private_enable_cancel_on_disconnect_get(scope="account")
            clock.advance(0.6)
            api.private_get_cancel_on_disconnect_get(scope="account")
            # A refused refresh falls back to the key; then a wrong secret fails.
            clock.advance(0.6)
            simulator.revoke_tokens(refresh_tokens=True)
            api.private_get_cancel_on_disconnect_get(scope="account")
            key.client_secret = "wrong-secret-c0ffee"
            simulator.revoke_tokens(refresh_tokens=True)
            expect_failure(lambda: api.private_get_cancel_on_disconnect_get(scope="account"))
            texts += [repr(client), repr(key), str(key)]

        # Refresh tokens passed by hand, and per-request signatures.
        with ApiClient(Configuration(host=simulator.url, debug=True)) as client:
            auth = AuthenticationApi(client)
            first = auth.public_auth_get(
                "client_credentials", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
            )["result"]
            second = auth.public_auth_get("refresh_token", refresh_token=first["refresh_token"])[
                "result"
            ]
            issued |= {first["access_token"], first["refresh_token"]}
            issued |= {second["access_token"], second["refresh_token"]}
            raw = auth.public_auth_get(
                "client_credentials",
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                _preload_content=False,
            )
            raw.read()
            raw.release_conn()
        # urllib3's own path, which logs each target at DEBUG.
        through_urllib3 = Configuration(host=simulator.url, debug=True, fast_path=False)
        with ApiClient(through_urllib3) as client:
            AuthenticationApi(client).public_auth_get(
                "client_credentials", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
            )
        with ApiClient(Configuration(host=simulator.url, debug=True)) as client:
            auth = AuthenticationApi(client)
            simulator.inject("rpc_error", code=13009, message="unauthorized")
            expect_failure(
                lambda: auth.public_auth_get("refresh_token", refresh_token=second["refresh_token"])
            )
        signing = Configuration(
            host=simulator.url, retries=0, debug=True, **CREDENTIALS["signature"]
        )
        with ApiClient(signing) as client:
            SessionManagementApi(client).private_get_cancel_on_disconnect_get(scope="account")
        texts += [repr(request) for request in simulator.requests]
        secrets = credentials_on_the_wire(simulator) | issued | {TOKEN, CLIENT_SECRET}
        grants = [request.query.get("grant_type") for request in simulator.requests]

    # The flows happened, so the checks below are not vacuous.
    assert grants.count("refresh_token") >= 3
    assert grants.count("client_credentials") >= 4
    assert len(secrets) >= 10
    assert [type(failure).__name__ for failure in failures] == [
        "BadRequestException",
        "ApiConnectionError",
        "BadRequestException",
        "BadRequestException",
    ]
    messages = [record.getMessage() for record in caplog.records]
    assert any("/public/auth?" in message for message in messages)
    assert any(
        record.name == "urllib3.connectionpool" and "/public/auth?" in record.getMessage()
        for record in caplog.records
    )
    assert any("retrying" in message for message in messages)

    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # http.client's own debug output never switched on
    assert http.client.HTTPConnection.debuglevel == 0
    texts += [*messages, caplog.text, out, err]
    texts += [text for failure in failures for text in (str(failure), repr(failure))]
    texts += [repr(failure.__cause__) for failure in failures if failure.__cause__]
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a credential ({secret[:4]}...) leaked: {text[:300]!r}"
