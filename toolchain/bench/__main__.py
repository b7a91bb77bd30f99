"""`python -m toolchain.bench`: the fleet benchmark on the test bed, the project's engine beside a plain baseline.

For each fleet size N, interleaved in rounds: the project's first `up` of the guide's eight limits, a no-op
`up`, `up --refresh` with nothing to change, `refresh`, `destroy`; then the baseline (one paramiko connection
per host, a thread pool: read, one `postconf -e`, `postfix check`, reload) with 4 and with N threads, and
its read alone. Medians of the rounds with min and max, SSH logins per host (from each host's sshd log),
every value checked on every host after each apply, and SMTP connections a client in the exceptions saw
fail while each operation ran. Prints a table and writes a PNG of seconds against N.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from toolchain.bench import fleet, report

PROJECT_DIR = Path(__file__).resolve().parents[2]


def sizes(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are whole numbers separated by commas, not {text!r}") from None
    if not values or any(not 1 <= v <= 100 for v in values):
        raise argparse.ArgumentTypeError(f"each size is 1 to 100 hosts, not {text!r}")
    return sorted(set(values))


def rhel_role_line() -> str:
    found = shutil.which("ansible-playbook")
    if found is None:
        return "RHEL System Role: not measured (ansible-core is not on PATH)"
    return f"RHEL System Role: not measured (ansible-core at {found}, but this benchmark has no role column)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=list(fleet.SIZES), help="fleet sizes, e.g. 1,5,20")
    parser.add_argument("--rounds", type=int, default=fleet.ROUNDS, help="rounds per size (median of them)")
    parser.add_argument("--parallel", type=int, default=fleet.PARALLEL, help="the engine's --parallel")
    parser.add_argument(
        "--plot", type=Path, default=PROJECT_DIR / ".state" / "bench-fleet.png", help="where the PNG goes"
    )
    parser.add_argument("--from-json", type=Path, help="print the table and plot of an earlier run's samples")
    args = parser.parse_args(argv)
    threads = os.environ.get("SECURE_POSTFIX_PROVIDER_THREADS", "32 (default)")
    raw = args.plot.with_suffix(".json")
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.from_json:
        results = report.from_json(json.loads(args.from_json.read_text()))
        print(f"fleet benchmark: samples of {args.from_json}")
    else:

        def save(done: report.Results) -> None:
            # After each size: a run cut short still leaves the figures of the sizes it finished.
            raw.write_text(json.dumps(report.to_json(done), indent=1) + "\n")

        with tempfile.TemporaryDirectory(prefix="secure-postfix-bench-") as work:
            results = fleet.run(args.sizes, args.rounds, args.parallel, Path(work), save)
        took = time.monotonic() - started
        print(
            f"fleet benchmark: sizes {args.sizes}, {args.rounds} rounds, engine --parallel {args.parallel}, "
            f"provider threads {threads}, {os.cpu_count()} CPUs, {took / 60:.1f} min"
        )
    print(report.format_table(report.HEADER, report.table_rows(results)))
    print()
    print(report.format_table(report.RATIO_HEADER, report.ratio_rows(results)))
    for line in report.growth_lines(results):
        print(line)
    print(rhel_role_line())
    report.write_plot(results, args.plot, f"secure-postfix fleet benchmark ({os.cpu_count()} CPUs)")
    print(f"plot: {args.plot}")
    if not args.from_json:
        print(f"samples: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
