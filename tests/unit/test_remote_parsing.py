"""Pure parsing of what hosts print."""

from __future__ import annotations

import pytest

from secure_postfix.core.postfix_output import CheckRun, StagedCheck, parse_staged_check, rejection

DUP_LIVE = "postconf: warning: /etc/postfix/main.cf, line 50: overriding earlier entry: x_limit=5"
DUP_STAGED = "/usr/sbin/postconf: warning: /etc/postfix/main.cf, line 51: overriding earlier entry: x_limit=5"


def check(live: list[str], staged: list[str], rc: int = 0) -> StagedCheck:
    return StagedCheck(CheckRun(tuple(live), 0), CheckRun(tuple(staged), rc))


def test_report_is_parsed_into_live_and_staged_runs():
    text = f"--- live\n{DUP_LIVE}\r\n--- rc 0\n--- staged\n\npostfix: fatal: bad\n--- rc 1\n"
    report = parse_staged_check(text)
    assert report.live == CheckRun((DUP_LIVE,), 0)
    assert report.staged == CheckRun(("postfix: fatal: bad",), 1)


def test_a_report_cut_short_is_an_error():
    with pytest.raises(ValueError, match="staged"):
        parse_staged_check("--- live\n--- rc 0\n--- staged\nsomething\n")


def test_line_numbers_and_program_folder_do_not_make_a_warning_new():
    assert rejection(check([DUP_LIVE], [DUP_STAGED, DUP_STAGED])) is None


def test_a_warning_the_change_brings_is_refused_once():
    unused = "postconf: warning: /etc/postfix/main.cf: unused parameter: bogus=1"
    assert rejection(check([DUP_LIVE], [DUP_STAGED, unused, unused])) == unused


def test_a_failure_quotes_the_fatal_line():
    fatal = "postfix: fatal: bad numerical configuration: message_size_limit = abc"
    assert rejection(check([DUP_LIVE], [DUP_STAGED, fatal], rc=1)) == fatal


def test_a_failure_without_message_says_so():
    assert "exit code 1 and no message" in (rejection(check([], [], rc=1)) or "")


def test_duplicates_put_back_on_purpose_are_not_new():
    assert rejection(check([], [DUP_STAGED]), restored=("x_limit",)) is None
    assert rejection(check([], [DUP_STAGED])) == DUP_STAGED


def test_host_key_algorithms_follow_the_pinned_types():
    from secure_postfix.remote.ssh import disabled_host_key_algorithms

    assert disabled_host_key_algorithms([]) == []
    left_out = disabled_host_key_algorithms(["ecdsa-sha2-nistp256"])
    assert "ssh-ed25519" in left_out and "ecdsa-sha2-nistp256" not in left_out
    rsa = disabled_host_key_algorithms(["ssh-rsa"])
    assert not {"rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"} & set(rsa) and "ssh-ed25519" in rsa
    assert set(disabled_host_key_algorithms(["ssh-ed25519", "ssh-rsa"])) == {
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-dss",
    }


# -- the facts scripts, digests, log lines, Dovecot's auth handshake ------------------------------

from secure_postfix.core import host_output as ho  # noqa: E402

POSTFIX_FACTS = (
    "/etc/postfix\n3.7.11\n/var/log/mail.log\n/var/spool/postfix\nabc123\n"
    "--- defaults\n2bounce_notice_recipient \nalias_maps \n"
    "--- main.cf\n# a comment\nmyhostname = mx\n"
)


def test_postfix_facts_are_read():
    facts = ho.parse_postfix_facts(POSTFIX_FACTS)
    assert facts.config_directory == "/etc/postfix" and facts.version == "3.7.11"
    assert facts.log_file == "/var/log/mail.log" and facts.queue_directory == "/var/spool/postfix"
    assert facts.main_cf_sha256 == "abc123"
    assert facts.parameters == {"2bounce_notice_recipient", "alias_maps"}
    assert facts.main_cf == "# a comment\nmyhostname = mx\n"


def test_postfix_facts_without_log_or_main_cf():
    facts = ho.parse_postfix_facts(POSTFIX_FACTS.replace("/var/log/mail.log", ""))
    assert facts.log_file is None
    with pytest.raises(ho.NoMainCf, match="/etc/postfix"):
        ho.parse_postfix_facts(POSTFIX_FACTS.split("--- main.cf")[0] + "--- main.cf\nNO-MAIN-CF\n")
    with pytest.raises(ho.NoPostfix):
        ho.parse_postfix_facts("NO-POSTFIX\n")


def test_dovecot_facts_are_read():
    out = "2.3.19.1 (9b53102964)\nincluded\n/var/log/dovecot.log\nrunning\nfeed\n--- managed file\nservice auth {}\n"
    facts = ho.parse_dovecot_facts(out)
    assert facts.version_text.startswith("2.3.19.1") and facts.conf_d_included and facts.running
    assert facts.log_file == "/var/log/dovecot.log" and facts.current == "service auth {}\n"
    assert facts.current_sha256 == "feed"
    absent = ho.parse_dovecot_facts("none\nmissing\nsyslog\nstopped\n-\n")
    assert (absent.current, absent.current_sha256, absent.log_file, absent.running) == (None, "-", None, False)


def test_digests_of_present_and_absent_files():
    out = "aa11  /etc/postfix/tls/secure-postfix.crt\n- /etc/postfix/tls/secure-postfix.key\n"
    assert ho.parse_digests(out) == {
        "/etc/postfix/tls/secure-postfix.crt": "aa11",
        "/etc/postfix/tls/secure-postfix.key": None,
    }


def test_log_lines_that_count_as_failures():
    lines = [
        "postfix/smtpd[1]: fatal: no SASL authentication mechanisms",
        "postfix/smtpd[2]: warning: hostname does not resolve",
        "postfix/master[3]: panic: something",
        "postfix/cleanup[4]: info: header Subject: a fatalist: nothing",
    ]
    assert ho.postfix_fatal_lines(lines) == [lines[0], lines[2]]
    dovecot = ["auth: Fatal: Unknown authentication mechanism 'BOGUS'", "master: Error: service(auth): x", "Info: ok"]
    assert ho.dovecot_error_lines(dovecot) == dovecot[:2]


def test_auth_handshake_replies():
    assert ho.auth_handshake_mechanisms(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\n") is None  # not over yet
    full = b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t1\nCUID\t2\nDONE\n"
    assert ho.auth_handshake_mechanisms(full) == {"PLAIN", "LOGIN"}
    with pytest.raises(ho.NotDovecotAuth, match="220 mx ESMTP"):
        ho.auth_handshake_mechanisms(b"220 mx ESMTP Postfix\r\n")
