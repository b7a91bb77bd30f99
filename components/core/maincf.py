"""Parse and edit Postfix main.cf while keeping every byte we do not manage.

main.cf syntax (postconf(5)): `name = value`; a line that starts with whitespace
continues the previous logical line; a line whose first non-blank character is
`#` is a comment. Comments are only recognised at the start of a line, so `#`
inside a value is part of the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME_RE = re.compile(r"^([A-Za-z0-9_.\-]+)\s*=\s?(.*)$", re.DOTALL)
_REFERENCE_RE = re.compile(r"\$[{(]?([A-Za-z0-9_]+)")


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
    stripped = line.strip()
    return stripped == "" or stripped.startswith("#")


def _is_continuation(line: str) -> bool:
    return line[:1] in (" ", "\t") and not _is_ignorable(line)


def logical_value(raw: str) -> str:
    """The value of a definition, continuation lines joined by one space."""
    first, *rest = raw.splitlines()
    match = _NAME_RE.match(first)
    if match is None:
        raise MainCfSyntaxError(f"not a parameter definition: {first!r}")
    pieces = [match.group(2).strip()] + [ln.strip() for ln in rest if _is_continuation(ln)]
    return " ".join(p for p in pieces if p)


class MainCf:
    """An editable main.cf. Edits touch only the definitions they name."""

    def __init__(self, entries: list[Entry]):
        self.entries = entries

    @classmethod
    def parse(cls, text: str) -> MainCf:
        lines = text.splitlines(keepends=True)
        entries: list[Entry] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            if _is_ignorable(line):
                entries.append(Entry(raw=line))
                i += 1
                continue
            if line[:1].isspace():
                raise MainCfSyntaxError(f"line {i + 1}: continuation line with nothing to continue: {line.strip()!r}")
            match = _NAME_RE.match(line.rstrip("\r\n"))
            if match is None:
                raise MainCfSyntaxError(f"line {i + 1}: missing '=' after parameter name: {line.strip()!r}")
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

    def names(self) -> list[str]:
        return [e.name for e in self.entries if e.name is not None]

    def set(self, name: str, value: str) -> None:
        self.set_raw(name, f"{name} = {value}\n")

    def set_raw(self, name: str, raw: str) -> None:
        """Replace the effective definition in place, or append one at the end."""
        idx = self._last_index(name)
        entry = Entry(raw=raw if raw.endswith("\n") else raw + "\n", name=name)
        if idx is None:
            if self.entries and not self.entries[-1].raw.endswith("\n"):
                last = self.entries[-1]
                self.entries[-1] = Entry(raw=last.raw + "\n", name=last.name)
            self.entries.append(entry)
        else:
            self.entries[idx] = entry

    def unset(self, name: str) -> None:
        self.entries = [e for e in self.entries if e.name != name]


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


def references(value: str) -> set[str]:
    """Names referenced with $name, ${name}, ${name:...} or $(name) in a value."""
    return set(_REFERENCE_RE.findall(value))
