"""Where the engine, its home and the state live: the `pulumi` CLI's environment, and the inline mode."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto
from pulumi.runtime import _grpc_settings

PROJECT_DIR = Path(__file__).resolve().parents[2]
CACHE_DIR = PROJECT_DIR / ".cache"
PROJECT_NAME = "secure-postfix"
# The local stack's passphrase only protects lab state on this machine.
LOCAL_PASSPHRASE = "local-testbed-only"


def pulumi_bin(cache_dir: Path = CACHE_DIR) -> Path:
    """The CLI that setup builds; where there is none (CI installs its own), the `pulumi` on PATH."""
    pinned = cache_dir / "bin" / "pulumi"
    found = None if pinned.exists() else shutil.which("pulumi")
    return Path(found) if found else pinned


# What keeps the CLI offline and out of the user's own Pulumi setup.
OFFLINE = {
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
}


@dataclass(frozen=True)
class EngineSettings:
    work_dir: Path = PROJECT_DIR
    state_dir: Path = PROJECT_DIR / ".state"
    passphrase: str | None = None
    # A backend of the user's own (PULUMI_BACKEND_URL) instead of state_dir.
    backend_url: str | None = None

    @classmethod
    def for_stack(cls, stack: str) -> EngineSettings:
        """The project folder's settings; the local stack has a passphrase of its own, others take the user's."""
        return cls(
            passphrase=LOCAL_PASSPHRASE if stack == "local" else None,
            backend_url=os.environ.get("PULUMI_BACKEND_URL") or None,
        )

    def cli_vars(self) -> dict[str, str]:
        """The variables the `pulumi` CLI needs here: our CLI and plugins first on PATH, state, home, offline."""
        env = {
            "PATH": f"{CACHE_DIR / 'bin'}:{os.environ.get('PATH', '')}",
            "PULUMI_HOME": str(CACHE_DIR / "pulumi-home"),
            "PULUMI_BACKEND_URL": self.backend_url or f"file://{self.state_dir}",
            **OFFLINE,
        }
        if self.passphrase is not None:
            env["PULUMI_CONFIG_PASSPHRASE"] = self.passphrase
        return env

    def cli_env(self) -> dict[str, str]:
        """The whole environment for a `pulumi` process. The program imports its modules from its own folder:
        an inherited PYTHONPATH (the inline mode sets one) could hand it another checkout's."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(self.cli_vars())
        return env

    def env(self) -> dict[str, str]:
        bin_dir = CACHE_DIR / "bin"
        env = {
            "PULUMI_BACKEND_URL": f"file://{self.state_dir}",
            **OFFLINE,
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(PROJECT_DIR),
        }
        passphrase = self.passphrase or os.environ.get("PULUMI_CONFIG_PASSPHRASE")
        if passphrase is None:
            raise SystemExit("set PULUMI_CONFIG_PASSPHRASE: it encrypts the stack's secrets in local state")
        env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
        return env


# gRPC shares one pool of connections per process, keyed by address. An inline program runs in this process
# once per command, and every command's engine listens on a fresh loopback port: when the kernel hands out a
# port an earlier, ended engine had, the new channel inherits that engine's failed connection and its first
# call fails at once with UNAVAILABLE ("Resource monitor has terminated"), hiding the program's real error.
LOCAL_SUBCHANNELS = ("grpc.use_local_subchannel_pool", 1)


def isolate_grpc_channels(options: list = _grpc_settings._GRPC_CHANNEL_OPTIONS) -> None:
    """Give every channel the SDK opens its own connections (the SDK reads this list for each new channel)."""
    if LOCAL_SUBCHANNELS not in options:
        options.append(LOCAL_SUBCHANNELS)


def open_stack(name: str, program: Callable[[], None], settings: EngineSettings) -> auto.Stack:
    """Create or select `name` in the local backend, running `program` inline."""
    isolate_grpc_channels()
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


def ensure_stack(name: str, settings: EngineSettings, env: dict[str, str]) -> None:
    """Select `name` in the backend, creating it with the passphrase secrets provider when it is new."""
    if settings.backend_url is None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(pulumi_bin()), "stack", "select", "--create", name, "--secrets-provider", "passphrase"],
        cwd=settings.work_dir,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
