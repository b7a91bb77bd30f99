"""What the hosts print, read without I/O: the facts scripts, digests, log lines, Dovecot's auth handshake.

Each fact is a command and a pure parser of its output, side by side (the facts scripts live here
too); the remote layer only runs the commands. tests/unit/test_facts_*.py feed the parsers outputs
recorded from Postfix 3.5, 3.7 and 3.10 and Dovecot 2.3 and 2.4 (tests/fixtures/facts/).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from secure_postfix.core import ledger, smtp_endpoint
from secure_postfix.core.postfix_features import TLS_PAIR_FILE
from secure_postfix.core.tls_policy import POLICY_MAP_FILE

_POSTFIX_SEVERITIES = ("fatal: ", "panic: ")
_DOVECOT_SEVERITIES = ("Fatal: ", "Panic: ", "Error: Error reading configuration", "Error: service(")
# Dovecot through syslog: "TIME HOST dovecot: SERVICE: Severity: …"; in its own log file "TIME SERVICE: Severity: …".
_DOVECOT_SYSLOG_TAG = re.compile(r"(^|\s)dovecot(\[\d+\])?$")


class NoPostfix(ValueError):
    """The host has no postconf."""


class NoMainCf(ValueError):
    """The config directory has no main.cf; the message is the directory."""


class HostBusy(ValueError):
    """The facts were asked for under a shared lock, and another operation held the host's lock."""


class NotDovecotAuth(ValueError):
    """Something other than Dovecot's auth service answered; the message is its first line."""


@dataclass(frozen=True)
class PostfixFacts:
    main_cf: str
    version: str
    # The names `postconf -d` knows; None in facts read for a refresh, which plans no change.
    parameters: frozenset[str] | None
    config_directory: str
    log_file: str | None
    queue_directory: str = "/var/spool/postfix"
    # SHA-256 of main.cf's bytes as read: the swap happens only if the file still has it.
    main_cf_sha256: str | None = None
    # Where the inet services listen (inet_interfaces), and port 25's smtpd: where the probes ask.
    listen_address: str = smtp_endpoint.LOOPBACK_V4
    smtp: smtp_endpoint.Endpoint = smtp_endpoint.LOOPBACK_SMTP
    # The project's ledger beside main.cf, read in the same round trip (None: absent). `ledger_read` is False for
    # facts that did not carry it (an earlier script's output): then the ledger is read on its own.
    ledger: str | None = None
    ledger_read: bool = False
    # The files (main.cf, the TLS pair) that have a backup beside them, read with the ledger.
    backed_up: tuple[str, ...] = ()


@dataclass(frozen=True)
class DovecotFacts:
    version_text: str
    conf_d_included: bool
    log_file: str | None
    running: bool
    current: str | None
    # SHA-256 of our file as read ("-" when absent): the swap happens only if the file still has it.
    current_sha256: str | None = None


def _head(text: str, count: int) -> list[str]:
    return [line.strip() for line in [*text.splitlines(), *[""] * count][:count]]


# The command of the Postfix facts (sh -c SCRIPT sh [LOCK [values]]). Without maillog_file, Debian's syslog writes
# /var/log/mail.log, RHEL's rsyslog /var/log/maillog. With LOCK (the host lock's file), the facts are read under a
# shared lock of it, taken at once or not at all: an apply holding the host's lock meanwhile gets BUSY and nothing
# else, and the caller takes the host's lock its own way, in turn. `command` keeps a failed redirection from ending
# the script. With `values` (a refresh, which plans no change) neither the digest, the listening services nor the
# parameter names are read: two postconf runs fewer, about half the script's CPU on the host.
POSTFIX_FACTS_SCRIPT = (
    r"""
if [ -n "${1:-}" ]; then
  # The folder is made only when missing: a refresh of a fleet pays each process it starts on every host.
  { [ ! -L "$1" ] && { [ -d "${1%/*}" ] || mkdir -p -m 0700 -- "${1%/*}"; } 2>/dev/null \
    && command exec 9>>"$1" && flock -n -s 9; } 2>/dev/null || { echo BUSY; exit 0; }
fi
command -v postconf >/dev/null || { echo NO-POSTFIX; exit 0; }
# One postconf for all six values, expanded, in the order asked: each run reads all of main.cf, and on a fleet
# applied at once these runs were a good part of the facts' cost.
{
  IFS= read -r cfg; IFS= read -r version; IFS= read -r log; IFS= read -r queue
  IFS= read -r interfaces; IFS= read -r protocols
} <<VALUES
$(postconf -xh config_directory mail_version maillog_file queue_directory inet_interfaces inet_protocols)
VALUES
printf '%s\n' "$cfg" "$version"
if [ -z "$log" ]; then
  for f in /var/log/mail.log /var/log/maillog; do if [ -f "$f" ]; then log=$f; break; fi; done
fi
printf '%s\n' "$log" "$queue"
if [ "${2:-}" = values ]; then
  printf '%s\n' "" "$interfaces" "$protocols" "" '--- defaults' NOT-READ
else
  sum=$(sha256sum < "$cfg/main.cf" 2>/dev/null) || sum=-
  printf '%s\n' "${sum%% *}" "$interfaces" "$protocols"
  echo $(postconf -M 2>/dev/null | awk '$2 == "inet" && $8 == "smtpd" { print $1 }')
  echo '--- defaults'
  postconf -d | cut -d= -f1
fi
# Backups a change left beside main.cf, the TLS pair and the TLS policy table: cleared before the next change
# only when there are some.
echo '--- backups'
for f in "$cfg/main.cf" @PAIR@ @MAP@; do
  if [ -e "$f.secure-postfix-prev" ] || [ -L "$f.secure-postfix-prev" ]; then printf '%s\n' "$f"; fi
done
# The project's ledger, in the same round trip. No line of its JSON reads '--- main.cf'; one byte past its limit
# is enough to show that it is too long.
echo '--- ledger'
led="$cfg/@LEDGER@"
if [ -e "$led" ]; then head -c @LIMIT@ -- "$led"; echo; else echo NO-LEDGER; fi
echo '--- main.cf'
cat -- "$cfg/main.cf" 2>/dev/null || echo NO-MAIN-CF
""".replace("@LEDGER@", ledger.FILE_NAME)
    .replace("@LIMIT@", str(ledger.MAX_BYTES + 1))
    .replace("@PAIR@", TLS_PAIR_FILE)
    .replace("@MAP@", POLICY_MAP_FILE)
)


def parse_postfix_facts(out: str) -> PostfixFacts:
    """The Postfix facts script's output: eight lines (an older script's five still read), `postconf -d` names,
    then main.cf itself."""
    if out.startswith("BUSY"):
        raise HostBusy("another operation holds the host's lock")
    if out.startswith("NO-POSTFIX"):
        raise NoPostfix("postconf is not installed")
    head, _, rest = out.partition("\n--- defaults\n")
    names, found, main_cf = rest.partition("\n--- main.cf\n")
    names, has_ledger, ledger_text = names.partition("\n--- ledger\n")
    # With no backups listed, the ledger's header follows this one at once: no newline is left after it here.
    names, _, backups = names.partition("\n--- backups")
    config_directory, version, log_file, queue_directory, digest, interfaces, protocols, smtpd = _head(head, 8)
    if not found or main_cf.startswith("NO-MAIN-CF"):
        raise NoMainCf(config_directory or "/etc/postfix")
    return PostfixFacts(
        main_cf=main_cf,
        version=version,
        parameters=None if names == "NOT-READ" else postconf_names(names),
        config_directory=config_directory or "/etc/postfix",
        log_file=log_file or None,
        queue_directory=queue_directory or "/var/spool/postfix",
        main_cf_sha256=digest or None,
        listen_address=smtp_endpoint.listen_address(interfaces, protocols),
        smtp=smtp_endpoint.smtp_endpoint(interfaces, protocols, smtpd),
        ledger=None if not has_ledger or ledger_text == "NO-LEDGER" else ledger_text.removesuffix("\n"),
        ledger_read=bool(has_ledger),
        backed_up=tuple(line for line in backups.splitlines() if line),
    )


def postconf_names(text: str) -> frozenset[str]:
    """Parameter names from `postconf -d | cut -d= -f1` (a name with an empty default prints as `name =`)."""
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


# The command of the Dovecot facts (bash -c SCRIPT bash OUR-FILE).
DOVECOT_FACTS_SCRIPT = r"""
dovecot --version 2>/dev/null || echo none
include='^[[:space:]]*!include[[:space:]]+conf\.d/\*\.conf'
if grep -Eq "$include" /etc/dovecot/dovecot.conf; then echo included; else echo missing; fi
# Not `doveconf -h log_path`: Dovecot 2.4 stops there with "Multiple settings matched" (debug_log_path and the
# like end in the same name); the `log_path = VALUE` line reads the same on 2.3 and 2.4.
log=$(doveconf log_path 2>/dev/null | sed -n 's/^log_path = //p' | head -n 1)
printf '%s\n' "$log"
if doveadm service status auth >/dev/null 2>&1 || pgrep -x dovecot >/dev/null; then echo running; else echo stopped; fi
if [ -e "$1" ]; then sum=$(sha256sum < "$1"); echo "${sum%% *}"; else echo -; fi
if [ -e "$1" ]; then echo '--- managed file'; cat -- "$1"; fi
"""


def parse_dovecot_facts(out: str) -> DovecotFacts:
    """The Dovecot facts script's output: version, include, log path, state, digest, then our file."""
    head, found, current = out.partition("--- managed file\n")
    version, included, log_file, state, digest = _head(head, 5)
    return DovecotFacts(
        version_text=version,
        conf_d_included=included == "included",
        # `syslog` or an empty value mean no file of its own.
        log_file=log_file if log_file.startswith("/") else None,
        running=state == "running",
        current=current if found else None,
        current_sha256=digest or None,
    )


def parse_doveconf(text: str) -> dict[str, Any]:
    """`doveconf -n` as Dovecot read its configuration: `name = value` settings, and each section (`service auth`,
    `unix_listener PATH`) as a dict of its own under its header. Comments and blank lines are skipped."""
    root: dict[str, Any] = {}
    stack = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "}":
            if len(stack) > 1:
                stack.pop()
        elif line.endswith("{"):
            section: dict[str, Any] = {}
            stack[-1][line[:-1].strip()] = section
            stack.append(section)
        else:
            name, _, value = line.partition("=")
            stack[-1][name.strip()] = value.strip()
    return root


def parse_digests(out: str) -> dict[str, str | None]:
    """`sha256sum -- FILE` lines, and `- FILE` for a file that is absent."""
    digests: dict[str, str | None] = {}
    for line in out.splitlines():
        digest, _, path = line.partition(" ")
        digests[path.lstrip(" *")] = None if digest == "-" else digest
    return digests


def log_message(line: str) -> tuple[str, str]:
    """(header, message) of a log line. The header (time, host, program[pid]) ends at the first ": ", and the
    daemon's severity starts the message: whatever a client sent can only come later in the line."""
    header, separator, message = line.partition(": ")
    return (header, message) if separator else (line, "")


def postfix_fatal_lines(lines: Iterable[str]) -> list[str]:
    return [ln for ln in lines if log_message(ln)[1].startswith(_POSTFIX_SEVERITIES)]


def dovecot_message(line: str) -> str:
    header, message = log_message(line)
    if _DOVECOT_SYSLOG_TAG.search(header):
        message = log_message(message)[1]
    return message


def dovecot_error_lines(lines: Iterable[str]) -> list[str]:
    return [ln for ln in lines if dovecot_message(ln).startswith(_DOVECOT_SEVERITIES)]


def auth_handshake_mechanisms(data: bytes) -> set[str] | None:
    """The mechanisms a Dovecot auth server's first turn offers; None while that turn is incomplete.

    Raises NotDovecotAuth as soon as the first line shows another protocol.
    """
    if b"\n" in data and not data.startswith(b"VERSION\t"):
        raise NotDovecotAuth(data.split(b"\n", 1)[0].decode(errors="replace")[:60])
    if b"\nDONE" not in data:
        return None
    text = data.decode(errors="replace")
    return {ln.split("\t")[1] for ln in text.splitlines() if ln.startswith("MECH\t") and ln.split("\t")[1]}
