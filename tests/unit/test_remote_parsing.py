"""Pure parsing of what hosts print."""

from __future__ import annotations

import pytest

from components.core.postfix_output import CheckRun, StagedCheck, parse_staged_check, rejection

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
    from components.remote.ssh import disabled_host_key_algorithms

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
