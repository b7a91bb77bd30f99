"""What the host-side scripts choose on a RHEL-like host: SELinux contexts kept on every write, backups that carry
their context, a restart through systemd when systemd runs Postfix, and rsyslog's /var/log/maillog found.

Neither SELinux nor systemd runs here, so `selinuxenabled`, `chcon`, `restorecon`, `systemctl` and `postfix` are
stand-ins on PATH that log how they were called; every other command is the real one, and so is every script.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from secure_postfix.core.host_output import POSTFIX_FACTS_SCRIPT
from secure_postfix.remote.postfix_host import BACKUP_SCRIPT, ENSURE_DIRECTORY_SCRIPT, RESTART_SCRIPT
from secure_postfix.remote.ssh import atomic_write_argv

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the write script wants a root-owned folder")


def stand_ins(tmp_path: Path, scripts: dict[str, str]) -> tuple[dict[str, str], Path]:
    """A PATH whose first folder holds `scripts` (name: body), each logging `name args` to calls.log first."""
    tools = tmp_path / "stand-ins"
    tools.mkdir()
    calls = tmp_path / "calls.log"
    for name, body in scripts.items():
        tool = tools / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n{body}\n')
        tool.chmod(0o755)
    return {"PATH": f"{tools}:{os.environ['PATH']}"}, calls


def logged(calls: Path) -> list[str]:
    return calls.read_text().splitlines() if calls.exists() else []


SELINUX_ON = {"selinuxenabled": "exit 0", "chcon": "exit 0", "restorecon": "exit 0"}
SELINUX_OFF = {"selinuxenabled": "exit 1", "chcon": "exit 0", "restorecon": "exit 0"}


def write(env: dict[str, str], path: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    argv = atomic_write_argv(str(path), len(data), hashlib.sha256(data).hexdigest(), "0644", "", 0, "")
    return subprocess.run(argv, input=data, env=env, capture_output=True, timeout=30)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    etc = tmp_path / "etc-postfix"
    etc.mkdir(mode=0o755)
    return etc


def test_a_replaced_file_takes_the_live_files_context_before_the_rename(tmp_path, folder):
    env, calls = stand_ins(tmp_path, SELINUX_ON)
    live = folder / "main.cf"
    live.write_text("old\n")
    assert write(env, live, b"new\n").returncode == 0
    assert live.read_text() == "new\n"
    chcon = [c for c in logged(calls) if c.startswith("chcon ")]
    assert len(chcon) == 1 and chcon[0].startswith(f"chcon --reference={live} -- {folder}/.main.cf."), chcon
    assert not any(c.startswith("restorecon") for c in logged(calls))


def test_a_new_file_gets_the_policys_context_after_the_rename(tmp_path, folder):
    env, calls = stand_ins(tmp_path, SELINUX_ON)
    new = folder / "secure-postfix.pem"
    assert write(env, new, b"pem\n").returncode == 0
    assert [c for c in logged(calls) if not c.startswith("selinuxenabled")] == [f"restorecon -- {new}"]


def test_without_selinux_no_context_is_touched(tmp_path, folder):
    env, calls = stand_ins(tmp_path, SELINUX_OFF)
    live = folder / "main.cf"
    live.write_text("old\n")
    assert write(env, live, b"new\n").returncode == 0
    assert write(env, folder / "new.cf", b"x\n").returncode == 0
    assert {c.split()[0] for c in logged(calls)} <= {"selinuxenabled"}


def test_a_host_without_selinuxenabled_is_written_as_before(tmp_path, folder):
    env = {"PATH": os.environ["PATH"]}
    assert shutil.which("selinuxenabled") is None, "this machine runs SELinux tools: the test means nothing here"
    live = folder / "main.cf"
    assert write(env, live, b"new\n").returncode == 0
    assert live.read_text() == "new\n"


def test_a_failed_relabel_fails_the_write(tmp_path, folder):
    env, _ = stand_ins(tmp_path, {**SELINUX_ON, "chcon": "echo 'chcon: cannot apply' >&2; exit 1"})
    live = folder / "main.cf"
    live.write_text("old\n")
    result = write(env, live, b"new\n")
    assert result.returncode != 0 and b"cannot apply" in result.stderr
    assert live.read_text() == "old\n"
    assert [p.name for p in folder.iterdir()] == ["main.cf"]


def test_backups_are_copied_with_everything_cp_can_keep(tmp_path, folder):
    """`cp --preserve=all` keeps the SELinux context where there is one and says nothing where there is none."""
    live = folder / "master.cf"
    live.write_text("entries\n")
    os.chmod(live, 0o640)
    os.utime(live, (1_000_000_000, 1_000_000_000))
    subprocess.run(["sh", "-c", BACKUP_SCRIPT, "sh", str(live)], check=True, capture_output=True, timeout=30)
    backup = folder / "master.cf.secure-postfix-prev"
    assert backup.read_text() == "entries\n"
    assert (backup.stat().st_mode & 0o777, backup.stat().st_mtime) == (0o640, 1_000_000_000)
    env, calls = stand_ins(tmp_path, {"cp": 'exec /bin/cp "$@"'})
    subprocess.run(["sh", "-c", BACKUP_SCRIPT, "sh", str(live)], env=env, check=True, capture_output=True)
    assert logged(calls) == [f"cp -P --preserve=all -- {live} {backup}"]


def test_a_new_tls_folder_is_relabelled(tmp_path, folder):
    env, calls = stand_ins(tmp_path, SELINUX_ON)
    tls = folder / "tls"
    out = subprocess.run(["sh", "-c", ENSURE_DIRECTORY_SCRIPT, "sh", str(tls)], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "created" and tls.is_dir()
    assert logged(calls)[-1] == f"restorecon -- {tls}"
    out = subprocess.run(["sh", "-c", ENSURE_DIRECTORY_SCRIPT, "sh", str(tls)], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "existed" and logged(calls).count(f"restorecon -- {tls}") == 1


@pytest.mark.parametrize(
    ("load_state", "expected"),
    [
        ("loaded", ["systemctl restart postfix.service"]),
        ("not-found", ["postfix stop", "postfix start"]),
        (None, ["postfix stop", "postfix start"]),  # systemctl installed, systemd not running (a container)
    ],
)
def test_a_restart_goes_through_systemd_when_systemd_runs_postfix(tmp_path, load_state, expected):
    show = f"echo {load_state}" if load_state else "echo 'System has not been booted with systemd' >&2; exit 1"
    body = f'case "$1" in show) {show} ;; *) exit 0 ;; esac'
    env, calls = stand_ins(tmp_path, {"systemctl": body, "postfix": "exit 0"})
    subprocess.run(["sh", "-c", RESTART_SCRIPT], env=env, check=True, capture_output=True, timeout=30)
    assert [c for c in logged(calls) if not c.startswith("systemctl show")] == expected


def test_a_host_without_systemctl_restarts_with_postfix_itself(tmp_path):
    env, calls = stand_ins(tmp_path, {"postfix": "exit 0"})
    tools = Path(env["PATH"].split(":")[0])
    for name in ("sh", "cat", "echo"):
        (tools / name).symlink_to(shutil.which(name))
    subprocess.run(["sh", "-c", RESTART_SCRIPT], env={"PATH": str(tools)}, check=True, capture_output=True)
    assert logged(calls) == ["postfix stop", "postfix start"]


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
@pytest.mark.parametrize(
    ("logs", "expected"),
    [(["maillog"], "/var/log/maillog"), (["mail.log", "maillog"], "/var/log/mail.log"), ([], "")],
)
def test_the_facts_find_rsyslogs_maillog_without_maillog_file(tmp_path, logs, expected):
    """RHEL's rsyslog writes /var/log/maillog, Debian's /var/log/mail.log; /var/log is a fresh one for the test."""
    # The six values the facts ask for at once: no config folder there, maillog_file empty.
    postconf = (
        'case "$*" in -xh\\ config_directory*) printf "/nonexistent\\n3.7.11\\n\\n/q\\nall\\nall\\n" ;; *) echo ;; esac'
    )
    env, _ = stand_ins(tmp_path, {"postconf": postconf})
    touch = " ".join(f"/var/log/{name}" for name in logs)
    inner = f'mount -t tmpfs none /var/log && {"touch " + touch + " && " if logs else ""}exec sh -c "$0"'
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", inner, POSTFIX_FACTS_SCRIPT], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[2] == expected
