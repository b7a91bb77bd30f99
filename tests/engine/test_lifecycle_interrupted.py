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

from testbed.layout import HOST_SPECS
from tests.engine.harness import EngineProject, bed_config
from tests.engine.lifecycle_support import MAIN_CF, ehlo_size

pytestmark = pytest.mark.engine

HOST = "mx"
VETH = next(spec.veth for spec in HOST_SPECS if spec.name == HOST)
LEDGER = "/etc/postfix/secure-postfix.ledger.json"
NEW = "message_size_limit = 1048576"
# The watcher cuts the link when the upload's temporary main.cf appears (`.main.cf.` and six random letters; the
# staged check's copies have longer names): the host then finishes the rename on its own, but the controller can
# neither hear that nor ask for the reload. Bounded: it gives up after 60 s if no upload comes.
WATCH = (
    "i=0; until ls /etc/postfix/.main.cf.?????? >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 12000 ] && exit 1; "
    "sleep 0.005; done; ip link set eth0 down"
)


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
        watcher = subprocess.Popen([*testbed._nsenter(HOST), "sh", "-c", WATCH], stdin=subprocess.DEVNULL)
        try:
            loaded = reloads(testbed)
            started = time.monotonic()
            cut = project.up()
            took = time.monotonic() - started
            assert watcher.wait(timeout=60) == 0
        finally:
            watcher.kill()
            link_up(testbed)
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
        assert f"{testbed.hosts[HOST].address}: changed message_size_limit: 2097152 -> 1048576" in run.stderr
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
