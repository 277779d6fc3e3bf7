"""Fork safety (issue 16, promise 5): after ``os.fork()``, the child's copy of a
``WebSocketApiClient`` never touches the parent's socket, threads or request ids. It refuses
every call with an ``ApiValueError`` that says to build a new client, and ``close()`` does
nothing; the parent goes on and gets only its own answers. The fork happens in a child process
(a forked pytest worker would inherit its threads), against the simulator over loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from test_websocket_support import run_script

from openapi_client.simulator import DeribitSimulator

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork"),
]

FORKING_SESSION = r"""
import json, os, sys, threading
from openapi_client import ApiException, ApiValueError, Configuration
from openapi_client.websocket import WebSocketApiClient

configuration = Configuration(
    host=sys.argv[1], access_token="sim-token", request_timeout=(5, 5), retries=0
)
ws_client = WebSocketApiClient(configuration, heartbeat=10)
assert ws_client.call("public/test")["result"]["version"]
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # the child: every outcome goes to the parent through the pipe
    outcome = {}
    try:
        for attempt in range(10):
            try:
                answer = ws_client.call("public/get_time")
                outcome.setdefault("calls", []).append(f"answered: {answer.get('result')!r}")
            except ApiValueError as error:
                outcome.setdefault("calls", []).append(str(error))
            except BaseException as error:
                outcome.setdefault("calls", []).append(repr(error))
        outcome["state"] = ws_client.state.value
        ws_client.close()  # the parent's connection: nothing to do here
        outcome["events"] = [type(event).__name__ for event in ws_client.events(timeout=0.1)]
    finally:
        os.write(write, json.dumps(outcome).encode())
        os._exit(0)
os.close(write)
wrong = []
for _ in range(40):
    try:
        result = ws_client.call("public/test")["result"]
        if not (isinstance(result, dict) and "version" in result):
            wrong.append(repr(result))  # another call's answer
    except ApiException as error:
        wrong.append(repr(error))
child = json.loads(os.read(read, 1 << 20) or b"{}")
_, status = os.waitpid(pid, 0)
state = ws_client.state.value
ws_client.close()
print(json.dumps({"child": child, "child_exit": status, "parent_wrong": wrong, "state": state}))
"""


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with DeribitSimulator(time_scale=0.1) as simulator:
        yield simulator


def test_a_forked_child_refuses_calls_and_the_parent_gets_only_its_answers(
    sim: DeribitSimulator,
) -> None:
    """Before, the child wrote on the parent's socket with the parent's next ids and read its
    answers: the parent got the child's answers, or none."""
    seen = run_script(FORKING_SESSION, sim.url, timeout=25)
    child = seen["child"]
    assert len(child["calls"]) == 10 and all(
        call.startswith("this WebSocketApiClient was created in another process")
        and "build a new WebSocketApiClient" in call
        for call in child["calls"]
    ), child
    assert (child["state"], child["events"], seen["child_exit"]) == ("closed", [], 0)
    assert seen["parent_wrong"] == [] and seen["state"] == "ready", seen
    # The child sent nothing: the parent's connection carried the parent's calls only.
    assert not any(r.path.endswith("/public/get_time") for r in sim.requests)
    assert len({r.connection_id for r in sim.requests}) == 1
    assert sum(r.path.endswith("/public/test") for r in sim.requests) >= 41
