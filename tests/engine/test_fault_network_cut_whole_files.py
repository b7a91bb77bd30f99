"""The link cut at every step of a change of master.cf (PostfixServices) and of Dovecot's file (DovecotAuthService).

Three sites, independent of each other, so that one `up` is three trials: on `mx` and `edge` the submission service's
banner (an option a client sees) moves between two values, so only master.cf changes; on `auth` the auth service's
mechanisms move between two lists, so only Dovecot's file changes. Each host's link goes down at another step of its
change (see WHOLE_FILE_POINTS: the staged copy, the staged check, the ledger's record of the change, the swap, the
reload, after the reload and after the probe, the record's end). After each trial, with the link back:

- master.cf and Dovecot's file are each wholly the old file or wholly the new one (SHA-256);
- no temporary file or staged copy is left;
- Postfix answers SMTP on both hosts and Dovecot's auth listener answers a client;
- the next `up` succeeds, the files are the new ones, port 587 greets a client with the new banner (the running
  smtpd, not the file), Dovecot offers the new mechanisms to a client, and no ledger records a change under way.

The figure printed at the end is trials survived out of trials run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.engine import fault_support as fs
from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from tests.tls_files import make_cert

pytestmark = [pytest.mark.engine, pytest.mark.long(200)]

MX, EDGE, AUTH = "mx", "edge", "auth"
# Each changes its own master.cf: two master.cf trials and one Dovecot trial per `up`.
POSTFIX_HOSTS = (MX, EDGE)
HOSTS = (*POSTFIX_HOSTS, AUTH)
PORT = 12345
DOVECOT_FILE = "/etc/dovecot/conf.d/99-secure-postfix-auth.conf"
DOVECOT_LEDGER = "/etc/dovecot/secure-postfix.ledger.json"
# What 587 greets a client with: the running smtpd's view, which a file read (`postconf -P`) cannot give.
BANNERS = ("secure-postfix-one", "secure-postfix-two")
MECHANISMS = ("plain login", "plain")
CLIENT_INDEX = -3

# Every step of a change of master.cf (on MX and EDGE), in order.
MASTER_POINTS = (
    fs.Point("master-staging", "/usr/bin/mktemp", "*.master.cf.secure-postfix-stage.*"),
    fs.Point("master-check", "/usr/sbin/postfix", "*check*"),
    fs.Point("master-record", "/usr/bin/mktemp", "*/.secure-postfix.ledger.json.*"),
    fs.Point("master-swap", "/usr/bin/mv", "* /etc/postfix/master.cf"),
    fs.Point("master-reload", "/usr/sbin/postfix", "reload"),
    fs.Point("master-reloaded", "/usr/bin/tail", output="reload -- version"),
    fs.Point("master-probed", "/usr/bin/tail", output="reload -- version", nth=2),
    fs.Point("master-end", "/usr/bin/mktemp", "*/.secure-postfix.ledger.json.*", nth=2),
)
# Every step of a change of Dovecot's file (on AUTH), in order.
DOVECOT_POINTS = (
    fs.Point("dovecot-staging", "/usr/bin/mktemp", "/etc/dovecot/.secure-postfix-stage."),
    fs.Point("dovecot-record", "/usr/bin/mktemp", "*/etc/dovecot/.secure-postfix.ledger.json.*"),
    fs.Point("dovecot-swap", "/usr/bin/mv", f"* {DOVECOT_FILE}"),
    fs.Point("dovecot-reload", "/usr/bin/doveadm", "reload"),
    fs.Point("dovecot-end", "/usr/bin/mktemp", "*/etc/dovecot/.secure-postfix.ledger.json.*", nth=2),
)
WHOLE_FILE_POINTS = MASTER_POINTS + DOVECOT_POINTS
# Enough rounds for every point: two master.cf points a round, one Dovecot point.
ROUNDS = int(os.environ.get("FAULT_ROUNDS", str(max(-(-len(MASTER_POINTS) // 2), len(DOVECOT_POINTS)))))


def config(testbed, cert: tuple[Path, Path], state: int) -> dict:
    tls = {"cert_file": str(cert[0]), "key_file": str(cert[1])}
    services = {"submission": {"options": {"smtpd_banner": BANNERS[state]}}}
    sites = {
        host: {
            "postfix_hosts": [host],
            "dovecot_host": host,
            "sasl": {"listener": "unix"},
            "tls": tls,
            "services": services,
        }
        for host in POSTFIX_HOSTS
    }
    sites["a"] = {"postfix_hosts": [AUTH], "auth_service": "central", "tls": tls}
    config = bed_config(testbed, sites, list(HOSTS))
    config["auth_services"] = {
        "central": {"dovecot_host": AUTH, "listener": "inet", "listen_port": PORT, "auth_mechanisms": MECHANISMS[state]}
    }
    return config


def files(testbed) -> dict[str, str | None]:
    """Each watched file's digest, by host and path."""
    found = {f"{h}:{p}": d for h in POSTFIX_HOSTS for p, d in fs.digests(testbed, h, (fs.MASTER_CF,)).items()}
    return found | {f"{AUTH}:{p}": d for p, d in fs.digests(testbed, AUTH, (DOVECOT_FILE,)).items()}


def restore(testbed) -> None:
    for host in HOSTS:
        fs.restore(testbed, host)
        programs = " ".join(sorted({p.program for p in WHOLE_FILE_POINTS}))
        testbed.run(host, f"for p in {programs}; do umount $p 2>/dev/null; done; true", check=False, timeout=10)


def offered(testbed) -> set[str]:
    return mail_client.auth_mechanisms(testbed.hosts[AUTH].address, PORT)


def trial_problems(testbed, host: str, point: fs.Point, fired: bool, cut, sets, current: int, target: int) -> list:
    problems = []
    if not fired:
        problems.append(f"the cut at {point.name} never fired")
    elif cut.ok:
        problems.append("the cut-off up reported success")
    elif testbed.hosts[host].address not in cut.text:
        problems.append("the error does not name the host")
    problems += [f"left behind: {x}" for x in fs.wait_until_clean(testbed, host)]
    now = {k: d for k, d in files(testbed).items() if k.startswith(f"{host}:")}
    problems += [
        f"{k.split(':', 1)[1]} is neither the old nor the new file"
        for k, d in now.items()
        if d not in (sets[current][k], sets[target][k])
    ]
    try:
        testbed.wait_smtp(host, timeout=30)
    except TimeoutError as exc:
        problems.append(str(exc))
    return problems


def converged(testbed, target: int, sets) -> dict[str, list[str]]:
    """What is not as the next `up` must leave it, by host."""
    now = files(testbed)
    problems: dict[str, list[str]] = {h: [] for h in HOSTS}
    for key, digest in now.items():
        if digest != sets[target][key]:
            host, path = key.split(":", 1)
            problems[host].append(f"after the next up {path} is not the new file")
    for host in POSTFIX_HOSTS:
        greeting = mail_client.banner(testbed.hosts[host].address, testbed.client_addresses[CLIENT_INDEX], port=587)
        if greeting.text != BANNERS[target]:
            problems[host].append(f"587 greets with {greeting.code} {greeting.text!r}")
    if (got := offered(testbed)) != {m.upper() for m in MECHANISMS[target].split()}:
        problems[AUTH].append(f"Dovecot offers {sorted(got)}")
    for host, ledger in ((MX, fs.LEDGER), (EDGE, fs.LEDGER), (AUTH, DOVECOT_LEDGER)):
        if "pending" in testbed.run(host, f"cat {ledger} 2>/dev/null || true", timeout=10).stdout:
            problems[host].append("the ledger still records a change under way")
    return problems


def test_link_cut_at_every_step_of_a_whole_file_change(testbed, tmp_path, monkeypatch, report_figure):
    cert = make_cert(tmp_path / "tls", testbed.hosts[MX].hostname)
    project = EngineProject(tmp_path / "whole", "whole")
    sets: list[dict[str, str | None]] = []
    results: list[tuple[str, str, str]] = []
    try:
        for state in (0, 1):
            project.configure(config(testbed, cert, state))
            assert (run := project.up()).ok, run.text
            sets.append(files(testbed))
        current = 1
        for round_ in range(ROUNDS):
            target = 1 - current
            points = {
                MX: MASTER_POINTS[(2 * round_) % len(MASTER_POINTS)],
                EDGE: MASTER_POINTS[(2 * round_ + 1) % len(MASTER_POINTS)],
                AUTH: DOVECOT_POINTS[round_ % len(DOVECOT_POINTS)],
            }
            project.configure(config(testbed, cert, target))
            for host, point in points.items():
                fs.arm(testbed, host, point)
            started = time.monotonic()
            try:
                with monkeypatch.context() as short, fs.LinkKeeper(testbed, list(points)):
                    short.setenv("SECURE_POSTFIX_CONNECT_TIMEOUT", "2")
                    short.setenv("SECURE_POSTFIX_COMMAND_TIMEOUT", "5")
                    cut = project.up()
            finally:
                was_fired = {h: fs.fired(testbed, h) for h in points}
                restore(testbed)
            took = time.monotonic() - started
            problems = {
                h: trial_problems(testbed, h, p, was_fired[h], cut, sets, current, target) for h, p in points.items()
            }
            if not offered(testbed):
                problems[AUTH].append("Dovecot's auth listener does not answer")
            checked = time.monotonic()
            again = project.up()
            print(
                f"cut at {[p.name for p in points.values()]}: cut-off up {took:.1f} s, next up "
                f"{time.monotonic() - checked:.1f} s"
            )
            if again.ok:
                after = converged(testbed, target, sets)
            else:
                after = {h: [f"the next up failed: {again.stderr[-600:]}"] for h in points}
            for host, point in points.items():
                results.append((host, point.name, "; ".join(problems[host] + after[host])))
            current = target
    finally:
        restore(testbed)
        destroyed = project.destroy()
    survived = [r for r in results if not r[2]]
    report_figure(f"network cut in master.cf and Dovecot changes: {len(survived)} of {len(results)} trials survived")
    for host, point, problem in results:
        if problem:
            print(f"  {host} at {point}: {problem}")
    assert destroyed.ok, destroyed.text
    if "FAULT_ROUNDS" not in os.environ:
        assert {r[1] for r in results} == {p.name for p in WHOLE_FILE_POINTS}
    assert len(survived) == len(results), [r for r in results if r[2]]
