"""A link cut between the swap of Dovecot's file or master.cf and the daemon's reload: the next contact undoes the
change it left half done (its record is in the host's ledger), and the next `up` applies it again, reload included.

Without the record, the next `up` found the file already as wanted and changed nothing: `up` said the resource was
up to date while the daemon kept serving the old configuration (Dovecot still offering LOGIN, no listener on 587).
"""

from __future__ import annotations

import pytest

from tests.engine import fault_support as fs
from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from tests.tls_files import make_cert

pytestmark = pytest.mark.engine

MX, AUTH = "mx", "auth"
PORT = 12345
DOVECOT_LEDGER = "/etc/dovecot/secure-postfix.ledger.json"
DOVECOT_FILE = "/etc/dovecot/conf.d/99-secure-postfix-auth.conf"
DOVECOT_RELOAD = fs.Point("dovecot-reload", "/usr/bin/doveadm", "reload")
# The link goes down as the reload is sent, and the reload never runs: the swap has landed, the daemon has not
# taken it.
CUT_BEFORE = f"{fs.CUT_LINK}; exit 1"
# With a service, main.cf changes too (AUTH moves to the submission services): its reload comes first.
POSTFIX_RELOAD = fs.Point("postfix-reload", "/usr/sbin/postfix", "reload", nth=2)


def config(testbed, cert, mechanisms: str, services: dict | None = None) -> dict:
    site = {
        "postfix_hosts": [MX],
        "auth_service": "central",
        "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])},
    }
    if services:
        site["services"] = services
    config = bed_config(testbed, {"site": site}, [MX, AUTH])
    config["auth_services"] = {
        "central": {"dovecot_host": AUTH, "listener": "inet", "listen_port": PORT, "auth_mechanisms": mechanisms}
    }
    return config


@pytest.fixture
def project(testbed, tmp_path):
    cert = make_cert(tmp_path / "tls", testbed.hosts[MX].hostname)
    project = EngineProject(tmp_path / "cut", "cut")
    project.configure(config(testbed, cert, "plain login"))
    assert (run := project.up()).ok, run.text
    yield project, cert
    for host in (MX, AUTH):
        fs.restore(testbed, host)
        testbed.run(host, f"umount {DOVECOT_RELOAD.program} 2>/dev/null; true", check=False, timeout=10)
    project.destroy()


def cut_up(testbed, project: EngineProject, host: str, point: fs.Point, monkeypatch, operation: str = "up"):
    """An `up` (or `operation`) whose link to `host` goes down just before `point` runs there; the link back
    afterwards."""
    fs.arm(testbed, host, point, CUT_BEFORE)
    try:
        with monkeypatch.context() as short, fs.LinkKeeper(testbed, [host]):
            short.setenv("SECURE_POSTFIX_CONNECT_TIMEOUT", "2")
            short.setenv("SECURE_POSTFIX_COMMAND_TIMEOUT", "5")
            run = getattr(project, operation)()
        assert fs.fired(testbed, host), run.text[-2000:]
    finally:
        fs.restore(testbed, host)
        testbed.run(host, f"umount {point.program} 2>/dev/null; true", check=False, timeout=10)
    assert not run.ok, "the cut-off up reported success"
    return run


def test_a_dovecot_change_cut_before_its_reload_is_undone_then_applied_with_a_reload(testbed, project, monkeypatch):
    project, cert = project
    address = testbed.hosts[AUTH].address
    assert mail_client.auth_mechanisms(address, PORT) == {"PLAIN", "LOGIN"}
    project.configure(config(testbed, cert, "plain"))
    cut_up(testbed, project, AUTH, DOVECOT_RELOAD, monkeypatch)
    # The new file is in place, the daemon still runs the old one, and the ledger says so.
    assert b"auth_mechanisms = plain\n" in testbed.read_file(AUTH, "/etc/dovecot/conf.d/99-secure-postfix-auth.conf")
    assert mail_client.auth_mechanisms(address, PORT) == {"PLAIN", "LOGIN"}
    assert b'"pending"' in testbed.read_file(AUTH, DOVECOT_LEDGER)

    again = project.up()
    assert again.ok, again.text
    assert mail_client.auth_mechanisms(address, PORT) == {"PLAIN"}
    assert "was cut off before it finished; it was undone first" in again.text
    assert b'"pending"' not in testbed.read_file(AUTH, DOVECOT_LEDGER)
    assert project.preview(expect_no_changes=True).ok


def test_a_first_submission_service_cut_before_the_reload_opens_587_at_the_next_up(testbed, project, monkeypatch):
    project, cert = project
    address = testbed.hosts[MX].address
    assert mail_client.refused(address, 587)
    project.configure(config(testbed, cert, "plain login", services={"submission": {}}))
    cut = cut_up(testbed, project, MX, POSTFIX_RELOAD, monkeypatch)
    assert b"\nsubmission inet" in testbed.read_file(MX, fs.MASTER_CF), cut.text[-3000:]
    assert mail_client.refused(address, 587), "Postfix took the new master.cf without its reload"

    again = project.up()
    assert again.ok, again.text
    assert not mail_client.refused(address, 587), "the next up left 587 closed"
    client = mail_client.connect(address, testbed.client_addresses[-2], port=587)
    try:
        assert any(ln.startswith("STARTTLS") for ln in mail_client.ehlo_lines(client))
    finally:
        client.close()
    assert "was cut off before it finished; it was undone first" in again.text
    assert b'"pending"' not in testbed.read_file(MX, fs.LEDGER)


def test_a_dovecot_destroy_cut_before_its_reload_is_undone_then_done_with_a_reload(testbed, project, monkeypatch):
    project, _ = project
    address = testbed.hosts[AUTH].address
    assert not mail_client.refused(address, PORT)
    cut = cut_up(testbed, project, AUTH, DOVECOT_RELOAD, monkeypatch, operation="destroy")
    # The file is gone, the daemon still runs it, and the ledger says so.
    gone = testbed.run(AUTH, f"test -e {DOVECOT_FILE}", check=False).returncode != 0
    assert gone, cut.text[-3000:]
    assert not mail_client.refused(address, PORT)
    assert b'"pending"' in testbed.read_file(AUTH, DOVECOT_LEDGER)

    again = project.destroy()
    assert again.ok, again.text
    assert "was cut off before it finished; it was undone first" in again.text
    assert mail_client.refused(address, PORT), "Dovecot still listens with the file it no longer has"
    left = testbed.run(AUTH, f"cat {DOVECOT_LEDGER} 2>/dev/null || true").stdout
    assert not left, left + again.text[-3000:]
