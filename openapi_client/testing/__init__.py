"""Test your bot offline: the simulator, clients configured against it, and assertions.

Installing the package registers a pytest plugin (:mod:`openapi_client.testing.plugin`) whose
fixtures need no ``conftest.py``::

    def test_bot_turns_heartbeats_on(deribit):
        with deribit.ws_client(heartbeat=10) as session:
            run_my_bot(session)
        deribit.assert_called("public/set_heartbeat")

Outside pytest, :class:`DeribitTestKit` works on any running
:class:`~openapi_client.simulator.DeribitSimulator`. See ``docs/Testing.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "DeribitTestKit",
    "Fault",
    "ManualClock",
    "simulator_configuration",
]

if TYPE_CHECKING:
    from openapi_client.testing.kit import (
        CLIENT_ID,
        CLIENT_SECRET,
        DeribitTestKit,
        Fault,
        ManualClock,
        simulator_configuration,
    )


def __getattr__(name: str) -> Any:
    """The kit's names, loaded on first use (:mod:`openapi_client.testing.kit`). The pytest
    plugin lives in this package, so every pytest run of a project that has the library installed
    imports it: until a test uses a fixture, that costs the run neither the simulator nor the
    clients."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    kit = importlib.import_module("openapi_client.testing.kit")
    return getattr(kit, name)
