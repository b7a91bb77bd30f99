"""How Postfix takes a new configuration, for every resource that changes one of its files.

Load it (`postfix reload`, or a restart when the master was not serving, then wait for the master's
log line), verify it from the host as a mail client would (banner, EHLO, STARTTLS) together with the
mail log's fatal lines, and after a rollback restart it until it answers again.
"""

from __future__ import annotations

import re
import time

import pulumi

from secure_postfix.core import host_output
from secure_postfix.remote.postfix_host import PostfixError, PostfixFacts, PostfixHost
from secure_postfix.remote.ssh import RemoteError


def after_rollback(answering: bool, failing_before: str | None) -> str:
    if failing_before is None:
        return "it answers SMTP again" if answering else "it does not answer SMTP"
    now = "it answers SMTP now" if answering else "it still does not answer SMTP"
    return (
        f"that configuration was ALREADY FAILING before the change ({failing_before}), so {now}: "
        "fix the cause named above, or the failing setting by hand"
    )


# `postfix reload` only signals the master. Until the master has re-read main.cf, an idle smtpd of
# the old generation could answer the probe; the master logs "reload" once it has. After that line
# every smtpd runs the new configuration: only later log lines judge it.
RELOAD_MARK = "reload -- version"
START_MARK = "daemon started -- version"
_MASTER_WAIT_SECONDS = 5.0
_SETTLE_SECONDS = 0.2
_NO_LOG_SETTLE_SECONDS = 1.0


def failure_before(host: PostfixHost, facts: PostfixFacts, offset: int | None) -> str | None:
    """Why Postfix does not serve before the change (None when it does), as its own probe sees it."""
    try:
        host.probe_smtp(timeout=3.0)
        return None
    except RemoteError as exc:
        reason = str(exc).removeprefix(f"{host.label}: ")
    fatals = host.log_fatals(facts.log_file, offset)
    return reason + (f"; the mail log says: {' | '.join(fatals[-2:])}" if fatals else "")


def load(host: PostfixHost, facts: PostfixFacts, offset: int | None, failing_before: str | None) -> None:
    """Make the master load the new main.cf: a reload, or a restart when it was not serving."""
    if failing_before is None:
        host.reload()
        wait_for_master(host, facts, offset, RELOAD_MARK)
        return
    # A master already throttling smtpd (after some earlier crash) ignores a reload; restart it instead.
    pulumi.log.warn(
        f"{host.label}: Postfix did not answer SMTP before the change ({failing_before}); "
        "restarting it instead of a reload"
    )
    host.restart()
    wait_for_master(host, facts, offset, START_MARK)


def fresh_log(host: PostfixHost, facts: PostfixFacts, offset: int | None, mark: str | None) -> list[str]:
    """Log lines since the master logged `mark` (its last load): what the new configuration caused."""
    lines = host.log_since(facts.log_file, offset)
    if mark is None:
        return lines
    starts = [i for i, line in enumerate(lines) if mark in master_marks([line])]
    return lines[starts[-1] + 1 :] if starts else lines


def verify(host: PostfixHost, facts: PostfixFacts, offset: int | None, tls_fingerprint: str | None) -> None:
    """Probe SMTP; the mail log's fatal lines since the new configuration was loaded, if any, are the reason."""
    mark = last_mark(host, facts, offset)

    def fail_on_fatal() -> None:
        fatals = [ln for ln in fresh_log(host, facts, offset, mark) if is_fatal(ln)]
        if fatals:
            raise PostfixError(f"{host.label}: smtpd cannot start; the mail log says: " + " | ".join(fatals[-3:]))

    try:
        host.probe_smtp(while_waiting=fail_on_fatal, tls_fingerprint=tls_fingerprint)
    except PostfixError as exc:
        fail_on_fatal()
        warnings = [ln for ln in fresh_log(host, facts, offset, mark) if "warning:" in ln]
        if warnings:
            raise PostfixError(f"{exc}; the mail log says: " + " | ".join(warnings[-3:])) from None
        raise
    fail_on_fatal()


def is_fatal(line: str) -> bool:
    """Postfix's own fatal or panic, read at its place after the program's tag (a client's text comes later)."""
    return bool(host_output.postfix_fatal_lines([line]))


_MASTER_TAG = re.compile(r"/master(\[\d+\])?$")


def master_marks(lines: list[str]) -> list[str]:
    """RELOAD_MARK or START_MARK for each line in which the master itself logged one."""
    found = []
    for line in lines:
        header, message = host_output.log_message(line)
        if _MASTER_TAG.search(header):
            found += [m for m in (RELOAD_MARK, START_MARK) if message.startswith(m)]
    return found


def last_mark(host: PostfixHost, facts: PostfixFacts, offset: int | None) -> str | None:
    found = master_marks(host.log_since(facts.log_file, offset))
    return found[-1] if found else None


def wait_for_master(host: PostfixHost, facts: PostfixFacts, offset: int | None, mark: str) -> None:
    if facts.log_file is None or offset is None:
        time.sleep(_NO_LOG_SETTLE_SECONDS)
        return
    deadline = time.monotonic() + _MASTER_WAIT_SECONDS
    while time.monotonic() < deadline:
        if mark in master_marks(host.log_since(facts.log_file, offset)):
            time.sleep(_SETTLE_SECONDS)
            return
        time.sleep(0.1)
    raise PostfixError(
        f"{host.label}: the Postfix master did not log that it loaded the new main.cf ({mark!r}) within "
        f"{_MASTER_WAIT_SECONDS:.0f} s"
    )


def answers(host: PostfixHost, timeout: float = 3.0) -> bool:
    try:
        host.probe_smtp(timeout=timeout)
        return True
    except RemoteError:
        return False


def wait_until_answering(host: PostfixHost, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not answers(host):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def restart_until_answering(host: PostfixHost, patient: bool = True) -> bool:
    """Restart Postfix on the files put back; True when it answers SMTP again.

    A configuration that was failing before the change gets one probe, not a 30 s wait.
    """
    # A crashed smtpd throttles the service; only stop + start lifts that.
    host.restart()
    return wait_until_answering(host, 30.0 if patient else 0.0)
