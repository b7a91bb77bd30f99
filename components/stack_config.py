"""Reading one site's settings from stack config into plain dataclasses.

Parsing is pure (a dict in, dataclasses or a ConfigError naming the field out);
only `load` touches pulumi.Config and the files it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAMESPACE = "secure-postfix"
DEFAULT_SASL_PORT = 12345
PLAINTEXT_MECHANISMS = {"plain", "login"}


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
class SaslSpec:
    """Dovecot SASL for the site (guide section 8.8.3)."""

    listener: str  # "unix" (same host) or "inet" (Dovecot on its own host)
    listen_port: int = DEFAULT_SASL_PORT
    bind_address: str | None = None
    allow_all_interfaces: bool = False
    auth_mechanisms: str = "plain login"
    security_options: str = "noanonymous, noplaintext"
    tls_security_options: str = "noanonymous"


@dataclass(frozen=True)
class TlsSpec:
    """Where the certificate and key come from, and the TLS policy."""

    cert_file: str | None = None
    cert_pem: str | None = None
    key_file: str | None = None
    key_secret: str | None = None  # name of a secret stack config key holding the PEM key
    security_level: str = "may"
    protocols: str = ">=TLSv1.2"


@dataclass(frozen=True)
class SiteSpec:
    name: str
    postfix_host: str
    dovecot_host: str | None = None
    public_mx: bool = True
    limits: dict[str, Any] = field(default_factory=dict)
    directives: dict[str, Any] = field(default_factory=dict)
    sasl: SaslSpec | None = None
    tls: TlsSpec | None = None


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
            port=_whole_number(item.get("port", 22), f"{NAMESPACE}:{where}.{name}.port"),
            user=str(item.get("user", "root")),
            insecure_ignore_host_key=_boolean(item, "insecure_ignore_host_key", False, f"{NAMESPACE}:{where}.{name}"),
            use_sudo=_boolean(item, "use_sudo", False, f"{NAMESPACE}:{where}.{name}"),
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
        dovecot_host = item.get("dovecot_host")
        if dovecot_host is not None and dovecot_host not in hosts:
            raise ConfigError(f"{prefix}.dovecot_host is {dovecot_host!r}; it must name one of hosts: {sorted(hosts)}")
        sasl = parse_sasl(item.get("sasl"), prefix, postfix_host, dovecot_host)
        tls = parse_tls(item.get("tls"), prefix)
        if sasl is not None and tls is None:
            raise ConfigError(
                f"{prefix}.sasl needs {prefix}.tls: with the guide's noplaintext and no TLS, AUTH can never succeed"
            )
        sites[name] = SiteSpec(
            name=name,
            postfix_host=postfix_host,
            dovecot_host=dovecot_host,
            public_mx=_boolean(item, "public_mx", True, prefix),
            limits=dict(item.get("limits", {})),
            directives=dict(item.get("directives", {})),
            sasl=sasl,
            tls=tls,
        )
    _refuse_shared_hosts(sites, hosts)
    return sites


# What each role owns on its host: two sites in one role on one machine would own it twice.
_OWNED = {
    "postfix_host": "the managed lines of main.cf (each site would record the other's values as the originals)",
    "dovecot_host": "the whole Dovecot file conf.d/99-secure-postfix-auth.conf (each would overwrite or delete it)",
}


def _refuse_shared_hosts(sites: Mapping[str, SiteSpec], hosts: Mapping[str, HostSpec]) -> None:
    """One site per machine and role: the resources do not share what they own (two host names may be one machine)."""
    for role, owned in _OWNED.items():
        seen: dict[tuple[str, int], str] = {}
        for name, site in sites.items():
            host_name = getattr(site, role)
            if host_name is None:
                continue
            host = hosts[host_name]
            machine = (host.address.lower(), host.port)
            if machine in seen:
                first = seen[machine]
                raise ConfigError(
                    f"{NAMESPACE}:sites.{first}.{role} ({getattr(sites[first], role)}) and "
                    f"{NAMESPACE}:sites.{name}.{role} ({host_name}) are the same host ({host.address}): both sites "
                    f"would own {owned}. Put both sites' settings in one site, or use different hosts"
                )
            seen[machine] = name


def parse_sasl(raw: Any, prefix: str, postfix_host: str, dovecot_host: str | None) -> SaslSpec | None:
    if raw is None:
        if dovecot_host is not None:
            raise ConfigError(f"{prefix}.dovecot_host is set but {prefix}.sasl is missing")
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}.sasl must be an object")
    if dovecot_host is None:
        raise ConfigError(f"{prefix}.sasl needs {prefix}.dovecot_host (the host that runs Dovecot)")
    same_host = dovecot_host == postfix_host
    listener = raw.get("listener", "unix" if same_host else "inet")
    if listener not in ("unix", "inet"):
        raise ConfigError(f"{prefix}.sasl.listener must be unix or inet, got {listener!r}")
    if listener == "unix" and not same_host:
        raise ConfigError(
            f"{prefix}.sasl.listener is unix but Dovecot ({dovecot_host}) and Postfix ({postfix_host}) are different "
            "hosts: a UNIX socket cannot cross machines; use inet"
        )
    spec = SaslSpec(
        listener=listener,
        listen_port=_whole_number(raw.get("listen_port", DEFAULT_SASL_PORT), f"{prefix}.sasl.listen_port"),
        bind_address=raw.get("bind_address"),
        allow_all_interfaces=_boolean(raw, "allow_all_interfaces", False, f"{prefix}.sasl"),
        auth_mechanisms=str(raw.get("auth_mechanisms", "plain login")),
        security_options=str(raw.get("security_options", "noanonymous, noplaintext")),
        tls_security_options=str(raw.get("tls_security_options", "noanonymous")),
    )
    mechanisms = {m.lower() for m in spec.auth_mechanisms.replace(",", " ").split()}
    if "noplaintext" in spec.tls_security_options and mechanisms <= PLAINTEXT_MECHANISMS:
        raise ConfigError(
            f"{prefix}.sasl: tls_security_options has noplaintext but auth_mechanisms ({spec.auth_mechanisms}) "
            "offers only plaintext mechanisms, so AUTH could never succeed"
        )
    return spec


def parse_tls(raw: Any, prefix: str) -> TlsSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}.tls must be an object")
    spec = TlsSpec(
        cert_file=raw.get("cert_file"),
        cert_pem=raw.get("cert_pem"),
        key_file=raw.get("key_file"),
        key_secret=raw.get("key_secret"),
        security_level=str(raw.get("security_level", "may")),
        protocols=str(raw.get("protocols", ">=TLSv1.2")),
    )
    if (spec.cert_file is None) == (spec.cert_pem is None):
        raise ConfigError(f"{prefix}.tls needs exactly one of cert_file (a PEM file) or cert_pem")
    if (spec.key_file is None) == (spec.key_secret is None):
        raise ConfigError(
            f"{prefix}.tls needs exactly one of key_file (a PEM file) or key_secret (the name of a secret "
            f"config key: pulumi config set --secret NAME < key.pem)"
        )
    return spec


def _boolean(raw: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    """A real boolean, or the exact text true/false (what `pulumi config set --path` stores).

    Anything else is refused rather than guessed: `bool("false")` is True, and YAML 1.2 hands
    `no`, `off` and `False ` to the program as text.
    """
    value = raw.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    raise ConfigError(
        f"{where}.{key} must be true or false, got {value!r} (YAML 1.2 reads no/off/yes/on as text, not booleans)"
    )


_DIGITS_RE = re.compile(r"[0-9]+")


def _whole_number(value: Any, key: str) -> int:
    # str.isdigit() also accepts digits of other scripts (Arabic-Indic ones, say), which no daemon reads as a number.
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not _DIGITS_RE.fullmatch(str(value)):
        raise ConfigError(f"{key} must be a whole number, got {value!r}")
    return int(value)


def parse_stack(hosts_raw: Mapping[str, Any], sites_raw: Mapping[str, Any]) -> StackSpec:
    hosts = parse_hosts(hosts_raw)
    return StackSpec(hosts=hosts, sites=parse_sites(sites_raw, hosts))


def read_inventory(path: Path) -> dict[str, Any]:
    """An inventory file: {"hosts": {name: {address, host_key, ...}}}, e.g. written by the test bed."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{NAMESPACE}:inventory_file {path} is not valid JSON: {exc}") from None
    except FileNotFoundError:
        raise ConfigError(
            f"{NAMESPACE}:inventory_file {path} does not exist (for the local stack, run `make testbed` first)"
        ) from None
    return dict(data.get("hosts", {}))
