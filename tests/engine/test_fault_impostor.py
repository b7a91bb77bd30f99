"""Someone in the middle: between two `up`s, another machine with another host key takes over the host's address.

The impostor is real: the host's link goes down, the address moves to another test host's interface, and a second
sshd (a fresh host key, the same authorized keys, so it would let the controller in) listens there. The apply must
stop at the host key: the error names the host and both fingerprints, the impostor's log shows the connection but
no accepted login and no session, and once the real host is back the next `up` applies the change.
"""

from __future__ import annotations

import base64
import subprocess

import paramiko
import pytest

from tests.engine.fault_support import ehlo_size
from tests.engine.harness import EngineProject, bed_config
from toolchain.testbed.layout import BRIDGE, HOST_SPECS

pytestmark = pytest.mark.engine

HOST, IMPOSTOR_HOST = "mx", "edge"
RUN = "/run/sptb-impostor"
SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {run}/host_key
PidFile {run}/sshd.pid
AuthorizedKeysFile /run/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
LogLevel VERBOSE
"""


def fingerprint(public_line: str) -> str:
    key_type, body = public_line.split()[:2]
    key = paramiko.PKey.from_type_string(key_type, base64.b64decode(body))
    return f"{key.get_name()} {key.fingerprint}"


def site(size: int) -> dict:
    return {"mitm": {"postfix_host": HOST, "limits": {"message_size_limit": size}}}


def take_over(testbed) -> str:
    """The impostor's sshd on the host's address; returns its public host key line."""
    address = testbed.hosts[HOST].address
    testbed.run(HOST, "ip link set eth0 down", timeout=10)
    script = f"""
set -eu
mkdir -p {RUN}
rm -f {RUN}/host_key {RUN}/host_key.pub
ssh-keygen -q -t ed25519 -N '' -C impostor -f {RUN}/host_key
cat > {RUN}/sshd_config <<'CONF'
{SSHD_CONFIG.format(address=address, run=RUN)}CONF
ip addr add {address}/32 dev eth0
/usr/sbin/sshd -f {RUN}/sshd_config -E {RUN}/sshd.log </dev/null >/dev/null 2>&1
cat {RUN}/host_key.pub
"""
    public = testbed.run(IMPOSTOR_HOST, script, timeout=20).stdout.strip()
    # The controller's neighbour entry still names the real host's interface.
    subprocess.run(["ip", "neigh", "flush", "dev", BRIDGE, "to", address], check=False, timeout=10)
    return public


def give_back(testbed) -> None:
    address = testbed.hosts[HOST].address
    testbed.run(
        IMPOSTOR_HOST,
        f'kill "$(cat {RUN}/sshd.pid 2>/dev/null)" 2>/dev/null; ip addr del {address}/32 dev eth0 2>/dev/null; true',
        check=False,
        timeout=10,
    )
    testbed.run(HOST, "ip link set eth0 up", check=False, timeout=10)
    veth = next(spec.veth for spec in HOST_SPECS if spec.name == HOST)
    subprocess.run(["ip", "link", "set", veth, "up"], check=False, timeout=10)
    subprocess.run(["ip", "neigh", "flush", "dev", BRIDGE, "to", address], check=False, timeout=10)


def test_impostor_on_the_hosts_address_is_refused_before_anything_is_sent(testbed, tmp_path, monkeypatch):
    monkeypatch.setenv("SECURE_POSTFIX_CONNECT_TIMEOUT", "5")
    before = testbed.read_file(HOST, "/etc/postfix/main.cf")
    project = EngineProject(tmp_path / "mitm", "mitm")
    project.configure(bed_config(testbed, site(2097152), [HOST]))
    try:
        assert (run := project.up()).ok, run.text
        project.configure(bed_config(testbed, site(1048576), [HOST]))
        held = testbed.read_file(HOST, "/etc/postfix/main.cf")
        try:
            impostor = take_over(testbed)
            refused = project.up()
            log = testbed.run(IMPOSTOR_HOST, f"cat {RUN}/sshd.log", check=False, timeout=10).stdout
        finally:
            give_back(testbed)
        assert not refused.ok
        address = testbed.hosts[HOST].address
        message = next((ln for ln in refused.stderr.splitlines() if "host key mismatch" in ln), "")
        assert address in message, refused.stderr
        assert f"the host offered {fingerprint(impostor)}" in message, message
        assert f"the stack pins {fingerprint(testbed.hosts[HOST].host_key)}" in message, message
        # The controller did reach the impostor, and stopped there: no login, no session, no command.
        assert f"Connection from {testbed.controller_address}" in log, log
        for sign in ("Accepted", "session opened", "Starting session", "User child"):
            assert sign not in log, log
        assert testbed.read_file(HOST, "/etc/postfix/main.cf") == held
        testbed.wait_smtp(HOST, timeout=30)
        assert ehlo_size(testbed, HOST, testbed.controller_address) == "SIZE 2097152"
        # The real host back on its address: the same change goes through.
        assert (again := project.up()).ok, again.text
        assert ehlo_size(testbed, HOST, testbed.controller_address) == "SIZE 1048576"
    finally:
        give_back(testbed)
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == before
