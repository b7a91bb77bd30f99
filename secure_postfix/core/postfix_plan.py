"""Turn "what main.cf says now" plus "what the stack wants" into a new main.cf.

Originals are recorded as the exact text of the definition (or None when the
directive was absent), so that giving a directive back restores its line byte
for byte and leaves every other line alone.

A managed name defined more than once (Postfix warns and takes the last) is
resolved by the edit: the effective definition becomes the managed one, in
place, and the earlier ones are removed. They are recorded in `earlier` with
their position in the file as it was before any of our removals ("base
positions"), so that giving the name back puts every line where it was.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from secure_postfix.core.maincf import MainCf, printable

# name -> ((base position, exact text), ...) of overridden definitions the edit removed.
Earlier = Mapping[str, list[tuple[int, str]]]


@dataclass(frozen=True)
class Change:
    name: str
    old: str | None
    new: str | None
    merged: int = 0  # earlier definitions of the name that the change removed or put back

    def __str__(self) -> str:
        note = f" ({self.merged} overridden definition(s) also)" if self.merged else ""
        return f"{self.name}: {_shown(self.old)} -> {_shown(self.new)}{note}"


def _shown(value: str | None) -> str:
    return "(unset)" if value is None else printable(value)


@dataclass
class Plan:
    """The result of planning an edit: the new file and what it changes."""

    text: str
    changes: list[Change]
    originals: dict[str, str | None] = field(default_factory=dict)
    earlier: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def restored_duplicates(self) -> tuple[str, ...]:
        """Names whose overridden definitions this plan puts back (their warnings are the original's)."""
        return tuple(c.name for c in self.changes if c.merged and c.name not in self.originals)


def record_originals(current: MainCf, names: Iterable[str], known: Mapping[str, str | None]) -> dict[str, str | None]:
    """Originals for `names`: those already known are kept, new ones are read from the file."""
    return {name: known[name] if name in known else current.raw_definition(name) for name in names}


def _removed_positions(earlier: Earlier) -> list[int]:
    return sorted(pos for items in earlier.values() for pos, _ in items)


def _to_base(idx: int, removed: list[int]) -> int:
    """A position in the current file -> its base position, given the base positions now removed."""
    for pos in removed:
        if pos <= idx:
            idx += 1
        else:
            break
    return idx


def _record_earlier(current: MainCf, names: Iterable[str], known: Earlier) -> dict[str, list[tuple[int, str]]]:
    removed = _removed_positions(known)
    recorded = {name: list(known[name]) for name in names if name in known}
    for name in names:
        if name in known:
            continue
        positions = current.positions(name)[:-1]
        if positions:
            recorded[name] = [(_to_base(idx, removed), current.entries[idx].raw) for idx in positions]
    return recorded


def plan_edit(
    text: str,
    desired: Mapping[str, str],
    originals: Mapping[str, str | None] | None = None,
    earlier: Earlier | None = None,
) -> Plan:
    """Set every desired directive; give back every recorded one that is no longer desired."""
    originals = originals or {}
    earlier = earlier or {}
    current = MainCf.parse(text)
    kept = record_originals(current, desired, originals)
    kept_earlier = _record_earlier(current, desired, earlier)
    edited = MainCf.parse(text)
    changes: list[Change] = []
    # Names in order: a map's order does not survive the engine (a gRPC Struct), and the same stack must write
    # the same bytes however it reached the provider.
    for name, value in sorted(desired.items()):
        before = current.get(name)
        duplicates = len(edited.keep_last(name))
        if before != value or duplicates:
            edited.set(name, value)
            changes.append(Change(name, before, value, duplicates))
    given_back = [name for name in originals if name not in desired]
    # Positions are counted with every removal in place, this plan's own ones included.
    changes += _give_back(edited, given_back, originals, {**earlier, **kept_earlier})
    return Plan(text=edited.render(), changes=changes, originals=kept, earlier=kept_earlier)


def plan_restore(text: str, originals: Mapping[str, str | None], earlier: Earlier | None = None) -> Plan:
    """Give back every recorded original (used on delete)."""
    edited = MainCf.parse(text)
    changes = _give_back(edited, list(originals), originals, earlier or {})
    return Plan(text=edited.render(), changes=changes, originals={})


def _give_back(edited: MainCf, names: list[str], originals: Mapping[str, str | None], earlier: Earlier) -> list[Change]:
    """Put `names` back as recorded: the effective definition in place, then the overridden ones."""
    changes: dict[str, Change] = {}
    for name in names:
        change = _give_back_one(edited, name, originals[name])
        if change is not None:
            changes[name] = change
    still_removed = _removed_positions(earlier)
    back = sorted((pos, name, raw) for name in names for pos, raw in earlier.get(name, []))
    for pos, name, raw in back:
        still_removed.remove(pos)
        edited.insert_raw(pos - bisect.bisect_left(still_removed, pos), name, raw)
        old = changes.get(name, Change(name, edited.get(name), edited.get(name)))
        changes[name] = Change(name, old.old, old.new, old.merged + 1)
    return [changes[name] for name in names if name in changes]


def _give_back_one(edited: MainCf, name: str, raw: str | None) -> Change | None:
    before = edited.get(name)
    if raw is None:
        if before is None:
            return None
        edited.unset(name)
        return Change(name, before, None)
    if edited.raw_definition(name) == raw and len(edited.positions(name)) == 1:
        return None
    edited.keep_last(name)
    edited.set_raw(name, raw)
    return Change(name, before, edited.get(name))


def live_values(text: str, names: Iterable[str]) -> dict[str, str | None]:
    """The values of `names` as the file defines them (None when absent)."""
    parsed = MainCf.parse(text)
    return {name: parsed.get(name) for name in names}
