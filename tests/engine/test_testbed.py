"""Checks of the local test bed itself: isolation, SSH, SMTP, Dovecot, lifecycle.

The lifecycle tests at the end tear the bed down and build it again, then
update the session's TestBed object in place so later modules keep working.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import smtplib
import subprocess
import time
import uuid
from pathlib import Path

import paramiko
import pytest

from toolchain.testbed import TestBed, create, destroy
from toolchain.testbed.layout import PREFIX, SUBNET
from toolchain.testbed.network import netns_path, our_links, our_netns
from toolchain.testbed.proc import CommandError, alive, all_pids, comm, marked_pids

pytestmark = pytest.mark.engine

HOSTS = ("mx", "edge", "auth")
CONTROLLER_NAME = "controller.testbed.invalid"


def ssh_client(bed: TestBed) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(bed.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def ssh_connect(bed: TestBed, client: paramiko.SSHClient, host: str) -> None:
    client.connect(
        bed.hosts[host].address,
        username="root",
        key_filename=str(bed.client_key_path),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
        banner_timeout=10,
        auth_timeout=10,
    )


def smtp_greeting(address: str, source: str | None = None) -> tuple[int, str]:
    client = smtplib.SMTP(local_hostname=CONTROLLER_NAME, timeout=10, source_address=(source, 0) if source else None)
    try:
        code, message = client.connect(address, 25)
        return code, message.decode()
    finally:
        client.close()


def adopt(bed: TestBed, fresh: TestBed) -> None:
    # The session fixture hands out one object; keep it pointing at live hosts.
    for item in dataclasses.fields(TestBed):
        setattr(bed, item.name, getattr(fresh, item.name))


# ------------------------------------------------------------ identity


@pytest.mark.parametrize("host", HOSTS)
def test_host_has_own_hostname_and_main_cf(testbed: TestBed, host: str) -> None:
    fqdn = f"{host}.testbed.invalid"
    assert testbed.hosts[host].hostname == fqdn
    out = testbed.run(host, "hostname; postconf -h myhostname mydestination maillog_file").stdout.split("\n")
    assert out[:4] == [fqdn, fqdn, "$myhostname, localhost", "/var/log/mail.log"]


def test_myhostname_differs_per_host(testbed: TestBed) -> None:
    names = {testbed.run(h, "postconf -h myhostname").stdout.strip() for h in HOSTS}
    assert len(names) == len(HOSTS)


@pytest.mark.parametrize("host", HOSTS)
def test_clients_are_not_in_mynetworks(testbed: TestBed, host: str) -> None:
    # Rate limits exempt mynetworks; the bed's SMTP clients must be subject to them.
    mynetworks = testbed.run(host, "postconf -h mynetworks").stdout.strip()
    assert mynetworks == "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128"


def test_hosts_resolve_each_other_and_not_dns(testbed: TestBed) -> None:
    out = testbed.run("mx", "getent hosts auth.testbed.invalid edge controller.testbed.invalid").stdout
    assert f"{SUBNET}13" in out and f"{SUBNET}12" in out and f"{SUBNET}1 " in out
    assert testbed.read_file("edge", "/etc/resolv.conf") == b"nameserver 127.0.0.1\n"


def test_hosts_reach_each_other_on_the_bridge(testbed: TestBed) -> None:
    script = f"exec 3<>/dev/tcp/{SUBNET}13/25; head -n 1 <&3; printf 'QUIT\\r\\n' >&3"
    out = testbed.run("edge", f"timeout 10 bash -c {script!r}").stdout
    assert out.startswith("220 auth.testbed.invalid ESMTP")


# ------------------------------------------------------------ isolation

PRIVATE_DIRS = (
    "/etc/postfix",
    "/etc/dovecot",
    "/var/spool/postfix",
    "/var/lib/postfix",
    "/var/lib/dovecot",
    "/var/log",
    "/var/mail",
    "/run",
)


@pytest.mark.parametrize("directory", PRIVATE_DIRS)
def test_written_file_stays_on_its_host(testbed: TestBed, directory: str) -> None:
    probe = f"{directory}/testbed-probe-{uuid.uuid4().hex}"
    testbed.run("mx", f"echo mx > {probe}")
    try:
        assert testbed.read_file("mx", probe) == b"mx\n"
        for other in ("edge", "auth"):
            assert testbed.run(other, f"test -e {probe}", check=False).returncode == 1
        assert subprocess.run(["test", "-e", probe]).returncode == 1, "leaked into the root filesystem"
    finally:
        testbed.run("mx", f"rm -f {probe}")


DAEMONS = ("master", "dovecot", "sshd")


def daemon_pids() -> list[int]:
    return [pid for pid in all_pids() if comm(pid) in DAEMONS and alive(pid)]


def _netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except FileNotFoundError:  # the process ended meanwhile
        return None


def test_no_daemon_in_root_namespace(testbed: TestBed) -> None:
    # Other beds (TESTBED_INSTANCE) may run beside this one: each daemon must be in some network namespace
    # other than the machine's own, and this bed's own must include every host's daemons.
    root = os.stat("/proc/self/ns/net").st_ino  # the tests run in the machine's own namespace
    ours = {os.stat(netns_path(name)).st_ino for name in our_netns()}
    seen_in_ours = 0
    for pid in daemon_pids():
        with contextlib.suppress(FileNotFoundError):
            inode = os.stat(f"/proc/{pid}/ns/net").st_ino
            assert inode != root, f"{comm(pid)} (pid {pid}) runs in the machine's own network namespace"
            seen_in_ours += inode in ours
    assert seen_in_ours >= len(testbed.hosts) * 3, "the bed's own sshd, Postfix and Dovecot were not all found"


# ------------------------------------------------------------ ssh


@pytest.mark.parametrize("host", HOSTS)
def test_ssh_login_with_client_key(testbed: TestBed, host: str) -> None:
    client = ssh_client(testbed)
    try:
        ssh_connect(testbed, client, host)
        _, stdout, _ = client.exec_command("hostname; postconf -h myhostname")
        lines = stdout.read().decode().split()
        assert lines == [f"{host}.testbed.invalid"] * 2
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()


def test_ssh_refuses_wrong_host_key(testbed: TestBed) -> None:
    client = paramiko.SSHClient()
    # mx's address with edge's key: what a man-in-the-middle would look like.
    key_type, key_data = testbed.hosts["edge"].host_key.split()
    wrong_key = paramiko.Ed25519Key(data=base64.b64decode(key_data))
    client.get_host_keys().add(testbed.hosts["mx"].address, key_type, wrong_key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        with pytest.raises(paramiko.BadHostKeyException):
            ssh_connect(testbed, client, "mx")
    finally:
        client.close()


def test_ssh_rejects_unknown_host(testbed: TestBed) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
            ssh_connect(testbed, client, "auth")
    finally:
        client.close()


def test_ssh_refuses_passwords(testbed: TestBed) -> None:
    client = ssh_client(testbed)
    try:
        with pytest.raises(paramiko.AuthenticationException):
            client.connect(
                testbed.hosts["mx"].address,
                username="root",
                password="root",
                look_for_keys=False,
                allow_agent=False,
                timeout=10,
            )
    finally:
        client.close()


# ------------------------------------------------------------ smtp


@pytest.mark.parametrize("host", HOSTS)
def test_smtp_banner_from_root_namespace(testbed: TestBed, host: str) -> None:
    code, message = smtp_greeting(testbed.hosts[host].address)
    assert code == 220
    assert message.startswith(f"{host}.testbed.invalid ESMTP")


def test_smtp_from_client_source_address(testbed: TestBed) -> None:
    source = testbed.client_addresses[-1]
    code, _ = smtp_greeting(testbed.hosts["mx"].address, source=source)
    assert code == 220
    # postlogd writes asynchronously; give it a moment.
    deadline = time.monotonic() + 10
    while f"[{source}]" not in testbed.read_file("mx", "/var/log/mail.log").decode():
        assert time.monotonic() < deadline, "mx never logged the client's source address"
        time.sleep(0.2)


def test_restart_postfix(testbed: TestBed) -> None:
    pid_cmd = "cat /var/spool/postfix/pid/master.pid"
    before = testbed.run("edge", pid_cmd).stdout.strip()
    testbed.restart_postfix("edge")
    after = testbed.run("edge", pid_cmd).stdout.strip()
    assert before != after
    assert smtp_greeting(testbed.hosts["edge"].address)[0] == 220


# ------------------------------------------------------------ dovecot


@pytest.mark.parametrize("host", HOSTS)
def test_dovecot_config_and_master(testbed: TestBed, host: str) -> None:
    testbed.run(host, "doveconf -n >/dev/null")
    assert testbed.run(host, "doveconf -h log_path").stdout.strip() == "/var/log/dovecot.log"
    testbed.run(host, 'kill -0 "$(cat /run/dovecot/master.pid)"')
    assert testbed.run(host, "stat -c '%a %U %G' /etc/dovecot/users").stdout.strip() == "640 root dovecot"
    # Only passwd-file users exist, and the file is empty: root is unknown.
    auth = testbed.run(host, "doveadm auth test root secret", check=False)
    assert auth.returncode != 0 and "auth failed" in auth.stdout + auth.stderr


@pytest.mark.parametrize("host", HOSTS)
def test_dovecot_has_own_certificate(testbed: TestBed, host: str) -> None:
    out = testbed.run(
        host,
        "test ! -L /etc/dovecot/private/dovecot.pem && "
        "openssl x509 -noout -subject -in /etc/dovecot/private/dovecot.pem && "
        "openssl pkey -in /etc/dovecot/private/dovecot.key -noout",
    ).stdout
    assert f"CN = {host}.testbed.invalid" in out


# ------------------------------------------------------------ helpers


def test_run_reports_failures(testbed: TestBed) -> None:
    assert testbed.run("auth", "echo out; echo err >&2; exit 3", check=False).returncode == 3
    with pytest.raises(CommandError, match="err"):
        testbed.run("auth", "echo err >&2; exit 3")


def test_wait_smtp_times_out_on_a_stopped_postfix(testbed: TestBed) -> None:
    testbed.run("auth", "postfix stop")
    try:
        with pytest.raises(TimeoutError):
            testbed.wait_smtp("auth", timeout=1)
    finally:
        testbed.run("auth", "postfix start")
        testbed.wait_smtp("auth")


# ------------------------------------------------------------ lifecycle (keep last)


def test_create_twice_reuses_the_running_bed(testbed: TestBed) -> None:
    again = create(testbed.dir)
    assert {h.name: h.pid for h in again.hosts.values()} == {h.name: h.pid for h in testbed.hosts.values()}


def test_create_repairs_a_killed_host_and_stale_namespace(testbed: TestBed) -> None:
    old_pid = testbed.hosts["mx"].pid
    subprocess.run(["kill", "-9", str(old_pid)], check=True)
    subprocess.run(["ip", "netns", "add", f"{PREFIX}stale"], check=True)
    fresh = create(testbed.dir)
    adopt(testbed, fresh)
    assert f"{PREFIX}stale" not in our_netns()
    assert testbed.hosts["mx"].pid != old_pid
    for host in HOSTS:
        assert smtp_greeting(testbed.hosts[host].address)[0] == 220
    client = ssh_client(testbed)
    try:
        ssh_connect(testbed, client, "mx")
    finally:
        client.close()


def test_destroy_leaves_nothing_behind(testbed: TestBed) -> None:
    pids = [h.pid for h in testbed.hosts.values()]
    ours = {os.stat(netns_path(name)).st_ino for name in our_netns()}
    daemons = [pid for pid in daemon_pids() if _netns_inode(pid) in ours]
    assert daemons, "the bed's daemons were not found before destroy"
    destroy(testbed.dir)
    try:
        assert our_netns() == []
        assert our_links() == []
        assert marked_pids() == []
        assert not any(alive(pid) for pid in pids)
        assert not testbed.dir.exists()
        mounts = Path("/proc/self/mountinfo").read_text()
        # Other beds (TESTBED_INSTANCE) may keep /run/netns itself mounted.
        assert f"/run/netns/{PREFIX}" not in mounts and str(testbed.dir) not in mounts
        assert not any(alive(pid) for pid in daemons)
        destroy(testbed.dir)  # a second call on nothing is fine
    finally:
        adopt(testbed, create(testbed.dir))
