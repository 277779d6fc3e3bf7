"""A soak: 20,000 calls on one client, with resident memory flat after a warm-up.

Client and simulator share this process, so the measure covers both; the simulator keeps only a
short request log so that its record of the calls does not count as a leak. The test counts
calls, not seconds: about 2 s on an idle machine, and pytest-timeout's bound below catches a hang.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest
from conftest import TOKEN

from openapi_client import ApiClient, Configuration, SessionManagementApi
from openapi_client.simulator import DeribitSimulator

CALLS = 20_000
WARM_UP = 2_000
#: A generous safety bound; the benchmarks hold tighter targets.
MAX_GROWTH = 2 * 1024 * 1024

pytestmark = pytest.mark.timeout(60)

STATUS = Path("/proc/self/status")


def resident_bytes() -> int:
    """This process's resident set size (VmRSS), after a full garbage collection."""
    gc.collect()
    for line in STATUS.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line in /proc/self/status")


def call(api: SessionManagementApi, index: int) -> None:
    """Call number ``index``: the four session-management methods in turn."""
    kind = index % 4
    if kind == 0:
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
    elif kind == 1:
        assert api.private_enable_cancel_on_disconnect_get("account")["result"] == "ok"
    elif kind == 2:
        assert api.private_get_cancel_on_disconnect_get("account")["result"]["enabled"] is True
    else:
        assert api.public_disable_heartbeat_get()["result"] == "ok"


@pytest.mark.skipif(not STATUS.exists(), reason="needs /proc/self/status (Linux)")
def test_soak_memory_stays_flat() -> None:
    with DeribitSimulator(request_log_size=100, legacy_http=True) as simulator:
        configuration = Configuration(
            host=simulator.url, access_token=TOKEN, request_timeout=(5.0, 5.0)
        )
        with ApiClient(configuration) as client:
            api = SessionManagementApi(client)
            for index in range(WARM_UP):
                call(api, index)
            baseline = resident_bytes()
            started = time.monotonic()
            for index in range(WARM_UP, CALLS):
                call(api, index)
            elapsed = time.monotonic() - started
            growth = resident_bytes() - baseline
        assert len(simulator.requests) == 100  # the short log: its records are not the growth
    print(
        f"\nsoak: {CALLS:,} calls ({CALLS - WARM_UP:,} after warm-up) in {elapsed:.1f} s "
        f"({(CALLS - WARM_UP) / elapsed:,.0f} calls/s); resident memory "
        f"{baseline / 2**20:.1f} MiB after warm-up, growth {growth / 1024:+.0f} KiB"
    )
    assert growth <= MAX_GROWTH
