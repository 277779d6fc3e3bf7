"""The session's decisions, without I/O: what to send, when, and what it means.

:class:`SessionCore` holds every rule of a Deribit WebSocket session: JSON-RPC ids and the routing
of answers, ``test_request`` answered with ``public/test``, the restore sequence on every new
connection (``public/hello``, authentication, the heartbeat, cancel-on-disconnect, the
subscriptions) before queued calls go ahead, what cancel-on-disconnect may have done when a
connection ends, liveness, backoff with jitter and the throttle floor after 429/10028, token
renewal, re-authentication after 13009, the watchdog, what a successful call changes, and the
events a program sees. It never reads a clock (time is an input, ``now``, in monotonic seconds),
sleeps, locks, or touches a socket, a thread, ``asyncio`` or ``websockets``: a *driver* does the
I/O and feeds it.

Inputs are methods (:meth:`~SessionCore.start`, :meth:`~SessionCore.opened`,
:meth:`~SessionCore.receive`, :meth:`~SessionCore.timer`, :meth:`~SessionCore.submit`, ...).
Outputs accumulate until the driver takes them with :meth:`~SessionCore.take_outputs`, in order:

* :class:`Send` a frame on a connection, :class:`Open` a connection, :class:`Close` one (closing
  handshake), :class:`Abort` one (cut at once);
* a :class:`Call` that is complete (its ``message`` or ``error`` set): wake its caller;
* an event (:mod:`openapi_client.websocket.events`): publish it;
* :class:`Deliver`: run a subscription callback;
* :data:`WAKE`: something is due sooner than :meth:`~SessionCore.next_deadline` said last.

This module names what drivers use; the code is in :mod:`openapi_client.websocket.core`, one
concern per module. ``SESSION_CORE_API.md`` at the top of the work tree describes the contract a
driver keeps.
"""

from __future__ import annotations

from openapi_client.websocket.core.backoff import MAX_RECONNECT_DELAY, retry_delay
from openapi_client.websocket.core.links import CLOSE_GRACE as CLOSE_GRACE
from openapi_client.websocket.core.outputs import (
    WAKE,
    Abort,
    Call,
    Close,
    CoreSettings,
    Deliver,
    Log,
    Open,
    Output,
    Send,
    State,
)
from openapi_client.websocket.core.outputs import SubscriptionCallback as SubscriptionCallback
from openapi_client.websocket.core.profile import LIVENESS_MARGIN, liveness_limit
from openapi_client.websocket.core.restore import CLIENT_NAME, subscription_method
from openapi_client.websocket.core.routing import SWEEP_SECONDS as SWEEP_SECONDS
from openapi_client.websocket.core.routing import decode
from openapi_client.websocket.core.session import FORKED, SessionCore
from openapi_client.websocket.core.tokens import fixed_token, private_params, uses_key
from openapi_client.websocket.core.watchdog import MIN_WATCHDOG

__all__ = [
    "CLIENT_NAME",
    "FORKED",
    "LIVENESS_MARGIN",
    "MAX_RECONNECT_DELAY",
    "MIN_WATCHDOG",
    "WAKE",
    "Abort",
    "Call",
    "Close",
    "CoreSettings",
    "Deliver",
    "Log",
    "Open",
    "Output",
    "Send",
    "SessionCore",
    "State",
    "decode",
    "fixed_token",
    "liveness_limit",
    "private_params",
    "retry_delay",
    "subscription_method",
    "uses_key",
]
