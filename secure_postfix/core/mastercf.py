"""master.cf: parse its service entries and edit the managed ones, every other byte kept (no I/O).

Entries are grouped as Postfix's own reader (`readllines`) groups them: only `\n` ends a
line; an entry starts on a line that begins with neither whitespace nor `#` and runs until
the next such line; lines that begin with whitespace continue it, and blank lines and
comments (first non-blank character `#`, indented or not) are skipped without ending it.
So a commented-out `-o` line between two live ones does not cut the entry short: the live
one below still belongs to it for Postfix, and so here. An entry's text runs from its first
line to its last continuation line; comments after that belong to no entry. An entry is
known by its service name and type, as Postfix knows it. The managed entries are the submission services of the guide's
setup: submission (587, STARTTLS required) and submissions (465, TLS from the first byte).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from secure_postfix.core import postfix_rules as rules
from secure_postfix.core.problem import Problem

# Service type -> (default port, -o overrides that make it a submission service)
SERVICE_TYPES: dict[str, tuple[int, tuple[tuple[str, str], ...]]] = {
    "submission": (
        587,
        (
            ("syslog_name", "postfix/submission"),
            ("smtpd_tls_security_level", "encrypt"),
        ),
    ),
    "submissions": (
        465,
        (
            ("syslog_name", "postfix/submissions"),
            ("smtpd_tls_wrappermode", "yes"),
        ),
    ),
}
# Every submission service: AUTH on, only after TLS, and mail only from authenticated clients.
AUTH_OVERRIDES = (
    ("smtpd_sasl_auth_enable", "yes"),
    ("smtpd_tls_auth_only", "yes"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated,reject"),
    ("smtpd_relay_restrictions", "permit_sasl_authenticated,reject"),
)
# The guide's per-client limits that make sense per service.
RATE_LIMITS = (
    "smtpd_client_connection_rate_limit",
    "smtpd_client_message_rate_limit",
    "smtpd_client_connection_count_limit",
    "smtpd_client_recipient_rate_limit",
)
# Port names Postfix resolves through /etc/services, for the clash check.
_NAMED_PORTS = {"smtp": 25, "submission": 587, "submissions": 465, "smtps": 465}
_NAME_RE = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class Entry:
    """One service entry: its exact text (all its lines, with their line ends) and where it starts."""

    name: str
    type: str
    text: str
    start: int  # character offset in the file

    @property
    def key(self) -> str:
        return f"{self.name}/{self.type}"

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def parse(text: str) -> list[Entry]:
    entries: list[Entry] = []
    offset = 0
    current: list[str] = []  # the entry's lines up to its last continuation line
    skipped: list[str] = []  # blank and comment lines since then: the entry's only if more of it follows
    start = 0
    for line in lines_of(text):
        if _is_skipped(line):
            skipped.append(line)
        elif line[:1] in _BLANK:
            if current:
                current += [*skipped, line]
            skipped = []
        else:
            if current:
                entries.append(_entry("".join(current), start))
            current, skipped, start = [line], [], offset
        offset += len(line)
    if current:
        entries.append(_entry("".join(current), start))
    return entries


def lines_of(text: str) -> list[str]:
    """The file's lines, each with its `\n`: only that ends a line for Postfix (`str.splitlines` also
    splits at `\r`, form feeds and others)."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


# What Postfix counts as whitespace at the start of a line (C isspace, less the newline).
_BLANK = (" ", "\t", "\r", "\f", "\v")


def _is_skipped(line: str) -> bool:
    """A blank line or a comment (its first non-blank character is `#`): Postfix reads past it."""
    stripped = line.lstrip("".join(_BLANK) + "\n")
    return not stripped or stripped.startswith("#")


def _entry(text: str, start: int) -> Entry:
    fields = one_line(text).split()
    return Entry(name=fields[0], type=fields[1] if len(fields) > 1 else "", text=text, start=start)


def one_line(entry_text: str) -> str:
    """An entry as one line, as Postfix reads it (its fields joined by single spaces, the comment lines
    within it left out): what the diff shows and compares."""
    return " ".join(" ".join(ln.split()) for ln in lines_of(entry_text) if not _is_skipped(ln))


@dataclass(frozen=True)
class Service:
    """A managed service: its type (submission or submissions), where it listens, its extra -o overrides."""

    type: str
    listen: str = ""  # empty: the type's own name (and so its well-known port)
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.listen or self.type

    @property
    def key(self) -> str:
        return f"{self.name}/inet"


def overrides(service: Service) -> list[tuple[str, str]]:
    """The -o overrides in order: the type's own, then AUTH's, then the caller's (which win)."""
    merged: dict[str, str] = dict(SERVICE_TYPES[service.type][1])
    merged.update(AUTH_OVERRIDES)
    merged.update({k: str(v) for k, v in service.options.items()})
    return list(merged.items())


def render(service: Service) -> str:
    head = f"{service.name} inet n       -       -       -       -       smtpd\n"
    return head + "".join(f"  -o {name}={value}\n" for name, value in overrides(service))


def port_of(listen: str) -> int | None:
    """The TCP port a service name listens on: `587`, `submission`, `127.0.0.1:587`, `[::1]:submission`."""
    port = listen.rsplit(":", 1)[-1] if ":" in listen else listen
    if port.isascii() and port.isdigit():
        return int(port)
    return _NAMED_PORTS.get(port)


def service_problems(services: Mapping[str, Service], current: str | None = None) -> list[Problem]:
    """Bad input, named by service: unknown type, port clash, bad -o name or value."""
    problems: list[Problem] = []
    ports: dict[int, str] = {}
    for label, service in services.items():
        where = f"services.{label}"
        if service.type not in SERVICE_TYPES:
            problems.append(Problem(where, f"type {service.type!r} is not one of {', '.join(SERVICE_TYPES)}"))
            continue
        if service.listen and not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]:|[0-9.]+:)?[0-9]{1,5}", service.listen):
            problems.append(Problem(f"{where}.listen", f"{service.listen!r} is not PORT or ADDRESS:PORT"))
            continue
        port = port_of(service.name)
        if port is None or not 0 < port < 65536:
            problems.append(Problem(f"{where}.listen", f"{service.name!r} is not a TCP port"))
            continue
        if port == _NAMED_PORTS["smtp"]:
            problems.append(
                Problem(f"{where}.listen", "port 25 is master.cf's smtp service, which is not managed here")
            )
            continue
        if port in ports:
            problems.append(Problem(f"{where}.listen", f"port {port} is also used by services.{ports[port]}"))
        ports[port] = label
        problems += _option_problems(where, service.options)
    if current is not None and not problems:
        problems += clash_problems(services, current)
    return problems


def _option_problems(where: str, options: Mapping[str, str]) -> list[Problem]:
    problems = []
    for name, value in options.items():
        text = str(value)
        if not _NAME_RE.fullmatch(str(name)):
            problems.append(Problem(f"{where}.options.{name}", "is not a Postfix parameter name"))
        elif any(ch.isspace() for ch in text) or not text.isprintable():
            problems.append(
                Problem(
                    f"{where}.options.{name}",
                    f"{text!r} has whitespace or a control character; a master.cf -o value is one word "
                    "(use commas between list items)",
                )
            )
        else:
            problems += [
                Problem(f"{where}.options.{p.field}", p.message) for p in rules.check_directives({str(name): text})
            ]
    return problems


def version_problems(services: Mapping[str, Service], version: str) -> list[Problem]:
    """-o values the host's Postfix `version` cannot read (the >= protocol syntax before 3.6), named by service."""
    return [
        problem
        for label, service in services.items()
        for problem in rules.version_problems(
            {str(k): str(v) for k, v in service.options.items()},
            version,
            {str(k): f"services.{label}.options.{k}" for k in service.options},
        )
    ]


def clash_problems(services: Mapping[str, Service], current: str) -> list[Problem]:
    """A managed service's port already taken by another, unmanaged inet entry of the host's master.cf."""
    ours = {s.key for s in services.values()}
    taken = {port_of(e.name): e for e in parse(current) if e.type == "inet" and e.key not in ours}
    problems = []
    for label, service in services.items():
        other = taken.get(port_of(service.name))
        if other is not None:
            problems.append(
                Problem(
                    f"services.{label}.listen",
                    f"port {port_of(service.name)} is already served by master.cf's entry {one_line(other.text)!r}",
                )
            )
    return problems


@dataclass(frozen=True)
class Plan:
    text: str
    originals: dict[str, str | None]  # key -> the entry's text before any change of ours (None: absent)
    changes: list[tuple[str, str, str]]  # (key, old one-line, new one-line)


def plan_edit(current: str, desired: Mapping[str, str], originals: Mapping[str, str | None]) -> Plan:
    """Put each desired entry (key -> exact text) in place of the host's, or at the end; give back dropped ones."""
    text = current
    kept = dict(originals)
    changes = []
    for key, wanted in desired.items():
        entry = _find(text, key)
        if key not in kept:
            kept[key] = entry.text if entry is not None else None
        if entry is not None and entry.text == wanted:
            continue
        changes.append((key, one_line(entry.text) if entry else "", one_line(wanted)))
        text = _put(text, entry, wanted)
    for key in [k for k in kept if k not in desired]:
        text, change = _give_back(text, key, kept.pop(key))
        changes += change
    return Plan(text, kept, changes)


def plan_restore(current: str, originals: Mapping[str, str | None]) -> Plan:
    text, changes = current, []
    for key, original in originals.items():
        text, change = _give_back(text, key, original)
        changes += change
    return Plan(text, {}, changes)


def _give_back(text: str, key: str, original: str | None) -> tuple[str, list[tuple[str, str, str]]]:
    entry = _find(text, key)
    if (entry.text if entry else None) == original:
        return text, []
    change = (key, one_line(entry.text) if entry else "", one_line(original) if original else "")
    if original is None:
        return _remove(text, entry), [change]
    return _put(text, entry, original), [change]


def _find(text: str, key: str) -> Entry | None:
    found = [e for e in parse(text) if e.key == key]
    return found[-1] if found else None


def _put(text: str, entry: Entry | None, wanted: str) -> str:
    if entry is not None:
        return text[: entry.start] + wanted + text[entry.end :]
    if text and not text.endswith("\n"):
        # Kept apart by a newline that removal takes away again (see _remove).
        return text + "\n" + wanted.removesuffix("\n")
    return text + wanted


def _remove(text: str, entry: Entry | None) -> str:
    if entry is None:
        return text
    before, after = text[: entry.start], text[entry.end :]
    if not entry.text.endswith("\n") and before.endswith("\n") and not after:
        # The entry was appended to a file without a final newline: that newline was ours too.
        before = before[:-1]
    return before + after
