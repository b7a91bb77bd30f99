"""master.cf as Postfix reads it: entries grouped the way its reader groups them, drift judged by `postconf -M`,
and the staged check of master.cf made like main.cf's (the copy bound in place, the live config as its baseline).

Postfix reads past comment and blank lines inside an entry: a live `-o` line below a commented-out one still belongs
to the entry above. Cut there, the managed entry kept a stray override for Postfix while state, refresh and the probe
showed the hardened text.
"""

from __future__ import annotations

import os
import time

import pytest

from secure_postfix.remote.postfix_host import PostfixError, PostfixHost
from secure_postfix.remote.ssh import Session
from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, bed_target
from tests.tls_files import make_cert
from toolchain.testbed.layout import SUBNET

pytestmark = pytest.mark.engine

HOST = "edge"
MASTER_CF = "/etc/postfix/master.cf"
# Debian's sample, uncommented by hand line by line, one line left commented in the middle.
HALF_COMMENTED = (
    b"submission inet n       -       y       -       -       smtpd\n"
    b"  -o syslog_name=postfix/submission\n"
    b"#  -o smtpd_tls_security_level=encrypt\n"
    b"  -o smtpd_relay_restrictions=permit_mynetworks,permit\n"
    b"#  -o milter_macro_daemon_name=ORIGINATING\n"
)
# An unmanaged entry with a warning of its own: `postconf -M` on the live config already says it.
WARNED = b"secure-postfix-test unix - - y - - smtp\n  -o secure_postfix_unknown=1\n"


def config(testbed, cert) -> dict:
    site = {
        "postfix_hosts": [HOST],
        "auth_service": "central",
        "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])},
        "services": {"submission": {}},
    }
    config = bed_config(testbed, {"grouped": site}, [HOST, "auth"])
    config["auth_services"] = {"central": {"dovecot_host": "auth", "listener": "inet"}}
    return config


CLIENT = f"{SUBNET}139"


def mail_before_starttls(address: str) -> int:
    """What 587 answers a MAIL FROM sent in the clear: 530 while the service requires TLS."""
    client = mail_client.connect(address, CLIENT, port=587)
    try:
        mail_client.ehlo_lines(client)
        return client.docmd("MAIL", "FROM:<dave@example.org>")[0]
    finally:
        client.close()


def relay_refused(address: str) -> bool:
    """587 over TLS without AUTH: mail to another domain is refused (5.7.1), not relayed."""
    client = mail_client.connect(address, CLIENT, port=587)
    try:
        assert client.starttls(context=mail_client.tls_context())[0] == 220
        mail_client.ehlo_lines(client)
        assert client.docmd("MAIL", "FROM:<dave@example.org>")[0] == 250
        code, text = client.docmd("RCPT", "TO:<friend@example.net>")
        return code == 554 and b"5.7.1" in text
    finally:
        client.close()


def as_read(testbed, what: str) -> str:
    return testbed.run(HOST, f"postconf -P submission/inet/{what}").stdout.strip()


@pytest.fixture
def master_cf(testbed):
    before = testbed.read_file(HOST, MASTER_CF)
    yield before
    (testbed.hosts[HOST].root / MASTER_CF.lstrip("/")).write_bytes(before)
    testbed.run(HOST, "postfix reload", check=False)
    assert testbed.run(HOST, "ls -A /etc/postfix | grep -c secure-postfix-stage || true").stdout.strip() == "0"


@pytest.fixture
def project(testbed, tmp_path, master_cf):
    cert = make_cert(tmp_path / "tls", testbed.hosts[HOST].hostname)
    project = EngineProject(tmp_path / "grouped", "grouped")
    project.configure(config(testbed, cert))
    yield project
    assert project.destroy().ok


def test_a_half_commented_entry_is_taken_over_whole_and_given_back_byte_for_byte(testbed, master_cf, project):
    (testbed.hosts[HOST].root / MASTER_CF.lstrip("/")).write_bytes(master_cf + HALF_COMMENTED + WARNED)
    assert as_read(testbed, "smtpd_relay_restrictions").endswith("= permit_mynetworks,permit")
    # The live config's own warning (of an entry not ours) does not refuse the change.
    run = project.up()
    assert run.ok, run.text
    assert as_read(testbed, "smtpd_relay_restrictions").endswith("= permit_sasl_authenticated,reject")
    assert "permit_mynetworks,permit" not in testbed.read_file(HOST, MASTER_CF).decode()
    assert relay_refused(testbed.hosts[HOST].address)
    assert project.destroy().ok
    assert testbed.read_file(HOST, MASTER_CF) == master_cf + HALF_COMMENTED + WARNED


def test_a_stray_override_below_a_comment_is_drift_and_up_removes_it(testbed, master_cf, project):
    assert (run := project.up()).ok, run.text
    address = testbed.hosts[HOST].address
    assert mail_before_starttls(address) == 530
    managed = testbed.read_file(HOST, MASTER_CF)
    # A hand edit below the managed entry, after a comment: Postfix joins it to the entry.
    edited = testbed.hosts[HOST].root / MASTER_CF.lstrip("/")
    edited.write_bytes(managed + b"# relaxed for a test\n  -o smtpd_tls_security_level=may\n")
    then = time.time() - 10
    os.utime(edited, (then, then))  # whole already: the master need not wait for it to settle
    testbed.run(HOST, "postfix reload")
    # An idle smtpd of the old generation may still take the next connection: the edit shows once a new one serves.
    deadline = time.monotonic() + 15
    while mail_before_starttls(address) != 250:
        assert time.monotonic() < deadline, "the hand edit was not served within 15 s of the reload"
        time.sleep(0.5)
    run = project.preview(refresh=True)
    assert run.ok, run.text
    assert "on the host only: -o smtpd_tls_security_level=may" in run.stdout, run.stdout
    assert (run := project.up(refresh=True)).ok, run.text
    assert mail_before_starttls(address) == 530
    assert b"smtpd_tls_security_level=may" not in testbed.read_file(HOST, MASTER_CF)


def test_the_staged_master_cf_is_judged_against_the_live_config_and_read_back(testbed, master_cf):
    live = master_cf + WARNED
    (testbed.hosts[HOST].root / MASTER_CF.lstrip("/")).write_bytes(live)
    target = bed_target(testbed, HOST, connect_timeout=5.0, command_timeout=30.0)
    with Session(target) as s:
        host = PostfixHost(s)
        # The live warning again, with the file otherwise changed: accepted, and the entries come back as read.
        entries = host.check_staged_master((live + HALF_COMMENTED).decode(), "/etc/postfix")
        submission = [ln for ln in entries.splitlines() if ln.startswith("submission ")]
        assert submission and submission[0].endswith("-o smtpd_relay_restrictions=permit_mynetworks,permit")
        # A warning of its own: refused, quoting Postfix with the real path.
        with pytest.raises(PostfixError) as refused:
            host.check_staged_master(
                (live + b"x unix - - y - - smtp\n  -o secure_postfix_other=1\n").decode(), "/etc/postfix"
            )
    message = str(refused.value)
    assert message.startswith(f"{testbed.hosts[HOST].address}: Postfix rejects the new master.cf: ")
    assert f"{MASTER_CF}: unused parameter: secure_postfix_other=1" in message
    assert "secure_postfix_unknown" not in message
