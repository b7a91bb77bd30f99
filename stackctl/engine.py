"""Where the engine, its home and the state live, and how a stack is opened."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

PROJECT_DIR = Path(__file__).resolve().parent.parent
CACHE_DIR = PROJECT_DIR / ".cache"
PROJECT_NAME = "secure-postfix"
# The local stack's passphrase only protects lab state on this machine.
LOCAL_PASSPHRASE = "local-testbed-only"


@dataclass(frozen=True)
class EngineSettings:
    work_dir: Path = PROJECT_DIR
    state_dir: Path = PROJECT_DIR / ".state"
    passphrase: str | None = None

    def env(self) -> dict[str, str]:
        bin_dir = CACHE_DIR / "bin"
        env = {
            "PULUMI_BACKEND_URL": f"file://{self.state_dir}",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(PROJECT_DIR),
        }
        passphrase = self.passphrase or os.environ.get("PULUMI_CONFIG_PASSPHRASE")
        if passphrase is None:
            raise SystemExit("set PULUMI_CONFIG_PASSPHRASE: it encrypts the stack's secrets in local state")
        env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
        return env


def open_stack(name: str, program: Callable[[], None], settings: EngineSettings) -> auto.Stack:
    """Create or select `name` in the local backend, running `program` inline."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    env = settings.env()
    # The CLI starts the dynamic provider plugin from PATH; it inherits this process's environment.
    os.environ.update({k: v for k, v in env.items() if k in ("PATH", "PYTHONPATH")})
    workspace = auto.LocalWorkspace(
        work_dir=str(settings.work_dir),
        pulumi_home=str(CACHE_DIR / "pulumi-home"),
        program=program,
        env_vars=env,
        secrets_provider="passphrase",
        pulumi_command=auto.PulumiCommand(root=str(CACHE_DIR), skip_version_check=True),
    )
    return auto.Stack.create_or_select(name, workspace)
