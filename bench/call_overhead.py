"""The Python a WebSocket call costs above its session driver, with no I/O.

    python bench/call_overhead.py                    # the work tree, 7 rounds
    python bench/call_overhead.py --ref main         # the work tree and a git revision, in turns

A call made through the API class goes through the call driver, the call plan and the
transport before it reaches the session driver (``AsyncSession.call``, ``Session.call``). Here
the session driver is replaced by a stand-in whose ``call`` returns an answered call at once, so
what is timed is that Python alone: ``await aio.SessionManagementApi(...)
.public_set_heartbeat_get(30)`` on an ``aio.WebSocketApiClient`` that never connects, and
``SessionManagementApi(...).public_set_heartbeat_get(30)`` on the threaded transport under a
:class:`~openapi_client.core.CallDriver`. Without sockets and wake-ups the figure is steadier
than ``bench/aio_websocket.py``'s, and shows a change of a few tenths of a microsecond; it says
nothing of the cost of the socket, the session driver or the event loop.

Each round is a fresh interpreter (``worker``) that times 20,000 calls of each client after as
many warm-up calls (process CPU time); with ``--ref`` the work tree and the revision take turns
round by round. The medians and ranges of the rounds are printed, in µs per call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import PYTHON, REPO_ROOT, BenchError, median, snapshot, spread, worker_env

SCRIPT = str(Path(__file__).resolve())
ANSWER = {"jsonrpc": "2.0", "id": 1, "result": "ok"}


# == the measured side: ``python bench/call_overhead.py worker --calls N`` ======================


class _Answered:
    """A session driver's call, answered: what the transport reads of it."""

    credential = None
    error = None
    raw = json.dumps(ANSWER)
    message = ANSWER


class _AsyncSession:
    accepting_calls = True

    async def call(self, *args: Any) -> _Answered:
        return _Answered()


class _Session:
    accepting_calls = True

    def call(self, *args: Any) -> _Answered:
        return _Answered()


def _per_call_us(run: Any, calls: int) -> float:
    run(calls)  # warm-up
    started = time.process_time()
    run(calls)
    return (time.process_time() - started) / calls * 1e6


def worker(calls: int) -> dict[str, float]:
    from openapi_client import Configuration, SessionManagementApi, aio
    from openapi_client.core import CallDriver
    from openapi_client.websocket.client import SessionTransport

    configuration = Configuration(host="http://127.0.0.1:9/api/v2", access_token="sim-token")
    client = aio.WebSocketApiClient(configuration)  # never opened: no I/O
    client._transport.session = _AsyncSession()  # type: ignore[assignment]
    aio_api = aio.SessionManagementApi(client)

    async def aio_calls(count: int) -> None:
        for _ in range(count):
            await aio_api.public_set_heartbeat_get(30)

    transport = SessionTransport(configuration, _Session())
    api = SessionManagementApi(CallDriver(configuration, transport))

    def threaded_calls(count: int) -> None:
        for _ in range(count):
            api.public_set_heartbeat_get(30)

    return {
        "asyncio": _per_call_us(lambda count: asyncio.run(aio_calls(count)), calls),
        "threaded": _per_call_us(threaded_calls, calls),
    }


# == the parent: rounds in fresh interpreters ===================================================


def _round(root: Path, calls: int) -> dict[str, float]:
    try:
        completed = subprocess.run(
            [PYTHON, SCRIPT, "worker", "--calls", str(calls)],
            cwd=root,
            env=worker_env(root),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError("worker timed out after 120 s") from None
    if completed.returncode != 0:
        tail = completed.stderr.decode("utf-8", "replace").strip()[-1500:]
        raise BenchError(f"worker failed (exit {completed.returncode}): {tail}")
    result: dict[str, float] = json.loads(completed.stdout.decode().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/call_overhead.py", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--ref", help="a git revision to measure in turns with the work tree")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as cleanup:
        trees = {"work tree": REPO_ROOT}
        if args.ref:
            scratch = Path(tempfile.mkdtemp(prefix="openapi-client-overhead-"))
            cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
            trees[f"{args.ref} ({snapshot(args.ref, scratch)})"] = scratch
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, root in trees.items():
                samples[name].append(_round(root, args.calls))
    print(f"{'us per call, ' + str(args.rounds) + ' rounds':34} {'asyncio':>22} {'threaded':>22}")
    for name, results in samples.items():
        cells = []
        for client in ("asyncio", "threaded"):
            values = [result[client] for result in results]
            low, high = spread(values)
            cells.append(f"{median(values):7.2f} [{low:.2f}-{high:.2f}]")
        print(f"{name:34} {cells[0]:>22} {cells[1]:>22}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        parser = argparse.ArgumentParser(prog="python bench/call_overhead.py worker")
        parser.add_argument("--calls", type=int, default=20000)
        print(json.dumps(worker(parser.parse_args(sys.argv[2:]).calls)))
        sys.exit(0)
    sys.exit(main())
