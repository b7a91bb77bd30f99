"""Validation of main.cf directives: the guide's DoS limits and generic values.

Postfix's own tools stay the authority on syntax (`postconf -n`, `postfix check`);
these rules catch what they do not: types of the guide's limits, the guide's
cross-field rules, and values that could break out of a main.cf line.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from importlib import resources


class Kind(Enum):
    BYTES = "a whole number of bytes >= 0"
    COUNT = "a whole number >= 0"
    TIME = "a Postfix time value such as 60s, 5m or 1h"
    NETWORKS = "a list of networks or hosts (for example $mynetworks, 192.0.2.0/24, [2001:db8::]/32)"


# The guide's denial-of-service directives (RHEL guide, "Securing the Postfix service").
DOS_DIRECTIVES: dict[str, Kind] = {
    "message_size_limit": Kind.BYTES,
    "header_size_limit": Kind.BYTES,
    "queue_minfree": Kind.BYTES,
    "default_process_limit": Kind.COUNT,
    "smtpd_client_connection_rate_limit": Kind.COUNT,
    "smtpd_client_message_rate_limit": Kind.COUNT,
    "anvil_rate_time_unit": Kind.TIME,
    "smtpd_client_event_limit_exceptions": Kind.NETWORKS,
}

# Postfix's built-in defaults, used by cross-field rules when a limit is not managed.
POSTFIX_DEFAULTS: dict[str, str] = {
    "message_size_limit": "10240000",
    "header_size_limit": "102400",
    "queue_minfree": "0",
}

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_TIME_RE = re.compile(r"^(\d+)([smhdw]?)$")
_HOSTNAME_RE = re.compile(r"^\.?(?!-)[A-Za-z0-9-]{1,63}(?:\.(?!-)[A-Za-z0-9-]{1,63})*\.?$")
_TABLE_RE = re.compile(r"^[a-z0-9_]+:.+$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, tied to the field the user wrote."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def known_parameters() -> frozenset[str]:
    """Parameter names of Postfix 3.7 (`postconf -d`), for checks made without a host."""
    text = resources.files(__package__).joinpath("postfix-3.7-parameters.txt").read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def as_text(value: object) -> str:
    """The main.cf form of an input value: numbers as digits, lists space-separated."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(as_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_value_text(name: str, text: str) -> list[Problem]:
    """Rules for every directive: no control characters, no empty name."""
    if not _NAME_RE.match(name):
        return [Problem(name, "is not a valid main.cf parameter name (letters, digits and _ only)")]
    if _CONTROL_RE.search(text):
        return [Problem(name, "contains a newline or control character; a value must be one line of printable text")]
    return []


def check_dos_value(name: str, text: str) -> list[Problem]:
    kind = DOS_DIRECTIVES[name]
    if kind in (Kind.BYTES, Kind.COUNT):
        if not text.isdigit():
            return [Problem(name, f"must be {kind.value}, got {text!r}")]
    elif kind is Kind.TIME:
        match = _TIME_RE.match(text)
        if match is None or int(match.group(1)) == 0:
            return [Problem(name, f"must be {kind.value} (greater than zero), got {text!r}")]
    elif kind is Kind.NETWORKS:
        return [Problem(name, msg) for msg in network_list_errors(text)]
    return []


def network_list_errors(text: str) -> list[str]:
    """Errors in a Postfix network/host list (mynetworks syntax)."""
    errors = []
    for token in re.split(r"[\s,]+", text.strip()):
        if token and not _is_network_item(token.removeprefix("!")):
            errors.append(f"{token!r} is not a network, address, host name, $parameter or lookup table")
    return errors


def _is_network_item(item: str) -> bool:
    if item.startswith("$") or item.startswith("/"):
        return True
    if item.startswith("["):
        return _is_bracketed_ipv6(item)
    if re.fullmatch(r"[0-9./]+", item):
        try:
            ipaddress.IPv4Network(item, strict=False)
            return True
        except ValueError:
            return False
    if ":" in item:
        # A bare IPv6 address needs brackets in main.cf; anything else with a colon is a table.
        return not _looks_like_ipv6(item) and bool(_TABLE_RE.match(item))
    return bool(_HOSTNAME_RE.match(item))


def _is_bracketed_ipv6(item: str) -> bool:
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?:/(\d{1,3}))?", item)
    if match is None:
        return False
    try:
        ipaddress.IPv6Network(match.group(1) + (f"/{match.group(2)}" if match.group(2) else ""), strict=False)
        return True
    except ValueError:
        return False


def _looks_like_ipv6(item: str) -> bool:
    try:
        ipaddress.IPv6Network(item, strict=False)
        return True
    except ValueError:
        return False


def time_seconds(text: str) -> int:
    match = _TIME_RE.match(text)
    if match is None:
        raise ValueError(f"not a Postfix time value: {text!r}")
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return int(match.group(1)) * factor


def check_cross_fields(values: Mapping[str, str], unknown: Iterable[str] = ()) -> list[Problem]:
    """The guide's rules between limits. `values` are effective values as text.

    A limit that is not managed counts with Postfix's default; a limit whose value
    is not known yet (computed by another resource) skips the rules it is in.
    """
    pending = set(unknown)
    effective = {**POSTFIX_DEFAULTS, **values}
    if not all(effective[k].isdigit() for k in POSTFIX_DEFAULTS):
        return []  # type errors are reported on their own
    size = int(effective["message_size_limit"])
    header = int(effective["header_size_limit"])
    minfree = int(effective["queue_minfree"])
    problems = []
    if not pending & {"queue_minfree", "message_size_limit"} and minfree != 0 and size != 0 and minfree * 2 < size * 3:
        problems.append(
            Problem(
                "queue_minfree",
                f"is {minfree} but must be 0 or at least 1.5 x message_size_limit ({size}) = {(size * 3 + 1) // 2}",
            )
        )
    if not pending & {"header_size_limit", "message_size_limit"} and size != 0 and header > size:
        problems.append(Problem("header_size_limit", f"is {header} but must not exceed message_size_limit ({size})"))
    return problems


def check_directives(
    directives: Mapping[str, str], known: frozenset[str] | None = None, unknown: Iterable[str] = ()
) -> list[Problem]:
    """Every rule for a set of main.cf directives (values already as text)."""
    names = known_parameters() if known is None else known
    problems: list[Problem] = []
    for name, text in directives.items():
        text_problems = check_value_text(name, text)
        problems += text_problems
        if text_problems:
            continue
        if name not in names:
            problems.append(Problem(name, "is not a parameter that Postfix knows (postconf -d); check the spelling"))
        elif name in DOS_DIRECTIVES:
            problems += check_dos_value(name, text)
    if not problems:
        problems += check_cross_fields({k: v for k, v in directives.items() if k in POSTFIX_DEFAULTS}, unknown)
    return problems
