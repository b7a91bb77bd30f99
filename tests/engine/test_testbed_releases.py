"""Test hosts of other Debian releases: mx runs trixie (Postfix 3.10, Dovecot 2.4, OpenSSH 10), edge bullseye
(Postfix 3.5, Dovecot 2.3.13, OpenSSH 8.4) and auth the machine's own root, each with its own daemons.

The module turns the session's bed into that mixed bed (same instance and folder) and gives the session its
previous bed back at the end. The releases' trees must be in the cache already (scripts/setup.sh builds them):
the run itself downloads nothing.
"""

from __future__ import annotations

import dataclasses
import re
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.engine.harness import dovecot_password
from tests.engine.release_support import releases_bed
from toolchain.testbed import TestBed, destroy, rootfs
from toolchain.testbed.layout import PREFIX
from toolchain.testbed.lifecycle import host_releases, problems
from toolchain.testbed.network import our_links, our_netns
from toolchain.testbed.proc import alive, marked_pids

pytestmark = [pytest.mark.engine, pytest.mark.long(40)]

RELEASES: dict[str, str | None] = {"mx": "trixie", "edge": "bullseye", "auth": None}
HOSTS = tuple(RELEASES)
USER = "relcheck"


@dataclasses.dataclass(frozen=True)
class Expected:
    debian: str
    postfix: str
    dovecot: str
    openssh: str


def machine_versions() -> Expected:
    """What the machine's own binaries say: a host of the machine's root must say the same."""

    def out(*args: str) -> str:
        done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=30)
        return (done.stdout + done.stderr).strip()

    debian = Path("/etc/debian_version").read_text().strip()
    openssh = re.match(r"OpenSSH_[\d.]+", out("ssh", "-V"))
    assert openssh is not None
    return Expected(debian, out("postconf", "-h", "mail_version"), out("dovecot", "--version"), openssh.group())


# Version prefixes of each release's daemons (Debian 13 trixie, Debian 11 bullseye).
EXPECTED = {
    "mx": Expected(debian="13.", postfix="3.10.", dovecot="2.4.", openssh="OpenSSH_10."),
    "edge": Expected(debian="11.", postfix="3.5.", dovecot="2.3.13 ", openssh="OpenSSH_8.4"),
}


@pytest.fixture(scope="module")
def bed(testbed: TestBed) -> Iterator[TestBed]:
    with releases_bed(testbed, RELEASES) as mixed:
        yield mixed


def expected(host: str) -> Expected:
    return EXPECTED[host] if host in EXPECTED else machine_versions()


# ------------------------------------------------------------ each host runs its release


def test_the_bed_records_and_runs_the_releases(bed: TestBed) -> None:
    assert host_releases(bed) == RELEASES
    assert problems(bed) == []


@pytest.mark.parametrize("host", HOSTS)
def test_daemons_of_the_hosts_release(bed: TestBed, host: str) -> None:
    want = expected(host)
    out = bed.run(host, "cat /etc/debian_version; postconf -h mail_version; dovecot --version; ssh -V 2>&1").stdout
    debian, postfix, dovecot, openssh = out.split("\n")[:4]
    assert debian.startswith(want.debian)
    assert postfix.startswith(want.postfix)
    assert (dovecot + " ").startswith(want.dovecot)
    assert openssh.startswith(want.openssh)


@pytest.mark.parametrize("host", HOSTS)
def test_ssh_with_the_beds_key_and_the_pinned_host_key(bed: TestBed, host: str) -> None:
    client = paramiko.SSHClient()
    client.load_host_keys(str(bed.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
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
        transport = client.get_transport()
        assert transport is not None
        # The daemon that answered is the release's own sshd, not the machine's.
        assert transport.remote_version.startswith(f"SSH-2.0-{expected(host).openssh}")
        server_key = transport.get_remote_server_key()
        assert f"{server_key.get_name()} {server_key.get_base64()}" == bed.hosts[host].host_key
        _, stdout, _ = client.exec_command("hostname; postconf -h mail_version")
        assert stdout.read().decode().split() == [
            f"{host}.testbed.invalid",
            bed.run(host, "postconf -h mail_version").stdout.strip(),
        ]
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()


@pytest.mark.parametrize("host", HOSTS)
def test_port_25_greets_the_controller(bed: TestBed, host: str) -> None:
    client = smtplib.SMTP(local_hostname="controller.testbed.invalid", timeout=10)
    try:
        code, message = client.connect(bed.hosts[host].address, 25)
        assert code == 220
        assert message.decode().startswith(f"{host}.testbed.invalid ESMTP")
        assert client.ehlo()[0] == 250
    finally:
        client.close()


@pytest.mark.parametrize("host", HOSTS)
def test_dovecot_auth_service_answers_for_a_passwd_file_user(bed: TestBed, host: str) -> None:
    word = dovecot_password(bed, [host], USER, f"release test password on {host}")
    try:
        ok = bed.run(host, f"doveadm auth test {USER} '{word}'", check=False)
        assert ok.returncode == 0 and "auth succeeded" in ok.stdout, ok.stdout + ok.stderr
        wrong = bed.run(host, f"doveadm auth test {USER} not-{word}", check=False)
        assert wrong.returncode != 0 and "auth failed" in wrong.stdout + wrong.stderr
    finally:
        bed.run(host, ": > /etc/dovecot/users")


# ------------------------------------------------------------ the shared tree


def test_a_host_writes_into_its_own_overlay_never_the_tree(bed: TestBed) -> None:
    tree = rootfs.root_of("trixie")
    motd = (tree / "etc/motd").read_bytes()
    # A new file, and a change to one of the tree's own (copied up into the overlay).
    bed.run("mx", "echo mx > /usr/local/sbin/sptb-probe; echo sptb-probe >> /etc/motd")
    try:
        assert bed.read_file("mx", "/usr/local/sbin/sptb-probe") == b"mx\n"
        upper = bed.hosts["mx"].root / "system/upper"
        assert (upper / "usr/local/sbin/sptb-probe").read_text() == "mx\n"
        assert not (tree / "usr/local/sbin/sptb-probe").exists()
        assert (tree / "etc/motd").read_bytes() == motd
        assert (upper / "etc/motd").read_bytes() == motd + b"sptb-probe\n"
        # The other hosts (another release, the machine's root) see nothing of it.
        for other in ("edge", "auth"):
            assert bed.run(other, "test -e /usr/local/sbin/sptb-probe", check=False).returncode == 1
        assert not Path("/usr/local/sbin/sptb-probe").exists()
    finally:
        bed.run("mx", "rm -f /usr/local/sbin/sptb-probe")


def test_the_hosts_files_are_the_ones_in_its_folder(bed: TestBed) -> None:
    # Tests reach into a host's files from the controller through Host.root; on a release host too.
    for host in ("mx", "edge"):
        bed.run(host, "postconf -e message_size_limit=4321")
        main_cf = (bed.hosts[host].root / "etc/postfix/main.cf").read_text()
        assert "message_size_limit = 4321" in main_cf
        bed.run(host, "postconf -X message_size_limit")
        # The release's sshd logs into the host's /var/log, which is the folder's log/.
        assert "Server listening on" in (bed.hosts[host].root / "log/sshd.log").read_text()


# ------------------------------------------------------------ teardown (keep last)


def test_destroy_leaves_nothing_behind(bed: TestBed) -> None:
    pids = [h.pid for h in bed.hosts.values()]
    trees = {r: rootfs.root_of(r) for r in ("trixie", "bullseye")}
    stamps = {r: rootfs.CACHE_DIR / r / rootfs.STAMP_FILE for r in trees}
    destroy(bed.dir)
    assert our_netns() == [] and our_links() == []
    assert marked_pids() == []
    assert not any(alive(pid) for pid in pids)
    assert not bed.dir.exists()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"/run/netns/{PREFIX}" not in mounts and str(bed.dir) not in mounts
    for release, tree in trees.items():
        assert str(tree) not in mounts
        # Nothing in the tree changed since it was built.
        newer = subprocess.run(
            ["find", str(tree), "-xdev", "-newer", str(stamps[release]), "-print", "-quit"],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout  # fmt: skip
        assert newer == "", f"{release}'s tree was written: {newer}"
