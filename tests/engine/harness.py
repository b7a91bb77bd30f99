"""Drives the real Pulumi engine on a stack of its own, in a scratch project directory."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from components.program import main as program
from stackctl.engine import PROJECT_DIR, EngineSettings, open_stack

PASSPHRASE = "engine-tests"


@dataclass
class Run:
    ok: bool
    stdout: str
    stderr: str
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.stdout + "\n" + self.stderr


class EngineProject:
    """A copy of Pulumi.yaml, a stack config written as given, and a local file backend."""

    def __init__(self, root: Path, stack_name: str):
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
        """Write the stack config (JSON is YAML), keeping the secrets provider's salt."""
        salt = None
        if self.config_file.exists():
            match = re.search(r"^encryptionsalt: (\S+)$", self.config_file.read_text(), re.M)
            salt = match.group(1) if match else None
        doc: dict[str, Any] = {"config": {f"secure-postfix:{k}": v for k, v in config.items()}}
        if salt:
            doc["encryptionsalt"] = salt
        self.config_file.write_text(json.dumps(doc, indent=2) + "\n")

    @property
    def stack(self) -> auto.Stack:
        if self._stack is None:
            self._stack = open_stack(self.stack_name, program, self.settings)
        return self._stack

    def _run(self, fn, **kwargs) -> Run:
        lines: list[str] = []
        try:
            result = fn(on_output=lines.append, **kwargs)
        except auto.CommandError as exc:
            return Run(False, "\n".join(lines), str(exc))
        summary = getattr(result, "summary", None)
        changes = dict(summary.resource_changes or {}) if summary is not None else {}
        if hasattr(result, "change_summary"):
            changes = {str(k): v for k, v in result.change_summary.items()}
        return Run(True, "\n".join(lines), getattr(result, "stderr", "") or "", changes)

    def preview(self, **kw) -> Run:
        return self._run(self.stack.preview, diff=True, **kw)

    def up(self, **kw) -> Run:
        return self._run(self.stack.up, diff=True, show_secrets=False, **kw)

    def refresh(self, **kw) -> Run:
        return self._run(self.stack.refresh, show_secrets=False, **kw)

    def destroy(self, **kw) -> Run:
        return self._run(self.stack.destroy, show_secrets=False, **kw)

    def state_text(self) -> str:
        """The raw checkpoint file(s) of this project's backend."""
        return "\n".join(p.read_text() for p in (self.root / "state").rglob("*.json"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bed_config(bed, sites: dict[str, Any], hosts: list[str] | None = None) -> dict[str, Any]:
    """Stack config for sites on the test bed's hosts, host keys pinned."""
    names = hosts or list(bed.hosts)
    return {
        "ssh_private_key_file": str(bed.client_key_path),
        "hosts": {n: {"address": bed.hosts[n].address, "host_key": bed.hosts[n].host_key} for n in names},
        "sites": sites,
    }
