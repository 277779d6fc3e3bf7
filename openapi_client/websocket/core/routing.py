"""JSON-RPC ids, the requests awaiting an answer, and where each answer goes.

:class:`Router` gives every request its id, keeps the program's calls (:class:`Call`) and the
session's own requests (:class:`Request`) until they are answered, queues calls while the session
is not ready, fails calls whose time ran out or whose connection ended, and routes what arrives:
an answer to its call or to the part of the core that sent the request (through
:class:`Answers`), a ``test_request`` answered at once, a subscription's notification to its
callback.
"""

from __future__ import annotations

import collections
import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Callable, Protocol, Union

from openapi_client.endpoint import SessionEffect
from openapi_client.exceptions import (
    ApiConnectionError,
    ApiProtocolError,
    ApiTimeoutError,
    ApiValueError,
)
from openapi_client.redaction import redact, register_credentials_in
from openapi_client.websocket.core.links import Link
from openapi_client.websocket.core.outputs import (
    Call,
    Deliver,
    Outbox,
    Send,
    State,
    SubscriptionCallback,
)
from openapi_client.websocket.events import HeartbeatAnswered, logger
from openapi_client.websocket.jsonrpc import (
    MAX_REQUEST_BYTES,
    REQUEST_HEAD,
    TOO_MANY_REQUESTS,
    Data,
    answer_error,
    caused_by,
    check_size,
    error_code,
    preview,
    request_tail,
)

__all__ = ["DISCARD", "SWEEP_SECONDS", "Answers", "Request", "Router", "decode"]

#: How often calls whose caller stopped waiting (an interrupt, a cancelled task) are swept out.
SWEEP_SECONDS = 1.0

#: The kind of a request whose answer nobody reads (``public/test``, the logout).
DISCARD = "discard"


class Request:
    """One of the session's own requests: a restore step, a renewal, a re-authentication, or
    one whose answer nobody reads (``public/test`` for a ``test_request``, the logout)."""

    __slots__ = ("deadline", "grant", "id", "kind", "link", "sent_at", "ticket")

    def __init__(
        self, request_id: int, kind: str, link: Link, sent_at: float, deadline: float
    ) -> None:
        self.id = request_id
        self.kind = kind
        self.link = link
        self.sent_at = sent_at
        self.deadline = deadline
        #: For ``public/auth``: ``"refresh"`` or ``"key"`` (the grant sent), and the key grant's
        #: timestamp for a clock hint.
        self.grant: tuple[str, int | None] = ("", None)
        #: For a re-authentication: the call-like ticket its caller waits on.
        self.ticket: Call | None = None


Pending = Union[Call, Request]


class Answers(Protocol):
    """Where the router hands what is not a call's plain answer."""

    def answered(self, request: Request, message: dict[str, Any], raw: Data, now: float) -> None:
        """The answer to one of the session's own requests (not a :data:`DISCARD` one)."""

    def ambiguous(self, request: Request, error: ApiProtocolError, now: float) -> None:
        """One of the session's own requests was answered with both a result and an error."""

    def changed(self, effect: SessionEffect, call: Call, link: Link, now: float) -> None:
        """``call`` succeeded on ``link``, and its method changes the session (``effect``)."""


class Router:
    """Ids, pending requests, queued calls, and the routing of what arrives.

    :param outbox: where its outputs go.
    :param display: ``host:port``, for messages.
    :param call_timeout: seconds each of the session's own requests may wait for its answer.
    :param subscriptions: channel -> callback (read when a notification comes).
    :param effects: method -> what a successful call of it changes (only those that do).
    :param answers: where the answers to the session's own requests go.
    """

    __slots__ = (
        "_answers",
        "_call_timeout",
        "_display",
        "_effects",
        "_next_id",
        "_outbox",
        "_subscriptions",
        "pending",
        "queue",
        "sweep_at",
    )

    def __init__(
        self,
        outbox: Outbox,
        display: str,
        call_timeout: float,
        subscriptions: Mapping[str, SubscriptionCallback],
        effects: Mapping[str, SessionEffect],
        answers: Answers,
    ) -> None:
        self._outbox = outbox
        self._display = display
        self._call_timeout = call_timeout
        self._subscriptions = subscriptions
        self._effects = effects
        self._answers = answers
        self._next_id = 1
        #: id -> what awaits its answer.
        self.pending: dict[int, Pending] = {}
        #: Calls waiting for a ready session, in order.
        self.queue: collections.deque[Call] = collections.deque()
        #: When :meth:`sweep` is due (inf: nothing to sweep).
        self.sweep_at = math.inf

    @property
    def busy(self) -> bool:
        """Whether a call or a request awaits something."""
        return bool(self.pending or self.queue)

    # -- sending --------------------------------------------------------------------------------

    def send(
        self, link: Link, method: str, params: Mapping[str, Any], kind: str, now: float
    ) -> Request:
        """Send one of the session's own requests on ``link``."""
        request_id = self._next_id
        self._next_id = request_id + 1
        text = f"{REQUEST_HEAD}{request_id}{request_tail(method, params)}"
        request = Request(request_id, kind, link, now, now + self._call_timeout)
        self.pending[request_id] = request
        self._outbox.put(Send(link.number, text))
        if kind is not DISCARD:
            self._outbox.at(request.deadline)
        return request

    def dispatch(self, call: Call, link: Link, now: float, raising: bool = False) -> str | None:
        """Give ``call`` its id and send it on ``link``: its text when ``raising`` (the caller
        writes it), else as a :class:`Send` output; a request too large fails the call."""
        request_id = self._next_id
        self._next_id = request_id + 1
        text = f"{REQUEST_HEAD}{request_id}{call.body}"
        if len(text) > MAX_REQUEST_BYTES:
            try:
                check_size(text, call.method)
            except ApiValueError as error:
                if raising:
                    raise
                self.complete(call, error)
                return None
        call.id = request_id
        call.link = link
        timeout = call.read_timeout
        call.answer_by = math.inf if timeout is None else now + timeout
        if call.credential is None:
            call.credential = link.credential
        self.pending[request_id] = call  # last: an interrupt before it leaves nothing behind
        if raising:
            return text
        self._outbox.put(Send(link.number, text))
        return None

    # -- calls waiting ----------------------------------------------------------------------------

    def enqueue(self, call: Call, now: float) -> None:
        """Hold ``call`` until the session is ready (at most its ``connect_timeout``)."""
        call.ready_by = now + call.connect_timeout
        call.queued = True
        self.queue.append(call)  # last: an interrupt before it leaves nothing behind

    def release(self, link: Link, now: float) -> None:
        """Send the queued calls on ``link``, which is ready."""
        queue = self.queue
        while queue:
            call = queue.popleft()
            call.queued = False
            if not call.done:
                self.dispatch(call, link, now)

    def refuse_queued(self, refusal: Callable[[], BaseException]) -> None:
        """Fail every queued call with ``refusal()`` (one exception per caller)."""
        queue = self.queue
        while queue:
            call = queue.popleft()
            call.queued = False
            if not call.done:
                self.complete(call, refusal())

    def expire(self, call: Call, now: float, state: State) -> float | None:
        """See :meth:`SessionCore.expire`; ``state``: the session's, for the message."""
        if call.done:
            return None
        if call.queued:
            if now < call.ready_by:
                return call.ready_by
            self._dequeue(call)
            call.error = _not_ready(call, state)
            call.done = True
            return None
        if now < call.answer_by:
            return call.answer_by
        self.pending.pop(call.id, None)
        call.error = self._no_answer(call)
        call.done = True
        return None

    def abandon(self, call: Call) -> None:
        """Forget ``call``; a late answer is dropped."""
        if call.done:
            return
        call.done = True
        if call.queued:
            self._dequeue(call)
        else:
            self.pending.pop(call.id, None)

    def _dequeue(self, call: Call) -> None:
        call.queued = False
        try:
            self.queue.remove(call)
        except ValueError:
            pass

    def complete(self, call: Call, error: BaseException | None = None) -> None:
        """``call`` is over: wake its caller (with ``error`` to raise, if any)."""
        if error is not None:
            call.error = error
        call.done = True
        self._outbox.put(call)

    def sweep(self, now: float, state: State) -> None:
        """Fail the calls whose time ran out and whose caller never asked (an interrupted
        caller), and forget unanswered requests nobody reads."""
        self.sweep_at = now + SWEEP_SECONDS if self.busy else math.inf
        pending = self.pending
        for request_id, entry in list(pending.items()):
            if type(entry) is Call:
                if now >= entry.answer_by + SWEEP_SECONDS:
                    del pending[request_id]
                    self.complete(entry, self._no_answer(entry))
            elif isinstance(entry, Request) and entry.kind is DISCARD and now >= entry.deadline:
                del pending[request_id]
        for call in list(self.queue):
            if now >= call.ready_by + SWEEP_SECONDS:
                self._dequeue(call)
                self.complete(call, _not_ready(call, state))

    def _no_answer(self, call: Call) -> ApiTimeoutError:
        return ApiTimeoutError(
            f"{call.method}: {self._display} did not answer within {call.read_timeout:g} s"
        )

    # -- the end of a connection ----------------------------------------------------------------

    def fail_calls_of(self, link: Link, description: str, cause: BaseException | None) -> None:
        """``link`` ended: fail the calls sent on it (and the tickets of its re-authentication),
        forget its requests."""
        display = self._display
        pending = self.pending
        for request_id, entry in list(pending.items()):
            if type(entry) is Call:
                if entry.link is link:
                    del pending[request_id]
                    error = ApiConnectionError(
                        f"{entry.method}: no answer from {display}: {description}"
                    )
                    self.complete(entry, caused_by(error, cause))
            elif isinstance(entry, Request) and entry.link is link:
                del pending[request_id]
                ticket = entry.ticket
                if ticket is not None and not ticket.done:
                    error = ApiConnectionError(
                        f"public/auth: no answer from {display}: {description}"
                    )
                    self.complete(ticket, caused_by(error, cause))

    def forget(self, link: Link, kinds: frozenset[str]) -> None:
        """Forget ``link``'s requests of ``kinds`` (a late answer is then dropped)."""
        pending = self.pending
        for request_id, entry in list(pending.items()):
            if isinstance(entry, Request) and entry.link is link and entry.kind in kinds:
                del pending[request_id]

    def clear(self) -> None:
        self.pending.clear()
        self.queue.clear()
        self.sweep_at = math.inf

    # -- what arrives ---------------------------------------------------------------------------

    def route(self, link: Link, message: dict[str, Any], raw: Data, now: float) -> None:
        """Where ``message``, arrived on ``link``, goes."""
        request_id = message.get("id")
        if request_id is None:
            self._notification(link, message, now)
            return
        if type(request_id) is not int:
            self._outbox.log(
                logging.WARNING,
                "%s sent an answer whose id %s is not one the client gives; ignored",
                self._display,
                preview(request_id),
            )
            return
        result = message.get("result")
        if type(result) is dict:
            register_credentials_in(result)  # a token is redacted before anything shows it
        entry = self.pending.pop(request_id, None)
        if "error" in message:
            if error_code(message) == TOO_MANY_REQUESTS:
                link.throttled = True  # before the close that follows a 10028
            if "result" in message:
                self._ambiguous(entry, request_id, now)
                return
        if type(entry) is Call:
            entry.raw = raw
            if "error" in message:
                self.complete(entry, answer_error(message, raw))
                return
            entry.message = message
            entry.done = True
            self._outbox.put(entry)
            if link.credential is not None and entry.credential == link.credential:
                link.token_confirmed = True
            effect = self._effects.get(entry.method)
            if effect is not None:
                self._answers.changed(effect, entry, link, now)
            return
        if entry is None:
            self._outbox.log(
                logging.DEBUG,
                "an answer to id %s came after its caller gave up",
                preview(request_id),
            )
            if "error" in message:
                self._unanswered_error(link, message)
            return
        assert isinstance(entry, Request)
        if entry.kind is DISCARD:
            if "error" in message:
                self._unanswered_error(link, message)
            return
        self._answers.answered(entry, message, raw, now)

    def _ambiguous(self, entry: Pending | None, request_id: int, now: float) -> None:
        self._outbox.log(
            logging.WARNING,
            "%s answered id %s with both a result and an error; the answer was dropped",
            self._display,
            preview(request_id),
        )
        error = ApiProtocolError(
            f"{self._display} answered with both a result and an error, so the "
            "outcome is unknown; check the state on Deribit before repeating the call"
        )
        if type(entry) is Call:
            self.complete(entry, error)
        elif isinstance(entry, Request):
            self._answers.ambiguous(entry, error, now)

    def _notification(self, link: Link, message: dict[str, Any], now: float) -> None:
        method = message.get("method")
        params = message.get("params")
        if method == "heartbeat" and isinstance(params, dict):
            if params.get("type") == "test_request":
                self.send(link, "public/test", {}, DISCARD, now)
                self._outbox.emit(HeartbeatAnswered(link.number, 0.0, now))
            return
        if method == "subscription" and isinstance(params, dict):
            self._subscription(params)
            return
        if "error" in message:
            self._unanswered_error(link, message)
            return
        self._outbox.log(
            logging.DEBUG,
            "ignored a message from %s: %.200s",
            self._display,
            redact(str(message)),
        )

    def _subscription(self, params: dict[str, Any]) -> None:
        """A subscription's notification: to its callback."""
        channel = params.get("channel")
        callback = self._subscriptions.get(channel) if isinstance(channel, str) else None
        if callback is None:
            self._outbox.log(
                logging.DEBUG, "a notification on %r, which nothing subscribed to", channel
            )
            return
        self._outbox.put(Deliver(callback, channel, params.get("data")))  # type: ignore[arg-type]

    def _unanswered_error(self, link: Link, message: dict[str, Any]) -> None:
        if error_code(message) == TOO_MANY_REQUESTS:
            link.throttled = True  # Deribit ends the connection after it: reconnect later
        self._outbox.log(
            logging.WARNING,
            "%s reported an error outside any call: %.300s",
            self._display,
            preview(message.get("error")),
        )


def _not_ready(call: Call, state: State) -> ApiTimeoutError:
    return ApiTimeoutError(
        f"the WebSocket session was not ready within {call.connect_timeout:g} s "
        f"(it is {state.value})"
    )


def decode(raw: Data, display: str) -> dict[str, Any] | None:
    """A message decoded, or None (logged) when it is not a JSON object."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        logger.warning(
            "%s sent a message that is not JSON; ignored: %.200s",
            display,
            redact(raw if isinstance(raw, str) else repr(raw)),
        )
        return None
    if type(message) is not dict:
        logger.warning("%s sent a JSON value that is not an object; ignored", display)
        return None
    return message
