"""Retries by Deribit's rules, and timeouts, against the simulator's faults over real sockets.

Each fault is checked twice: transient (fewer faults than attempts), it ends in success after
retries; persistent (a fault for every attempt), it ends in the typed error within a bounded time.
The simulator records every request, faulted ones included, so ``len(simulator.requests)`` is
the number of attempts.
"""

from __future__ import annotations

import inspect
import math
import time
from typing import Any

import pytest
from conftest import FAST_RETRIES
from urllib3.util.retry import Retry

from openapi_client import (
    ApiClient,
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiTimeoutError,
    ApiTransportError,
    ApiTypeError,
    ApiValueError,
    BadRequestException,
    Configuration,
    RetryPolicy,
    ServiceException,
    SessionManagementApi,
    TooManyRequestsException,
)
from openapi_client.configuration import DEFAULT_REQUEST_TIMEOUT
from openapi_client.exceptions import RETRIABLE_ERROR_CODES
from openapi_client.retry import DEFAULT_RETRY_POLICY, RETRIABLE_STATUSES
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(20)

#: Deribit's transient JSON-RPC codes (FACTS.md: "retry? yes").
RETRIABLE_CODES = (10028, 10040, 10041, 10047, 10066, 11051, 11094, 13028, 13888)
#: Codes that say the request itself is wrong: retrying cannot help.
FINAL_CODES = (
    (13009, "unauthorized"),
    (11029, "invalid_arguments"),
    (-32602, "Invalid params"),
    (13004, "invalid_credentials"),
)
ATTEMPTS = FAST_RETRIES.total + 1
#: A read timeout short enough to cut a hung request off quickly, and long enough that an answer
#: on a busy machine is never mistaken for a hang (it applies to every attempt of the call).
HANG_TIMEOUT = 0.5
#: Seconds within which something prompt must have happened: "it did not hang", not a speed.
PROMPT = 5.0
#: How long a persistent fault may take to surface: attempts, capped backoff and slack.
BOUND = ATTEMPTS * (HANG_TIMEOUT + FAST_RETRIES.backoff_max) + PROMPT

Fault = tuple[str, dict[str, Any]]


def rpc(code: int, status: int = 400) -> Fault:
    return "rpc_error", {"code": code, "message": "simulated", "status": status}


#: Every fault kind, with the typed error it ends in when it persists.
TRANSIENT_FAULTS: list[Any] = [
    ("reset", ("reset", {}), ApiConnectionError),
    # A reset after part of the body: reported as a reset or a short body, as the platform has it.
    ("reset_mid_body", ("reset_mid_body", {}), (ApiConnectionError, ApiProtocolError)),
    pytest.param("hang", ("hang", {"seconds": 10}), ApiTimeoutError, marks=pytest.mark.timing),
    ("html_503", ("html_503", {}), ServiceException),
    ("429", ("429", {"retry_after": 0}), TooManyRequestsException),
    ("truncated", ("truncated", {}), ApiProtocolError),
    *[(f"code {code} with HTTP 400", rpc(code), BadRequestException) for code in RETRIABLE_CODES],
    *[(f"code {code} with HTTP 200", rpc(code, 200), ApiException) for code in (10028, 13888)],
    *[(f"HTTP {status}", rpc(11094, status), ServiceException) for status in (500, 502, 503, 504)],
]


def attempts(simulator: DeribitSimulator) -> int:
    return len(simulator.requests)


def call(api: SessionManagementApi, fault: Fault) -> dict[str, Any]:
    options: dict[str, Any] = {"_request_timeout": HANG_TIMEOUT} if fault[0] == "hang" else {}
    result: dict[str, Any] = api.public_set_heartbeat_get(30, **options)
    return result


def failure(api: SessionManagementApi, fault: Fault = ("", {})) -> ApiException:
    with pytest.raises(ApiException) as caught:
        call(api, fault)
    return caught.value


# -- every fault kind: transient ends in success, persistent in the typed error ----------------


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize(("name", "fault", "error_type"), TRANSIENT_FAULTS)
def test_transient_fault_ends_in_success_after_retries(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    name: str,
    fault: Fault,
    error_type: Any,
    count: int,
) -> None:
    simulator.inject(fault[0], count, **fault[1])
    assert call(api, fault)["result"] == "ok"
    assert attempts(simulator) == count + 1
    assert simulator.heartbeat_interval == 30.0


@pytest.mark.parametrize(("name", "fault", "error_type"), TRANSIENT_FAULTS)
def test_persistent_fault_ends_in_the_typed_error(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    name: str,
    fault: Fault,
    error_type: Any,
) -> None:
    simulator.inject(fault[0], ATTEMPTS + 2, **fault[1])
    started = time.monotonic()
    error = failure(api, fault)
    assert time.monotonic() - started < BOUND
    assert isinstance(error, error_type)
    assert attempts(simulator) == FAST_RETRIES.total + 1
    if fault[0] == "rpc_error":
        assert error.error_code == fault[1]["code"]
        assert error.status == fault[1]["status"]
    if isinstance(error, ApiTransportError):
        assert error.status == 0
        assert error.__cause__ is not None


@pytest.mark.parametrize(("code", "message"), FINAL_CODES)
def test_final_error_code_is_not_retried(
    api: SessionManagementApi, simulator: DeribitSimulator, code: int, message: str
) -> None:
    simulator.inject("rpc_error", code=code, message=message)
    error = failure(api)
    assert type(error) is BadRequestException
    assert (error.error_code, error.status) == (code, 400)
    assert attempts(simulator) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_final_code_decides_over_a_retriable_status(
    api: SessionManagementApi, simulator: DeribitSimulator, status: int
) -> None:
    simulator.inject("rpc_error", code=11029, message="invalid_arguments", status=status)
    error = failure(api)
    assert (error.status, error.error_code) == (status, 11029)
    assert attempts(simulator) == 1


def test_non_json_success_is_not_retried(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("non_json", 2)
    error = failure(api)
    assert type(error) is ApiException
    assert error.status == 200
    assert "not JSON" in str(error)
    assert attempts(simulator) == 1


def test_last_error_surfaces_when_attempts_run_out(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("reset")
    simulator.inject("html_503")
    simulator.inject("truncated")
    simulator.inject("rpc_error", code=13028, message="temporarily_unavailable")
    error = failure(api)
    assert type(error) is BadRequestException
    assert error.error_code == 13028
    assert attempts(simulator) == 4


# -- how many attempts: Configuration.retries ---------------------------------------------------


@pytest.mark.parametrize(
    ("retries", "expected"),
    [
        (0, 1),
        (False, 1),
        (2, 3),
        (Retry(total=1), 2),
        (Retry(total=None, connect=2, read=1), 3),
        (Retry(total=False), 1),
        (RetryPolicy(total=5, backoff_factor=0.0), 6),
    ],
    ids=["0", "False", "2", "Retry(total=1)", "Retry(connect=2)", "Retry(False)", "policy"],
)
def test_retries_setting_bounds_the_attempts(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    configuration: Configuration,
    retries: Any,
    expected: int,
) -> None:
    configuration.retries = retries
    waits = waits_of(api)  # counted, not taken
    simulator.inject("reset", 10)
    with pytest.raises(ApiConnectionError):
        api.public_set_heartbeat_get(30)
    assert attempts(simulator) == expected
    assert len(waits) == expected - 1


def test_retries_zero_means_one_attempt_for_every_kind(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.retries = 0
    for kind, params in [("html_503", {}), ("429", {"retry_after": 0}), *[rpc(10040)]]:
        simulator.clear_requests()
        simulator.inject(kind, **params)
        failure(api)
        assert attempts(simulator) == 1, kind
    assert api.public_set_heartbeat_get(30)["result"] == "ok"


def test_default_policy_retries_with_its_backoff(simulator: DeribitSimulator) -> None:
    configuration = Configuration(host=simulator.url, request_timeout=(2.0, 2.0))
    assert configuration.retries is None
    simulator.inject("reset")
    with ApiClient(configuration) as client:
        waits: list[float] = []
        client.sleep = waits.append
        assert SessionManagementApi(client).public_set_heartbeat_get(30)["result"] == "ok"
    assert len(simulator.requests) == 2
    # 0.25 s less up to half at random (the four-attempt bound is checked on the policy below).
    (wait,) = waits
    assert 0.125 <= wait <= 0.25


@pytest.mark.timing
def test_urllib3_retry_carries_its_backoff(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.retries = Retry(total=2, backoff_factor=0.1, status_forcelist=[502])
    simulator.inject("reset", 2)
    started = time.monotonic()
    assert api.public_set_heartbeat_get(30)["result"] == "ok"
    times = [request.time for request in simulator.requests]
    assert len(times) == 3
    # 0.1 s then 0.2 s, less up to half at random.
    assert times[1] - times[0] >= 0.045
    assert times[2] - times[1] >= 0.095
    assert time.monotonic() - started < PROMPT


@pytest.mark.parametrize(
    ("setting", "error_type"),
    [(-1, ApiValueError), (1.5, ApiTypeError), ("3", ApiTypeError), (object(), ApiTypeError)],
)
def test_bad_retries_setting_is_refused_when_set(
    api: SessionManagementApi,
    simulator: DeribitSimulator,
    configuration: Configuration,
    setting: Any,
    error_type: type[Exception],
) -> None:
    before = configuration.retries
    with pytest.raises(error_type, match="retries"):
        configuration.retries = setting
    assert configuration.retries is before, "the refused value was not kept"
    with pytest.raises(error_type, match="retries"):
        Configuration(host=simulator.url, retries=setting)
    assert api.public_set_heartbeat_get(30)["result"] == "ok"  # the client is unharmed
    assert attempts(simulator) == 1


# -- Retry-After --------------------------------------------------------------------------------


def waits_of(api: SessionManagementApi) -> list[float]:
    """Record the client's waits between attempts instead of taking them."""
    waits: list[float] = []
    api.api_client.sleep = waits.append
    return waits


def test_retry_after_is_honoured(api: SessionManagementApi, simulator: DeribitSimulator) -> None:
    waits = waits_of(api)
    simulator.inject("429", retry_after=1)
    assert api.public_set_heartbeat_get(30)["result"] == "ok"
    assert len(simulator.requests) == 2
    # FAST_RETRIES alone would wait at most 0.05 s.
    assert waits == [1.0]


def test_retry_after_as_an_http_date_is_honoured(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    from email.utils import formatdate

    waits = waits_of(api)
    when = math.ceil(time.time()) + 20  # an HTTP date has whole seconds
    simulator.inject("429", retry_after=formatdate(when, usegmt=True))
    assert api.public_set_heartbeat_get(30)["result"] == "ok"
    assert len(simulator.requests) == 2
    (wait,) = waits
    # 20 to 21 s from when the date was made, less the time the call took (a busy machine's
    # seconds); FAST_RETRIES alone would wait at most 0.05 s.
    assert 10.0 <= wait <= 21.0


@pytest.mark.timing
def test_retry_waits_really_sleep_by_default(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("reset")
    configuration = api.api_client.configuration
    configuration.retries = RetryPolicy(total=1, backoff_factor=0.3, jitter=0)
    started = time.monotonic()
    assert api.public_set_heartbeat_get(30)["result"] == "ok"
    assert 0.3 <= time.monotonic() - started < PROMPT


def test_retry_after_beyond_the_maximum_is_raised_at_once(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    waits = waits_of(api)
    simulator.inject("429", retry_after=int(FAST_RETRIES.retry_after_max) + 1)
    error = failure(api)
    assert waits == []
    assert isinstance(error, TooManyRequestsException)
    assert error.retry_after == FAST_RETRIES.retry_after_max + 1
    assert error.error_code == 10028
    assert attempts(simulator) == 1


def test_retry_after_ignored_when_told_to(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.retries = RetryPolicy(total=1, backoff_factor=0.01, respect_retry_after=False)
    waits = waits_of(api)
    simulator.inject("429", retry_after=120)
    assert api.public_set_heartbeat_get(30)["result"] == "ok"
    assert attempts(simulator) == 2
    (wait,) = waits
    assert wait <= 0.01  # the policy's own backoff, not the 120 s asked for


# -- RetryPolicy: the decision and the wait, as units --------------------------------------------


def error_with(status: int, code: int | None = None, retry_after: str | None = None) -> Any:
    body = None if code is None else f'{{"error": {{"code": {code}, "message": "m"}}}}'
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return ApiException(status, "reason", body=body, headers=headers)


def test_default_policy_values() -> None:
    policy = RetryPolicy.from_setting(None)
    assert policy is DEFAULT_RETRY_POLICY
    assert (policy.total, policy.max_attempts) == (3, 4)
    assert (policy.backoff_factor, policy.backoff_max, policy.jitter) == (0.25, 8.0, 0.5)
    assert (policy.respect_retry_after, policy.retry_after_max) == (True, 30.0)
    assert policy.statuses == RETRIABLE_STATUSES == {429, 500, 502, 503, 504}
    assert policy.error_codes == RETRIABLE_ERROR_CODES == set(RETRIABLE_CODES)
    assert Configuration().request_timeout == DEFAULT_REQUEST_TIMEOUT == (5.0, 10.0)


def test_default_policy_values_are_documented() -> None:
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "Resilience.md").read_text("utf-8")
    defaults = text.split("## Defaults", 1)[1].split("\n## ", 1)[0]
    for documented in (
        "| 5 s |",
        "| 10 s |",
        "3 (so at most 4 attempts)",
        "| 0.25 s",
        "capped at 8 s, minus up to 50% at random",
        "up to 30 s",
        "off (`None`)",
    ):
        assert documented in defaults


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ApiConnectionError("reset"), True),
        (ApiTimeoutError("read timeout"), True),
        (ApiProtocolError("truncated"), True),
        *[(error_with(status), True) for status in (429, 500, 502, 503, 504)],
        *[(error_with(400, code), True) for code in RETRIABLE_CODES],
        *[(error_with(400, code), False) for code, _ in FINAL_CODES],
        (error_with(502, 13009), False),
        (error_with(400), False),
        (error_with(404), False),
        (error_with(302), False),
        (error_with(200), False),
    ],
)
def test_should_retry(error: ApiException, retried: bool) -> None:
    policy = RetryPolicy(total=2)
    assert policy.should_retry(error, 1) is retried
    assert policy.should_retry(error, 2) is retried
    assert policy.should_retry(error, 3) is False  # attempts run out
    assert RetryPolicy(total=0).should_retry(error, 1) is False


def test_ssl_error_is_not_retried() -> None:
    from openapi_client import ApiSSLError

    assert RetryPolicy().should_retry(ApiSSLError("certificate verify failed"), 1) is False


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(total=10, backoff_factor=0.25, backoff_max=8.0, jitter=0.5)
    error = error_with(503)
    waits = [policy.delay(error, n, rand=lambda: 0.0) for n in range(1, 9)]
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    # Many attempts do not overflow the exponent.
    assert policy.delay(error, 5000, rand=lambda: 0.0) == 8.0


def test_backoff_is_jittered_down_by_at_most_the_jitter_share() -> None:
    policy = RetryPolicy(backoff_factor=1.0, backoff_max=8.0, jitter=0.5)
    error = error_with(503)
    assert policy.delay(error, 2, rand=lambda: 0.5) == pytest.approx(1.5)
    assert policy.delay(error, 2, rand=lambda: 0.999999) == pytest.approx(1.0, abs=1e-5)
    assert policy.delay(error, 4, rand=lambda: 0.25) == pytest.approx(8.0 * 0.875)
    no_jitter = RetryPolicy(backoff_factor=1.0, jitter=0.0)
    assert no_jitter.delay(error, 3, rand=lambda: 0.9) == 4.0
    waits = {policy.delay(error, 3) for _ in range(50)}
    assert len(waits) > 1
    assert all(2.0 <= wait <= 4.0 for wait in waits if wait is not None)


def test_delay_honours_retry_after_up_to_the_maximum() -> None:
    policy = RetryPolicy(backoff_factor=0.25, retry_after_max=30.0)
    fixed = lambda: 0.0  # noqa: E731
    assert policy.delay(error_with(429, retry_after="3"), 1, rand=fixed) == 3.0
    assert policy.delay(error_with(429, retry_after="0"), 1, rand=fixed) == 0.25
    assert policy.delay(error_with(429, retry_after="30"), 1, rand=fixed) == 30.0
    assert policy.delay(error_with(429, retry_after="31"), 1, rand=fixed) is None
    assert policy.delay(error_with(429, retry_after="soon"), 1, rand=fixed) == 0.25
    ignoring = RetryPolicy(backoff_factor=0.25, respect_retry_after=False)
    assert ignoring.delay(error_with(429, retry_after="31"), 1, rand=fixed) == 0.25


def test_from_setting() -> None:
    assert RetryPolicy.from_setting(0).total == 0
    assert RetryPolicy.from_setting(7).total == 7
    assert RetryPolicy.from_setting(True).total == 3
    assert RetryPolicy.from_setting(False).total == 0
    assert RetryPolicy.from_setting(FAST_RETRIES) is FAST_RETRIES
    # urllib3 2.x takes backoff_max per Retry; 1.26 has only the class-wide cap.
    has_backoff_max = "backoff_max" in inspect.signature(Retry.__init__).parameters
    cap = {"backoff_max": 4} if has_backoff_max else {}
    converted = RetryPolicy.from_setting(
        Retry(total=2, backoff_factor=0.5, status_forcelist=[502, 503], **cap)
    )
    expected_cap = 4.0 if has_backoff_max else float(Retry.DEFAULT_BACKOFF_MAX)
    assert (converted.total, converted.backoff_factor, converted.backoff_max) == (
        2,
        0.5,
        expected_cap,
    )
    assert converted.statuses == {502, 503}
    assert converted.error_codes == RETRIABLE_ERROR_CODES
    assert RetryPolicy.from_setting(Retry(total=1)).statuses == RETRIABLE_STATUSES
    assert RetryPolicy.from_setting(Retry(total=None)).total == 3
    assert (
        RetryPolicy.from_setting(Retry(3, respect_retry_after_header=False)).respect_retry_after
        is False
    )


@pytest.mark.parametrize(
    ("settings", "error_type"),
    [
        ({"total": -1}, ApiValueError),
        ({"total": 1.0}, ApiTypeError),
        ({"total": True}, ApiTypeError),
        ({"backoff_factor": -0.1}, ApiValueError),
        ({"backoff_max": float("inf")}, ApiValueError),
        ({"backoff_factor": "1"}, ApiTypeError),
        ({"jitter": 1.5}, ApiValueError),
        ({"jitter": -0.1}, ApiValueError),
        ({"retry_after_max": float("nan")}, ApiValueError),
        ({"statuses": 503}, ApiTypeError),
    ],
)
def test_policy_refuses_bad_values(settings: dict[str, Any], error_type: type[Exception]) -> None:
    with pytest.raises(error_type):
        RetryPolicy(**settings)


def test_policy_is_immutable_and_hashable() -> None:
    policy = RetryPolicy(statuses=[502, 503], error_codes={10028})  # type: ignore[arg-type]
    assert policy.statuses == frozenset({502, 503})
    assert hash(policy) == hash(
        RetryPolicy(statuses=frozenset({503, 502}), error_codes=frozenset({10028}))
    )
    with pytest.raises(AttributeError):
        policy.total = 5  # type: ignore[misc]


# -- timeouts -----------------------------------------------------------------------------------


def test_request_timeout_default_is_finite() -> None:
    connect, read = Configuration().request_timeout  # type: ignore[misc]
    assert 0 < connect < float("inf") and 0 < read < float("inf")


@pytest.mark.parametrize("value", [None, 0, -1, float("inf"), float("nan"), (1.0, None)])
def test_request_timeout_cannot_be_unbounded(value: Any) -> None:
    with pytest.raises((ApiTypeError, ApiValueError)):
        Configuration(request_timeout=value)


@pytest.mark.timing
def test_hung_server_is_cut_off_by_the_configured_timeout(
    api: SessionManagementApi, simulator: DeribitSimulator, configuration: Configuration
) -> None:
    configuration.request_timeout = 0.5
    configuration.retries = 0
    simulator.inject("hang", seconds=30)
    started = time.monotonic()
    error = failure(api)
    elapsed = time.monotonic() - started
    assert type(error) is ApiTimeoutError
    assert error.status == 0
    assert error.__cause__ is not None
    assert "0.5 s" in str(error)
    assert 0.5 <= elapsed < PROMPT
    assert attempts(simulator) == 1


@pytest.mark.timing
def test_slow_answer_within_the_timeout_is_not_a_failure(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("delay", seconds=0.1)
    # 0.1 s late, within a timeout 30 times longer: a busy machine does not make it a failure.
    assert api.public_set_heartbeat_get(30, _request_timeout=3.0)["result"] == "ok"
    assert attempts(simulator) == 1


@pytest.mark.timing
def test_slow_answer_beyond_the_timeout_is_retried(
    api: SessionManagementApi, simulator: DeribitSimulator
) -> None:
    simulator.inject("delay", seconds=10.0)  # the simulator ends it when the client gives up
    started = time.monotonic()
    assert api.public_set_heartbeat_get(30, _request_timeout=HANG_TIMEOUT)["result"] == "ok"
    assert time.monotonic() - started < PROMPT  # not the 10 s the first answer would take
    assert attempts(simulator) == 2
