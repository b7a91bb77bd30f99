"""A pull request's comment: `python -m toolchain.stackctl.pr_preview [--stack S] [--enforcement F] [--output F]`.

It runs `pulumi preview --json` (no SSH connection: the state is the reference) and writes one line per
changed directive, naming the site and the host, then the compliance verdict each host gets as planned:
every rule that fails or changes status, beside its verdict in the last state. Values the engine holds as
secrets arrive as `[secret]` and stay so; the comment never shows more than the engine's own display does.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secure_postfix.core import compliance_plan
from secure_postfix.core.compliance import Finding, Status
from toolchain.stackctl.engine import EngineSettings, ensure_stack, pulumi_bin

SECRET = "[secret]"
# How the engine marks a secret value inside a property map.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
MARKER = "<!-- secure-postfix preview -->"
# Inputs of earlier releases that restated others (the compliance verdicts, the Dovecot file's text): the first
# preview after an upgrade drops them, which changes nothing on a host; the comment lists what the stack sets.
DERIVED = ("compliance", "managed_file", "master_cf")
# Inputs the engine keeps whole but the display shows by another, one-line input: an uploaded certificate by its
# summary (expiry, names, fingerprint), as `pulumi preview --diff` shows it.
SUMMARIZED_BY = {"tls_cert_pem": "tls_certificate"}


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
        step_changes = list(_step_changes(step))
        named = {name for name, _, _ in step_changes}
        for name, old, new in step_changes:
            if SUMMARIZED_BY.get(name) in named:
                continue
            found.append(Change(site=site, host=host, resource=resource, name=name, old=old, new=new))
    return found


def host_verdicts(preview: Mapping[str, Any]) -> list[compliance_plan.HostVerdicts]:
    """Planned and current verdicts of every PostfixConfig the preview plans, changed or not."""
    found = []
    for step in preview.get("steps") or []:
        types, resource = _urn_parts(step.get("urn", ""))
        if not types.endswith("PostfixConfig") or step.get("op") in ("read", "refresh"):
            continue
        inputs = (step.get("newState") or step.get("oldState") or {}).get("inputs") or {}
        address, name = _text(inputs.get("host", "?")), inputs.get("host_name")
        host = f"{_text(name)} ({address})" if name else address
        found.append(compliance_plan.verdicts(step, host, resource))
    return sorted(found, key=lambda v: (v.host, v.resource))


def _cell(finding: Finding | None) -> str:
    if finding is None:
        return "(not in the last state)"
    value = finding.value.replace("|", "\\|")
    return (
        f"**{finding.status.value}**: {value}" if finding.status is Status.FAIL else f"{finding.status.value}: {value}"
    )


def _summary(findings: list[Finding]) -> str:
    counts = {s: sum(f.status is s for f in findings) for s in Status}
    return ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)


def render_verdicts(preview: Mapping[str, Any], enforcement: Mapping[str, str] | None = None) -> list[str]:
    """Per host: the planned verdicts in one line, then every rule that fails or changes, beside the current one."""
    levels = {
        k: str(v.get("enforcementLevel", "advisory") if isinstance(v, Mapping) else v)
        for k, v in (enforcement or {}).items()
    }
    default = levels.get("all", "advisory")
    lines = ["", "#### Compliance as planned", ""]
    verdicts = host_verdicts(preview)
    if not verdicts:
        return [*lines, "No PostfixConfig in this stack."]
    for v in verdicts:
        after = " after the removal (the host gets its originals back)" if v.operation.startswith("delete") else ""
        lines.append(f"- host `{v.host}` (`{v.resource}`){after}: {_summary(v.planned)}")
    rows = [(v, planned, now) for v in verdicts for planned, now in v.changed()]
    if rows:
        lines += ["", "| host | rule | enforcement | planned | now |", "|---|---|---|---|---|"]
        for v, planned, now in rows:
            level = levels.get(planned.rule.id, default)
            lines.append(f"| `{v.host}` | `{planned.rule.id}` | {level} | {_cell(planned)} | {_cell(now)} |")
    else:
        lines += ["", "No rule fails and no verdict changes."]
    return lines


def render(stack: str, preview: Mapping[str, Any], enforcement: Mapping[str, str] | None = None) -> str:
    """The comment: a heading, the change summary, one line per changed directive, the planned verdicts."""
    summary = preview.get("changeSummary") or {}
    counts = ", ".join(f"{n} to {op}" for op, n in sorted(summary.items()) if op != "same" and n) or "no changes"
    lines = [MARKER, f"### `pulumi preview` of stack `{stack}`: {counts}", ""]
    found = sorted(changes(preview), key=lambda c: (c.site, c.resource, c.name))
    lines += [c.line() for c in found] if found else ["Every managed directive is as the stack asks."]
    lines += render_verdicts(preview, enforcement)
    return "\n".join(lines) + "\n"


def run(stack: str, settings: EngineSettings, enforcement: Mapping[str, str] | None = None) -> str:
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
    return render(stack, json.loads(out.stdout), enforcement)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.stackctl.pr_preview", description=__doc__)
    parser.add_argument("--stack", default="local")
    parser.add_argument(
        "--enforcement", type=Path, help="the policy pack's config (policy/enforcement.json): labels each rule"
    )
    parser.add_argument("--output", type=Path, help="write the comment here (default: print it)")
    args = parser.parse_args(argv)
    enforcement = json.loads(args.enforcement.read_text()) if args.enforcement else None
    comment = run(args.stack, EngineSettings.for_stack(args.stack), enforcement)
    if args.output:
        args.output.write_text(comment)
    else:
        sys.stdout.write(comment)
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
