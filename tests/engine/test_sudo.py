"""A non-root login with `use_sudo`: every command goes through `sudo -n`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config

pytestmark = pytest.mark.engine

USER = "spsudo"
HOST = "edge"
PRIVATE = "/run/sp-sudo"  # the host's own /run: a tmpfs of its mount namespace
ACCOUNT_FILES = ("/etc/passwd", "/etc/shadow")
SETUP = f"""
set -eu
mkdir -p {PRIVATE}
cp -a /etc/passwd /etc/shadow {PRIVATE}/
cp -a /etc/sudoers.d {PRIVATE}/sudoers.d
echo '{USER}:x:64999:65534:deploy user of the sudo test:/nonexistent:/bin/sh' >> {PRIVATE}/passwd
# "*": no password works, but the account is not locked ("!"), which sshd would refuse.
echo '{USER}:*:20000:0:99999:7:::' >> {PRIVATE}/shadow
echo '{USER} ALL=(root) NOPASSWD: ALL' > {PRIVATE}/sudoers.d/{USER}
chmod 0440 {PRIVATE}/sudoers.d/{USER}
for f in passwd shadow; do mount --bind {PRIVATE}/$f /etc/$f; done
mount --bind {PRIVATE}/sudoers.d /etc/sudoers.d
"""
TEARDOWN = f"umount /etc/passwd /etc/shadow /etc/sudoers.d; rm -rf {PRIVATE}"


def on_the_machine() -> list[str]:
    """The machine's own account and sudo files that mention the user (none, ever)."""
    paths = [Path(p) for p in ACCOUNT_FILES] + sorted(Path("/etc/sudoers.d").iterdir())
    return [str(p) for p in paths if f"{USER}:".encode() in p.read_bytes() or p.name == USER]


@pytest.fixture(scope="module")
def deploy_user(testbed):
    """A passwordless-sudo user that exists only inside the Postfix host.

    /etc/passwd, /etc/shadow and /etc/sudoers.d are shared with the machine, so the host gets private copies
    with the user added, bind-mounted in its own mount namespace; the machine's files are never written.
    """
    assert on_the_machine() == []
    testbed.run(HOST, SETUP)
    try:
        assert testbed.run(HOST, f"id -u {USER}").stdout.strip() == "64999"
        assert on_the_machine() == [] and subprocess.run(["id", USER], capture_output=True).returncode != 0
        yield USER
    finally:
        testbed.run(HOST, TEARDOWN)
        assert on_the_machine() == []
        assert testbed.run(HOST, f"id {USER}", check=False).returncode != 0


def test_apply_and_restore_through_sudo(testbed, deploy_user, tmp_path):
    before = testbed.read_file(HOST, "/etc/postfix/main.cf")
    config = bed_config(testbed, {"s": {"postfix_host": HOST, "limits": {"message_size_limit": 20480000}}}, [HOST])
    config["hosts"][HOST].update({"user": deploy_user, "use_sudo": True})
    project = EngineProject(tmp_path / "sudo", "sudo")
    project.configure(config)
    try:
        run = project.up()
        assert run.ok, run.text
        assert testbed.run(HOST, "postconf -h message_size_limit").stdout.strip() == "20480000"
        log = (testbed.hosts[HOST].root / "log" / "sshd.log").read_text()
        assert f"Accepted publickey for {deploy_user}" in log
        assert "SIZE 20480000" in ehlo(testbed, testbed.client_addresses[35])
    finally:
        assert project.destroy().ok
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == before
    assert "SIZE 10240000" in ehlo(testbed, testbed.client_addresses[36])


def ehlo(testbed, source: str) -> list[str]:
    client = mail_client.connect(testbed.hosts[HOST].address, source)
    try:
        return mail_client.ehlo_lines(client)
    finally:
        client.close()


def test_without_sudo_a_plain_user_is_refused_and_nothing_changes(testbed, deploy_user, tmp_path):
    before = testbed.read_file(HOST, "/etc/postfix/main.cf")
    config = bed_config(testbed, {"s": {"postfix_host": HOST, "limits": {"message_size_limit": 20480000}}}, [HOST])
    config["hosts"][HOST].update({"user": deploy_user})
    project = EngineProject(tmp_path / "nosudo", "nosudo")
    project.configure(config)
    run = project.up()
    assert not run.ok
    # The host's lock, taken before anything is read, needs root: refused before any write.
    assert f"{HOST} ({testbed.hosts[HOST].address}): could not take the host lock" in run.stderr, run.stderr
    assert "it needs root: log in as root, or set use_sudo" in run.stderr, run.stderr
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == before
    testbed.wait_smtp(HOST, timeout=5)
