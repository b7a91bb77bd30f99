"""The verdicts a change plans, per host and rule, from a preview's steps (pure).

A preview knows, for each PostfixConfig, the planned `main_cf` (new inputs) and the last state
(old outputs: `main_cf`, the `originals` an update or delete gives back, the host's own values of
what the stack leaves alone). The value in force after the change is the planned one, or, for a
directive that stops being managed, the original the host gets back: so dropping a directive is
judged on what the host will run, not passed over as "not managed".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secure_postfix.core import compliance as c
from secure_postfix.core import maincf

# How `pulumi preview --json` writes a value another resource computes at apply.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def original_value(name: str, stored: str | None) -> str:
    """The value a stored original definition gives back ("" when the directive was absent)."""
    text = maincf.definition_from_state(stored or "")
    if text is None:
        return ""
    try:
        value = maincf.MainCf.parse(text if text.endswith("\n") else text + "\n").get(name)
    except maincf.MainCfSyntaxError:
        return ""
    return value or ""


def _strings(mapping: Any) -> dict[str, str]:
    if not isinstance(mapping, Mapping):
        return {}
    return {str(k): v for k, v in mapping.items() if isinstance(v, str)}


def in_force_after(old_outputs: Mapping[str, Any] | None, new_inputs: Mapping[str, Any] | None) -> dict[str, str]:
    """main.cf values in force after the step: planned ones, and the originals of directives that leave."""
    planned = _strings((new_inputs or {}).get("main_cf"))
    if old_outputs:
        originals = _strings(old_outputs.get("originals"))
        for name in _strings(old_outputs.get("main_cf")):
            if name not in planned:
                planned[name] = original_value(name, originals.get(name))
    return planned


@dataclass(frozen=True)
class HostVerdicts:
    host: str
    resource: str
    operation: str
    planned: list[c.Finding]
    current: list[c.Finding] | None

    def changed(self) -> list[tuple[c.Finding, c.Finding | None]]:
        """(planned, current) for each rule whose status the step changes, or that fails as planned."""
        now = {f.rule.id: f for f in self.current or []}
        return [
            (f, now.get(f.rule.id))
            for f in self.planned
            if f.status is c.Status.FAIL or (now.get(f.rule.id) and now[f.rule.id].status is not f.status)
        ]


def verdicts(step: Mapping[str, Any], host: str, resource: str) -> HostVerdicts:
    """The planned and the current verdicts of one PostfixConfig step of `pulumi preview --json`."""
    old = step.get("oldState") or {}
    new = step.get("newState") or {}
    old_outputs = old.get("outputs") or None
    new_inputs = new.get("inputs") if new else None
    if step.get("op") in ("delete", "delete-replaced", "discard"):
        new_inputs = {"main_cf": {}}  # every directive goes back to its original
    scope = c.public_mx_of_props(new_inputs if new else (old.get("inputs") or {}))
    known_host = _strings(old_outputs.get("host_values")) if old_outputs and "host_values" in old_outputs else None
    values = in_force_after(old_outputs, new_inputs)
    pending = [n for n, v in values.items() if v == UNKNOWN]
    planned = c.judge(values, scope, pending=pending, host=known_host)
    current = None
    if old_outputs and isinstance(old_outputs.get("main_cf"), Mapping):
        current = c.judge(_strings(old_outputs["main_cf"]), c.public_mx_of_props(old_outputs), host=known_host)
    return HostVerdicts(host, resource, str(step.get("op", "")), planned, current)
