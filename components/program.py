"""The program body, shared by `__main__.py` and the inline runner in stackctl."""

from __future__ import annotations

from pathlib import Path

import pulumi

from components.mail_site import MailSite
from components.stack_config import NAMESPACE, ConfigError, parse_stack, read_inventory


def _project_path(value: str) -> Path:
    """Relative paths in stack config are relative to the project directory."""
    path = Path(value).expanduser()
    # Inline programs have no root directory of their own: they run where stackctl runs.
    return path if path.is_absolute() else Path(pulumi.get_root_directory() or Path.cwd()) / path


def _private_key(config: pulumi.Config) -> pulumi.Output[str]:
    secret = config.get_secret("ssh_private_key")
    if secret is not None:
        return secret
    path = config.get("ssh_private_key_file")
    if path is None:
        raise ConfigError(
            f"set {NAMESPACE}:ssh_private_key (pulumi config set --secret) or {NAMESPACE}:ssh_private_key_file"
        )
    return pulumi.Output.secret(_project_path(path).read_text())


def main() -> None:
    config = pulumi.Config(NAMESPACE)
    hosts_raw = dict(config.get_object("hosts") or {})
    inventory = config.get("inventory_file")
    if inventory:
        hosts_raw = {**read_inventory(_project_path(inventory)), **hosts_raw}
    spec = parse_stack(hosts_raw, config.get_object("sites") or {})
    private_key = _private_key(config)
    for name, site in spec.sites.items():
        MailSite(name, site, spec.hosts, private_key)
