"""The log verdicts read the daemon's own severity at its fixed place, never text a client put in the line."""

from __future__ import annotations

import pytest

from secure_postfix import postfix_daemon as daemon
from secure_postfix.core import host_output as ho

# Lines as the test hosts log them (mail.log, dovecot.log), and as syslog writes Dovecot's.
POSTFIX_FATAL = "Dec 04 04:34:29 mx postfix/submission/smtpd[1285]: fatal: no SASL authentication mechanisms"
POSTFIX_PANIC = "2026-12-04T04:34:29.123456+00:00 mx postfix/smtpd[12]: panic: myfree: corrupt or unallocated memory"
RELOAD = "Dec 04 04:34:15 mx postfix/master[332]: reload -- version 3.7.11, configuration /etc/postfix"
STARTED = "Dec 04 04:34:21 mx postfix/master[1277]: daemon started -- version 3.7.11, configuration /etc/postfix"
CLIENT_TEXT = [
    "Dec 04 04:35:00 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from unknown[10.231.17.50]: 554 5.7.1 <fatal:@x>: "
    "Relay access denied; from=<panic:@y> to=<fatal:@x> proto=ESMTP helo=<fatal:>",
    "Dec 04 04:35:00 mx postfix/smtpd[9]: warning: non-SMTP command from unknown[10.231.17.50]: fatal: panic: x",
    "Dec 04 04:35:00 mx postfix/smtpd[9]: lost connection after EHLO from fatal: postfix/master[1]: fatal: x",
    "Dec 04 04:35:00 mx postfix/smtpd[9]: disconnect from unknown[10.231.17.50] ehlo=reload -- version 3.7.11",
]
DOVECOT_FATAL = "Dec 04 04:34:14 auth: Fatal: Couldn't parse configuration"
DOVECOT_SYSLOG_FATAL = "Dec  4 04:34:14 auth dovecot: master: Error: service(auth): command startup failed"
DOVECOT_CLIENT = [
    "Dec 04 04:35:00 auth: Info: passwd-file(Fatal: x,10.231.17.50): unknown user",
    "Dec 04 04:35:00 imap-login: Info: Disconnected: user=<Fatal:>, rip=10.231.17.50",
    "Dec  4 04:35:00 auth dovecot: auth: Info: user=<Error: service(auth)>",
]


def test_postfix_fatal_and_panic_at_their_place_are_fatal():
    assert ho.postfix_fatal_lines([POSTFIX_FATAL, POSTFIX_PANIC, RELOAD]) == [POSTFIX_FATAL, POSTFIX_PANIC]
    assert daemon.is_fatal(POSTFIX_FATAL) and daemon.is_fatal(POSTFIX_PANIC)


@pytest.mark.parametrize("line", CLIENT_TEXT)
def test_client_text_is_never_a_verdict(line):
    assert ho.postfix_fatal_lines([line]) == []
    assert not daemon.is_fatal(line)
    assert daemon.master_marks([line]) == []


def test_reload_and_start_marks_come_from_the_master_only():
    assert daemon.master_marks([RELOAD, STARTED]) == [daemon.RELOAD_MARK, daemon.START_MARK]
    smtpd = RELOAD.replace("postfix/master[332]", "postfix/smtpd[40]")
    assert daemon.master_marks([smtpd]) == []


def test_dovecot_errors_at_their_place_count_and_client_text_does_not():
    assert ho.dovecot_error_lines([DOVECOT_FATAL, DOVECOT_SYSLOG_FATAL, *DOVECOT_CLIENT]) == [
        DOVECOT_FATAL,
        DOVECOT_SYSLOG_FATAL,
    ]
