"""Parse and edit Postfix main.cf while keeping every byte we do not manage.

main.cf syntax (postconf(5)): `name = value`; a line that starts with whitespace
continues the previous logical line; a line whose first non-blank character is
`#` is a comment. Comments are only recognised at the start of a line, so `#`
inside a value is part of the value.

Like Postfix, the parser splits lines on newline only and treats only ASCII
blanks as whitespace: a U+2028 or a NEL byte inside a value is part of it.
The text is the file's bytes decoded with `decode()` below, so a file that is
not UTF-8 keeps every byte through parse and render.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass

_NAME_RE = re.compile(r"^([A-Za-z0-9_.\-]+)[ \t\r\f\v]*=[ \t\r\f\v]?(.*)$", re.DOTALL)
_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+\Z")
# What Postfix's ISSPACE() calls whitespace; str.strip() would also take U+2028, NEL and friends.
_BLANKS = " \t\n\r\f\v"
_ENCODING = ("utf-8", "surrogateescape")


def decode(data: bytes) -> str:
    """main.cf bytes as text; bytes that are not UTF-8 survive as lone surrogates."""
    return data.decode(*_ENCODING)


def encode(text: str) -> bytes:
    """The exact bytes `decode` was given."""
    return text.encode(*_ENCODING)


def printable(text: str) -> str:
    """Text safe to show or store (UTF-8): bytes that are not UTF-8 appear as \\xNN."""
    return encode(text).decode("utf-8", "backslashreplace")


def split_lines(text: str) -> list[str]:
    """Lines with their newline, split on newline only (as Postfix reads main.cf)."""
    return _LINE_RE.findall(text)


class MainCfSyntaxError(ValueError):
    """main.cf has a line Postfix itself would refuse."""


@dataclass(frozen=True)
class Entry:
    """One piece of the file: a parameter definition or an opaque run of text.

    `raw` is the exact text, newline(s) included, so rendering is lossless.
    """

    raw: str
    name: str | None = None

    @property
    def value(self) -> str | None:
        if self.name is None:
            return None
        return logical_value(self.raw)


def _is_ignorable(line: str) -> bool:
    stripped = line.strip(_BLANKS)
    return stripped == "" or stripped.startswith("#")


def _is_continuation(line: str) -> bool:
    return line[:1] in (" ", "\t") and not _is_ignorable(line)


def logical_value(raw: str) -> str:
    """The value of a definition, continuation lines joined by one space."""
    first, *rest = raw.rstrip("\n").split("\n")
    match = _NAME_RE.match(first)
    if match is None:
        raise MainCfSyntaxError(f"not a parameter definition: {printable(first)!r}")
    pieces = [match.group(2).strip(_BLANKS)] + [ln.strip(_BLANKS) for ln in rest if _is_continuation(ln)]
    return " ".join(p for p in pieces if p)


class MainCf:
    """An editable main.cf. Edits touch only the definitions they name."""

    def __init__(self, entries: list[Entry]):
        self.entries = entries

    @classmethod
    def parse(cls, text: str) -> MainCf:
        lines = split_lines(text)
        entries: list[Entry] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            if _is_ignorable(line):
                entries.append(Entry(raw=line))
                i += 1
                continue
            if line[:1] in _BLANKS:
                shown = printable(line.strip(_BLANKS))
                raise MainCfSyntaxError(f"line {i + 1}: continuation line with nothing to continue: {shown!r}")
            match = _NAME_RE.match(line.rstrip("\r\n"))
            if match is None:
                shown = printable(line.strip(_BLANKS))
                raise MainCfSyntaxError(f"line {i + 1}: missing '=' after parameter name: {shown!r}")
            end = _definition_end(lines, i)
            entries.append(Entry(raw="".join(lines[i:end]), name=match.group(1)))
            i = end
        return cls(entries)

    def render(self) -> str:
        return "".join(e.raw for e in self.entries)

    def _last_index(self, name: str) -> int | None:
        for idx in range(len(self.entries) - 1, -1, -1):
            if self.entries[idx].name == name:
                return idx
        return None

    def get(self, name: str) -> str | None:
        """The effective value in this file (the last definition wins, as in Postfix)."""
        idx = self._last_index(name)
        return None if idx is None else self.entries[idx].value

    def raw_definition(self, name: str) -> str | None:
        idx = self._last_index(name)
        return None if idx is None else self.entries[idx].raw

    def positions(self, name: str) -> list[int]:
        """Indices (in `entries`) of every definition of `name`, in file order."""
        return [idx for idx, e in enumerate(self.entries) if e.name == name]

    def insert_raw(self, idx: int, name: str, raw: str) -> None:
        """Put a definition back at an index (clamped to the file); the file's final newline is kept as it is."""
        idx = max(0, min(idx, len(self.entries)))
        if idx == len(self.entries):
            self.set_raw_appended(name, raw)
            return
        self.entries.insert(idx, Entry(raw=raw if raw.endswith("\n") else raw + "\n", name=name))

    def set_raw_appended(self, name: str, raw: str) -> None:
        open_ended = self._open_ended
        self.entries.append(Entry(raw=raw if raw.endswith("\n") else raw + "\n", name=name))
        if open_ended:
            self._with_end(len(self.entries) - 2, newline=True)
            self._with_end(len(self.entries) - 1, newline=False)

    def keep_last(self, name: str) -> list[int]:
        """Remove every definition of `name` but the effective one; returns the indices removed."""
        earlier = self.positions(name)[:-1]
        for idx in reversed(earlier):
            del self.entries[idx]
        return earlier

    def set(self, name: str, value: str) -> None:
        self.set_raw(name, f"{name} = {value}\n")

    @property
    def _open_ended(self) -> bool:
        """True when the file ends without a newline; every edit keeps it that way (exact restore)."""
        return bool(self.entries) and not self.entries[-1].raw.endswith("\n")

    def _with_end(self, idx: int, newline: bool) -> None:
        entry = self.entries[idx]
        raw = entry.raw.removesuffix("\n") + ("\n" if newline else "")
        self.entries[idx] = Entry(raw=raw, name=entry.name)

    def set_raw(self, name: str, raw: str) -> None:
        """Replace the effective definition in place, or append one at the end."""
        idx = self._last_index(name)
        open_ended = self._open_ended
        entry = Entry(raw=raw if raw.endswith("\n") else raw + "\n", name=name)
        if idx is None:
            self.set_raw_appended(name, entry.raw)
            return
        self.entries[idx] = entry
        if open_ended:
            self._with_end(len(self.entries) - 1, newline=False)

    def unset(self, name: str) -> None:
        open_ended = self._open_ended
        self.entries = [e for e in self.entries if e.name != name]
        if open_ended and self.entries:
            self._with_end(len(self.entries) - 1, newline=False)


def _definition_end(lines: list[str], start: int) -> int:
    """Index just past the logical line that starts at `start`.

    Comment and blank lines inside a continued value belong to it only when a
    continuation line follows them; otherwise they end the definition.
    """
    end = start + 1
    probe = end
    while probe < len(lines):
        line = lines[probe]
        if _is_continuation(line):
            probe += 1
            end = probe
        elif _is_ignorable(line):
            probe += 1
        else:
            break
    return end


_LINE_NUMBER_RE = re.compile(r", line \d+:")
_PROGRAM_RE = re.compile(r"^\S*?([^/\s]+): ")


def _warning_key(line: str) -> str:
    return _PROGRAM_RE.sub(r"\1: ", _LINE_NUMBER_RE.sub(",", line.strip()))


def new_warnings(staged: list[str], live: list[str], restored: Iterable[str] = ()) -> list[str]:
    """Warnings about a staged main.cf that the live one does not already cause (line numbers aside).

    Duplicates of `restored` names are the original file's own, put back on purpose.
    """
    known = {_warning_key(ln) for ln in live if "warning:" in ln}
    expected = tuple(f"overriding earlier entry: {name}=" for name in restored)
    return [
        ln for ln in staged if "warning:" in ln and _warning_key(ln) not in known and not any(e in ln for e in expected)
    ]


# -- a recorded definition in Pulumi state --------------------------------------------------
# A definition starts with its name, never with "=": the prefix marks bytes kept as base64.
STATE_BASE64_PREFIX = "=base64:"


def definition_to_state(raw: str | None) -> str:
    """State holds UTF-8 only: a definition with other bytes is kept exactly, as base64; absent is ""."""
    if not raw:
        return ""
    data = encode(raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return STATE_BASE64_PREFIX + base64.b64encode(data).decode("ascii")


def definition_from_state(stored: str) -> str | None:
    if stored.startswith(STATE_BASE64_PREFIX):
        return decode(base64.b64decode(stored.removeprefix(STATE_BASE64_PREFIX)))
    return stored or None
