"""PostfixConfig through the real engine against a real Postfix: the guide's DoS limits."""

from __future__ import annotations

import re
import smtplib
import time

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, sha256

pytestmark = pytest.mark.engine

HOST = "mx"
LIMITS = {
    "message_size_limit": 1048576,
    "header_size_limit": 51200,
    "queue_minfree": 1572864,
    "default_process_limit": 50,
    "smtpd_client_connection_rate_limit": 3,
    "smtpd_client_message_rate_limit": 2,
    "anvil_rate_time_unit": "60s",
    "smtpd_client_event_limit_exceptions": "$mynetworks",
}


@pytest.fixture(scope="module")
def project(testbed, tmp_path_factory):
    project = EngineProject(tmp_path_factory.mktemp("dos"), "dos")
    project.configure(bed_config(testbed, {"solo": {"postfix_host": HOST, "limits": LIMITS}}, [HOST]))
    before = testbed.read_file(HOST, "/etc/postfix/main.cf")
    yield project
    # Whatever happened, give the host back.
    destroyed = project.destroy()
    testbed.restart_postfix(HOST)
    assert destroyed.ok, destroyed.text
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == before


def postconf_n(testbed) -> dict[str, str]:
    out = testbed.run(HOST, "postconf -n").stdout
    return {name.strip(): value.strip() for name, _, value in (line.partition("=") for line in out.splitlines())}


class TestDosLimits:
    def test_original_file_is_recorded(self, testbed, project):
        type(self).original = testbed.read_file(HOST, "/etc/postfix/main.cf")

    def test_first_preview_lists_every_directive(self, project):
        run = project.preview()
        assert run.ok, run.text
        for name, value in LIMITS.items():
            assert name in run.stdout and str(value) in run.stdout, name
        assert run.summary.get("create") == 3

    def test_up_applies_limits(self, testbed, project):
        logins = ssh_logins(testbed)
        run = project.up()
        assert run.ok, run.text
        assert ssh_logins(testbed) - logins == 1  # one SSH connection for the whole operation
        live = postconf_n(testbed)
        for name, value in LIMITS.items():
            assert live[name] == str(value)

    def test_fourth_connection_in_the_time_unit_gets_421(self, testbed):
        address, source = testbed.hosts[HOST].address, testbed.client_addresses[0]
        replies = [mail_client.banner(address, source) for _ in range(4)]
        assert [r.code for r in replies] == [220, 220, 220, 421], replies
        assert "too many connections" in replies[3].text

    def test_size_is_advertised_and_larger_message_refused(self, testbed):
        address, source = testbed.hosts[HOST].address, testbed.client_addresses[1]
        client = mail_client.connect(address, source)
        try:
            assert "SIZE 1048576" in mail_client.ehlo_lines(client)  # exact line, not a prefix
            body = "Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 1200
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("a@client.testbed.invalid", ["postmaster@mx.testbed.invalid"], body)
            assert refused.value.smtp_code == 552
        finally:
            client.close()

    def test_third_message_in_the_time_unit_is_refused(self, testbed):
        address, source = testbed.hosts[HOST].address, testbed.client_addresses[2]
        client = mail_client.connect(address, source)
        try:
            mail_client.ehlo_lines(client)
            codes = []
            for _ in range(3):
                code, _text = client.mail("a@client.testbed.invalid")
                codes.append(code)
                client.rset()
            assert codes[:2] == [250, 250] and codes[2] in (421, 450, 452), codes
        finally:
            client.close()

    def test_second_up_changes_nothing_and_reloads_nothing(self, testbed, project):
        before_file = testbed.read_file(HOST, "/etc/postfix/main.cf")
        before_reloads = _reload_count(testbed)
        logins = ssh_logins(testbed)
        run = project.up()
        assert run.ok, run.text
        assert set(run.summary) == {"same"}, run.summary
        assert testbed.read_file(HOST, "/etc/postfix/main.cf") == before_file
        assert _reload_count(testbed) == before_reloads
        assert ssh_logins(testbed) == logins  # nothing changed: no host is contacted

    def test_hand_edit_shows_in_refresh_and_up_restores(self, testbed, project):
        testbed.run(HOST, "postconf -e message_size_limit=2000000")
        run = project.refresh()
        assert run.ok, run.text
        assert run.summary.get("update") == 1 and re.search(r"\[diff: ~[\w,]*\bmain_cf\b", run.stdout), run.stdout
        preview = project.preview()
        assert 'message_size_limit: "2000000" => "1048576"' in preview.stdout, preview.stdout
        assert project.up().ok
        assert postconf_n(testbed)["message_size_limit"] == "1048576"

    def test_destroy_restores_the_original_file(self, testbed, project):
        run = project.destroy()
        assert run.ok, run.text
        assert testbed.read_file(HOST, "/etc/postfix/main.cf") == self.original
        testbed.wait_smtp(HOST)

    def test_no_secret_in_state(self, testbed, project):
        key_body = testbed.client_key_path.read_text().splitlines()[1]
        assert key_body not in project.state_text()


def ssh_logins(testbed) -> int:
    time.sleep(0.2)  # sshd writes its log line just after the login
    return (testbed.hosts[HOST].root / "log" / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def _reload_count(testbed) -> int:
    out = testbed.run(HOST, "grep -c 'reload -- version' /var/log/mail.log || true").stdout.strip()
    return int(out or 0)


def _checksum(testbed) -> str:
    return sha256(testbed.read_file(HOST, "/etc/postfix/main.cf"))
