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

from tests.engine.harness import EngineProject, bed_config
from toolchain import testbed
from toolchain.bench import baseline, report
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
            (self.root(n) / "log" / "sshd.log").read_text(errors="replace").count("Accepted publickey")
            for n in self.names
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
    def __init__(self, fleet: Fleet, wanted: Mapping[str, object], parallel: int):
        self.fleet = fleet
        self.wanted = wanted
        self.parallel = parallel
        self.originals = fleet.main_cf()

    def measure(self, action: Callable[[], None], check: Callable[[], bool]) -> report.Sample:
        before = self.fleet.logins()
        with MailMonitor(self.fleet.addresses(), self.fleet.bed.client_addresses[0]) as monitor:
            started = time.perf_counter()
            action()
            elapsed = time.perf_counter() - started
        time.sleep(0.3)  # sshd writes its log line just after the login
        return report.Sample(
            seconds=elapsed,
            logins=self.fleet.logins() - before,
            hosts=len(self.fleet.names),
            smtp_attempts=monitor.tally.attempts,
            smtp_failed=monitor.tally.failed,
            values_ok=check(),
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


def one_round(runner: Runner, project: EngineProject, results: report.Results) -> None:
    n = len(runner.fleet.names)
    p = {"parallel": runner.parallel}
    logins = runner.fleet.baseline_logins()
    steps: list[tuple[str, Callable[[], None], Callable[[], bool]]] = [
        (report.FIRST_UP, engine(project, "up", **p), runner.has_values),
        (report.NOOP_UP, engine(project, "up", **p), runner.has_values),
        (report.NOOP_REFRESH_UP, engine(project, "up", refresh=True, **p), runner.has_values),
        (report.REFRESH, engine(project, "refresh", **p), runner.has_values),
        (report.DESTROY, engine(project, "destroy", **p), runner.as_before),
        (report.BASE_4, lambda: baseline.change_all(logins, runner.wanted, 4), runner.has_values),
        (report.BASE_N, lambda: baseline.change_all(logins, runner.wanted, n), runner.has_values),
        (report.BASE_READ, lambda: baseline.read_all(logins, list(runner.wanted), n), lambda: True),
    ]
    for operation, action, check in steps:
        sample = runner.measure(action, check)
        results.add(operation, sample)
        log(
            f"N={n} {operation}: {sample.seconds:.2f}s, {sample.logins} logins, "
            f"SMTP {sample.smtp_failed}/{sample.smtp_attempts} failed{'' if sample.values_ok else ', VALUES WRONG'}"
        )
        if operation.startswith("baseline: change"):
            runner.fleet.restore(runner.originals)


def run(
    sizes: Sequence[int],
    rounds: int,
    parallel: int,
    work: Path,
    save: Callable[[report.Results], None] = lambda _: None,
) -> report.Results:
    results = report.Results()
    bed = testbed.create()
    try:
        for n in sizes:
            started = time.monotonic()
            with _locked():
                testbed.resize_fleet(bed, max(n, len(bed.fleet)))
            log(f"fleet of {len(bed.fleet)} ready in {time.monotonic() - started:.1f}s")
            fleet = Fleet(bed, bed.fleet[:n])
            wanted = limits(bed.client_addresses[0])
            project = EngineProject(work / f"n{n}", f"bench{n}")
            project.configure(bed_config(bed, {"bench": {"postfix_hosts": fleet.names, "limits": wanted}}, fleet.names))
            runner = Runner(fleet, wanted, parallel)
            for _ in range(rounds):
                one_round(runner, project, results)
            save(results)
    finally:
        with _locked():
            testbed.resize_fleet(bed, 0)
    return results
