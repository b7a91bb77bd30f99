"""The engine floor: the benchmark's CLI operations on N dynamic resources whose provider does nothing.

Same engine, same inline Automation API program, same provider plugin (toolchain/providerhost) and file
backend as the project's runs; the program declares one component and N `FloorHost` resources (a host name and
the eight limits each, as the project declares one MailSite and N PostfixConfig), and their provider does nothing
(`floor_provider`). What an operation costs here is what Pulumi itself costs at N resources: no hosts needed.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi import automation as auto

from toolchain.bench import report
from toolchain.providerhost.timings import TIMINGS_VARIABLE
from toolchain.stackctl.engine import PROJECT_DIR, EngineSettings, open_stack

PASSPHRASE = "engine-floor"
FLOOR_TYPE = "pulumi-python:dynamic/bench:FloorHost"


def log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


class Declared:
    """Seconds the program took to declare its resources, per run (the program runs in this process)."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def wrap(self, program: Callable[[], None]) -> Callable[[], None]:
        def timed() -> None:
            started = time.perf_counter()
            try:
                program()
            finally:
                self.seconds = time.perf_counter() - started

        return timed


def floor_program(n: int, limits: Mapping[str, object], payload: int = 0) -> Callable[[], None]:
    """`payload` bytes of filler per resource (kept in its inputs and outputs) give the floor a state as large
    as another program's, to tell the cost of the state's size from the rest."""

    def program() -> None:
        from toolchain.bench.floor_provider import FloorHost

        site = pulumi.ComponentResource("bench:floor:Site", "floor", None)
        extra = {"payload": "p" * payload} if payload else {}
        for i in range(n):
            host = f"h{i + 1:04d}"
            props = {"host": host, "limits": dict(limits), **extra}
            FloorHost(f"floor-{host}-postfix", props, pulumi.ResourceOptions(parent=site))
        site.register_outputs({})

    return program


def state_file(state_dir: Path, stack: str) -> Path | None:
    """The stack's checkpoint in a file backend (`.pulumi/stacks/PROJECT/STACK.json`)."""
    found = [p for p in (state_dir / ".pulumi" / "stacks").rglob(f"{stack}.json")]
    return found[0] if found else None


def state_resources(path: Path | None, type_token: str) -> int:
    """How many resources of `type_token` the checkpoint holds."""
    if path is None or not path.exists():
        return 0
    latest = json.loads(path.read_text()).get("checkpoint", {}).get("latest") or {}
    return sum(1 for r in latest.get("resources") or [] if r.get("type") == type_token)


def state_bytes(path: Path | None) -> int:
    return path.stat().st_size if path is not None and path.exists() else 0


class ProviderTimings:
    """The provider plugin's timings file (toolchain/providerhost/timings.py), read and emptied per operation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> ProviderTimings:
        import os

        self.path.write_text("")
        os.environ[TIMINGS_VARIABLE] = str(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        os.environ.pop(TIMINGS_VARIABLE, None)

    def take(self) -> dict[str, list[float]]:
        found = report.parse_provider_timings(self.path.read_text() if self.path.exists() else "")
        self.path.write_text("")
        return found


@dataclass
class FloorProject:
    root: Path
    n: int
    limits: Mapping[str, object]
    payload: int = 0

    def __post_init__(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        shutil.copy(PROJECT_DIR / "Pulumi.yaml", self.root / "Pulumi.yaml")
        (self.root / "stacks").mkdir()
        self.settings = EngineSettings(work_dir=self.root, state_dir=self.root / "state", passphrase=PASSPHRASE)
        self.declared = Declared()
        self.name = f"floor{self.n}"
        self.stack = open_stack(
            self.name, self.declared.wrap(floor_program(self.n, self.limits, self.payload)), self.settings
        )

    def state(self) -> Path | None:
        return state_file(self.settings.state_dir, self.name)

    def resources(self) -> int:
        return state_resources(self.state(), FLOOR_TYPE)


def command(stack: auto.Stack, name: str, **kwargs: Any) -> Callable[[], None]:
    def run() -> None:
        lines: list[str] = []
        try:
            getattr(stack, name)(on_output=lines.append, **kwargs)
        except auto.CommandError as exc:
            sys.exit(f"bench: engine floor: {name} failed:\n" + "\n".join(lines[-40:]) + f"\n{exc}")

    return run


def one_round(
    project: FloorProject,
    parallel: int,
    timings: ProviderTimings,
    results: report.Results,
    load: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> None:
    """One round of the floor's operations, each timed while `load` runs: in a fleet round the same mail monitor as
    the project's operations, so that both are measured on a machine doing the same other work."""
    n = project.n
    p = {"parallel": parallel}
    present, gone = (lambda: project.resources() == n), (lambda: project.resources() == 0)
    steps: list[tuple[str, Callable[[], None], Callable[[], bool]]] = [
        (report.FLOOR_FIRST_UP, command(project.stack, "up", **p), present),
        (report.FLOOR_PREVIEW, command(project.stack, "preview", **p), present),
        (report.FLOOR_NOOP_UP, command(project.stack, "up", **p), present),
        (report.FLOOR_NOOP_REFRESH_UP, command(project.stack, "up", refresh=True, **p), present),
        (report.FLOOR_REFRESH, command(project.stack, "refresh", **p), present),
        (report.FLOOR_DESTROY, command(project.stack, "destroy", **p), gone),
    ]
    for operation, action, check in steps:
        timings.take()
        project.declared.seconds = None
        with load():
            started = time.perf_counter()
            action()
            elapsed = time.perf_counter() - started
        sample = report.Sample(
            seconds=elapsed,
            logins=0,
            hosts=n,
            values_ok=check(),
            state_bytes=state_bytes(project.state()),
            declare_seconds=project.declared.seconds,
            provider=report.provider_summary(timings.take()),
        )
        results.add(operation, sample)
        log(
            f"floor N={n} {operation}: {elapsed:.2f}s, state {sample.state_bytes / 1024:.0f} KiB"
            f"{'' if sample.values_ok else ', RESOURCES WRONG'}"
        )


def run(
    sizes: list[int],
    rounds: int,
    parallel: int,
    work: Path,
    limits: Mapping[str, object],
    results: report.Results,
    timings: ProviderTimings,
    save: Callable[[report.Results], None] = lambda _: None,
    payload: int = 0,
) -> None:
    """The floor alone at each of `sizes` (no hosts), `rounds` rounds each."""
    for n in sizes:
        project = FloorProject(work / f"floor{n}", n, limits, payload)
        for _ in range(rounds):
            one_round(project, parallel, timings, results)
        save(results)
