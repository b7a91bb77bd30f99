"""`python -m stackctl.pr_preview [--stack NAME]`: the Markdown comment a pull request gets from a preview.

It runs `pulumi preview --json` (no SSH connection: the state is the reference) and writes one line per
changed directive, naming the site and the host. Values the engine holds as secrets arrive as `[secret]`
and stay so; the comment never shows more than the engine's own display does.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stackctl.engine import EngineSettings, ensure_stack, pulumi_bin

SECRET = "[secret]"
# How the engine marks a secret value inside a property map.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
MARKER = "<!-- secure-postfix preview -->"
# Inputs of earlier releases that restated others (the compliance verdicts, the Dovecot file's text): the first
# preview after an upgrade drops them, which changes nothing on a host; the comment lists what the stack sets.
DERIVED = ("compliance", "managed_file")


@dataclass(frozen=True)
class Change:
    site: str
    host: str
    resource: str
    name: str
    old: str | None
    new: str | None

    def line(self) -> str:
        if self.old is None and self.new is None:
            what = "changes"
        elif self.old is None:
            what = f"set to `{self.new}`"
        elif self.new is None:
            what = f"`{self.old}` → back to the host's original"
        else:
            what = f"`{self.old}` → `{self.new}`"
        return f"- site `{self.site}`, host `{self.host}` (`{self.resource}`): `{self.name}` {what}"


def _text(value: Any) -> str:
    """A value as one short line: secrets as [secret], a PEM block or other multi-line text by its first line."""
    if value == SECRET or (isinstance(value, Mapping) and _SECRET_SIG in value):
        return SECRET
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    first, newline, _ = text.partition("\n")
    return f"{first} …" if newline else text


def _leaves(props: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(name, value) of every leaf; the directives of `main_cf` go by their own names."""
    for key, value in props.items():
        if key.startswith("__") or key in DERIVED:  # the engine's own fields (the pickled provider), verdicts
            continue
        name = key if prefix in ("", "main_cf.") else prefix + key
        if isinstance(value, Mapping) and _SECRET_SIG not in value and value:
            yield from _leaves(value, f"{key}.")
        else:
            yield name, value


def _urn_parts(urn: str) -> tuple[str, str]:
    """(type chain, name) of `urn:pulumi:STACK::PROJECT::TYPES::NAME`."""
    parts = urn.split("::")
    return (parts[2], parts[3]) if len(parts) == 4 else ("", urn)


def _site(state: Mapping[str, Any], name: str) -> str:
    """The MailSite a resource belongs to (its parent), else the resource itself."""
    parent_types, parent_name = _urn_parts(state.get("parent") or "")
    return parent_name if parent_types.endswith("MailSite") else name


_PATH_PART = re.compile(r'\.?([A-Za-z_$][\w$]*)|\[("(?:[^"\\]|\\.)*")\]|\[(\d+)\]')


def path_parts(path: str) -> list[str | int]:
    """The parts of an engine property path: `main_cf.message_size_limit`, `compliance["guide-8.8-x"]`, `a[0]`."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _PATH_PART.match(path, pos)
        if match is None:
            return [path]  # not a path the engine writes: the whole text names the property
        name, quoted, index = match.groups()
        parts.append(name if name is not None else json.loads(quoted) if quoted is not None else int(index))
        pos = match.end()
    return parts


def _lookup(props: Any, parts: list[str | int]) -> tuple[bool, Any]:
    """The value at a detailed-diff path, and whether it is there."""
    value = props
    for part in parts:
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        in_map = isinstance(part, str) and isinstance(value, Mapping) and part in value
        if not (in_list or in_map):
            return False, None
        value = value[part]
    return True, value


def _display_name(parts: list[str | int]) -> str:
    """Directives go by their own names; anything else by its path."""
    if len(parts) == 2 and parts[0] == "main_cf":
        return str(parts[1])
    return ".".join(str(p) for p in parts)


def _step_changes(step: Mapping[str, Any]) -> Iterator[tuple[str, str | None, str | None]]:
    """(name, old, new) per changed property: the engine's own detailed diff where it gives one."""
    old_inputs = (step.get("oldState") or {}).get("inputs") or {}
    new_inputs = (step.get("newState") or {}).get("inputs") or {}
    detailed = step.get("detailedDiff")
    if detailed:
        for parts in sorted((path_parts(p) for p in detailed), key=str):
            if parts[0] in DERIVED:
                continue
            had, before = _lookup(old_inputs, parts)
            has, after = _lookup(new_inputs, parts)
            yield _display_name(parts), _text(before) if had else None, _text(after) if has else None
        return
    old, new = dict(_leaves(old_inputs)), dict(_leaves(new_inputs))
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name) or name not in old or name not in new:
            yield name, _text(old[name]) if name in old else None, _text(new[name]) if name in new else None


def changes(preview: Mapping[str, Any]) -> list[Change]:
    """The changed properties of every step that touches a host (the components themselves hold none)."""
    found: list[Change] = []
    for step in preview.get("steps") or []:
        op = step.get("op", "")
        if op in ("same", "read", "refresh"):
            continue
        types, resource = _urn_parts(step.get("urn", ""))
        if not types.endswith(("PostfixConfig", "DovecotAuthService")):
            continue
        state = step.get("newState") or step.get("oldState") or {}
        host = _text((state.get("inputs") or {}).get("host", "?"))
        site = _site(state, resource)
        for name, old, new in _step_changes(step):
            found.append(Change(site=site, host=host, resource=resource, name=name, old=old, new=new))
    return found


def render(stack: str, preview: Mapping[str, Any]) -> str:
    """The comment: a heading, the change summary, one line per changed directive."""
    summary = preview.get("changeSummary") or {}
    counts = ", ".join(f"{n} to {op}" for op, n in sorted(summary.items()) if op != "same" and n) or "no changes"
    lines = [MARKER, f"### `pulumi preview` of stack `{stack}`: {counts}", ""]
    found = sorted(changes(preview), key=lambda c: (c.site, c.resource, c.name))
    lines += [c.line() for c in found] if found else ["Every managed directive is as the stack asks."]
    return "\n".join(lines) + "\n"


def run(stack: str, settings: EngineSettings) -> str:
    env = settings.cli_env()
    ensure_stack(stack, settings, env)
    out = subprocess.run(
        [str(pulumi_bin()), "preview", "--json", "--non-interactive", "--stack", stack],
        cwd=settings.work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        # With --json the engine's diagnostics are in the JSON document; stderr holds the rest.
        raise SystemExit(f"pulumi preview failed for stack {stack}:\n{out.stdout}\n{out.stderr}")
    return render(stack, json.loads(out.stdout))


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m stackctl.pr_preview", description=__doc__)
    parser.add_argument("--stack", default="local")
    args = parser.parse_args(argv)
    sys.stdout.write(run(args.stack, EngineSettings.for_stack(args.stack)))
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
