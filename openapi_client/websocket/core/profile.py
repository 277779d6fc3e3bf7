"""What every new connection of a session is given, and what successful calls change of it.

The heartbeat interval, cancel-on-disconnect and the subscriptions start from the session's
settings; a successful ``public/set_heartbeat``, ``public/disable_heartbeat`` or
``private/enable_cancel_on_disconnect`` (and its opposite) changes them, so that the next
connection is restored as the program left the last one. The liveness limit follows the
heartbeat.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Callable

from openapi_client.endpoint import SessionEffect
from openapi_client.exceptions import ApiTypeError, ApiValueError
from openapi_client.websocket.core.links import Link
from openapi_client.websocket.core.outputs import Call, SubscriptionCallback
from openapi_client.websocket.events import logger

__all__ = ["EFFECTS", "LIVENESS_MARGIN", "Profile", "liveness_limit"]

#: Seconds of grace beyond 1.5 heartbeat intervals before a silent connection is declared dead.
LIVENESS_MARGIN = 5.0

_COD_EFFECTS = frozenset(
    {SessionEffect.ENABLE_CANCEL_ON_DISCONNECT, SessionEffect.DISABLE_CANCEL_ON_DISCONNECT}
)


class Profile:
    """The settings every new connection gets, kept up to date by calls.

    :param heartbeat: the heartbeat interval to begin with, or None.
    :param cancel_on_disconnect: whether to enable it, to begin with.
    :param liveness_timeout: seconds of silence that declare a connection dead; None derives it
        from the heartbeat.
    """

    __slots__ = ("_liveness_timeout", "cancel_on_disconnect", "heartbeat", "subscriptions")

    def __init__(
        self, heartbeat: float | None, cancel_on_disconnect: bool, liveness_timeout: float | None
    ) -> None:
        self.heartbeat = heartbeat
        self.cancel_on_disconnect = cancel_on_disconnect
        #: channel -> callback, renewed on every connection.
        self.subscriptions: dict[str, SubscriptionCallback] = {}
        self._liveness_timeout = liveness_timeout

    def liveness_limit(self) -> float | None:
        """Seconds of silence after which a connection is declared dead (None: never)."""
        timeout = self._liveness_timeout
        return timeout if timeout is not None else liveness_limit(self.heartbeat)

    def apply(self, effect: SessionEffect, call: Call, link: Link) -> bool:
        """Adopt what ``call``, answered with success on ``link``, changed; whether it set a
        new heartbeat interval (the liveness limit then changes)."""
        params = call.params
        if effect is SessionEffect.SET_HEARTBEAT:
            interval = params.get("interval") if call.checked else _heartbeat_interval(params)
            if interval is None:
                return False
            self.heartbeat = interval
            return True
        if effect is SessionEffect.DISABLE_HEARTBEAT:
            self.heartbeat = None
        elif effect in _COD_EFFECTS:
            enabled = effect is SessionEffect.ENABLE_CANCEL_ON_DISCONNECT
            link.cod = enabled
            if params.get("scope", "connection") == "connection":
                self.cancel_on_disconnect = enabled
        return False


def liveness_limit(heartbeat: float | None) -> float | None:
    """The default liveness limit for a heartbeat interval: ``1.5 * interval + 5`` seconds
    (Deribit sends a ``test_request`` about every interval, the first a little later)."""
    return None if heartbeat is None else 1.5 * heartbeat + LIVENESS_MARGIN


def _effects() -> dict[str, SessionEffect]:
    """Method name -> what it does to the session, for the declared methods that do anything
    (from :attr:`Endpoint.effect <openapi_client.endpoint.Endpoint.effect>`)."""
    from openapi_client.api.endpoints import ENDPOINTS

    return {
        endpoint.method: endpoint.effect
        for endpoint in ENDPOINTS
        if endpoint.effect is not SessionEffect.NONE
    }


#: Method name -> what a successful call of it does to the session (only those that do).
EFFECTS = _effects()


def _heartbeat_interval(params: Mapping[str, Any]) -> float | None:
    """The interval of ``public/set_heartbeat``'s ``params`` when it is one Deribit accepts (a
    number >= 10): only such an interval is kept for later connections and drives the liveness
    limit, whatever a server answered to another (a negative one declared every connection dead
    at once)."""
    value: Any = params.get("interval")
    try:
        _interval_check()(value)
    except (ApiValueError, ApiTypeError) as refused:
        logger.warning(
            "public/set_heartbeat was answered, but the session keeps its heartbeat: %s", refused
        )
        return None
    interval: float = value
    return interval


@functools.cache
def _interval_check() -> Callable[[Any], None]:
    """The check of ``public/set_heartbeat``'s ``interval``, as its declaration states it."""
    from openapi_client.api.endpoints import SET_HEARTBEAT

    (interval,) = (param for param in SET_HEARTBEAT.params if param.name == "interval")
    return interval.check
