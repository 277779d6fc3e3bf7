"""The call plan (``openapi_client.calls``): a call's decisions, fed by hand on a manual clock.

No socket, no thread, no sleep: each test tells the plan what happened to an attempt and checks
what it answers. The drivers that loop on it are tested by the rest of the suite (the synchronous
one, through both clients) and by ``test_async_driver.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from openapi_client import RateLimit, RetryPolicy
from openapi_client.calls import (
    BaseAttempt,
    CallPlan,
    Done,
    Fail,
    Reauthenticate,
    Reply,
    Send,
    Wait,
    read_options,
)
from openapi_client.deadline import Deadline
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import (
    ApiCallTimeoutError,
    ApiConnectionError,
    ApiException,
    ApiTimeoutError,
    ApiTypeError,
    BadRequestException,
    ServiceException,
    TooManyRequestsException,
)
from openapi_client.testing import ManualClock

PUBLIC = Endpoint("public_thing_get", "/public/thing", private=False)
PRIVATE = Endpoint("private_thing_get", "/private/thing", private=True)

#: Waits that are exact: backoff_factor doubling from 1 s, no jitter.
POLICY = RetryPolicy(total=3, backoff_factor=1.0, backoff_max=8.0, jitter=0.0)
CREDENTIAL = "Bearer old-token"


def deribit_error(code: int, status: int = 400, **settings: Any) -> ApiException:
    envelope = {"error": {"code": code, "message": f"code {code}"}}
    kind = {400: BadRequestException, 429: TooManyRequestsException}.get(status, ApiException)
    return kind(status, "refused", data=envelope, **settings)


UNAUTHORIZED = 13009
TOO_MANY_REQUESTS = 10028
INVALID_CREDENTIALS = 13004
FORBIDDEN = 13021


class Transport:
    """The plan's view of a transport (``Refusals``): what it was asked, and its answers."""

    def __init__(self, explained: ApiException | None = None, retry: bool = True) -> None:
        self.explained = explained
        self.retry = retry
        self.asked: list[tuple[str, ApiException]] = []

    def explain_refusal(self, error: ApiException, credential: str) -> ApiException:
        self.asked.append(("explain_refusal", error))
        return self.explained or error

    def may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        self.asked.append(("may_retry", error))
        return self.retry


def plan_for(
    clock: ManualClock,
    endpoint: Endpoint = PUBLIC,
    call_timeout: float = 60.0,
    attempt_timeout: float = 10.0,
    policy: RetryPolicy = POLICY,
    transport: Transport | None = None,
    data_only: bool = True,
) -> CallPlan:
    deadline = Deadline(clock() + call_timeout, "call_timeout", call_timeout)
    return CallPlan(
        endpoint,
        deadline,
        attempt_timeout,
        policy,
        transport or Transport(),
        data_only,
        clock,
    )


# -- attempts and their deadlines ---------------------------------------------------------------


def test_the_first_attempt_is_held_to_attempt_timeout_within_the_call() -> None:
    clock = ManualClock(100.0)
    assert plan_for(clock).start() == Send(1, Deadline(110.0, "attempt_timeout", 10.0))
    # A call with less time than an attempt would take: the call's deadline binds.
    short = plan_for(clock, call_timeout=4.0)
    assert short.start() == Send(1, Deadline(104.0, "call_timeout", 4.0))


def test_a_call_out_of_time_before_any_attempt_fails_at_once() -> None:
    clock = ManualClock()
    plan = plan_for(clock, call_timeout=1.0)
    clock.advance(1.0)
    action = plan.start()
    assert isinstance(action, Fail) and isinstance(action.error, ApiCallTimeoutError)
    assert str(action.error) == "public_thing_get: the call_timeout (1 s) ran out"
    assert action.error.__cause__ is None
    assert plan.attempts == 0


@pytest.mark.parametrize(
    ("reply", "data_only", "result"),
    [
        (Reply({"result": "ok"}, 200, {"X": "1"}), True, {"result": "ok"}),
        (Reply({"result": "ok"}, 200, {"X": "1"}), False, ({"result": "ok"}, 200, {"X": "1"})),
        ("an undecoded answer", True, "an undecoded answer"),
        ("an undecoded answer", False, "an undecoded answer"),
    ],
)
def test_a_success_is_shaped_as_the_caller_asked(reply: Any, data_only: bool, result: Any) -> None:
    plan = plan_for(ManualClock(), data_only=data_only)
    plan.start()
    assert plan.succeeded(reply) == Done(result)


# -- retries -----------------------------------------------------------------------------------


def test_transient_failures_wait_with_backoff_then_try_again_until_the_policy_says_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(0.0)
    transport = Transport()
    plan = plan_for(clock, transport=transport)
    actions: list[Any] = [plan.start()]
    errors = [ApiConnectionError(f"reset {n}") for n in range(4)]
    with caplog.at_level(logging.INFO, logger="openapi_client.api_client"):
        for error in errors:
            action = plan.failed(error, None)
            actions.append(action)
            if isinstance(action, Wait):
                clock.advance(action.seconds)
                actions.append(plan.waited())
    assert actions == [
        Send(1, Deadline(10.0, "attempt_timeout", 10.0)),
        Wait(1.0),
        Send(2, Deadline(11.0, "attempt_timeout", 10.0)),
        Wait(2.0),
        Send(3, Deadline(13.0, "attempt_timeout", 10.0)),
        Wait(4.0),
        Send(4, Deadline(17.0, "attempt_timeout", 10.0)),
        Fail(errors[3]),  # 3 retries: the fourth failure is the call's
    ]
    assert errors[3].__cause__ is None  # raised as it came
    assert transport.asked == [("may_retry", error) for error in errors[:3]]
    assert caplog.records[0].getMessage() == (
        "retrying public_thing_get after ApiConnectionError(status=0, reason='reset 0') "
        "(attempt 2 of 4) in 1.00 s"
    )


def test_a_failure_that_is_not_transient_ends_the_call_as_it_came() -> None:
    plan = plan_for(ManualClock())
    plan.start()
    refused = deribit_error(11044)  # not_open_order: the request itself is wrong
    assert plan.failed(refused, None) == Fail(refused)


def test_the_transport_may_forbid_a_retry() -> None:
    transport = Transport(retry=False)
    plan = plan_for(ManualClock(), transport=transport)
    plan.start()
    lost = ApiConnectionError("lost with the connection")
    assert plan.failed(lost, None) == Fail(lost)
    assert transport.asked == [("may_retry", lost)]


def test_retry_after_beyond_the_policy_maximum_ends_the_call() -> None:
    plan = plan_for(ManualClock())
    plan.start()
    busy = ServiceException(503, "busy", headers={"Retry-After": "600"})
    assert plan.failed(busy, None) == Fail(busy)


def test_retry_after_is_waited_when_longer_than_the_backoff() -> None:
    plan = plan_for(ManualClock())
    plan.start()
    throttled = deribit_error(TOO_MANY_REQUESTS, 429, headers={"Retry-After": "3"})
    assert plan.failed(throttled, None) == Wait(3.0)


def test_a_wait_that_would_outlast_the_call_ends_it_naming_the_last_failure() -> None:
    clock = ManualClock()
    plan = plan_for(clock, call_timeout=1.5)
    plan.start()
    clock.advance(0.6)
    reset = ApiConnectionError("connection reset by peer\nmore detail")
    action = plan.failed(reset, None)  # the 1 s backoff would end past the 0.9 s left
    assert isinstance(action, Fail) and isinstance(action.error, ApiCallTimeoutError)
    assert str(action.error) == (
        "public_thing_get: the call_timeout (1.5 s) ran out after 1 attempt; the last failed "
        "with: connection reset by peer"
    )
    assert action.error.__cause__ is reset


def test_an_attempt_timing_out_at_the_call_deadline_ends_the_call() -> None:
    clock = ManualClock()
    plan = plan_for(clock, call_timeout=5.0)
    plan.start()
    plan.failed(ApiConnectionError("refused"), None)
    clock.advance(1.0)
    plan.waited()
    clock.advance(4.0)  # the second attempt ran to the call's deadline
    slow = ApiTimeoutError("no answer")
    action = plan.failed(slow, None)
    assert isinstance(action, Fail) and isinstance(action.error, ApiCallTimeoutError)
    assert "ran out after 2 attempts; the last failed with: " in str(action.error)
    assert action.error.__cause__ is slow


def test_the_call_deadline_reached_inside_an_attempt_is_final() -> None:
    plan = plan_for(ManualClock())
    plan.start()
    reached = ApiCallTimeoutError("the rate limit would delay this request")
    assert plan.failed(reached, None) == Fail(reached)


# -- refused credentials -----------------------------------------------------------------------


def test_a_refused_credential_is_renewed_once_and_the_attempt_made_again_uncounted() -> None:
    clock = ManualClock(0.0)
    plan = plan_for(clock, endpoint=PRIVATE, policy=RetryPolicy(total=1, jitter=0.0))
    assert plan.start().number == 1  # type: ignore[union-attr]
    refused = deribit_error(UNAUTHORIZED)
    assert plan.failed(refused, CREDENTIAL) == Reauthenticate(CREDENTIAL)
    again = plan.reauthenticated(True)
    assert again == Send(1, Deadline(10.0, "attempt_timeout", 10.0))  # not counted
    # The retry policy still allows its one retry.
    assert plan.failed(ApiConnectionError("reset"), "Bearer new-token") == Wait(0.25)
    assert plan.waited() == Send(2, Deadline(10.0, "attempt_timeout", 10.0))
    # A second refusal is not renewed again: 13009 is not transient.
    refused_again = deribit_error(UNAUTHORIZED)
    assert plan.failed(refused_again, "Bearer new-token") == Fail(refused_again)


def test_http_401_is_a_refused_credential_too() -> None:
    plan = plan_for(ManualClock(), endpoint=PRIVATE)
    plan.start()
    assert plan.failed(ApiException(401, "Unauthorized"), CREDENTIAL) == Reauthenticate(
        CREDENTIAL
    )


@pytest.mark.parametrize(("endpoint", "credential"), [(PUBLIC, CREDENTIAL), (PRIVATE, None)])
def test_only_a_private_call_that_sent_a_credential_reauthenticates(
    endpoint: Endpoint, credential: str | None
) -> None:
    plan = plan_for(ManualClock(), endpoint=endpoint)
    plan.start()
    refused = deribit_error(UNAUTHORIZED)
    assert plan.failed(refused, credential) == Fail(refused)


@pytest.mark.parametrize("code", [UNAUTHORIZED, INVALID_CREDENTIALS])
def test_a_refusal_without_a_cure_is_explained_when_the_transport_can(code: int) -> None:
    skewed = BadRequestException(400, "refused: your clock is 2 minutes behind")
    transport = Transport(explained=skewed)
    plan = plan_for(ManualClock(), endpoint=PRIVATE, transport=transport)
    plan.start()
    refused = deribit_error(code)
    action = plan.failed(refused, CREDENTIAL)
    if code == UNAUTHORIZED:  # renewed first: here no fresh credential can be had
        assert action == Reauthenticate(CREDENTIAL)
        action = plan.reauthenticated(False)
    assert action == Fail(skewed)
    assert skewed.__cause__ is refused
    assert transport.asked == [("explain_refusal", refused)]


def test_a_refusal_the_transport_cannot_explain_ends_the_call_as_it_came() -> None:
    plan = plan_for(ManualClock(), endpoint=PRIVATE)
    plan.start()
    refused = deribit_error(UNAUTHORIZED)
    plan.failed(refused, CREDENTIAL)
    assert plan.reauthenticated(False) == Fail(refused)


def test_a_missing_permission_is_named() -> None:
    endpoint = Endpoint(
        "private_thing_get", "/private/thing", private=True, required_scope="account:read_write"
    )
    plan = plan_for(ManualClock(), endpoint=endpoint)
    plan.start()
    forbidden = deribit_error(FORBIDDEN, 403)
    action = plan.failed(forbidden, CREDENTIAL)
    assert isinstance(action, Fail) and action.error is not forbidden
    assert "private/thing needs the permission account:read_write" in str(action.error)
    assert action.error.__cause__ is forbidden


# -- options -----------------------------------------------------------------------------------


def test_options_are_read_and_unknown_ones_refused() -> None:
    assert read_options(PUBLIC, {}) == (True, True, None, False)
    assert read_options(PUBLIC, {}, http_info=True) == (False, True, None, False)
    assert read_options(
        PUBLIC,
        {"_return_http_data_only": False, "_preload_content": False, "_request_timeout": 3,
         "async_req": True},
    ) == (False, False, 3, True)
    with pytest.raises(ApiTypeError, match="unexpected keyword argument 'timeout' to method "
                                           "public_thing_get"):
        read_options(PUBLIC, {"timeout": 3})


# -- the rate limiter's turn -------------------------------------------------------------------


def attempt_on(clock: ManualClock, limit: RateLimit | None, call_timeout: float = 60.0) -> Any:
    call = Deadline(clock() + call_timeout, "call_timeout", call_timeout)
    return BaseAttempt(Deadline(clock() + 10.0, "attempt_timeout", 10.0), call, limit, 1, clock)


def test_without_a_rate_limit_there_is_no_turn_to_take() -> None:
    attempt = attempt_on(ManualClock(), None)
    assert not attempt.turn_pending
    assert attempt.rate_limit_delay() == 0.0


def test_a_turn_is_taken_once_and_a_wait_moves_the_attempt_deadline() -> None:
    clock = ManualClock(0.0)
    limit = RateLimit(per_second=4, burst=1, margin=0.0, clock=clock)
    first = attempt_on(clock, limit)
    assert first.turn_pending
    assert first.rate_limit_delay() == 0.0
    assert not first.turn_pending
    assert first.rate_limit_delay() == 0.0  # taken already: no second reservation
    second = attempt_on(clock, limit)
    assert second.rate_limit_delay() == pytest.approx(0.25)
    # The wait does not count against attempt_timeout.
    assert second.deadline.at == pytest.approx(10.25)
    assert second.deadline.setting == "attempt_timeout"


def test_a_wait_moves_the_attempt_deadline_no_later_than_the_call_deadline() -> None:
    clock = ManualClock(0.0)
    limit = RateLimit(per_second=1, burst=1, margin=0.0, clock=clock)
    attempt_on(clock, limit).rate_limit_delay()
    attempt = attempt_on(clock, limit, call_timeout=10.5)
    assert attempt.rate_limit_delay() == pytest.approx(1.0)
    assert attempt.deadline.at == pytest.approx(10.5)


def test_a_turn_past_the_call_deadline_is_refused_without_waiting() -> None:
    clock = ManualClock(0.0)
    limit = RateLimit(per_second=1, burst=1, margin=0.0, clock=clock)
    attempt_on(clock, limit).rate_limit_delay()
    attempt = attempt_on(clock, limit, call_timeout=0.5)
    with pytest.raises(ApiCallTimeoutError, match=r"rate limit would delay this request by "
                                                  r"1\.00 s, past the call_timeout \(0\.5 s\)"):
        attempt.rate_limit_delay()
    assert clock() == 0.0
    # The refused turn went back: the next one is one refill away, not two.
    assert limit.reserve() == pytest.approx(1.0)
