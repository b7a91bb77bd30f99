"""Key files get their final mode from the first byte; no symlink the project did not make is followed;
private keys never leave their folder."""

from __future__ import annotations

import hashlib

import pytest

from secure_postfix.core.dovecot_conf import CONFIG_FILE
from secure_postfix.remote.dovecot_host import DovecotHost
from secure_postfix.remote.postfix_host import PostfixError, PostfixHost
from secure_postfix.remote.ssh import RemoteError, Session, SshTarget, atomic_write_argv
from tests.engine.harness import bed_target

pytestmark = pytest.mark.engine

HOST = "auth"
KEY = b"".join(b"not a real key, line %05d\n" % i for i in range(4000))


def target(testbed) -> SshTarget:
    return bed_target(testbed, HOST, connect_timeout=5.0, command_timeout=20.0)


def sh(testbed, command: str) -> str:
    return testbed.run(HOST, command).stdout


# chmod and chown that note how many bytes the file had when its mode or owner changed.
SHIM = r"""#!/bin/sh
for last; do :; done
echo "$(basename "$0") $(stat -c %s -- "$last")" >> /run/sp-shim/log
exec /bin/$(basename "$0") "$@"
"""


def test_key_file_gets_mode_and_owner_before_its_first_byte(testbed):
    path = "/etc/postfix/sp-mode-test.key"
    sh(testbed, f"echo old > {path}; chmod 0644 {path}; mkdir -p /run/sp-shim; rm -f /run/sp-shim/log")
    for tool in ("chmod", "chown"):
        sh(testbed, f"cat > /run/sp-shim/{tool} <<'EOF'\n{SHIM}EOF\nchmod 0755 /run/sp-shim/{tool}")
    try:
        with Session(target(testbed)) as s:
            argv = atomic_write_argv(path, len(KEY), hashlib.sha256(KEY).hexdigest(), mode="0600", owner="root:root")
            s.run(["env", "PATH=/run/sp-shim:/usr/sbin:/usr/bin:/sbin:/bin", *argv], stdin=KEY)
        log = sh(testbed, "cat /run/sp-shim/log").split("\n")
        calls = [line.split() for line in log if line]
        # --reference (the old file's 0644) and then the final 0600: both while the file is still empty.
        assert [c[0] for c in calls] == ["chown", "chmod", "chown", "chmod"], calls
        assert all(c[1] == "0" for c in calls), calls
        assert sh(testbed, f"stat -c '%a %U' {path}").strip() == "600 root"
        assert testbed.read_file(HOST, path) == KEY
    finally:
        sh(testbed, f"rm -rf {path} /run/sp-shim")


def test_a_symlinked_folder_is_not_written_through(testbed):
    sh(testbed, "mkdir -p /etc/postfix/sp-elsewhere && ln -sfn /etc/postfix/sp-elsewhere /etc/postfix/sp-tls")
    try:
        with Session(target(testbed)) as s:
            with pytest.raises(RemoteError) as refused:
                s.write_file_atomic("/etc/postfix/sp-tls/secure-postfix.key", b"k\n", mode="0600")
            assert str(refused.value).startswith(f"{testbed.hosts[HOST].address}: refusing to write")
            assert "/etc/postfix/sp-tls is a symlink" in str(refused.value)
            with pytest.raises(PostfixError, match="/etc/postfix/sp-tls is a symlink"):
                PostfixHost(s).ensure_directory("/etc/postfix/sp-tls")
        assert sh(testbed, "ls -A /etc/postfix/sp-elsewhere") == ""
    finally:
        sh(testbed, "rm -rf /etc/postfix/sp-tls /etc/postfix/sp-elsewhere")


def test_a_symlinked_file_or_loose_folder_is_refused(testbed):
    sh(testbed, "echo victim > /etc/postfix/sp-victim; ln -sfn /etc/postfix/sp-victim /etc/postfix/sp-link")
    sh(testbed, "mkdir -p -m 0777 /etc/postfix/sp-open")
    try:
        with Session(target(testbed)) as s:
            with pytest.raises(RemoteError, match="/etc/postfix/sp-link is a symlink"):
                s.write_file_atomic("/etc/postfix/sp-link", b"new\n")
            with pytest.raises(RemoteError, match="sp-open is not owned by root or is writable by others"):
                s.write_file_atomic("/etc/postfix/sp-open/x", b"new\n")
        assert testbed.read_file(HOST, "/etc/postfix/sp-victim") == b"victim\n"
    finally:
        sh(testbed, "rm -rf /etc/postfix/sp-victim /etc/postfix/sp-link /etc/postfix/sp-open")


def test_a_planted_backup_symlink_is_not_written_through(testbed):
    sh(testbed, "echo key > /etc/postfix/sp-b.key; echo victim > /etc/postfix/sp-b-victim")
    sh(testbed, "ln -sfn /etc/postfix/sp-b-victim /etc/postfix/sp-b.key.secure-postfix-prev")
    try:
        with Session(target(testbed)) as s:
            PostfixHost(s).backup_files(["/etc/postfix/sp-b.key"])
        assert testbed.read_file(HOST, "/etc/postfix/sp-b-victim") == b"victim\n"
        assert sh(testbed, "stat -c %F /etc/postfix/sp-b.key.secure-postfix-prev").strip() == "regular file"
        assert testbed.read_file(HOST, "/etc/postfix/sp-b.key.secure-postfix-prev") == b"key\n"
    finally:
        sh(testbed, "rm -f /etc/postfix/sp-b.key /etc/postfix/sp-b-victim /etc/postfix/sp-b.key.secure-postfix-prev")


def test_dovecot_staging_keeps_private_keys_home_and_follows_no_symlink(testbed):
    # Our file's place holds a symlink to a victim; the staged check must not write through it.
    sh(testbed, f"echo victim > /etc/dovecot/sp-victim; ln -sfn /etc/dovecot/sp-victim {CONFIG_FILE}")
    # Watch for any copy of the private key while the check runs (the host's own folders only).
    watch = (
        "for i in $(seq 400); do find /etc/dovecot /var/tmp -name dovecot.key ! -path '/etc/dovecot/private/*' "
        ">> /etc/dovecot/sp-copies 2>/dev/null; sleep 0.01; done"
    )
    sh(testbed, f"rm -f /etc/dovecot/sp-copies; ({watch}) </dev/null >/dev/null 2>&1 &")
    try:
        with Session(target(testbed)) as s:
            host = DovecotHost(s)
            for _ in range(5):
                host.check_staged("# staged by the test\n")
            with pytest.raises(RemoteError, match="Unknown setting: sp_bogus"):
                host.check_staged("sp_bogus = 1\n")
        assert testbed.read_file(HOST, "/etc/dovecot/sp-victim") == b"victim\n"
        assert sh(testbed, "cat /etc/dovecot/sp-copies") == ""
        assert sh(testbed, "ls -A /etc/dovecot | grep -c secure-postfix-stage || true").strip() == "0"
    finally:
        sh(testbed, "pkill -f 'seq 40[0]' || true")
        sh(testbed, f"rm -f {CONFIG_FILE} /etc/dovecot/sp-victim /etc/dovecot/sp-copies")
