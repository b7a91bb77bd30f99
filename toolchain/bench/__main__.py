"""`python -m toolchain.bench`: the fleet benchmark on the test bed, the project's engine beside a plain baseline,
the engine floor and the RHEL System Role.

For each fleet size N, interleaved in rounds: the project's first `up` of the guide's eight limits, a `preview`
and a no-op `up`, `up --refresh` with nothing to change, `refresh`, `destroy`; then the baseline (one paramiko
connection per host, a thread pool: read, one `postconf -e`, `postfix check`, reload) with 4 and with N threads,
and its read alone; in the first round at the role's sizes, the RHEL System Role's first apply of the same limits
and its re-run; then the engine floor (the same engine operations on N resources whose provider does nothing).
After the fleet, the floor alone at its own sizes (to 1,000 resources, no hosts). Medians of the rounds with min
and max, SSH logins per host (from each host's sshd log), every value checked on every host after each apply,
SMTP connections a client in the exceptions saw fail while each operation ran, and the state file's size.
Prints the tables and writes a PNG of seconds against N.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from toolchain.bench import imports, report, role

PROJECT_DIR = Path(__file__).resolve().parents[2]
FLOOR_SIZES = (20, 100, 300, 1000)
ROLE_SIZES = (20,)


def size_list(text: str, low: int, high: int, what: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are whole numbers separated by commas, not {text!r}") from None
    if any(not low <= v <= high for v in values):
        raise argparse.ArgumentTypeError(f"each size is {low} to {high} {what}, not {text!r}")
    return sorted(set(values))


def sizes(text: str) -> list[int]:
    found = size_list(text, 1, 100, "hosts")
    if not found:
        raise argparse.ArgumentTypeError(f"give at least one size of 1 to 100 hosts, not {text!r}")
    return found


def floor_sizes(text: str) -> list[int]:
    return size_list(text, 1, 5000, "resources")


def role_sizes(text: str) -> list[int]:
    return size_list(text, 1, 100, "hosts")


def rhel_role_line(archive_missing: str | None, wanted: list[int], measured: list[int]) -> str | None:
    """One line when the role's column is absent, or absent at some of the sizes asked for."""
    if archive_missing:
        return archive_missing
    if not wanted:
        return "RHEL System Role: not measured (--role-sizes is empty)"
    skipped = [n for n in wanted if n not in measured]
    if skipped:
        return f"RHEL System Role: not measured at {skipped} (not among --sizes)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=[1, 5, 20, 50, 100], help="fleet sizes, e.g. 1,5,20")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (median of them)")
    parser.add_argument("--parallel", type=int, default=32, help="the engine's --parallel")
    parser.add_argument(
        "--floor-sizes",
        type=floor_sizes,
        default=list(FLOOR_SIZES),
        help="resource counts of the engine floor run alone after the fleet, e.g. 20,100,300,1000 (it also runs "
        "at each fleet size); empty: none",
    )
    parser.add_argument(
        "--floor-payload",
        type=int,
        default=0,
        help="bytes of filler in each floor resource's inputs and outputs (a state as large as the project's)",
    )
    parser.add_argument(
        "--floor-only", action="store_true", help="only the engine floor at --floor-sizes: no test hosts at all"
    )
    parser.add_argument(
        "--role-sizes",
        type=role_sizes,
        default=list(ROLE_SIZES),
        help="fleet sizes at which the RHEL System Role runs (once, in the first round); empty: never",
    )
    parser.add_argument("--role-forks", type=int, default=role.FORKS, help="Ansible's forks (its default: 5)")
    parser.add_argument(
        "--plot", type=Path, default=PROJECT_DIR / ".state" / "bench-fleet.png", help="where the PNG goes"
    )
    parser.add_argument("--from-json", type=Path, help="print the tables and plot of an earlier run's samples")
    parser.add_argument("--markdown", action="store_true", help="print the tables in Markdown")
    args = parser.parse_args(argv)
    threads = os.environ.get("SECURE_POSTFIX_PROVIDER_THREADS", "32 (default)")
    raw = args.plot.with_suffix(".json")
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    archive = role.archive_path()
    import_lines: list[str] = []
    table = report.markdown_table if args.markdown else report.format_table
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        results = report.from_json(data.get("samples", data))
        import_lines = data.get("imports", [])
        print(f"fleet benchmark: samples of {args.from_json}")
    else:
        # The project's modules as an installed copy has them, compiled (scripts/setup.sh says why).
        compileall.compile_dir(str(PROJECT_DIR / "secure_postfix"), quiet=1)
        import_lines = imports.report_lines()

        def save(done: report.Results) -> None:
            # After each size: a run cut short still leaves the figures of the sizes it finished.
            raw.write_text(json.dumps({"samples": report.to_json(done), "imports": import_lines}, indent=1) + "\n")

        with tempfile.TemporaryDirectory(prefix="secure-postfix-bench-") as work:
            if args.floor_only:
                results = floor_only(args, Path(work), save)
            else:
                from toolchain.bench import fleet

                plan = fleet.Plan(
                    sizes=args.sizes,
                    rounds=args.rounds,
                    parallel=args.parallel,
                    floor_sizes=args.floor_sizes,
                    role_sizes=args.role_sizes,
                    role_archive=archive,
                    role_forks=args.role_forks,
                    role_logs=args.plot.parent,
                )
                results = fleet.run(plan, Path(work), save)
        took = time.monotonic() - started
        print(
            f"fleet benchmark: sizes {[] if args.floor_only else args.sizes}, floor {args.floor_sizes} "
            f"(payload {args.floor_payload} B), "
            f"{args.rounds} rounds, engine --parallel {args.parallel}, provider threads {threads}, "
            f"{os.cpu_count()} CPUs, {took / 60:.1f} min"
        )
    fleet_rows = report.table_rows(results)
    if fleet_rows:
        print(table(report.HEADER, fleet_rows))
        print()
        print(table(report.RATIO_HEADER, report.ratio_rows(results)))
        print()
        print(table(report.FLOOR_RATIO_HEADER, report.floor_ratio_rows(results)))
        for line in report.growth_lines(results):
            print(line)
        print()
        print("above the floor (each cell: project / floor, medians):")
        print(table(report.BREAKDOWN_HEADER, report.breakdown_rows(results)))
        print()
    print("engine floor (N resources whose provider does nothing; no hosts):")
    print(table(report.FLOOR_HEADER, report.floor_rows(results)))
    for small, large in ((20, 100), (100, 1000)):
        for line in report.growth_lines(results, small, large, report.FLOOR_OPERATIONS, "resources"):
            print(line)
    for line in import_lines:
        print(line)
    measured = sorted(report.sizes_of(results, report.ROLE_FIRST))
    line = rhel_role_line(role.not_measured_line(), [] if args.floor_only else args.role_sizes, measured)
    if line and fleet_rows:
        print(line)
    if fleet_rows:
        report.write_plot(results, args.plot, f"secure-postfix fleet benchmark ({os.cpu_count()} CPUs)")
        print(f"plot: {args.plot}")
    if report.floor_rows(results):
        floor_plot = args.plot.with_name(args.plot.stem + "-floor.png")
        title = f"engine floor: N resources whose provider does nothing ({os.cpu_count()} CPUs)"
        report.write_plot(results, floor_plot, title, report.FLOOR_OPERATIONS)
        print(f"plot: {floor_plot}")
    if not args.from_json:
        print(f"samples: {raw}")
    return 0


def floor_only(args: argparse.Namespace, work: Path, save) -> report.Results:
    from toolchain.bench import floor
    from toolchain.bench.fleet import limits

    results = report.Results()
    with floor.ProviderTimings(work / "provider-timings.txt") as timings:
        floor.run(
            args.floor_sizes,
            args.rounds,
            args.parallel,
            work,
            limits("192.0.2.1"),
            results,
            timings,
            save,
            args.floor_payload,
        )
    return results


if __name__ == "__main__":
    sys.exit(main())
