"""The figure for ``docs/performance.md``: one panel per benchmark, and one of the targets.

Needs matplotlib, the optional ``bench`` extra (``pip install -e '.[bench]'``); the library never
imports it. Bars are medians; dots are the individual rounds or runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, NamedTuple

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

CLIENT = "#1f77b4"
BASELINE = "#7f7f7f"
FLOOR = "#c7c7c7"
BARE = "#e3e3e3"
PASS = "#2ca02c"
FAIL = "#d62728"

Bar = tuple[str, Sequence[float], str]


def _bars(axes: Axes, bars: Sequence[Bar], unit: str, digits: int = 0) -> None:
    """Median bars with each sample as a dot, the median written on the bar."""
    for position, (_, values, colour) in enumerate(bars):
        ordered = sorted(values)
        middle = len(ordered) // 2
        med = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0
        axes.bar(position, med, color=colour, edgecolor="#333333", linewidth=0.6, width=0.6)
        jitter = [position + 0.16 * ((i % 5) - 2) / 2 for i in range(len(values))]
        axes.scatter(jitter, values, s=9, color="#222222", alpha=0.55, zorder=3, linewidths=0)
        axes.annotate(
            f"{med:,.{digits}f}",
            (position, med),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=8,
            zorder=4,  # above the dots, on a light backing so that they do not hide it
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )
    axes.set_xticks(range(len(bars)))
    axes.set_xticklabels([label for label, _, _ in bars], fontsize=8)
    axes.set_ylabel(unit, fontsize=8)
    axes.tick_params(axis="y", labelsize=8)
    axes.set_ylim(0, max(max(values) for _, values, _ in bars) * 1.25)
    axes.grid(axis="y", alpha=0.3)


def _target_line(axes: Axes, value: float, text: str) -> None:
    axes.axhline(value, color=FAIL, linestyle="--", linewidth=1, label=text)
    bottom, top = axes.get_ylim()
    if value * 1.1 > top:
        axes.set_ylim(bottom, value * 1.15)
    axes.legend(fontsize=7, loc="upper right", framealpha=0.9)


def _missing(axes: Axes, title: str) -> None:
    axes.set_title(title, fontsize=9)
    axes.text(0.5, 0.5, "not measured in this run", ha="center", va="center", fontsize=8)
    axes.set_axis_off()


class Panel(NamedTuple):
    """What a bar panel shows, drawn by :func:`_bar_panel`."""

    bars: Sequence[Bar]
    unit: str
    digits: int = 0
    #: A dashed target line: its value and legend.
    target: tuple[float, str] | None = None


Content = Callable[[dict[str, Any], dict[str, float]], Panel]


def _bar_panel(
    axes: Axes,
    title: str,
    data: dict[str, Any] | None,
    content: Content,
    targets: dict[str, float],
) -> None:
    """One benchmark's bars, titled with its ratio, or a note that it was not measured."""
    if data is None:
        return _missing(axes, title)
    panel = content(data, targets)
    _bars(axes, panel.bars, panel.unit, panel.digits)
    if panel.target is not None:
        _target_line(axes, *panel.target)
    axes.set_title(f"{title}\nratio {data['ratio']:.2f}", fontsize=9)
    return None


def _against_urllib3(target: float, medians: dict[str, float]) -> tuple[float, str]:
    """A target line at ``target`` times the baseline's median."""
    return target * medians["urllib3"], f"target {target:.2f}x urllib3"


def _cpu(data: dict[str, Any], targets: dict[str, float]) -> Panel:
    cpu = data["cpu_us_per_call"]
    bars = [
        ("openapi_client", cpu["client"], CLIENT),
        ("bare urllib3", cpu["urllib3"], BASELINE),
        ("http.client\n(floor)", cpu["httpclient"], FLOOR),
    ]
    target = _against_urllib3(targets["cpu"], data["median_cpu_us"])
    return Panel(bars, "CPU us per call", target=target)


def _import(data: dict[str, Any], targets: dict[str, float]) -> Panel:
    bare = data["median_wall_ms"]["bare"]
    wall = data["wall_ms"]
    bars = [
        ("import\nopenapi_client", [v - bare for v in wall["client"]], CLIENT),
        ("import\nurllib3", [v - bare for v in wall["urllib3"]], BASELINE),
        ("+ ApiClient,\nConfiguration, Api", [v - bare for v in wall["client_call_names"]], FLOOR),
    ]
    target = _against_urllib3(targets["import"], data["net_ms"])
    return Panel(bars, "ms (wall, minus bare interpreter)", digits=1, target=target)


def _throughput(data: dict[str, Any], targets: dict[str, float]) -> Panel:
    rates = data["calls_per_s"]
    bars = [
        ("openapi_client\n(one ApiClient)", rates["client"], CLIENT),
        ("bare urllib3\n(one PoolManager)", rates["urllib3"], BASELINE),
    ]
    target = _against_urllib3(targets["throughput"], data["median_calls_per_s"])
    return Panel(bars, "calls per second", target=target)


def _first(data: dict[str, Any], targets: dict[str, float]) -> Panel:
    wall = data["wall_ms"]
    bars = [
        ("python -c pass", wall["bare"], BARE),
        ("bare urllib3", wall["urllib3"], BASELINE),
        ("openapi_client", wall["client"], CLIENT),
    ]
    return Panel(bars, "ms (wall, whole process)", digits=1)


def _memory(axes: Axes, data: dict[str, Any] | None, target_kib: float) -> None:
    title = "4. Resident memory growth after warm-up"
    if data is None:
        return _missing(axes, title)
    styles = {"client": ("openapi_client", CLIENT), "urllib3": ("bare urllib3", BASELINE)}
    for variant, result in data.items():
        label, colour = styles.get(variant, (variant, "#000000"))
        calls = [point[0] for point in result["trace"]]
        growth = [point[1] for point in result["trace"]]
        # The client on top: where both stay flat, the line that the target applies to shows.
        on_top = 3 if variant == "client" else 2
        axes.plot(calls, growth, marker="o", markersize=3, color=colour, label=label, zorder=on_top)
    _target_line(axes, target_kib, f"target {target_kib:.0f} KiB")
    axes.set_ylim(-0.05 * target_kib, target_kib * 1.25)
    axes.set_xlabel("calls after warm-up", fontsize=8)
    axes.set_ylabel("VmRSS growth, KiB", fontsize=8)
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    growth_kib = data["client"]["growth_kib"]
    axes.set_title(f"{title}\nclient: {growth_kib} KiB", fontsize=9)
    return None


def _targets(axes: Axes, results: dict[str, Any], targets: dict[str, float]) -> None:
    """How much of each target's allowance is used: below 1 meets it."""
    entries: list[tuple[str, float]] = []
    if "cpu" in results:
        entries.append(
            (f"1. CPU ratio / {targets['cpu']:.2f}", results["cpu"]["ratio"] / targets["cpu"])
        )
    if "import" in results:
        entries.append(
            (
                f"2. import ratio / {targets['import']:.2f}",
                results["import"]["ratio"] / targets["import"],
            )
        )
    if "throughput" in results:
        entries.append(
            (
                f"3. {targets['throughput']:.2f} / throughput ratio",
                targets["throughput"] / results["throughput"]["ratio"],
            )
        )
    if "memory" in results:
        growth = results["memory"]["client"]["growth_kib"]
        entries.append((f"4. RSS growth / {targets['memory']:.0f} KiB", growth / targets["memory"]))
    axes.set_title("Targets: share of the allowance used (< 1 meets it)", fontsize=9)
    if not entries:
        axes.text(0.5, 0.5, "no target measured", ha="center", va="center", fontsize=8)
        axes.set_axis_off()
        return
    labels = [label for label, _ in entries]
    values = [value for _, value in entries]
    positions = list(range(len(entries)))[::-1]
    colours = [PASS if value <= 1.0 else FAIL for value in values]
    axes.barh(positions, values, color=colours, height=0.55)
    for position, value in zip(positions, values):
        axes.annotate(
            f"{value:.2f}",
            (max(value, 0.0), position),
            textcoords="offset points",
            xytext=(3, -3),
            fontsize=8,
        )
    axes.axvline(1.0, color="#333333", linewidth=1)
    axes.set_yticks(positions)
    axes.set_yticklabels(labels, fontsize=8)
    axes.set_xlim(0, max(1.3, max(values) * 1.2))
    axes.tick_params(axis="x", labelsize=8)
    axes.grid(axis="x", alpha=0.3)


def draw(
    results: dict[str, Any],
    meta: dict[str, Any],
    path: Path,
    targets: dict[str, float],
    threads: int = 8,
) -> None:
    """Write the six-panel PNG to ``path``.

    :param targets: ``cpu``, ``import`` and ``throughput`` ratios and ``memory`` in KiB.
    """
    figure, grid = plt.subplots(2, 3, figsize=(15, 8.6))
    threads_title = f"3. {threads} threads sharing one client (higher is better)"
    bar_panels: list[tuple[Axes, str, str, Content]] = [
        (grid[0][0], "cpu", "1. Client CPU per call (lower is better)", _cpu),
        (grid[0][1], "import", "2. Import time over bare python (lower is better)", _import),
        (grid[0][2], "throughput", threads_title, _throughput),
        (grid[1][1], "first", "5. Process start to first result (lower is better)", _first),
    ]
    for axes, name, title, content in bar_panels:
        _bar_panel(axes, title, results.get(name), content, targets)
    _memory(grid[1][0], results.get("memory"), targets["memory"])
    _targets(grid[1][2], results, targets)
    figure.suptitle(
        f"openapi_client vs bare urllib3 against the Deribit simulator on loopback - "
        f"Python {meta.get('python')}, urllib3 {meta.get('urllib3')}, {meta.get('cpus')} CPUs, "
        f"{meta.get('date')}, commit {meta.get('commit') or 'unknown'}",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
