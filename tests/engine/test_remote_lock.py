"""The host's own lock and the compare-and-swap of the files an apply changes.

Two controllers are two processes, each with its own engine and provider process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from secure_postfix.core.dovecot_conf import CONFIG_FILE
from secure_postfix.remote.dovecot_host import DovecotHost
from secure_postfix.remote.host_lock import LOCK_FILE, HostLockError
from secure_postfix.remote.postfix_host import PostfixHost
from secure_postfix.remote.ssh import ChangedMeanwhileError, Session, SshTarget
from tests.engine.harness import EngineProject, bed_config, bed_target
from toolchain.stackctl.engine import PROJECT_DIR

pytestmark = pytest.mark.engine

HOST = "edge"


def target(testbed, host: str = HOST) -> SshTarget:
    return bed_target(testbed, host, connect_timeout=5.0, command_timeout=20.0)


def lock_waiters(testbed) -> int:
    """Processes on the host waiting for (not holding) the lock."""
    out = testbed.run(HOST, f"pgrep -fc 'sh -c .* {LOCK_FILE}' || true").stdout
    return int(out.strip() or 0)


# Holds the lock for a minute; prints "held" and the local port of its SSH connection.
HOLDER = """
import sys, time
from secure_postfix.remote.ssh import Session, SshTarget
t = SshTarget(host=sys.argv[1], private_key=open(sys.argv[2]).read(), host_key=sys.argv[3])
stale = float(sys.argv[4]) if len(sys.argv) > 4 else None
with Session(t) as s, s.host_lock("a test holder", stale_after=stale):
    print("held", s.client.get_transport().sock.getsockname()[1], flush=True)
    time.sleep(60)
"""


def start_holder(testbed, stale_after: float | None = None) -> tuple[subprocess.Popen[str], int]:
    """A controller of its own (another process) holding the lock on HOST: the process and its SSH source port."""
    h = testbed.hosts[HOST]
    extra = [] if stale_after is None else [f"{stale_after:g}"]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, h.address, str(testbed.client_key_path), h.host_key, *extra],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    word, port = ([*holder.stdout.readline().split(), "", ""])[:2]
    if word != "held":
        holder.kill()
        holder.wait(10)
        pytest.fail("the holder process did not take the lock")
    return holder, int(port)


def end_holder(holder: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        holder.send_signal(signal.SIGCONT)
    holder.kill()
    holder.wait(10)


def seconds_until_taken(s: Session, wait: float) -> float:
    started = time.monotonic()
    with s.host_lock("the next apply", wait=wait):
        return time.monotonic() - started


def test_lock_wait_is_bounded_and_names_host_and_holder(testbed):
    with Session(target(testbed)) as a, Session(target(testbed)) as b:
        with a.host_lock("apply one"):
            started = time.monotonic()
            with pytest.raises(HostLockError) as held, b.host_lock("apply two", wait=1):
                pass
            assert time.monotonic() - started < 4
        message = str(held.value)
        assert message.startswith(testbed.hosts[HOST].address + ":")
        assert "apply one" in message and f"pid {os.getpid()}" in message and "Waited 1 s" in message
        # Released at the end of the block: the next one gets it at once.
        with b.host_lock("apply two", wait=2):
            pass


def test_lock_goes_when_its_controller_dies(testbed):
    holder, _ = start_holder(testbed)
    try:
        with Session(target(testbed)) as s:
            held_by = rf"a test holder from .* \(pid {holder.pid}\)"
            with pytest.raises(HostLockError, match=held_by), s.host_lock("x", 0.5):
                pass
            holder.send_signal(signal.SIGKILL)  # no cleanup of its own: its connection just drops
            holder.wait(10)
            assert seconds_until_taken(s, wait=10) < 3
    finally:
        end_holder(holder)


# Short, so that the tests of a silent controller take seconds; each beat every STALE / 4 s.
STALE = 4.0


def test_lock_goes_when_its_controller_stops_without_closing(testbed):
    """A frozen controller (its kernel keeps the connection open, sshd sees no close): the host frees the lock
    STALE seconds after the last heartbeat, not when TCP gives up hours later."""
    holder, _ = start_holder(testbed, STALE)
    try:
        with Session(target(testbed)) as s:
            held_by = rf"host pid \d+, freed {STALE:g} s after its last heartbeat"
            with pytest.raises(HostLockError, match=held_by), s.host_lock("x", 0.5):
                pass
            holder.send_signal(signal.SIGSTOP)
            waited = seconds_until_taken(s, wait=STALE + 10)
            # Not at once (the connection is still open), and no later than the stale time.
            assert STALE - STALE / 4 - 0.5 < waited < STALE + 3, waited
    finally:
        end_holder(holder)


def drop_rules(port: int, ssh_port: int) -> list[str]:
    """Routing rules (iproute2, inside the host) that drop both directions of one TCP connection."""
    return [
        f"ipproto tcp sport {port} dport {ssh_port} blackhole",
        f"ipproto tcp sport {ssh_port} dport {port} blackhole",
    ]


def test_lock_goes_when_the_link_to_its_controller_is_cut(testbed):
    """The holder keeps running and beating, but nothing of its connection gets through either way (no FIN, no
    RST): the host frees the lock STALE seconds after the last heartbeat that arrived."""
    holder, port = start_holder(testbed, STALE)
    rules = drop_rules(port, target(testbed).port)
    try:
        with Session(target(testbed)) as s:
            for rule in rules:
                testbed.run(HOST, f"ip rule add {rule}")
            waited = seconds_until_taken(s, wait=STALE + 10)
            assert STALE - STALE / 4 - 0.5 < waited < STALE + 3, waited
            assert holder.poll() is None  # the controller itself is fine, its beats just do not arrive
    finally:
        for rule in rules:
            testbed.run(HOST, f"ip rule del {rule}", check=False)
        end_holder(holder)


def test_a_holder_that_keeps_beating_keeps_the_lock(testbed):
    with Session(target(testbed)) as a, Session(target(testbed)) as b:
        before = set(threading.enumerate())
        with a.host_lock("a long apply", stale_after=STALE):
            time.sleep(2 * STALE)  # longer than the stale time: only the heartbeats keep it
            with pytest.raises(HostLockError, match="a long apply"), b.host_lock("apply two", wait=1):
                pass
        assert set(threading.enumerate()) <= before  # the heartbeat ended with the block
        assert seconds_until_taken(b, wait=2) < 2


# One engine operation (up or refresh) of a project, in a controller of its own; prints its outcome as JSON.
ENGINE_RUN = """
import json, sys
from pathlib import Path
from tests.engine.harness import EngineProject
project = EngineProject(Path(sys.argv[1]), sys.argv[2])
run = getattr(project, sys.argv[3])()
print(json.dumps({"ok": run.ok, "text": run.text[-3000:]}))
"""


def start_engine_run(folder: Path, stack: str, operation: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", ENGINE_RUN, str(folder), stack, operation],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )


def stop(runs: list[subprocess.Popen[str]]) -> None:
    for p in runs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_two_controllers_apply_in_turn_and_lose_nothing(testbed, tmp_path):
    before = testbed.read_file(HOST, "/etc/postfix/main.cf")
    projects = {
        "one": ("message_size_limit", "5242880"),
        "two": ("default_process_limit", "60"),
    }
    made = {}
    for name, (key, value) in projects.items():
        made[name] = EngineProject(tmp_path / name, name)
        made[name].configure(bed_config(testbed, {name: {"postfix_host": HOST, "limits": {key: value}}}, [HOST]))
    ups: list[subprocess.Popen[str]] = []
    try:
        with Session(target(testbed)) as s, s.host_lock("the test, so both applies meet at the lock"):
            ups += [start_engine_run(tmp_path / name, name, "up") for name in projects]
            deadline = time.monotonic() + 60
            while lock_waiters(testbed) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        results = [json.loads(p.communicate(timeout=120)[0]) for p in ups]
        for result in results:
            assert result["ok"], result["text"]
        live = testbed.run(HOST, "postconf -h message_size_limit default_process_limit").stdout.split()
        assert live == ["5242880", "60"]
    finally:
        stop(ups)
        for project in made.values():
            assert project.destroy().ok
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == before


# Runs on the host: waits for the staged check of an apply (after the facts were read, before the
# swap) and edits main.cf by hand at that moment.
HAND_EDIT = (
    "for i in $(seq 3000); do pgrep -f 'postfix-scrip[t] check' >/dev/null && break; sleep 0.01; done; "
    "printf '# edited by hand during the apply\\n' >> /etc/postfix/main.cf"
)


def test_hand_edit_between_read_and_swap_stops_the_apply(testbed, tmp_path):
    before = testbed.read_file(HOST, "/etc/postfix/main.cf")
    project = EngineProject(tmp_path / "cas", "cas")
    project.configure(bed_config(testbed, {"cas": {"postfix_host": HOST, "limits": {"header_size_limit": 40960}}}))
    testbed.run(HOST, f"({HAND_EDIT}) </dev/null >/dev/null 2>&1 &")
    try:
        run = project.up()
        assert not run.ok
        assert f"{HOST} ({testbed.hosts[HOST].address}): /etc/postfix/main.cf was changed on the host" in run.text
        after = testbed.read_file(HOST, "/etc/postfix/main.cf")
        assert after == before + b"# edited by hand during the apply\n"  # the hand edit is kept, ours not written
        assert testbed.run(HOST, "postconf -h header_size_limit").stdout.strip() == "102400"
    finally:
        testbed.run(HOST, "pkill -f 'seq 300[0]' || true", check=False)
        project.destroy()
        Path(testbed.hosts[HOST].root / "etc/postfix/main.cf").write_bytes(before)


def test_dovecot_file_changed_since_read_is_kept(testbed):
    with Session(target(testbed, "auth")) as s:
        host = DovecotHost(s)
        facts = host.facts()
        assert facts.current is None and facts.current_sha256 == "-"
        testbed.run("auth", f"printf '# written by hand\\n' > {CONFIG_FILE}")
        try:
            with pytest.raises(ChangedMeanwhileError) as changed:
                host.write("# ours\n", expect_sha256=facts.current_sha256)
            assert str(changed.value).startswith(f"{testbed.hosts['auth'].address}: {CONFIG_FILE} was changed")
            assert testbed.read_file("auth", CONFIG_FILE) == b"# written by hand\n"
            # Unchanged since read: the swap goes ahead.
            host.write("# ours\n", expect_sha256=host.facts().current_sha256)
            assert testbed.read_file("auth", CONFIG_FILE) == b"# ours\n"
        finally:
            testbed.run("auth", f"rm -f {CONFIG_FILE}")


def test_a_login_that_prints_still_takes_and_releases_the_lock(testbed):
    # Root's shell prints a notice on every SSH command, one that even says LOCKED.
    testbed.run(
        HOST,
        "cp -p /root/.bashrc /root/.bashrc.sp-saved 2>/dev/null || touch /root/.bashrc.sp-saved; "
        "{ echo 'echo Welcome to this host. LOCKED'; cat /root/.bashrc.sp-saved; } > /root/.bashrc",
    )
    try:
        with Session(target(testbed)) as s:
            assert "Welcome to this host" in s.run(["true"]).stdout.decode()  # the login does print
            started = time.monotonic()
            with s.host_lock("a printing login", wait=5):
                holder = testbed.read_file(HOST, LOCK_FILE).decode()
                assert holder.startswith("a printing login from ") and ", host pid " in holder, holder
                assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", holder), holder
            assert time.monotonic() - started < 5
            with s.host_lock("again", wait=2):  # released: taken again at once
                pass
    finally:
        testbed.run(HOST, "mv /root/.bashrc.sp-saved /root/.bashrc")


def test_facts_under_a_shared_lock_yield_to_an_apply_and_hold_back_none(testbed):
    with Session(target(testbed)) as a, Session(target(testbed)) as b:
        assert PostfixHost(a).facts_unless_busy(LOCK_FILE) is not None
        with b.host_lock("a test apply"):
            assert PostfixHost(a).facts_unless_busy(LOCK_FILE) is None
            assert PostfixHost(a).facts_unless_busy(LOCK_FILE, plans=False) is None
        # The shared lock went with the facts' command: the next apply takes the host's lock at once.
        assert PostfixHost(a).facts_unless_busy(LOCK_FILE) is not None
        assert seconds_until_taken(b, wait=2) < 2
        # What a refresh reads: the same main.cf and version, without the names a plan checks against.
        full, light = PostfixHost(a).facts(), PostfixHost(a).facts_unless_busy(LOCK_FILE, plans=False)
        assert light is not None and light.parameters is None and full.parameters
        assert (light.main_cf, light.version, light.ledger) == (full.main_cf, full.version, full.ledger)
        assert seconds_until_taken(b, wait=2) < 2


def test_a_refresh_reads_under_a_shared_lock_and_waits_for_an_apply(testbed, tmp_path):
    before = testbed.read_file(HOST, "/etc/postfix/main.cf")
    project = EngineProject(tmp_path / "shared", "shared")
    project.configure(bed_config(testbed, {"shared": {"postfix_host": HOST, "limits": {"header_size_limit": 40960}}}))
    refreshes: list[subprocess.Popen[str]] = []
    try:
        assert project.up().ok
        holder_line = testbed.read_file(HOST, LOCK_FILE)
        assert b"a PostfixConfig apply" in holder_line
        run = project.refresh()
        assert run.ok, run.text
        # Nothing held the host's lock: the refresh read under a shared lock and never took the host's lock.
        assert testbed.read_file(HOST, LOCK_FILE) == holder_line
        # An apply holds it: the refresh waits its turn, takes the host's lock itself, and reads after it.
        with Session(target(testbed)) as s, s.host_lock("the test, as an apply"):
            refreshes.append(start_engine_run(tmp_path / "shared", "shared", "refresh"))
            # The refresh's own wait for the host's lock: a `flock -w` on the host.
            waiting = "pgrep -xc flock || true"
            deadline = time.monotonic() + 60
            while testbed.run(HOST, waiting).stdout.strip() != "1" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert testbed.run(HOST, waiting).stdout.strip() == "1"
        result = json.loads(refreshes[0].communicate(timeout=120)[0])
        assert result["ok"], result["text"]
        assert b"a PostfixConfig refresh" in testbed.read_file(HOST, LOCK_FILE), result["text"]
    finally:
        stop(refreshes)
        assert project.destroy().ok
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == before
