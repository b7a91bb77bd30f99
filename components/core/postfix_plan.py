"""Turn "what main.cf says now" plus "what the stack wants" into a new main.cf.

Originals are recorded as the exact text of the definition (or None when the
directive was absent), so that giving a directive back restores its line byte
for byte and leaves every other line alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from components.core.maincf import MainCf, printable


@dataclass(frozen=True)
class Change:
    name: str
    old: str | None
    new: str | None

    def __str__(self) -> str:
        return f"{self.name}: {_shown(self.old)} -> {_shown(self.new)}"


def _shown(value: str | None) -> str:
    return "(unset)" if value is None else printable(value)


@dataclass
class Plan:
    """The result of planning an edit: the new file and what it changes."""

    text: str
    changes: list[Change]
    originals: dict[str, str | None] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.changes


def record_originals(current: MainCf, names: Iterable[str], known: Mapping[str, str | None]) -> dict[str, str | None]:
    """Originals for `names`: those already known are kept, new ones are read from the file."""
    return {name: known[name] if name in known else current.raw_definition(name) for name in names}


def plan_edit(
    text: str,
    desired: Mapping[str, str],
    originals: Mapping[str, str | None] | None = None,
) -> Plan:
    """Set every desired directive; give back every recorded one that is no longer desired."""
    originals = originals or {}
    current = MainCf.parse(text)
    kept = record_originals(current, desired, originals)
    edited = MainCf.parse(text)
    changes: list[Change] = []
    for name, value in desired.items():
        before = current.get(name)
        if before != value:
            edited.set(name, value)
            changes.append(Change(name, before, value))
    for name, raw in originals.items():
        if name in desired:
            continue
        changes += _give_back(edited, name, raw)
    return Plan(text=edited.render(), changes=changes, originals=kept)


def plan_restore(text: str, originals: Mapping[str, str | None]) -> Plan:
    """Give back every recorded original (used on delete)."""
    edited = MainCf.parse(text)
    changes: list[Change] = []
    for name, raw in originals.items():
        changes += _give_back(edited, name, raw)
    return Plan(text=edited.render(), changes=changes, originals={})


def _give_back(edited: MainCf, name: str, raw: str | None) -> list[Change]:
    before = edited.get(name)
    if raw is None:
        if before is None:
            return []
        edited.unset(name)
        return [Change(name, before, None)]
    if edited.raw_definition(name) == raw:
        return []
    edited.set_raw(name, raw)
    return [Change(name, before, edited.get(name))]


def live_values(text: str, names: Iterable[str]) -> dict[str, str | None]:
    """The values of `names` as the file defines them (None when absent)."""
    parsed = MainCf.parse(text)
    return {name: parsed.get(name) for name in names}
