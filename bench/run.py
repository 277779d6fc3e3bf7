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
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, NamedTuple

from harness import (
    PYTHON,
    REPO_ROOT,
    BenchError,
    SimulatorProcess,
    library_root,
    measured_library,
    median,
    rotated,
    run_worker,
    spread,
    terminate_on_sigterm,
    time_command,
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
    memory_variants: tuple[str, ...]
    first_runs: int
    #: Bound of each measured loop in a worker, in seconds.
    max_seconds: float
    #: No new round starts once the whole run has taken this long.
    budget_seconds: float

    @classmethod
    def make(cls, quick: bool, rounds: int | None) -> Plan:
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
    baseline: float | None
    ratio: float | None
    target: str
    verdict: str
    ratio_range: tuple[float, float] | None = None
    digits: int = 1
    note: str = ""


@dataclass
class Report:
    plan: Plan
    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# -- what the benchmarks share --------------------------------------------------------------------

#: Timeout of one ``python -c`` snippet run (benchmarks 2 and 5).
SNIPPET_TIMEOUT = 60.0

Samples = dict[str, list[dict[str, Any]]]


def _worker_args(url: str, max_seconds: float, **counts: int) -> list[str]:
    """A worker's options: ``--url URL``, ``--NAME VALUE`` for each count, then the time bound."""
    args = ["--url", url]
    for name, value in counts.items():
        args += [f"--{name}", str(value)]
    return [*args, "--max-seconds", str(max_seconds)]


def _worker_rounds(
    workload: str,
    variants: Sequence[str],
    args: Sequence[str],
    timeout: float,
    plan: Plan,
    progress: Progress,
    title: str,
) -> Samples:
    """``plan.rounds`` rounds of worker ``workload``, the variants in rotating order: by variant."""
    samples: Samples = {variant: [] for variant in variants}
    for index in range(plan.rounds):
        progress(f"{title}: round {index + 1}/{plan.rounds}")
        for variant in rotated(variants, index):
            samples[variant].append(run_worker(workload, [variant, *args], timeout))
    return samples


def _column(samples: Samples, key: str) -> dict[str, list[Any]]:
    """Field ``key`` of every worker result, by variant."""
    return {variant: [result[key] for result in results] for variant, results in samples.items()}


def _medians(values: dict[str, list[float]]) -> dict[str, float]:
    return {variant: median(series) for variant, series in values.items()}


class Paired(NamedTuple):
    """One figure of interleaved rounds, the client against the baseline (bare urllib3)."""

    values: dict[str, list[float]]
    medians: dict[str, float]
    #: The client's median over the baseline's: the figure a target applies to.
    ratio: float
    #: The client's value over the baseline's within each round.
    per_round: list[float]

    @classmethod
    def of(cls, samples: Samples, key: str) -> Paired:
        values = _column(samples, key)
        medians = _medians(values)
        per_round = [c / b for c, b in zip(values["client"], values["urllib3"])]
        return cls(values, medians, medians["client"] / medians["urllib3"], per_round)

    def ratios(self) -> dict[str, Any]:
        """The JSON fields of the comparison."""
        return {
            "ratio": self.ratio,
            "per_round_ratio": self.per_round,
            "median_per_round_ratio": median(self.per_round),
        }


def _truncated(samples: Samples) -> bool:
    """Whether any worker stopped at its time bound before making all its calls."""
    return any(result["truncated"] for results in samples.values() for result in results)


def _time_snippets(
    snippets: dict[str, str],
    runs: int,
    title: str,
    progress: Progress,
    argv: Sequence[str] = (),
    after_run: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Wall milliseconds of ``python -c SNIPPET ARGV...`` over ``runs`` interleaved runs by variant.

    Each snippet first runs once untimed: bytecode caches, and the same warm page cache for all.
    ``after_run(index)`` is called once every variant has had run ``index``.
    """
    variants = tuple(snippets)
    for variant in variants:
        time_command([PYTHON, "-c", snippets[variant], *argv], SNIPPET_TIMEOUT)
    wall: dict[str, list[float]] = {variant: [] for variant in variants}
    for index in range(runs):
        if index % 5 == 0:
            progress(f"{title}: run {index + 1}/{runs}")
        for variant in rotated(variants, index):
            elapsed, _ = time_command([PYTHON, "-c", snippets[variant], *argv], SNIPPET_TIMEOUT)
            wall[variant].append(elapsed * 1000.0)
        if after_run is not None:
            after_run(index)
    return wall


# -- benchmark 1 ----------------------------------------------------------------------------------


def bench_cpu(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    args = _worker_args(
        url, plan.max_seconds, calls=plan.cpu_calls, warmup=plan.cpu_warmup, blocks=plan.cpu_blocks
    )
    variants = ("client", "urllib3", "httpclient")
    timeout = plan.max_seconds * 1.5 + 30
    samples = _worker_rounds("cpu", variants, args, timeout, plan, progress, "1. CPU per call")
    # Per process: the median of its timed blocks; per variant: the median over the rounds.
    cpu = Paired.of(samples, "cpu_us_block_median")
    wall = Paired.of(samples, "wall_us_block_median")
    whole = Paired.of(samples, "cpu_us_per_call")
    data = {
        "cpu_us_per_call": cpu.values,
        "wall_us_per_call": wall.values,
        "whole_run_cpu_us_per_call": whole.values,
        "whole_run_ratio": whole.ratio,
        "block_cpu_us": _column(samples, "block_cpu_us"),
        "median_cpu_us": cpu.medians,
        "median_wall_us": wall.medians,
        **cpu.ratios(),
        "truncated": _truncated(samples),
    }
    rows = [
        Row(
            "cpu",
            f"1. client CPU per call, us ({plan.rounds} x {plan.cpu_calls:,})",
            cpu.medians["client"],
            cpu.medians["urllib3"],
            cpu.ratio,
            f"<= {CPU_TARGET:.2f}",
            verdict(cpu.ratio <= CPU_TARGET),
            spread(cpu.per_round),
        ),
        Row(
            "cpu_floor",
            "   floor: http.client kept alive, us",
            cpu.medians["httpclient"],
            cpu.medians["urllib3"],
            cpu.medians["httpclient"] / cpu.medians["urllib3"],
            "-",
            "info",
            note=f"client/floor {cpu.medians['client'] / cpu.medians['httpclient']:.2f}",
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


def bench_import(plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    self_timed: dict[str, list[float]] = {"client": [], "urllib3": []}
    modules = {"client": "openapi_client", "urllib3": "urllib3"}

    def importtime(index: int) -> None:
        """After each run, the same imports as the interpreter itself times them."""
        for variant in rotated(tuple(self_timed), index):
            _, stderr = time_command(
                [PYTHON, "-X", "importtime", "-c", IMPORT_SNIPPETS[variant]],
                SNIPPET_TIMEOUT,
                capture_stderr=True,
            )
            self_timed[variant].append(_importtime_ms(stderr, modules[variant]))

    wall = _time_snippets(
        IMPORT_SNIPPETS, plan.import_runs, "2. import", progress, after_run=importtime
    )
    medians = _medians(wall)
    net = {variant: medians[variant] - medians["bare"] for variant in wall if variant != "bare"}
    self_medians = _medians(self_timed)
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


def bench_throughput(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    args = _worker_args(
        url,
        plan.max_seconds,
        threads=plan.threads,
        calls=plan.thread_calls,
        warmup=plan.thread_warmup,
    )
    variants = ("client", "urllib3")
    timeout = plan.max_seconds * 3 + 30
    samples = _worker_rounds("throughput", variants, args, timeout, plan, progress, "3. throughput")
    rates = Paired.of(samples, "calls_per_s")
    cpu_us = Paired.of(samples, "cpu_us_per_call")
    data = {
        "calls_per_s": rates.values,
        "cpu_us_per_call": cpu_us.values,
        "median_calls_per_s": rates.medians,
        "median_cpu_us_per_call": cpu_us.medians,
        **rates.ratios(),
        "truncated": _truncated(samples),
    }
    row = Row(
        "throughput",
        f"3. {plan.threads} threads x {plan.thread_calls} calls, calls/s",
        rates.medians["client"],
        rates.medians["urllib3"],
        rates.ratio,
        f">= {THROUGHPUT_TARGET:.2f}",
        verdict(rates.ratio >= THROUGHPUT_TARGET),
        spread(rates.per_round),
        digits=0,
    )
    return data, [row]


# -- benchmark 4 ----------------------------------------------------------------------------------


def bench_memory(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    args = _worker_args(
        url, plan.max_seconds, calls=plan.memory_calls, warmup=plan.memory_warmup, samples=20
    )
    data: dict[str, Any] = {}
    for variant in plan.memory_variants:
        progress(f"4. memory: {variant}, {plan.memory_calls:,} calls")
        data[variant] = run_worker("memory", [variant, *args], plan.max_seconds * 1.5 + 30)
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


def bench_first(url: str, plan: Plan, progress: Progress) -> tuple[dict[str, Any], list[Row]]:
    wall = _time_snippets(
        FIRST_RESULT_SNIPPETS, plan.first_runs, "5. first result", progress, argv=(url,)
    )
    medians = _medians(wall)
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


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def format_table(report: Report) -> str:
    header = ("benchmark", "client", "baseline", "ratio [rounds]", "target", "result")
    lines: list[tuple[str, ...]] = [header]
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


def meta() -> dict[str, Any]:
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


def main(argv: Sequence[str] | None = None) -> int:
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

    with contextlib.ExitStack() as cleanup:  # on leaving: the simulator stops, the snapshot goes
        try:
            commit = cleanup.enter_context(measured_library(args.ref, "openapi-client-bench-"))
        except BenchError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if commit is not None:
            report.meta["commit"] = commit
            report.meta["measured"] = f"git revision {args.ref}"
        else:
            report.meta["measured"] = "work tree"
        say(f"measuring openapi_client from {library_root()} ({report.meta['measured']})")
        simulator = cleanup.enter_context(SimulatorProcess())
        url = simulator.url
        say(f"simulator pid {simulator.pid} at {url}")
        steps: list[tuple[str, Callable[[], tuple[dict[str, Any], list[Row]]]]] = [
            ("import", lambda: bench_import(plan, progress)),
            ("cpu", lambda: bench_cpu(url, plan, progress)),
            ("throughput", lambda: bench_throughput(url, plan, progress)),
            ("memory", lambda: bench_memory(url, plan, progress)),
            ("first", lambda: bench_first(url, plan, progress)),
        ]
        rows: dict[str, list[Row]] = {}
        for name, step in steps:
            if name not in selected:
                continue
            try:
                report.results[name], rows[name] = step()
            except BenchError as error:
                report.errors[name] = str(error)
                say(f"{name}: {error}")
        report.rows = [row for name in BENCHMARKS for row in rows.get(name, [])]
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
