"""A local Deribit session-management API for offline tests of clients and bots.

>>> from openapi_client.simulator import DeribitSimulator, Fault
>>> with DeribitSimulator() as sim:
...     url = sim.url  # use as Configuration.host

It imports only the standard library, plus ``websockets`` for its WebSocket API when that is
installed (the ``[websocket]`` extra); it shares no code with the client it judges. See
``docs/Simulator.md``.
"""

from __future__ import annotations

from .core import DEFAULT_CREDENTIALS, DEFAULT_TOKENS, DeribitSimulator
from .faults import Fault
from .keys import FULL_SCOPE, ApiKey
from .recording import CancelOnDisconnectEvent, RecordedRequest
from .sessions import SessionEviction, SessionInfo
from .state import WsConnectionInfo

__all__ = [
    "DEFAULT_CREDENTIALS",
    "DEFAULT_TOKENS",
    "FULL_SCOPE",
    "ApiKey",
    "CancelOnDisconnectEvent",
    "DeribitSimulator",
    "Fault",
    "RecordedRequest",
    "SessionEviction",
    "SessionInfo",
    "WsConnectionInfo",
]
