"""Benchmarks of the WebSocket session (issue 10), by the method of ``bench/run.py``.

    python bench/websocket.py                  # the full run, about two and a half minutes
    python bench/websocket.py --quick          # fewer rounds, about 40 s
    python bench/websocket.py --only cpu,latency --rounds 9
    python bench/websocket.py --json bench/results/websocket.json
    python bench/websocket.py --check          # exit 1 when a target is missed

1. *cpu*: client CPU per call, ``public_set_heartbeat_get(30)`` on an open
   ``WebSocketApiClient``, against the simplest hand-written alternative, a bare
   ``websockets.sync.client`` connection doing ``send(json)`` then ``json.loads(recv())``;
   the project's HTTP call (``ApiClient``) beside them. Target: session / bare <= 1.0.
2. *latency*: from a ``test_request`` leaving the server to its ``public/test`` arriving there,
   while 8 threads call as fast as they can on the same session; the idle session is the
   baseline. Target: p99 <= 5 ms.
3. *restore*: from a dropped connection (the server closes TCP without a close frame) to the
   session restored (authenticated, heartbeat and cancel-on-disconnect set again), with the
   default backoff; opening a fresh session is the baseline. Target: <= 1 s.
4. *memory*: VmRSS growth over 20,000 calls on one session, the bare connection for context.
   Target: <= 1 MiB.

Servers run in processes of their own: the simulator (``simulator`` below: the embedded
simulator, with a fault that drops the connection on ``public/bench_drop``) for 1, 3 and 4, and
for 2 a small WebSocket server (``heartbeat-server``) that sends a ``test_request`` every 10 ms and
times the answers itself. Every measurement runs in a fresh interpreter (``worker``), the variants
take turns round after round, medians are reported with ratios of medians. Loopback only; every
loop is bounded in calls and in time, every subprocess by a timeout.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from harness import (
    BenchError,
    SimulatorProcess,
    median,
    rotated,
    run_worker,
    spread,
    terminate_on_sigterm,
)
from run import Report, Row, format_table, meta, verdict
from workloads import Call, WorkloadError, cpu, memory

SCRIPT = str(Path(__file__).resolve())
BENCHMARKS = ("cpu", "latency", "restore", "memory")

TOKEN = "sim-token"
CLIENT_ID, CLIENT_SECRET = "sim-client", "sim-secret"
INTERVAL = 30
#: The method the benchmark simulator answers by dropping the connection (no close frame).
DROP_METHOD = "public/bench_drop"
#: Seconds between two ``test_request`` of the heartbeat server.
TEST_REQUEST_EVERY = 0.010

CPU_TARGET = 1.0
LATENCY_TARGET_MS = 5.0
RESTORE_TARGET_MS = 1000.0
MEMORY_TARGET_KIB = 1024.0

Progress = Callable[[str], None]
Samples = dict[str, list[dict[str, Any]]]
#: Which script measures a variant, and the variant's name there (default: this script's own).
Workers = Callable[[str], tuple[str, str]]


@dataclass(frozen=True)
class Plan:
    rounds: int
    cpu_calls: int
    cpu_warmup: int
    cpu_blocks: int
    threads: int
    load_seconds: float
    load_calls: int
    drops: int
    memory_calls: int
    memory_warmup: int
    memory_variants: tuple[str, ...]
    #: Bound of each measured loop in a worker, in seconds.
    max_seconds: float

    @classmethod
    def make(cls, quick: bool, rounds: int | None) -> Plan:
        return cls(
            rounds=rounds if rounds is not None else (3 if quick else 5),
            cpu_calls=1000 if quick else 2000,
            cpu_warmup=200 if quick else 300,
            cpu_blocks=10,
            threads=8,
            load_seconds=2.0 if quick else 4.0,
            load_calls=100_000,
            drops=5 if quick else 10,
            memory_calls=20_000,
            memory_warmup=2000,
            # The quick run measures the target (the session) and skips the context.
            memory_variants=("session",) if quick else ("session", "bare"),
            max_seconds=60.0,
        )


# == the measured side: ``python bench/websocket.py worker NAME VARIANT ...`` ====================


def _configuration(url: str, key: bool = False) -> Any:
    from openapi_client import Configuration

    if key:
        return Configuration(host=url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    return Configuration(host=url, access_token=TOKEN)


def build(variant: str, url: str) -> tuple[Call, Callable[[], None]]:
    """``(call, close)``: ``call()`` makes ``public/set_heartbeat(30)`` and returns the envelope.

    * ``session``: ``SessionManagementApi(WebSocketApiClient(...)).public_set_heartbeat_get(30)``;
    * ``bare``: one ``websockets.sync.client`` connection, ``send(json)``, ``json.loads(recv())``;
    * ``http``: ``SessionManagementApi(ApiClient(...)).public_set_heartbeat_get(30)``.
    """
    from openapi_client import ApiClient, SessionManagementApi

    if variant == "session":
        from openapi_client.websocket import WebSocketApiClient

        ws_client = WebSocketApiClient(_configuration(url))
        session_api = SessionManagementApi(ws_client)
        return lambda: session_api.public_set_heartbeat_get(INTERVAL), ws_client.close
    if variant == "bare":
        from websockets.sync.client import connect

        from openapi_client.websocket import websocket_url

        opened = contextlib.ExitStack()
        ws = opened.enter_context(connect(websocket_url(url), proxy=None))  # loopback, no proxy
        ids = itertools.count(1)

        def bare_call() -> Any:
            ws.send(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": next(ids),
                        "method": "public/set_heartbeat",
                        "params": {"interval": INTERVAL},
                    }
                )
            )
            return json.loads(ws.recv(timeout=10))

        return bare_call, opened.close
    if variant == "http":
        http_client = ApiClient(_configuration(url))
        http_api = SessionManagementApi(http_client)
        return lambda: http_api.public_set_heartbeat_get(INTERVAL), http_client.close
    raise WorkloadError(f"unknown variant {variant!r}; choose session, bare or http")


def _percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile by the nearest rank (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * len(ordered) * 1000) // 1000))  # ceil, free of float noise
    return ordered[min(len(ordered), rank) - 1]


def latency(
    variant: str, url: str, threads: int, seconds: float, calls: int, max_seconds: float
) -> dict[str, Any]:
    """The heartbeat server's ``test_request`` -> ``public/test`` times over ``seconds``, with
    ``threads`` threads calling as fast as they can (``loaded``) or none (``idle``)."""
    from openapi_client import SessionManagementApi
    from openapi_client.websocket import WebSocketApiClient

    seconds = min(seconds, max_seconds)
    done = [0] * threads
    errors: list[str] = []
    with WebSocketApiClient(_configuration(url)) as ws_client:
        api = SessionManagementApi(ws_client)
        ws_client.call("public/bench_reset")
        deadline = time.perf_counter() + seconds

        def hammer(index: int) -> None:
            try:
                while done[index] < calls and time.perf_counter() < deadline:
                    api.public_set_heartbeat_get(INTERVAL)
                    done[index] += 1
            except Exception as error:  # reported: a thread has nowhere to raise to
                errors.append(f"thread {index}: {type(error).__name__}: {error}")

        pool = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(threads)]
        if variant == "loaded":
            for thread in pool:
                thread.start()
        time.sleep(max(0.0, deadline - time.perf_counter()))
        for thread in pool:
            if thread.is_alive() or variant == "loaded":
                thread.join(max_seconds)
        answer = ws_client.call("public/bench_latencies")
    if errors:
        raise WorkloadError("; ".join(errors))
    latencies_ms: list[float] = answer["result"]
    return {
        "variant": variant,
        "calls": sum(done),
        "samples": len(latencies_ms),
        "p50_ms": _percentile(latencies_ms, 0.50),
        "p99_ms": _percentile(latencies_ms, 0.99),
        "max_ms": max(latencies_ms, default=float("nan")),
        "latencies_ms": latencies_ms,
        "truncated": False,
    }


def restore(url: str, drops: int, max_seconds: float) -> dict[str, Any]:
    """``drops`` times: the server drops the connection; the time from the client seeing the
    drop to the session restored. Each is paired with opening a fresh session (the baseline)."""
    from openapi_client import ApiConnectionError
    from openapi_client.websocket import (
        Disconnected,
        Event,
        SessionRestored,
        WebSocketApiClient,
    )

    seen: list[Event] = []
    arrived = threading.Condition()

    def record(event: Event) -> None:
        with arrived:
            seen.append(event)
            arrived.notify_all()

    def wait_for(kind: type, count: int, timeout: float) -> list[Any]:
        """The events of ``kind`` once there are ``count`` (fewer when ``timeout`` ran out)."""

        def found() -> list[Any]:
            return [event for event in seen if isinstance(event, kind)]

        with arrived:
            arrived.wait_for(lambda: len(found()) >= count, timeout)
            return found()

    restore_ms: list[float] = []
    fresh_ms: list[float] = []
    deadline = time.perf_counter() + max_seconds
    options: dict[str, Any] = {"heartbeat": INTERVAL, "cancel_on_disconnect": True}
    with WebSocketApiClient(_configuration(url, key=True), on_event=record, **options) as ws_client:
        for index in range(drops):
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            fresh = WebSocketApiClient(_configuration(url, key=True), **options)
            fresh_ms.append((time.perf_counter() - started) * 1000)
            fresh.close()
            try:
                ws_client.call(DROP_METHOD)
            except ApiConnectionError:
                pass
            restored = wait_for(SessionRestored, index + 2, max_seconds)
            lost = wait_for(Disconnected, index + 1, max_seconds)
            if len(restored) < index + 2 or len(lost) < index + 1:
                raise WorkloadError(f"drop {index + 1}: the session was not restored in time")
            restore_ms.append((restored[index + 1].time - lost[index].time) * 1000)
    return {
        "variant": "session",
        "calls": len(restore_ms),
        "restore_ms": restore_ms,
        "fresh_ms": fresh_ms,
        "restore_ms_median": median(restore_ms),
        "fresh_ms_median": median(fresh_ms),
        "truncated": len(restore_ms) < drops,
    }


# == the servers ===================================================================================


def serve_simulator(host: str, port: int, max_connections: int, legacy_http: bool) -> None:
    """The embedded simulator with a fault that drops the connection on :data:`DROP_METHOD`;
    prints its URL, serves until SIGTERM."""
    from openapi_client.simulator import DeribitSimulator

    with DeribitSimulator(
        host=host, port=port, max_connections=max_connections, legacy_http=legacy_http
    ) as simulator:
        simulator.inject("ws_drop", count=10**9, path="/" + DROP_METHOD)
        print(simulator.url, flush=True)
        threading.Event().wait()


def serve_heartbeats(host: str, port: int, every: float) -> None:
    """A WebSocket server that sends a ``test_request`` every ``every`` seconds on each
    connection and times, by its own clock, how long each takes to come back as ``public/test``.
    Answers every other request with ``"ok"``; ``public/bench_latencies`` returns the times (ms)
    and ``public/bench_reset`` forgets them; ``public/bench_echo`` answers with its params and
    ``public/bench_requests`` counts those since the reset. Prints an ``http://`` URL, serves
    until SIGTERM.

    It runs on one asyncio loop (``websockets.asyncio``): a message is timed in the thread that
    read it from the socket, with no hand-over between threads on the server's side.
    ``threading`` is not needed here: the loop serves every connection.
    """
    import asyncio

    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    test_request = json.dumps(
        {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
    )

    async def connection(ws: ServerConnection) -> None:
        sent: collections.deque[float] = collections.deque()
        latencies: list[float] = []
        echoed = [0]  # public/bench_echo requests since the last reset (bench/aio_websocket.py)

        async def beat() -> None:
            while True:
                await asyncio.sleep(every)
                sent.append(time.perf_counter())
                await ws.send(test_request)

        beating = asyncio.ensure_future(beat())
        try:
            async for text in ws:
                arrived = time.perf_counter()
                request = json.loads(text)
                method = request.get("method")
                result: Any = "ok"
                if method == "public/test" and sent:
                    latencies.append((arrived - sent.popleft()) * 1000)
                    result = {"version": "bench"}
                elif method == "public/bench_latencies":
                    result = list(latencies)
                elif method == "public/bench_reset":
                    latencies.clear()
                    echoed[0] = 0
                elif method == "public/bench_echo":
                    echoed[0] += 1
                    result = request.get("params")
                elif method == "public/bench_requests":
                    result = echoed[0]
                answer = {"jsonrpc": "2.0", "id": request.get("id"), "result": result}
                await ws.send(json.dumps(answer))
        except ConnectionClosed:
            pass
        finally:
            beating.cancel()

    async def run() -> None:
        async with serve(connection, host, port, max_size=None) as server:
            bound = next(iter(server.sockets)).getsockname()[1]
            print(f"http://{host}:{bound}/api/v2", flush=True)
            await server.serve_forever()

    asyncio.run(run())


# == the parent: rounds, medians, ratios ==========================================================


def rounds(
    name: str,
    variants: Sequence[str],
    args: Sequence[str],
    plan: Plan,
    progress: Progress,
    workers: Workers | None = None,
) -> Samples:
    """``plan.rounds`` rounds of worker ``name``, the variants in rotating order; ``workers``
    says which script measures a variant, and under which name (``bench/aio_websocket.py``
    has its own)."""
    samples: Samples = {variant: [] for variant in variants}
    timeout = plan.max_seconds * 2 + 30
    for index in range(plan.rounds):
        progress(f"{name}: round {index + 1}/{plan.rounds}")
        for variant in rotated(list(variants), index):
            script, asked = (SCRIPT, variant) if workers is None else workers(variant)
            samples[variant].append(
                run_worker(name, [asked, *args], timeout, program=[script, "worker"])
            )
    return samples


def column(samples: Samples, variant: str, key: str) -> list[float]:
    return [float(result[key]) for result in samples[variant]]


def paired(
    samples: Samples, key: str, client: str, baseline: str
) -> tuple[float, float, float, tuple[float, float]]:
    """Medians of ``client`` and ``baseline``, their ratio, and the range of per-round ratios."""
    ours, theirs = column(samples, client, key), column(samples, baseline, key)
    per_round = [a / b for a, b in zip(ours, theirs)]
    return median(ours), median(theirs), median(ours) / median(theirs), spread(per_round)


def common(url: str, plan: Plan) -> list[str]:
    return ["--url", url, "--max-seconds", str(plan.max_seconds)]


def bench_cpu(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    args = [*common(url, plan), "--calls", str(plan.cpu_calls), "--warmup", str(plan.cpu_warmup)]
    samples = rounds("cpu", ("session", "bare", "http"), args, plan, progress)
    key = "cpu_us_block_median"
    ours, bare, ratio, ratio_range = paired(samples, key, "session", "bare")
    http, _, http_ratio, _ = paired(samples, key, "http", "bare")
    rows = [
        Row(
            "ws_cpu",
            f"1. CPU per call on a session, us ({plan.rounds} x {plan.cpu_calls:,})",
            ours,
            bare,
            ratio,
            f"<= {CPU_TARGET:.2f}",
            verdict(ratio <= CPU_TARGET),
            ratio_range,
        ),
        Row(
            "ws_cpu_http",
            "   beside it: the same call over HTTP, us",
            http,
            bare,
            http_ratio,
            "-",
            "info",
            note=f"session/HTTP {ours / http:.2f}",
        ),
    ]
    data = {variant: column(samples, variant, key) for variant in samples}
    return {"cpu_us_block_median": data, "ratio": ratio}, rows


def bench_latency(
    url: str,
    plan: Plan,
    progress: Progress,
    workers: Workers | None = None,
    key: str = "ws",
    number: int = 2,
    busy: str = "threads",
) -> tuple[dict[str, Any], list[Row]]:
    """Benchmark 2; ``workers``, ``key``, ``number`` and ``busy`` let bench/aio_websocket.py
    run it with its own workers (tasks calling, not threads)."""
    args = [
        *common(url, plan),
        "--threads", str(plan.threads),
        "--seconds", str(plan.load_seconds),
        "--calls", str(plan.load_calls),
    ]
    samples = rounds("latency", ("loaded", "idle"), args, plan, progress, workers)
    p99, idle_p99, ratio, ratio_range = paired(samples, "p99_ms", "loaded", "idle")
    p50, idle_p50, p50_ratio, _ = paired(samples, "p50_ms", "loaded", "idle")
    pooled = [ms for result in samples["loaded"] for ms in result["latencies_ms"]]
    calls_per_s = median(column(samples, "loaded", "calls")) / plan.load_seconds
    rows = [
        Row(
            f"{key}_latency",
            f"{number}. test_request answered, p99 ms, {plan.threads} {busy} busy",
            p99,
            idle_p99,
            ratio,
            f"<= {LATENCY_TARGET_MS:g} ms",
            verdict(p99 <= LATENCY_TARGET_MS),
            ratio_range,
            digits=2,
            note=f"{len(pooled):,} answers, pooled p99 {_percentile(pooled, 0.99):.2f} ms, "
            f"max {max(pooled, default=float('nan')):.2f} ms, {calls_per_s:,.0f} calls/s",
        ),
        Row(
            f"{key}_latency_p50",
            "   same, median (p50) ms",
            p50,
            idle_p50,
            p50_ratio,
            "-",
            "info",
            digits=2,
        ),
    ]
    for result in samples["loaded"] + samples["idle"]:
        del result["latencies_ms"]
    return {"rounds": samples, "pooled_p99_ms": _percentile(pooled, 0.99)}, rows


def bench_restore(
    url: str,
    plan: Plan,
    progress: Progress,
    workers: Workers | None = None,
    key: str = "ws",
    number: int = 3,
) -> tuple[dict[str, Any], list[Row]]:
    """Benchmark 3 (``workers``, ``key``, ``number``: as for :func:`bench_latency`)."""
    args = [*common(url, plan), "--drops", str(plan.drops)]
    samples = rounds("restore", ("session",), args, plan, progress, workers)
    restored = [ms for result in samples["session"] for ms in result["restore_ms"]]
    fresh = [ms for result in samples["session"] for ms in result["fresh_ms"]]
    ours, theirs = median(restored), median(fresh)
    rows = [
        Row(
            f"{key}_restore",
            f"{number}. drop to session restored, ms ({len(restored)} drops)",
            ours,
            theirs,
            ours / theirs,
            f"<= {RESTORE_TARGET_MS:g} ms",
            verdict(max(restored, default=float("inf")) <= RESTORE_TARGET_MS),
            spread([r / f for r, f in zip(restored, fresh)]),
            note=f"slowest {max(restored, default=float('nan')):.0f} ms; baseline: a fresh "
            "session opened",
        )
    ]
    return {"restore_ms": restored, "fresh_ms": fresh}, rows


def bench_memory(
    url: str,
    plan: Plan,
    progress: Progress,
    workers: Workers | None = None,
    key: str = "ws",
    number: int = 4,
) -> tuple[dict[str, Any], list[Row]]:
    """Benchmark 4 (``workers``, ``key``, ``number``: as for :func:`bench_latency`)."""
    args = [
        *common(url, plan),
        "--calls", str(plan.memory_calls),
        "--warmup", str(plan.memory_warmup),
    ]
    samples = rounds("memory", plan.memory_variants, args, plan, progress, workers)
    ours = column(samples, "session", "growth_kib")
    bare = column(samples, "bare", "growth_kib") if "bare" in samples else []
    growth = max(ours)
    rows = [
        Row(
            f"{key}_memory",
            f"{number}. RSS growth over {plan.memory_calls:,} calls, KiB",
            median(ours),
            median(bare) if bare else None,
            None,
            f"<= {MEMORY_TARGET_KIB:g} KiB",
            verdict(growth <= MEMORY_TARGET_KIB),
            digits=0,
            note=f"largest of {len(ours)} rounds {growth:.0f} KiB",
        )
    ]
    return {"growth_kib": {"session": ours, "bare": bare}}, rows


def describe(report: Report) -> str:
    m = report.meta
    return (
        f"openapi_client WebSocket benchmarks, {m['date']}: Python {m['python']}, "
        f"websockets {m['websockets']}, {m['cpus']} CPUs, {m['platform']}\n"
        f"Measured: openapi_client from the work tree (commit {m['commit'] or 'unknown'})\n"
        "Medians of interleaved rounds, each measurement in a fresh process, servers in their "
        "own processes; ratio = client / baseline."
    )


def parse_arguments(
    argv: Sequence[str] | None,
    prog: str = "python bench/websocket.py",
    description: str = "Benchmark the WebSocket session (issue 10).",
    benchmarks: Sequence[str] = BENCHMARKS,
) -> tuple[argparse.Namespace, tuple[str, ...]]:
    """The command line's options, and the benchmarks it selects (``bench/aio_websocket.py``
    has the same command line)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter loads")
    parser.add_argument("--rounds", type=int, metavar="N", help="rounds (default 5, quick 3)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every sample as JSON")
    parser.add_argument("--only", metavar="LIST", help=f"a subset of {','.join(benchmarks)}")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target is missed or not measured"
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and not 1 <= args.rounds <= 50:
        parser.error("--rounds must be from 1 to 50")
    selected = tuple(benchmarks)
    if args.only:
        selected = tuple(name.strip() for name in args.only.split(",") if name.strip())
        if set(selected) - set(benchmarks):
            parser.error(f"choose benchmarks from {','.join(benchmarks)}")
    return args, selected


#: What a benchmark script gives :func:`run` for each benchmark: given the simulator's URL, the
#: heartbeat server's, the plan and a progress printer, a function measuring it.
Steps = Callable[[str, str, Plan, Callable[[str], None]], dict[str, Callable[[], Any]]]


def run(
    args: argparse.Namespace,
    names: Sequence[str],
    steps: Steps,
    title: Callable[[str], str] = str,
) -> int:
    """Start the simulator and the heartbeat server, run the benchmarks ``names`` in that order
    (``steps`` says how each is measured), and :func:`finish` with the report under
    ``title(describe(report))``."""
    terminate_on_sigterm()
    plan = Plan.make(args.quick, args.rounds)
    report = Report(plan=plan, meta=meta())  # type: ignore[arg-type]
    from importlib import metadata

    report.meta["websockets"] = metadata.version("websockets")
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f} s] {message}", file=sys.stderr, flush=True)

    with contextlib.ExitStack() as cleanup:
        simulator = cleanup.enter_context(SimulatorProcess(program=[SCRIPT, "simulator"]))
        beats = cleanup.enter_context(
            SimulatorProcess(
                program=[SCRIPT, "heartbeat-server"],
                options=["--every", str(TEST_REQUEST_EVERY)],
            )
        )
        progress(f"simulator at {simulator.url}, heartbeat server at {beats.url}")
        measure = steps(simulator.url, beats.url, plan, progress)
        for name in names:
            try:
                report.results[name], rows = measure[name]()
                report.rows.extend(rows)
            except BenchError as error:
                report.errors[name] = str(error)
                progress(f"{name}: {error}")
    report.meta["seconds"] = round(time.monotonic() - started, 1)
    return finish(report, title(describe(report)), args)


def main(argv: Sequence[str] | None = None) -> int:
    args, selected = parse_arguments(argv)

    def steps(
        url: str, beats: str, plan: Plan, progress: Callable[[str], None]
    ) -> dict[str, Callable[[], Any]]:
        return {
            "cpu": lambda: bench_cpu(url, plan, progress),
            "latency": lambda: bench_latency(beats, plan, progress),
            "restore": lambda: bench_restore(url, plan, progress),
            "memory": lambda: bench_memory(url, plan, progress),
        }

    return run(args, [name for name in BENCHMARKS if name in selected], steps)


def finish(report: Report, title: str, args: argparse.Namespace) -> int:
    """Print the table under ``title``, write ``--json``, and return the exit status."""
    print(title)
    print()
    print(format_table(report))
    print(f"\n({report.meta['seconds']:.0f} s; exit status 0 unless --check)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "meta": report.meta,
            "plan": asdict(report.plan),
            "rows": [asdict(row) for row in report.rows],
            "results": report.results,
            "errors": report.errors,
        }
        args.json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    if args.check and (report.errors or any(row.verdict == "FAIL" for row in report.rows)):
        return 1
    return 0


def _worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python bench/websocket.py worker")
    parser.add_argument("name", choices=BENCHMARKS)
    parser.add_argument("variant")
    parser.add_argument("--url", required=True)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--drops", type=int, default=10)
    args = parser.parse_args(argv)
    if args.name == "cpu":
        result = cpu(args.variant, args.url, args.calls, args.warmup, 10, args.max_seconds, build)
    elif args.name == "memory":
        result = memory(
            args.variant, args.url, args.calls, args.warmup, 20, args.max_seconds, build
        )
    elif args.name == "latency":
        result = latency(
            args.variant, args.url, args.threads, args.seconds, args.calls, args.max_seconds
        )
    else:
        result = restore(args.url, args.drops, args.max_seconds)
    print(json.dumps(result))
    return 0


def _server_main(kind: str, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python bench/websocket.py {kind}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--legacy-http", action="store_true")
    parser.add_argument("--every", type=float, default=TEST_REQUEST_EVERY)
    args = parser.parse_args(argv)
    if args.host != "127.0.0.1":
        parser.error("loopback only: --host 127.0.0.1")
    terminate_on_sigterm()
    with contextlib.suppress(SystemExit, KeyboardInterrupt):
        if kind == "simulator":
            serve_simulator(args.host, args.port, args.max_connections, args.legacy_http)
        else:
            serve_heartbeats(args.host, args.port, args.every)
    return 0


if __name__ == "__main__":
    command = sys.argv[1:2]
    if command == ["worker"]:
        sys.exit(_worker_main(sys.argv[2:]))
    if command in (["simulator"], ["heartbeat-server"]):
        sys.exit(_server_main(command[0], sys.argv[2:]))
    sys.exit(main())
