"""The asyncio driver: calls awaited on the event loop, through an :class:`AsyncTransport`.

:class:`AsyncCallDriver` is the twin of the synchronous :class:`~openapi_client.core.CallDriver`:
the same :class:`~openapi_client.calls.CallPlan` decides the deadlines, re-authentication,
explanations and retries; this loop awaits the transport where the other blocks on it, and
``await``\\ s :func:`asyncio.sleep` where the other sleeps. It starts no task and holds nothing
between awaits but the plan of the call itself, so a call cancelled at any ``await`` (by
``asyncio.timeout()``, ``wait_for`` or ``Task.cancel()``) leaves nothing behind: the
cancellation reaches the transport's ``send`` (or the wait) and then the caller.

An asyncio client composes it with its transport, and its ``call`` is the driver's
(:class:`~openapi_client.aio.api.base.AsyncCaller`, which the ``openapi_client.aio`` API classes
await).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Callable, Protocol

from openapi_client.aio.api.base import _unexpected_option
from openapi_client.calls import (
    Action,
    BaseAttempt,
    DriverBase,
    Reauthenticate,
    Refusals,
    Send,
    Wait,
    read_options,
)
from openapi_client.exceptions import ApiException, ApiTypeError

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.aio.api.base import AsyncCaller
    from openapi_client.configuration import Configuration
    from openapi_client.deadline import Deadline
    from openapi_client.endpoint import Endpoint
    from openapi_client.rate_limit import RateLimit

__all__ = ["AsyncAttempt", "AsyncCallDriver", "AsyncTransport"]

#: How the asyncio driver waits: ``asyncio.sleep``, or a test's stand-in on a manual clock.
AsyncSleep = Callable[[float], Awaitable[object]]


class AsyncAttempt(BaseAttempt):
    """One attempt, as the asyncio driver gives it to its transport (see
    :class:`~openapi_client.calls.BaseAttempt`).

    :param sleep: how the turn is waited for (the driver's :attr:`AsyncCallDriver.sleep`).
    """

    __slots__ = ("_sleep",)

    def __init__(
        self,
        deadline: Deadline,
        call_deadline: Deadline,
        rate_limit: RateLimit | None = None,
        number: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: AsyncSleep = asyncio.sleep,
    ) -> None:
        super().__init__(deadline, call_deadline, rate_limit, number, clock)
        self._sleep = sleep

    async def take_turn(self) -> Deadline:
        """Take this attempt's turn under the rate limit, awaiting it if the pool is spent, and
        return the attempt's deadline from then on. The transport awaits it once, just before
        the request leaves.

        :raises ApiCallTimeoutError: the wait would outlast ``call_timeout``.
        """
        delay = self.rate_limit_delay()
        if delay > 0.0:
            try:
                await self._sleep(delay)
            except BaseException:  # cancelled while waiting: no request follows
                self.give_back_turn()
                raise
        return self.deadline


class AsyncTransport(Refusals, Protocol):
    """What :class:`AsyncCallDriver` is given: how a call travels, one attempt at a time; the
    asyncio twin of :class:`~openapi_client.core.Transport`.

    ``send`` must be over by ``attempt.deadline`` (it raises
    :class:`~openapi_client.exceptions.ApiTimeoutError` otherwise), like any transport, and must
    leave nothing behind when it is cancelled: the driver does not wrap it in a timeout of its
    own.
    """

    def prepare(self, endpoint: Endpoint, args: Mapping[str, Any]) -> Any:
        """Check ``args`` and encode them for the wire (once per call, before any attempt)."""

    def timeout(self, value: Any) -> Any:
        """The transport's timeouts for a ``_request_timeout`` value (None: the default)."""

    async def send(
        self,
        endpoint: Endpoint,
        request: Any,
        preload: bool,
        timeout: Any,
        attempt: AsyncAttempt,
    ) -> Any:
        """Send ``request`` once, over by ``attempt.deadline``, awaiting the attempt's turn under
        the rate limit (:meth:`AsyncAttempt.take_turn`) just before it leaves and setting
        ``attempt.credential``. Returns a :class:`~openapi_client.calls.Reply`, or with
        ``preload`` off an undecoded answer; raises :class:`ApiException` (status 0 when no
        answer arrived)."""

    async def reauthenticate(self, credential: str) -> bool:
        """After 13009 for ``credential``: drop it; whether a fresh one can be had."""

    async def close(self) -> None:
        """Release the connections."""


class AsyncCallDriver(DriverBase):
    """Makes calls through ``transport`` on the running event loop.

    :param configuration: the settings (``call_timeout``, ``attempt_timeout``, ``retries``,
        ``rate_limit``, ``request_timeout``), read at every call.
    :param transport: how a request travels (:class:`AsyncTransport`).
    :param owner: the public client's name, for messages.
    """

    def __init__(
        self, configuration: Configuration, transport: AsyncTransport, owner: str = "client"
    ) -> None:
        super().__init__(configuration, owner)
        self.transport = transport
        #: How the driver waits before a retry and for a rate-limit turn (``asyncio.sleep``). A
        #: test on a manual clock sets a coroutine function here that moves the clock instead.
        self.sleep: AsyncSleep = asyncio.sleep

    def close(self) -> None:
        """Refuse calls from now on. The transport is its owner's to close."""
        self._closed = True

    async def call(
        self,
        endpoint: Endpoint,
        args: Mapping[str, Any],
        options: Mapping[str, Any],
        http_info: bool = False,
        /,
    ) -> Any:
        """Call ``endpoint`` with ``args``, honouring the generated-style ``options``: the
        decoded envelope (a ``dict``); with ``http_info`` (or ``_return_http_data_only=False``)
        a ``(data, status, headers)`` tuple; with ``_preload_content=False`` the undecoded
        answer. ``async_req`` is refused with :class:`ApiTypeError`: the call is a coroutine
        already."""
        if self._closed:
            self._check_open()
        transport = self.transport
        if not options:
            return await self.invoke(endpoint, transport.prepare(endpoint, args), not http_info)
        if "async_req" in options:
            raise ApiTypeError(_unexpected_option("async_req", endpoint.operation))
        data_only, preload, timeout, _ = read_options(endpoint, options, http_info)
        request = transport.prepare(endpoint, args)
        resolved = None if timeout is None else transport.timeout(timeout)
        return await self.invoke(endpoint, request, data_only, preload, resolved)

    async def invoke(
        self,
        endpoint: Endpoint,
        request: Any,
        data_only: bool = True,
        preload: bool = True,
        timeout: Any = None,
        deadline: Deadline | None = None,
        within: Deadline | None = None,
    ) -> Any:
        """Make the call whose ``request`` is prepared already, as the
        :class:`~openapi_client.calls.CallPlan` says, within ``deadline`` (default:
        ``call_timeout`` from now, or ``within`` if that comes first)."""
        transport = self.transport
        now = self.clock()
        plan = self._plan(endpoint, deadline, within, transport, data_only, now)
        if timeout is None:
            timeout = transport.timeout(None)
        rate_limit = self.configuration.rate_limit
        sleep = self.sleep
        action: Action = plan.start(now)
        while True:
            if isinstance(action, Send):
                attempt = AsyncAttempt(
                    action.deadline, plan.deadline, rate_limit, action.number, self.clock, sleep
                )
                try:
                    reply = await transport.send(endpoint, request, preload, timeout, attempt)
                except ApiException as error:
                    action = plan.failed(error, attempt.credential)
                else:
                    return plan.result(reply)
            elif isinstance(action, Wait):
                await sleep(action.seconds)
                action = plan.waited()
            elif isinstance(action, Reauthenticate):
                fresh = await transport.reauthenticate(action.credential)
                action = plan.reauthenticated(fresh)
            else:
                raise action.error


if TYPE_CHECKING:  # pragma: no cover

    def _awaited_by_the_api_classes(driver: AsyncCallDriver) -> AsyncCaller:
        """A type checker's proof that the driver is what the ``aio`` API classes await."""
        return driver
