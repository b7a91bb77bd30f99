"""Faults on the host or the controller during an apply, each ending with a clear error naming the host, nothing
half-written, and convergence on the next `up`.

- the SSH session killed on the host (its sshd child), at three steps of one `up` over three hosts;
- the controller killed with SIGKILL in the middle of the swap, then `pulumi cancel` for the stack it left locked;
- /etc/postfix full (a small tmpfs in the host's mount namespace) when the staged copy is written;
- Postfix stopped before an `up`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine import fault_support as fs
from tests.engine.harness import EngineProject, bed_config
from tests.tls_files import make_cert

pytestmark = [pytest.mark.engine, pytest.mark.long(110)]

HOSTS = ("mx", "edge", "auth")
SIZES = (2097152, 1048576)


def site(size: int, hosts: tuple[str, ...] = ("mx",), tls: tuple[Path, Path] | None = None) -> dict:
    body: dict = {"postfix_hosts": list(hosts), "limits": {"message_size_limit": size}}
    if tls:
        body["tls"] = {"cert_file": str(tls[0]), "key_file": str(tls[1])}
    return {"f": body}


def wholly(testbed, host: str, sets: list[dict]) -> list[str]:
    """Files of `host` that are neither one known set's nor the other's."""
    now = fs.digests(testbed, host)
    return [p for p, d in now.items() if d not in {s[host][p] for s in sets}]


def converged(testbed, project: EngineProject, hosts: tuple[str, ...], size: int) -> None:
    assert (again := project.up()).ok, again.text
    for host in hosts:
        assert fs.ehlo_size(testbed, host, testbed.controller_address) == f"SIZE {size}", host
        assert b"pending" not in testbed.read_file(host, fs.LEDGER), host
        assert fs.leftovers(testbed, host) == [] and fs.leftovers(testbed, host, fs.BACKUPS) == [], host


def test_ssh_session_killed_on_the_host(testbed, tmp_path, monkeypatch):
    certs = [make_cert(tmp_path / f"c{i}", testbed.hosts["mx"].hostname) for i in range(2)]
    points = [fs.point("staging"), fs.point("swap"), fs.point("reload")]
    project = EngineProject(tmp_path / "killed", "killed")
    sets = []
    try:
        for state in (0, 1):
            project.configure(bed_config(testbed, site(SIZES[state], HOSTS, certs[state]), list(HOSTS)))
            assert (run := project.up()).ok, run.text
            sets.append({h: fs.digests(testbed, h) for h in HOSTS})
        project.configure(bed_config(testbed, site(SIZES[0], HOSTS, certs[0]), list(HOSTS)))
        for host, point in zip(HOSTS, points, strict=True):
            fs.arm(testbed, host, point, fs.KILL_SESSION)
        try:
            monkeypatch.setenv("SECURE_POSTFIX_COMMAND_TIMEOUT", "10")
            killed = project.up()
            monkeypatch.delenv("SECURE_POSTFIX_COMMAND_TIMEOUT")
            was_fired = {h: fs.fired(testbed, h) for h in HOSTS}
        finally:
            for host in HOSTS:
                fs.restore(testbed, host)
        assert all(was_fired.values()), was_fired
        assert not killed.ok
        for host in HOSTS:
            line = next((ln for ln in killed.stderr.splitlines() if testbed.hosts[host].address in ln), "")
            assert line, (host, killed.stderr)
            assert fs.wait_until_clean(testbed, host) == [], host
            assert wholly(testbed, host, sets) == [], host
            testbed.wait_smtp(host, timeout=30)
        converged(testbed, project, HOSTS, SIZES[0])
        for host in HOSTS:
            assert fs.digests(testbed, host) == sets[0][host], host
    finally:
        for host in HOSTS:
            fs.restore(testbed, host)
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text


def test_controller_killed_during_the_swap_then_cancel_and_up(testbed, tmp_path):
    host = "mx"
    project = EngineProject(tmp_path / "sigkill", "sigkill")
    project.configure(bed_config(testbed, site(SIZES[0]), [host]))
    before = fs.digests(testbed, host)
    try:
        assert (run := project.up()).ok, run.text
        old = fs.digests(testbed, host)
        project.configure(bed_config(testbed, site(SIZES[1]), [host]))
        # The host pauses in the swap's rename long enough for the controller to be killed in the middle of it.
        fs.arm(testbed, host, fs.point("swap"), fs.pause(3))
        try:
            fs.kill_controller_when_fired(testbed, host, project, "swap")
        finally:
            fs.restore(testbed, host)
        new_main_cf = fs.digests(testbed, host)[fs.MAIN_CF]
        assert new_main_cf != old[fs.MAIN_CF], "the rename did not happen: the kill came too late or too early"
        assert fs.wait_until_clean(testbed, host) == []
        testbed.wait_smtp(host, timeout=30)
        locked = project.up()
        assert not locked.ok and "locked" in locked.text, locked.text
        project.stack.cancel()
        again = project.up()
        assert again.ok, again.text
        assert "was cut off before it finished; it was undone first" in again.text, again.text
        assert testbed.hosts[host].address in again.text
        assert fs.ehlo_size(testbed, host, testbed.controller_address) == f"SIZE {SIZES[1]}"
        assert b"pending" not in testbed.read_file(host, fs.LEDGER)
        assert (preview := project.preview()).ok and set(preview.summary) <= {"same"}, preview.summary
    finally:
        fs.restore(testbed, host)
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
    assert fs.digests(testbed, host)[fs.MAIN_CF] == before[fs.MAIN_CF]


FULL = """
set -eu
mkdir -p /run/sptb-full
cp -a /etc/postfix/. /run/sptb-full/
mount -t tmpfs -o size=4m,mode=0755 sptb-full /etc/postfix
cp -a /run/sptb-full/. /etc/postfix/
"""


def test_full_etc_postfix_during_staging(testbed, tmp_path):
    host = "mx"
    original = testbed.read_file(host, fs.MAIN_CF)
    testbed.run(host, FULL, timeout=20)
    project = EngineProject(tmp_path / "full", "full")
    project.configure(bed_config(testbed, site(SIZES[0]), [host]))
    try:
        assert (run := project.up()).ok, run.text
        old = fs.digests(testbed, host)
        project.configure(bed_config(testbed, site(SIZES[1]), [host]))
        testbed.run(host, "dd if=/dev/zero of=/etc/postfix/.sptb-filler bs=64k 2>/dev/null || true", timeout=20)
        refused = project.up()
        assert not refused.ok
        message = refused.stderr[refused.stderr.find(testbed.hosts[host].address) :]
        assert "the staged check of main.cf could not run" in message, refused.stderr
        assert "No space left on device" in message and "Nothing was changed" in message, message
        assert fs.digests(testbed, host) == old
        assert fs.leftovers(testbed, host) == [] and fs.leftovers(testbed, host, fs.BACKUPS) == []
        assert fs.ehlo_size(testbed, host, testbed.controller_address) == f"SIZE {SIZES[0]}"
        testbed.run(host, "rm -f /etc/postfix/.sptb-filler", timeout=10)
        converged(testbed, project, (host,), SIZES[1])
    finally:
        testbed.run(host, "rm -f /etc/postfix/.sptb-filler", check=False, timeout=10)
        destroyed = project.destroy()
        testbed.run(host, "umount /etc/postfix; rm -rf /run/sptb-full", check=False, timeout=20)
        testbed.restart_postfix(host)
    assert destroyed.ok, destroyed.text
    assert testbed.read_file(host, fs.MAIN_CF) == original


def test_postfix_stopped_before_an_up(testbed, tmp_path):
    host = "mx"
    project = EngineProject(tmp_path / "stopped", "stopped")
    project.configure(bed_config(testbed, site(SIZES[0]), [host]))
    try:
        assert (run := project.up()).ok, run.text
        project.configure(bed_config(testbed, site(SIZES[1]), [host]))
        testbed.run(host, "postfix stop >/dev/null 2>&1", timeout=20)
        run = project.up()
        warned = [ln for ln in run.text.splitlines() if "did not answer SMTP before the change" in ln]
        assert warned and testbed.hosts[host].address in warned[0], run.text
        if not run.ok:
            assert testbed.hosts[host].address in run.stderr, run.stderr
            testbed.restart_postfix(host)
            converged(testbed, project, (host,), SIZES[1])
        else:
            assert fs.ehlo_size(testbed, host, testbed.controller_address) == f"SIZE {SIZES[1]}"
            assert fs.leftovers(testbed, host) == [] and fs.leftovers(testbed, host, fs.BACKUPS) == []
    finally:
        testbed.run(host, "postfix status >/dev/null 2>&1 || postfix start </dev/null", check=False, timeout=20)
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
