"""The session core on its own: inputs in, outputs out, no sockets, no threads, no sleeps.

Each test drives :class:`~openapi_client.websocket.session_core.SessionCore` as a driver would
(time is a number the test moves) and checks what it decides: the restore order, drops, close
codes, silence, 10028 and 429, token renewal and its clamps, eviction, logout, subscriptions,
cancel-on-disconnect bookkeeping, messages it cannot route, and the watchdog.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import pytest

from openapi_client import Configuration, RateLimit, RetryPolicy
from openapi_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiTimeoutError,
    ApiValueError,
    BadRequestException,
    TooManyRequestsException,
    exception_for_response,
)
from openapi_client.websocket.core.routing import Router
from openapi_client.websocket.events import (
    Authenticated,
    Closed,
    Disconnected,
    HeartbeatAnswered,
    Reconnecting,
    SessionEvicted,
    SessionRestored,
    TokenRefreshed,
    WatchdogExpired,
    published,
)
from openapi_client.websocket.session_core import (
    FORKED,
    MAX_RECONNECT_DELAY,
    WAKE,
    Abort,
    Call,
    Close,
    CoreSettings,
    Deliver,
    Log,
    Open,
    Send,
    SessionCore,
    State,
)

URL = "wss://deribit.test/ws/api/v2"
DISPLAY = "deribit.test:443"
#: Backoff without jitter surprises: the injected random source gives 0.5.
BACKOFF = RetryPolicy(backoff_factor=1.0, backoff_max=8.0, jitter=0.5, retry_after_max=30.0)
NO_RETRIES = RetryPolicy(total=0)


def key_configuration(**settings: Any) -> Configuration:
    return Configuration(
        host="https://deribit.test/api/v2",
        client_id="core-id",
        client_secret="core-secret",
        **settings,
    )


def token_configuration(**settings: Any) -> Configuration:
    return Configuration(host="https://deribit.test/api/v2", access_token="core-token", **settings)


def grant(
    access: str = "access-1",
    refresh: str = "refresh-1",
    expires_in: Any = 900,
    scope: str = "session:openapi-client",
) -> dict[str, Any]:
    return {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": expires_in,
        "scope": scope,
        "token_type": "bearer",
    }


class Driver:
    """Plays the driver: feeds inputs at ``now`` and keeps every output, with the frames sent
    decoded per connection."""

    def __init__(
        self,
        configuration: Configuration | None = None,
        first_attempts: RetryPolicy = NO_RETRIES,
        **settings: Any,
    ) -> None:
        options: dict[str, Any] = {
            "url": URL,
            "display": DISPLAY,
            "heartbeat": 10.0,
            "reconnect_backoff": BACKOFF,
            "throttle_delay": 5.0,
            "call_timeout": 10.0,
            "close_timeout": 2.0,
        }
        options.update(settings)
        self.core = SessionCore(
            configuration or key_configuration(), CoreSettings(**options), rand=lambda: 0.5
        )
        self.now = 1000.0
        self.outputs: list[Any] = []
        self.first_attempts = first_attempts

    # -- inputs ------------------------------------------------------------------------------

    def collect(self) -> list[Any]:
        """The outputs since the last look, log lines written (and left out)."""
        taken = []
        for output in self.core.take_outputs():
            if type(output) is Log:
                output.write()
            else:
                taken.append(output)
        self.outputs.extend(taken)
        return taken

    def do(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        action(*args, now=self.now, **kwargs)
        return self.collect()

    def advance(self, seconds: float) -> list[Any]:
        self.now += seconds
        self.core.timer(self.now)
        return self.collect()

    def tick(self) -> list[Any]:
        """Run the timer at its next deadline (as a driver would)."""
        deadline = self.core.next_deadline()
        assert deadline is not None, "nothing is scheduled"
        self.now = max(self.now, deadline)
        self.core.timer(self.now)
        return self.collect()

    def start(self) -> None:
        self.core.start(self.now, self.first_attempts)
        assert self.collect() == [WAKE]

    def open(self, number: int, fixed_token: str | None = None) -> list[Any]:
        """Expect the timer to ask for connection ``number``, and report it opened."""
        outputs = self.tick()
        assert Open(number) in outputs, outputs
        return self.do(self.core.opened, number, fixed_token=fixed_token)

    def receive(self, number: int, message: Any) -> list[Any]:
        text = message if isinstance(message, str) else json.dumps(message)
        self.core.receive(number, text, self.now)
        return self.collect()

    def answer(self, number: int, result: Any = "ok", **extra: Any) -> list[Any]:
        """Answer the last request sent on ``number``."""
        request = self.sent(number)[-1]
        return self.receive(
            number, {"jsonrpc": "2.0", "id": request["id"], "result": result, **extra}
        )

    def refuse(self, number: int, code: int, message: str = "refused") -> list[Any]:
        request = self.sent(number)[-1]
        return self.receive(
            number,
            {"jsonrpc": "2.0", "id": request["id"], "error": {"code": code, "message": message}},
        )

    def lost(self, number: int, **how: Any) -> list[Any]:
        return self.do(self.core.lost, number, **how)

    # -- what came out -----------------------------------------------------------------------

    def sent(self, number: int) -> list[dict[str, Any]]:
        return [
            json.loads(output.text)
            for output in self.outputs
            if type(output) is Send and output.connection == number
        ]

    def methods(self, number: int) -> list[str]:
        return [request["method"] for request in self.sent(number)]

    def events(self, kind: type | None = None) -> list[Any]:
        return [
            output
            for output in self.outputs
            if hasattr(output, "_fields")
            and type(output).__module__.endswith("events")
            and (kind is None or type(output) is kind)
        ]

    def kinds(self) -> list[str]:
        return [
            type(event).__name__ for event in self.events() if type(event) is not HeartbeatAnswered
        ]

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        checked: bool = False,
        connect: float = 5.0,
        read: float | None = 10.0,
    ) -> tuple[Call, str | None]:
        call = Call(method, params or {}, connect, read, checked)
        text = self.core.submit(call, self.now)
        self.collect()
        if text is not None:  # the driver writes it on the call's connection
            assert call.connection == self.core.connection
            self.outputs.append(Send(call.connection, text))
        return call, text

    def restored_key_session(self, **answers: Any) -> None:
        """Start, open connection 1 and answer its restore: hello, auth, heartbeat, COD."""
        self.start()
        self.open(1)
        self.answer(1)  # hello
        self.answer(1, answers.get("grant", grant()))
        if self.core.heartbeat is not None:
            self.answer(1)
        self.answer(1, answers.get("cod", {"scope": "connection", "enabled": False}))
        assert self.core.state is State.READY, self.kinds()


def completed(outputs: list[Any]) -> list[Call]:
    return [output for output in outputs if type(output) is Call]


# -- the restore sequence ---------------------------------------------------------------------


def test_restore_order_and_calls_queued_until_it_is_done() -> None:
    driver = Driver(cancel_on_disconnect=True)
    driver.core.add_subscriptions(["platform_state", "user.orders.any"], print)
    driver.start()
    assert driver.core.state is State.CONNECTING
    driver.open(1)
    assert driver.core.state is State.RESTORING
    queued, text = driver.call("public/get_time")
    assert text is None and queued.queued
    driver.answer(1)
    driver.answer(1, grant())
    driver.answer(1)
    driver.answer(1)
    outputs = driver.answer(1, ["platform_state", "user.orders.any"])
    assert driver.methods(1) == [
        "public/hello",
        "public/auth",
        "public/set_heartbeat",
        "private/enable_cancel_on_disconnect",
        "private/subscribe",
        "public/get_time",
    ]
    hello, auth, heartbeat, cod, subscribe, _ = driver.sent(1)
    assert hello["params"]["client_name"] == "openapi-client-deribit-session"
    assert auth["params"]["grant_type"] == "client_signature"
    assert auth["params"]["scope"] == "session:openapi-client"
    assert heartbeat["params"] == {"interval": 10.0}
    assert cod["params"] == {"scope": "connection"}  # authenticated: no token in the call
    assert subscribe["params"] == {"channels": ["platform_state", "user.orders.any"]}
    # The queued call goes after SessionRestored, in the same batch of outputs.
    restored = next(i for i, o in enumerate(outputs) if type(o) is SessionRestored)
    released = next(i for i, o in enumerate(outputs) if type(o) is Send)
    assert restored < released
    assert driver.kinds() == ["Connected", "Authenticated", "SessionRestored"]
    event = driver.events(SessionRestored)[0]
    assert (event.connection, event.heartbeat, event.cancel_on_disconnect) == (1, 10.0, True)
    assert event.channels == ("platform_state", "user.orders.any")
    assert driver.core.state is State.READY and not queued.queued


def test_a_fixed_token_goes_with_the_restores_private_calls() -> None:
    driver = Driver(token_configuration(), heartbeat=None)
    driver.start()
    driver.open(1, fixed_token="core-token")
    driver.answer(1)
    driver.answer(1, {"scope": "connection", "enabled": True})
    assert driver.methods(1) == ["public/hello", "private/get_cancel_on_disconnect"]
    assert driver.sent(1)[1]["params"] == {"scope": "connection", "access_token": "core-token"}
    assert driver.events(SessionRestored)[0].cancel_on_disconnect is True
    assert driver.events(Authenticated) == []


def test_without_credentials_only_hello_is_sent() -> None:
    driver = Driver(Configuration(host="https://deribit.test/api/v2"), heartbeat=None)
    driver.start()
    driver.open(1)
    driver.answer(1)
    assert driver.methods(1) == ["public/hello"] and driver.core.state is State.READY


def test_a_refresh_grant_refused_falls_back_to_the_key() -> None:
    driver = Driver(heartbeat=None)
    driver.restored_key_session()
    driver.lost(1)
    driver.open(2)
    driver.answer(2)
    refreshing = {"grant_type": "refresh_token", "refresh_token": "refresh-1"}
    assert driver.sent(2)[1]["params"] == refreshing
    driver.refuse(2, 13009, "invalid_token")
    assert driver.sent(2)[2]["params"]["grant_type"] == "client_signature"
    driver.answer(2, grant("access-2"))
    driver.answer(2, {"scope": "connection", "enabled": False})
    assert driver.core.state is State.READY
    assert [e.connection for e in driver.events(Authenticated)] == [1, 2]


def test_a_restore_step_unanswered_in_time_fails_the_attempt() -> None:
    driver = Driver(heartbeat=None)
    driver.start()
    driver.open(1)
    driver.answer(1)  # hello; public/auth is never answered
    assert driver.core.next_deadline() == driver.now + 10.0
    outputs = driver.advance(10.0)
    assert Close(1, 1000, "") in outputs
    driver.answer(1, grant())  # too late: dropped
    assert driver.events(Authenticated) == []
    driver.lost(1, sent=(1000, ""), received=(1000, ""))
    assert driver.core.state is State.FAILED
    error = driver.core.failure_error
    assert isinstance(error, ApiTimeoutError)
    assert str(error) == f"public/auth: {DISPLAY} did not answer within 10 s"


def test_a_refused_setting_fails_the_first_connection() -> None:
    driver = Driver(token_configuration())
    driver.start()
    driver.open(1, fixed_token="core-token")
    driver.answer(1)
    outputs = driver.refuse(1, 11029, "invalid_arguments")  # set_heartbeat
    assert Close(1, 1000, "") in outputs
    driver.lost(1, sent=(1000, ""), received=(1000, ""))
    assert driver.core.state is State.FAILED
    error = driver.core.failure_error
    assert isinstance(error, ApiException) and error.error_code == 11029
    disconnected = driver.events(Disconnected)[0]
    assert disconnected.reason == "closed: the session could not be restored on it"
    assert driver.kinds()[-1] == "Closed" and driver.events(Closed)[0].failed


def test_the_first_connection_is_retried_as_the_policy_says_then_given_up() -> None:
    driver = Driver(first_attempts=RetryPolicy(total=2, backoff_factor=0.1, jitter=0.0))
    driver.start()
    refused = ApiConnectionError("refused")
    for number in (1, 2, 3):
        assert Open(number) in driver.tick()
        driver.do(driver.core.open_failed, number, refused)
    assert driver.core.state is State.FAILED
    assert driver.core.failure_error is refused
    assert driver.events(Reconnecting) == []  # the first connection's retries are quiet
    assert driver.events(Closed)[0].reason.startswith("could not establish the session")


def test_a_credential_the_client_refuses_fails_at_once() -> None:
    driver = Driver(first_attempts=RetryPolicy(total=5))
    driver.start()
    driver.tick()
    driver.do(driver.core.open_failed, 1, ApiValueError("the token from token_provider ..."))
    assert driver.core.state is State.FAILED


# -- drops, closes, silence --------------------------------------------------------------------


def test_a_drop_fails_calls_in_flight_and_reconnects_with_jittered_backoff() -> None:
    driver = Driver(cancel_on_disconnect=True)
    driver.restored_key_session()
    call, text = driver.call("public/get_time")
    assert text is not None and json.loads(text)["method"] == "public/get_time"
    cause = ConnectionResetError("reset")
    outputs = driver.lost(1, cause=cause)
    assert completed(outputs) == [call]
    assert isinstance(call.error, ApiConnectionError)
    assert str(call.error) == (
        f"public/get_time: no answer from {DISPLAY}: the connection dropped without a close frame"
    )
    assert call.error.__cause__ is not None
    lost = driver.events(Disconnected)[0]
    assert (lost.connection, lost.code, lost.cancel_on_disconnect_may_have_fired) == (1, None, True)
    reconnecting = driver.events(Reconnecting)[0]
    # backoff_factor 1 s, less jitter 0.5 * 0.5: 0.75 s.
    assert (reconnecting.attempt, reconnecting.delay) == (1, 0.75)
    assert driver.core.state is State.RECONNECTING
    assert driver.core.next_deadline() == driver.now + 0.75
    assert driver.advance(0.5) == []
    driver.open(2)
    assert driver.core.state is State.RESTORING
    kinds = driver.kinds()
    assert kinds[3:] == ["Disconnected", "Reconnecting", "Connected"]


def test_close_4000_says_heartbeat_close() -> None:
    driver = Driver(cancel_on_disconnect=True)
    driver.restored_key_session()
    driver.lost(1, received=(4000, "heartbeat close"), sent=(4000, "heartbeat close"))
    lost = driver.events(Disconnected)[0]
    assert lost.code == 4000
    assert lost.reason == "the server closed the connection (code 4000, 'heartbeat close')"


def test_a_protocol_error_of_the_server_says_so() -> None:
    driver = Driver()
    driver.restored_key_session()
    driver.lost(1, sent=(1007, "invalid UTF-8"))
    assert driver.events(Disconnected)[0].reason.startswith(
        "the client ended the connection: the server broke the protocol (code 1007"
    )


def test_silence_declares_the_connection_dead() -> None:
    driver = Driver()  # heartbeat 10: dead after 1.5 * 10 + 5 = 20 s of silence
    driver.restored_key_session()
    assert driver.advance(19.0) == []
    driver.receive(1, {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "heartbeat"}})
    assert driver.advance(19.0) == []  # 19 s since the last message
    outputs = driver.advance(1.0)
    assert Abort(1, 1001, "") in outputs
    lost = driver.events(Disconnected)[0]
    assert lost.code is None
    assert lost.reason == "nothing received for 20 s, so the connection was declared dead"
    assert driver.lost(1) == []  # the driver's later report changes nothing
    assert len(driver.events(Disconnected)) == 1


def test_a_liveness_timeout_setting_wins_over_the_heartbeat() -> None:
    driver = Driver(liveness_timeout=3.0)
    driver.restored_key_session()
    assert Abort(1, 1001, "") in driver.advance(3.0)


def test_a_connection_lost_while_restored_is_an_attempt_that_failed() -> None:
    driver = Driver(heartbeat=None)
    driver.restored_key_session()
    driver.lost(1)
    driver.open(2)
    driver.answer(2)
    driver.lost(2)
    reconnecting = driver.events(Reconnecting)
    assert [event.attempt for event in reconnecting] == [1, 2]
    assert reconnecting[1].error.startswith(
        "the connection was lost while the session was restored"
    )
    assert [e.connection for e in driver.events(SessionRestored)] == [1]


# -- throttling ---------------------------------------------------------------------------------


def test_10028_marks_the_connection_throttled_and_the_reconnect_waits_longer() -> None:
    driver = Driver(throttle_delay=5.0)
    driver.restored_key_session()
    call, _ = driver.call("public/test")
    driver.refuse(1, 10028, "too_many_requests")
    assert isinstance(call.error, TooManyRequestsException) and call.error.status == 429
    driver.lost(1, received=(1008, "too_many_requests"))
    assert driver.events(Reconnecting)[0].delay == 5.0


def test_a_429_at_the_handshake_honours_retry_after_and_the_throttle_floor() -> None:
    driver = Driver(throttle_delay=5.0)
    driver.restored_key_session()
    driver.lost(1)
    driver.tick()  # Open(2)
    refused = exception_for_response(429, "Too Many Requests", "", {"Retry-After": "12"})
    driver.do(driver.core.open_failed, 2, refused)
    second = driver.events(Reconnecting)[1]
    assert second.delay == 12.0 and "429" in second.error
    driver.tick()
    refused = exception_for_response(429, "Too Many Requests", "", {"Retry-After": "0"})
    driver.do(driver.core.open_failed, 3, refused)
    assert driver.events(Reconnecting)[2].delay == 5.0  # never less than throttle_delay


@pytest.mark.parametrize("retry_after", ["1e400", "9" * 500, "3600"])
def test_a_huge_retry_after_is_cut_to_retry_after_max(
    retry_after: str, caplog: pytest.LogCaptureFixture
) -> None:
    driver = Driver()
    driver.restored_key_session()
    driver.lost(1)
    driver.tick()
    refused = exception_for_response(429, "Too Many Requests", "", {"Retry-After": retry_after})
    driver.do(driver.core.open_failed, 2, refused)
    assert driver.events(Reconnecting)[1].delay <= BACKOFF.retry_after_max
    assert driver.core.next_deadline() <= driver.now + MAX_RECONNECT_DELAY  # type: ignore[operator]


def test_max_reconnects_gives_up() -> None:
    driver = Driver(max_reconnects=1)
    driver.restored_key_session()
    driver.lost(1)
    driver.tick()
    driver.do(driver.core.open_failed, 2, ApiConnectionError("refused"))
    assert driver.core.state is State.FAILED
    assert driver.events(Closed)[0].reason.startswith("gave up after 1 reconnect attempts")
    with pytest.raises(ApiConnectionError, match="gave up"):
        driver.call("public/test")


def test_a_refused_grant_on_a_reconnect_fails_the_session() -> None:
    driver = Driver(heartbeat=None)
    driver.restored_key_session()
    driver.lost(1)
    driver.open(2)
    driver.answer(2)
    driver.refuse(2, 13004, "invalid_credentials")  # the refresh grant: the key is tried next
    driver.refuse(2, 13004, "invalid_credentials")
    driver.lost(2, sent=(1000, ""), received=(1000, ""))
    assert driver.core.state is State.FAILED
    assert "13004" in driver.events(Closed)[0].reason


# -- tokens ---------------------------------------------------------------------------------


def test_the_token_is_renewed_ahead_of_expiry_on_the_open_connection() -> None:
    driver = Driver(key_configuration(token_refresh_margin=60), heartbeat=None)
    driver.restored_key_session()
    started = driver.now
    # Renewed 60 s before its 900 s run out.
    assert driver.core.next_deadline() == started + 840
    outputs = driver.advance(840)
    assert driver.sent(1)[-1]["params"] == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-1",
    }
    assert any(type(o) is Send for o in outputs)
    driver.answer(1, grant("access-2", "refresh-2"))
    (refreshed,) = driver.events(TokenRefreshed)
    assert (refreshed.connection, refreshed.expires_in) == (1, 900.0)
    call, _ = driver.call("private/get_cancel_on_disconnect")
    assert call.credential == "access-2"


LONGEST = 2 * 365 * 86400.0


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [("0", 20.0), ("-5", 20.0), ("0.001", 20.0), ("Infinity", LONGEST), ("9" * 500, LONGEST)],
    ids=["zero", "negative", "a-millisecond", "infinity", "500-digits"],
)
def test_odd_lifetimes_are_clamped_and_never_renewed_in_a_loop(
    expires_in: str, lifetime: float
) -> None:
    """``expires_in`` as the server wrote it (JSON text: ``Infinity``, 500 digits)."""

    def answer_grant() -> None:
        request_id = driver.sent(1)[-1]["id"]
        result = json.dumps(grant()).replace('"expires_in": 900', f'"expires_in": {expires_in}')
        driver.receive(1, f'{{"jsonrpc": "2.0", "id": {request_id}, "result": {result}}}')

    driver = Driver(heartbeat=None)
    driver.start()
    driver.open(1)
    driver.answer(1)
    answer_grant()
    driver.answer(1, {"scope": "connection", "enabled": False})
    assert driver.events(Authenticated)[0].expires_in == lifetime
    # Ten minutes, every renewal answered alike: at most one every 16 s (renewed when a fifth
    # of its 20 s is left at the latest).
    answered = len(driver.sent(1))
    for _ in range(600):
        driver.advance(1.0)
        if len(driver.sent(1)) > answered:
            answered = len(driver.sent(1))
            answer_grant()
    renewals = driver.methods(1).count("public/auth") - 1
    assert renewals == len(driver.events(TokenRefreshed))
    if lifetime == 20.0:
        assert renewals >= 600 / 16 - 2  # and renewed all along
    assert renewals <= 600 / 16 + 1
    assert driver.core.next_deadline() is not None  # a finite deadline, however long


def test_a_renewal_refused_keeps_the_token_while_valid_then_closes_the_connection() -> None:
    configuration = key_configuration(token_refresh_margin=60)
    driver = Driver(configuration, heartbeat=None)
    driver.restored_key_session(grant=grant(expires_in=100))
    driver.advance(80)  # a fifth of 100 s before expiry
    driver.refuse(1, 13009, "invalid_token")  # the refresh grant
    driver.refuse(1, 13004, "invalid_credentials")  # the key grant
    # Kept: tried again in half the time left, at most 5 s.
    assert driver.core.next_deadline() == driver.now + 5.0
    assert driver.core.state is State.READY
    while driver.now < 1000.0 + 100:
        driver.advance(5.0)
        if driver.sent(1)[-1]["method"] == "public/auth":
            driver.refuse(1, 13004, "invalid_credentials")
        if any(type(o) is Close for o in driver.outputs):
            break
    assert Close(1, 1000, "") in driver.outputs
    driver.lost(1, sent=(1000, ""), received=(1000, ""))
    lost = driver.events(Disconnected)[0]
    assert (lost.code, lost.reason.startswith("closed: the token could not be renewed")) == (
        1000,
        True,
    )
    assert driver.events(Reconnecting)[0].delay >= 5.0  # the throttle floor after it


def test_a_renewal_unanswered_in_time_keeps_the_token_and_tries_again() -> None:
    driver = Driver(key_configuration(token_refresh_margin=60), heartbeat=None)
    driver.restored_key_session(grant=grant(expires_in=100))
    driver.advance(80)  # the refresh grant goes, and is never answered
    assert driver.sent(1)[-1]["params"]["grant_type"] == "refresh_token"
    driver.advance(9.9)
    assert driver.core.next_deadline() != driver.now + 5.0  # still waiting for it
    driver.advance(0.1)
    # Kept for its remaining 10 s, tried again in half of them.
    assert driver.core.next_deadline() == driver.now + 5.0
    assert driver.core.state is State.READY
    assert not any(type(o) in (Close, Abort) for o in driver.outputs)
    driver.advance(5.0)
    driver.answer(1, grant("access-2", "refresh-2"))
    assert [e.connection for e in driver.events(TokenRefreshed)] == [1]


def test_an_ambiguous_answer_to_the_sessions_own_requests() -> None:
    def both(request_id: int) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": request_id, "result": 1, "error": {"code": 1}}

    # To a restore step: the attempt fails with it.
    driver = Driver(heartbeat=None)
    driver.start()
    driver.open(1)
    outputs = driver.receive(1, both(driver.sent(1)[-1]["id"]))  # hello
    assert Close(1, 1000, "") in outputs
    driver.lost(1, sent=(1000, ""), received=(1000, ""))
    assert isinstance(driver.core.failure_error, ApiProtocolError)
    # To a renewal: as a renewal that failed (the token is kept while valid).
    driver = Driver(key_configuration(token_refresh_margin=60), heartbeat=None)
    driver.restored_key_session(grant=grant(expires_in=100))
    driver.advance(80)
    driver.receive(1, both(driver.sent(1)[-1]["id"]))
    assert driver.core.next_deadline() == driver.now + 5.0
    # To a re-authentication: its ticket fails with it.
    driver = Driver(heartbeat=None)
    driver.restored_key_session()
    ticket = driver.core.reauthenticate("access-1", driver.now)
    assert isinstance(ticket, Call)
    driver.collect()
    outputs = driver.receive(1, both(driver.sent(1)[-1]["id"]))
    assert completed(outputs) == [ticket] and isinstance(ticket.error, ApiProtocolError)


def test_a_reauthentication_cut_short_by_a_loss_fails_its_ticket() -> None:
    driver = Driver(heartbeat=None)
    driver.restored_key_session()
    ticket = driver.core.reauthenticate("access-1", driver.now)
    assert isinstance(ticket, Call)
    outputs = driver.lost(1)
    assert completed(outputs) == [ticket]
    assert isinstance(ticket.error, ApiConnectionError)
    assert str(ticket.error).startswith(f"public/auth: no answer from {DISPLAY}: ")


def test_an_evicted_session_token_is_announced_and_authenticated_again() -> None:
    driver = Driver(heartbeat=None)
    driver.restored_key_session()
    call, _ = driver.call("private/get_cancel_on_disconnect")
    driver.answer(1, {"scope": "connection", "enabled": False})
    assert call.credential == "access-1"
    refused, _ = driver.call("private/get_cancel_on_disconnect")
    driver.refuse(1, 13009, "unauthorized")
    assert isinstance(refused.error, BadRequestException) and refused.error.error_code == 13009
    ticket = driver.core.reauthenticate("access-1", driver.now)
    driver.collect()
    assert isinstance(ticket, Call)
    (evicted,) = driver.events(SessionEvicted)
    assert evicted.connection == 1 and "session:openapi-client" in evicted.scope
    assert "16 sessions" in evicted.reason
    assert driver.sent(1)[-1]["params"]["grant_type"] == "refresh_token"
    driver.refuse(1, 13009, "invalid_token")  # the evicted session's refresh token is gone too
    assert driver.sent(1)[-1]["params"]["grant_type"] == "client_signature"
    outputs = driver.answer(1, grant("access-2"))
    assert completed(outputs) == [ticket] and ticket.error is None
    assert driver.events(TokenRefreshed)[0].connection == 1
    # Another caller refused with the old token just goes again with the new one.
    assert driver.core.reauthenticate("access-1", driver.now) is True


def test_a_connection_scoped_token_is_not_announced_evicted() -> None:
    driver = Driver(heartbeat=None)
    driver.restored_key_session(grant=grant(scope="connection"))
    ticket = driver.core.reauthenticate("access-1", driver.now)
    driver.collect()
    assert isinstance(ticket, Call) and driver.events(SessionEvicted) == []


def test_reauthentication_with_a_fixed_token_or_a_provider() -> None:
    fixed = Driver(token_configuration())
    assert fixed.core.reauthenticate("core-token", fixed.now) is False
    configuration = Configuration(host="https://deribit.test/api/v2", token_provider=lambda: "t")
    provided = Driver(configuration)
    assert provided.core.reauthenticate("t", provided.now) is True


# -- calls ----------------------------------------------------------------------------------


def test_answers_out_of_order_reach_their_calls() -> None:
    driver = Driver()
    driver.restored_key_session()
    first, first_text = driver.call("public/test")
    second, second_text = driver.call("public/get_time")
    assert first_text is not None and second_text is not None
    first_id, second_id = json.loads(first_text)["id"], json.loads(second_text)["id"]
    driver.receive(1, {"jsonrpc": "2.0", "id": second_id, "result": 2})
    driver.receive(1, {"jsonrpc": "2.0", "id": first_id, "result": 1})
    assert (first.message or {}).get("result") == 1 and (second.message or {}).get("result") == 2


def test_a_queued_call_times_out_waiting_for_the_session() -> None:
    driver = Driver()
    driver.start()
    call, _ = driver.call("public/test", connect=0.5)
    assert call.deadline == driver.now + 0.5
    assert driver.core.expire(call, driver.now + 0.2) == driver.now + 0.5
    assert driver.core.expire(call, driver.now + 0.5) is None
    assert isinstance(call.error, ApiTimeoutError)
    assert str(call.error) == "the WebSocket session was not ready within 0.5 s (it is connecting)"


def test_a_sent_call_times_out_and_its_late_answer_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="openapi_client.websocket")
    driver = Driver()
    driver.restored_key_session()
    call, _ = driver.call("public/test", read=0.2)
    assert driver.core.expire(call, driver.now + 0.2) is None
    assert str(call.error) == f"public/test: {DISPLAY} did not answer within 0.2 s"
    assert driver.answer(1, "late") == []
    assert "came after its caller gave up" in caplog.text


def test_a_call_queued_then_sent_waits_for_its_answer_deadline() -> None:
    driver = Driver(heartbeat=None)
    driver.start()
    driver.open(1)
    call, _ = driver.call("public/test", connect=5.0, read=10.0)
    driver.answer(1)
    driver.answer(1, grant())
    driver.now += 1.0
    driver.answer(1, {"scope": "connection", "enabled": False})
    assert call.deadline == driver.now + 10.0
    assert driver.core.expire(call, driver.now + 5.0) == driver.now + 10.0


def test_an_abandoned_call_is_forgotten_and_a_forgotten_one_is_swept() -> None:
    driver = Driver()
    driver.restored_key_session()
    abandoned, _ = driver.call("public/test")
    driver.core.abandon(abandoned)
    assert driver.answer(1) == []
    # A caller interrupted before it could abandon: swept once its time has run out.
    forgotten, _ = driver.call("public/test", read=1.0)
    outputs = driver.advance(3.0)
    assert completed(outputs) == [forgotten] and isinstance(forgotten.error, ApiTimeoutError)


def test_calls_are_refused_with_the_reason_once_the_session_ended() -> None:
    driver = Driver()
    driver.restored_key_session()
    driver.do(driver.core.close)
    with pytest.raises(ApiValueError, match="the WebSocket session is closed"):
        driver.call("public/test")
    forked = Driver()
    forked.restored_key_session()
    forked.core.after_fork()
    assert forked.collect() == []
    with pytest.raises(ApiValueError) as refused:
        forked.call("public/test")
    assert str(refused.value) == FORKED


def test_calls_queued_when_the_session_ends_are_refused_at_once() -> None:
    driver = Driver()
    driver.start()
    driver.open(1)
    first, _ = driver.call("public/test")
    second, _ = driver.call("public/test")
    outputs = driver.do(driver.core.close)
    assert completed(outputs) == [first, second]
    assert isinstance(first.error, ApiValueError) and first.error is not second.error
    assert not first.queued and driver.core.next_deadline() is not None


def test_a_request_too_large_is_refused() -> None:
    driver = Driver()
    driver.restored_key_session()
    with pytest.raises(ApiValueError, match="at most 32768"):
        driver.call("public/test", {"x": "y" * 40_000})
    with pytest.raises(ApiValueError, match="JSON"):
        Call("public/test", {"x": float("nan")}, 1.0, 1.0)


def test_what_successful_calls_change_is_restored_on_the_next_connection() -> None:
    driver = Driver()
    driver.restored_key_session()
    driver.call("public/set_heartbeat", {"interval": 15}, checked=True)
    driver.answer(1)
    driver.call("private/enable_cancel_on_disconnect", {"scope": "account"})
    driver.answer(1)
    assert (driver.core.heartbeat, driver.core.cancel_on_disconnect) == (15, False)
    driver.call("private/enable_cancel_on_disconnect", {})
    driver.answer(1)
    assert driver.core.cancel_on_disconnect is True
    driver.lost(1)
    driver.open(2)
    driver.answer(2)
    driver.answer(2, grant())
    assert driver.sent(2)[-1]["params"] == {"interval": 15}
    driver.answer(2)
    assert driver.methods(2)[-1] == "private/enable_cancel_on_disconnect"


@pytest.mark.parametrize("interval", [-5, 0, 9.99, True, "30"])
def test_a_heartbeat_interval_deribit_refuses_is_not_adopted(
    interval: Any, caplog: pytest.LogCaptureFixture
) -> None:
    driver = Driver()
    driver.restored_key_session()
    driver.call("public/set_heartbeat", {"interval": interval})  # by name: sent as given
    driver.answer(1)
    assert driver.core.heartbeat == 10.0
    assert "the session keeps its heartbeat" in caplog.text


# -- messages it cannot route ----------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        '{"jsonrpc": "2.0", "id": {"a": 1}, "result": "?"}',
        '{"jsonrpc": "2.0", "id": [2], "result": "?"}',
        '{"jsonrpc": "2.0", "id": 2.0, "result": "?"}',
        '{"jsonrpc": "2.0", "id": "2", "result": "?"}',
        '{"jsonrpc": "2.0", "id": ' + "9" * 400 + ', "result": "?"}',
        "[1, 2]",
        "null",
        "not json at all",
        "[" * 100_000,
        '{"jsonrpc": "2.0", "method": "mystery", "params": {}}',
        '{"jsonrpc": "2.0", "method": "subscription", "params": [1]}',
        '{"jsonrpc": "2.0", "method": "heartbeat", "params": "test_request"}',
        '{"jsonrpc": "2.0", "error": {"code": 11050, "message": "bad_request"}}',
    ],
)
def test_a_message_that_cannot_be_routed_is_dropped_and_the_connection_stays(
    message: str,
) -> None:
    driver = Driver()
    driver.restored_key_session()
    call, _ = driver.call("public/test")
    assert driver.receive(1, message) == []
    assert not call.done and driver.core.state is State.READY
    driver.answer(1)
    assert call.done and call.error is None


def test_an_answer_with_a_result_and_an_error_fails_its_call_only() -> None:
    driver = Driver()
    driver.restored_key_session()
    call, text = driver.call("public/test")
    assert text is not None
    both = {"jsonrpc": "2.0", "id": json.loads(text)["id"], "result": 1, "error": {"code": 1}}
    outputs = driver.receive(1, both)
    assert completed(outputs) == [call] and isinstance(call.error, ApiProtocolError)
    assert not any(type(o) in (Close, Abort) for o in outputs)


def test_a_failure_while_handling_a_message_costs_that_message_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    driver = Driver()
    driver.restored_key_session()
    monkeypatch.setattr(Router, "_subscription", lambda self, params: 1 / 0)
    notice = {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "x", "data": 1}}
    assert driver.receive(1, notice) == []
    assert "could not be handled; it was dropped" in caplog.text
    assert driver.core.state is State.READY


def test_a_secret_echoed_in_a_close_reason_is_redacted() -> None:
    driver = Driver()
    driver.restored_key_session()
    driver.lost(1, received=(1000, "bye access-1 refresh-1 core-secret"))
    reason = driver.events(Disconnected)[0].reason
    assert "access-1" not in reason and "core-secret" not in reason and "***" in reason


# -- heartbeats and subscriptions ------------------------------------------------------------


def test_a_test_request_is_answered_at_once() -> None:
    driver = Driver()
    driver.restored_key_session()
    outputs = driver.receive(
        1, {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
    )
    (send,) = [o for o in outputs if type(o) is Send]
    assert json.loads(send.text)["method"] == "public/test"
    (answered,) = [o for o in outputs if type(o) is HeartbeatAnswered]
    assert outputs.index(send) < outputs.index(answered)
    stamped = published(answered, driver.now + 0.002, wall=12345.0)
    assert stamped.time == 12345.0 and stamped.answered_in == pytest.approx(0.002)
    assert driver.answer(1, {"version": "x"}) == []  # its answer is nobody's


def test_notifications_go_to_their_callbacks() -> None:
    driver = Driver()
    driver.restored_key_session()
    seen: list[Any] = []

    def callback(channel: str, data: Any) -> None:
        seen.append((channel, data))

    driver.core.add_subscriptions(["platform_state"], callback)
    notice = {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": "platform_state", "data": {"locked": True}},
    }
    assert driver.receive(1, notice) == [Deliver(callback, "platform_state", {"locked": True})]
    other = {**notice, "params": {"channel": "book.X", "data": 1}}
    assert driver.receive(1, other) == []
    driver.core.remove_subscriptions(["platform_state"])
    assert driver.receive(1, notice) == []


def test_unconfirmed_subscriptions_are_logged_on_restore(caplog: pytest.LogCaptureFixture) -> None:
    driver = Driver(heartbeat=None)
    driver.core.add_subscriptions(["book.X"], print)
    driver.start()
    driver.open(1)
    driver.answer(1)
    driver.answer(1, grant())
    driver.answer(1, {"scope": "connection", "enabled": False})
    driver.answer(1, [])
    assert "did not confirm the subscription to book.X" in caplog.text
    assert driver.core.state is State.READY


# -- cancel-on-disconnect bookkeeping ----------------------------------------------------------


def test_may_have_fired_follows_what_the_connection_had() -> None:
    off = Driver()
    off.restored_key_session(cod={"scope": "connection", "enabled": False})
    off.lost(1)
    assert off.events(Disconnected)[0].cancel_on_disconnect_may_have_fired is False
    unknown = Driver(heartbeat=None)
    unknown.start()
    unknown.open(1)
    unknown.answer(1)
    unknown.answer(1, grant())
    unknown.refuse(1, 13021, "forbidden")  # get_cancel_on_disconnect not allowed for the key
    assert unknown.events(SessionRestored)[0].cancel_on_disconnect is False
    unknown.lost(1)
    assert unknown.events(Disconnected)[0].cancel_on_disconnect_may_have_fired is True
    anonymous = Driver(Configuration(host="https://deribit.test/api/v2"), heartbeat=None)
    anonymous.start()
    anonymous.open(1)
    anonymous.answer(1)
    anonymous.lost(1)
    assert anonymous.events(Disconnected)[0].cancel_on_disconnect_may_have_fired is False


def test_a_call_that_disables_it_counts() -> None:
    driver = Driver(cancel_on_disconnect=True)
    driver.restored_key_session()
    driver.call("private/disable_cancel_on_disconnect", {"scope": "connection"}, checked=True)
    driver.answer(1)
    driver.lost(1)
    assert driver.events(Disconnected)[0].cancel_on_disconnect_may_have_fired is False


# -- closing, logout --------------------------------------------------------------------------


def test_close_closes_the_connection_then_says_closed() -> None:
    driver = Driver(cancel_on_disconnect=True)
    driver.restored_key_session()
    call, _ = driver.call("public/test")
    outputs = driver.do(driver.core.close)
    assert outputs[0] == Close(1, 1000, "")
    assert driver.core.state is State.CLOSED and not driver.core.finished
    outputs = driver.lost(1, sent=(1000, ""), received=(1000, ""))
    lost = driver.events(Disconnected)[0]
    assert (lost.code, lost.reason, lost.cancel_on_disconnect_may_have_fired) == (
        1000,
        "closed by the client",
        True,
    )
    assert completed(outputs) == [call]
    closed = driver.events(Closed)[0]
    assert (closed.reason, closed.failed) == ("closed by the client", False)
    assert driver.kinds()[-2:] == ["Disconnected", "Closed"]


def test_a_close_that_is_never_answered_is_cut_after_the_timeout() -> None:
    driver = Driver()
    driver.restored_key_session()
    driver.do(driver.core.close)
    outputs = driver.tick()
    assert Abort(1, 1001, "") in outputs and driver.core.finished


def test_logout_keeps_the_orders() -> None:
    driver = Driver(cancel_on_disconnect=True)
    driver.restored_key_session()
    driver.do(driver.core.close, logout=True)
    assert driver.sent(1)[-1]["method"] == "private/logout"
    assert driver.sent(1)[-1]["params"] == {"invalidate_token": True}
    driver.lost(1, received=(1000, "logout"))
    lost = driver.events(Disconnected)[0]
    assert lost.cancel_on_disconnect_may_have_fired is False and "logout" in lost.reason
    assert driver.core.finished


def test_logout_with_a_fixed_token_keeps_it_valid_and_a_silent_server_is_closed() -> None:
    driver = Driver(token_configuration(), heartbeat=None)
    driver.start()
    driver.open(1, fixed_token="core-token")
    driver.answer(1)
    driver.answer(1, {"scope": "connection", "enabled": True})
    driver.do(driver.core.close, logout=True)
    assert driver.sent(1)[-1]["params"] == {"access_token": "core-token", "invalidate_token": False}
    assert Close(1, 1000, "") in driver.advance(2.0)  # the server did not close it after 2 s


def test_close_while_restoring_ends_without_restoring() -> None:
    driver = Driver()
    driver.start()
    driver.open(1)
    driver.do(driver.core.close)
    driver.answer(1)  # hello's answer, after the close
    driver.lost(1, sent=(1000, ""), received=(1000, ""))
    assert driver.events(SessionRestored) == [] and driver.core.finished
    assert driver.events(Closed)[0].failed is False


def test_close_while_a_connection_is_opening() -> None:
    driver = Driver()
    driver.start()
    assert Open(1) in driver.tick()
    driver.do(driver.core.close)
    assert not driver.core.finished
    assert driver.do(driver.core.opened, 1)[0] == Abort(1, 1000, "")
    assert driver.core.finished and driver.kinds() == ["Closed"]


# -- the watchdog -----------------------------------------------------------------------------


def test_the_watchdog_closes_without_logging_out_and_waits_for_a_check_in() -> None:
    driver = Driver(cancel_on_disconnect=True, watchdog=2.0)
    driver.restored_key_session()
    call, _ = driver.call("public/test")
    started = driver.now
    driver.do(driver.core.check_in)
    assert driver.core.watchdog_deadline() == started + 2.0
    assert driver.core.next_deadline() == started + 2.0
    outputs = driver.advance(2.05)
    assert outputs[0] == Abort(1, 1000, "watchdog expired")
    assert "private/logout" not in driver.methods(1)
    expired = driver.events(WatchdogExpired)[0]
    assert expired.connection == 1
    assert expired.since_check_in == pytest.approx(2.05)
    assert expired.late == pytest.approx(0.05)
    lost = driver.events(Disconnected)[0]
    assert lost.cancel_on_disconnect_may_have_fired is True and "watchdog" in lost.reason
    assert driver.kinds()[-2:] == ["WatchdogExpired", "Disconnected"]
    assert completed(outputs) == [call] and "watchdog" in str(call.error)
    assert driver.core.state is State.WATCHDOG_EXPIRED
    # No reconnect: nothing is scheduled, however long.
    assert driver.core.next_deadline() is None
    assert driver.advance(3600) == []
    with pytest.raises(ApiConnectionError, match=r"watchdog expired.*call check_in"):
        driver.call("public/test")
    # The next check-in opens a new connection, restored as usual.
    assert WAKE in driver.do(driver.core.check_in)
    driver.open(2)
    driver.answer(2)
    driver.answer(2, grant())
    driver.answer(2)
    driver.answer(2)
    assert driver.core.state is State.READY
    assert driver.events(SessionRestored)[-1].connection == 2


def test_check_ins_in_time_never_fire_the_watchdog() -> None:
    driver = Driver(watchdog=1.0, heartbeat=None)
    driver.restored_key_session()
    for _ in range(1000):
        driver.now += 0.1
        driver.do(driver.core.check_in)
        driver.core.timer(driver.now)
        assert driver.core.watchdog_check(driver.now) is False
    assert driver.events(WatchdogExpired) == [] and driver.core.state is State.READY


def test_the_watchdog_fired_by_a_driver_that_cut_first() -> None:
    """A driver whose timer cannot run (a blocked event loop) cuts the socket from a thread of
    its own and tells the core later: the firing time counts, not a check-in after it."""
    driver = Driver(watchdog=1.0)
    driver.restored_key_session()
    deadline = driver.core.watchdog_deadline()
    assert deadline is not None
    fired_at = deadline + 0.01
    driver.now += 1.5
    driver.do(driver.core.check_in)  # came after the cut, before the core was told
    assert driver.core.watchdog_check(driver.now, fired=(fired_at, deadline)) is True
    driver.collect()
    assert driver.events(WatchdogExpired)[0].late == pytest.approx(0.01)


def test_the_watchdog_while_reconnecting_stops_the_reconnect() -> None:
    driver = Driver(watchdog=1.0)
    driver.restored_key_session()
    driver.do(driver.core.check_in)
    driver.lost(1)
    outputs = driver.advance(0.5)  # the reconnect's 0.75 s wait is not over
    driver.now += 0.5
    assert driver.core.watchdog_check(driver.now) is True
    driver.collect()
    assert driver.events(WatchdogExpired)[0].connection is None
    assert driver.core.next_deadline() is None and outputs == []


def test_the_watchdog_counts_from_the_first_restore() -> None:
    """Opening the session is not the program's loop: a first connection slower than the
    watchdog's period neither fires it nor leaves the session stuck short of READY (a driver
    waiting for READY waited for ever); the period starts at the first SessionRestored."""
    driver = Driver(watchdog=1.0)
    driver.start()
    assert driver.core.watchdog_deadline() is None
    driver.open(1)
    driver.advance(3.0)  # the hello takes three periods to come back
    assert driver.core.watchdog_check(driver.now) is False
    assert driver.events(WatchdogExpired) == [] and driver.core.state is State.RESTORING
    driver.answer(1)
    driver.answer(1, grant())
    driver.answer(1)
    driver.answer(1, {"scope": "connection", "enabled": False})
    assert driver.core.state is State.READY
    assert driver.core.watchdog_deadline() == driver.now + 1.0
    assert driver.core.next_deadline() == driver.now + 1.0  # the driver's timer learns it
    driver.advance(1.01)
    assert driver.events(WatchdogExpired)[0].since_check_in == pytest.approx(1.01)


def test_the_watchdog_is_off_by_default() -> None:
    driver = Driver()
    driver.restored_key_session()
    assert driver.core.watchdog_deadline() is None
    assert driver.advance(19.0) == []


def test_the_restore_takes_its_turns_under_the_rate_limit() -> None:
    clock = [0.0]
    configuration = key_configuration(
        rate_limit=RateLimit(per_second=1.0, burst=1, margin=0.0, clock=lambda: clock[0])
    )
    driver = Driver(configuration, heartbeat=None)
    driver.start()
    driver.open(1)
    assert driver.methods(1) == ["public/hello"]  # the burst's one request
    driver.answer(1)
    assert driver.methods(1) == ["public/hello"]  # the pool is empty: the grant waits 1 s
    assert driver.core.next_deadline() == driver.now + 1.0
    clock[0] += 1.0
    driver.tick()
    assert driver.methods(1) == ["public/hello", "public/auth"]


def test_a_driver_that_fails_while_opening_ends_the_session_clearly() -> None:
    """The driver's supervisor died with a connection half opened: nobody will report on it, so
    the core forgets it and ends the session (Closed, FAILED) instead of waiting for it."""
    driver = Driver()
    driver.restored_key_session()
    driver.lost(1)
    assert Open(2) in driver.tick()
    driver.do(driver.core.fail, "the session's supervisor failed (RuntimeError)")
    assert driver.core.state is State.FAILED and driver.core.finished
    assert driver.events(Closed)[0].reason == "the session's supervisor failed (RuntimeError)"
    with pytest.raises(ApiConnectionError, match="gave up"):
        driver.call("public/test")
