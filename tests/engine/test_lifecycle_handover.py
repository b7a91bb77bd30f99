"""A hand-over between resources on one machine keeps the first originals and leaves the host as declared.

Renaming a site, or reaching the same host by another SSH port, makes the engine create the new resource
before it deletes the old one. Afterwards the host must still be hardened, and destroy must give it back
byte for byte, with Postfix answering as it did before the first up.
"""

from __future__ import annotations

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from tests.engine.lifecycle_support import ehlo_size, snapshot
from tests.tls_files import make_cert

pytestmark = [pytest.mark.engine, pytest.mark.long(60)]

HOST = "mx"
LIMITS = {"message_size_limit": 1048576, "header_size_limit": 51200, "default_process_limit": 70}
SECOND_PORT = 2222


def site(cert) -> dict:
    return {
        "postfix_host": HOST,
        "dovecot_host": HOST,
        "limits": LIMITS,
        "sasl": {"listener": "unix"},
        "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])},
    }


def assert_hardened(testbed) -> None:
    assert ehlo_size(testbed, HOST) == "SIZE 1048576"
    client = mail_client.connect(testbed.hosts[HOST].address, testbed.controller_address)
    try:
        assert "STARTTLS" in mail_client.ehlo_lines(client)
    finally:
        client.quit()
    live = testbed.run(HOST, "postconf -h header_size_limit default_process_limit smtpd_tls_auth_only").stdout
    assert live.split() == ["51200", "70", "yes"], live
    testbed.run(HOST, "test -S /var/spool/postfix/private/auth && test -s /etc/postfix/tls/secure-postfix.pem")


@pytest.fixture
def cert(tmp_path, testbed):
    return make_cert(tmp_path / "certs", testbed.hosts[HOST].hostname)


def test_rename_keeps_first_originals(testbed, tmp_path, cert):
    before, size_before = snapshot(testbed, HOST), ehlo_size(testbed, HOST)
    project = EngineProject(tmp_path / "rename", "rename")
    try:
        project.configure(bed_config(testbed, {"one": site(cert)}, [HOST]))
        assert (run := project.up()).ok, run.text
        assert_hardened(testbed)
        project.configure(bed_config(testbed, {"two": site(cert)}, [HOST]))
        assert (run := project.up()).ok, run.text
        assert run.summary.get("create") == 3 and run.summary.get("delete") == 3, run.summary
        assert_hardened(testbed)
    finally:
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
    assert snapshot(testbed, HOST) == before
    assert ehlo_size(testbed, HOST) == size_before == "SIZE 10240000"


@pytest.fixture
def second_sshd(testbed):
    """The same sshd on a second port: another way to reach the same machine."""
    config = testbed.hosts[HOST].root / "ssh" / "sshd_config"
    pid = "/run/sshd-second.pid"
    testbed.run(HOST, f"/usr/sbin/sshd -f {config} -o Port={SECOND_PORT} -o PidFile={pid} </dev/null >/dev/null 2>&1")
    try:
        yield SECOND_PORT
    finally:
        testbed.run(HOST, f"kill $(cat {pid})", check=False)


def test_change_of_port_only_keeps_the_host_hardened(testbed, tmp_path, cert, second_sshd):
    before = snapshot(testbed, HOST)
    project = EngineProject(tmp_path / "port", "port")
    config = bed_config(testbed, {"p": site(cert)}, [HOST])
    try:
        project.configure(config)
        assert (run := project.up()).ok, run.text
        config["hosts"][HOST]["port"] = second_sshd
        project.configure(config)
        assert (run := project.up()).ok, run.text
        assert run.summary.get("replace") == 2, run.summary
        assert_hardened(testbed)
        refreshed = project.refresh()
        assert refreshed.ok, refreshed.text
        assert (run := project.preview()).ok and set(run.summary) <= {"same"}, run.summary
    finally:
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
    assert snapshot(testbed, HOST) == before
