"""Promise 7: a server that echoes a credential back never gets it printed.

The client knows its access token, refresh token, client secret and signatures. A hostile server
here echoes them in every place an answer has (reason phrase, error message, error data, a body
that is not JSON, headers) and in every form (as is, URL-encoded, JSON-escaped); every text the
client renders must show them redacted: exception ``str``/``repr`` and fields, log lines at every
level, ``AsyncResult`` reprs and the command line's output.
"""

from __future__ import annotations

import io
import json
import logging
import traceback
import uuid
from typing import Callable
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from test_hostile_server import (
    TOKEN,
    HostileServer,
    api_for,
    path_fixture,  # noqa: F401 - the `path` fixture
    response,
    serve_each,
)

from openapi_client import ApiException, AuthenticationApi
from openapi_client.cli import main as cli_main

pytestmark = pytest.mark.timeout(30)

CLIENT_ID = "hostile-client"
SECRET = "Hs7-secret-Qw3rty"
ISSUED_ACCESS = "issued-access-9f8e7d6c"
ISSUED_REFRESH = "issued-refresh-1a2b3c4d"
ECHO_TOKEN = "Tk/+ token=with&odd\"chars"  # forms differ when encoded


def forms(secret: str) -> list[str]:
    """The forms a server may echo ``secret`` in."""
    return [secret, quote(secret, safe=""), json.dumps(secret)[1:-1]]


def rendered(error: BaseException) -> str:
    """Everything a user or a log may see of ``error``."""
    parts = [str(error), repr(error), repr(error.args)]
    parts += traceback.format_exception(type(error), error, error.__traceback__)
    if isinstance(error, ApiException):
        parts += [
            str(error.reason),
            str(error.body),
            str(error.error_message),
            repr(error.error_data),
            repr(error.data),
            repr(dict(error.headers or {})),
        ]
    return "\n".join(parts)


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"{form!r} leaked"


def echo_everything(head: bytes) -> bytes:
    """An error answer that repeats the request's credentials everywhere it can."""
    lines = head.decode("latin-1").split("\r\n")
    target = lines[0].split(" ")[1]
    authorization = next(
        (line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("authoriz")),
        "",
    )
    credential = authorization.split(" ", 1)[-1]
    query = {key: values[0] for key, values in parse_qs(urlsplit(target).query).items()}
    echoed = [credential, quote(credential, safe=""), *query.values(), target]
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "error": {
                "code": 13009,
                "message": f"unauthorized: {' '.join(echoed)}",
                "data": {"reason": f"token {credential} refused", "echo": query,
                         "nested": [[{"token": credential}]]},
            },
        }
    ).encode()
    headers = (
        ("Content-Type", "application/json"),
        ("X-Echo", credential),
        ("Location", f"https://127.0.0.1/?access_token={quote(credential, safe='')}"),
        ("Retry-After", credential),
    )
    # The reason phrase is latin-1 on the wire: what of the credential fits goes there too.
    reason = credential.encode("latin-1", "replace").decode("latin-1")
    return response(body, f"400 Bad {reason}", headers)


def test_echoed_bearer_token_is_redacted_everywhere(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with HostileServer(serve_each(echo_everything)) as server:
        api = api_for(server.url, path, debug=True, retries=1)
        try:
            with pytest.raises(ApiException) as caught:
                api.private_get_cancel_on_disconnect_get("account")
            pending = api.private_get_cancel_on_disconnect_get("account", async_req=True)
            pending.wait(10)
            shown = repr(pending)
        finally:
            api.api_client.configuration.debug = False
            api.api_client.close()
    assert caught.value.error_code == 13009
    assert "***" in str(caught.value)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged, "the debug lines were captured"
    assert_clean(rendered(caught.value) + shown + logged, TOKEN)


def test_odd_characters_in_a_token_are_redacted_in_every_form(path: str) -> None:
    def answer(head: bytes) -> bytes:
        body = json.dumps({"error": {"code": 11050, "message": " ".join(forms(ECHO_TOKEN))}})
        return response(body.encode(), "400 Bad Request")

    with HostileServer(serve_each(answer)) as server:
        api = api_for(server.url, path)
        api.api_client.configuration.access_token = None
        api.api_client.configuration.token_provider = lambda: "provided-token-0000"
        from openapi_client.redaction import register_secret

        register_secret(ECHO_TOKEN)  # as the client does for every credential it handles
        with pytest.raises(ApiException) as caught:
            api.public_set_heartbeat_get(30)
        api.api_client.close()
    assert_clean(rendered(caught.value), ECHO_TOKEN)


def key_server(echo: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Issues tokens at public/auth, then answers private calls with ``echo``."""

    def answer(head: bytes) -> bytes:
        if b"/public/auth" in head:
            result = {"access_token": ISSUED_ACCESS, "refresh_token": ISSUED_REFRESH,
                      "expires_in": 900, "scope": "session:openapi-client", "token_type": "bearer"}
            return response(json.dumps({"jsonrpc": "2.0", "result": result}).encode())
        return echo(head)

    return answer


@pytest.mark.parametrize("method", ["client_credentials", "client_signature", "signature"])
def test_key_secrets_issued_tokens_and_signatures_are_redacted(
    path: str, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def echo(head: bytes) -> bytes:
        seen.append(head.decode("latin-1"))
        return echo_everything(head)

    with HostileServer(serve_each(key_server(echo))) as server:
        api = api_for(server.url, path, access_token=None, client_id=CLIENT_ID,
                      client_secret=SECRET, auth_method=method, debug=True)
        try:
            with pytest.raises(ApiException) as caught:
                api.private_get_cancel_on_disconnect_get("account")
        finally:
            api.api_client.configuration.debug = False
            api.api_client.close()
    secrets = [SECRET, ISSUED_ACCESS, ISSUED_REFRESH]
    if method == "signature":
        signature = seen[0].split("sig=")[1].split(",")[0]
        secrets.append(signature)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert_clean(rendered(caught.value) + logged, *secrets)


def test_public_auth_answer_echoing_the_secret_is_redacted(path: str) -> None:
    def answer(head: bytes) -> bytes:
        return echo_everything(head)

    # Values no other test has used: passed as arguments only (not in the configuration), they
    # must be redacted because the call carries them, whatever ran before in this process.
    secret, refresh = f"argument-secret-{uuid.uuid4().hex}", f"argument-refresh-{uuid.uuid4().hex}"
    with HostileServer(serve_each(answer)) as server:
        api = api_for(server.url, path, access_token=None)
        auth = AuthenticationApi(api.api_client)
        with pytest.raises(ApiException) as caught:
            auth.public_auth_get("client_credentials", client_id=CLIENT_ID, client_secret=secret)
        with pytest.raises(ApiException) as refreshed:
            auth.public_auth_get("refresh_token", refresh_token=refresh)
        api.api_client.close()
    assert_clean(rendered(caught.value), secret)
    assert_clean(rendered(refreshed.value), refresh)


def test_command_line_output_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer(serve_each(echo_everything)) as server:
        monkeypatch.setenv("DERIBIT_ACCESS_TOKEN", TOKEN)
        for name in ("DERIBIT_CLIENT_ID", "DERIBIT_CLIENT_SECRET", "DERIBIT_TESTNET"):
            monkeypatch.delenv(name, raising=False)
        out, err = io.StringIO(), io.StringIO()
        argv = ["--host", server.url, "--retries", "0", "get-cancel-on-disconnect",
                "--scope", "account"]
        code = cli_main(argv, stdout=out, stderr=err)
    assert code == 1
    assert "13009" in err.getvalue()
    assert_clean(out.getvalue() + err.getvalue(), TOKEN)


def test_redirect_location_with_a_token_is_redacted(path: str) -> None:
    def answer(head: bytes) -> bytes:
        location = f"https://127.0.0.1/next?access_token={TOKEN}&refresh_token={ISSUED_REFRESH}"
        return response(b"moved", "302 Found", (("Location", location),))

    with HostileServer(serve_each(answer)) as server:
        api = api_for(server.url, path)
        with pytest.raises(ApiException) as caught:
            api.private_get_cancel_on_disconnect_get("account")
        api.api_client.close()
    assert "redirects are not followed" in str(caught.value)
    assert_clean(rendered(caught.value), TOKEN, ISSUED_REFRESH)


