"""The restore sequence: what a new connection is sent before calls go on it.

On every connection, in order: ``public/hello``, authentication (``public/auth`` with the API
key; nothing when tokens go with each call), the heartbeat, cancel-on-disconnect (enabled, or
read so that a loss can say whether it may have fired), and the subscriptions. Each step waits
for the rate limit's turn and for its answer (at most ``call_timeout``); a step that fails ends
the connection, and the attempt with it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any, Callable, Optional

from openapi_client._version import __version__
from openapi_client.configuration import Configuration
from openapi_client.credentials import Token
from openapi_client.exceptions import ApiTimeoutError, ApiValueError, OpenApiException
from openapi_client.websocket.core.backoff import MAX_RECONNECT_DELAY
from openapi_client.websocket.core.links import Link, Links
from openapi_client.websocket.core.outputs import CoreSettings, Outbox
from openapi_client.websocket.core.profile import Profile
from openapi_client.websocket.core.routing import Request, Router
from openapi_client.websocket.core.tokens import AUTH, Tokens
from openapi_client.websocket.jsonrpc import Data, answer_error

__all__ = ["CLIENT_NAME", "STEPS", "Restore", "subscription_method"]

#: The name ``public/hello`` introduces the client with.
CLIENT_NAME = "openapi-client-deribit-session"

# The steps of the restore sequence, in order (``AUTH`` is also the kind of its request).
HELLO, HEARTBEAT, COD, SUBSCRIBE = "hello", "heartbeat", "cod", "subscribe"
#: The kinds of the restore steps' requests.
STEPS = frozenset({HELLO, AUTH, HEARTBEAT, COD, SUBSCRIBE})
_STEP_METHODS = {
    HELLO: "public/hello",
    AUTH: "public/auth",
    HEARTBEAT: "public/set_heartbeat",
    COD: "private/enable_cancel_on_disconnect",
    SUBSCRIBE: "public/subscribe",
}

_StepRequest = tuple[str, dict[str, Any], str, tuple[str, Optional[int]]]


class Restore:
    """Runs the restore sequence on each new connection.

    :param configuration: read for the rate limit of the session's own requests.
    :param settings: ``display`` and ``call_timeout``, for messages.
    :param profile: what every new connection gets.
    :param outbox: where log lines and wake-ups go.
    :param router: sends the steps' requests.
    :param tokens: authenticates the connection.
    :param links: closes a connection whose restore failed.
    :param restored: called with the link and ``now`` once its last step is done.
    """

    __slots__ = (
        "_configuration",
        "_links",
        "_outbox",
        "_profile",
        "_restored",
        "_router",
        "_settings",
        "_tokens",
    )

    def __init__(
        self,
        configuration: Configuration,
        settings: CoreSettings,
        profile: Profile,
        outbox: Outbox,
        router: Router,
        tokens: Tokens,
        links: Links,
        restored: Callable[[Link, float], None],
    ) -> None:
        self._configuration = configuration
        self._settings = settings
        self._profile = profile
        self._outbox = outbox
        self._router = router
        self._tokens = tokens
        self._links = links
        self._restored = restored

    def begin(self, link: Link, now: float) -> None:
        """``link`` is open: start its restore."""
        steps = [HELLO, AUTH]
        if self._profile.heartbeat is not None:
            steps.append(HEARTBEAT)
        if self._tokens.credentials_available:
            steps.append(COD)
        if self._profile.subscriptions:
            steps.append(SUBSCRIBE)
        link.steps = steps
        link.step = 0
        self._next_step(link, now)

    def _next_step(self, link: Link, now: float) -> None:
        """Send the request of ``link``'s current restore step (when the rate limit lets it),
        or finish the restore."""
        while link.step < len(link.steps):
            request = self._step_request(link, link.steps[link.step])
            if request is None:  # nothing to send for it (e.g. no API key to authenticate)
                link.step += 1
                continue
            rate_limit = self._configuration.rate_limit
            delay = rate_limit.reserve() if rate_limit is not None else 0.0
            if delay > 0.0:
                link.send_at = now + min(delay, MAX_RECONNECT_DELAY)
                self._outbox.at(link.send_at)
                return
            self._send_step(link, request, now)
            return
        link.step_deadline = math.inf
        self._restored(link, now)

    def _step_request(self, link: Link, step: str) -> _StepRequest | None:
        """``(method, params, kind, grant)`` of a restore step, None when it sends nothing."""
        no_grant: tuple[str, int | None] = ("", None)
        profile = self._profile
        if step == HELLO:
            params: dict[str, Any] = {"client_name": CLIENT_NAME, "client_version": __version__}
            return "public/hello", params, HELLO, no_grant
        if step == AUTH:
            if not self._tokens.uses_key:
                link.authorized = self._tokens.credentials_available
                return None
            method, params, grant = self._tokens.request()
            return method, params, AUTH, grant
        if step == HEARTBEAT:
            if profile.heartbeat is None:
                return None
            return "public/set_heartbeat", {"interval": profile.heartbeat}, HEARTBEAT, no_grant
        if step == COD:
            method = (
                "private/enable_cancel_on_disconnect"
                if profile.cancel_on_disconnect
                else "private/get_cancel_on_disconnect"
            )
            return method, _private(link, {"scope": "connection"}), COD, no_grant
        channels = tuple(profile.subscriptions)
        link.channels = channels
        if not channels:
            return None
        method = subscription_method(channels, "subscribe")
        params = {"channels": list(channels)}
        if method.startswith("private/"):
            params = _private(link, params)
        return method, params, SUBSCRIBE, no_grant

    def _send_step(self, link: Link, step: _StepRequest, now: float) -> None:
        method, params, kind, grant = step
        try:
            request = self._router.send(link, method, params, kind, now)
        except ApiValueError as refused:
            self.failed(link, refused, now)
            return
        request.grant = grant
        link.step_deadline = request.deadline

    def answered(self, request: Request, message: dict[str, Any], raw: Data, now: float) -> None:
        """The answer to a restore step's request."""
        link = request.link
        link.step_deadline = math.inf
        kind = request.kind
        if kind is AUTH:
            token = self._tokens.answered(request, message, raw, now)
            if isinstance(token, Request):  # the key grant follows the refused refresh grant
                link.step_deadline = token.deadline
                return
            if not isinstance(token, Token):
                self.failed(link, token, now)
                return
            self._tokens.adopt(link, token, now)
            link.step += 1
            self._next_step(link, now)
            return
        if "error" in message:
            error = answer_error(message, raw)
            if kind is COD and not self._profile.cancel_on_disconnect:
                self._outbox.log(
                    logging.INFO, "could not read the cancel-on-disconnect setting: %r", error
                )
                link.cod = None
                link.step += 1
                self._next_step(link, now)
                return
            self.failed(link, error, now)
            return
        result = message.get("result")
        if kind is COD:
            if self._profile.cancel_on_disconnect:
                link.cod = True
            else:
                link.cod = bool(result.get("enabled")) if isinstance(result, dict) else None
            link.token_confirmed = link.credential is not None
        elif kind is SUBSCRIBE:
            confirmed = [str(channel) for channel in result] if isinstance(result, list) else []
            missing = [channel for channel in link.channels if channel not in confirmed]
            if missing:
                self._outbox.log(
                    logging.WARNING,
                    "Deribit did not confirm the subscription to %s",
                    ", ".join(missing),
                )
        link.step += 1
        self._next_step(link, now)

    def failed(self, link: Link, error: OpenApiException, now: float) -> None:
        """A restore step failed: close the connection; once it has ended, the attempt counts as
        failed with ``error``."""
        link.step_deadline = math.inf
        link.send_at = math.inf
        if link.restore_error is None:
            link.restore_error = error
        self._links.close(link, 1000, "", "closed: the session could not be restored on it", now)

    def timers(self, link: Link, now: float) -> None:
        """The rate limit's turn for ``link``'s step came; or its answer did not."""
        if now >= link.send_at:
            link.send_at = math.inf
            request = self._step_request(link, link.steps[link.step])
            if request is None:
                link.step += 1
                self._next_step(link, now)
            else:
                self._send_step(link, request, now)
        if now >= link.step_deadline:
            link.step_deadline = math.inf
            self._router.forget(link, STEPS)
            step = link.steps[link.step] if link.step < len(link.steps) else "restore"
            self.failed(
                link,
                ApiTimeoutError(
                    f"{_STEP_METHODS.get(step, step)}: {self._settings.display} did not answer "
                    f"within {self._settings.call_timeout:g} s"
                ),
                now,
            )


def _private(link: Link, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` of a private step, with the connection's fixed token when it has one."""
    token = link.fixed_token
    if token is not None:
        params["access_token"] = token
    return params


def subscription_method(channels: Iterable[str], verb: str) -> str:
    """``public/<verb>``, or ``private/<verb>`` when a channel is a user's (``user.``)."""
    private = any(channel.startswith("user.") for channel in channels)
    return f"private/{verb}" if private else f"public/{verb}"
