"""The measured side of the benchmarks: each run is a fresh interpreter started by ``bench/run.py``.

    python bench/workloads.py cpu client --url URL --calls 2000 --warmup 300
    python bench/workloads.py throughput urllib3 --url URL --threads 8 --calls 500
    python bench/workloads.py memory client --url URL --calls 20000 --warmup 2000

Each prints one line of JSON on stdout and exits 0, or exits non-zero with the reason on stderr.
The variants make the same request, ``GET {url}/public/set_heartbeat?interval=30`` with a bearer
token, and decode the same JSON body:

* ``client``: ``SessionManagementApi(ApiClient(Configuration(host=url, access_token=...)))
  .public_set_heartbeat_get(30)``;
* ``urllib3`` (the baseline): ``urllib3.PoolManager().request("GET", url + path, fields=...,
  headers=...)`` then ``json.loads(r.data)``, as one would write it by hand;
* ``httpclient`` (the floor): one kept-alive ``http.client.HTTPConnection`` and ``json.loads``.

Only the standard library is imported at module level, so a worker's own start costs the same
whichever variant it measures. The snippets for the import and first-result benchmarks, which run
under ``python -c`` with no worker code at all, are here too so that every measured line of code is
in one file.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Callable
from urllib.parse import urlsplit

TOKEN = "sim-token"
METHOD_PATH = "/public/set_heartbeat"
INTERVAL = 30
#: Calls between two looks at the clock, so that the time bound costs nothing measurable.
CHUNK = 50

VARIANTS = ("client", "urllib3", "httpclient")

#: ``python -c`` bodies for benchmark 2, by variant. ``bare`` is the interpreter alone.
IMPORT_SNIPPETS: dict[str, str] = {
    "bare": "pass",
    "client": "import openapi_client",
    "urllib3": "import urllib3",
    # What a first call actually needs: the lazily loaded names pull in the transport.
    "client_call_names": (
        "from openapi_client import ApiClient, Configuration, SessionManagementApi"
    ),
}

#: ``python -c`` bodies for benchmark 5 (``sys.argv[1]`` is the simulator URL), by variant.
FIRST_RESULT_SNIPPETS: dict[str, str] = {
    "bare": "pass",
    "client": (
        "import sys\n"
        "from openapi_client import ApiClient, Configuration, SessionManagementApi\n"
        f"configuration = Configuration(host=sys.argv[1], access_token={TOKEN!r})\n"
        "api = SessionManagementApi(ApiClient(configuration))\n"
        f"assert api.public_set_heartbeat_get({INTERVAL})['result'] == 'ok'\n"
    ),
    "urllib3": (
        "import json, sys, urllib3\n"
        "r = urllib3.PoolManager().request(\n"
        f"    'GET', sys.argv[1] + {METHOD_PATH!r}, fields={{'interval': {INTERVAL}}},\n"
        f"    headers={{'Authorization': 'Bearer {TOKEN}', 'Accept': 'application/json'}},\n"
        ")\n"
        "assert json.loads(r.data)['result'] == 'ok'\n"
    ),
}

Call = Callable[[], Any]
#: ``builder(variant, url)`` -> ``(call, close)``: how a worker makes its calls (:func:`build` for
#: the HTTP variants here; ``bench/websocket.py`` passes its own).
Builder = Callable[[str, str], tuple[Call, Callable[[], None]]]


class WorkloadError(RuntimeError):
    """The workload could not run as asked (a bad answer, or a thread that failed)."""


# -- the three ways to make the call ------------------------------------------------------------


def build(variant: str, url: str, threads: int = 1) -> tuple[Call, Callable[[], None]]:
    """``(call, close)`` for ``variant``: ``call()`` makes one request and returns its JSON."""
    if variant == "client":
        return _build_client(url)
    if variant == "urllib3":
        return _build_urllib3(url, threads)
    if variant == "httpclient":
        if threads != 1:
            raise WorkloadError("an http.client connection serves one thread")
        return _build_httpclient(url)
    raise WorkloadError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def _build_client(url: str) -> tuple[Call, Callable[[], None]]:
    from openapi_client import ApiClient, Configuration, SessionManagementApi

    api_client = ApiClient(Configuration(host=url, access_token=TOKEN))
    api = SessionManagementApi(api_client)

    def call() -> Any:
        return api.public_set_heartbeat_get(30)

    return call, api_client.close


def _build_urllib3(url: str, threads: int) -> tuple[Call, Callable[[], None]]:
    import json

    import urllib3

    # One manager, made once, as any real program would; a pool big enough for every thread.
    manager = urllib3.PoolManager() if threads == 1 else urllib3.PoolManager(maxsize=threads)

    def call() -> Any:
        # Written as a person would, int and all (urllib3 encodes it; its stubs want str).
        r = manager.request(
            "GET",
            url + "/public/set_heartbeat",
            fields={"interval": 30},  # type: ignore[dict-item]
            headers={"Authorization": "Bearer sim-token", "Accept": "application/json"},
        )
        return json.loads(r.data)

    return call, manager.clear


def _build_httpclient(url: str) -> tuple[Call, Callable[[], None]]:
    import http.client
    import json

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80)
    target = parts.path + "/public/set_heartbeat?interval=30"
    headers = {"Authorization": "Bearer sim-token", "Accept": "application/json"}

    def call() -> Any:
        connection.request("GET", target, headers=headers)
        return json.loads(connection.getresponse().read())

    return call, connection.close


def _check(result: Any, variant: str) -> None:
    if not isinstance(result, dict) or result.get("result") != "ok":
        raise WorkloadError(f"{variant}: unexpected answer {result!r}")


def _calls(call: Call, count: int, deadline: float) -> tuple[int, Any]:
    """Make up to ``count`` calls, stopping early once ``deadline`` (perf_counter) has passed."""
    done = 0
    last: Any = None
    clock = time.perf_counter
    while done < count:
        batch = min(CHUNK, count - done)
        for _ in range(batch):
            last = call()
        done += batch
        if clock() > deadline:
            break
    return done, last


@contextmanager
def _warmed_up(
    variant: str, url: str, warmup: int, max_seconds: float, builder: Builder = build
) -> Iterator[Call]:
    """``variant``'s call, checked, after ``warmup`` calls and a full collection; closed after."""
    call, close = builder(variant, url)
    try:
        _check(call(), variant)
        _calls(call, warmup, time.perf_counter() + max_seconds / 4)
        gc.collect()
        yield call
    finally:
        close()


def _result(variant: str, done: int, asked: int, **figures: Any) -> dict[str, Any]:
    """A worker's JSON result: the variant, the calls made, and whether the time bound cut them."""
    return {"variant": variant, "calls": done, "truncated": done < asked, **figures}


# -- benchmark 1: CPU per call ------------------------------------------------------------------


def cpu(
    variant: str,
    url: str,
    calls: int,
    warmup: int,
    blocks: int,
    max_seconds: float,
    builder: Builder = build,
) -> dict[str, Any]:
    """Process CPU time (and wall time) per call over ``calls`` calls after ``warmup`` calls.

    The calls are timed in ``blocks`` consecutive blocks as well as in total: the median block
    drops a burst of noise from a neighbour that a total would keep.
    """
    block_cpu_us: list[float] = []
    block_wall_us: list[float] = []
    with _warmed_up(variant, url, warmup, max_seconds, builder) as call:
        deadline = time.perf_counter() + max_seconds
        size = max(1, calls // blocks)
        done = 0
        last: Any = None
        process_time = time.process_time
        perf_counter = time.perf_counter
        cpu_started = process_time()
        wall_started = perf_counter()
        while done < calls and perf_counter() < deadline:
            block_cpu = process_time()
            block_wall = perf_counter()
            count, last = _calls(call, min(size, calls - done), deadline)
            block_cpu_us.append((process_time() - block_cpu) / count * 1e6)
            block_wall_us.append((perf_counter() - block_wall) / count * 1e6)
            done += count
        wall = perf_counter() - wall_started
        cpu_time = process_time() - cpu_started
        _check(last, variant)
    return _result(
        variant,
        done,
        calls,
        cpu_s=cpu_time,
        wall_s=wall,
        cpu_us_per_call=cpu_time / done * 1e6,
        wall_us_per_call=wall / done * 1e6,
        block_cpu_us=block_cpu_us,
        block_wall_us=block_wall_us,
        cpu_us_block_median=statistics.median(block_cpu_us),
        wall_us_block_median=statistics.median(block_wall_us),
    )


# -- benchmark 3: threads sharing one client ----------------------------------------------------


def throughput(
    variant: str, url: str, threads: int, calls: int, warmup: int, max_seconds: float
) -> dict[str, Any]:
    """Calls per second of ``threads`` threads sharing one client, ``calls`` calls each.

    Every thread makes its ``warmup`` calls (so each has its own pooled connection), then all
    start together at a barrier; the clock runs from the barrier until the last thread is done.
    """
    call, close = build(variant, url, threads)
    barrier = threading.Barrier(threads + 1)
    counts = [0] * threads
    errors: list[str] = []
    # One bound for everything: warm-up, start and the measured calls.
    deadline = time.perf_counter() + 2 * max_seconds

    def worker(index: int) -> None:
        try:
            for _ in range(warmup):
                _check(call(), variant)
            barrier.wait(max_seconds)
            done, last = _calls(call, calls, deadline)
            _check(last, variant)
            counts[index] = done
        except threading.BrokenBarrierError:
            errors.append(f"thread {index}: the start barrier broke")
        except Exception as error:  # reported, not raised: a thread has nowhere to raise to
            errors.append(f"thread {index}: {type(error).__name__}: {error}")
            barrier.abort()

    pool = [
        threading.Thread(target=worker, args=(index,), name=f"bench-{index}", daemon=True)
        for index in range(threads)
    ]
    try:
        for thread in pool:
            thread.start()
        barrier.wait(max_seconds)
        cpu_started = time.process_time()
        wall_started = time.perf_counter()
        for thread in pool:
            thread.join(max(0.0, deadline + 5.0 - time.perf_counter()))
        wall = time.perf_counter() - wall_started
        cpu_time = time.process_time() - cpu_started
    except threading.BrokenBarrierError:
        raise WorkloadError("; ".join(errors) or "the start barrier broke") from None
    finally:
        close()
    if errors:
        raise WorkloadError("; ".join(errors))
    if any(thread.is_alive() for thread in pool):
        raise WorkloadError("a thread did not finish in time")
    total = sum(counts)
    return _result(
        variant,
        total,
        threads * calls,
        threads=threads,
        wall_s=wall,
        cpu_s=cpu_time,
        calls_per_s=total / wall,
        cpu_us_per_call=cpu_time / total * 1e6,
    )


# -- benchmark 4: resident memory ---------------------------------------------------------------


def vm_rss_kib() -> int:
    """This process's resident set size in KiB, from ``/proc/self/status``."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise WorkloadError("/proc/self/status has no VmRSS line")


def memory(
    variant: str,
    url: str,
    calls: int,
    warmup: int,
    samples: int,
    max_seconds: float,
    builder: Builder = build,
) -> dict[str, Any]:
    """VmRSS growth over ``calls`` calls after ``warmup`` calls (and a full collection)."""
    with _warmed_up(variant, url, warmup, max_seconds, builder) as call:
        before = vm_rss_kib()
        deadline = time.perf_counter() + max_seconds
        step = max(1, calls // max(1, samples))
        trace: list[tuple[int, int]] = [(0, 0)]
        done = 0
        last: Any = None
        while done < calls and time.perf_counter() < deadline:
            count, last = _calls(call, min(step, calls - done), deadline)
            done += count
            trace.append((done, vm_rss_kib() - before))
        gc.collect()
        after = vm_rss_kib()
        _check(last, variant)
    return _result(
        variant,
        done,
        calls,
        rss_before_kib=before,
        rss_after_kib=after,
        growth_kib=after - before,
        trace=trace,
    )


# -- command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="One benchmark measurement, as JSON on stdout.")
    parser.add_argument("workload", choices=("cpu", "throughput", "memory"))
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--url", required=True, help="the simulator's API root")
    parser.add_argument("--calls", type=int, default=2000, help="measured calls (per thread)")
    parser.add_argument("--warmup", type=int, default=200, help="calls before measuring")
    parser.add_argument("--threads", type=int, default=8, help="threads (throughput)")
    parser.add_argument("--blocks", type=int, default=10, help="timed blocks (cpu)")
    parser.add_argument("--samples", type=int, default=20, help="RSS readings (memory)")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="stop measuring after this long"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        print("the benchmarks only talk to a simulator on loopback", file=sys.stderr)
        return 2
    if min(args.calls, args.threads, args.samples, args.blocks) < 1 or args.warmup < 0:
        print("counts must be >= 1 (--warmup >= 0)", file=sys.stderr)
        return 2
    try:
        if args.workload == "cpu":
            result = cpu(
                args.variant, args.url, args.calls, args.warmup, args.blocks, args.max_seconds
            )
        elif args.workload == "throughput":
            result = throughput(
                args.variant, args.url, args.threads, args.calls, args.warmup, args.max_seconds
            )
        else:
            result = memory(
                args.variant, args.url, args.calls, args.warmup, args.samples, args.max_seconds
            )
    except WorkloadError as error:
        print(str(error), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
