"""Where one call's time goes: cProfile over the same workloads as the benchmarks.

    python bench/profile_call.py                          # client and bare urllib3, 5,000 calls
    python bench/profile_call.py --variant client --top 40 --calls 10000
    python bench/profile_call.py --ref HEAD~1             # a git revision instead of the work tree
    python bench/profile_call.py --dump /tmp/client.prof  # also keep the raw stats (snakeviz, ...)

The simulator runs in its own process, and each variant is profiled in a fresh interpreter after
300 warm-up calls. Times are printed in microseconds per API call (a function's total divided by
the number of profiled calls). By default they are wall time: ``recv_into``, ``sendall`` and
whatever encloses them include waiting for the simulator, everything else is the client's CPU.
cProfile's own overhead inflates functions that are called often, so compare variants with each
other, not with ``bench/run.py``; the number of Python function calls per API call in each
header is exact and noise-free.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import (
    PYTHON,
    BenchError,
    SimulatorProcess,
    library_root,
    measured_library,
    terminate_on_sigterm,
    worker_env,
)

Key = tuple[str, int, str]
Row = tuple[int, int, float, float, Any]


def _short(filename: str, root: str) -> str:
    """A readable location: ``urllib3/poolmanager.py`` rather than the full path."""
    for prefix in (root, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"]):
        if prefix and filename.startswith(prefix):
            return filename[len(prefix) :].lstrip("/")
    return filename


def _table(stats: pstats.Stats, calls: int, sort: int, top: int, root: str) -> str:
    """The ``top`` functions by column ``sort`` (2: own time, 3: cumulative), per API call."""
    entries: dict[Key, Row] = stats.stats  # type: ignore[attr-defined]
    ordered = sorted(entries.items(), key=lambda item: item[1][sort], reverse=True)[:top]
    lines = [f"{'calls/call':>10} {'own us':>8} {'cum us':>8}  function"]
    for (filename, line, name), (_, ncalls, own, cumulative, _) in ordered:
        where = f"{_short(filename, root)}:{line}({name})" if line else name
        per_call = ncalls / calls
        lines.append(
            f"{per_call:10.2f} {own / calls * 1e6:8.2f} {cumulative / calls * 1e6:8.2f}  {where}"
        )
    return "\n".join(lines)


def profile(variant: str, url: str, calls: int, top: int, timer: str, dump: Path | None) -> str:
    """Profile ``calls`` calls of ``variant`` in this process; the report as text.

    :param timer: ``wall`` (a blocking ``recv`` shows the server's time too) or ``cpu``
        (process time, as benchmark 1 counts, but each profiler event then costs a system call).
    """
    from workloads import build

    call, close = build(variant, url)
    try:
        for _ in range(300):
            call()
        clock = time.process_time if timer == "cpu" else time.perf_counter
        profiler = cProfile.Profile(clock)
        started = time.process_time()
        profiler.enable()
        for _ in range(calls):
            call()
        profiler.disable()
        cpu = time.process_time() - started
    finally:
        close()
    if dump is not None:
        profiler.dump_stats(str(dump))
    stats = pstats.Stats(profiler)
    events = stats.total_calls / calls  # type: ignore[attr-defined]
    # The measured library is the first entry of the path the orchestrator gave this process.
    root = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0].rstrip("/") + "/"
    return (
        f"== {variant}: {calls:,} calls; {events:.0f} Python function calls and "
        f"{cpu / calls * 1e6:.1f} us CPU per API call under cProfile; columns: calls and us of "
        f"{timer} time per API call\n"
        f"-- by cumulative time\n{_table(stats, calls, 3, top, root)}\n"
        f"-- by own time (tottime)\n{_table(stats, calls, 2, top, root)}\n"
    )


def _profile_in_worker(variant: str, url: str, args: argparse.Namespace) -> None:
    """Run this script on ``variant`` in a fresh interpreter (``--url``); it prints the report."""
    command = [
        PYTHON,
        str(Path(__file__).resolve()),
        "--url",
        url,
        "--variant",
        variant,
        "--calls",
        str(args.calls),
        "--top",
        str(args.top),
        "--timer",
        args.timer,
    ]
    if args.dump is not None:
        dump = args.dump.with_name(f"{args.dump.stem}-{variant}{args.dump.suffix}")
        command += ["--dump", str(dump.resolve())]
    completed = subprocess.run(
        command,
        cwd=library_root(),
        env=worker_env(),
        stdin=subprocess.DEVNULL,
        timeout=60 + args.calls * 0.01,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"profiling {variant} failed (exit {completed.returncode})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/profile_call.py", description="cProfile one call's path."
    )
    parser.add_argument(
        "--variant",
        action="append",
        choices=("client", "urllib3", "httpclient"),
        help="what to profile; repeat for more (default: client and urllib3)",
    )
    parser.add_argument("--calls", type=int, default=5000, help="profiled calls (default 5000)")
    parser.add_argument("--top", type=int, default=25, help="functions listed (default 25)")
    parser.add_argument(
        "--timer",
        choices=("cpu", "wall"),
        default="wall",
        help="what a function's time is: wall time (default; cheap to read, so cProfile "
        "distorts little, but a blocking recv counts the server's time) or process CPU time "
        "(a system call per event: several times slower, skewed to functions called often)",
    )
    parser.add_argument("--ref", metavar="REV", help="profile a git revision, not the work tree")
    parser.add_argument("--dump", type=Path, metavar="FILE", help="write the raw stats here")
    # Internal: profile in this process against an already running simulator.
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 1_000_000:
        parser.error("--calls must be from 1 to 1,000,000")
    variants: list[str] = args.variant or ["client", "urllib3"]
    if args.url:  # the worker side: one variant, in a fresh interpreter
        if not args.url.startswith("http://127."):
            parser.error("profiles only talk to a simulator on loopback")
        print(profile(variants[0], args.url, args.calls, args.top, args.timer, args.dump))
        return 0
    terminate_on_sigterm()
    try:
        with measured_library(args.ref, "openapi-client-profile-") as commit:
            if commit is not None:
                print(f"profiling openapi_client at {args.ref} ({commit})", file=sys.stderr)
            with SimulatorProcess() as simulator:
                for variant in variants:
                    _profile_in_worker(variant, simulator.url, args)
    except (BenchError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
