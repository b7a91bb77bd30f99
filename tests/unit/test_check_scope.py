"""Which half of `postfix check` a staged main.cf is judged by (core/check_scope.py)."""

from __future__ import annotations

import pytest

from secure_postfix.core.check_scope import FATAL_ONLY, WHOLE, check_command

LIVE = """\
# Debian's main.cf, shortened
smtpd_banner = $myhostname ESMTP $mail_name
myhostname = mx.example.org
queue_directory = /var/spool/postfix
data_directory = /var/lib/postfix
mail_spool = /var/mail
message_size_limit = 10240000
"""


def with_lines(*lines: str) -> str:
    return LIVE + "".join(line + "\n" for line in lines)


def test_the_guides_limits_need_only_the_fatal_half():
    staged = with_lines("smtpd_client_connection_rate_limit = 30", "anvil_rate_time_unit = 60s")
    assert check_command(LIVE, staged) == FATAL_ONLY
    assert check_command(staged, LIVE) == FATAL_ONLY  # the restore


def test_a_changed_value_is_judged_like_a_new_one():
    assert check_command(LIVE, LIVE.replace("10240000", "20480000")) == FATAL_ONLY


def test_nothing_changed_needs_only_the_fatal_half():
    assert check_command(LIVE, LIVE) == FATAL_ONLY


@pytest.mark.parametrize(
    "line",
    [
        "queue_directory = /srv/spool",
        "data_directory = /srv/data",
        "mail_owner = mailer",
        "setgid_group = mail",
        "sendmail_path = /usr/local/sbin/sendmail",
        "multi_instance_directories = /etc/postfix-out",
        "multi_instance_name = postfix-out",
        "syslog_name = mx",
        "maillog_file = /var/log/postfix.log",
        "import_environment = TZ",
    ],
)
def test_what_check_warn_reads_needs_the_whole_check(line):
    assert check_command(LIVE, with_lines(line)) == WHOLE
    assert check_command(with_lines(line), LIVE) == WHOLE


def test_a_name_a_directory_refers_to_needs_the_whole_check():
    live = with_lines("spool_root = /var/spool", "queue_directory = ${spool_root}/postfix")
    staged = live.replace("spool_root = /var/spool", "spool_root = /srv")
    assert check_command(live, staged) == WHOLE


def test_references_are_followed_however_deep():
    live = with_lines("base = /var", "spool_root = $base/spool", "queue_directory = $(spool_root)/postfix")
    assert check_command(live, live.replace("base = /var", "base = /srv")) == WHOLE


def test_a_name_nothing_of_check_warn_refers_to_needs_only_the_fatal_half():
    live = with_lines("spool_root = /var/spool", "queue_directory = ${spool_root}/postfix")
    staged = live.replace("myhostname = mx.example.org", "myhostname = mx2.example.org")
    assert check_command(live, staged) == FATAL_ONLY


def test_the_last_definition_is_the_one_that_counts():
    staged = with_lines("queue_directory = /var/spool/postfix")  # a second, identical definition
    assert check_command(LIVE, staged) == FATAL_ONLY
    assert check_command(LIVE, with_lines("queue_directory = /srv/spool")) == WHOLE
