"""An apply cut off during the swap is undone at the next contact: file, running Postfix and state agree.

The fault is real: a watcher inside the host sets the host's end of its veth link down the moment the new
main.cf is in place, before the controller can ask for the reload; the link comes back in a `finally`. The
providers run with short SSH time limits, so the cut-off `up` fails in seconds.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.engine.harness import EngineProject, bed_config
from tests.engine.lifecycle_support import MAIN_CF, ehlo_size
from toolchain.testbed.layout import HOST_SPECS

pytestmark = [pytest.mark.engine, pytest.mark.long(50)]

HOST = "mx"
VETH = next(spec.veth for spec in HOST_SPECS if spec.name == HOST)
LEDGER = "/etc/postfix/secure-postfix.ledger.json"
NEW = "message_size_limit = 1048576"
# The fault is placed exactly at the swap: inside the host's own mount namespace a one-shot wrapper is bound over
# `mv`; when it is asked to rename something onto main.cf it first sets the host's end of the link down, then does
# the rename. The host so finishes the swap on its own, but the controller can neither hear that nor ask for the
# reload. Nothing outside the host's mount namespace sees the wrapper.
ARM = """
set -eu
mkdir -p /run/sptb-cut
cp /usr/bin/mv /run/sptb-cut/mv.real
cat > /run/sptb-cut/mv <<'WRAP'
#!/bin/sh
for last; do :; done
if [ "$last" = /etc/postfix/main.cf ] && rm /run/sptb-cut/armed 2>/dev/null; then
  ip link set eth0 down
fi
exec /run/sptb-cut/mv.real "$@"
WRAP
chmod 0755 /run/sptb-cut/mv
touch /run/sptb-cut/armed
mount --bind /run/sptb-cut/mv /usr/bin/mv
"""
DISARM = "umount /usr/bin/mv 2>/dev/null; rm -rf /run/sptb-cut"


def reloads(testbed) -> int:
    """How often the master has (re)loaded main.cf so far."""
    out = testbed.run(HOST, "grep -cE 'reload -- version|daemon started -- version' /var/log/mail.log || true")
    return int(out.stdout.strip() or 0)


def link_up(testbed) -> None:
    testbed.run(HOST, "ip link set eth0 up", check=False, timeout=10)
    subprocess.run(["ip", "link", "set", VETH, "up"], check=False, timeout=10)


def site(size: int) -> dict:
    return {"i": {"postfix_host": HOST, "limits": {"message_size_limit": size}}}


def test_link_cut_during_the_swap_is_undone_then_applied(testbed, tmp_path, monkeypatch):
    # Short, but with room for a busy test machine: the staged check alone can take a few seconds there.
    monkeypatch.setenv("SECURE_POSTFIX_CONNECT_TIMEOUT", "3")
    monkeypatch.setenv("SECURE_POSTFIX_COMMAND_TIMEOUT", "10")
    before = testbed.read_file(HOST, MAIN_CF)
    project = EngineProject(tmp_path / "cut", "cut")
    project.configure(bed_config(testbed, site(2097152), [HOST]))
    try:
        assert (run := project.up()).ok, run.text
        project.configure(bed_config(testbed, site(1048576), [HOST]))
        testbed.run(HOST, ARM, timeout=10)
        try:
            loaded = reloads(testbed)
            started = time.monotonic()
            cut = project.up()
            took = time.monotonic() - started
            fired = testbed.run(HOST, "test ! -e /run/sptb-cut/armed", check=False, timeout=10).returncode == 0
        finally:
            link_up(testbed)
            testbed.run(HOST, DISARM, check=False, timeout=10)
        assert fired, "the link was never cut: no rename onto main.cf happened"
        assert not cut.ok and took < 60, (took, cut.text)
        for fragment in [testbed.hosts[HOST].address, "cut off", "next operation on this host"]:
            assert fragment in cut.stderr, cut.stderr
        # As the issue saw it: the new main.cf is live, Postfix never reloaded it, a record says so.
        assert NEW.encode() in testbed.read_file(HOST, MAIN_CF)
        assert reloads(testbed) == loaded
        assert "pending" in json.loads(testbed.read_file(HOST, LEDGER))

        testbed.wait_smtp(HOST, timeout=30)
        run = project.up()
        assert run.ok, run.text
        assert "was cut off before it finished; it was undone first" in run.stderr, run.stderr
        assert f"{HOST} ({testbed.hosts[HOST].address}): changed message_size_limit: 2097152 -> 1048576" in run.stderr
        assert reloads(testbed) >= loaded + 2  # the undo's reload, then the apply's
        assert ehlo_size(testbed, HOST) == "SIZE 1048576"
        assert "pending" not in json.loads(testbed.read_file(HOST, LEDGER))
        assert (refreshed := project.refresh()).ok, refreshed.text
        assert (again := project.preview()).ok and set(again.summary) <= {"same"}, again.summary
    finally:
        link_up(testbed)
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
    assert testbed.read_file(HOST, MAIN_CF) == before
