"""Validation of main.cf directives: the guide's DoS limits and generic values.

Postfix's own tools stay the authority on syntax (`postconf -n`, `postfix check`);
these rules catch what they do not: types of the guide's limits, the guide's
cross-field rules, and values that could break out of a main.cf line.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources

from secure_postfix.core.problem import Problem


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

# The C types Postfix reads numbers into (LP64 Linux): strtol() then a range check, else the daemon exits.
INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# postconf(5): the only numeric parameter documented with a meaningful negative value.
SIGNED_PARAMETERS = frozenset({"postscreen_dnsbl_allowlist_threshold", "postscreen_dnsbl_whitelist_threshold"})

_INTEGER_RE = re.compile(r"-?[0-9]+")
_REFERENCE_MARK_RE = re.compile("\x00([A-Za-z0-9_]+)\x01")
# A typed value with more ways to expand than this is refused rather than judged in part.
MAX_VARIANTS = 16
# A value longer than this is refused before any other check: a list that long belongs in a lookup table, and every
# check (and every diff a reviewer reads) would carry it on each preview.
MAX_VALUE_LENGTH = 100_000
_NAME_RE = re.compile(r"[A-Za-z0-9_]+")
_ITEM_SEPARATORS = " ,\t"
# Characters with no meaning to the expansion, up to the next one that has (and the closer being looked for).
_PLAIN_RUN = {
    None: re.compile(r"[^{}$]+"),
    "}": re.compile(r"[^{}$]+"),
    ")": re.compile(r"[^{}$)]+"),
}
_TIME_RE = re.compile(r"([0-9]+)([smhdw]?)")
_HOSTNAME_RE = re.compile(r"\.?(?!-)[A-Za-z0-9-]{1,63}(?:\.(?!-)[A-Za-z0-9-]{1,63})*\.?")
_TABLE_RE = re.compile(r"[a-z0-9_]+:.+")


@dataclass(frozen=True)
class ParamType:
    """How Postfix reads one parameter: int, long, time or bool, with its own bounds (0 = none)."""

    kind: str
    minimum: int = 0
    maximum: int = 0
    unit: str = "s"  # time only: the unit of a bare number


# `postconf -d` of each Postfix series the project is tested against (Debian 11, 12 and 13), every one read with
# Debian 12's stock master.cf: the names a master.cf service adds (maildrop_time_limit and the like) are then the
# same in each list, and what differs between two lists is what Postfix itself added or dropped (docs/platforms.md).
PARAMETER_LISTS: dict[tuple[int, int], str] = {
    (3, 5): "postfix-3.5-parameters.txt",
    (3, 7): "postfix-3.7-parameters.txt",
    (3, 10): "postfix-3.10-parameters.txt",
}


@cache
def series_parameters(series: tuple[int, ...]) -> frozenset[str] | None:
    """Parameter names of one Postfix series (`postconf -d`); None for a series whose list is not shipped."""
    name = PARAMETER_LISTS.get(tuple(series[:2]))
    if name is None:
        return None
    text = resources.files(__package__).joinpath(name).read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


@cache
def known_parameters() -> frozenset[str]:
    """Parameter names of Postfix 3.7 (`postconf -d`), the series the types file describes."""
    return series_parameters((3, 7)) or frozenset()


@cache
def any_series_parameters() -> frozenset[str]:
    """Names some shipped series knows: what a check without a host accepts. The host's own `postconf -d` judges
    at apply, and the series the last up or refresh read judges at preview (parameter_problems)."""
    return frozenset().union(*(series_parameters(s) or frozenset() for s in PARAMETER_LISTS))


@cache
def parameter_types() -> dict[str, ParamType]:
    """The typed parameters of Postfix 3.7 (see the header of postfix-3.7-types.txt)."""
    text = resources.files(__package__).joinpath("postfix-3.7-types.txt").read_text()
    types = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, kind, low, high, unit = line.split()
            bounds = (int(low), int(high)) if kind in ("int", "long", "time") else (0, 0)
            types[name] = ParamType(kind, *bounds, unit=unit if kind == "time" else "s")
    return types


@cache
def legacy_parameters() -> frozenset[str]:
    """Old names that Postfix's own defaults still expand, such as $virtual_maps."""
    return frozenset(name for name, ptype in parameter_types().items() if ptype.kind == "legacy")


def as_text(value: object) -> str:
    """The main.cf form of an input value: numbers as digits, lists space-separated."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(as_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def single_value_problems(where: str, values: Mapping[str, object]) -> list[Problem]:
    """A list given for a parameter that takes one number, time or boolean.

    `as_text` would write `[60]` as `60`: the mistake would pass unseen, so it is refused by name.
    """
    problems = []
    for name, value in values.items():
        kind = parameter_types().get(name, ParamType("text")).kind
        if isinstance(value, (list, tuple)) and kind in ("int", "long", "time", "bool"):
            problems.append(Problem(f"{where}.{name}", f"takes one value, not a list (got {list(value)!r})"))
    return problems


def check_value_text(name: str, text: str) -> list[Problem]:
    """Rules for every directive: no control characters, no empty name."""
    if not _NAME_RE.fullmatch(name):
        # An empty name is shown as "", so that the message still says which field it is.
        return [Problem(name or '""', "is not a valid main.cf parameter name (letters, digits and _ only)")]
    if len(text) > MAX_VALUE_LENGTH:
        return [
            Problem(
                name,
                f"is {len(text)} characters long; at most {MAX_VALUE_LENGTH} are accepted per value: put a long list "
                "in a lookup table (for example cidr:/etc/postfix/NAME.cidr) and name the table here",
            )
        ]
    bad = unprintable_character(text)
    if bad:
        message = f"contains a newline or control character ({bad}); a value must be one line of printable text"
        return [Problem(name, message)]
    return []


# Control, format (bidi overrides, zero-width), surrogate, and line/paragraph separators.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def unprintable_character(text: str) -> str | None:
    """The first character that a config line must not hold, as U+XXXX; None when there is none.

    That is every character str.splitlines() ends a line at (U+0085, U+2028, U+2029, U+001C..U+001E
    as well as CR and LF): a reader that splits that way would see a second line.
    """
    if text.isprintable():
        # Nothing of the Other or Separator categories but the space: none of the characters below.
        return None
    for char in text:
        if unicodedata.category(char) in _UNPRINTABLE_CATEGORIES or len(f"a{char}b".splitlines()) > 1:
            return f"U+{ord(char):04X}"
    return None


def check_typed_value(name: str, text: str, types: Mapping[str, ParamType] | None = None) -> list[Problem]:
    """A number, time or boolean exactly as Postfix reads it; anything else makes its daemons exit.

    A value with $-expressions is judged on every text it can expand to: `${stress?{10}:{300}}s`
    is 10s or 300s, `${name?5}` is 5 or empty (and empty is refused).
    """
    table = parameter_types() if types is None else types
    ptype = table.get(name)
    # A legacy name of 3.7 is a parameter of its own in 3.5 (postscreen_blacklist_action, say), whose type the
    # 3.7 table does not give: judged as text, as any name the table lacks.
    if ptype is None or ptype.kind in ("raw", "legacy"):
        return []
    variants = expansion_variants(text)
    if variants is None:
        return [Problem(name, f"has more than {MAX_VARIANTS} ways to expand; simplify its $-expressions")]
    for variant in variants:
        error = _variant_error(name, ptype, variant, table)
        if error:
            shown = _REFERENCE_MARK_RE.sub(r"$\1", variant)
            return [Problem(name, error if shown == text else f"can expand to {shown!r}, which {error}")]
    return []


def _variant_error(name: str, ptype: ParamType, variant: str, table: Mapping[str, ParamType]) -> str | None:
    refs = _REFERENCE_MARK_RE.findall(variant)
    if refs and _REFERENCE_MARK_RE.fullmatch(variant):
        return _reference_type_error(name, ptype, refs[0], table)
    if refs:
        shown = _REFERENCE_MARK_RE.sub(r"$\1", variant)
        return f"must be {_describe(name, ptype)} or one $parameter of that kind, got {shown!r}"
    return {"int": _number_error, "long": _number_error, "time": _time_error, "bool": _bool_error}[ptype.kind](
        name, variant, ptype
    )


def _describe(name: str, ptype: ParamType) -> str:
    if ptype.kind == "bool":
        return "yes or no"
    if ptype.kind == "time":
        return f"a Postfix time value such as 60s, 5m or 1h (a bare number counts in {ptype.unit})"
    kind = DOS_DIRECTIVES.get(name)
    return "a whole number of bytes" if kind is Kind.BYTES else "a whole number"


def _bounds(name: str, ptype: ParamType) -> tuple[int, int]:
    ceiling = LONG_MAX if ptype.kind == "long" else INT_MAX
    floor = -ceiling - 1 if name in SIGNED_PARAMETERS else 0
    return (ptype.minimum or floor), (ptype.maximum or ceiling)


def _number_error(name: str, text: str, ptype: ParamType) -> str | None:
    low, high = _bounds(name, ptype)
    expected = f"{_describe(name, ptype)} from {low} to {high} (ASCII digits only)"
    if not _INTEGER_RE.fullmatch(text) or (text.startswith("-") and name not in SIGNED_PARAMETERS):
        return f"must be {expected}, got {text!r}"
    if not low <= int(text) <= high:
        return (
            f"is {text} but must be {expected}: Postfix reads it as a C {ptype.kind} and every daemon that reads "
            "it would exit (bad numerical configuration)"
        )
    return None


def _time_error(name: str, text: str, ptype: ParamType) -> str | None:
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return f"must be {_describe(name, ptype)}, got {text!r}"
    number, unit = int(match.group(1)), match.group(2) or ptype.unit
    factor = TIME_UNITS[unit]
    # conv_time(): a number with a unit above seconds must stay below INT_MAX / unit.
    if number > INT_MAX or (factor > 1 and number >= INT_MAX // factor):
        return f"is {text} but Postfix cannot hold that many seconds (at most {INT_MAX}); use a smaller value"
    seconds, (low, high) = number * factor, _bounds(name, ptype)
    if not low <= seconds <= high:
        limits = f"at least {low} s" + (f" and at most {high} s" if ptype.maximum else "")
        return f"is {text} but must be {_describe(name, ptype)}, {limits}"
    return None


def _bool_error(name: str, text: str, ptype: ParamType) -> str | None:
    return None if text.lower() in ("yes", "no") else f"must be yes or no, got {text!r}"


def _reference_type_error(name: str, ptype: ParamType, target: str, table: Mapping[str, ParamType]) -> str | None:
    """`$other` in a typed parameter is fine when other holds the same kind of value."""
    other = table.get(target)
    numeric = {"int", "long"}
    if other is not None and (other.kind == ptype.kind or {other.kind, ptype.kind} <= numeric):
        return None
    return f"refers to ${target}, which is not {_describe(name, ptype)} in Postfix"


def expansion_variants(text: str) -> list[str] | None:
    """Every text a well-formed value can expand to, a reference kept as a mark; None when too many."""
    scan = _Expansions(text)
    variants = scan.parse()
    return None if scan.too_many else variants


def expansion_problems(name: str, text: str, known: frozenset[str]) -> list[Problem]:
    """`$name`, `${name}`, `$(name)` for names Postfix knows, `${name?text}`, `${name:text}`; `$$` is a dollar.

    A conditional may test any name: being undefined is what it asks about (Postfix's own default of
    smtpd_client_event_limit_exceptions tests a name that 3.7 no longer has).
    """
    scan = _Expansions(text)
    scan.parse()
    problems = [Problem(name, message) for message in scan.errors[:1]]
    unknown = sorted({n for n in scan.names if n not in known})
    if unknown and not problems:
        problems.append(
            Problem(
                name,
                "refers to " + ", ".join(f"${n}" for n in unknown) + ", which Postfix does not know "
                "(postconf -d); write $$ for a literal dollar sign",
            )
        )
    return problems


class _Expansions:
    """One pass over main.cf's $-expressions (mac_expand's syntax).

    It collects the names referenced outright, the syntax errors, and every text the value can
    expand to (a reference kept as a mark, since its value is the host's business).
    """

    def __init__(self, text: str):
        self.text = text
        self.names: list[str] = []
        self.errors: list[str] = []
        self.too_many = False

    def parse(self) -> list[str]:
        return self._text(0, None)[0]

    def _text(self, i: int, closer: str | None) -> tuple[list[str], int]:
        """Text from i up to `closer` (inside ${name?...} or { }) or the end; returns the index after it."""
        text, out = self.text, _Variants()
        plain = _PLAIN_RUN[closer]
        while i < len(text) and not self.errors:
            char = text[i]
            if closer is not None and char == closer:
                return out.texts(), i + 1
            if char == "{":
                starts_item = closer is None and (i == 0 or text[i - 1] in _ITEM_SEPARATORS)
                inner, i = self._text(i + 1, "}")
                parts = [f"{{{v}}}" for v in inner]
                if starts_item and not self.errors and i < len(text) and text[i] not in _ITEM_SEPARATORS:
                    # A list item that opens with { ends with its }: Postfix warns of anything glued after it.
                    self.errors.append(
                        f"has {text[i - 1 : i + 1]!r}: after a {{ }} group Postfix wants a space or a comma"
                    )
            elif char == "}":
                # Postfix groups list items with { }: a stray closer would end a group nobody opened.
                self.errors.append("has a } with no { before it")
                break
            elif char == "$":
                parts, i = self._dollar(i)
            else:
                # A run of plain characters at once: one step per run, not one per character.
                run = plain.match(text, i)
                assert run is not None
                parts, i = [run.group(0)], run.end()
            self.too_many |= out.extend(parts)
        if closer is not None and not self.errors:
            self.errors.append(f"has an unclosed {'${' if closer == '}' else '$('} or {{ (missing {closer!r})")
        return out.texts(), len(text)

    def _dollar(self, i: int) -> tuple[list[str], int]:
        text, after = self.text, self.text[i + 1 : i + 2]
        if after == "$":
            return ["$"], i + 2
        if after not in ("{", "("):
            match = _NAME_RE.match(text, i + 1)
            if match is None:
                self.errors.append("has a $ that starts no parameter name; write $$ for a literal dollar sign")
                return [], len(text)
            return [self._reference(match.group(0))], match.end()
        closer = "}" if after == "{" else ")"
        match = _NAME_RE.match(text, i + 2)
        following = text[match.end() : match.end() + 1] if match else ""
        if match is None or following not in (closer, "?", ":"):
            self.errors.append(
                f"has {text[i : i + 12]!r}, which is not $name, ${{name}}, $(name), ${{name?value}} or "
                "${name:value}; write $$ for a literal dollar sign"
            )
            return [], len(text)
        j = match.end() + 1
        if following == closer:
            return [self._reference(match.group(0))], j
        # ${name?value} / ${name:value}: the value or nothing; ${name?{a}:{b}}: one of the two.
        if text[j : j + 1] != "{":
            value, j = self._text(j, closer)
            return [*value, ""], j
        first, j = self._text(j + 1, "}")
        second = [""]
        if text[j : j + 2] == ":{":
            second, j = self._text(j + 2, "}")
        rest, j = self._text(j, closer)
        return self._product(first + second, rest), j

    def _reference(self, name: str) -> str:
        self.names.append(name)
        return f"\x00{name}\x01"

    def _product(self, heads: list[str], tails: list[str]) -> list[str]:
        variants = _Variants(heads)
        self.too_many |= variants.extend(tails)
        return variants.texts()


class _Variants:
    """The texts a value can expand to so far, each kept as a list of pieces.

    Appending a piece to every variant costs one step per variant, whatever the length of the text: rebuilding
    each string per piece made a long value cost the square of its length. Only a real choice
    (`${name?a:b}`) multiplies the variants, up to MAX_VARIANTS.
    """

    def __init__(self, texts: list[str] | None = None):
        self._pieces: list[list[str]] = [[t] for t in texts] if texts is not None else [[]]

    def extend(self, tails: list[str]) -> bool:
        """Every variant followed by every tail; True when some were dropped (more than MAX_VARIANTS)."""
        if len(tails) == 1:
            for pieces in self._pieces:
                pieces.append(tails[0])
            return False
        combined = list(dict.fromkeys("".join(p) + t for p in self._pieces for t in tails))
        self._pieces = [[c] for c in combined[:MAX_VARIANTS]]
        return len(combined) > MAX_VARIANTS

    def texts(self) -> list[str]:
        return list(dict.fromkeys("".join(p) for p in self._pieces))


def check_dos_value(name: str, text: str) -> list[Problem]:
    """The guide's limits beyond their Postfix type: the exempt clients must be a network list."""
    if DOS_DIRECTIVES[name] is Kind.NETWORKS:
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
        return not _looks_like_ipv6(item) and bool(_TABLE_RE.fullmatch(item))
    return bool(_HOSTNAME_RE.fullmatch(item))


def _is_bracketed_ipv6(item: str) -> bool:
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?:/([0-9]{1,3}))?", item)
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
    match = _TIME_RE.fullmatch(text)
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
    if not all(_INTEGER_RE.fullmatch(effective[k]) for k in POSTFIX_DEFAULTS):
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
    directives: Mapping[str, str],
    known: frozenset[str] | None = None,
    unknown: Iterable[str] = (),
    postfix: str = "Postfix",
) -> list[Problem]:
    """Every rule for a set of main.cf directives (values already as text).

    `known`: the names to accept (the host's `postconf -d`; by default any shipped series'); `postfix` names the
    Postfix that knows them in a refusal ("Postfix 3.7.11" on a host).
    """
    names = any_series_parameters() if known is None else known
    problems: list[Problem] = []
    for name, text in directives.items():
        text_problems = check_value_text(name, text)
        problems += text_problems
        if text_problems:
            continue
        if name not in names:
            problems.append(Problem(name, f"is not a parameter that {postfix} knows (postconf -d); check the spelling"))
            continue
        raw = parameter_types().get(name, ParamType("text")).kind == "raw"
        value_problems = [] if raw else expansion_problems(name, text, names | legacy_parameters())
        if not value_problems:
            value_problems = check_typed_value(name, text)
        if not value_problems and name in DOS_DIRECTIVES:
            value_problems = check_dos_value(name, text)
        if not value_problems and text != text.strip(" "):
            # Postfix drops them when it reads the file: the host would never hold what the stack says.
            value_problems = [Problem(name, "starts or ends with a space, which Postfix drops; remove it")]
        if not value_problems and "  " in text:
            # Postfix reads a run of spaces inside a value as one: state and host would differ for ever.
            value_problems = [Problem(name, "has two spaces in a row, which Postfix reads as one; write one")]
        problems += value_problems
    if not problems:
        problems += check_cross_fields({k: v for k, v in directives.items() if k in POSTFIX_DEFAULTS}, unknown)
    return problems


# `smtpd_tls_protocols = >=TLSv1.2` is Postfix 3.6's syntax. Postfix 3.5's tools accept it without a word, and its
# smtpd then logs 'Invalid TLS protocol list ">=TLSv1.2": disabling TLS support' and offers no STARTTLS.
GE_PROTOCOLS_SINCE = (3, 6)
# The protocols Postfix names, oldest first: before 3.6, `>=X` is said by excluding each one older than X.
PROTOCOLS_IN_ORDER = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
_GE_RE = re.compile(r">=(\S+)")


def parse_version(text: str) -> tuple[int, ...] | None:
    """`postconf -h mail_version` prints e.g. "3.7.11"; None when it does not read as a version."""
    match = re.match(r"^\s*(\d+(?:\.\d+)+)", text)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def needs_exclusions(version: str) -> bool:
    """Whether this Postfix lacks the >= and <= protocol syntax (a version that cannot be read is not judged)."""
    parsed = parse_version(version)
    return parsed is not None and parsed[:2] < GE_PROTOCOLS_SINCE


def exclusions_for(value: str) -> str | None:
    """`>=TLSv1.2` as the list of exclusions that means the same before Postfix 3.6; None for anything else."""
    match = _GE_RE.fullmatch(value.strip())
    if match is None or match.group(1) not in PROTOCOLS_IN_ORDER[1:]:
        return None
    return ", ".join(f"!{p}" for p in PROTOCOLS_IN_ORDER[: PROTOCOLS_IN_ORDER.index(match.group(1))])


def version_problems(
    desired: Mapping[str, str], version: str, fields: Mapping[str, str] | None = None
) -> list[Problem]:
    """What the host's Postfix `version` cannot read of `desired`: the >= and <= protocol syntax before 3.6.

    Each problem names the setting the directive comes from (`fields`, else directives.NAME).
    """
    if not needs_exclusions(version):
        return []
    problems = []
    for name, value in desired.items():
        if not name.endswith("_protocols") or (">=" not in value and "<=" not in value):
            continue
        equivalent = exclusions_for(value)
        advice = f"write {equivalent!r}" if equivalent else "list the protocols to exclude, such as !SSLv2, !SSLv3"
        problems.append(
            Problem(
                (fields or {}).get(name, f"directives.{name}"),
                f"{value!r} is Postfix 3.6's syntax; Postfix {version} does not know it (its smtpd would offer no "
                f"TLS at all): {advice}",
            )
        )
    return problems


def parameter_problems(names: Iterable[str], version: str, fields: Mapping[str, str] | None = None) -> list[Problem]:
    """Names the host's Postfix series does not know, judged on the `postconf -d` list shipped for that series
    (at preview, from the version the last up or refresh read; at apply the host's own list judges).

    A series without a shipped list, and a name no series knows (check refused it already), are not judged here.
    """
    parsed = parse_version(version)
    known = series_parameters(parsed) if parsed else None
    if known is None:
        return []
    problems = []
    for name in names:
        if name in known or name not in any_series_parameters():
            continue
        others = [".".join(map(str, s)) for s in PARAMETER_LISTS if name in (series_parameters(s) or frozenset())]
        problems.append(
            Problem(
                (fields or {}).get(name, f"directives.{name}"),
                f"is not a parameter that Postfix {version} knows (postconf -d of {parsed[0]}.{parsed[1]} has no "
                f"{name}; Postfix {' and '.join(others)} {'has' if len(others) == 1 else 'have'} it)",
            )
        )
    return problems
