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
- `pending`: a change under way (see postfix_config), so that an apply cut off
  half way is finished or undone at the next contact.

A key names one managed thing: `main.cf:NAME`, or `path:/a/file`, or
`path:/a/dir/`. A delete gives back only the keys no other owner declares, and
the ledger itself goes when nothing is owned and nothing is pending, so the
host ends byte-identical to before the first apply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FILE_NAME = "secure-postfix.ledger.json"
VERSION = 1


class LedgerError(ValueError):
    """The ledger on the host cannot be read."""


def directive_key(name: str) -> str:
    return f"main.cf:{name}"


def path_key(path: str) -> str:
    return f"path:{path}"


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
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise LedgerError(f"is not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise LedgerError(f"has an unknown format (version {doc.get('version') if isinstance(doc, dict) else '?'})")
        return cls(
            owners={str(k): list(v) for k, v in (doc.get("owners") or {}).items()},
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
