"""``async_req=True`` calls at their edges: a result asked for too early, and a call whose
``call_timeout`` runs out while it waits for a pool thread (that wait is the call's time too).
"""

from __future__ import annotations

import pytest

from openapi_client import ApiCallTimeoutError, ApiClient, Configuration, SessionManagementApi
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(15)

DISABLE = "/public/disable_heartbeat"


def test_unfinished_result_says_so(simulator: DeribitSimulator) -> None:
    simulator.inject("delay", seconds=0.3, path=DISABLE)
    with ApiClient(Configuration(host=simulator.url, retries=0)) as client:
        pending = SessionManagementApi(client).public_disable_heartbeat_get(async_req=True)
        assert repr(pending) == "AsyncResult(pending)"
        assert not pending.ready()
        with pytest.raises(ValueError, match="the call has not finished yet"):
            pending.successful()
        assert pending.get(timeout=5)["result"] == "ok"
        assert pending.successful() and repr(pending) == "AsyncResult(done)"


def test_call_timeout_runs_out_while_queued_for_a_thread(simulator: DeribitSimulator) -> None:
    simulator.inject("delay", seconds=0.3, path=DISABLE)
    configuration = Configuration(host=simulator.url, retries=0, call_timeout=5)
    with ApiClient(configuration, pool_threads=1) as client:
        api = SessionManagementApi(client)
        first = api.public_disable_heartbeat_get(async_req=True)
        configuration.call_timeout = 0.1  # the next call has 0.1 s, and waits 0.3 s for a thread
        queued = api.public_disable_heartbeat_get(async_req=True)
        assert first.get(timeout=5)["result"] == "ok"
        with pytest.raises(ApiCallTimeoutError) as ran_out:
            queued.get(timeout=5)
    # No attempt was made, so there is no attempt count and no last error to report.
    assert str(ran_out.value) == "public_disable_heartbeat_get: the call_timeout (0.1 s) ran out"
    assert ran_out.value.__cause__ is None
    assert [request.path for request in simulator.requests] == ["/api/v2" + DISABLE]  # never sent
