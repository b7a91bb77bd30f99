"""master.cf's submission entries survive a hand-over between resources: a renamed site, a site that grows a second
host, a host reached by another SSH port. Each time the engine creates the new resource before it deletes the old
one on the same machine; the old one's delete must not take port 587 away from the new one, and destroy must still
give master.cf back byte for byte.

The entries' first originals and owners are in the host's ledger, as main.cf's are: a create records the text the
first resource found (not the entry another resource wrote), and a delete gives back only what no other declares.
"""

from __future__ import annotations

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from tests.engine.lifecycle_support import snapshot
from tests.tls_files import make_cert
from toolchain.testbed.layout import SUBNET

pytestmark = [pytest.mark.engine, pytest.mark.long(90)]

HOST, OTHER, AUTH = "mx", "edge", "auth"
SECOND_PORT = 2222
CLIENT = f"{SUBNET}138"


def config(testbed, cert, name: str, hosts: list[str]) -> dict:
    site = {
        "postfix_hosts": hosts,
        "auth_service": "central",
        "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])},
        "services": {"submission": {}},
    }
    config = bed_config(testbed, {name: site}, [*hosts, AUTH])
    config["auth_services"] = {"central": {"dovecot_host": AUTH, "listener": "inet"}}
    return config


def submission_serves(testbed, host: str) -> bool:
    """587 answers and offers STARTTLS: the managed entry is live."""
    if mail_client.refused(testbed.hosts[host].address, 587):
        return False
    client = mail_client.connect(testbed.hosts[host].address, CLIENT, port=587)
    try:
        return "STARTTLS" in mail_client.ehlo_lines(client)
    finally:
        client.close()


@pytest.fixture
def cert(tmp_path, testbed):
    return make_cert(tmp_path / "certs", testbed.hosts[HOST].hostname)


@pytest.fixture
def before(testbed):
    return {h: snapshot(testbed, h) for h in (HOST, OTHER)}


def destroyed_as_before(testbed, project: EngineProject, before: dict[str, str]) -> None:
    run = project.destroy()
    assert run.ok, run.text
    assert {h: snapshot(testbed, h) for h in before} == before
    assert mail_client.refused(testbed.hosts[HOST].address, 587)


def test_a_renamed_site_keeps_its_submission_service(testbed, tmp_path, cert, before):
    project = EngineProject(tmp_path / "rename", "rename")
    try:
        project.configure(config(testbed, cert, "one", [HOST]))
        assert (run := project.up()).ok, run.text
        assert submission_serves(testbed, HOST)
        project.configure(config(testbed, cert, "two", [HOST]))
        assert (run := project.up()).ok, run.text
        assert run.summary.get("delete", 0) >= 2, run.summary
        assert submission_serves(testbed, HOST), "the old resource's delete removed the new one's entry"
        assert (run := project.preview(refresh=True)).ok and set(run.summary) <= {"same"}, run.text
    finally:
        destroyed_as_before(testbed, project, before)


def test_a_site_that_grows_a_host_keeps_the_first_hosts_service(testbed, tmp_path, cert, before):
    project = EngineProject(tmp_path / "grow", "grow")
    try:
        project.configure(config(testbed, cert, "g", [HOST]))
        assert (run := project.up()).ok, run.text
        project.configure(config(testbed, cert, "g", [HOST, OTHER]))
        assert (run := project.up()).ok, run.text
        # The first host's resources are renamed in place (aliases): nothing of it is replaced or deleted.
        assert "delete" not in run.summary and "replace" not in run.summary, run.summary
        assert submission_serves(testbed, HOST) and submission_serves(testbed, OTHER)
    finally:
        destroyed_as_before(testbed, project, before)


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


def test_a_new_ssh_port_keeps_the_submission_service(testbed, tmp_path, cert, before, second_sshd):
    project = EngineProject(tmp_path / "port", "port")
    wanted = config(testbed, cert, "p", [HOST])
    try:
        project.configure(wanted)
        assert (run := project.up()).ok, run.text
        wanted["hosts"][HOST]["port"] = second_sshd
        project.configure(wanted)
        assert (run := project.up()).ok, run.text
        assert run.summary.get("replace", 0) >= 2, run.summary
        assert submission_serves(testbed, HOST), "the replaced resource's delete removed the entry"
    finally:
        destroyed_as_before(testbed, project, before)
