"""The staged check judges the staged main.cf alone, and only for what the change brings."""

from __future__ import annotations

import pytest

from secure_postfix.core import check_scope
from secure_postfix.remote.postfix_host import PostfixError, PostfixHost
from secure_postfix.remote.ssh import Session, SshTarget
from tests.engine.harness import EngineProject, bed_config, bed_target

pytestmark = pytest.mark.engine

HOST = "mx"
MAIN_CF = "/etc/postfix/main.cf"
DUPLICATE = b"smtpd_client_connection_rate_limit = 5\nsmtpd_client_connection_rate_limit = 7\n"


def target(testbed) -> SshTarget:
    return bed_target(testbed, HOST, connect_timeout=5.0, command_timeout=30.0)


@pytest.fixture
def original(testbed):
    before = testbed.read_file(HOST, MAIN_CF)
    yield before
    (testbed.hosts[HOST].root / "etc/postfix/main.cf").write_bytes(before)
    assert testbed.run(HOST, "ls -A /etc/postfix | grep -c secure-postfix-stage || true").stdout.strip() == "0"


def live_with_duplicate(testbed, original: bytes) -> None:
    (testbed.hosts[HOST].root / "etc/postfix/main.cf").write_bytes(original + DUPLICATE)


def test_staged_check_never_reads_the_live_file(testbed, original):
    live_with_duplicate(testbed, original)
    with Session(target(testbed)) as s:
        host = PostfixHost(s)
        # A warning of its own makes the check read the live file too, for comparison.
        report = host.staged_check_report((original + b"secure_postfix_unknown = 1\n").decode(), "/etc/postfix")
        # The live run sees the live file's duplicate; the staged run, reading only the staged copy, does not.
        assert any("overriding earlier entry: smtpd_client_connection_rate_limit" in ln for ln in report.live.lines)
        assert report.staged.rc == 0
        assert any("unused parameter: secure_postfix_unknown" in ln for ln in report.staged.lines)
        assert not [ln for ln in report.staged.lines if "overriding earlier entry" in ln], report.staged.lines
        host.check_staged(original.decode(), "/etc/postfix")


def test_only_warnings_the_change_brings_count(testbed, original):
    live_with_duplicate(testbed, original)
    with Session(target(testbed)) as s:
        host = PostfixHost(s)
        # The live warnings again (at other line numbers): accepted.
        host.check_staged((b"# a comment moves every line\n" + original + DUPLICATE).decode(), "/etc/postfix")
        # A warning of its own: refused, quoting Postfix.
        with pytest.raises(PostfixError) as refused:
            host.check_staged((original + DUPLICATE + b"secure_postfix_unknown = 1\n").decode(), "/etc/postfix")
    message = str(refused.value)
    assert message.startswith(f"{testbed.hosts[HOST].address}: Postfix rejects the new main.cf: ")
    assert "unused parameter: secure_postfix_unknown=1" in message
    assert "overriding earlier entry" not in message


def test_staged_check_failure_quotes_postfix(testbed, original):
    with Session(target(testbed)) as s, pytest.raises(PostfixError) as refused:
        PostfixHost(s).check_staged((original + b"message_size_limit = abc\n").decode(), "/etc/postfix")
    assert "fatal: bad numerical configuration: message_size_limit = abc" in str(refused.value)
    assert "exit code" not in str(refused.value)


def test_up_of_an_unrelated_limit_with_a_duplicate_in_main_cf(testbed, original, tmp_path):
    live_with_duplicate(testbed, original)
    project = EngineProject(tmp_path / "dup", "dup")
    project.configure(bed_config(testbed, {"dup": {"postfix_host": HOST, "limits": {"header_size_limit": 51200}}}))
    try:
        run = project.up()
        assert run.ok, run.text
        assert testbed.run(HOST, "postconf -h header_size_limit").stdout.strip() == "51200"
        assert testbed.read_file(HOST, MAIN_CF).endswith(DUPLICATE + b"header_size_limit = 51200\n")
    finally:
        assert project.destroy().ok
    assert testbed.read_file(HOST, MAIN_CF) == original + DUPLICATE


@pytest.fixture
def chroot_copy_differs(testbed):
    # check-warn compares each file Postfix's chroot holds with its original; one that differs is its warning.
    testbed.run(HOST, "echo original > /etc/sp-chroot-test; echo stale > /var/spool/postfix/etc/sp-chroot-test")
    yield "/var/spool/postfix/etc/sp-chroot-test and /etc/sp-chroot-test differ"
    testbed.run(HOST, "rm -f /etc/sp-chroot-test /var/spool/postfix/etc/sp-chroot-test")


def test_a_change_check_warn_cannot_see_is_judged_without_it(testbed, original, chroot_copy_differs):
    staged = (original + b"smtpd_client_connection_rate_limit = 30\n").decode()
    part = check_scope.check_command(original.decode(), staged)
    assert part == check_scope.FATAL_ONLY
    with Session(target(testbed)) as s:
        host = PostfixHost(s)
        whole = host.staged_check_report(staged, "/etc/postfix", part=check_scope.WHOLE)
        fatal_only = host.staged_check_report(staged, "/etc/postfix", part=part)
        host.check_staged(staged, "/etc/postfix", live=original.decode())
    assert whole.staged.rc == 0 and fatal_only.staged.rc == 0
    assert any(chroot_copy_differs in line for line in whole.staged.lines), whole.staged.lines
    assert not any("differ" in line for line in fatal_only.staged.lines), fatal_only.staged.lines


def test_a_change_of_what_check_warn_reads_is_judged_by_the_whole_check(testbed, original):
    # A data directory root owns: check-warn says it is not the mail owner's, and only this change brings that.
    testbed.run(HOST, "mkdir -p /var/lib/sp-data && chown root:root /var/lib/sp-data")
    try:
        with Session(target(testbed)) as s, pytest.raises(PostfixError) as refused:
            staged = (original + b"data_directory = /var/lib/sp-data\n").decode()
            PostfixHost(s).check_staged(staged, "/etc/postfix", live=original.decode())
    finally:
        testbed.run(HOST, "rm -rf /var/lib/sp-data")
    assert "not owned by postfix: /var/lib/sp-data/." in str(refused.value), str(refused.value)


def test_a_bad_value_is_refused_by_the_fatal_half_alone(testbed, original):
    staged = (original + b"message_size_limit = abc\n").decode()
    assert check_scope.check_command(original.decode(), staged) == check_scope.FATAL_ONLY
    with Session(target(testbed)) as s, pytest.raises(PostfixError) as refused:
        PostfixHost(s).check_staged(staged, "/etc/postfix", live=original.decode())
    assert "fatal: bad numerical configuration: message_size_limit = abc" in str(refused.value)
