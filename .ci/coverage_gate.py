"""Print line and branch coverage from a coverage JSON report; fail under the bar.

Usage: python .ci/coverage_gate.py REPORT.json [--lines 95] [--branches 90] [--only GLOB ...]

Without --only it judges the whole package; with it, only the files matching a glob (each file
is printed too).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--lines", type=float, default=95.0, help="least line coverage, %%")
    parser.add_argument("--branches", type=float, default=None,
                        help="least branch coverage, %% (without it: printed, not judged)")
    parser.add_argument("--only", action="append", default=[], metavar="GLOB",
                        help="judge only these files (repeatable)")
    args = parser.parse_args(argv)
    with open(args.report, encoding="utf-8") as f:
        report = json.load(f)
    if args.only:
        files = {
            name: data["summary"]
            for name, data in sorted(report["files"].items())
            if any(fnmatch.fnmatch(name, pattern) for pattern in args.only)
        }
        if not files:
            print(f"no measured file matches {args.only}")
            return 1
        for name, summary in files.items():
            print(f"  {name}: lines {percent(summary, 'lines'):.2f} %, "
                  f"branches {percent(summary, 'branches'):.2f} %")
        totals: dict[str, Any] = {
            key: sum(summary[key] for summary in files.values())
            for key in ("covered_lines", "num_statements", "covered_branches", "num_branches")
        }
        what = " + ".join(args.only)
    else:
        totals = report["totals"]
        what = "openapi_client"
    failed = False
    for name, bar in (("lines", args.lines), ("branches", args.branches)):
        value = percent(totals, name)
        figure = f"coverage of {what}, {name}: {value:.2f} % ({fraction(totals, name)})"
        if bar is None:
            print(figure)
            continue
        print(f"{figure}, bar {bar:.0f} %: {'ok' if value >= bar else 'UNDER THE BAR'}")
        failed = failed or value < bar
    return 1 if failed else 0


def counts(summary: dict[str, Any], name: str) -> tuple[int, int]:
    if name == "lines":
        return summary["covered_lines"], summary["num_statements"]
    return summary["covered_branches"], summary["num_branches"]


def percent(summary: dict[str, Any], name: str) -> float:
    covered, total = counts(summary, name)
    return 100.0 * covered / total if total else 100.0


def fraction(summary: dict[str, Any], name: str) -> str:
    covered, total = counts(summary, name)
    return f"{covered}/{total}"


if __name__ == "__main__":
    sys.exit(main())
