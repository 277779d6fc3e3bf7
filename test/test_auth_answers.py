"""What the client does with a ``public/auth`` answer that is not what Deribit promises: a small
scripted HTTP server on loopback answers the grant, the client must say what was missing."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from openapi_client import ApiClient, ApiException, Configuration, SessionManagementApi
from openapi_client.credentials import MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME

pytestmark = pytest.mark.timeout(15)

ACCESS = "tok-7c1e9a4b2d5f8e03"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    auth_result: Any = None
    paths: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.paths.append(self.path.split("?")[0])
        if self.path.startswith("/api/v2/public/auth"):
            result = self.server.auth_result
        else:
            result = {"scope": "account", "enabled": False}
        body = json.dumps({"jsonrpc": "2.0", "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.paths = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def api_for(server: _Server, **settings: Any) -> SessionManagementApi:
    host, port = server.server_address[:2]
    configuration = Configuration(
        host=f"http://{host}:{port}/api/v2",
        client_id="bot",
        client_secret="bot-secret-1234",
        retries=0,
        **settings,
    )
    return SessionManagementApi(ApiClient(configuration))


@pytest.mark.parametrize(
    ("result", "says"),
    [
        ("ok", "public/auth answered without a result"),
        ({"expires_in": 900}, "public/auth answered without an access_token"),
        ({"access_token": ACCESS, "expires_in": "900"}, "without a numeric expires_in"),
        ({"access_token": ACCESS, "expires_in": True}, "without a numeric expires_in"),
        ({"access_token": ACCESS, "expires_in": float("nan")}, "without a numeric expires_in"),
        ({"access_token": ACCESS}, "without a numeric expires_in"),
    ],
)
def test_grant_answer_missing_a_field_is_refused_naming_it(
    server: _Server, result: Any, says: str
) -> None:
    server.auth_result = result
    api = api_for(server)
    with pytest.raises(ApiException) as refused:
        api.private_get_cancel_on_disconnect_get(scope="account")
    assert refused.value.status == 200
    assert says in str(refused.value)
    assert server.paths == ["/api/v2/public/auth"]  # the private call was never sent
    api.api_client.close()


def test_session_scope_granted_narrower_is_warned_about(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.auth_result = {"access_token": ACCESS, "expires_in": 900, "scope": "connection"}
    api = api_for(server, session_name="bot")
    with caplog.at_level(logging.WARNING, logger="openapi_client"):
        answer = api.private_get_cancel_on_disconnect_get(scope="account")
    api.api_client.close()
    assert answer["result"] == {"scope": "account", "enabled": False}
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage().startswith(
        "asked Deribit for tokens with scope 'session:bot' but got 'connection'"
    )
    assert ACCESS not in caplog.text


def test_permission_granted_below_what_was_asked_is_warned_about(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.auth_result = {
        "access_token": ACCESS,
        "expires_in": 900,
        "scope": "account:read session:bot trade:read_write",
    }
    api = api_for(server, session_name="bot", scope="account:read_write trade:read_write")
    with caplog.at_level(logging.WARNING, logger="openapi_client"):
        api.private_get_cancel_on_disconnect_get(scope="account")
    api.api_client.close()
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage().startswith(
        "asked Deribit for 'account:read_write' but the token has 'account:read': the API key's "
        "maximum scope allows no more"
    )


@pytest.mark.parametrize(
    ("expires_in", "counted_on"),
    [
        (0, MIN_TOKEN_LIFETIME),
        (-900, MIN_TOKEN_LIFETIME),
        (float("-inf"), MIN_TOKEN_LIFETIME),
        (0.5, MIN_TOKEN_LIFETIME),
        (1e300, MAX_TOKEN_LIFETIME),
        (float("inf"), MAX_TOKEN_LIFETIME),
        (10**400, MAX_TOKEN_LIFETIME),
    ],
    ids=["zero", "negative", "minus-infinity", "half-a-second", "1e300", "infinity", "400-digits"],
)
def test_a_lifetime_out_of_range_is_held_in_range_and_reported(
    server: _Server, caplog: pytest.LogCaptureFixture, expires_in: float, counted_on: float
) -> None:
    """Issue 16, promise 1: ``expires_in`` drives when the token is renewed. Out of range, it
    is held in range and a warning says so: no renewal on every call (a lifetime of 0 renewed
    the token before each one), no ``OverflowError`` (a huge one could not be added to the
    clock)."""
    server.auth_result = {"access_token": ACCESS, "expires_in": expires_in}
    api = api_for(server)
    with caplog.at_level(logging.WARNING, logger="openapi_client"):
        for _ in range(10):
            assert api.private_get_cancel_on_disconnect_get(scope="account")["result"]
    manager = api.api_client.credentials.token_manager()
    api.api_client.close()
    assert server.paths.count("/api/v2/public/auth") == 1
    token = manager.token
    assert token is not None and token.lifetime == counted_on
    (warning,) = [r.getMessage() for r in caplog.records if "expires_in" in r.getMessage()]
    assert "outside the 20 to 6.3072e+07 s the client accepts" in warning
    assert f"counted on to live {counted_on:g} s" in warning
    assert len(warning) < 300  # a 400-digit number is described, not printed
