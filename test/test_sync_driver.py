"""The synchronous driver (``openapi_client.core.CallDriver``) and how the clients plug into it.

The rest of the suite drives it through ``ApiClient`` and ``WebSocketApiClient``; here: what the
composition itself promises (a token fetched for a call shares that call's deadline; a third
transport plugs in with nothing but the ``Transport`` protocol), against the simulator over
loopback where there is a wire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET
from test_websocket_support import session, token_configuration

from openapi_client import (
    ApiCallTimeoutError,
    ApiClient,
    ApiConnectionError,
    ApiException,
    ApiValueError,
    Configuration,
    RetryPolicy,
    SessionManagementApi,
)
from openapi_client.calls import Reply
from openapi_client.core import Attempt, CallDriver
from openapi_client.endpoint import Endpoint
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(30)

OK = {"jsonrpc": "2.0", "result": "ok"}


@pytest.mark.timing
def test_a_token_fetched_for_a_call_ends_with_that_calls_deadline(
    simulator: DeribitSimulator,
) -> None:
    """The call's token is fetched anew (its first one was revoked) and public/auth hangs: the
    fetch is held to the call's call_timeout (1 s), not to a call_timeout of its own, which the
    call's retry wait raised to 600 s here (so that the two cannot be confused)."""
    configuration = Configuration(
        host=simulator.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        call_timeout=1.0,
        attempt_timeout=10.0,
        request_timeout=(10.0, 10.0),
        retries=RetryPolicy(total=1, backoff_factor=0.01, jitter=0.0),
    )
    with ApiClient(configuration) as client:
        api = SessionManagementApi(client)
        api.private_enable_cancel_on_disconnect_get()  # the token, fetched and kept

        def between_attempts(seconds: float) -> None:
            configuration.call_timeout = 600.0
            simulator.revoke_tokens()
            simulator.inject("hang", path="/public/auth", seconds=30)

        client.sleep = between_attempts
        simulator.inject("html_503", path="/private/enable_cancel_on_disconnect")
        started = time.monotonic()
        with pytest.raises(ApiCallTimeoutError) as raised:
            api.private_enable_cancel_on_disconnect_get()
        elapsed = time.monotonic() - started
    assert str(raised.value).startswith("public_auth_get: the call_timeout (1 s) ran out")
    assert elapsed < 5.0  # its own deadline would have let it hang for attempt_timeout (10 s)
    assert simulator.auth_requests == 2


def test_a_token_fetched_outside_any_call_has_a_deadline_of_its_own(
    simulator: DeribitSimulator,
) -> None:
    configuration = Configuration(
        host=simulator.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    with ApiClient(configuration) as client:
        token = client.credentials.token_manager().access_token()
    assert token and simulator.auth_requests == 1


def test_websocket_client_says_it_is_closed_once_closed(simulator: DeribitSimulator) -> None:
    ws_client = session(token_configuration(simulator), heartbeat=None)
    assert not ws_client.closed
    ws_client.close()
    assert ws_client.closed
    with pytest.raises(ApiValueError, match="closed"):
        ws_client.call("public/test")


# -- a third transport -------------------------------------------------------------------------


class InMemory:
    """A synchronous ``Transport`` that answers from memory, as a test double of a service might:
    every call answers ``OK`` once the attempt's turn is taken, and the first ``failures``
    attempts fail as if the connection had been reset."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[tuple[str, Any, int, str]] = []
        self.closed = False
        self.forked = False

    def prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> dict[str, Any]:
        return endpoint.json_params(args, True)

    def timeout(self, value: Any) -> Any:
        return value

    def send(
        self, endpoint: Endpoint, request: Any, preload: bool, timeout: Any, attempt: Attempt
    ) -> Any:
        attempt.take_turn()
        self.sent.append((endpoint.operation, request, attempt.number,
                          threading.current_thread().name))
        if self.failures:
            self.failures -= 1
            raise ApiConnectionError("reset by the double")
        return Reply(OK, 200, {})

    def reauthenticate(self, credential: str) -> bool:
        return False

    def explain_refusal(self, error: ApiException, credential: str) -> ApiException:
        return error

    def may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def after_fork(self) -> None:
        self.forked = True


def test_a_third_transport_plugs_in_under_the_api_classes() -> None:
    transport = InMemory(failures=1)
    configuration = Configuration(retries=RetryPolicy(total=1, backoff_factor=0.01))
    driver = CallDriver(configuration, transport, owner="InMemoryClient")
    driver.sleep = lambda seconds: None
    api = SessionManagementApi(driver)
    assert api.public_set_heartbeat_get(30) == OK
    assert api.public_disable_heartbeat_get(async_req=True).get(5) == OK
    driver.close()
    assert [(operation, request, number) for operation, request, number, _ in transport.sent] == [
        ("public_set_heartbeat_get", {"interval": 30}, 1),
        ("public_set_heartbeat_get", {"interval": 30}, 2),
        ("public_disable_heartbeat_get", {}, 1),
    ]
    assert transport.sent[-1][3].startswith("openapi_client-")  # an async_req thread
    with pytest.raises(ApiValueError, match="this InMemoryClient is closed"):
        api.public_set_heartbeat_get(30)
    assert not transport.closed  # the transport is its owner's to close
    driver.after_fork()
    assert transport.forked
