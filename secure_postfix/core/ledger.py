"""The record of first originals that a host keeps beside the files we manage.

State belongs to one resource; the host outlives resources. When a site is
renamed, or its host is written another way (another SSH port, another form of
the address), the engine creates the new resource before it deletes the old
one, both on the same machine. Read from state alone, the new resource would
take the old one's values for originals, and the old one's delete would undo
what the new one declares. The ledger, a small JSON file owned by the project
beside main.cf (or in /etc/dovecot), fixes both:

- `originals`: what each key was before any resource of this project touched
  it, recorded once by the first resource and never overwritten;
- `owners`: which resource (by id) declares which keys now;
- `pending`: a change under way (see postfix_config, and provider.FileJournal for
  a file replaced whole), so that an apply cut off half way is undone at the next
  contact.

A key names one managed thing: `main.cf:NAME`, `master.cf:NAME/TYPE` (an
entry, whose first original is its text), `path:/a/file`, or `path:/a/dir/`.
A delete gives back only the keys no other owner declares, and the ledger
itself goes when nothing is owned and nothing is pending, so the host ends
byte-identical to before the first apply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FILE_NAME = "secure-postfix.ledger.json"
VERSION = 1
# A ledger holds a few keys per managed directive or file: anything near this size was not written by us.
MAX_BYTES = 1_000_000


class LedgerError(ValueError):
    """The ledger on the host cannot be read."""


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


# What each first original may hold: a main.cf definition (and the overridden ones it replaced), whether a
# file existed, the Dovecot file's text.
_ORIGINAL_FIELDS = {
    "raw": _optional_text,
    "earlier": lambda v: isinstance(v, list)
    and all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], int) and isinstance(e[1], str) for e in v),
    "existed": lambda v: isinstance(v, bool),
    "text": _optional_text,
}
_PENDING_FIELDS = {
    "owner": lambda v: isinstance(v, str),
    "started": lambda v: isinstance(v, str),
    "before": lambda v: isinstance(v, str),
    "after": lambda v: isinstance(v, str),
    "files": _strings,
    "made": _strings,
    # A whole-file change (Dovecot's file, master.cf): which file, and its text before (None: absent).
    "path": lambda v: isinstance(v, str),
    "text": _optional_text,
}


def schema_problem(doc: Mapping[str, Any]) -> str | None:
    """What in a parsed ledger is not of the shape this project writes, or None."""
    owners, originals, pending = doc.get("owners") or {}, doc.get("originals") or {}, doc.get("pending")
    if not isinstance(owners, dict) or not all(_strings(keys) for keys in owners.values()):
        return "owners must map each resource to a list of keys"
    if not isinstance(originals, dict):
        return "originals must map each key to what it was"
    for key, first in originals.items():
        if not isinstance(first, dict) or any(
            f not in _ORIGINAL_FIELDS or not _ORIGINAL_FIELDS[f](v) for f, v in first.items()
        ):
            return f"originals[{key[:80]!r}] is not a recorded original"
    if pending is not None and (
        not isinstance(pending, dict)
        or any(f not in _PENDING_FIELDS or not _PENDING_FIELDS[f](v) for f, v in pending.items())
    ):
        return "pending must be a record of a change under way"
    return None


def directive_key(name: str) -> str:
    return f"main.cf:{name}"


def path_key(path: str) -> str:
    return f"path:{path}"


def service_key(entry: str) -> str:
    """A master.cf entry, by its service name and type (`submission/inet`)."""
    return f"master.cf:{entry}"


def key_name(key: str) -> str:
    return key.partition(":")[2]


@dataclass
class Ledger:
    owners: dict[str, list[str]] = field(default_factory=dict)
    originals: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Any] | None = None

    @classmethod
    def parse(cls, text: str | None) -> Ledger:
        if not text:
            return cls()
        if len(text) > MAX_BYTES:
            raise LedgerError(f"is {len(text):,} bytes, more than a ledger can be ({MAX_BYTES:,})")
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise LedgerError(f"is not JSON ({str(exc)[:200]})") from None
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise LedgerError(f"has an unknown format (version {doc.get('version') if isinstance(doc, dict) else '?'})")
        problem = schema_problem(doc)
        if problem:
            raise LedgerError(f"does not have the ledger's shape: {problem}")
        return cls(
            owners={k: list(v) for k, v in (doc.get("owners") or {}).items()},
            originals=dict(doc.get("originals") or {}),
            pending=doc.get("pending") or None,
        )

    def render(self) -> str:
        # ensure_ascii keeps the bytes of a main.cf that is not UTF-8 (lone surrogates) as \\udcXX escapes.
        doc = {"version": VERSION, "owners": self.owners, "originals": self.originals}
        if self.pending:
            doc["pending"] = self.pending
        return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n"

    @property
    def empty(self) -> bool:
        return not self.owners and not self.pending

    def declared_by_others(self, owner: str) -> set[str]:
        return {key for other, keys in self.owners.items() if other != owner for key in keys}

    def first(self, keys: Iterable[str]) -> dict[str, Any]:
        """The first originals recorded for `keys` (keys never recorded are left out)."""
        return {key: self.originals[key] for key in keys if key in self.originals}

    def claim(self, owner: str, keys: Iterable[str], originals: Mapping[str, Any]) -> None:
        """`owner` now declares exactly `keys`; originals are recorded only where none is yet."""
        keys = sorted(set(keys))
        for key in keys:
            if key not in self.originals and key in originals:
                self.originals[key] = originals[key]
        if keys:
            self.owners[owner] = keys
        else:
            self.owners.pop(owner, None)
        self._forget_unowned()

    def release(self, owner: str, keys: Iterable[str] = ()) -> None:
        """`owner` is gone (or, with `keys`, no longer declares those)."""
        keys = set(keys)
        if keys:
            remaining = [k for k in self.owners.get(owner, []) if k not in keys]
            self.claim(owner, remaining, {})
        else:
            self.owners.pop(owner, None)
            self._forget_unowned()

    def _forget_unowned(self) -> None:
        owned = {key for keys in self.owners.values() for key in keys}
        self.originals = {k: v for k, v in self.originals.items() if k in owned}
