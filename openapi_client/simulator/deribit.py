"""Deribit's numbers, and the simulator's choices where Deribit's behaviour is unconfirmed.

Everything a test might want to see change when Deribit's behaviour is better known lives here,
in API seconds (before :class:`DeribitSimulator`'s ``time_scale`` is applied). ``UNCONFIRMED``
marks a choice that no public source settles.
"""

from __future__ import annotations

__all__ = [
    "API_VERSION",
    "CLOSE_HEARTBEAT",
    "CLOSE_INACTIVITY",
    "CLOSE_LOGOUT",
    "CLOSE_TOO_MANY_REQUESTS",
    "CONNECTION_TOKEN_SECONDS",
    "INACTIVITY_SECONDS",
    "KNOWN_CHANNELS",
    "MAX_REQUEST_BYTES",
    "MAX_SESSIONS_PER_CLIENT",
    "MIN_HEARTBEAT_INTERVAL",
    "REST_SESSION_TOKEN_SECONDS",
    "SESSION_TOKEN_SECONDS",
    "UNAUTHENTICATED_IDLE_SECONDS",
    "WS_PATH",
]

#: What ``public/test`` and ``public/hello`` report as the API version.
API_VERSION = "1.2.26"
#: Where the WebSocket API is served.
WS_PATH = "/ws/api/v2"

#: The smallest heartbeat interval Deribit accepts, in seconds.
MIN_HEARTBEAT_INTERVAL = 10.0
#: A socket that is neither authenticated nor subscribed and has received nothing for this long
#: is dropped without a close frame (observed on the wire: about 60 s, close code 1006).
UNAUTHENTICATED_IDLE_SECONDS = 60.0
#: Any socket that has received nothing for this long is closed ("10 minutes of inactivity" on
#: Deribit's cancel-on-disconnect page); cancel-on-disconnect fires with reason "inactivity".
INACTIVITY_SECONDS = 600.0

#: Largest client-to-server message, in bytes; a larger one is answered with -32600.
MAX_REQUEST_BYTES = 32 * 1024

#: Close code and reason when a ``test_request`` went unanswered (observed on the wire).
CLOSE_HEARTBEAT = (4000, "heartbeat close")
#: Close code and reason after ``private/logout`` (a normal closure; the reason is UNCONFIRMED).
CLOSE_LOGOUT = (1000, "logout")
#: Close code and reason after error 10028 on a WebSocket (UNCONFIRMED: Deribit documents that it
#: "terminates the session", not how).
CLOSE_TOO_MANY_REQUESTS = (1008, "too_many_requests")
#: Close code and reason after :data:`INACTIVITY_SECONDS` of silence from the client (UNCONFIRMED).
CLOSE_INACTIVITY = (1000, "inactivity")

#: At most this many sessions (``session:NAME`` token scopes) per API key; a new one beyond it
#: removes the session with the shortest remaining lifetime (older docs, "Access scope").
MAX_SESSIONS_PER_CLIENT = 16

#: Access token lifetimes when ``token_ttl`` is not given, in seconds (what ``expires_in`` says):
#: a session's token (HTTP grants show 900),
SESSION_TOKEN_SECONDS = 900
#: the token of the session an HTTP grant without a scope creates (899 in a 2021 testnet capture),
REST_SESSION_TOKEN_SECONDS = 899
#: a connection-scoped token on a WebSocket (a 2022 production capture and the docs' example).
#: Over HTTP a connection-scoped token gets :data:`SESSION_TOKEN_SECONDS` (UNCONFIRMED).
CONNECTION_TOKEN_SECONDS = 31_536_000

#: Channels ``public/subscribe`` accepts; others are left out of its answer, as Deribit does with
#: channels it does not know.
KNOWN_CHANNELS = frozenset({"platform_state", "platform_state.public_methods_state"})
