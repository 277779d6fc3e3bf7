"""Benchmarks of the asyncio WebSocket session (issue 17), by the method of ``bench/websocket.py``.

    python bench/aio_websocket.py                  # the full run, about two minutes
    python bench/aio_websocket.py --quick          # fewer rounds, under a minute
    python bench/aio_websocket.py --only cpu,inflight --rounds 9
    python bench/aio_websocket.py --json bench/results/aio_websocket.json
    python bench/aio_websocket.py --check          # exit 1 when a target is missed

1. *cpu*: client CPU per call, ``await public_set_heartbeat_get(30)`` on an open
   ``openapi_client.aio.WebSocketApiClient``, against the simplest hand-written alternative on the
   same event loop machinery, a bare ``websockets.asyncio.client`` connection doing
   ``await send(json)`` then ``json.loads(await recv())`` with ``websockets``' defaults (which
   offer permessage-deflate; the simulator accepts it). Beside them, for context: the bare client
   with compression off, and the threaded session's call. Target: session / bare <= 1.0.
2. *latency*: from a ``test_request`` leaving the server to its ``public/test`` arriving there,
   while 8 tasks call as fast as they can on the same session; the idle session is the
   baseline. Target: p99 <= 5 ms.
3. *inflight*: 1,000 calls in flight on one session at once (``asyncio.gather``), each asking
   the server to echo a number of its own: every answer must carry its own call's number, none
   may come twice, and the server must have seen exactly 1,000 requests. Target: all correct.
4. *restore*: from a dropped connection (the server closes TCP without a close frame) to the
   session restored (authenticated, heartbeat and cancel-on-disconnect set again), with the
   default backoff; opening a fresh session is the baseline. Target: <= 1 s.
5. *memory*: VmRSS growth over 20,000 calls on one session, the bare connection for context.
   Target: <= 1 MiB.
6. *layers*: where a call's CPU goes, measured in one process with the variants taking turns
   block by block: the API class, a call by name, the session driver alone, and the bare client
   with and without compression. No target: context for 1.

The servers are ``bench/websocket.py``'s, each in a process of its own: the simulator (with a
fault that drops the connection on ``public/bench_drop``) for 1, 4 and 5, and for 2 and 3 its
heartbeat server (a ``test_request`` every 10 ms, timed by the server itself; it echoes
``public/bench_echo``). Every measurement runs in a fresh interpreter, the variants take turns
round after round, medians are reported with ratios of medians. Loopback only; every loop is
bounded in calls and in time, every subprocess by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, Callable

import websocket as threaded
from harness import (
    median,
)
from run import Row, verdict
from workloads import WorkloadError, vm_rss_kib

SCRIPT = str(Path(__file__).resolve())
BENCHMARKS = ("cpu", "latency", "inflight", "restore", "memory", "layers")

INFLIGHT = 1000
ECHO_METHOD = "public/bench_echo"

AsyncCall = Callable[[], Awaitable[Any]]
Samples = dict[str, list[dict[str, Any]]]
Progress = Callable[[str], None]


#: The plan of bench/websocket.py: the same rounds and counts (its ``threads`` are tasks here).
Plan = threaded.Plan


# == the measured side: ``python bench/aio_websocket.py worker NAME VARIANT ...`` ================


@contextlib.asynccontextmanager
async def opened(variant: str, url: str) -> Any:
    """``call``: an awaitable making ``public/set_heartbeat(30)`` and returning the envelope.

    * ``session``: ``aio.SessionManagementApi(aio.WebSocketApiClient(...))``;
    * ``bare``: one ``websockets.asyncio.client`` connection with its defaults, ``send(json)``,
      ``json.loads(recv())``; ``bare-plain``: the same with ``compression=None``.
    """
    if variant == "session":
        from openapi_client import aio

        async with aio.WebSocketApiClient(threaded._configuration(url)) as session:
            api = aio.SessionManagementApi(session)
            yield lambda: api.public_set_heartbeat_get(threaded.INTERVAL)
        return
    if variant in ("bare", "bare-plain"):
        from websockets.asyncio.client import connect

        from openapi_client.websocket import websocket_url

        options: dict[str, Any] = {"proxy": None}  # loopback: no proxy
        if variant == "bare-plain":
            options["compression"] = None
        async with connect(websocket_url(url), **options) as ws:
            ids = itertools.count(1)

            async def bare_call() -> Any:
                await ws.send(
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": next(ids),
                            "method": "public/set_heartbeat",
                            "params": {"interval": threaded.INTERVAL},
                        }
                    )
                )
                return json.loads(await ws.recv())

            yield bare_call
        return
    raise WorkloadError(f"unknown variant {variant!r}; choose session, bare or bare-plain")


def _check(answer: Any, variant: str) -> None:
    if not isinstance(answer, dict) or answer.get("result") != "ok":
        raise WorkloadError(f"{variant}: unexpected answer {answer!r}")


async def _calls(call: AsyncCall, count: int, deadline: float) -> tuple[int, Any]:
    """Up to ``count`` calls one after the other, stopping early once ``deadline`` has passed
    (looked at every 50 calls)."""
    done, last = 0, None
    while done < count and time.perf_counter() < deadline:
        for _ in range(min(50, count - done)):
            last = await call()
        done += min(50, count - done)
    return done, last


async def cpu(variant: str, url: str, calls: int, warmup: int, blocks: int, bound: float) -> Any:
    """Process CPU time per call, in ``blocks`` blocks (median block reported), after
    ``warmup`` calls and a full collection."""
    async with opened(variant, url) as call:
        _check(await call(), variant)
        await _calls(call, warmup, time.perf_counter() + bound / 4)
        gc.collect()
        deadline = time.perf_counter() + bound
        size = max(1, calls // blocks)
        block_cpu_us: list[float] = []
        done, last = 0, None
        while done < calls and time.perf_counter() < deadline:
            started = time.process_time()
            count, last = await _calls(call, min(size, calls - done), deadline)
            block_cpu_us.append((time.process_time() - started) / max(count, 1) * 1e6)
            done += count
        _check(last, variant)
    return {
        "variant": variant,
        "calls": done,
        "truncated": done < calls,
        "block_cpu_us": block_cpu_us,
        "cpu_us_block_median": statistics.median(block_cpu_us),
    }


async def memory(variant: str, url: str, calls: int, warmup: int, bound: float) -> Any:
    """VmRSS growth over ``calls`` calls after ``warmup`` calls and a full collection."""
    async with opened(variant, url) as call:
        _check(await call(), variant)
        await _calls(call, warmup, time.perf_counter() + bound / 4)
        gc.collect()
        before = vm_rss_kib()
        done, last = await _calls(call, calls, time.perf_counter() + bound)
        gc.collect()
        after = vm_rss_kib()
        _check(last, variant)
    growth = after - before
    return {"variant": variant, "calls": done, "truncated": done < calls, "growth_kib": growth}


async def latency(variant: str, url: str, tasks: int, seconds: float, calls: int) -> Any:
    """The heartbeat server's ``test_request`` -> ``public/test`` times over ``seconds``, with
    ``tasks`` tasks calling as fast as they can (``loaded``) or none (``idle``)."""
    from openapi_client import aio

    async with aio.WebSocketApiClient(threaded._configuration(url)) as ws:
        api = aio.SessionManagementApi(ws)
        await ws.call("public/bench_reset")
        deadline = time.perf_counter() + seconds
        counts = [0] * tasks

        async def hammer(index: int) -> None:
            while counts[index] < calls and time.perf_counter() < deadline:
                await api.public_set_heartbeat_get(threaded.INTERVAL)
                counts[index] += 1

        if variant == "loaded":
            await asyncio.gather(*(hammer(index) for index in range(tasks)))
        else:
            await asyncio.sleep(seconds)
        answer = await ws.call("public/bench_latencies")
    latencies_ms: list[float] = answer["result"]
    return {
        "variant": variant,
        "calls": sum(counts),
        "samples": len(latencies_ms),
        "p50_ms": threaded._percentile(latencies_ms, 0.50),
        "p99_ms": threaded._percentile(latencies_ms, 0.99),
        "max_ms": max(latencies_ms, default=float("nan")),
        "latencies_ms": latencies_ms,
        "truncated": False,
    }


async def inflight(url: str, count: int) -> Any:
    """``count`` calls in flight on one session at once, each asking for an echo of its own
    number; how many came back right, how many twice, and how long it took."""
    from openapi_client import aio

    async with aio.WebSocketApiClient(threaded._configuration(url)) as ws:
        await ws.call("public/bench_reset")
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(ws.call(ECHO_METHOD, {"n": n}) for n in range(count)), return_exceptions=True
        )
        elapsed = time.perf_counter() - started
        seen = (await ws.call("public/bench_requests"))["result"]
    correct = sum(
        1
        for n, answer in enumerate(answers)
        if isinstance(answer, dict) and answer.get("result") == {"n": n}
    )
    ids = [answer.get("id") for answer in answers if isinstance(answer, dict)]
    return {
        "variant": "session",
        "calls": count,
        "correct": correct,
        "repeated": len(ids) - len(set(ids)),
        "errors": sum(1 for answer in answers if isinstance(answer, BaseException)),
        "server_requests": seen,
        "ms": elapsed * 1000,
        "truncated": False,
    }


async def restore(url: str, drops: int, bound: float) -> Any:
    """``drops`` times: the server drops the connection; the time from the client seeing the
    drop to the session restored, each paired with opening a fresh session (the baseline)."""
    from openapi_client import ApiConnectionError, aio
    from openapi_client.websocket import Disconnected, SessionRestored

    configuration = threaded._configuration(url, key=True)
    options: dict[str, Any] = {"heartbeat": threaded.INTERVAL, "cancel_on_disconnect": True}
    restore_ms: list[float] = []
    fresh_ms: list[float] = []
    deadline = time.perf_counter() + bound
    async with aio.WebSocketApiClient(configuration, **options) as ws:
        events = ws.events(timeout=bound)
        async for event in events:
            if isinstance(event, SessionRestored):
                break
        for _ in range(drops):
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            async with aio.WebSocketApiClient(configuration, **options):
                fresh_ms.append((time.perf_counter() - started) * 1000)
            with contextlib.suppress(ApiConnectionError):
                await ws.call(threaded.DROP_METHOD)
            lost = None
            async for event in events:
                if isinstance(event, Disconnected):
                    lost = event
                elif isinstance(event, SessionRestored) and lost is not None:
                    restore_ms.append((event.time - lost.time) * 1000)
                    break
            else:
                raise WorkloadError("the session was not restored in time")
    return {
        "variant": "session",
        "calls": len(restore_ms),
        "restore_ms": restore_ms,
        "fresh_ms": fresh_ms,
        "truncated": len(restore_ms) < drops,
    }


async def layers(url: str, turns: int, block: int) -> Any:
    """CPU per call of the layers of a call, measured in one process with the variants taking
    turns block by block: the API class, a call by name, the session driver alone
    (``AsyncSession.call``), and the bare client with and without compression."""
    from openapi_client import aio

    async with contextlib.AsyncExitStack() as stack:
        ws = await stack.enter_async_context(aio.WebSocketApiClient(threaded._configuration(url)))
        api = aio.SessionManagementApi(ws)
        driver = ws._session
        calls: dict[str, AsyncCall] = {
            "API class": lambda: api.public_set_heartbeat_get(threaded.INTERVAL),
            "call by name": lambda: ws.call("public/set_heartbeat", {"interval": 30}),
            "session driver alone": lambda: driver.call(
                "public/set_heartbeat", {"interval": 30}, 5.0, 5.0
            ),
            "bare, compression off": await stack.enter_async_context(opened("bare-plain", url)),
            "bare": await stack.enter_async_context(opened("bare", url)),
        }
        for call in calls.values():
            await _calls(call, 300, time.perf_counter() + 30)
        gc.collect()
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(turns):
            for name, call in calls.items():
                started = time.process_time()
                await _calls(call, block, time.perf_counter() + 30)
                samples[name].append((time.process_time() - started) / block * 1e6)
    return {
        "variant": "session",
        "calls": turns * block,
        "us": {name: statistics.median(values) for name, values in samples.items()},
        "truncated": False,
    }


def bench_layers(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    samples = rounds("layers", ("session",), common(url, plan), plan, progress)
    names = list(samples["session"][0]["us"])
    us = {name: median([result["us"][name] for result in samples["session"]]) for name in names}
    floor = us["bare, compression off"]
    rows = [
        Row(
            f"aio_layers_{index}",
            ("6. in one process, us: " if index == 0 else "   ") + name,
            us[name],
            floor,
            us[name] / floor,
            "-",
            "info",
        )
        for index, name in enumerate(names)
    ]
    return {"us": us}, rows


# == the parent: rounds, medians, ratios ==========================================================


def _worker(variant: str) -> tuple[str, str]:
    """Which script measures ``variant``: this one, but the threaded session's call, which is
    bench/websocket.py's own ``session``."""
    return (threaded.SCRIPT, "session") if variant == "threaded" else (SCRIPT, variant)


def rounds(
    name: str, variants: Sequence[str], args: Sequence[str], plan: Plan, progress: Progress
) -> Samples:
    """``plan.rounds`` rounds of worker ``name``, the variants in rotating order."""
    return threaded.rounds(name, variants, args, plan, progress, _worker)


def bench_latency(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    return threaded.bench_latency(url, plan, progress, _worker, "aio", 2, "tasks")


def bench_restore(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    return threaded.bench_restore(url, plan, progress, _worker, "aio", 4)


def bench_memory(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    return threaded.bench_memory(url, plan, progress, _worker, "aio", 5)


def common(url: str, plan: Plan) -> list[str]:
    return ["--url", url, "--max-seconds", str(plan.max_seconds)]


def bench_cpu(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    args = [*common(url, plan), "--calls", str(plan.cpu_calls), "--warmup", str(plan.cpu_warmup)]
    variants = ("session", "bare", "bare-plain", "threaded")
    samples = rounds("cpu", variants, args, plan, progress)
    key = "cpu_us_block_median"
    ours, bare, ratio, ratio_range = threaded.paired(samples, key, "session", "bare")
    plain, _, plain_ratio, _ = threaded.paired(samples, key, "bare-plain", "bare")
    sync, _, sync_ratio, _ = threaded.paired(samples, key, "threaded", "bare")
    rows = [
        Row(
            "aio_cpu",
            f"1. CPU per call on an asyncio session, us ({plan.rounds} x {plan.cpu_calls:,})",
            ours,
            bare,
            ratio,
            f"<= {threaded.CPU_TARGET:.2f}",
            verdict(ratio <= threaded.CPU_TARGET),
            ratio_range,
        ),
        Row(
            "aio_cpu_plain",
            "   beside it: the bare client, compression off, us",
            plain,
            bare,
            plain_ratio,
            "-",
            "info",
            note=f"session/bare-plain {ours / plain:.2f}",
        ),
        Row(
            "aio_cpu_threaded",
            "   beside it: the threaded session's call, us",
            sync,
            bare,
            sync_ratio,
            "-",
            "info",
            note=f"asyncio/threaded {ours / sync:.2f}",
        ),
    ]
    data = {variant: threaded.column(samples, variant, key) for variant in samples}
    return {"cpu_us_block_median": data, "ratio": ratio}, rows


def bench_inflight(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    samples = rounds("inflight", ("session",), [*common(url, plan)], plan, progress)
    results = samples["session"]
    right = all(
        r["correct"] == INFLIGHT and r["repeated"] == 0 and r["server_requests"] == INFLIGHT
        for r in results
    )
    rows = [
        Row(
            "aio_inflight",
            f"3. {INFLIGHT:,} calls in flight, answered right ({len(results)} rounds)",
            min(r["correct"] for r in results),
            INFLIGHT,
            None,
            f"= {INFLIGHT:,}",
            verdict(right),
            digits=0,
            note=f"twice: {sum(r['repeated'] for r in results)}, errors: "
            f"{sum(r['errors'] for r in results)}, median "
            f"{median([r['ms'] for r in results]):.0f} ms for all {INFLIGHT:,}",
        )
    ]
    return {"rounds": results}, rows


def main(argv: Sequence[str] | None = None) -> int:
    args, selected = threaded.parse_arguments(
        argv,
        prog="python bench/aio_websocket.py",
        description="Benchmark the asyncio WebSocket session (issue 17).",
        benchmarks=BENCHMARKS,
    )

    def steps(
        url: str, beats: str, plan: Plan, progress: Callable[[str], None]
    ) -> dict[str, Callable[[], Any]]:
        return {
            "cpu": lambda: bench_cpu(url, plan, progress),
            "latency": lambda: bench_latency(beats, plan, progress),
            "inflight": lambda: bench_inflight(beats, plan, progress),
            "restore": lambda: bench_restore(url, plan, progress),
            "memory": lambda: bench_memory(url, plan, progress),
            "layers": lambda: bench_layers(url, plan, progress),
        }

    return threaded.run(
        args, selected, steps, lambda title: title.replace("WebSocket", "asyncio WebSocket", 1)
    )


def _worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python bench/aio_websocket.py worker")
    parser.add_argument("name", choices=BENCHMARKS)
    parser.add_argument("variant")
    parser.add_argument("--url", required=True)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8, help="tasks calling (latency)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--drops", type=int, default=10)
    args = parser.parse_args(argv)
    bound = args.max_seconds
    if args.name == "cpu":
        work = cpu(args.variant, args.url, args.calls, args.warmup, 10, bound)
    elif args.name == "memory":
        work = memory(args.variant, args.url, args.calls, args.warmup, bound)
    elif args.name == "latency":
        work = latency(args.variant, args.url, args.threads, min(args.seconds, bound), args.calls)
    elif args.name == "inflight":
        work = inflight(args.url, INFLIGHT)
    elif args.name == "layers":
        work = layers(args.url, turns=15, block=300)
    else:
        work = restore(args.url, args.drops, bound)
    print(json.dumps(asyncio.run(asyncio.wait_for(work, bound * 2))))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        sys.exit(_worker_main(sys.argv[2:]))
    sys.exit(main())
