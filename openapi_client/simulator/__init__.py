"""A local Deribit session-management API for offline tests of clients and bots.

>>> from openapi_client.simulator import DeribitSimulator, Fault
>>> with DeribitSimulator() as sim:
...     url = sim.url  # use as Configuration.host

It imports only the standard library and ``openapi_client.rate_limit`` / ``signing``. See
``docs/Simulator.md``.
"""

from __future__ import annotations

from .core import DEFAULT_CREDENTIALS, DEFAULT_TOKENS, DeribitSimulator
from .faults import Fault
from .recording import RecordedRequest

__all__ = ["DEFAULT_CREDENTIALS", "DEFAULT_TOKENS", "DeribitSimulator", "Fault", "RecordedRequest"]
