"""master.cf: managed submission entries in, out again byte for byte, bad input refused naming the service."""

from pathlib import Path

import pytest

from secure_postfix.core import mastercf as m

DEBIAN = Path("/usr/share/postfix/master.cf.dist")
SAMPLE = (
    "# header comment\n"
    "smtp      inet  n       -       y       -       -       smtpd\n"
    "#submission inet n       -       y       -       -       smtpd\n"
    "#  -o syslog_name=postfix/submission\n"
    "pickup    unix  n       -       y       60      1       pickup\n"
    "relay     unix  -       -       y       -       -       smtp\n"
    "        -o syslog_name=postfix/$service_name\n"
    "#       -o smtp_helo_timeout=5 -o smtp_connect_timeout=5\n"
    "showq     unix  n       -       y       -       -       showq\n"
)
SUBMISSION = m.Service("submission")
SUBMISSIONS = m.Service("submissions")


def desired(*services):
    return {s.key: m.render(s) for s in services}


def test_entries_are_found_with_their_continuation_lines_and_comments_are_not_entries():
    entries = m.parse(SAMPLE)
    assert [e.key for e in entries] == ["smtp/inet", "pickup/unix", "relay/unix", "showq/unix"]
    relay = "relay     unix  -       -       y       -       -       smtp\n"
    assert entries[2].text == relay + "        -o syslog_name=postfix/$service_name\n"
    assert "".join(SAMPLE[e.start : e.end] for e in entries) == "".join(e.text for e in entries)


def test_submission_renders_starttls_required_and_auth_for_authenticated_clients_only():
    text = m.render(SUBMISSION)
    assert text.startswith("submission inet n ")
    assert text.splitlines()[0].split()[-1] == "smtpd"
    for option in (
        "smtpd_tls_security_level=encrypt",
        "smtpd_sasl_auth_enable=yes",
        "smtpd_tls_auth_only=yes",
        "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
        "smtpd_client_restrictions=permit_sasl_authenticated,reject",
    ):
        assert f"  -o {option}\n" in text
    assert "wrappermode" not in text


def test_submissions_is_wrapper_mode():
    assert "  -o smtpd_tls_wrappermode=yes\n" in m.render(SUBMISSIONS)


def test_a_callers_option_overrides_the_default_in_place():
    text = m.render(m.Service("submission", options={"smtpd_client_connection_rate_limit": "10"}))
    assert text.endswith("  -o smtpd_client_connection_rate_limit=10\n")


@pytest.mark.parametrize("base", [SAMPLE, SAMPLE.removesuffix("\n"), "", "smtp inet n - y - - smtpd"])
def test_apply_then_restore_gives_the_file_back_byte_for_byte(base):
    plan = m.plan_edit(base, desired(SUBMISSION, SUBMISSIONS), {})
    assert plan.originals == {"submission/inet": None, "submissions/inet": None}
    assert {e.key for e in m.parse(plan.text)} >= {"submission/inet", "submissions/inet"}
    assert plan.text.startswith(base)
    assert m.plan_restore(plan.text, plan.originals).text == base


def test_every_unmanaged_line_and_comment_of_debians_file_is_kept():
    if not DEBIAN.exists():
        pytest.skip("Debian's master.cf.dist is not installed")
    base = DEBIAN.read_text()
    plan = m.plan_edit(base, desired(SUBMISSION, SUBMISSIONS), {})
    assert plan.text.startswith(base)
    assert m.plan_restore(plan.text, plan.originals).text == base


def test_an_existing_entry_is_replaced_in_place_and_its_original_given_back():
    hand = "submission inet n - y - - smtpd\n  -o smtpd_sasl_auth_enable=no\n"
    base = SAMPLE.replace("pickup ", hand + "pickup ", 1)
    plan = m.plan_edit(base, desired(SUBMISSION), {})
    assert plan.originals == {"submission/inet": hand}
    assert plan.text.index("submission inet") == base.index("submission inet")
    assert plan.text.replace(m.render(SUBMISSION), hand) == base
    assert m.plan_restore(plan.text, plan.originals).text == base


def test_a_second_apply_changes_nothing_and_keeps_the_first_originals():
    first = m.plan_edit(SAMPLE, desired(SUBMISSION), {})
    again = m.plan_edit(first.text, desired(SUBMISSION), first.originals)
    assert again.text == first.text and again.changes == [] and again.originals == first.originals


def test_a_service_dropped_from_the_stack_is_given_back():
    both = m.plan_edit(SAMPLE, desired(SUBMISSION, SUBMISSIONS), {})
    one = m.plan_edit(both.text, desired(SUBMISSION), both.originals)
    assert "submissions inet" not in one.text and one.originals == {"submission/inet": None}
    assert m.plan_restore(one.text, one.originals).text == SAMPLE


def test_each_change_is_one_line_per_service():
    plan = m.plan_edit(SAMPLE, desired(SUBMISSION, SUBMISSIONS), {})
    assert [c[0] for c in plan.changes] == ["submission/inet", "submissions/inet"]
    assert all("\n" not in new for _, _, new in plan.changes)


@pytest.mark.parametrize(
    ("services", "field", "words"),
    [
        ({"a": m.Service("smtp")}, "services.a", "type 'smtp' is not one of submission, submissions"),
        (
            {"a": m.Service("submission", listen="2525"), "b": m.Service("submissions", listen="2525")},
            "services.b.listen",
            "port 2525 is also used by services.a",
        ),
        ({"a": m.Service("submission", listen="99999")}, "services.a.listen", "is not a TCP port"),
        ({"a": m.Service("submission", listen="587; reboot")}, "services.a.listen", "is not PORT or ADDRESS:PORT"),
        (
            {"a": m.Service("submission", options={"smtpd_banner": "two words"})},
            "services.a.options.smtpd_banner",
            "whitespace",
        ),
        (
            {"a": m.Service("submission", options={"smtpd_banner": "x\ny"})},
            "services.a.options.smtpd_banner",
            "whitespace",
        ),
        (
            {"a": m.Service("submission", options={"no_such_parameter": "1"})},
            "services.a.options.no_such_parameter",
            "is not a parameter that Postfix knows",
        ),
        (
            {"a": m.Service("submission", options={"Bad-Name": "1"})},
            "services.a.options.Bad-Name",
            "not a Postfix parameter name",
        ),
        (
            {"a": m.Service("submission", options={"smtpd_client_connection_rate_limit": "ten"})},
            "services.a.options.smtpd_client_connection_rate_limit",
            "whole number",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_service(services, field, words):
    problems = m.service_problems(services)
    assert any(p.field == field and words in p.message for p in problems), problems


def test_a_port_taken_by_an_unmanaged_entry_is_a_clash():
    base = SAMPLE + "587       inet  n       -       y       -       -       smtpd\n"
    problems = m.service_problems({"sub": m.Service("submission")}, base)
    assert [p.field for p in problems] == ["services.sub.listen"] and "already served" in problems[0].message
    assert "587       inet" in problems[0].message or "587 inet" in problems[0].message
    assert m.service_problems({"sub": m.Service("submission", listen="2525")}, base) == []
    assert m.service_problems({"smtp": m.Service("submission", listen="25")}, SAMPLE)[0].field == "services.smtp.listen"


def test_our_own_entry_is_no_clash():
    plan = m.plan_edit(SAMPLE, desired(SUBMISSION), {})
    assert m.service_problems({"sub": SUBMISSION}, plan.text) == []


@pytest.mark.parametrize(
    ("listen", "port"), [("587", 587), ("submission", 587), ("127.0.0.1:465", 465), ("[::1]:smtps", 465), ("x", None)]
)
def test_ports_of_service_names(listen, port):
    assert m.port_of(listen) == port


def test_comments_and_blank_lines_do_not_end_an_entry_as_for_postfixs_reader():
    """readllines() skips blank and comment lines, indented or not: only a line that starts with text ends it."""
    text = "relay unix - - y - - smtp\n  # indented comment\n  \n# at the margin\n  -o stray=1\n# after\nshowq x\n"
    relay, showq = m.parse(text)
    assert relay.text == text[: text.index("# after")]
    assert m.one_line(relay.text) == "relay unix - - y - - smtp -o stray=1"
    assert showq.start == text.index("showq")
    hand = m.plan_edit(text, {"relay/unix": "relay unix - - n - - smtp\n"}, {})
    assert hand.text == "relay unix - - n - - smtp\n# after\nshowq x\n"
    assert m.plan_restore(hand.text, hand.originals).text == text


DEBIAN_HALF_COMMENTED = (
    "smtp      inet  n       -       y       -       -       smtpd\n"
    "submission inet n       -       y       -       -       smtpd\n"
    "  -o syslog_name=postfix/submission\n"
    "#  -o smtpd_tls_security_level=encrypt\n"
    "  -o smtpd_relay_restrictions=permit_mynetworks,permit\n"
    "#  -o milter_macro_daemon_name=ORIGINATING\n"
    "pickup    unix  n       -       y       60      1       pickup\n"
)


def test_a_half_commented_sample_entry_is_replaced_whole_with_no_stray_override_left_below():
    plan = m.plan_edit(DEBIAN_HALF_COMMENTED, desired(SUBMISSION), {})
    submission = next(e for e in m.parse(plan.text) if e.key == "submission/inet")
    assert "permit_mynetworks,permit" not in m.one_line(submission.text)
    assert "permit_mynetworks,permit" not in plan.text
    assert plan.text.endswith(
        "#  -o milter_macro_daemon_name=ORIGINATING\npickup    unix  n       -       y       60      1       pickup\n"
    )
    assert m.plan_restore(plan.text, plan.originals).text == DEBIAN_HALF_COMMENTED


@pytest.mark.parametrize("odd", ["\r", "\f", "\x1c", "\x85", "\u2028"])
def test_only_a_newline_ends_a_line(odd):
    text = f"relay unix - - y - - smtp{odd}showq unix n - y - - showq\n  -o stray=1\n"
    (entry,) = m.parse(text)
    assert entry.key == "relay/unix" and entry.text == text


def test_restore_reports_each_entry_it_gives_back():
    plan = m.plan_edit(SAMPLE, desired(SUBMISSION, SUBMISSIONS), {})
    restore = m.plan_restore(plan.text, plan.originals)
    assert [(key, new) for key, _, new in restore.changes] == [("submission/inet", ""), ("submissions/inet", "")]
    assert m.plan_restore(SAMPLE, plan.originals).changes == []
