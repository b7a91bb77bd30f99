"""A scratch Pulumi project with a stack and a file backend of its own, driven through the real engine.

The engine tests and `python -m toolchain.bench` both run stacks this way, against the hosts of the local test
bed (`testbed`): `bed_config` writes the stack config for them, `bed_target` opens SSH to one of them
directly, `ssh_logins` counts the logins the hosts saw.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto
from pulumi.automation import events

from secure_postfix.remote.ssh import SshTarget
from secure_postfix.stack.program import main as program
from toolchain.stackctl.engine import PROJECT_DIR, EngineSettings, open_stack

PASSPHRASE = "engine-tests"


@dataclass
class Run:
    ok: bool
    stdout: str
    stderr: str
    summary: dict[str, int] = field(default_factory=dict)
    events: list[events.EngineEvent] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        return self.stdout + "\n" + self.stderr


@dataclass(frozen=True)
class Recorded:
    """One engine command of the test session and everything it printed."""

    stack: str
    command: str
    ok: bool
    text: str


class SessionRecord:
    """Every engine command of the pytest session, every project, every secret handed to the program.

    The secret search at the end of the session reads all of it.
    """

    def __init__(self) -> None:
        self.commands: list[Recorded] = []
        self.projects: list[EngineProject] = []
        self.secrets: dict[str, str] = {}

    def secret(self, label: str, text: str) -> None:
        self.secrets[label] = text


RECORD = SessionRecord()


class EngineProject:
    """A copy of Pulumi.yaml, a stack config written as given, and a local file backend."""

    def __init__(self, root: Path, stack_name: str, program_fn: Callable[[], None] = program):
        RECORD.projects.append(self)
        self.program = program_fn
        self.root = root
        self.stack_name = stack_name
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_DIR / "Pulumi.yaml", root / "Pulumi.yaml")
        (root / "stacks").mkdir(exist_ok=True)
        self.settings = EngineSettings(work_dir=root, state_dir=root / "state", passphrase=PASSPHRASE)
        self._stack: auto.Stack | None = None

    @property
    def config_file(self) -> Path:
        return self.root / "stacks" / f"Pulumi.{self.stack_name}.yaml"

    def configure(self, config: dict[str, Any]) -> None:
        """Write the stack config (JSON is YAML), keeping the secrets provider's salt and secrets set before."""
        old = yaml.safe_load(self.config_file.read_text()) if self.config_file.exists() else {}
        values = {f"secure-postfix:{k}": v for k, v in config.items()}
        kept = {k: v for k, v in (old.get("config") or {}).items() if isinstance(v, dict) and "secure" in v}
        doc: dict[str, Any] = {"config": {**kept, **values}}
        if old.get("encryptionsalt"):
            doc["encryptionsalt"] = old["encryptionsalt"]
        self.config_file.write_text(json.dumps(doc, indent=2) + "\n")
        self._register_secrets(config)

    def _register_secrets(self, config: dict[str, Any]) -> None:
        """Every key file the program is given is a secret the session must never show."""
        paths = [config.get("ssh_private_key_file")]
        paths += [(site.get("tls") or {}).get("key_file") for site in (config.get("sites") or {}).values()]
        for path in filter(None, paths):
            file = Path(str(path)).expanduser()
            if file.is_file():
                RECORD.secret(str(file), file.read_text())

    def set_secret(self, key: str, value: str) -> None:
        """`pulumi config set --secret secure-postfix:KEY` (after `configure`, which rewrites the file)."""
        RECORD.secret(f"config secret {key}", value)
        self.stack.set_config(f"secure-postfix:{key}", auto.ConfigValue(value, secret=True))

    @property
    def stack(self) -> auto.Stack:
        if self._stack is None:
            self._stack = open_stack(self.stack_name, self.program, self.settings)
        return self._stack

    def _run(self, command: str, fn, **kwargs) -> Run:
        lines: list[str] = []
        seen: list[events.EngineEvent] = []
        try:
            result = fn(on_output=lines.append, on_event=seen.append, **kwargs)
        except auto.CommandError as exc:
            run = Run(False, "\n".join(lines), str(exc), events=seen)
        else:
            summary = getattr(result, "summary", None)
            changes = dict(summary.resource_changes or {}) if summary is not None else {}
            if hasattr(result, "change_summary"):
                changes = {str(k): v for k, v in result.change_summary.items()}
            run = Run(True, "\n".join(lines), getattr(result, "stderr", "") or "", changes, seen)
        # Diagnostics (pulumi.log lines, error text) reach the event stream too; keep them with the output.
        diagnostics = "\n".join(e.diagnostic_event.message for e in seen if e.diagnostic_event is not None)
        RECORD.commands.append(Recorded(self.stack_name, command, run.ok, run.text + "\n" + diagnostics))
        return run

    def preview(self, **kw) -> Run:
        return self._run("preview", self.stack.preview, diff=True, **kw)

    def up(self, **kw) -> Run:
        return self._run("up", self.stack.up, diff=True, show_secrets=False, **kw)

    def refresh(self, **kw) -> Run:
        return self._run("refresh", self.stack.refresh, show_secrets=False, **kw)

    def destroy(self, **kw) -> Run:
        # The last moment the stack holds every resource: keep its export for the secret search.
        self.export()
        return self._run("destroy", self.stack.destroy, show_secrets=False, **kw)

    def export(self) -> dict[str, Any]:
        """`pulumi stack export` (recorded for the secret search)."""
        # Stack.export_stack() adds --show-secrets; a user's plain `pulumi stack export` does not.
        workspace = self.stack.workspace
        try:
            result = workspace._run_pulumi_cmd_sync(["stack", "export", "--stack", self.stack_name])  # type: ignore[attr-defined]
        except auto.CommandError as exc:
            RECORD.commands.append(Recorded(self.stack_name, "stack export", False, str(exc)))
            return {}
        RECORD.commands.append(Recorded(self.stack_name, "stack export", True, result.stdout))
        return json.loads(result.stdout).get("deployment") or {}

    def state_text(self) -> str:
        """The raw checkpoint file(s) of this project's backend."""
        return "\n".join(p.read_text() for p in (self.root / "state").rglob("*.json"))


def bed_config(bed, sites: dict[str, Any], hosts: list[str] | None = None) -> dict[str, Any]:
    """Stack config for sites on the test bed's hosts, host keys pinned."""
    names = hosts or list(bed.hosts)
    return {
        "ssh_private_key_file": str(bed.client_key_path),
        "hosts": {n: {"address": bed.hosts[n].address, "host_key": bed.hosts[n].host_key} for n in names},
        "sites": sites,
    }


def ssh_logins(bed, hosts: list[str] | None = None) -> int:
    """Successful SSH logins so far, from the sshd logs of `hosts` (all of the bed's by default)."""
    time.sleep(0.2)  # sshd writes its log line just after the login
    names = hosts or list(bed.hosts)
    return sum(
        (bed.hosts[n].root / "log" / "sshd.log").read_text(errors="replace").count("Accepted publickey") for n in names
    )


def bed_target(bed, host: str, **fields: Any) -> SshTarget:
    """An SSH target for one of the bed's hosts: the bed's client key, the host's key pinned; `fields` win."""
    pinned = {"host": bed.hosts[host].address, "private_key": bed.client_key_path.read_text()}
    return SshTarget(**{**pinned, "host_key": bed.hosts[host].host_key, **fields})
