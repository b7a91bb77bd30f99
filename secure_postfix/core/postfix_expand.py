"""Postfix's `$name` expansion, as `postconf -x` does it, for judging values (pure).

The forms: `$name`, `${name}`, `$(name)`, `${name?value}` (value when $name is not empty),
`${name:value}` (value when $name is empty), and `${name?{value}}` / `${name:{value}}`.
The caller says what a name is worth: its `resolve` returns the value, or raises `Unresolved`
when the value is not known where the judging happens.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Deeper nesting than this is a loop (Postfix itself stops at 100).
MAX_DEPTH = 20

_NAME = r"[A-Za-z0-9_]+"
_REFERENCE = re.compile(rf"\$(?:\{{({_NAME})(?:([?:])(\{{[^{{}}]*\}}|[^{{}}]*))?\}}|\(({_NAME})\)|({_NAME}))")


class Unresolved(Exception):
    """A reference whose value is not known here; the message says which and why."""


def references(text: str) -> list[str]:
    """Every name the text refers to directly (conditional values included)."""
    names = []
    for match in _REFERENCE.finditer(text):
        braced, _, inner, paren, bare = match.groups()
        names.append(braced or paren or bare)
        if inner:
            names += references(inner.removeprefix("{").removesuffix("}"))
    return names


def expand(text: str, resolve: Callable[[str], str], depth: int = 0) -> str:
    """The text with every reference replaced by its expanded value."""
    if depth > MAX_DEPTH:
        raise Unresolved(f"references nest deeper than {MAX_DEPTH} levels (a loop?)")

    def replace(match: re.Match[str]) -> str:
        braced, operator, inner, paren, bare = match.groups()
        name = braced or paren or bare
        value = expand(resolve(name), resolve, depth + 1)
        if not operator:
            return value
        chosen = inner.removeprefix("{").removesuffix("}") if inner else ""
        wanted = bool(value) if operator == "?" else not value
        return expand(chosen, resolve, depth + 1) if wanted else ("" if operator == "?" else value)

    return _REFERENCE.sub(replace, text)
