"""Process exit without close(), and one ApiClient shared by many threads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET

from openapi_client import ApiClient, Configuration, SessionManagementApi
from openapi_client.simulator import DeribitSimulator

pytestmark = pytest.mark.timeout(30)

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Starts a simulator and a client, and never stops or closes either.
PRELUDE = """
from openapi_client import ApiClient, Configuration, SessionManagementApi
from openapi_client.simulator import DeribitSimulator

simulator = DeribitSimulator(legacy_http=True).start()
configuration = Configuration(host=simulator.url, access_token="sim-token", retries=0)
api = SessionManagementApi(ApiClient(configuration))
"""

SCRIPTS = {
    "async-then-plain": """
        pending = api.public_set_heartbeat_get(30, async_req=True)
        print(pending.get(5)["result"])
        print(api.private_enable_cancel_on_disconnect_get(scope="account")["result"])
        print(simulator.heartbeat_interval, simulator.cancel_on_disconnect["account"])
    """,
    "async-never-awaited": """
        print(api.public_disable_heartbeat_get()["result"])
        api.public_set_heartbeat_get(30, async_req=True)
        print("submitted")
    """,
    "hanging-server": """
        simulator.inject("hang", seconds=60)
        api.public_disable_heartbeat_get(async_req=True, _request_timeout=0.5)
        print("submitted")
    """,
}

EXPECTED_STDOUT = {
    "async-then-plain": "ok\nok\n30.0 True\n",
    "async-never-awaited": "ok\nsubmitted\n",
    "hanging-server": "submitted\n",
}


#: The script's last line: the (wall-clock) moment it reached its end.
EPILOGUE = """
import time
print(time.time(), flush=True)
"""


def run_script(body: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``body`` after PRELUDE; the seconds from its end to the process's exit (the start-up
    is not counted: a busy machine takes its time importing)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if part
    )
    source = PRELUDE + textwrap.dedent(body) + EPILOGUE
    completed = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        timeout=40,
        cwd=str(REPO_ROOT),
        env=env,
    )
    exited = time.time()
    *lines, ended = completed.stdout.splitlines(keepends=True) or ["nan"]
    completed.stdout = "".join(lines)
    return completed, exited - float(ended)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
@pytest.mark.timing
def test_script_exits_without_close(name: str) -> None:
    completed, exit_delay = run_script(SCRIPTS[name])
    assert completed.stderr == ""
    assert completed.returncode == 0
    assert completed.stdout == EXPECTED_STDOUT[name]
    # Far below the 60 s hang or the default 10 s read timeout a process waiting for its
    # calls would take.
    assert exit_delay < 5.0


# -- many threads, one client -------------------------------------------------------------------

THREADS = 16
CALLS = 25


def interval_for(thread: int, call: int) -> int:
    return 10 + thread * 1000 + call


def test_threads_share_one_client(api: SessionManagementApi, simulator: DeribitSimulator) -> None:
    api.private_enable_cancel_on_disconnect_get(scope="account")
    simulator.clear_requests()
    start = threading.Barrier(THREADS, timeout=10)
    errors: list[BaseException] = []
    answers: dict[int, list[tuple[int, dict, dict]]] = {}

    def work(thread: int) -> None:
        mine: list[tuple[int, dict, dict]] = []
        answers[thread] = mine
        try:
            start.wait()
            for call in range(CALLS):
                interval = interval_for(thread, call)
                scope = ("connection", "account")[(thread + call) % 2]
                heartbeat = api.public_set_heartbeat_get(interval)
                setting = api.private_get_cancel_on_disconnect_get(scope=scope)
                mine.append((interval, heartbeat, setting["result"]))
        except BaseException as error:  # reported below, with the thread that saw it
            errors.append(error)

    workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(THREADS)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 20
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    assert not any(worker.is_alive() for worker in workers)
    assert errors == []

    expected = {interval_for(t, c) for t in range(THREADS) for c in range(CALLS)}
    for thread in range(THREADS):
        assert [interval for interval, _, _ in answers[thread]] == [
            interval_for(thread, call) for call in range(CALLS)
        ]
        for call, (_, heartbeat, setting) in enumerate(answers[thread]):
            assert heartbeat["result"] == "ok"
            scope = ("connection", "account")[(thread + call) % 2]
            assert setting == {"scope": scope, "enabled": scope == "account"}

    requests = simulator.requests
    sent = [r.query["interval"] for r in requests if r.path.endswith("/set_heartbeat")]
    assert len(sent) == THREADS * CALLS
    assert sorted(int(value) for value in sent) == sorted(expected)
    scopes = [r.query["scope"] for r in requests if r.path.endswith("/get_cancel_on_disconnect")]
    assert len(scopes) == THREADS * CALLS
    assert scopes.count("account") == scopes.count("connection") == THREADS * CALLS // 2
    assert simulator.heartbeat_interval in expected


def test_async_calls_from_many_threads(
    configuration: Configuration, simulator: DeribitSimulator
) -> None:
    with ApiClient(configuration, pool_threads=4) as client:
        api = SessionManagementApi(client)
        pending: list[tuple[str, object]] = []
        lock = threading.Lock()

        def submit(thread: int) -> None:
            for call in range(10):
                scope = ("connection", "account")[(thread + call) % 2]
                result = api.private_get_cancel_on_disconnect_get_with_http_info(
                    scope=scope, async_req=True
                )
                with lock:
                    pending.append((scope, result))

        workers = [threading.Thread(target=submit, args=(n,), daemon=True) for n in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        assert len(pending) == 80
        for scope, result in pending:
            data, status, _ = result.get(10)  # type: ignore[attr-defined]
            assert status == 200
            assert data["result"] == {"scope": scope, "enabled": False}
    assert len(simulator.requests) == 80


def test_threads_share_one_fetched_token(simulator: DeribitSimulator) -> None:
    configuration = Configuration(
        host=simulator.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        auth_method="client_credentials",
        retries=0,
        request_timeout=(2.0, 2.0),
    )
    start = threading.Barrier(8, timeout=10)
    results: list[object] = []

    def work() -> None:
        start.wait()
        for _ in range(5):
            results.append(api.private_get_cancel_on_disconnect_get(scope="account")["result"])

    with ApiClient(configuration) as client:
        api = SessionManagementApi(client)
        workers = [threading.Thread(target=work, daemon=True) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
    assert results == [{"scope": "account", "enabled": False}] * 40
    assert simulator.auth_requests == 1
    bearers = {r.header("Authorization") for r in simulator.requests if "/private/" in r.path}
    assert len(bearers) == 1
