"""No text the session renders shows a credential, whatever a server echoes (issue 16,
promise 4): a hand-written WebSocket server on loopback echoes the session's access token,
refresh token and API secret in a close reason, a channel name, error messages and a message
that is not JSON. Events, log lines at every level (with their tracebacks), exceptions with
their chained causes, and the command line's output show ``***`` instead."""

from __future__ import annotations

import io
import logging
import time
import traceback
from typing import Any

import pytest
from test_websocket_hostile_server import (
    Message,
    WsPeer,
    api_url,
    serving,
    session_answers,
)
from test_websocket_support import (
    Recorder,
    SessionOpener,
)

from openapi_client import ApiConnectionError, ApiException, Configuration
from openapi_client.cli import main
from openapi_client.websocket import Disconnected, SessionRestored

pytestmark = pytest.mark.timeout(30)

CLIENT_ID = "hostile-id"
SECRET = "hostile-secret-77c1d"
ACCESS = "hostile-access-5f0c2b7e91"
REFRESH = "hostile-refresh-8d1e44a3c6"
SECRETS = (SECRET, ACCESS, REFRESH)

#: The close reason the server ends a connection with: every credential it knows.
ECHOED = f"bye {ACCESS} {REFRESH} {SECRET}"


def leaks(request: dict[str, Any]) -> list[Message] | None:
    """On ``public/leak``, everything but the close at once; the answer is an error."""
    if request["method"] != "public/leak":
        return None
    error = {"code": 13009, "message": f"unauthorized {ACCESS}", "data": {"secret": SECRET}}
    return [
        {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {"channel": f"user.orders.{ACCESS}", "data": {"token": REFRESH}},
        },
        {"jsonrpc": "2.0", "error": {"code": 11050, "message": f"bad {SECRET}"}},
        {"jsonrpc": "2.0", "method": f"mystery/{REFRESH}", "params": {}},
        f"not json {ACCESS} {SECRET}",
        {"jsonrpc": "2.0", "id": request["id"], "error": error},
    ]


def leaking(ws: WsPeer) -> None:
    """Answers like Deribit (the token is :data:`ACCESS`) and leaks on ``public/leak``; on
    ``public/bye`` it closes the connection with the credentials as the reason, unanswered."""
    if not ws.accept():
        return
    for request in ws.requests():
        if request["method"] == "public/bye":
            ws.close(1000, ECHOED)
            continue
        written = leaks(request)
        if not ws.send(*(session_answers(request) if written is None else written)):
            return


def key_configuration(url: str) -> Configuration:
    return Configuration(host=url, client_id=CLIENT_ID, client_secret=SECRET, retries=0)


def assert_clean(text: str, what: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{what} shows a credential: {text[:2000]}"


def chain_of(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        pending += [current.__cause__, current.__context__]
    return chain


def test_secrets_echoed_by_the_server_never_show(
    caplog: pytest.LogCaptureFixture, open_session: SessionOpener
) -> None:
    """Before, the close reason showed in ``Disconnected.reason``, in DEBUG lines (with the
    channel name of the unexpected notification) and in the exception chained as the cause of
    the call's error, which a printed traceback shows."""
    recorder = Recorder()
    caplog.set_level(logging.DEBUG, logger="openapi_client")
    with serving(leaking) as server:
        with open_session(
            key_configuration(api_url(server)), recorder, heartbeat=None
        ) as ws_client:
            with pytest.raises(ApiException) as answered:
                ws_client.call("public/leak")
            with pytest.raises(ApiConnectionError) as dropped:
                ws_client.call("public/bye")
            recorder.wait_for(SessionRestored, 2)
    errors = [answered.value, dropped.value]
    lost = recorder.of(Disconnected)[0]
    assert lost.code == 1000 and "***" in lost.reason
    assert any("***" in str(cause) for cause in chain_of(dropped.value)[1:])
    for error in errors:
        for link in chain_of(error):
            assert_clean(repr(link), "an exception's repr")
            assert_clean(str(link), "an exception's text")
        printed = traceback.format_exception(type(error), error, error.__traceback__)
        assert_clean("".join(printed), "a printed traceback")
    for event in recorder.events:
        assert_clean(repr(event), "an event")
    assert "user.orders.***" in caplog.text  # the unexpected channel, named without the token
    assert_clean(caplog.text, "the log")
    for record in caplog.records:
        assert_clean(record.getMessage(), "a log line")


def test_the_session_command_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """``deribit-session session`` against a server that ends every connection with the
    credentials as its close reason: the JSON events and the error lines show ``***``."""

    def close_after_restoring(ws: WsPeer) -> None:
        if not ws.accept():
            return
        for request in ws.requests():
            ws.send(*session_answers(request))
            if request["method"] == "private/get_cancel_on_disconnect":  # the last setting
                time.sleep(0.2)
                ws.close(1000, ECHOED)

    monkeypatch.setenv("DERIBIT_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DERIBIT_CLIENT_SECRET", SECRET)
    monkeypatch.delenv("DERIBIT_ACCESS_TOKEN", raising=False)
    out, err = io.StringIO(), io.StringIO()
    with serving(close_after_restoring) as server:
        status = main(
            ["--host", api_url(server), "--timeout", "3", "session", "--duration", "1.5"],
            out,
            err,
        )
    printed = out.getvalue() + err.getvalue()
    assert status == 0, printed
    assert '"event": "Disconnected"' in printed and "bye ***" in printed
    assert_clean(printed, "the command's output")
