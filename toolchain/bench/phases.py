"""`python -m toolchain.bench.phases`: where one apply's time goes, host by host, on a fleet of test hosts.

The provider's own create (an apply of the eight limits) and delete (the restore) run in this process, on
N hosts at once as the provider plugin's pool runs them, with each step of the pipeline timed: connect,
host lock, facts, ledger read, staged check, the probe before the change, the compare-before-swap read,
ledger write, swap, reload, reload wait, probe, ledger commit, close. No code of the provider changes;
its steps are wrapped from outside for the run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from toolchain import testbed
from toolchain.bench import report
from toolchain.bench.fleet import limits, log
from toolchain.testbed.lifecycle import _locked

# (phase, owner, attribute): owner is a module or class of the provider, patched for the run only.
STEPS = (
    ("connect", "secure_postfix.remote.ssh:Session", "__enter__"),
    ("host lock", "secure_postfix.remote.host_lock:HostLock", "__enter__"),
    ("facts", "secure_postfix.remote.postfix_host:PostfixHost", "facts"),
    ("ledger read", "secure_postfix.postfix_config:Journal", "load"),
    ("staged check", "secure_postfix.remote.postfix_host:PostfixHost", "check_staged"),
    ("probe before", "secure_postfix.postfix_daemon", "failure_before"),
    ("ledger write", "secure_postfix.postfix_config:Journal", "begin"),  # with the compare and the backups
    ("swap", "secure_postfix.remote.postfix_host:PostfixHost", "swap_in"),
    ("reload", "secure_postfix.remote.postfix_host:PostfixHost", "reload"),
    ("reload wait", "secure_postfix.postfix_daemon", "wait_for_master"),
    ("probe", "secure_postfix.postfix_daemon", "verify"),
    ("ledger commit", "secure_postfix.postfix_config:Journal", "commit"),
    ("close", "secure_postfix.remote.ssh:Session", "__exit__"),
)
PHASES = tuple(step[0] for step in STEPS)


class Clock:
    """Seconds per (operation index, phase); only the outermost timed step counts, so nothing twice."""

    def __init__(self) -> None:
        self.spent: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.local = threading.local()

    def timed(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            job = getattr(clock.local, "job", None)
            if job is None or getattr(clock.local, "inside", False):
                return fn(*args, **kwargs)
            clock.local.inside = True
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                clock.spent[job][phase] += time.perf_counter() - started
                clock.local.inside = False

        return wrapper

    @contextmanager
    def job(self, index: int) -> Iterator[None]:
        self.local.job = index
        try:
            yield
        finally:
            self.local.job = None


def _owner(path: str) -> Any:
    import importlib

    module, _, cls = path.partition(":")
    found = importlib.import_module(module)
    return getattr(found, cls) if cls else found


@contextmanager
def instrumented(clock: Clock) -> Iterator[None]:
    saved = []
    for phase, path, attribute in STEPS:
        owner = _owner(path)
        original = owner.__dict__[attribute]
        saved.append((owner, attribute, original))
        inner = original.__func__ if isinstance(original, classmethod) else original
        wrapped = clock.timed(phase, inner)
        setattr(owner, attribute, classmethod(wrapped) if isinstance(original, classmethod) else wrapped)
    try:
        yield
    finally:
        for owner, attribute, original in saved:
            setattr(owner, attribute, original)


def host_props(bed: testbed.TestBed, name: str) -> dict[str, Any]:
    host = bed.hosts[name]
    return {
        "host": host.address,
        "port": 22,
        "user": "root",
        "host_key": host.host_key,
        "private_key": bed.client_key_path.read_text(),
        "private_key_password": None,
        "insecure_ignore_host_key": False,
        "use_sudo": False,
        "limits": limits(bed.client_addresses[0]),
        "directives": {},
        "sasl": None,
        "tls": None,
        "tls_key_pem": None,
    }


def measure(bed: testbed.TestBed, names: Sequence[str]) -> dict[str, tuple[float, dict[int, dict[str, float]]]]:
    """operation -> (wall seconds, per-host phase seconds), for an apply and then a restore of every host."""
    from secure_postfix.postfix_config import PostfixConfigProvider

    provider = PostfixConfigProvider()
    inputs = []
    for name in names:
        checked = provider.check({}, host_props(bed, name))
        if checked.failures:
            sys.exit(f"bench: {name}: {[f.reason for f in checked.failures]}")
        inputs.append(checked.inputs)
    found: dict[str, tuple[float, dict[int, dict[str, float]]]] = {}
    outs: list[Any] = [None] * len(names)

    def run(label: str, action: Callable[[int], Any]) -> None:
        clock = Clock()

        def one(index: int) -> None:
            with clock.job(index):
                started = time.perf_counter()
                action(index)
                clock.spent[index]["total"] = time.perf_counter() - started

        with instrumented(clock), ThreadPoolExecutor(max_workers=len(names)) as pool:
            started = time.perf_counter()
            list(pool.map(one, range(len(names))))
            found[label] = (time.perf_counter() - started, clock.spent)

    def apply(i: int) -> None:
        outs[i] = provider.create(inputs[i])

    def restore(i: int) -> None:
        provider.delete(outs[i].id, outs[i].outs)

    run("apply (create)", apply)
    run("restore (delete)", restore)
    return found


def phase_rows(n: int, found: dict[str, tuple[float, dict[int, dict[str, float]]]]) -> list[tuple[str, ...]]:
    rows = []
    for operation, (wall, spent) in found.items():
        hosts = list(spent.values())
        for phase in (*PHASES, "other", "total"):
            if phase == "other":
                values = [h["total"] - sum(h.get(p, 0.0) for p in PHASES) for h in hosts]
            else:
                values = [h.get(phase, 0.0) for h in hosts]
            if not any(values):
                continue
            rows.append(
                (
                    str(n),
                    operation,
                    phase,
                    f"{statistics.median(values):.3f}",
                    f"{min(values):.3f}",
                    f"{max(values):.3f}",
                )
            )
        rows.append((str(n), operation, "wall (all hosts)", f"{wall:.3f}", "", ""))
    return rows


HEADER = ("N", "operation", "phase", "median s", "min s", "max s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.bench.phases", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,20", help="fleet sizes, e.g. 1,20")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    bed = testbed.create()
    rows: list[tuple[str, ...]] = []
    try:
        for n in sizes:
            with _locked():
                testbed.resize_fleet(bed, max(n, len(bed.fleet)))
            names = bed.fleet[:n]
            log(f"phases on {n} host(s)")
            rows += phase_rows(n, measure(bed, names))
    finally:
        with _locked():
            testbed.resize_fleet(bed, 0)
    print(report.format_table(HEADER, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
