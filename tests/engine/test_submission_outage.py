"""README, "When Dovecot is down", with AUTH on submission only: port 25 is out of it, 587 fails gently."""

from __future__ import annotations

import base64
import itertools
import smtplib
import ssl
import time

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, dovecot_password, log_offset, log_since
from tests.tls_files import make_cert
from toolchain.testbed.layout import SUBNET

pytestmark = [pytest.mark.engine, pytest.mark.long(150)]

MX, DOVECOT, USER = "mx", "auth", "erin"
OUTAGE_SECONDS = 120  # two service_throttle_time periods: a throttle of port 25 could not hide in it
SOURCES = itertools.cycle(range(100, 139))


def source() -> str:
    return f"{SUBNET}{next(SOURCES)}"


@pytest.fixture(scope="module")
def password(testbed) -> str:
    return dovecot_password(testbed, (DOVECOT,), USER, "Dovecot password (outage)")


@pytest.fixture(scope="module")
def project(testbed, password, tmp_path_factory):
    cert, key = make_cert(tmp_path_factory.mktemp("outage-cert"), testbed.hosts[MX].hostname)
    tls = {"cert_file": str(cert), "key_file": str(key)}
    site = {"postfix_hosts": [MX], "auth_service": "central", "tls": tls, "services": {"submission": {}}}
    config = bed_config(testbed, {"out": site}, [MX, DOVECOT])
    config["auth_services"] = {"central": {"dovecot_host": DOVECOT, "listener": "inet"}}
    project = EngineProject(tmp_path_factory.mktemp("outage"), "outage")
    project.configure(config)
    run = project.up()
    assert run.ok, run.text
    yield project
    project.destroy()


def plain(word: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{USER}\0{word}".encode()).decode()


def submission_client(testbed, timeout: float = 5) -> smtplib.SMTP:
    client = mail_client.connect(testbed.hosts[MX].address, source(), port=587, timeout=timeout)
    client.ehlo()
    assert client.starttls(context=mail_client.tls_context())[0] == 220
    return client


def fresh_submission_auth(testbed, word: str) -> str:
    """One new client on 587: what it gets for AUTH."""
    try:
        client = submission_client(testbed)
    except TimeoutError:
        return "timed out before the banner"
    except (smtplib.SMTPException, OSError, AssertionError) as exc:
        return f"no session ({type(exc).__name__})"
    try:
        client.ehlo()
        return f"AUTH {client.docmd('AUTH', plain(word))[0]}"
    except (smtplib.SMTPServerDisconnected, ConnectionResetError, ssl.SSLError, TimeoutError):
        return "closed after STARTTLS"
    finally:
        client.close()


def port_25_takes_mail(testbed, fqdn: str) -> tuple[int, dict]:
    client = mail_client.connect(testbed.hosts[MX].address, source(), timeout=5)
    try:
        # As a peer MX does: STARTTLS first (an smtpd that wanted Dovecot would die right after it).
        client.ehlo()
        assert client.starttls(context=mail_client.tls_context())[0] == 220
        refused = client.sendmail("a@example.org", [f"postmaster@{fqdn}"], b"Subject: outage\r\n\r\nx\r\n")
        return 220, refused
    finally:
        client.close()


def test_port_25_keeps_taking_mail_while_587_fails_auth_gently(testbed, password, project):
    fqdn = testbed.run(MX, "postconf -h myhostname").stdout.strip()
    testbed.restart_postfix(MX)  # no idle smtpd left over: each one below starts fresh
    held = submission_client(testbed, timeout=mail_client.TIMEOUT)
    offset = log_offset(testbed, MX)
    seen_587: list[str] = []
    try:
        assert "AUTH PLAIN LOGIN" in mail_client.ehlo_lines(held)
        testbed.run(DOVECOT, "doveadm stop >/dev/null 2>&1; pkill -x auth; sleep 0.5; ! pgrep -x dovecot")
        code, text = held.docmd("AUTH", plain(password))
        assert code == 454 and text.startswith(b"4.7.0"), (code, text)
        held.close()
        deadline = time.monotonic() + OUTAGE_SECONDS
        rounds = 0
        while time.monotonic() < deadline:
            assert port_25_takes_mail(testbed, fqdn) == (220, {}), rounds
            seen_587.append(fresh_submission_auth(testbed, password))
            rounds += 1
            time.sleep(5)
        log = log_since(testbed, MX, offset)
        assert rounds >= 10
        assert "AUTH 235" not in seen_587, seen_587
        # The submission smtpd logs as postfix/submission/smtpd; port 25's never died.
        assert not [ln for ln in log.splitlines() if "postfix/smtpd[" in ln and "fatal:" in ln], log
    finally:
        testbed.run(DOVECOT, "pgrep -x dovecot >/dev/null || dovecot </dev/null >/dev/null 2>&1")
    # Back without any restart of Postfix: at most one service_throttle_time (60 s) on 587.
    deadline = time.monotonic() + 75
    while fresh_submission_auth(testbed, password) != "AUTH 235":
        assert time.monotonic() < deadline, seen_587
        time.sleep(2)
    print("587 during the outage:", sorted(set(seen_587)))
