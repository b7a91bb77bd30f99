"""The benchmark's figures, pure: samples in, medians, table, ratios and the plot's series out."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

# Rows in the order they run in a round; the plot draws the same series.
FIRST_UP = "up: 8 limits (first)"
NOOP_UP = "up: no change"
NOOP_REFRESH_UP = "up --refresh: no change"
REFRESH = "refresh"
DESTROY = "destroy"
BASE_4 = "baseline: change, 4 threads"
BASE_N = "baseline: change, N threads"
BASE_READ = "baseline: read, N threads"
OPERATIONS = (FIRST_UP, NOOP_UP, NOOP_REFRESH_UP, REFRESH, DESTROY, BASE_4, BASE_N, BASE_READ)


@dataclass(frozen=True)
class Sample:
    """One timed operation on a fleet of `hosts`."""

    seconds: float
    logins: int  # SSH logins over every host, from their sshd logs
    hosts: int
    smtp_attempts: int = 0
    smtp_failed: int = 0  # refused, timed out, or a greeting other than 220
    values_ok: bool = True  # after an apply: every host has every value


@dataclass(frozen=True)
class Stats:
    median: float
    low: float
    high: float
    logins_per_host: float
    smtp_attempts: int
    smtp_failed: int
    values_ok: bool


@dataclass
class Results:
    """operation -> fleet size -> samples (one per round)."""

    samples: dict[str, dict[int, list[Sample]]] = field(default_factory=dict)

    def add(self, operation: str, sample: Sample) -> None:
        self.samples.setdefault(operation, {}).setdefault(sample.hosts, []).append(sample)

    def stats(self, operation: str, hosts: int) -> Stats | None:
        found = self.samples.get(operation, {}).get(hosts)
        return summarize(found) if found else None

    def sizes(self) -> list[int]:
        return sorted({n for by_size in self.samples.values() for n in by_size})

    def operations(self) -> list[str]:
        known = [op for op in OPERATIONS if op in self.samples]
        return known + sorted(op for op in self.samples if op not in OPERATIONS)


def summarize(samples: Sequence[Sample]) -> Stats:
    if not samples:
        raise ValueError("no samples to summarize")
    seconds = [s.seconds for s in samples]
    return Stats(
        median=statistics.median(seconds),
        low=min(seconds),
        high=max(seconds),
        logins_per_host=statistics.median(s.logins / s.hosts for s in samples),
        smtp_attempts=sum(s.smtp_attempts for s in samples),
        smtp_failed=sum(s.smtp_failed for s in samples),
        values_ok=all(s.values_ok for s in samples),
    )


def ratio(numerator: float | None, denominator: float | None) -> str:
    """`a / b` as `1.23x`; a dash where either is missing or the divisor is zero."""
    if numerator is None or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


HEADER = ("N", "operation", "median s", "min s", "max s", "logins/host", "SMTP failed/tried", "values")


def table_rows(results: Results) -> list[tuple[str, ...]]:
    rows = []
    for n in results.sizes():
        for op in results.operations():
            st = results.stats(op, n)
            if st is None:
                continue
            rows.append(
                (
                    str(n),
                    op,
                    f"{st.median:.2f}",
                    f"{st.low:.2f}",
                    f"{st.high:.2f}",
                    f"{st.logins_per_host:.1f}",
                    f"{st.smtp_failed}/{st.smtp_attempts}",
                    "ok" if st.values_ok else "MISSING",
                )
            )
    return rows


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table: text columns left-aligned, figures right-aligned."""
    rows = [tuple(r) for r in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    numeric = [all(_is_figure(r[i]) for r in rows) and bool(rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)]
        return "  ".join(out).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _is_figure(cell: str) -> bool:
    return cell.replace(".", "", 1).replace("/", "", 1).replace("x", "", 1).isdigit() or cell == "-"


RATIO_HEADER = ("N", "first up / base N", "first up / base 4", "up --refresh / base read", "refresh / base read")


def ratio_rows(results: Results) -> list[tuple[str, ...]]:
    def med(op: str, n: int) -> float | None:
        st = results.stats(op, n)
        return st.median if st else None

    return [
        (
            str(n),
            ratio(med(FIRST_UP, n), med(BASE_N, n)),
            ratio(med(FIRST_UP, n), med(BASE_4, n)),
            ratio(med(NOOP_REFRESH_UP, n), med(BASE_READ, n)),
            ratio(med(REFRESH, n), med(BASE_READ, n)),
        )
        for n in results.sizes()
    ]


def growth_lines(results: Results, small: int = 20, large: int = 100) -> list[str]:
    """How each operation grows from `small` to `large` hosts (linear would be large/small)."""
    if small not in results.sizes() or large not in results.sizes():
        return []
    lines = [f"growth {small} -> {large} hosts (linear: {large / small:.1f}x):"]
    for op in results.operations():
        a, b = results.stats(op, small), results.stats(op, large)
        if a and b:
            lines.append(f"  {op:<32} {ratio(b.median, a.median)}")
    return lines


def plot_series(results: Results) -> dict[str, tuple[list[int], list[float], list[float], list[float]]]:
    """operation -> (sizes, medians, mins, maxes): what the plot draws, one line per operation."""
    series = {}
    for op in results.operations():
        sizes = sorted(results.samples[op])
        stats = [results.stats(op, n) for n in sizes]
        series[op] = (
            sizes,
            [s.median for s in stats if s],
            [s.low for s in stats if s],
            [s.high for s in stats if s],
        )
    return series


def write_plot(results: Results, path, title: str) -> list[str]:
    """Seconds against fleet size, medians with min-max bars, as a PNG; returns the legend's labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    for op, (sizes, medians, lows, highs) in plot_series(results).items():
        errors = [
            [m - lo for m, lo in zip(medians, lows, strict=True)],
            [h - m for m, h in zip(medians, highs, strict=True)],
        ]
        style = "--" if op.startswith("baseline") else "-"
        axes.errorbar(sizes, medians, yerr=errors, label=op, marker="o", linestyle=style, capsize=3)
    axes.set_xticks(results.sizes())
    axes.set_xlabel("hosts (N)")
    axes.set_ylabel("seconds (median of rounds, bars: min-max)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    legend = axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
    return [text.get_text() for text in legend.get_texts()]


def to_json(results: Results) -> dict[str, dict[str, list[dict[str, object]]]]:
    return {op: {str(n): [asdict(s) for s in v] for n, v in by.items()} for op, by in results.samples.items()}


def from_json(data: dict[str, dict[str, list[dict[str, object]]]]) -> Results:
    results = Results()
    for op, by in data.items():
        for samples in by.values():
            for item in samples:
                results.add(op, Sample(**item))  # type: ignore[arg-type]
    return results
