"""PostfixConfig through the real engine against a real Postfix: the guide's DoS limits."""

from __future__ import annotations

import re
import smtplib

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, log_offset, log_since, ssh_logins

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


DEFAULT_SIZE = "SIZE 10240000"  # Postfix's message_size_limit default, what Debian's main.cf leaves alone


@pytest.fixture(scope="module")
def original(testbed) -> bytes:
    return testbed.read_file(HOST, "/etc/postfix/main.cf")


@pytest.fixture(scope="module")
def project(testbed, original, tmp_path_factory):
    project = EngineProject(tmp_path_factory.mktemp("dos"), "dos")
    project.configure(bed_config(testbed, {"solo": {"postfix_host": HOST, "limits": LIMITS}}, [HOST]))
    yield project
    # Whatever happened, give the host back.
    destroyed = project.destroy()
    testbed.restart_postfix(HOST)
    assert destroyed.ok, destroyed.text
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == original


def postconf_n(testbed) -> dict[str, str]:
    out = testbed.run(HOST, "postconf -n").stdout
    return {name.strip(): value.strip() for name, _, value in (line.partition("=") for line in out.splitlines())}


def ehlo(testbed, source: str) -> list[str]:
    client = mail_client.connect(testbed.hosts[HOST].address, source)
    try:
        return mail_client.ehlo_lines(client)
    finally:
        client.close()


def source(testbed, n: int) -> str:
    # Each check that anvil counts gets its own client address (README: anvil counts per client for a minute).
    return testbed.client_addresses[n]


class TestDosLimits:
    def test_host_starts_unmanaged(self, testbed, original):
        """The baseline the later checks contrast with: no limit in main.cf, smtpd advertises the default."""
        assert b"message_size_limit" not in original and b"smtpd_client_connection_rate_limit" not in original
        assert DEFAULT_SIZE in ehlo(testbed, source(testbed, 6))

    def test_first_preview_lists_every_directive_without_a_login(self, testbed, project):
        logins = ssh_logins(testbed)
        run = project.preview()
        assert run.ok, run.text
        assert ssh_logins(testbed) == logins  # README: a plain preview opens no SSH connection
        for name, value in LIMITS.items():
            assert re.search(rf"{name}\s*: \"{re.escape(str(value))}\"", run.stdout), name
        assert run.summary.get("create") == 3

    def test_up_applies_limits(self, testbed, project):
        logins = ssh_logins(testbed)
        run = project.up()
        assert run.ok, run.text
        assert ssh_logins(testbed) - logins == 1  # one SSH connection for the whole operation
        live = postconf_n(testbed)
        for name, value in LIMITS.items():
            assert live[name] == str(value)

    def test_main_cf_is_dated_back_and_the_probe_came_after_the_reload(self, testbed, project):
        """README: main.cf is dated five seconds back; the probe waits for the master's reload line."""
        age = testbed.run(HOST, "echo $(( $(date +%s) - $(stat -c %Y /etc/postfix/main.cf) ))").stdout
        assert int(age) >= 4, age
        log = testbed.run(HOST, "cat /var/log/mail.log").stdout.splitlines()
        reload_at = max(i for i, ln in enumerate(log) if "reload -- version" in ln)
        probes = [
            i for i, ln in enumerate(log) if re.search(r"smtpd\[\d+\]: connect from localhost\[127\.0\.0\.1\]", ln)
        ]
        assert probes and probes[-1] > reload_at, log[reload_at - 3 :]

    def test_fourth_connection_in_the_time_unit_gets_421(self, testbed):
        address = testbed.hosts[HOST].address
        replies = [mail_client.banner(address, source(testbed, 0)) for _ in range(4)]
        assert [r.code for r in replies] == [220, 220, 220, 421], replies
        assert "too many connections" in replies[3].text

    def test_size_is_advertised_and_larger_message_refused(self, testbed):
        client = mail_client.connect(testbed.hosts[HOST].address, source(testbed, 1))
        try:
            assert "SIZE 1048576" in mail_client.ehlo_lines(client)  # exact line, not a prefix
            body = "Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 1200
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("a@client.testbed.invalid", ["postmaster@mx.testbed.invalid"], body)  # says SIZE=
            assert refused.value.smtp_code == 552
        finally:
            client.close()

    def test_larger_message_without_declared_size_is_refused_after_data(self, testbed):
        """A client that never says SIZE= is cut off by the size of what it sends."""
        client = mail_client.connect(testbed.hosts[HOST].address, source(testbed, 3))
        try:
            mail_client.ehlo_lines(client)
            assert client.mail("a@client.testbed.invalid")[0] == 250
            assert client.rcpt("postmaster@mx.testbed.invalid")[0] == 250
            code, text = client.data("Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 1200)
            assert (code, text) == (552, b"5.3.4 Error: message file too big")
        finally:
            client.close()

    def test_header_larger_than_header_size_limit_is_cut(self, testbed):
        """One 60 KB header (over header_size_limit 51200): the message is taken, the header's excess dropped."""
        offset = log_offset(testbed, HOST)
        folded = "".join(f"\r\n\t{'h' * 990}" for _ in range(60)) + " HEADTAIL"
        client = mail_client.connect(testbed.hosts[HOST].address, source(testbed, 4))
        try:
            mail_client.ehlo_lines(client)
            message = f"Subject: header\r\nX-Big: start{folded}\r\n\r\nBODYTOKEN\r\n"
            refused = client.sendmail("a@client.testbed.invalid", ["postmaster@mx.testbed.invalid"], message)
            assert refused == {}, refused
        finally:
            client.close()
        queued = _forwarded_copy(testbed, offset)
        try:
            headers = testbed.run(HOST, f"postcat -hq {queued}").stdout
            body = testbed.run(HOST, f"postcat -bq {queued}").stdout
            assert "X-Big: start" in headers and "HEADTAIL" not in headers + body
            assert "BODYTOKEN" in body
            assert 51200 - 1000 < len(headers) < 51200 + 4096, len(headers)
        finally:
            testbed.run(HOST, f"postsuper -d {queued} >/dev/null 2>&1", check=False)

    def test_third_message_in_the_time_unit_is_refused(self, testbed):
        client = mail_client.connect(testbed.hosts[HOST].address, source(testbed, 2))
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
        testbed.run(HOST, "postconf -e message_size_limit=2000000 && postfix reload")
        run = project.refresh()
        assert run.ok, run.text
        assert run.summary.get("update") == 1 and re.search(r"\[diff: ~[\w,]*\bmain_cf\b", run.stdout), run.stdout
        logins = ssh_logins(testbed)
        preview = project.preview()
        assert ssh_logins(testbed) == logins  # a preview after refresh still reads only the state
        assert 'message_size_limit: "2000000" => "1048576"' in preview.stdout, preview.stdout
        assert project.up().ok
        assert postconf_n(testbed)["message_size_limit"] == "1048576"
        assert "SIZE 1048576" in ehlo(testbed, source(testbed, 7))  # the running smtpd, not only the file

    def test_directive_dropped_from_the_stack_is_put_back(self, testbed, project, original):
        kept = {k: v for k, v in LIMITS.items() if k not in ("message_size_limit", "queue_minfree")}
        project.configure(bed_config(testbed, {"solo": {"postfix_host": HOST, "limits": kept}}, [HOST]))
        run = project.up()
        assert run.ok, run.text
        live = postconf_n(testbed)
        assert "message_size_limit" not in live and "queue_minfree" not in live, live
        assert live["header_size_limit"] == "51200"
        assert DEFAULT_SIZE in ehlo(testbed, source(testbed, 8))

    def test_destroy_restores_the_original_file_and_the_running_smtpd(self, testbed, project, original):
        run = project.destroy()
        assert run.ok, run.text
        assert testbed.read_file(HOST, "/etc/postfix/main.cf") == original
        # As a client sees it: no rate limit (four connections from a fresh address all greeted), default SIZE.
        replies = [mail_client.banner(testbed.hosts[HOST].address, source(testbed, 5)) for _ in range(4)]
        assert [r.code for r in replies] == [220, 220, 220, 220], replies
        assert DEFAULT_SIZE in ehlo(testbed, source(testbed, 9))


def _forwarded_copy(testbed, offset: int) -> str:
    """postmaster is root's alias, forwarded off the bed and so deferred: the copy waits in the queue."""
    for _ in range(50):
        match = re.search(r"status=sent \(forwarded as (\w+)\)", log_since(testbed, HOST, offset))
        if match:
            return match.group(1)
        testbed.run(HOST, "sleep 0.1")
    raise AssertionError("the message was not forwarded: " + log_since(testbed, HOST, offset)[-2000:])


def _reload_count(testbed) -> int:
    out = testbed.run(HOST, "grep -c 'reload -- version' /var/log/mail.log || true").stdout.strip()
    return int(out or 0)
