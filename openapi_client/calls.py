"""The call plan: what a call does next, decided without I/O.

A call to Deribit is a loop of attempts: send the request under a deadline, and when it fails,
decide whether to re-authenticate, to explain the refusal, to wait and send it again, or to give
up. :class:`CallPlan` makes those decisions and nothing else: it never sleeps, reads a socket or
starts a thread. A driver feeds it what happened and does what it answers::

    plan = CallPlan(endpoint, deadline, attempt_timeout, policy, transport)
    action = plan.start()                  # Send(number=1, deadline=...)
    # the driver sends; the transport raised ApiException 10028 (too many requests):
    action = plan.failed(error, credential)  # Wait(seconds=0.5)
    # the driver waited:
    action = plan.waited()                 # Send(number=2, deadline=...)
    # the second attempt answered:
    action = plan.succeeded(reply)         # Done(result=...)

The answers are :class:`Send` (make attempt N, held to a deadline), :class:`Wait` (seconds before
the next attempt), :class:`Reauthenticate` (drop a refused credential, then say whether a fresh one
can be had), :class:`Done` (the call's result) and :class:`Fail` (the exception to raise, its cause
chained). The synchronous driver (:class:`openapi_client.core.CallDriver`) and the asyncio one
(:class:`openapi_client.aio.calls.AsyncCallDriver`) are the two loops around it.

The rate limiter's turn belongs to an attempt: :meth:`BaseAttempt.rate_limit_delay` reserves it
and returns the seconds to wait, and the transport takes it at the moment it chooses (over HTTP,
once the connection is made and just before the request leaves).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Protocol, Union

from openapi_client.credentials import explain_forbidden
from openapi_client.deadline import Deadline
from openapi_client.exceptions import (
    INVALID_CREDENTIALS,
    ApiCallTimeoutError,
    ApiException,
    ApiTimeoutError,
    ApiTypeError,
    ApiValueError,
)
from openapi_client.redaction import install_filter
from openapi_client.retry import DEFAULT_RETRY_POLICY, RetryPolicy

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.configuration import Configuration
    from openapi_client.endpoint import Endpoint
    from openapi_client.rate_limit import RateLimit

__all__ = [
    "CALL_OPTIONS",
    "Action",
    "BaseAttempt",
    "CallOptions",
    "CallPlan",
    "Done",
    "DriverBase",
    "Fail",
    "Reauthenticate",
    "Refusals",
    "Reply",
    "Send",
    "Wait",
    "read_options",
]

logger = install_filter(logging.getLogger("openapi_client.api_client"))

#: Keyword arguments every API method accepts, as generated clients do.
CALL_OPTIONS = frozenset(
    {"async_req", "_return_http_data_only", "_preload_content", "_request_timeout"}
)

#: Deribit's ``unauthorized``: the credential was refused (expired, revoked, or never valid).
UNAUTHORIZED = 13009


class Reply(NamedTuple):
    """A decoded answer: the envelope, the HTTP status and the response headers."""

    data: Any
    status: int
    headers: Any


class CallOptions(NamedTuple):
    """A call's generated-style keywords, read (see :func:`read_options`).

    :ivar data_only: return the envelope alone, not ``(data, status, headers)``.
    :ivar preload: decode the answer (``_preload_content``); off, the transport's raw answer.
    :ivar timeout: ``_request_timeout`` as given; None for the configured default.
    :ivar async_req: run the call in the background (the synchronous driver's threads).
    """

    data_only: bool
    preload: bool
    timeout: Any
    async_req: bool


def read_options(
    endpoint: Endpoint, options: Mapping[str, Any], http_info: bool = False
) -> CallOptions:
    """The keywords of a call to ``endpoint``; :class:`ApiTypeError` names one it does not take."""
    for name in options:
        if name not in CALL_OPTIONS:
            raise ApiTypeError(
                f"Got an unexpected keyword argument {name!r} to method {endpoint.operation}"
            )
    return CallOptions(
        bool(options.get("_return_http_data_only", not http_info)),
        bool(options.get("_preload_content", True)),
        options.get("_request_timeout"),
        bool(options.get("async_req")),
    )


class Refusals(Protocol):
    """What a transport tells the plan about a failed attempt (both transport protocols have it).

    Both are pure questions: no I/O, no waiting.
    """

    def explain_refusal(self, error: ApiException, credential: str) -> ApiException:
        """``error`` restated when the refusal of ``credential`` has a known cause (a request
        signed by a skewed clock); ``error`` itself otherwise."""

    def may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        """Whether the transport allows another attempt after ``error``, which the retry policy
        calls transient (False e.g. for a call the caller did not declare idempotent)."""


# -- what the plan answers ------------------------------------------------------------------------


class Send(NamedTuple):
    """Make attempt ``number`` (1 for the first), over by ``deadline``."""

    number: int
    deadline: Deadline


class Wait(NamedTuple):
    """Wait ``seconds`` (a retry's backoff), then tell the plan :meth:`CallPlan.waited`."""

    seconds: float


class Reauthenticate(NamedTuple):
    """``credential`` was refused: drop it, then tell the plan :meth:`CallPlan.reauthenticated`
    whether a fresh one can be had."""

    credential: str


class Done(NamedTuple):
    """The call is over: return ``result``."""

    result: Any


class Fail(NamedTuple):
    """The call is over: raise ``error`` (any cause is chained already)."""

    error: BaseException


#: What the plan answers while the call goes on (a success answers :class:`Done`).
Action = Union[Send, Wait, Reauthenticate, Fail]


class CallPlan:
    """The decisions of one call, from the first attempt to its result or its error.

    :param endpoint: what is called (``private`` decides whether a refusal re-authenticates).
    :param deadline: when the whole call must be over (``call_timeout``).
    :param attempt_timeout: seconds each attempt may take (held within ``deadline``).
    :param policy: which failures are transient, and the waits between attempts.
    :param refusals: the transport's view of a failure (:class:`Refusals`).
    :param data_only: the result is the envelope alone; otherwise ``(data, status, headers)``.
    :param clock: the monotonic clock the deadlines are on (seconds).

    Once: a private call refused with 13009 (or HTTP 401) re-authenticates and is sent again,
    without counting as an attempt. A refusal that cannot be cured is explained where its cause is
    known: a request signed by a clock outside the signature window (13009 without a fresh
    credential, 13004), a permission the token lacks (13021). A transient
    failure is retried as ``policy`` says while the call has time for the wait; a call out of time
    ends in :class:`ApiCallTimeoutError` naming the last failure.
    """

    __slots__ = (
        "_attempt_timeout",
        "_attempts",
        "_clock",
        "_credential",
        "_data_only",
        "_endpoint",
        "_error",
        "_policy",
        "_reauthenticated",
        "_refusals",
        "deadline",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        deadline: Deadline,
        attempt_timeout: float,
        policy: RetryPolicy,
        refusals: Refusals,
        data_only: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoint = endpoint
        #: When the whole call must be over.
        self.deadline = deadline
        self._attempt_timeout = attempt_timeout
        self._policy = policy
        self._refusals = refusals
        self._data_only = data_only
        self._clock = clock
        self._attempts = 0
        self._reauthenticated = False
        self._error: ApiException | None = None
        self._credential: str | None = None

    @property
    def attempts(self) -> int:
        """Attempts made so far (a repeat after re-authenticating does not count)."""
        return self._attempts

    def start(self, now: float | None = None) -> Send | Fail:
        """The first action: the first attempt, unless the call is out of time already
        (``now``: the clock's time, if the driver has just read it)."""
        return self._next_attempt(now)

    def succeeded(self, reply: Any) -> Done:
        """The attempt answered: :class:`Done` with :meth:`result`."""
        return Done(self.result(reply))

    def result(self, reply: Any) -> Any:
        """The call's result once the attempt answered ``reply`` (what :meth:`succeeded` says,
        without the :class:`Done` around it, for the drivers): a :class:`Reply` is shaped as the
        caller asked; anything else (an undecoded answer, for ``_preload_content=False``) is the
        result as it is."""
        if type(reply) is not Reply:
            return reply
        if self._data_only:
            return reply.data
        return (reply.data, reply.status, reply.headers)

    def failed(self, error: ApiException, credential: str | None) -> Action:
        """The attempt raised ``error`` having sent ``credential`` (None: none)."""
        self._error = error
        self._credential = credential
        if isinstance(error, ApiCallTimeoutError):
            return Fail(error)  # the call's own deadline, reached inside the attempt
        if isinstance(error, ApiTimeoutError) and self._remaining() <= 0.0:
            return self._out_of_time()
        if (
            credential is not None
            and not self._reauthenticated
            and self._endpoint.private
            and (error.error_code == UNAUTHORIZED or error.status == 401)
        ):
            self._reauthenticated = True
            return Reauthenticate(credential)
        return self._after_refusal(error, credential)

    def reauthenticated(self, fresh: bool) -> Action:
        """The transport dropped the refused credential; ``fresh``: a new one can be had, and the
        attempt is made again (it does not count against the retry policy)."""
        error, credential = self._error, self._credential
        if fresh:
            self._attempts -= 1
            return self._next_attempt()
        assert error is not None and credential is not None, "reauthenticated() before failed()"
        explained = self._refusals.explain_refusal(error, credential)
        if explained is not error:
            return _fail(explained, error)
        return self._after_refusal(error, credential)

    def waited(self) -> Send | Fail:
        """The driver waited as :class:`Wait` said: the next attempt, if there is time."""
        return self._next_attempt()

    # -- the decisions ------------------------------------------------------------------------

    def _remaining(self) -> float:
        return self.deadline.at - self._clock()

    def _next_attempt(self, now: float | None = None) -> Send | Fail:
        if now is None:
            now = self._clock()
        deadline = self.deadline
        if deadline.at - now <= 0.0:
            return self._out_of_time()
        self._attempts += 1
        seconds = self._attempt_timeout
        if now + seconds < deadline.at:
            deadline = Deadline(now + seconds, "attempt_timeout", seconds)
        return Send(self._attempts, deadline)

    def _after_refusal(self, error: ApiException, credential: str | None) -> Action:
        endpoint = self._endpoint
        if endpoint.private:
            # 13004 for a signed request: the clock, if it was off; 13021: which permission the
            # token lacks.
            if error.error_code == INVALID_CREDENTIALS and credential is not None:
                explained = self._refusals.explain_refusal(error, credential)
            else:
                explained = explain_forbidden(error, endpoint, credential)
            if explained is not error:
                return _fail(explained, error)
        policy = self._policy
        attempts = self._attempts
        if not policy.should_retry(error, attempts) or not self._refusals.may_retry(
            endpoint, error
        ):
            return Fail(error)
        delay = policy.delay(error, attempts)
        if delay is None:
            return Fail(error)
        if delay >= self._remaining():
            return self._out_of_time()
        logger.info(
            "retrying %s after %r (attempt %d of %d) in %.2f s",
            endpoint.operation,
            error,
            attempts + 1,
            policy.max_attempts,
            delay,
        )
        return Wait(delay)

    def _out_of_time(self) -> Fail:
        last = self._error
        text = f"{self._endpoint.operation}: the {self.deadline.describe()} ran out"
        attempts = self._attempts
        if attempts:
            text += f" after {attempts} attempt{'s' if attempts != 1 else ''}"
        if last is not None:
            text += f"; the last failed with: {str(last).splitlines()[0]}"
        return _fail(ApiCallTimeoutError(text), last)


def _fail(error: BaseException, cause: BaseException | None) -> Fail:
    """Fail with ``error``, caused by ``cause`` (as ``raise error from cause`` would say)."""
    error.__cause__ = cause  # also suppresses the implicit context, as `from` does
    return Fail(error)


# -- what both drivers share ----------------------------------------------------------------------


class DriverBase:
    """What the synchronous and the asyncio driver share, none of it I/O: the configuration a
    plan is made from, and whether the client they serve is closed.

    :param configuration: the settings (``call_timeout``, ``attempt_timeout``, ``retries``),
        read at every call.
    :param owner: the public client's name, for messages.
    """

    def __init__(self, configuration: Configuration, owner: str = "client") -> None:
        self.configuration = configuration
        #: The monotonic clock deadlines are set on (``time.monotonic``); the transports hold
        #: them on that same clock, so only a test with a transport of its own sets another.
        self.clock: Callable[[], float] = time.monotonic
        self._owner = owner
        self._closed = False
        self._retry_cache: tuple[Any, RetryPolicy] = (None, DEFAULT_RETRY_POLICY)

    @property
    def closed(self) -> bool:
        """Whether the driver was closed; a closed driver refuses calls."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ApiValueError(
                f"this {self._owner} is closed: build a new one to make more calls"
            )

    def retry_policy(self) -> RetryPolicy:
        """The policy of ``Configuration.retries`` (made anew only when the setting changes)."""
        setting = self.configuration.retries
        cached_setting, policy = self._retry_cache
        if setting is cached_setting:
            return policy
        policy = RetryPolicy.from_setting(setting)
        self._retry_cache = (setting, policy)
        return policy

    def _plan(
        self,
        endpoint: Endpoint,
        deadline: Deadline | None,
        within: Deadline | None,
        refusals: Refusals,
        data_only: bool,
        now: float,
    ) -> CallPlan:
        """The plan of a call that starts ``now`` (the driver's clock, just read): within
        ``deadline``, or else within :meth:`call_deadline`."""
        if self._closed:
            self._check_open()
        configuration = self.configuration
        if deadline is None:
            deadline = self.call_deadline(within, now)
        return CallPlan(
            endpoint,
            deadline,
            configuration.attempt_timeout,
            self.retry_policy(),
            refusals,
            data_only,
            self.clock,
        )

    def call_deadline(self, within: Deadline | None = None, now: float | None = None) -> Deadline:
        """``call_timeout`` from now (``now``, if the clock was just read), or ``within`` if
        that comes first (the deadline of a call this one is made for, such as a token fetched
        for it)."""
        seconds = self.configuration.call_timeout
        at = (self.clock() if now is None else now) + seconds
        if within is not None and within.at < at:
            return within
        return Deadline(at, "call_timeout", seconds)


# -- attempts -------------------------------------------------------------------------------------


class BaseAttempt:
    """One attempt: the limits it runs under, what it sent, and its turn under the rate limit.

    A driver makes one for every :class:`Send` and gives it to the transport. The transport sets
    :attr:`credential` and takes the rate limiter's turn when it chooses: the synchronous
    :class:`~openapi_client.core.Attempt` and the asyncio
    :class:`~openapi_client.aio.calls.AsyncAttempt` wait for it with ``take_turn()``; both rest on
    :meth:`rate_limit_delay`, which decides the wait without waiting.

    :ivar number: 1 for the first attempt of the call.
    :ivar credential: the credential the transport sent (an ``Authorization`` value, or the
        token a WebSocket connection authenticated with); None when it sent none.
    :ivar deadline: when this attempt must be over (connect, send and the whole answer): the
        sooner of ``attempt_timeout`` from its start and the call's ``call_timeout``; later by
        the time it waited for its turn.
    :ivar call_deadline: when the call as a whole must be over.
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_turn_pending",
        "call_deadline",
        "credential",
        "deadline",
        "number",
        "rate_limit",
    )

    def __init__(
        self,
        deadline: Deadline,
        call_deadline: Deadline,
        rate_limit: RateLimit | None = None,
        number: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.number = number
        self.credential: str | None = None
        self.deadline = deadline
        self.call_deadline = call_deadline
        #: The limit this attempt takes a turn under (``Configuration.rate_limit``); None: none.
        self.rate_limit = rate_limit
        self._turn_pending = rate_limit is not None
        self._clock = clock

    @property
    def turn_pending(self) -> bool:
        """Whether this attempt has yet to take its turn under the rate limit."""
        return self._turn_pending

    def rate_limit_delay(self) -> float:
        """Reserve this attempt's turn under the rate limit (once): the seconds to wait before
        the request may leave, 0.0 when it may leave now (or there is no limit, or the turn is
        taken already). The attempt's deadline moves later by that wait (never past the call's):
        waiting for a turn does not count against ``attempt_timeout``.

        :raises ApiCallTimeoutError: the wait would outlast the call's deadline (the turn is
            given back).
        """
        rate_limit = self.rate_limit
        if rate_limit is None or not self._turn_pending:
            return 0.0
        self._turn_pending = False
        delay = rate_limit.reserve()
        if delay <= 0.0:
            return 0.0
        call_deadline = self.call_deadline
        if delay >= call_deadline.at - self._clock():
            self.give_back_turn()
            raise ApiCallTimeoutError(
                f"the rate limit would delay this request by {delay:.2f} s, past the "
                f"{call_deadline.describe()}"
            )
        deadline = self.deadline
        self.deadline = Deadline(
            min(deadline.at + delay, call_deadline.at), deadline.setting, deadline.seconds
        )
        return delay

    def give_back_turn(self) -> None:
        """Give the turn :meth:`rate_limit_delay` reserved back to the rate limiter: the wait
        for it was refused, or cut short (an interrupt, a cancelled task), so no request follows.
        Kept, every such wait would push all later requests back by one more turn, for good."""
        if self.rate_limit is not None:
            self.rate_limit.refund()
