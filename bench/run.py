"""Benchmarks of openapi_client against a hand-written urllib3 call, as asked in issue 5.

    python bench/run.py                       # the full run, about a minute and a half
    python bench/run.py --quick               # fewer rounds, under 40 s
    python bench/run.py --chart docs/performance.png --json bench/results/latest.json
    python bench/run.py --only cpu,import     # a subset while iterating
    python bench/run.py --check               # exit 1 when a target is missed
    python bench/run.py --ref HEAD            # measure a git revision, not the work tree

One simulator (``python -m openapi_client.simulator --port 0``) runs in its own process for the
whole run; every measurement runs in a fresh interpreter (``bench/workloads.py`` or
``python -c``), and the variants of a comparison take turns, round after round, so that a noisy
neighbour hits them alike. Medians are reported, with ratios of medians against the targets.
The exit status is 0 whatever the figures (it is a report) unless ``--check`` is given.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from harness import (
    PYTHON,
    REPO_ROOT,
    BenchError,
    SimulatorProcess,
    library_root,
    median,
    rotated,
    run_worker,
    snapshot,
    spread,
    terminate_on_sigterm,
    time_command,
    use_library,
)
from workloads import FIRST_RESULT_SNIPPETS, IMPORT_SNIPPETS

BENCHMARKS = ("cpu", "import", "throughput", "memory", "first")

#: Targets from issue 5: (comparison, bound).
CPU_TARGET = 0.85
IMPORT_TARGET = 1.10
THROUGHPUT_TARGET = 0.95
MEMORY_TARGET_KIB = 1024.0
TARGETS = {
    "cpu": CPU_TARGET,
    "import": IMPORT_TARGET,
    "throughput": THROUGHPUT_TARGET,
    "memory": MEMORY_TARGET_KIB,
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """What to measure: ``rounds`` drives benchmarks 1 and 3; 2 and 5 take more, shorter runs."""

    rounds: int
    cpu_calls: int
    cpu_warmup: int
    cpu_blocks: int
    import_runs: int
    threads: int
    thread_calls: int
    thread_warmup: int
    memory_calls: int
    memory_warmup: int
    memory_variants: Tuple[str, ...]
    first_runs: int
    #: Bound of each measured loop in a worker, in seconds.
    max_seconds: float
    #: No new round starts once the whole run has taken this long.
    budget_seconds: float

    @classmethod
    def make(cls, quick: bool, rounds: Optional[int]) -> "Plan":
        n = rounds if rounds is not None else (3 if quick else 7)
        return cls(
            rounds=n,
            cpu_calls=1000 if quick else 2000,
            cpu_warmup=200 if quick else 300,
            cpu_blocks=10,
            import_runs=3 * n,
            threads=8,
            thread_calls=250 if quick else 500,
            thread_warmup=20,
            memory_calls=20_000,
            memory_warmup=2000,
            # The quick run measures the target (the client) and skips the context.
            memory_variants=("client",) if quick else ("client", "urllib3"),
            first_runs=3 * n // 2 + 1,
            max_seconds=60.0,
            budget_seconds=(120.0 if quick else 360.0) * max(1.0, n / (3 if quick else 7)),
        )


@dataclass
class Row:
    """One line of the table."""

    key: str
    label: str
    client: float
    baseline: Optional[float]
    ratio: Optional[float]
    target: str
    verdict: str
    ratio_range: Optional[Tuple[float, float]] = None
    digits: int = 1
    note: str = ""


@dataclass
class Report:
    plan: Plan
    meta: Dict[str, Any]
    rows: List[Row] = field(default_factory=list)
    results: Dict[str, Any] = field(default_factory=dict)
    errors: Dict[str, str] = field(default_factory=dict)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# -- benchmark 1 ----------------------------------------------------------------------------------


def bench_cpu(url: str, plan: Plan, progress: Progress) -> Tuple[Dict[str, Any], List[Row]]:
    variants = ("client", "urllib3", "httpclient")
    samples: Dict[str, List[Dict[str, Any]]] = {variant: [] for variant in variants}
    for index in range(plan.rounds):
        progress(f"1. CPU per call: round {index + 1}/{plan.rounds}")
        for variant in rotated(variants, index):
            args = [
                variant,
                "--url",
                url,
                "--calls",
                str(plan.cpu_calls),
                "--warmup",
                str(plan.cpu_warmup),
                "--blocks",
                str(plan.cpu_blocks),
                "--max-seconds",
                str(plan.max_seconds),
            ]
            samples[variant].append(run_worker("cpu", args, plan.max_seconds * 1.5 + 30))
    # Per process: the median of its timed blocks; per variant: the median over the rounds.
    cpu_us = {v: [s["cpu_us_block_median"] for s in samples[v]] for v in variants}
    wall_us = {v: [s["wall_us_block_median"] for s in samples[v]] for v in variants}
    whole_us = {v: [s["cpu_us_per_call"] for s in samples[v]] for v in variants}
    medians = {v: median(cpu_us[v]) for v in variants}
    ratio = medians["client"] / medians["urllib3"]
    per_round = [c / b for c, b in zip(cpu_us["client"], cpu_us["urllib3"])]
    data = {
        "cpu_us_per_call": cpu_us,
        "wall_us_per_call": wall_us,
        "whole_run_cpu_us_per_call": whole_us,
        "whole_run_ratio": median(whole_us["client"]) / median(whole_us["urllib3"]),
        "block_cpu_us": {v: [s["block_cpu_us"] for s in samples[v]] for v in variants},
        "median_cpu_us": medians,
        "median_wall_us": {v: median(wall_us[v]) for v in variants},
        "ratio": ratio,
        "per_round_ratio": per_round,
        "median_per_round_ratio": median(per_round),
        "truncated": any(s["truncated"] for v in variants for s in samples[v]),
    }
    rows = [
        Row(
            "cpu",
            f"1. client CPU per call, us ({plan.rounds} x {plan.cpu_calls:,})",
            medians["client"],
            medians["urllib3"],
            ratio,
            f"<= {CPU_TARGET:.2f}",
            verdict(ratio <= CPU_TARGET),
            spread(per_round),
        ),
        Row(
            "cpu_floor",
            "   floor: http.client kept alive, us",
            medians["httpclient"],
            medians["urllib3"],
            medians["httpclient"] / medians["urllib3"],
            "-",
            "info",
            note=f"client/floor {medians['client'] / medians['httpclient']:.2f}",
        ),
    ]
    return data, rows


# -- benchmark 2 ----------------------------------------------------------------------------------


def _importtime_ms(stderr: str, module: str) -> float:
    """The cumulative time ``-X importtime`` reports for the top-level import of ``module``."""
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == module and not parts[2][1:].startswith(" "):
            return int(parts[1].strip()) / 1000.0
    raise BenchError(f"-X importtime reported no line for {module}")


def bench_import(plan: Plan, progress: Progress) -> Tuple[Dict[str, Any], List[Row]]:
    variants = tuple(IMPORT_SNIPPETS)
    timeout = 60.0
    for variant in variants:  # untimed: make sure cached bytecode exists for every module
        time_command([PYTHON, "-c", IMPORT_SNIPPETS[variant]], timeout)
    wall: Dict[str, List[float]] = {variant: [] for variant in variants}
    self_timed: Dict[str, List[float]] = {"client": [], "urllib3": []}
    modules = {"client": "openapi_client", "urllib3": "urllib3"}
    for index in range(plan.import_runs):
        if index % 5 == 0:
            progress(f"2. import: run {index + 1}/{plan.import_runs}")
        for variant in rotated(variants, index):
            elapsed, _ = time_command([PYTHON, "-c", IMPORT_SNIPPETS[variant]], timeout)
            wall[variant].append(elapsed * 1000.0)
        for variant in rotated(tuple(self_timed), index):
            _, stderr = time_command(
                [PYTHON, "-X", "importtime", "-c", IMPORT_SNIPPETS[variant]],
                timeout,
                capture_stderr=True,
            )
            self_timed[variant].append(_importtime_ms(stderr, modules[variant]))
    medians = {variant: median(wall[variant]) for variant in variants}
    net = {variant: medians[variant] - medians["bare"] for variant in variants if variant != "bare"}
    self_medians = {variant: median(values) for variant, values in self_timed.items()}
    ratio = net["client"] / net["urllib3"]
    self_ratio = self_medians["client"] / self_medians["urllib3"]
    names_ratio = net["client_call_names"] / net["urllib3"]
    data = {
        "wall_ms": wall,
        "median_wall_ms": medians,
        "net_ms": net,
        "importtime_ms": self_timed,
        "median_importtime_ms": self_medians,
        "ratio": ratio,
        "importtime_ratio": self_ratio,
        "call_names_ratio": names_ratio,
    }
    rows = [
        Row(
            "import",
            f"2. import, ms over bare python ({plan.import_runs} runs)",
            net["client"],
            net["urllib3"],
            ratio,
            f"<= {IMPORT_TARGET:.2f}",
            verdict(ratio <= IMPORT_TARGET),
            digits=2,
            note=f"bare python {medians['bare']:.1f} ms",
        ),
        Row(
            "import_self",
            "   same, -X importtime cumulative, ms",
            self_medians["client"],
            self_medians["urllib3"],
            self_ratio,
            "-",
            "info",
            digits=2,
        ),
        Row(
            "import_names",
            "   + ApiClient, Configuration, Api, ms",
            net["client_call_names"],
            net["urllib3"],
            names_ratio,
            "-",
            "info",
            digits=2,
            note="what a first call imports",
        ),
    ]
    return data, rows


# -- benchmark 3 ----------------------------------------------------------------------------------


def bench_throughput(url: str, plan: Plan, progress: Progress) -> Tuple[Dict[str, Any], List[Row]]:
    variants = ("client", "urllib3")
    samples: Dict[str, List[Dict[str, Any]]] = {variant: [] for variant in variants}
    for index in range(plan.rounds):
        progress(f"3. throughput: round {index + 1}/{plan.rounds}")
        for variant in rotated(variants, index):
            args = [
                variant,
                "--url",
                url,
                "--threads",
                str(plan.threads),
                "--calls",
                str(plan.thread_calls),
                "--warmup",
                str(plan.thread_warmup),
                "--max-seconds",
                str(plan.max_seconds),
            ]
            samples[variant].append(run_worker("throughput", args, plan.max_seconds * 3 + 30))
    rates = {v: [s["calls_per_s"] for s in samples[v]] for v in variants}
    cpu_us = {v: [s["cpu_us_per_call"] for s in samples[v]] for v in variants}
    medians = {v: median(rates[v]) for v in variants}
    ratio = medians["client"] / medians["urllib3"]
    per_round = [c / b for c, b in zip(rates["client"], rates["urllib3"])]
    data = {
        "calls_per_s": rates,
        "cpu_us_per_call": cpu_us,
        "median_calls_per_s": medians,
        "median_cpu_us_per_call": {v: median(cpu_us[v]) for v in variants},
        "ratio": ratio,
        "per_round_ratio": per_round,
        "median_per_round_ratio": median(per_round),
        "truncated": any(s["truncated"] for v in variants for s in samples[v]),
    }
    row = Row(
        "throughput",
        f"3. {plan.threads} threads x {plan.thread_calls} calls, calls/s",
        medians["client"],
        medians["urllib3"],
        ratio,
        f">= {THROUGHPUT_TARGET:.2f}",
        verdict(ratio >= THROUGHPUT_TARGET),
        spread(per_round),
        digits=0,
    )
    return data, [row]


# -- benchmark 4 ----------------------------------------------------------------------------------


def bench_memory(url: str, plan: Plan, progress: Progress) -> Tuple[Dict[str, Any], List[Row]]:
    data: Dict[str, Any] = {}
    for variant in plan.memory_variants:
        progress(f"4. memory: {variant}, {plan.memory_calls:,} calls")
        args = [
            variant,
            "--url",
            url,
            "--calls",
            str(plan.memory_calls),
            "--warmup",
            str(plan.memory_warmup),
            "--samples",
            "20",
            "--max-seconds",
            str(plan.max_seconds),
        ]
        data[variant] = run_worker("memory", args, plan.max_seconds * 1.5 + 30)
    growth = float(data["client"]["growth_kib"])
    baseline = float(data["urllib3"]["growth_kib"]) if "urllib3" in data else None
    truncated = data["client"]["truncated"]
    row = Row(
        "memory",
        f"4. RSS growth over {data['client']['calls']:,} calls, KiB",
        growth,
        baseline,
        None,
        f"<= {MEMORY_TARGET_KIB:.0f} KiB",
        verdict(growth <= MEMORY_TARGET_KIB and not truncated),
        digits=0,
        note="stopped early by the time bound" if truncated else "",
    )
    return data, [row]


# -- benchmark 5 ----------------------------------------------------------------------------------


def bench_first(url: str, plan: Plan, progress: Progress) -> Tuple[Dict[str, Any], List[Row]]:
    variants = tuple(FIRST_RESULT_SNIPPETS)
    timeout = 60.0
    for variant in variants:  # untimed: bytecode caches, and the same warm page cache for all
        time_command([PYTHON, "-c", FIRST_RESULT_SNIPPETS[variant], url], timeout)
    wall: Dict[str, List[float]] = {variant: [] for variant in variants}
    for index in range(plan.first_runs):
        if index % 5 == 0:
            progress(f"5. first result: run {index + 1}/{plan.first_runs}")
        for variant in rotated(variants, index):
            elapsed, _ = time_command([PYTHON, "-c", FIRST_RESULT_SNIPPETS[variant], url], timeout)
            wall[variant].append(elapsed * 1000.0)
    medians = {variant: median(wall[variant]) for variant in variants}
    ratio = medians["client"] / medians["urllib3"]
    data = {"wall_ms": wall, "median_wall_ms": medians, "ratio": ratio}
    row = Row(
        "first",
        f"5. start to first result, ms ({plan.first_runs} runs)",
        medians["client"],
        medians["urllib3"],
        ratio,
        "-",
        "info",
        note=f"bare python {medians['bare']:.1f} ms",
    )
    return data, [row]


# -- the table ------------------------------------------------------------------------------------


def _number(value: Optional[float], digits: int) -> str:
    if value is None:
        return "-"
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def format_table(report: Report) -> str:
    header = ("benchmark", "client", "baseline", "ratio [rounds]", "target", "result")
    lines: List[Tuple[str, ...]] = [header]
    for row in report.rows:
        ratio = _number(row.ratio, 2)
        if row.ratio_range is not None:
            low, high = row.ratio_range
            ratio += f" [{low:.2f}-{high:.2f}]"
        cells = (
            row.label,
            _number(row.client, row.digits),
            _number(row.baseline, row.digits),
            ratio,
            row.target,
            row.verdict + (f"  ({row.note})" if row.note else ""),
        )
        lines.append(cells)
    for key, message in report.errors.items():
        lines.append((f"{key}: not measured", "-", "-", "-", "-", f"ERROR  ({message[:120]})"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for number, line in enumerate(lines):
        text = "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(line[:-1])
        )
        out.append(f"{text}  {line[-1]}")
        if number == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def meta() -> Dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    commit = ""
    try:
        completed = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=10,
            check=False,
        )
        commit = completed.stdout.decode("ascii", "replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "urllib3": version("urllib3"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit,
    }


def describe(report: Report) -> str:
    m = report.meta
    return (
        f"openapi_client benchmarks, {m['date']}: Python {m['python']}, urllib3 {m['urllib3']}, "
        f"{m['cpus']} CPUs, {m['platform']}\n"
        f"Measured: openapi_client from the {m['measured']} (commit {m['commit'] or 'unknown'})\n"
        f"Medians of interleaved rounds, each measurement in a fresh process, one simulator "
        f"process for all; ratio = client / baseline (bare urllib3)."
    )


# -- command line ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Benchmark openapi_client against a bare urllib3 call (issue 5).",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds: under 40 s")
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="rounds of benchmarks 1 and 3 (default 7, quick 3); 2 runs 3N, 5 runs 3N/2+1",
    )
    parser.add_argument("--chart", type=Path, metavar="PNG", help="draw the figures (matplotlib)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every sample as JSON")
    parser.add_argument(
        "--only",
        metavar="LIST",
        help=f"comma-separated subset of {','.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--ref",
        metavar="REV",
        help="measure openapi_client as of this git revision (git archive into a temporary "
        "directory) instead of the work tree",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target is missed or not measured"
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.rounds is not None and not 1 <= args.rounds <= 50:
        parser.error("--rounds must be from 1 to 50")
    selected = BENCHMARKS
    if args.only:
        selected = tuple(name.strip() for name in args.only.split(",") if name.strip())
        unknown = sorted(set(selected) - set(BENCHMARKS))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")
    terminate_on_sigterm()
    plan = Plan.make(args.quick, args.rounds)
    report = Report(plan=plan, meta=meta())
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f} s] {message}", file=sys.stderr, flush=True)

    def progress(message: str) -> None:
        """Report a step; past the run's time budget, stop the benchmark that is running."""
        if time.monotonic() - started > plan.budget_seconds:
            raise BenchError(f"the run's time budget of {plan.budget_seconds:.0f} s is used up")
        say(message)

    scratch: Optional[Path] = None
    simulator: Optional[SimulatorProcess] = None
    try:
        if args.ref:
            scratch = Path(tempfile.mkdtemp(prefix="openapi-client-bench-"))
            try:
                report.meta["commit"] = snapshot(args.ref, scratch)
            except BenchError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            use_library(scratch)
            report.meta["measured"] = f"git revision {args.ref}"
        else:
            report.meta["measured"] = "work tree"
        say(f"measuring openapi_client from {library_root()} ({report.meta['measured']})")
        simulator = SimulatorProcess()
        simulator.start()
        url = simulator.url
        say(f"simulator pid {simulator.pid} at {url}")
        steps: List[Tuple[str, Callable[[], Tuple[Dict[str, Any], List[Row]]]]] = [
            ("import", lambda: bench_import(plan, progress)),
            ("cpu", lambda: bench_cpu(url, plan, progress)),
            ("throughput", lambda: bench_throughput(url, plan, progress)),
            ("memory", lambda: bench_memory(url, plan, progress)),
            ("first", lambda: bench_first(url, plan, progress)),
        ]
        rows: Dict[str, List[Row]] = {}
        for name, step in steps:
            if name not in selected:
                continue
            try:
                report.results[name], rows[name] = step()
            except BenchError as error:
                report.errors[name] = str(error)
                say(f"{name}: {error}")
        report.rows = [row for name in BENCHMARKS for row in rows.get(name, [])]
    finally:
        if simulator is not None:
            simulator.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    report.meta["seconds"] = round(time.monotonic() - started, 1)
    say("done")

    print(describe(report))
    print()
    print(format_table(report))
    print(f"\n({report.meta['seconds']:.0f} s; exit status 0 unless --check)")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "meta": report.meta,
            "plan": asdict(plan),
            "rows": [asdict(row) for row in report.rows],
            "results": report.results,
            "errors": report.errors,
        }
        args.json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        print(f"samples written to {args.json}", file=sys.stderr)
    if args.chart is not None:
        try:
            from chart import draw
        except ImportError as error:
            print(
                f"no chart: {error}. Install the bench extra: pip install -e '.[bench]' "
                "(or pip install matplotlib)",
                file=sys.stderr,
            )
        else:
            draw(report.results, report.meta, args.chart, TARGETS, plan.threads)
            print(f"chart written to {args.chart}", file=sys.stderr)

    if args.check:
        missed = [row.key for row in report.rows if row.verdict == "FAIL"]
        if missed or report.errors:
            print(f"targets missed: {', '.join(missed + list(report.errors))}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
