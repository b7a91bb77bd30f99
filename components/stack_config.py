"""Reading one site's settings from stack config into plain dataclasses.

Parsing is pure (a dict in, dataclasses or a ConfigError naming the field out);
only `load` touches pulumi.Config and the files it names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAMESPACE = "secure-postfix"


class ConfigError(ValueError):
    """The stack config is wrong; the message names the key."""


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str
    host_key: str | None
    port: int = 22
    user: str = "root"
    insecure_ignore_host_key: bool = False
    use_sudo: bool = False


@dataclass(frozen=True)
class SiteSpec:
    name: str
    postfix_host: str
    limits: dict[str, Any] = field(default_factory=dict)
    directives: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StackSpec:
    hosts: dict[str, HostSpec]
    sites: dict[str, SiteSpec]


def parse_hosts(raw: Mapping[str, Any], where: str = "hosts") -> dict[str, HostSpec]:
    hosts = {}
    for name, item in raw.items():
        if not isinstance(item, Mapping):
            raise ConfigError(f"{NAMESPACE}:{where}.{name} must be an object with at least 'address'")
        address = item.get("address")
        if not isinstance(address, str) or not address:
            raise ConfigError(f"{NAMESPACE}:{where}.{name}.address is required (the host's IP address or DNS name)")
        hosts[name] = HostSpec(
            name=name,
            address=address,
            host_key=item.get("host_key"),
            port=int(item.get("port", 22)),
            user=str(item.get("user", "root")),
            insecure_ignore_host_key=bool(item.get("insecure_ignore_host_key", False)),
            use_sudo=bool(item.get("use_sudo", False)),
        )
    return hosts


def parse_sites(raw: Mapping[str, Any], hosts: Mapping[str, HostSpec]) -> dict[str, SiteSpec]:
    sites = {}
    for name, item in raw.items():
        prefix = f"{NAMESPACE}:sites.{name}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{prefix} must be an object")
        postfix_host = item.get("postfix_host")
        if postfix_host not in hosts:
            raise ConfigError(f"{prefix}.postfix_host is {postfix_host!r}; it must name one of hosts: {sorted(hosts)}")
        for key in ("limits", "directives"):
            if not isinstance(item.get(key, {}), Mapping):
                raise ConfigError(f"{prefix}.{key} must be an object of directive: value")
        sites[name] = SiteSpec(
            name=name,
            postfix_host=postfix_host,
            limits=dict(item.get("limits", {})),
            directives=dict(item.get("directives", {})),
        )
    return sites


def parse_stack(hosts_raw: Mapping[str, Any], sites_raw: Mapping[str, Any]) -> StackSpec:
    hosts = parse_hosts(hosts_raw)
    return StackSpec(hosts=hosts, sites=parse_sites(sites_raw, hosts))


def read_inventory(path: Path) -> dict[str, Any]:
    """An inventory file: {"hosts": {name: {address, host_key, ...}}}, e.g. written by the test bed."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{NAMESPACE}:inventory_file {path} does not exist (for the local stack, run `make testbed` first)"
        ) from None
    return dict(data.get("hosts", {}))
