"""Running commands and finding the bed's processes through /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .layout import ENV_MARKER, SAFE_PATH

# A fixed environment keeps the caller's PATH (pyenv shims, venvs) out of the
# hosts and makes runs independent of who started them.
BASE_ENV = {"PATH": SAFE_PATH, "HOME": "/root", "LANG": "C.UTF-8"}


class CommandError(subprocess.CalledProcessError):
    """CalledProcessError whose message carries the command's output."""

    def __str__(self) -> str:
        parts = [super().__str__()]
        for label, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
            if text and text.strip():
                parts.append(f"{label}:\n{text.strip()}")
        return "\n".join(parts)


def run(
    args: Sequence[str],
    check: bool = True,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or BASE_ENV,
    )
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, list(args), proc.stdout, proc.stderr)
    return proc


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        # The process may exit between listing /proc and reading it.
        return None


def ns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def ns_pids(status: bytes) -> list[int]:
    for line in status.splitlines():
        if line.startswith(b"NSpid:"):
            return [int(field) for field in line.split()[1:]]
    return []


def is_pid_ns_init(pid: int) -> bool:
    """True if pid is PID 1 of a PID namespace nested in ours."""
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return False
    nspids = ns_pids(status)
    return len(nspids) >= 2 and nspids[-1] == 1


def comm(pid: int) -> str:
    data = _read(f"/proc/{pid}/comm")
    return data.decode(errors="replace").strip() if data else ""


def pids_in_netns(netns_path: str) -> list[int]:
    inode = ns_inode(netns_path)
    if inode is None:
        return []
    return [pid for pid in all_pids() if ns_inode(f"/proc/{pid}/ns/net") == inode]


def marked_pids() -> list[int]:
    """Processes started by a test bed (they carry ENV_MARKER)."""
    needle = f"{ENV_MARKER}=".encode()
    found = []
    for pid in all_pids():
        environ = _read(f"/proc/{pid}/environ")
        if environ and any(item.startswith(needle) for item in environ.split(b"\0")):
            found.append(pid)
    return found


def mount_points() -> set[str]:
    # os.path.ismount misses bind mounts within one filesystem; the mount
    # table does not.
    with open("/proc/self/mountinfo") as table:
        return {line.split()[4] for line in table}


def alive(pid: int) -> bool:
    # A zombie has exited already; only its parent's wait() is missing.
    status = _read(f"/proc/{pid}/stat")
    if status is None:
        return False
    state = status.rsplit(b")", 1)[-1].split()[0]
    return state not in (b"Z", b"X")


def kill_all(pids: Iterable[int], timeout: float = 10) -> list[int]:
    """SIGKILL pids and wait until they are gone; returns survivors.

    Killing the first process of a PID namespace makes the kernel kill every
    other process in it, so the hosts' daemons need no separate handling.
    """
    targets = {pid for pid in pids if pid != os.getpid()}
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = {pid for pid in targets if alive(pid)}
        if not targets:
            break
        time.sleep(0.05)
    return sorted(targets)
