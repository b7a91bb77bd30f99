"""Faults placed at exact points of an apply on a test host, and the checks every fault test ends with.

A cut is placed by a one-shot wrapper bound over one command inside the host's own mount namespace (nothing outside
that namespace sees it). When the host runs that command with the arguments of the chosen step (or, for `tail`, when
its output is the chosen one), the wrapper sets the host's end of its link down and then runs the real command: the
host finishes the step on its own, the controller never hears of it. The link comes back only when the test says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.engine import mail_client
from toolchain.testbed.layout import HOST_SPECS

CUT_DIR = "/run/sptb-cut"
MAIN_CF = "/etc/postfix/main.cf"
MASTER_CF = "/etc/postfix/master.cf"
PAIR = "/etc/postfix/tls/secure-postfix.pem"  # the key and its certificate, one file
LEDGER = "/etc/postfix/secure-postfix.ledger.json"
WATCHED = (MAIN_CF, MASTER_CF, PAIR)
# What an interrupted write or check could leave: atomic-write and staging temporaries, backups of a change.
TEMPORARIES = (
    "find /etc/postfix /etc/dovecot /tmp -maxdepth 2 \\( -name '.main.cf.*' -o -name '.master.cf.*' "
    "-o -name '.secure-postfix.*' -o -name 'secure-postfix-stage.*' \\) -print"
)
# Backups of a change: they may outlive a cut (the next operation on the host replaces or removes them).
BACKUPS = "find /etc/postfix /etc/dovecot -maxdepth 2 -name '*.secure-postfix-prev' -print"


@dataclass(frozen=True)
class Point:
    """A step of an apply: the command the host runs there, which of its runs, and how it is recognised."""

    name: str
    program: str  # absolute path of the command the wrapper is bound over ("" for a link down from the start)
    pattern: str = "*"  # a shell `case` pattern matched against the command's arguments joined by spaces
    nth: int = 1  # the n-th matching run
    output: str = ""  # for tail: the run counts only when its output holds this text


# Every step of an `up` that changes main.cf and the TLS files, in order.
POINTS = (
    Point("connect", ""),
    Point("facts", "/usr/sbin/postconf", "-h config_directory"),
    Point("staging", "/usr/bin/mktemp", "*.main.cf.secure-postfix-stage.*"),
    Point("check", "/usr/sbin/postfix", "*check*"),
    Point("backup", "/usr/bin/cp", "*.secure-postfix-prev"),
    Point("ledger", "/usr/bin/mktemp", "*/.secure-postfix.ledger.json.*"),
    Point("pair-upload", "/usr/bin/mktemp", "*/.secure-postfix.pem.*"),
    Point("swap", "/usr/bin/mv", "* /etc/postfix/main.cf"),
    Point("reload", "/usr/sbin/postfix", "reload"),
    Point("reloaded", "/usr/bin/tail", output="reload -- version"),
    Point("probe", "/usr/bin/tail", output="reload -- version", nth=2),
    Point("probed", "/usr/bin/tail", output="reload -- version", nth=3),
    Point("commit", "/usr/bin/mktemp", "*/.secure-postfix.ledger.json.*", nth=2),
    # The backups' removal names them all at once; the backup step removes each alone before its copy.
    Point("cleanup", "/usr/bin/rm", "*.secure-postfix-prev /*"),
)

# The wrapper: count matching runs, cut the link at the chosen one (once), then run the real command.
_WRAPPER = r"""#!/bin/sh
hit() {
  n=$(( $(cat __DIR__/count 2>/dev/null || echo 0) + 1 ))
  echo "$n" > __DIR__/count
  [ "$n" -eq __NTH__ ] && mkdir __DIR__/fired 2>/dev/null && { __ACTION__; }
}
if [ -z "__OUTPUT__" ]; then
  case " $* " in *"__PATTERN__"*) [ -e __DIR__/fired ] || hit ;; esac
  exec __DIR__/real "$@"
fi
out=$(__DIR__/real "$@"; rc=$?; echo x; exit $rc); rc=$?
out=${out%x}
case $out in *"__OUTPUT__"*) [ -e __DIR__/fired ] || hit ;; esac
printf '%s' "$out"
exit $rc
"""


# What the wrapper does at the chosen run: the link down, or the SSH session that runs it killed (its first sshd
# ancestor is the session's own process; the listener and the privileged monitor stay), or a pause while the test
# acts (the controller killed, say).
CUT_LINK = "ip link set eth0 down"
KILL_SESSION = (
    "p=$$; while [ \"$p\" -gt 1 ]; do p=$(awk '/^PPid:/ {print $2}' /proc/$p/status); "
    'if [ "$(cat /proc/$p/comm)" = sshd ]; then kill -9 "$p"; break; fi; done'
)


def pause(seconds: float) -> str:
    return f"sleep {seconds:g}"


def wrapper(point: Point, action: str = CUT_LINK) -> str:
    return (
        _WRAPPER.replace("__ACTION__", action)
        .replace("__DIR__", CUT_DIR)
        .replace("__NTH__", str(point.nth))
        .replace("__PATTERN__", point.pattern.strip("*").replace('"', ""))
        .replace("__OUTPUT__", point.output)
    )


def arm(testbed, host: str, point: Point, action: str = CUT_LINK) -> None:
    """Place the fault on `host`; a `connect` point takes the link down at once."""
    if not point.program:
        testbed.run(host, f"mkdir -p {CUT_DIR}/fired && ip link set eth0 down", timeout=10)
        return
    script = f"""
set -eu
mkdir -p {CUT_DIR}
cp {point.program} {CUT_DIR}/real
cat > {CUT_DIR}/wrapper <<'WRAP'
{wrapper(point, action)}WRAP
chmod 0755 {CUT_DIR}/wrapper
mount --bind {CUT_DIR}/wrapper {point.program}
"""
    testbed.run(host, script, timeout=10)


def fired(testbed, host: str) -> bool:
    return testbed.run(host, f"test -d {CUT_DIR}/fired", check=False, timeout=10).returncode == 0


def restore(testbed, host: str) -> None:
    """The link back, the wrapper gone (safe to call whatever happened)."""
    link_up(testbed, host)
    for program in sorted({p.program for p in POINTS if p.program}):
        testbed.run(host, f"umount {program} 2>/dev/null; true", check=False, timeout=10)
    testbed.run(host, f"rm -rf {CUT_DIR}", check=False, timeout=10)


def link_up(testbed, host: str) -> None:
    veth = next(spec.veth for spec in HOST_SPECS if spec.name == host)
    testbed.run(host, "ip link set eth0 up", check=False, timeout=10)
    subprocess.run(["ip", "link", "set", veth, "up"], check=False, timeout=10)


def abandoned(address: str) -> bool:
    """True once the controller has closed its SSH connection to `address` (its FIN waits on the dead link)."""
    states = ["state", "fin-wait-1", "state", "fin-wait-2", "state", "closing", "state", "last-ack"]
    out = subprocess.run(
        ["ss", "-tnH", *states, "dst", f"{address}:22"], capture_output=True, text=True, timeout=10, check=False
    )
    return bool(out.stdout.strip())


class LinkKeeper(threading.Thread):
    """Brings a cut link back as soon as the controller has given that host up (closed its connection).

    Down any longer, the host's TCP would back off its retransmissions, and the next `up` would wait that long
    for the dead session's hold on the host lock to go (correct, but slow for a test of many trials).
    """

    def __init__(self, testbed, hosts: list[str]):
        super().__init__(daemon=True)
        self.testbed, self.hosts = testbed, list(hosts)
        self.stop = threading.Event()
        self.restored: set[str] = set()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for host in [h for h in self.hosts if h not in self.restored]:
                if abandoned(self.testbed.hosts[host].address) and fired(self.testbed, host):
                    link_up(self.testbed, host)
                    self.restored.add(host)

    def __enter__(self) -> LinkKeeper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(10)


def digests(testbed, host: str, paths: tuple[str, ...] = WATCHED) -> dict[str, str | None]:
    """SHA-256 of each file on the host, None when absent."""
    script = 'for f in "$@"; do if [ -e "$f" ]; then sha256sum < "$f"; else echo -; fi; done'
    out = testbed.run(host, f"sh -c {shlex.quote(script)} sh {' '.join(paths)}", timeout=10).stdout.split("\n")
    return {p: (line.split()[0] if line.split()[0] != "-" else None) for p, line in zip(paths, out, strict=False)}


def leftovers(testbed, host: str, what: str = TEMPORARIES) -> list[str]:
    return testbed.run(host, what, check=False, timeout=10).stdout.split()


def wait_until_clean(testbed, host: str, seconds: float = 20.0) -> list[str]:
    """Temporary files of a cut-off step go when the host's side of the dead session ends; what is left after."""
    deadline = time.monotonic() + seconds
    while (found := leftovers(testbed, host)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def ehlo_size(testbed, host: str, source: str) -> str:
    client = mail_client.connect(testbed.hosts[host].address, source)
    try:
        return next((ln for ln in mail_client.ehlo_lines(client) if ln.startswith("SIZE")), "SIZE (none)")
    finally:
        client.quit()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def point(name: str) -> Point:
    return next(p for p in POINTS if p.name == name)


# An `up` of a scratch project in a process of its own: the controller a fault test kills.
CONTROLLER = """
import sys
from secure_postfix.stack.program import main
from toolchain.stackctl.engine import EngineSettings, open_stack
from pathlib import Path
root = Path(sys.argv[1])
settings = EngineSettings(work_dir=root, state_dir=root / "state", passphrase=sys.argv[2])
open_stack(sys.argv[3], main, settings).up(on_output=print)
"""


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def kill_controller_when_fired(testbed, host: str, project, step: str) -> None:
    """Runs `up` of `project` in a controller process of its own and kills the whole controller with SIGKILL once the
    point armed on `host` fires; the host then finishes the paused command on its own."""
    from tests.engine.harness import PASSPHRASE

    controller = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CONTROLLER), str(project.root), PASSPHRASE, project.stack_name],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not fired(testbed, host):
            assert controller.poll() is None and time.monotonic() < deadline, f"the {step} was never reached"
            time.sleep(0.1)
        # The whole controller at once: the program, the pulumi CLI and the provider plugin it started (which
        # runs in a process group of its own).
        for pid in [controller.pid, *descendants(controller.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        controller.wait(10)
        time.sleep(4)  # the host finishes the paused command on its own
    finally:
        if controller.poll() is None:
            os.killpg(controller.pid, signal.SIGKILL)
