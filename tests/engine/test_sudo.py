"""A non-root login with `use_sudo`: every command goes through `sudo -n`."""

from __future__ import annotations

import subprocess

import pytest

from tests.engine.harness import EngineProject, bed_config

pytestmark = pytest.mark.engine

USER = "spdeploy"
SUDOERS = f"/etc/sudoers.d/{USER}"
HOST = "edge"


@pytest.fixture(scope="module")
def deploy_user():
    """A system user allowed passwordless sudo; /etc/passwd is shared by the test hosts, so it is removed after."""
    subprocess.run(["userdel", USER], capture_output=True)
    subprocess.run(["useradd", "--system", "--shell", "/bin/sh", "--home-dir", "/nonexistent", USER], check=True)
    # "*": no password works, but the account is not locked ("!"), which sshd would refuse.
    subprocess.run(["usermod", "-p", "*", USER], check=True)
    with open(SUDOERS, "w") as f:
        f.write(f"{USER} ALL=(root) NOPASSWD: ALL\n")
    subprocess.run(["chmod", "0440", SUDOERS], check=True)
    try:
        yield USER
    finally:
        subprocess.run(["rm", "-f", SUDOERS], check=True)
        subprocess.run(["userdel", USER], check=True)


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
    finally:
        assert project.destroy().ok
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == before


def test_without_sudo_a_plain_user_is_refused_and_nothing_changes(testbed, deploy_user, tmp_path):
    before = testbed.read_file(HOST, "/etc/postfix/main.cf")
    config = bed_config(testbed, {"s": {"postfix_host": HOST, "limits": {"message_size_limit": 20480000}}}, [HOST])
    config["hosts"][HOST].update({"user": deploy_user})
    project = EngineProject(tmp_path / "nosudo", "nosudo")
    project.configure(config)
    run = project.up()
    assert not run.ok
    assert testbed.hosts[HOST].address in run.stderr
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == before
    testbed.wait_smtp(HOST, timeout=5)
