"""The benchmark's figures, pure: samples in, medians, table, ratios and the plot's series out."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

# Rows in the order they run in a round; the plot draws the same series (but the floor's).
FIRST_UP = "up: 8 limits (first)"
PREVIEW = "preview: no change"
NOOP_UP = "up: no change"
NOOP_REFRESH_UP = "up --refresh: no change"
REFRESH = "refresh"
DESTROY = "destroy"
BASE_4 = "baseline: change, 4 threads"
BASE_N = "baseline: change, N threads"
BASE_READ = "baseline: read, N threads"
ROLE_FIRST = "RHEL role: 8 limits (first)"
ROLE_NOOP = "RHEL role: no change"
# The engine floor (floor.py): the same engine operations on N resources whose provider does nothing.
FLOOR_FIRST_UP = "floor: up (first)"
FLOOR_PREVIEW = "floor: preview, no change"
FLOOR_NOOP_UP = "floor: up, no change"
FLOOR_NOOP_REFRESH_UP = "floor: up --refresh, no change"
FLOOR_REFRESH = "floor: refresh"
FLOOR_DESTROY = "floor: destroy"
FLOOR_OPERATIONS = (
    FLOOR_FIRST_UP,
    FLOOR_PREVIEW,
    FLOOR_NOOP_UP,
    FLOOR_NOOP_REFRESH_UP,
    FLOOR_REFRESH,
    FLOOR_DESTROY,
)
FLEET_OPERATIONS = (
    FIRST_UP,
    PREVIEW,
    NOOP_UP,
    NOOP_REFRESH_UP,
    REFRESH,
    DESTROY,
    BASE_4,
    BASE_N,
    BASE_READ,
    ROLE_FIRST,
    ROLE_NOOP,
)
OPERATIONS = FLEET_OPERATIONS + FLOOR_OPERATIONS
# Each engine operation and its floor.
FLOOR_OF = {
    FIRST_UP: FLOOR_FIRST_UP,
    PREVIEW: FLOOR_PREVIEW,
    NOOP_UP: FLOOR_NOOP_UP,
    NOOP_REFRESH_UP: FLOOR_NOOP_REFRESH_UP,
    REFRESH: FLOOR_REFRESH,
    DESTROY: FLOOR_DESTROY,
}


@dataclass(frozen=True)
class Sample:
    """One timed operation on a fleet of `hosts`."""

    seconds: float
    logins: int  # SSH logins over every host, from their sshd logs
    hosts: int
    smtp_attempts: int = 0
    smtp_failed: int = 0  # refused, timed out, or a greeting other than 220
    values_ok: bool = True  # after an apply: every host has every value
    state_bytes: int = 0  # an engine operation's checkpoint file afterwards
    declare_seconds: float | None = None  # the program declaring its resources (inline, in the bench's process)
    # The provider plugin's time by kind (start, load, Check, Diff, ...): [calls, total seconds, longest]
    provider: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Stats:
    median: float
    low: float
    high: float
    logins_per_host: float
    smtp_attempts: int
    smtp_failed: int
    values_ok: bool
    state_bytes: int = 0


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
        state_bytes=int(statistics.median(s.state_bytes for s in samples)),
    )


def accepted_logins(sshd_log: str) -> int:
    """SSH logins in an sshd log: one `Accepted publickey` (or password) line each."""
    return sum(
        1 for line in sshd_log.splitlines() if "Accepted publickey for " in line or "Accepted password for " in line
    )


def ratio(numerator: float | None, denominator: float | None) -> str:
    """`a / b` as `1.23x`; a dash where either is missing or the divisor is zero."""
    if numerator is None or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


HEADER = ("N", "operation", "median s", "min s", "max s", "logins/host", "SMTP failed/tried", "values", "state KiB")


def kib(size: int) -> str:
    return f"{size / 1024:.0f}" if size else "-"


def table_rows(results: Results, operations: Sequence[str] = FLEET_OPERATIONS) -> list[tuple[str, ...]]:
    rows = []
    for n in results.sizes():
        for op in results.operations():
            st = results.stats(op, n)
            if st is None or op not in operations:
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
                    kib(st.state_bytes),
                )
            )
    return rows


FLOOR_HEADER = ("N", "operation", "median s", "min s", "max s", "state KiB", "resources")


def floor_rows(results: Results) -> list[tuple[str, ...]]:
    """The floor's own table: N resources, no hosts, so no logins and no mail."""
    rows = []
    for n in results.sizes():
        for op in FLOOR_OPERATIONS:
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
                    kib(st.state_bytes),
                    "ok" if st.values_ok else "WRONG",
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


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """The same table in Markdown, for the docs."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _is_figure(cell: str) -> bool:
    return cell.replace(".", "", 1).replace("/", "", 1).replace("x", "", 1).isdigit() or cell == "-"


RATIO_HEADER = ("N", "first up / base N", "first up / base 4", "up --refresh / base read", "refresh / base read")


def _median(results: Results, op: str, n: int) -> float | None:
    st = results.stats(op, n)
    return st.median if st else None


def _sum(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def ratio_rows(results: Results) -> list[tuple[str, ...]]:
    def med(op: str, n: int) -> float | None:
        return _median(results, op, n)

    return [
        (
            str(n),
            ratio(med(FIRST_UP, n), med(BASE_N, n)),
            ratio(med(FIRST_UP, n), med(BASE_4, n)),
            ratio(med(NOOP_REFRESH_UP, n), med(BASE_READ, n)),
            ratio(med(REFRESH, n), med(BASE_READ, n)),
        )
        for n in results.sizes()
        if results.stats(FIRST_UP, n)
    ]


FLOOR_RATIO_HEADER = (
    "N",
    "no-op up / floor's",
    "preview / floor's",
    "first up / floor's",
    "up --refresh / (floor's + base read)",
    "role first / first up",
    "role no-op / no-op up",
)


def floor_ratio_rows(results: Results) -> list[tuple[str, ...]]:
    """The project beside the engine floor at the same N (same run), and the RHEL role beside the project."""

    def med(op: str, n: int) -> float | None:
        return _median(results, op, n)

    return [
        (
            str(n),
            ratio(med(NOOP_UP, n), med(FLOOR_NOOP_UP, n)),
            ratio(med(PREVIEW, n), med(FLOOR_PREVIEW, n)),
            ratio(med(FIRST_UP, n), med(FLOOR_FIRST_UP, n)),
            ratio(med(NOOP_REFRESH_UP, n), _sum(med(FLOOR_NOOP_REFRESH_UP, n), med(BASE_READ, n))),
            ratio(med(ROLE_FIRST, n), med(FIRST_UP, n)),
            ratio(med(ROLE_NOOP, n), med(NOOP_UP, n)),
        )
        for n in results.sizes()
        if results.stats(FIRST_UP, n)
    ]


def growth_lines(
    results: Results,
    small: int = 20,
    large: int = 100,
    operations: Sequence[str] = FLEET_OPERATIONS,
    unit: str = "hosts",
) -> list[str]:
    """How each operation grows from `small` to `large` (linear would be large/small), and its state file."""
    if small not in results.sizes() or large not in results.sizes():
        return []
    lines = [f"growth {small} -> {large} {unit} (linear: {large / small:.1f}x):"]
    for op in results.operations():
        a, b = results.stats(op, small), results.stats(op, large)
        if op in operations and a and b:
            state = f", state {kib(a.state_bytes)} -> {kib(b.state_bytes)} KiB" if a.state_bytes else ""
            lines.append(f"  {op:<32} {ratio(b.median, a.median)} ({a.median:.2f} -> {b.median:.2f} s{state})")
    return lines


def parse_provider_timings(text: str) -> dict[str, list[float]]:
    """The provider plugin's timing lines (`WHAT SECONDS`) by what: every duration, in order."""
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            seconds = float(parts[1])
        except ValueError:
            continue
        found.setdefault(parts[0], []).append(seconds)
    return found


def provider_summary(timings: dict[str, list[float]]) -> dict[str, list[float]]:
    """what -> [calls, total seconds, longest]."""
    return {what: [float(len(v)), sum(v), max(v)] for what, v in timings.items() if v}


def _provider_total(samples: Sequence[Sample], *kinds: str) -> float | None:
    """Median over samples of the provider's summed seconds in `kinds`."""
    if not samples:
        return None
    return statistics.median(sum(s.provider.get(k, [0, 0.0, 0.0])[1] for k in kinds) for s in samples)


def _calls(samples: Sequence[Sample]) -> float | None:
    """The provider's Check and Diff calls, less its one load of the provider (inside the first of them)."""
    calls, load = _provider_total(samples, "Check", "Diff"), _provider_total(samples, "load")
    return None if calls is None or load is None else max(0.0, calls - load)


def _declare(samples: Sequence[Sample]) -> float | None:
    values = [s.declare_seconds for s in samples if s.declare_seconds is not None]
    return statistics.median(values) if values else None


BREAKDOWN_HEADER = (
    "N",
    "operation",
    "project s",
    "floor s",
    "above floor s",
    "program declares s",
    "plugin start+load s",
    "Check+Diff s (sum of calls, less load)",
    "state KiB",
)


def _pair(a: float | None, b: float | None, digits: int = 2) -> str:
    def one(v: float | None) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    return f"{one(a)} / {one(b)}"


def breakdown_rows(results: Results, operations: Sequence[str] = (NOOP_UP, PREVIEW)) -> list[tuple[str, ...]]:
    """Where an engine operation of the project spends time above its floor at the same N: each column is
    `project / floor`, medians of the rounds. The provider's calls run on threads, so their sum can exceed the
    wall time."""
    rows = []
    for n in results.sizes():
        for op in operations:
            floor_op = FLOOR_OF[op]
            mine = results.samples.get(op, {}).get(n, [])
            base = results.samples.get(floor_op, {}).get(n, [])
            if not mine or not base:
                continue
            a, b = summarize(mine), summarize(base)
            rows.append(
                (
                    str(n),
                    op,
                    f"{a.median:.2f}",
                    f"{b.median:.2f}",
                    f"{a.median - b.median:.2f}",
                    _pair(_declare(mine), _declare(base)),
                    _pair(_provider_total(mine, "start", "load"), _provider_total(base, "start", "load")),
                    _pair(_calls(mine), _calls(base)),
                    f"{kib(a.state_bytes)} / {kib(b.state_bytes)}",
                )
            )
    return rows


def plot_series(
    results: Results, operations: Sequence[str] = FLEET_OPERATIONS
) -> dict[str, tuple[list[int], list[float], list[float], list[float]]]:
    """operation -> (sizes, medians, mins, maxes): what the plot draws, one line per operation."""
    series = {}
    for op in results.operations():
        if op not in operations:
            continue
        sizes = sorted(results.samples[op])
        stats = [results.stats(op, n) for n in sizes]
        series[op] = (
            sizes,
            [s.median for s in stats if s],
            [s.low for s in stats if s],
            [s.high for s in stats if s],
        )
    return series


def write_plot(results: Results, path, title: str, operations: Sequence[str] = FLEET_OPERATIONS) -> list[str]:
    """Seconds against fleet size, medians with min-max bars, as a PNG; returns the legend's labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    series = plot_series(results, operations)
    colors = plt.get_cmap("tab20").colors
    for index, (op, (sizes, medians, lows, highs)) in enumerate(series.items()):
        errors = [
            [m - lo for m, lo in zip(medians, lows, strict=True)],
            [h - m for m, h in zip(medians, highs, strict=True)],
        ]
        style = "--" if op.startswith("baseline") else ":" if op.startswith("RHEL") else "-"
        marker = "s" if op.startswith("RHEL") else "o"
        axes.errorbar(
            sizes, medians, yerr=errors, label=op, marker=marker, linestyle=style, capsize=3, color=colors[index % 20]
        )
    axes.set_xticks(sorted({n for sizes, *_ in series.values() for n in sizes}))
    axes.set_xlabel("hosts (N)" if operations is FLEET_OPERATIONS else "resources (N)")
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


def sizes_of(results: Results, operation: str) -> list[int]:
    return sorted(results.samples.get(operation, {}))
