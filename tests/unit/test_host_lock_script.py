"""The host's side of the lock, run here on a lock file of the test's own: it keeps the lock while heartbeat lines
come and lets go when they stop, at end of input, or when its host pid is killed; with bash, and on a host without
bash through coreutils' timeout."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from secure_postfix.remote.host_lock import _TAKE

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(map(shutil.which, ("flock", "timeout", "bash"))),
    reason="the lock script needs root, flock, timeout and bash",
)

STALE = 1.0


@pytest.fixture(params=["bash", "timeout"])
def path(request, tmp_path: Path) -> str:
    """PATH for the script: the system's, or one with all it needs but bash."""
    if request.param == "bash":
        return os.environ["PATH"]
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("sh", "id", "mkdir", "flock", "cat", "timeout"):
        (tools / name).symlink_to(shutil.which(name))
    return str(tools)


@pytest.fixture
def holder(path: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    lock = tmp_path / "run" / "host.lock"
    argv = ["sh", "-c", _TAKE, "sh", str(lock), "5", "a test", "n0nce", f"{STALE:g}"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={"PATH": path})
    try:
        assert proc.stdout.readline() == b"LOCKED n0nce\n"
        yield proc, lock
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdin.close()  # the end of input for a reader the shell left (the timeout branch)
        proc.stdout.close()


def is_free(lock: Path) -> bool:
    with lock.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def wait_free(lock: Path, within: float) -> float:
    started = time.monotonic()
    while not is_free(lock):
        assert time.monotonic() - started < within, "the lock was not freed in time"
        time.sleep(0.05)
    return time.monotonic() - started


def test_heartbeats_keep_the_lock_and_their_end_frees_it(holder):
    proc, lock = holder
    for _ in range(int(3 * STALE / 0.25)):
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        time.sleep(0.25)
        assert not is_free(lock)
    assert wait_free(lock, STALE + 2) > STALE - 0.5  # from the last beat on, not at once
    assert proc.wait(5) is not None


def test_end_of_input_frees_it_at_once(holder):
    proc, lock = holder
    proc.stdin.close()
    assert wait_free(lock, 0.5) < 0.5


def test_a_kill_of_the_host_pid_frees_it_at_once(holder):
    proc, lock = holder
    line = lock.read_text()
    assert line.startswith("a test, host pid ") and line.endswith(f", freed {STALE:g} s after its last heartbeat\n")
    pid = int(line.split("host pid ")[1].split(",")[0])
    assert pid == proc.pid
    os.kill(pid, 15)
    assert wait_free(lock, 0.5) < 0.5
