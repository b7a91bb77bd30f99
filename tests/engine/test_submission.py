"""Submission on the wire: 25 without AUTH, 587 STARTTLS then AUTH, 465 TLS from the first byte, on two MX hosts
sharing one Dovecot on a third host over TCP; master.cf comes back byte for byte."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import smtplib
from pathlib import Path

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, dovecot_password, ssh_logins
from tests.tls_files import der_fingerprint, make_cert
from toolchain.testbed.layout import SUBNET

pytestmark = pytest.mark.engine

MX_HOSTS = ("mx", "edge")
DOVECOT = "auth"
USER = "dave"
SNAPSHOT = (
    "find /etc/postfix /etc/dovecot -printf '%p %m %u:%g\\n' | sort; "
    "find /etc/postfix /etc/dovecot -type f -print0 | sort -z | xargs -0 sha256sum"
)
SERVICES = {"submission": {"limits": {"smtpd_client_connection_rate_limit": 30}}, "submissions": {}}
SOURCES = itertools.cycle(range(100, 139))


def source() -> str:
    return f"{SUBNET}{next(SOURCES)}"


def snapshot(testbed) -> dict[str, str]:
    return {h: testbed.run(h, "set -o pipefail; " + SNAPSHOT).stdout for h in (*MX_HOSTS, DOVECOT)}


@pytest.fixture(scope="module")
def password(testbed) -> str:
    return dovecot_password(testbed, (DOVECOT,), USER, "Dovecot password (submission)")


@pytest.fixture(scope="module")
def cert(tmp_path_factory, testbed):
    return make_cert(tmp_path_factory.mktemp("submission-cert"), testbed.hosts["mx"].hostname)


def config_for(testbed, cert: tuple[Path, Path], **site) -> dict:
    tls = {"cert_file": str(cert[0]), "key_file": str(cert[1])}
    sites = {"sub": {"postfix_hosts": list(MX_HOSTS), "auth_service": "central", "tls": tls, **site}}
    config = bed_config(testbed, sites)
    config["auth_services"] = {"central": {"dovecot_host": DOVECOT, "listener": "inet"}}
    return config


@pytest.fixture(scope="module")
def project(testbed, password, cert, tmp_path_factory):
    before = snapshot(testbed)
    project = EngineProject(tmp_path_factory.mktemp("submission"), "submission")
    project.configure(config_for(testbed, cert, services=SERVICES))
    yield project, before
    project.destroy()


def plain(word: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{USER}\0{word}".encode()).decode()


def auth_lines(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.startswith("AUTH")]


def implicit_tls(address: str) -> smtplib.SMTP_SSL:
    client = smtplib.SMTP_SSL(
        local_hostname="client.testbed.invalid",
        timeout=mail_client.TIMEOUT,
        source_address=(source(), 0),
        context=mail_client.tls_context(),
    )
    client._host = address  # the TLS handshake's server name; connect() alone does not set it
    code, _ = client.connect(address, 465)
    assert code == 220
    return client


class TestSubmission:
    def test_preview_shows_each_service_as_the_stack_declares_it(self, project):
        proj, _ = project
        run = proj.preview()
        assert run.ok, run.text
        for service in ("submission", "submissions"):
            lines = [ln for ln in run.stdout.splitlines() if re.match(rf"\s+{service}\s*: {{", ln)]
            # one per host; the rendered master.cf line is an output, not restated in the diff
            assert len(lines) >= 2, run.stdout
        assert "smtpd -o syslog_name=" not in run.stdout

    def test_up(self, project):
        proj, _ = project
        run = proj.up()
        assert run.ok, run.text

    @pytest.mark.parametrize("host", MX_HOSTS)
    def test_port_25_offers_no_auth_and_takes_local_mail(self, testbed, project, host):
        client = mail_client.connect(testbed.hosts[host].address, source())
        try:
            assert auth_lines(mail_client.ehlo_lines(client)) == []
            assert client.starttls(context=mail_client.tls_context())[0] == 220
            assert auth_lines(mail_client.ehlo_lines(client)) == []
            fqdn = testbed.run(host, "postconf -h myhostname").stdout.strip()
            refused = client.sendmail("someone@example.org", [f"postmaster@{fqdn}"], b"Subject: hi\r\n\r\nhello\r\n")
            assert refused == {}
        finally:
            client.close()

    @pytest.mark.parametrize("host", MX_HOSTS)
    def test_port_587_auth_only_after_starttls(self, testbed, password, cert, project, host):
        address = testbed.hosts[host].address
        client = mail_client.connect(address, source(), port=587)
        try:
            assert auth_lines(mail_client.ehlo_lines(client)) == []
            assert client.docmd("MAIL", "FROM:<dave@example.org>")[0] == 530  # STARTTLS first
            assert client.starttls(context=mail_client.tls_context())[0] == 220
            assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
            assert hashlib.sha256(client.sock.getpeercert(binary_form=True)).digest() == der_fingerprint(cert[0])
            assert auth_lines(mail_client.ehlo_lines(client)) == ["AUTH PLAIN LOGIN"]
            assert client.docmd("AUTH", plain(password + "x"))[0] == 535
            assert client.docmd("AUTH", plain(password))[0] == 235
            assert client.docmd("MAIL", "FROM:<dave@example.org>")[0] == 250
            assert client.docmd("RCPT", "TO:<friend@example.net>")[0] == 250
        finally:
            client.close()

    @pytest.mark.parametrize("host", MX_HOSTS)
    def test_port_587_denies_relay_without_auth(self, testbed, project, host):
        client = mail_client.connect(testbed.hosts[host].address, source(), port=587)
        try:
            assert client.starttls(context=mail_client.tls_context())[0] == 220
            mail_client.ehlo_lines(client)
            assert client.docmd("MAIL", "FROM:<dave@example.org>")[0] == 250
            code, text = client.docmd("RCPT", "TO:<friend@example.net>")
            assert code == 554 and b"5.7.1" in text, (code, text)
        finally:
            client.close()

    @pytest.mark.parametrize("host", MX_HOSTS)
    def test_port_465_is_tls_from_the_first_byte(self, testbed, password, cert, project, host):
        client = implicit_tls(testbed.hosts[host].address)
        try:
            assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
            assert hashlib.sha256(client.sock.getpeercert(binary_form=True)).digest() == der_fingerprint(cert[0])
            lines = mail_client.ehlo_lines(client)
            assert auth_lines(lines) == ["AUTH PLAIN LOGIN"] and "STARTTLS" not in lines
            assert client.docmd("AUTH", plain(password + "x"))[0] == 535
            assert client.docmd("AUTH", plain(password))[0] == 235
        finally:
            client.close()

    def test_the_service_limit_is_an_override_of_that_service_only(self, testbed, project):
        entry = testbed.run("mx", "postconf -P submission/inet/smtpd_client_connection_rate_limit").stdout
        assert entry.strip() == "submission/inet/smtpd_client_connection_rate_limit = 30"
        assert testbed.run("mx", "postconf -h smtpd_sasl_auth_enable").stdout.strip() == "no"

    def test_refresh_sees_a_hand_edit_and_up_repairs_it(self, testbed, project):
        proj, _ = project
        testbed.run(
            "mx", "sed -i 's#^  -o smtpd_tls_auth_only=yes#  -o smtpd_tls_auth_only=no#' /etc/postfix/master.cf"
        )
        run = proj.preview(refresh=True)
        assert run.ok, run.text
        changed = [ln for ln in run.stdout.splitlines() if "submission/inet" in ln and "smtpd_tls_auth_only=no" in ln]
        assert changed, run.stdout
        # The drift line says how the entry differs on the host (the sed edited both entries).
        assert "on the host only: -o smtpd_tls_auth_only=no; missing on the host: -o smtpd_tls_auth_only=yes" in (
            run.stdout
        )
        assert proj.up(refresh=True).ok
        assert b"\n  -o smtpd_tls_auth_only=no" not in testbed.read_file("mx", "/etc/postfix/master.cf")

    def test_destroy_leaves_all_three_hosts_as_they_were(self, testbed, project):
        proj, before = project
        run = proj.destroy()
        assert run.ok, run.text
        assert snapshot(testbed) == before
        for host in MX_HOSTS:
            assert mail_client.refused(testbed.hosts[host].address, 587)
            assert mail_client.refused(testbed.hosts[host].address, 465)


@pytest.mark.parametrize(
    ("service", "fragment"),
    [
        ({"submission": {"options": {"smtpd_banner": "two words"}}}, "services.submission.options.smtpd_banner"),
        ({"submission": {"options": {"smtpd_no_such_thing": "1"}}}, "services.submission.options.smtpd_no_such"),
        ({"submission": {"listen": "25"}}, "services.submission.listen"),
        ({"submission": {}, "alt": {"type": "submissions", "listen": "587"}}, "port 587 is also used"),
    ],
)
def test_bad_service_input_is_refused_at_preview_naming_service_and_host(testbed, cert, tmp_path, service, fragment):
    project = EngineProject(tmp_path, "bad")
    project.configure(config_for(testbed, cert, services=service))
    logins = ssh_logins(testbed)
    run = project.preview()
    assert not run.ok
    # The engine stops at the first host refused; its error names the host and the service.
    named = [h for h in MX_HOSTS if f"{h} ({testbed.hosts[h].address}): services." in run.stderr]
    assert named and fragment in run.stderr, run.stderr
    assert ssh_logins(testbed) == logins


def test_an_unknown_service_type_is_refused_at_preview_naming_the_key(testbed, cert, tmp_path):
    project = EngineProject(tmp_path, "badtype")
    project.configure(config_for(testbed, cert, services={"smtp": {}}))
    run = project.preview()
    assert not run.ok and "secure-postfix:sites.sub.services.smtp.type is 'smtp'" in run.stderr, run.stderr
