"""The fleet benchmark: the project's engine operations and the baseline, interleaved, on N test hosts."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

from secure_postfix.stack.program import main as program
from tests.engine.harness import EngineProject, bed_config
from toolchain import testbed
from toolchain.bench import baseline, floor, report, role
from toolchain.bench.monitor import MailMonitor
from toolchain.testbed.lifecycle import _locked

SIZES = (1, 5, 20, 50, 100)
ROUNDS = 3
# The engine's own limit on operations at once; the provider plugin's pool defaults to the same.
PARALLEL = 32


def limits(exempt: str) -> dict[str, object]:
    """The guide's eight DoS limits; the mail monitor's address is among the exceptions, as an operator's is."""
    return {
        "message_size_limit": 20480000,
        "header_size_limit": 51200,
        "queue_minfree": 40960000,
        "default_process_limit": 150,
        "smtpd_client_connection_rate_limit": 30,
        "smtpd_client_message_rate_limit": 60,
        "anvil_rate_time_unit": "60s",
        "smtpd_client_event_limit_exceptions": f"$mynetworks, {exempt}",
    }


def log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


@dataclass
class Fleet:
    bed: testbed.TestBed
    names: list[str]

    def root(self, name: str) -> Path:
        return self.bed.hosts[name].root

    def addresses(self) -> list[str]:
        return [self.bed.hosts[n].address for n in self.names]

    def logins(self) -> int:
        return sum(
            report.accepted_logins((self.root(n) / "log" / "sshd.log").read_text(errors="replace")) for n in self.names
        )

    def main_cf(self) -> dict[str, bytes]:
        return {n: (self.root(n) / "etc" / "postfix" / "main.cf").read_bytes() for n in self.names}

    def values(self, names: Sequence[str]) -> dict[str, list[str]]:
        """Each host's values as Postfix reads its main.cf (postconf on the host's folder)."""

        def one(host: str) -> list[str]:
            args = ["postconf", "-c", str(self.root(host) / "etc" / "postfix"), "-h", *names]
            return subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout.splitlines()

        with ThreadPoolExecutor(max_workers=8) as pool:
            return dict(zip(self.names, pool.map(one, self.names), strict=True))

    def restore(self, originals: Mapping[str, bytes]) -> None:
        """Undo the baseline's edits: the original main.cf back in the host's folder, and a reload."""

        def one(host: str) -> None:
            (self.root(host) / "etc" / "postfix" / "main.cf").write_bytes(originals[host])
            self.bed.run(host, "postfix reload >/dev/null 2>&1")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, self.names))

    def baseline_logins(self) -> list[baseline.Login]:
        key = str(self.bed.client_key_path)
        return [baseline.Login(self.bed.hosts[n].address, self.bed.hosts[n].host_key, key) for n in self.names]


def all_set(found: Mapping[str, list[str]], wanted: Mapping[str, object]) -> bool:
    expected = [str(v) for v in wanted.values()]
    return all(values == expected for values in found.values())


class Runner:
    def __init__(
        self,
        fleet: Fleet,
        wanted: Mapping[str, object],
        parallel: int,
        project: EngineProject,
        declared: floor.Declared,
        timings: floor.ProviderTimings,
    ):
        self.fleet = fleet
        self.wanted = wanted
        self.parallel = parallel
        self.originals = fleet.main_cf()
        self.project = project
        self.declared = declared
        self.timings = timings

    def mail_monitor(self) -> MailMonitor:
        """The SMTP client every operation of the round runs beside (the floor's too: the same load on the machine)."""
        return MailMonitor(self.fleet.addresses(), self.fleet.bed.client_addresses[0])

    def measure(self, action: Callable[[], None], check: Callable[[], bool], engine_op: bool) -> report.Sample:
        before = self.fleet.logins()
        self.timings.take()
        self.declared.seconds = None
        with self.mail_monitor() as monitor:
            started = time.perf_counter()
            action()
            elapsed = time.perf_counter() - started
        time.sleep(0.3)  # sshd writes its log line just after the login
        state = floor.state_file(self.project.settings.state_dir, self.project.stack_name) if engine_op else None
        return report.Sample(
            seconds=elapsed,
            logins=self.fleet.logins() - before,
            hosts=len(self.fleet.names),
            smtp_attempts=monitor.tally.attempts,
            smtp_failed=monitor.tally.failed,
            values_ok=check(),
            state_bytes=floor.state_bytes(state),
            declare_seconds=self.declared.seconds if engine_op else None,
            provider=report.provider_summary(self.timings.take()) if engine_op else {},
        )

    def has_values(self) -> bool:
        return all_set(self.fleet.values(list(self.wanted)), self.wanted)

    def as_before(self) -> bool:
        return self.fleet.main_cf() == self.originals


def engine(project: EngineProject, command: str, **kwargs) -> Callable[[], None]:
    """One engine command through the Automation API (no stack export or other extra CLI call timed)."""

    def run() -> None:
        lines: list[str] = []
        try:
            getattr(project.stack, command)(on_output=lines.append, **kwargs)
        except auto.CommandError as exc:
            sys.exit(f"bench: {command} failed:\n" + "\n".join(lines[-40:]) + f"\n{exc}")

    return run


def role_steps(runner: Runner, run: role.RoleRun) -> list[tuple[str, Callable[[], None], Callable[[], bool]]]:
    """The role's first apply (every host changed) and its re-run (no host changed), values checked after each."""
    outputs: list[str] = []

    def apply() -> None:
        outputs.append(run.apply())

    def changed_all() -> bool:
        return role.changed_hosts(outputs[-1]) == sorted(runner.fleet.names) and runner.has_values()

    def changed_none() -> bool:
        return role.changed_hosts(outputs[-1]) == [] and runner.has_values()

    return [(report.ROLE_FIRST, apply, changed_all), (report.ROLE_NOOP, apply, changed_none)]


def one_round(runner: Runner, results: report.Results, role_run: role.RoleRun | None) -> None:
    project = runner.project
    n = len(runner.fleet.names)
    p = {"parallel": runner.parallel}
    logins = runner.fleet.baseline_logins()
    steps: list[tuple[str, Callable[[], None], Callable[[], bool]]] = [
        (report.FIRST_UP, engine(project, "up", **p), runner.has_values),
        (report.PREVIEW, engine(project, "preview", **p), runner.has_values),
        (report.NOOP_UP, engine(project, "up", **p), runner.has_values),
        (report.NOOP_REFRESH_UP, engine(project, "up", refresh=True, **p), runner.has_values),
        (report.REFRESH, engine(project, "refresh", **p), runner.has_values),
        (report.DESTROY, engine(project, "destroy", **p), runner.as_before),
        (report.BASE_4, lambda: baseline.change_all(logins, runner.wanted, 4), runner.has_values),
        (report.BASE_N, lambda: baseline.change_all(logins, runner.wanted, n), runner.has_values),
        (report.BASE_READ, lambda: baseline.read_all(logins, list(runner.wanted), n), lambda: True),
    ]
    if role_run is not None:
        steps += role_steps(runner, role_run)
    for operation, action, check in steps:
        sample = runner.measure(action, check, engine_op=operation in report.FLOOR_OF)
        results.add(operation, sample)
        log(
            f"N={n} {operation}: {sample.seconds:.2f}s, {sample.logins} logins, "
            f"SMTP {sample.smtp_failed}/{sample.smtp_attempts} failed{'' if sample.values_ok else ', VALUES WRONG'}"
        )
        if operation.startswith("baseline: change") or operation == report.ROLE_NOOP:
            runner.fleet.restore(runner.originals)


@dataclass(frozen=True)
class Plan:
    sizes: Sequence[int]
    rounds: int
    parallel: int
    floor_sizes: Sequence[int] = ()  # the floor alone, after the fleet (it runs at each fleet size as well)
    role_sizes: Sequence[int] = ()  # fleet sizes at which the RHEL role runs, in the first round
    role_archive: Path | None = None
    role_forks: int = role.FORKS
    role_logs: Path | None = None  # where ansible-playbook's output of each run is kept


def role_run(plan: Plan, fleet: Fleet, wanted: Mapping[str, object], work: Path) -> role.RoleRun | None:
    if plan.role_archive is None or len(fleet.names) not in plan.role_sizes:
        return None
    inventory = role.Inventory(
        role.hosts_named(fleet.names, fleet.addresses()),
        str(fleet.bed.client_key_path),
        str(fleet.bed.known_hosts_path),
    )
    return role.RoleRun.prepare(
        plan.role_archive, work / f"role{len(fleet.names)}", inventory, wanted, plan.role_forks, plan.role_logs
    )


def bed_is_up() -> bool:
    try:
        testbed.load()
    except (OSError, ValueError, KeyError):
        return False
    return True


def run(plan: Plan, work: Path, save: Callable[[report.Results], None] = lambda _: None) -> report.Results:
    results = report.Results()
    was_up = bed_is_up()
    bed = testbed.create()
    with floor.ProviderTimings(work / "provider-timings.txt") as timings:
        try:
            for n in plan.sizes:
                started = time.monotonic()
                with _locked():
                    testbed.resize_fleet(bed, max(n, len(bed.fleet)))
                log(f"fleet of {len(bed.fleet)} ready in {time.monotonic() - started:.1f}s")
                fleet = Fleet(bed, bed.fleet[:n])
                wanted = limits(bed.client_addresses[0])
                declared = floor.Declared()
                project = EngineProject(work / f"n{n}", f"bench{n}", declared.wrap(program))
                project.configure(
                    bed_config(bed, {"bench": {"postfix_hosts": fleet.names, "limits": wanted}}, fleet.names)
                )
                runner = Runner(fleet, wanted, plan.parallel, project, declared, timings)
                floor_project = floor.FloorProject(work / f"floor{n}", n, wanted)
                the_role = role_run(plan, fleet, wanted, work)
                try:
                    for index in range(plan.rounds):
                        one_round(runner, results, the_role if index == 0 else None)
                        floor.one_round(floor_project, plan.parallel, timings, results, runner.mail_monitor)
                finally:
                    if the_role is not None:
                        the_role.close()
                save(results)
        finally:
            with _locked():
                testbed.resize_fleet(bed, 0)
            if not was_up:
                # A bed the benchmark built for itself goes with it; one that was there stays as it was.
                testbed.destroy()
        rest = [n for n in plan.floor_sizes if n not in plan.sizes]
        if rest:
            floor.run(rest, plan.rounds, plan.parallel, work, limits(bed.client_addresses[0]), results, timings, save)
    return results
