"""The `pulumi` CLI killed with SIGKILL in the middle of an `up`: its helpers (language host, program runner,
provider plugin) see the engine gone, let the host operation in flight finish, and exit; the host is left whole."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine import fault_support as fs
from tests.engine.harness import bed_config
from tests.engine.test_fault_host_failures import SIZES, site
from tests.engine.test_pulumi_cli import CliProject
from toolchain.stackctl.engine import pulumi_bin

pytestmark = [pytest.mark.engine, pytest.mark.long(60)]

HOST = "mx"
# The helpers' own code; the shims `exec` into them, so these are the processes the CLI started.
HELPERS = ("toolchain/langhost/__main__.py", "toolchain/langhost/runner.py", "toolchain/providerhost/__main__.py")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return "(gone)"


def test_helpers_finish_the_host_operation_and_exit_when_the_cli_is_killed(testbed, tmp_path):
    cli = CliProject(tmp_path / "cli-killed", "cli-killed")
    cli.configure(bed_config(testbed, site(SIZES[0]), [HOST]))
    cli.ok("up", "--yes")
    before = fs.digests(testbed, HOST)
    cli.configure(bed_config(testbed, site(SIZES[1]), [HOST]))
    # The host pauses in the swap's rename: the CLI is killed while the provider is in the middle of the change.
    fs.arm(testbed, HOST, fs.point("swap"), fs.pause(3))
    up = subprocess.Popen(
        [str(pulumi_bin()), "up", "--yes", "--stack", cli.stack_name, "--non-interactive"],
        cwd=cli.root,
        env=cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    helpers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not fs.fired(testbed, HOST):
            assert up.poll() is None and time.monotonic() < deadline, "the swap was never reached"
            time.sleep(0.1)
        helpers = [pid for pid in fs.descendants(up.pid) if any(h in cmdline(pid) for h in HELPERS)]
        assert {h for h in HELPERS for pid in helpers if h in cmdline(pid)} == set(HELPERS), [
            cmdline(p) for p in helpers
        ]
        up.send_signal(signal.SIGKILL)  # the CLI alone: its helpers are left to notice
        up.wait(10)
        deadline = time.monotonic() + 60
        while any(alive(pid) for pid in helpers) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [cmdline(pid) for pid in helpers if alive(pid)]
    finally:
        fs.restore(testbed, HOST)
        if up.poll() is None:
            up.kill()
            up.wait(10)
        for pid in helpers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert left == [], left
    # The change in flight was finished (or undone): every file wholly old or new, nothing pending or temporary.
    after = fs.digests(testbed, HOST)
    assert after[fs.MAIN_CF] != before[fs.MAIN_CF], "the provider did not finish the change in flight"
    assert fs.wait_until_clean(testbed, HOST) == []
    assert b"pending" not in testbed.read_file(HOST, fs.LEDGER)
    assert fs.ehlo_size(testbed, HOST, testbed.controller_address) == f"SIZE {SIZES[1]}"
    # The stack the dead CLI left locked: `pulumi cancel`, then the next `up` converges.
    cli.pulumi("cancel", "--yes")
    cli.ok("up", "--yes")
    assert fs.ehlo_size(testbed, HOST, testbed.controller_address) == f"SIZE {SIZES[1]}"
    cli.ok("destroy", "--yes")
