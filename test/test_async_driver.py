"""The asyncio driver (``openapi_client.aio.calls.AsyncCallDriver``) and its transport protocol.

Most tests give the driver ``Scripted``, a small asyncio transport written here (a double of our
own ``AsyncTransport`` protocol) that answers each attempt from a script and records what it was
given; the driver's part is the loop: attempts, waits, re-authentication, results, errors and
cancellation. Time is a manual clock that the driver's ``sleep`` moves, so nothing waits.

The last tests plug a third transport in the way a user would: ``LoopbackHttp``, a bare asyncio
HTTP/1.1 transport written here, under the ``openapi_client.aio`` API classes, against the
simulator over loopback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest

from openapi_client import (
    ApiCallTimeoutError,
    ApiConnectionError,
    ApiException,
    ApiTimeoutError,
    ApiTypeError,
    ApiValueError,
    BadRequestException,
    Configuration,
    RateLimit,
    RetryPolicy,
    aio,
)
from openapi_client.aio.calls import AsyncAttempt, AsyncCallDriver, AsyncTransport
from openapi_client.api.endpoints import (
    DISABLE_HEARTBEAT,
    ENABLE_CANCEL_ON_DISCONNECT,
    SET_HEARTBEAT,
)
from openapi_client.calls import Reply
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import exception_for_response
from openapi_client.headers import HTTPHeaders
from openapi_client.simulator import DeribitSimulator
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(20)

OK = {"jsonrpc": "2.0", "result": "ok"}
HEADERS = {"Content-Type": "application/json"}
UNAUTHORIZED = {"error": {"code": 13009, "message": "unauthorized"}}


def unauthorized() -> ApiException:
    return BadRequestException(400, "Bad Request", data=UNAUTHORIZED)


#: An answer the script gives: a reply, an exception to raise, or a coroutine function to await
#: (for a transport that is still waiting when the test cancels it).
Answer = Any


class Scripted:
    """An ``AsyncTransport`` that answers attempt N with ``script[N - 1]``."""

    def __init__(self, *script: Answer, fresh_credentials: bool = True) -> None:
        self.script = list(script)
        self.fresh_credentials = fresh_credentials
        self.credential = "token-1"
        self.attempts: list[AsyncAttempt] = []
        self.requests: list[Any] = []
        self.reauthenticated: list[str] = []
        self.in_flight = 0
        self.cancelled = 0
        self.closed = False

    def prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> dict[str, Any]:
        return endpoint.json_params(args, True)

    def timeout(self, value: Any) -> float:
        return 5.0 if value is None else float(value)

    async def send(
        self,
        endpoint: Endpoint,
        request: Any,
        preload: bool,
        timeout: Any,
        attempt: AsyncAttempt,
    ) -> Any:
        self.attempts.append(attempt)
        self.requests.append((request, preload, timeout))
        self.in_flight += 1
        try:
            await attempt.take_turn()
            attempt.credential = self.credential if endpoint.private else None
            answer = self.script.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            if callable(answer):
                return await answer()
            return answer
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    async def reauthenticate(self, credential: str) -> bool:
        self.reauthenticated.append(credential)
        await asyncio.sleep(0)
        if self.fresh_credentials:
            self.credential = f"token-{len(self.reauthenticated) + 1}"
        return self.fresh_credentials

    def explain_refusal(self, error: ApiException, credential: str) -> ApiException:
        return error

    def may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        return True

    async def close(self) -> None:
        self.closed = True


class Client:
    """An asyncio client as one is built: a driver composed with its transport."""

    def __init__(self, transport: AsyncTransport, **settings: Any) -> None:
        settings.setdefault("retries", RetryPolicy(total=2, backoff_factor=1.0, jitter=0.0))
        self.configuration = Configuration(host="http://127.0.0.1:9/api/v2", **settings)
        self.transport = transport
        self.driver = AsyncCallDriver(self.configuration, transport, "Client")
        self.clock = ManualClock()
        self.waits: list[float] = []
        self.driver.clock = self.clock
        self.driver.sleep = self.sleep

    async def sleep(self, seconds: float) -> None:
        """Waiting moves the manual clock; the loop still turns, so a task can be cancelled."""
        self.waits.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    async def call(self, *call: Any) -> Any:
        return await self.driver.call(*call)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def reply(data: Any = OK) -> Reply:
    return Reply(data, 200, HEADERS)


# -- calls -------------------------------------------------------------------------------------


def test_the_aio_api_classes_await_the_driver() -> None:
    transport = Scripted(reply(), reply(), "raw bytes")
    client = Client(transport)
    api = aio.SessionManagementApi(client)  # an AsyncCaller: its call is a coroutine function

    async def calls() -> list[Any]:
        return [
            await api.public_set_heartbeat_get(30),
            await api.public_set_heartbeat_get_with_http_info(30, _request_timeout=2),
            await api.public_disable_heartbeat_get(_preload_content=False),
        ]

    assert run(calls()) == [OK, (OK, 200, HEADERS), "raw bytes"]
    assert transport.requests == [
        ({"interval": 30}, True, 5.0),
        ({"interval": 30}, True, 2.0),
        ({}, False, 5.0),
    ]
    assert [attempt.number for attempt in transport.attempts] == [1, 1, 1]


def test_the_driver_itself_is_an_async_caller() -> None:
    api = aio.SessionManagementApi(Client(Scripted(reply())).driver)
    assert run(api.public_set_heartbeat_get(30)) == OK


def test_async_req_is_refused_with_what_to_do_instead() -> None:
    client = Client(Scripted(reply()))
    with pytest.raises(ApiTypeError, match=r"does not take async_req.*asyncio.create_task"):
        run(client.call(SET_HEARTBEAT, {"interval": 30}, {"async_req": True}, False))
    with pytest.raises(ApiTypeError, match="unexpected keyword argument 'timeout'"):
        run(client.call(SET_HEARTBEAT, {"interval": 30}, {"timeout": 3}, False))
    assert client.transport.attempts == []  # type: ignore[attr-defined]


def test_a_closed_driver_refuses_calls() -> None:
    client = Client(Scripted(reply()))
    client.driver.close()
    assert client.driver.closed
    with pytest.raises(ApiValueError, match="this Client is closed: build a new one"):
        run(client.call(DISABLE_HEARTBEAT, {}, {}, False))


# -- the plan, driven --------------------------------------------------------------------------


def test_transient_failures_are_retried_after_awaited_waits() -> None:
    transport = Scripted(ApiConnectionError("reset"), ApiConnectionError("reset"), reply())
    client = Client(transport, call_timeout=30.0, attempt_timeout=10.0)
    started = client.clock()
    assert run(client.call(DISABLE_HEARTBEAT, {}, {}, False)) == OK
    assert client.waits == [1.0, 2.0]
    assert [attempt.number for attempt in transport.attempts] == [1, 2, 3]
    assert [attempt.deadline.at - started for attempt in transport.attempts] == [10.0, 11.0, 13.0]


def test_the_last_failure_is_raised_when_the_policy_says_stop() -> None:
    last = ApiConnectionError("reset 3")
    transport = Scripted(ApiConnectionError("reset 1"), ApiConnectionError("reset 2"), last)
    with pytest.raises(ApiConnectionError) as raised:
        run(Client(transport).call(DISABLE_HEARTBEAT, {}, {}, False))
    assert raised.value is last


def test_out_of_time_names_the_last_failure() -> None:
    transport = Scripted(ApiConnectionError("reset 1"), ApiConnectionError("reset 2"))
    client = Client(transport, call_timeout=2.5)
    with pytest.raises(ApiCallTimeoutError) as raised:
        run(client.call(DISABLE_HEARTBEAT, {}, {}, False))
    assert str(raised.value) == (
        "public_disable_heartbeat_get: the call_timeout (2.5 s) ran out after 2 attempts; the "
        "last failed with: reset 2"
    )
    assert raised.value.__cause__ is not None and "reset 2" in str(raised.value.__cause__)
    assert client.waits == [1.0]  # the second wait (2 s) would have ended past the deadline


def test_a_refused_credential_is_renewed_once_and_the_call_made_again() -> None:
    transport = Scripted(unauthorized(), reply())
    assert run(Client(transport).call(ENABLE_CANCEL_ON_DISCONNECT, {}, {}, False)) == OK
    assert transport.reauthenticated == ["token-1"]
    assert [attempt.credential for attempt in transport.attempts] == ["token-1", "token-2"]
    assert [attempt.number for attempt in transport.attempts] == [1, 1]


def test_a_refused_credential_without_a_fresh_one_is_raised() -> None:
    refused = unauthorized()
    transport = Scripted(refused, fresh_credentials=False)
    with pytest.raises(BadRequestException) as raised:
        run(Client(transport).call(ENABLE_CANCEL_ON_DISCONNECT, {}, {}, False))
    assert raised.value is refused
    assert transport.reauthenticated == ["token-1"]


def test_the_rate_limit_turn_is_awaited_by_the_transport_and_moves_the_deadline() -> None:
    client = Client(Scripted(reply(), reply()), attempt_timeout=10.0)
    client.configuration.rate_limit = RateLimit(
        per_second=2, burst=1, margin=0.0, clock=client.clock
    )
    started = client.clock()

    async def two_calls() -> None:
        await client.call(DISABLE_HEARTBEAT, {}, {}, False)
        await client.call(DISABLE_HEARTBEAT, {}, {}, False)

    run(two_calls())
    assert client.waits == [0.5]  # the second call's turn, awaited on the driver's sleep
    first, second = client.transport.attempts  # type: ignore[attr-defined]
    assert first.deadline.at - started == 10.0
    assert second.deadline.at - started == 10.5


# -- cancellation ------------------------------------------------------------------------------


async def forever() -> Any:
    await asyncio.Event().wait()


async def cancelled_when(call: Awaitable[Any], reached: Callable[[], object]) -> None:
    """Start ``call``, cancel it once ``reached()``, and check that it ends cancelled with no
    task left behind."""
    task = asyncio.ensure_future(call)
    while not reached():
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


def parked(client: Client) -> list[float]:
    """Make the driver's waits last until they are cancelled; returns the waits begun."""
    begun: list[float] = []

    async def sleep(seconds: float) -> None:
        begun.append(seconds)
        await forever()

    client.driver.sleep = sleep
    return begun


def test_a_call_cancelled_in_the_transport_leaves_nothing_behind() -> None:
    transport = Scripted(forever, reply())
    client = Client(transport)

    async def cancel_then_call() -> Any:
        await cancelled_when(
            client.call(DISABLE_HEARTBEAT, {}, {}, False), lambda: transport.in_flight
        )
        assert transport.cancelled == 1 and transport.in_flight == 0
        return await client.call(DISABLE_HEARTBEAT, {}, {}, False)

    assert run(cancel_then_call()) == OK
    assert len(transport.attempts) == 2


def test_wait_for_around_a_call_times_it_out() -> None:
    transport = Scripted(forever)
    client = Client(transport)

    async def bounded() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.call(DISABLE_HEARTBEAT, {}, {}, False), 0.05)
        assert transport.cancelled == 1 and transport.in_flight == 0

    run(bounded())


def test_a_call_cancelled_while_waiting_to_retry_sends_nothing_more() -> None:
    transport = Scripted(ApiConnectionError("reset"), reply())
    client = Client(transport)
    waits = parked(client)
    run(cancelled_when(client.call(DISABLE_HEARTBEAT, {}, {}, False), lambda: waits))
    assert waits == [1.0] and len(transport.attempts) == 1


def test_a_call_cancelled_while_renewing_its_credential_is_not_sent_again() -> None:
    transport = Scripted(unauthorized(), reply())
    client = Client(transport)

    async def renewing(credential: str) -> bool:
        transport.reauthenticated.append(credential)
        return bool(await forever())

    transport.reauthenticate = renewing  # type: ignore[method-assign]
    call = client.call(ENABLE_CANCEL_ON_DISCONNECT, {}, {}, False)
    run(cancelled_when(call, lambda: transport.reauthenticated))
    assert transport.reauthenticated == ["token-1"] and len(transport.attempts) == 1


def test_a_call_cancelled_while_awaiting_its_turn_gives_the_turn_back() -> None:
    transport = Scripted(reply())
    client = Client(transport)
    limit = RateLimit(per_second=1, burst=1, margin=0.0, clock=client.clock)
    client.configuration.rate_limit = limit
    limit.reserve()  # the burst is spent: the call's turn is a second away
    waits = parked(client)
    run(cancelled_when(client.call(DISABLE_HEARTBEAT, {}, {}, False), lambda: waits))
    assert transport.cancelled == 1 and transport.script == [reply()]  # nothing was sent
    # The turn went back: the next one is still a second away, not two.
    assert limit.reserve() == pytest.approx(1.0)


# -- a third transport, plugged in -------------------------------------------------------------


class LoopbackHttp:
    """A bare asyncio HTTP/1.1 transport: one connection per attempt, ``Connection: close``.

    Enough to show where an asyncio HTTP transport plugs in; the library's own would keep
    connections alive, hold TLS and map every socket failure."""

    def __init__(self, configuration: Configuration, token_source: Callable[[], str]) -> None:
        self.configuration = configuration
        self.token_source = token_source
        self.token = token_source()
        target = urlsplit(configuration.host)
        self.address = (target.hostname or "", target.port or 80)
        self.base = target.path

    def prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> str:
        return endpoint.query(args, self.configuration.client_side_validation)

    def timeout(self, value: Any) -> Any:
        return value

    async def send(
        self, endpoint: Endpoint, request: str, preload: bool, timeout: Any, attempt: AsyncAttempt
    ) -> Any:
        attempt.credential = f"Bearer {self.token}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*self.address), attempt.deadline.at - time.monotonic()
            )
        except OSError as error:
            raise ApiConnectionError(f"could not connect: {error}") from error
        try:
            await attempt.take_turn()
            head = (
                f"GET {self.base}{endpoint.path}?{request} HTTP/1.1\r\n"
                f"Host: {self.address[0]}:{self.address[1]}\r\n"
                f"Authorization: {attempt.credential}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1"))
            answer = await asyncio.wait_for(reader.read(), attempt.deadline.at - time.monotonic())
        except asyncio.TimeoutError as error:
            raise ApiTimeoutError("no answer by the attempt's deadline") from error
        finally:
            writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        fields, _, body = rest.partition(b"\r\n\r\n")
        status = int(status_line.split()[1])
        headers = HTTPHeaders(
            tuple(line.decode("latin-1").split(": ", 1))  # type: ignore[misc]
            for line in fields.split(b"\r\n")
        )
        data = json.loads(body) if body.startswith(b"{") else None
        if status != 200 or data is None or "error" in data:
            raise exception_for_response(status, "refused", body.decode(), headers, data)
        return Reply(data, status, headers)

    async def reauthenticate(self, credential: str) -> bool:
        self.token = self.token_source()
        return True

    def explain_refusal(self, error: ApiException, credential: str) -> ApiException:
        return error

    def may_retry(self, endpoint: Endpoint, error: ApiException) -> bool:
        return True

    async def close(self) -> None:
        pass


def test_an_asyncio_http_transport_plugs_in_under_the_aio_api_classes(
    simulator: DeribitSimulator,
) -> None:
    configuration = Configuration(
        host=simulator.url, retries=RetryPolicy(total=2, backoff_factor=0.01, jitter=0.0)
    )
    driver = AsyncCallDriver(configuration, LoopbackHttp(configuration, simulator.issue_token))
    api = aio.SessionManagementApi(driver)

    async def session() -> list[Any]:
        results = [await api.public_set_heartbeat_get(30)]
        simulator.inject("429", path="/public/set_heartbeat", retry_after=0)
        results.append(await api.public_set_heartbeat_get(31))  # retried after the 429
        simulator.revoke_tokens()
        results.append(await api.private_enable_cancel_on_disconnect_get())  # a new token
        return results

    assert [envelope["result"] for envelope in run(session())] == ["ok", "ok", "ok"]
    paths = [request.path.rsplit("/", 2)[-2:] for request in simulator.requests]
    assert paths == [
        ["public", "set_heartbeat"],
        ["public", "set_heartbeat"],
        ["public", "set_heartbeat"],
        ["private", "enable_cancel_on_disconnect"],
        ["private", "enable_cancel_on_disconnect"],
    ]
