"""The Postfix facts parsers, fed what Postfix 3.7.11 on the test bed printed (tests/fixtures/facts/postfix-3.7-*),
and the facts script's output of Debian 11's Postfix 3.5.25 and Debian 13's 3.10.13 (postfix-3.5-*, postfix-3.10-*).

Each fixture holds the command the remote layer runs, its exit code and its output, recorded on the bed's
`mx` host (the 3.5 and 3.10 ones on a Debian 11 and a Debian 13 install); the parsers are pure, so these tests
need no host.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secure_postfix.core import host_output, postfix_output, sasl_path
from secure_postfix.core import postfix_rules as rules

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "facts"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_the_facts_script_of_postfix_3_7():
    facts = host_output.parse_postfix_facts(recorded("postfix-3.7-facts.json")["output"])
    assert facts.version == "3.7.11"
    assert (facts.config_directory, facts.log_file, facts.queue_directory) == (
        "/etc/postfix",
        "/var/log/mail.log",
        "/var/spool/postfix",
    )
    assert facts.main_cf_sha256 == "b5108feea4128aac5eb45153b624d3ddef347396798ff3c6e5f42bc3bf555e44"
    # `postconf -d` of 3.7 knows about a thousand parameters, smtpd_sasl_path and the TLS ones among them.
    assert len(facts.parameters) > 1000
    assert {"smtpd_sasl_path", "smtpd_tls_protocols", "message_size_limit"} <= facts.parameters
    assert "" not in facts.parameters and not any(" " in n or "=" in n for n in facts.parameters)
    assert facts.main_cf.startswith("# See /usr/share/postfix/main.cf.dist")
    assert "myhostname = mx.testbed.invalid" in facts.main_cf


def test_a_host_without_postfix_or_main_cf_is_named():
    with pytest.raises(host_output.NoPostfix):
        host_output.parse_postfix_facts("NO-POSTFIX\n")
    head = "/etc/postfix\n3.7.11\n/var/log/mail.log\n/var/spool/postfix\n-\n"
    with pytest.raises(host_output.NoMainCf, match="/etc/postfix"):
        host_output.parse_postfix_facts(head + "--- defaults\nbiff\n--- main.cf\nNO-MAIN-CF\n")


def test_a_broken_staged_main_cf_is_refused_in_postfix_s_own_words():
    check = postfix_output.parse_staged_check(recorded("postfix-3.7-staged-check-broken.json")["output"])
    assert (check.staged.rc, check.live.rc) == (1, 0)
    refusal = postfix_output.rejection(check)
    assert refusal is not None
    assert "line 49: missing '=' after attribute name" in refusal and "this line is broken" in refusal


def test_a_warning_only_the_staged_copy_gives_is_refused():
    check = postfix_output.parse_staged_check(recorded("postfix-3.7-staged-check-warning.json")["output"])
    assert (check.staged.rc, check.live.rc) == (0, 0)
    refusal = postfix_output.rejection(check)
    assert refusal is not None and "unused parameter: smtpd_bogus_parameter=1" in refusal


def test_digests_of_a_present_and_an_absent_file():
    digests = host_output.parse_digests(recorded("postfix-3.7-digests.json")["output"])
    assert digests == {
        "/etc/postfix/main.cf": "b5108feea4128aac5eb45153b624d3ddef347396798ff3c6e5f42bc3bf555e44",
        "/etc/postfix/tls/none.pem": None,
    }


@pytest.mark.parametrize(
    ("text", "version"),
    [("3.7.11", (3, 7, 11)), ("3.6.0", (3, 6, 0)), ("3.10.2", (3, 10, 2)), ("2.11", (2, 11)), ("", None)],
)
def test_postfix_versions(text, version):
    assert rules.parse_version(text) == version


def test_the_ge_protocol_syntax_needs_postfix_3_6():
    wanted = {"smtp_tls_protocols": ">=TLSv1.2"}
    assert rules.version_problems(wanted, "3.7.11") == []
    assert rules.version_problems(wanted, "3.6.0") == []
    problems = rules.version_problems(wanted, "3.5.9")
    assert [str(p) for p in problems] == [
        "directives.smtp_tls_protocols: '>=TLSv1.2' is Postfix 3.6's syntax; Postfix 3.5.9 does not know it (its "
        "smtpd would offer no TLS at all): write '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1'"
    ]
    # The old list syntax works everywhere, and a version that cannot be read is not refused here.
    assert rules.version_problems({"smtp_tls_protocols": "!SSLv2, !SSLv3"}, "3.5.9") == []
    assert rules.version_problems(wanted, "") == []


@pytest.mark.parametrize(
    ("address", "port", "path"),
    [("10.0.0.5", 12345, "inet:10.0.0.5:12345"), ("fd00::5", 2525, "inet:[fd00::5]:2525")],
)
def test_an_inet_sasl_path_reads_back_as_it_was_written(address, port, path):
    assert sasl_path.inet(address, port) == path
    assert sasl_path.parse_inet(path) == (address, port)
    assert sasl_path.problems(path) == []


def test_a_socket_sasl_path_is_relative_to_the_queue_directory():
    assert sasl_path.unix("/var/spool/postfix/private/auth", "/var/spool/postfix") == "private/auth"
    assert sasl_path.parse_inet("private/auth") is None


# -- Postfix 3.5.25 (Debian 11) and 3.10.13 (Debian 13): postfix-3.5-facts.json, postfix-3.10-facts.json -------

POSTFIX_35 = host_output.parse_postfix_facts(recorded("postfix-3.5-facts.json")["output"])
POSTFIX_37 = host_output.parse_postfix_facts(recorded("postfix-3.7-facts.json")["output"])
POSTFIX_310 = host_output.parse_postfix_facts(recorded("postfix-3.10-facts.json")["output"])


@pytest.mark.parametrize(
    ("facts", "version"), [(POSTFIX_35, "3.5.25"), (POSTFIX_37, "3.7.11"), (POSTFIX_310, "3.10.13")]
)
def test_the_postfix_facts_script_of_each_version(facts, version):
    assert facts.version == version
    # Debian's inet_interfaces = all: the probes ask port 25 on the loopback address.
    assert (facts.listen_address, facts.smtp.address, facts.smtp.port) == ("127.0.0.1", "127.0.0.1", 25)
    assert (facts.config_directory, facts.log_file, facts.queue_directory) == (
        "/etc/postfix",
        "/var/log/mail.log",
        "/var/spool/postfix",
    )
    assert {"smtpd_sasl_path", "smtpd_tls_protocols", "smtpd_tls_mandatory_protocols"} <= facts.parameters
    assert facts.main_cf.startswith("# See /usr/share/postfix/main.cf.dist")


def test_the_facts_of_3_10_know_its_new_parameters_and_those_of_3_5_its_old_names():
    assert {"smtpd_hide_client_session", "tls_required_enable"} <= POSTFIX_310.parameters
    assert not {"smtpd_hide_client_session", "tls_required_enable"} & POSTFIX_37.parameters
    assert "postscreen_blacklist_action" in POSTFIX_35.parameters
    assert "postscreen_blacklist_action" not in POSTFIX_37.parameters
    # Debian 13 sets compatibility_level = 3.9 in main.cf (Debian 12: 3.6, Debian 11: 2).
    assert "compatibility_level = 3.9" in POSTFIX_310.main_cf
    assert "compatibility_level = 2" in POSTFIX_35.main_cf


@pytest.mark.parametrize(("series", "facts"), [((3, 5), POSTFIX_35), ((3, 10), POSTFIX_310)])
def test_each_shipped_parameter_list_is_that_version_s_postconf_d(series, facts):
    """The shipped lists were read with Debian 12's master.cf; the hosts' own with theirs, which names fewer
    pipe services on Debian 13 (no maildrop, uucp, ...): beyond those, the two agree."""
    shipped = rules.series_parameters(series)
    per_service = ("bsmtp_", "ifmail_", "maildrop_", "mailman_", "scalemail-backend_", "uucp_")
    assert {n for n in shipped ^ facts.parameters if not n.startswith(per_service)} == set()


def test_postfix_3_10_added_parameters_and_dropped_none_of_3_7():
    added = rules.series_parameters((3, 10)) - rules.series_parameters((3, 7))
    assert len(added) == 26 and "smtpd_hide_client_session" in added
    assert rules.series_parameters((3, 7)) <= rules.series_parameters((3, 10))
    # 3.5's names that 3.6 and 3.7 renamed (the old ones still expand in 3.7's own defaults).
    renamed = rules.series_parameters((3, 5)) - rules.series_parameters((3, 7))
    assert renamed <= rules.legacy_parameters()
