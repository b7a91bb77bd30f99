"""The link cut at every step of an `up`: nothing is half-written, Postfix serves, and the next `up` converges.

One site over the bed's three hosts, so that one `up` is three trials: each host's link goes down at another step
(see fault_support.POINTS: connect, facts, staging, the staged check, the backup and the ledger's record, the TLS
pair's upload, the swap, the reload, before and after the probe, the final record, the backups' removal). Every change
moves main.cf and the TLS pair file between two known sets. After each trial, with the link back:

- main.cf, master.cf, the certificate and the key are each wholly the old file or wholly the new one (SHA-256);
- no temporary file or staged copy is left (backups of the change go with the next `up`);
- Postfix answers SMTP;
- the next `up` succeeds, the files are the new set, smtpd advertises the new SIZE, and the state's main_cf is
  what the host's Postfix reads.

The figure printed at the end is trials survived out of trials run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.engine import fault_support as fs
from tests.engine.harness import EngineProject, bed_config
from tests.tls_files import make_cert

pytestmark = [pytest.mark.engine, pytest.mark.long(140)]

HOSTS = ("mx", "edge", "auth")
SIZES = (2097152, 1048576)
ROUNDS = int(os.environ.get("FAULT_ROUNDS", "7"))  # 3 hosts each: 21 trials, every point at least once


def config(testbed, certs: list[tuple[Path, Path]], state: int) -> dict:
    cert, key = certs[state]
    site = {
        "postfix_hosts": list(HOSTS),
        "limits": {"message_size_limit": SIZES[state]},
        "tls": {"cert_file": str(cert), "key_file": str(key)},
    }
    return bed_config(testbed, {"cut": site}, list(HOSTS))


def state_main_cf(project: EngineProject) -> dict[str, dict[str, str]]:
    """Each PostfixConfig's main_cf in state, by host address."""
    found = {}
    for resource in project.export().get("resources", []):
        if resource.get("type", "").endswith("PostfixConfig"):
            outputs = resource.get("outputs") or {}
            found[outputs.get("host")] = outputs.get("main_cf") or {}
    return found


def live(testbed, host: str, names: list[str]) -> dict[str, str]:
    out = testbed.run(host, "postconf -h " + " ".join(names), timeout=10).stdout.splitlines()
    return dict(zip(names, out, strict=True))


def assignments() -> list[list[fs.Point]]:
    """ROUNDS rounds of one point per host, cycling through every point."""
    points = list(fs.POINTS)
    first = int(os.environ.get("FAULT_FIRST_ROUND", "0")) * len(HOSTS)  # to rerun some rounds alone
    flat = [points[i % len(points)] for i in range(first, first + ROUNDS * len(HOSTS))]
    return [flat[r * len(HOSTS) : (r + 1) * len(HOSTS)] for r in range(ROUNDS)]


def test_link_cut_at_every_step_of_an_up(testbed, tmp_path, monkeypatch, report_figure):
    certs = [make_cert(tmp_path / f"c{i}", testbed.hosts["mx"].hostname) for i in range(2)]
    originals = {h: testbed.read_file(h, fs.MAIN_CF) for h in HOSTS}
    project = EngineProject(tmp_path / "cut", "cut")
    # The two sets of files every trial moves between, as each host holds them.
    sets: list[dict[str, dict[str, str | None]]] = []
    results: list[tuple[str, str, str]] = []  # (host, point, "" or what went wrong)
    try:
        for state in (0, 1):
            project.configure(config(testbed, certs, state))
            assert (run := project.up()).ok, run.text
            sets.append({h: fs.digests(testbed, h) for h in HOSTS})
        current = 1
        for points in assignments():
            target = 1 - current
            project.configure(config(testbed, certs, target))
            for host, point in zip(HOSTS, points, strict=True):
                fs.arm(testbed, host, point)
            started = time.monotonic()
            try:
                # Short time limits for the run that is cut off only: the others run as a user's would.
                with monkeypatch.context() as short, fs.LinkKeeper(testbed, list(HOSTS)):
                    short.setenv("SECURE_POSTFIX_CONNECT_TIMEOUT", "2")
                    short.setenv("SECURE_POSTFIX_COMMAND_TIMEOUT", "5")
                    cut = project.up()
            finally:
                was_fired = {h: fs.fired(testbed, h) for h in HOSTS}
                for host in HOSTS:
                    fs.restore(testbed, host)
            took = time.monotonic() - started
            problems = {h: [] for h in HOSTS}
            for host, point in zip(HOSTS, points, strict=True):
                if not was_fired[host]:
                    said = [ln for ln in cut.stderr.splitlines() if testbed.hosts[host].address in ln]
                    problems[host].append(f"the cut at {point.name} never fired ({' '.join(said)[-400:]})")
                elif cut.ok:
                    problems[host].append("the cut-off up reported success")
                if was_fired[host] and not cut.ok and testbed.hosts[host].address not in cut.text:
                    problems[host].append("the error does not name the host")
                for leftover in fs.wait_until_clean(testbed, host):
                    problems[host].append(f"left behind: {leftover}")
                now = fs.digests(testbed, host)
                for path, digest in now.items():
                    if digest not in (sets[current][host][path], sets[target][host][path]):
                        problems[host].append(f"{path} is neither the old nor the new file")
                try:
                    testbed.wait_smtp(host, timeout=30)
                except TimeoutError as exc:
                    problems[host].append(str(exc))
            checked = time.monotonic()
            again = project.up()
            names = [p.name for p in points]
            print(f"cut at {names}: cut-off up {took:.1f} s, next up {time.monotonic() - checked:.1f} s")
            recorded = state_main_cf(project) if again.ok else {}
            for host in HOSTS:
                if not again.ok:
                    problems[host].append(f"the next up failed: {again.stderr[-600:]}")
                    continue
                if fs.digests(testbed, host) != sets[target][host]:
                    problems[host].append("after the next up the files are not the new set")
                if (size := fs.ehlo_size(testbed, host, testbed.controller_address)) != f"SIZE {SIZES[target]}":
                    problems[host].append(f"after the next up smtpd advertises {size}")
                wanted = recorded.get(testbed.hosts[host].address, {})
                if not wanted or live(testbed, host, sorted(wanted)) != wanted:
                    problems[host].append(f"state {wanted} and the host disagree")
                for backup in fs.leftovers(testbed, host, fs.BACKUPS):
                    problems[host].append(f"after the next up, left behind: {backup}")
                if b"pending" in testbed.read_file(host, fs.LEDGER):
                    problems[host].append("the ledger still records a change under way")
            for host, point in zip(HOSTS, points, strict=True):
                results.append((host, point.name, "; ".join(problems[host])))
            current = target
    finally:
        for host in HOSTS:
            fs.restore(testbed, host)
        destroyed = project.destroy()
    survived = [r for r in results if not r[2]]
    report_figure(f"network cut mid-apply: {len(survived)} of {len(results)} trials survived")
    for host, point, problem in results:
        if problem:
            print(f"  {host} at {point}: {problem}")
    assert destroyed.ok, destroyed.text
    assert {h: testbed.read_file(h, fs.MAIN_CF) for h in HOSTS} == originals
    if ROUNDS * len(HOSTS) >= len(fs.POINTS):
        assert {r[1] for r in results} == {p.name for p in fs.POINTS}
    assert len(survived) == len(results), [r for r in results if r[2]]
    assert len(results) >= 20 or "FAULT_ROUNDS" in os.environ
