"""A host already failing before the change: the fix is judged on its own probe, a rollback says it was failing."""

from __future__ import annotations

import time

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from tests.engine.lifecycle_support import MAIN_CF, ehlo_size, write_file
from tests.tls_files import make_cert

pytestmark = [pytest.mark.engine, pytest.mark.long(70)]

HOST = "mx"


def smtpd_dies(testbed, seconds: float = 10) -> bool:
    """True once a fresh connection gets no banner (an idle smtpd of the old generation may answer first)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if not testbed.smtp_banner(HOST, timeout=3).startswith("220 "):
                return True
        except OSError:
            return True
        time.sleep(0.5)
    return False


def test_repairing_drift_that_kills_smtpd_works_the_first_time(testbed, tmp_path):
    cert = make_cert(tmp_path / "certs", testbed.hosts[HOST].hostname)
    site = {
        "postfix_host": HOST,
        "dovecot_host": HOST,
        "sasl": {"listener": "unix"},
        "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])},
    }
    project = EngineProject(tmp_path / "drift", "drift")
    project.configure(bed_config(testbed, {"d": site}, [HOST]))
    try:
        assert (run := project.up()).ok, run.text
        # By hand: with the guide's SASL options and AUTH before STARTTLS, every new smtpd dies.
        testbed.run(HOST, "postconf -e smtpd_tls_auth_only=no && postfix reload >/dev/null 2>&1")
        assert smtpd_dies(testbed)
        # A minute later the master's throttle is over: the next client (the probe) starts an smtpd that dies.
        testbed.run(HOST, "postfix stop >/dev/null 2>&1; postfix start </dev/null >/dev/null 2>&1")
        assert (refreshed := project.refresh()).ok, refreshed.text
        run = project.up()
        assert run.ok, run.text
        assert testbed.run(HOST, "postconf -h smtpd_tls_auth_only").stdout.strip() == "yes"
        client = mail_client.connect(testbed.hosts[HOST].address, testbed.controller_address)
        try:
            lines = mail_client.ehlo_lines(client)
            assert "STARTTLS" in lines and not any(ln.startswith("AUTH") for ln in lines), lines
        finally:
            client.quit()
    finally:
        destroyed = project.destroy()
        testbed.restart_postfix(HOST)
    assert destroyed.ok, destroyed.text


def test_rollback_to_a_configuration_that_was_already_failing_says_so(testbed, tmp_path):
    before = testbed.read_file(HOST, MAIN_CF)
    testbed.run(HOST, "postconf -e smtpd_tls_security_level=bogus && postfix reload >/dev/null 2>&1")
    broken = testbed.read_file(HOST, MAIN_CF)
    project = EngineProject(tmp_path / "failing", "failing")
    project.configure(bed_config(testbed, {"f": {"postfix_host": HOST, "limits": {"message_size_limit": 1048576}}}))
    try:
        assert smtpd_dies(testbed)
        run = project.up()
        assert not run.ok
        for fragment in ["ALREADY FAILING before the change", "Invalid TLS level", testbed.hosts[HOST].address]:
            assert fragment in run.stderr, run.stderr
        assert testbed.read_file(HOST, MAIN_CF) == broken
    finally:
        write_file(testbed, HOST, MAIN_CF, before)
        destroyed = project.destroy()
        testbed.restart_postfix(HOST)
    assert destroyed.ok, destroyed.text
    assert ehlo_size(testbed, HOST) == "SIZE 10240000"
    assert testbed.read_file(HOST, MAIN_CF) == before
