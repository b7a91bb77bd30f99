"""What imports cost at program and plugin start: `python -X importtime` in a fresh interpreter, parsed.

The provider plugin imports the providers' modules the first time it loads a provider (every engine command
starts a new plugin), and a program run by the `pulumi` CLI imports the program's modules at each command.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
# What each process imports: the SDK's dynamic provider host alone (the plugin before any provider is loaded),
# then each provider's module on top of it, and the project's program as the CLI's runner imports it.
MEASURED = (
    ("provider plugin: the SDK (pulumi, dill, grpc)", ("pulumi", "pulumi.dynamic", "dill", "grpc"), ()),
    (
        "provider plugin: + the floor's provider",
        ("toolchain.bench.floor_provider",),
        ("pulumi", "pulumi.dynamic", "dill", "grpc"),
    ),
    (
        "provider plugin: + the project's providers",
        ("secure_postfix.postfix_config",),
        ("pulumi", "pulumi.dynamic", "dill", "grpc"),
    ),
    ("program (CLI runs): secure_postfix.stack.program", ("secure_postfix.stack.program",), ("pulumi",)),
)


@dataclass(frozen=True)
class ImportLine:
    self_us: int
    cumulative_us: int
    depth: int  # 0 for a module imported by the code itself, more for what it imported in turn
    module: str


def parse_importtime(stderr: str) -> list[ImportLine]:
    """`import time: SELF | CUMULATIVE | NAME` lines (NAME indented two spaces per level)."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        name = parts[2].rstrip()
        stripped = name.lstrip(" ")
        found.append(ImportLine(int(parts[0]), int(parts[1]), (len(name) - len(stripped) - 1) // 2, stripped))
    return found


def total_seconds(lines: list[ImportLine]) -> float:
    return sum(line.self_us for line in lines) / 1e6


def heaviest(lines: list[ImportLine], count: int = 4) -> list[tuple[str, float]]:
    """The top-level packages that cost most, with their seconds (all their modules' own time)."""
    by_package: dict[str, int] = {}
    for line in lines:
        top = line.module.split(".")[0]
        by_package[top] = by_package.get(top, 0) + line.self_us
    ranked = sorted(by_package.items(), key=lambda item: -item[1])[:count]
    return [(name, us / 1e6) for name, us in ranked]


def measure(modules: tuple[str, ...], already: tuple[str, ...], tries: int = 3) -> list[ImportLine]:
    """The cheapest of `tries` fresh interpreters importing `modules` after `already` (whose cost is left out)."""
    code = "".join(f"import {m}\n" for m in already) + "import sys; sys.stderr.write('--measured--\\n')\n"
    code += "".join(f"import {m}\n" for m in modules)
    best: list[ImportLine] | None = None
    for _ in range(tries):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        lines = parse_importtime(done.stderr.split("--measured--", 1)[-1])
        if best is None or total_seconds(lines) < total_seconds(best):
            best = lines
    return best or []


def report_lines() -> list[str]:
    out = ["imports (python -X importtime, cheapest of 3 fresh interpreters):"]
    for label, modules, already in MEASURED:
        lines = measure(modules, already)
        top = ", ".join(f"{name} {seconds:.2f}" for name, seconds in heaviest(lines))
        out.append(f"  {label}: {total_seconds(lines):.2f} s in {len(lines)} modules ({top})")
    return out
