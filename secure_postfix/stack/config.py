"""Reading one site's settings from stack config into plain dataclasses.

Parsing is pure (a dict in, dataclasses or a ConfigError naming the field out); only
`read_inventory` reads a file. secure_postfix/stack/program.py reads pulumi.Config and hands the values in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from secure_postfix.core import tls_policy
from secure_postfix.core.certificates import MIN_DAYS_LEFT
from secure_postfix.core.defaults import SSH_AUTH_METHODS, SSH_PORT, SSH_USER
from secure_postfix.core.dovecot_conf import DEFAULT_MECHANISMS, DEFAULT_PORT
from secure_postfix.core.postfix_features import (
    RELAY_RESTRICTIONS_DEFAULT,
    SASL_DEFAULTS,
    SASL_NEEDS_TLS,
    TLS_DEFAULTS,
    relay_problems,
)
from secure_postfix.core.problem import InputError
from secure_postfix.core.renewal_hook import DEFAULT_HOOK, path_problems

T = TypeVar("T")

NAMESPACE = "secure-postfix"
DEFAULT_SASL_PORT = DEFAULT_PORT
PLAINTEXT_MECHANISMS = {"plain", "login"}


class ConfigError(InputError):
    """The stack config is wrong; the message names the key. `problems` holds each problem found, one a line."""


def _each(raw: Mapping[str, Any], parse_one: Callable[[str, Any], T]) -> dict[str, T]:
    """`parse_one` on every entry, so that one refused entry does not hide the problems of the others."""
    parsed: dict[str, T] = {}
    problems: list[str] = []
    for name, item in raw.items():
        try:
            parsed[name] = parse_one(name, item)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError("\n".join(problems), problems)
    return parsed


@dataclass(frozen=True)
class AccessSpec:
    """`ssh_auth` (the login methods, tried in this order) and `ssh_agent_socket` (None: $SSH_AUTH_SOCK)."""

    methods: tuple[str, ...] = ("private_key",)
    agent_socket: str | None = None


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str
    host_key: str | None
    port: int = SSH_PORT
    user: str = SSH_USER
    insecure_ignore_host_key: bool = False
    use_sudo: bool = False
    bastion: HostSpec | None = None  # the jump host this one is reached through (`bastion: NAME`)
    access: AccessSpec = AccessSpec()


@dataclass(frozen=True)
class SaslSpec:
    """Dovecot SASL for the site (guide section 8.8.3)."""

    listener: str  # "unix" (same host) or "inet" (Dovecot on its own host)
    listen_port: int = DEFAULT_SASL_PORT
    bind_address: str | None = None
    allow_all_interfaces: bool = False
    auth_mechanisms: str = DEFAULT_MECHANISMS
    security_options: str = SASL_DEFAULTS["security_options"]
    tls_security_options: str = SASL_DEFAULTS["tls_security_options"]
    # Where AUTH is offered: "submission" (the submission services only) or "everywhere" (port 25 too).
    offer_auth: str = "everywhere"


@dataclass(frozen=True)
class TlsSpec:
    """Where the certificate and key come from, and the TLS policy."""

    cert_file: str | None = None
    cert_pem: str | None = None
    key_file: str | None = None
    key_secret: str | None = None  # name of a secret stack config key holding the PEM key
    security_level: str = TLS_DEFAULTS["security_level"]
    protocols: str = TLS_DEFAULTS["protocols"]
    # The TLS policy's levels (core/tls_policy.py): where passwords travel, and between mail servers.
    policy: str = TLS_DEFAULTS["policy"]
    mta_policy: str = TLS_DEFAULTS["mta_policy"]
    outbound_security_level: str = TLS_DEFAULTS["outbound_security_level"]
    # Destinations that must get TLS: domain -> level, or {level, match} (smtp_tls_policy_maps).
    destinations: dict[str, Any] = field(default_factory=dict)
    # A certificate and key that already live on each host (an ACME client's), instead of uploading them.
    host_cert_file: str | None = None
    host_key_file: str | None = None
    renewal_hook: str = DEFAULT_HOOK
    min_days_left: int = MIN_DAYS_LEFT


@dataclass(frozen=True)
class SiteSpec:
    """One policy applied to every host in `postfix_hosts`.

    `dovecot_host` is the older form: the site owns a Dovecot auth service of its own there.
    `auth_service` names one declared under auth_services, shared by any number of sites.
    Either way `sasl` holds everything the site's Postfix hosts need to reach it.
    """

    name: str
    postfix_hosts: tuple[str, ...]
    dovecot_host: str | None = None
    public_mx: bool = True
    limits: dict[str, Any] = field(default_factory=dict)
    directives: dict[str, Any] = field(default_factory=dict)
    sasl: SaslSpec | None = None
    tls: TlsSpec | None = None
    auth_service: str | None = None
    relay_restrictions: str | None = RELAY_RESTRICTIONS_DEFAULT
    # master.cf submission services: label -> {type, listen, options}
    services: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def postfix_host(self) -> str:
        return self.postfix_hosts[0]


@dataclass(frozen=True)
class AuthServiceSpec:
    """A Dovecot auth service declared once under auth_services: the one owner of its host's Dovecot file."""

    name: str
    dovecot_host: str
    sasl: SaslSpec


@dataclass(frozen=True)
class StackSpec:
    hosts: dict[str, HostSpec]
    sites: dict[str, SiteSpec]
    auth_services: dict[str, AuthServiceSpec] = field(default_factory=dict)
    bastions: dict[str, HostSpec] = field(default_factory=dict)


def parse_hosts(raw: Mapping[str, Any], where: str = "hosts") -> dict[str, HostSpec]:
    return _each(raw, lambda name, item: _parse_host(name, item, where))


def _parse_host(name: str, item: Any, where: str) -> HostSpec:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{NAMESPACE}:{where}.{name} must be an object with at least 'address'")
    address = item.get("address")
    if not isinstance(address, str) or not address:
        raise ConfigError(f"{NAMESPACE}:{where}.{name}.address is required (the host's IP address or DNS name)")
    return HostSpec(
        name=name,
        address=address,
        host_key=item.get("host_key"),
        port=_whole_number(item.get("port", SSH_PORT), f"{NAMESPACE}:{where}.{name}.port"),
        user=str(item.get("user", SSH_USER)),
        insecure_ignore_host_key=_boolean(item, "insecure_ignore_host_key", False, f"{NAMESPACE}:{where}.{name}"),
        use_sudo=_boolean(item, "use_sudo", False, f"{NAMESPACE}:{where}.{name}"),
    )


def parse_sites(
    raw: Mapping[str, Any], hosts: Mapping[str, HostSpec], auth_services: Mapping[str, Any] | None = None
) -> dict[str, SiteSpec]:
    """Sites, checked together with the auth services they name (see `parse_auth_services`)."""
    services_raw = _auth_services_raw(auth_services)
    sites = _each(raw, lambda name, item: _parse_site(name, item, hosts, services_raw))
    services = parse_auth_services(services_raw, hosts, sites)
    sites = {name: _with_service_listener(site, services) for name, site in sites.items()}
    _refuse_shared_hosts(sites, services, hosts)
    return sites


def _parse_site(name: str, item: Any, hosts: Mapping[str, HostSpec], services_raw: Mapping[str, Any]) -> SiteSpec:
    prefix = f"{NAMESPACE}:sites.{name}"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{prefix} must be an object")
    postfix_hosts = _postfix_hosts(item, prefix, hosts)
    for key in ("limits", "directives"):
        if not isinstance(item.get(key, {}), Mapping):
            raise ConfigError(f"{prefix}.{key} must be an object of directive: value")
        _refuse_shapeless_values(item.get(key, {}), f"{prefix}.{key}")
    dovecot_host = item.get("dovecot_host")
    auth_service = item.get("auth_service")
    if auth_service is not None:
        sasl = _site_sasl_for_service(item, prefix, auth_service, services_raw)
    else:
        if dovecot_host is not None and dovecot_host not in hosts:
            raise ConfigError(f"{prefix}.dovecot_host is {dovecot_host!r}; it must name one of hosts: {sorted(hosts)}")
        sasl = parse_sasl(item.get("sasl"), prefix, postfix_hosts, dovecot_host)
    tls = parse_tls(item.get("tls"), prefix)
    if (sasl is not None or auth_service is not None) and tls is None:
        raise ConfigError(f"{prefix}.sasl needs {prefix}.tls: {SASL_NEEDS_TLS}")
    services = parse_services(item.get("services"), prefix)
    sasl = _with_offer(sasl, item.get("sasl"), services, prefix)
    return SiteSpec(
        name=name,
        postfix_hosts=postfix_hosts,
        dovecot_host=dovecot_host,
        public_mx=_boolean(item, "public_mx", True, prefix),
        relay_restrictions=_relay_restrictions(item, prefix),
        limits=dict(item.get("limits", {})),
        directives=dict(item.get("directives", {})),
        sasl=sasl,
        tls=tls,
        auth_service=auth_service,
        services=services,
    )


def _relay_restrictions(item: Mapping[str, Any], prefix: str) -> str | None:
    """`relay_restrictions`: the guide's permanent refusal by default; `false` leaves the host's own setting."""
    value = item.get("relay_restrictions", RELAY_RESTRICTIONS_DEFAULT)
    if value is False:
        return None
    problems = relay_problems(value)
    if problems:
        raise ConfigError(f"{prefix}.{problems[0]}")
    return value


def _refuse_shapeless_values(values: Mapping[str, Any], where: str) -> None:
    """A directive with no value (`name:` in YAML is null) or an object as its value has no main.cf text.

    Left alone, null would be dropped on the way to the provider (the directive silently unmanaged) or
    written as the text `None`, and an object as its Python spelling.
    """
    for name, value in values.items():
        if value is None:
            raise ConfigError(f"{where}.{name} has no value (null); give it one, or leave the directive out")
        if isinstance(value, Mapping):
            raise ConfigError(f"{where}.{name} must be text, a number, a boolean or a list, not an object")


def _auth_services_raw(raw: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    services = {}
    for name, item in (raw or {}).items():
        if not isinstance(item, Mapping):
            raise ConfigError(f"{NAMESPACE}:auth_services.{name} must be an object with at least 'dovecot_host'")
        services[name] = item
    return services


def _postfix_hosts(item: Mapping[str, Any], prefix: str, hosts: Mapping[str, HostSpec]) -> tuple[str, ...]:
    """`postfix_hosts` or `postfix_host`: a host name or a list of them (a one-element list is one host)."""
    if "postfix_hosts" in item and "postfix_host" in item:
        raise ConfigError(f"{prefix} sets both postfix_host and postfix_hosts; use one of them")
    key = "postfix_hosts" if "postfix_hosts" in item else "postfix_host"
    value = item.get(key)
    names = value if isinstance(value, list) else [value]
    if not names:
        raise ConfigError(f"{prefix}.{key} is an empty list; name at least one of hosts: {sorted(hosts)}")
    for index, host in enumerate(names):
        where = f"{prefix}.{key}" if not isinstance(value, list) else f"{prefix}.{key}[{index}]"
        if not isinstance(host, str) or host not in hosts:
            raise ConfigError(f"{where} is {host!r}; it must name one of hosts: {sorted(hosts)}")
        if names.index(host) != index:
            raise ConfigError(f"{where} ({host}) is listed twice in {prefix}.{key}")
    return tuple(names)


# The Dovecot side of SASL: with auth_service it is set once on the service, never per site.
_SERVICE_KEYS = ("listener", "listen_port", "bind_address", "allow_all_interfaces", "auth_mechanisms")
_SITE_SASL_KEYS = ("security_options", "tls_security_options", "offer_auth")


def _site_sasl_for_service(
    item: Mapping[str, Any], prefix: str, service: Any, services: Mapping[str, Mapping[str, Any]]
) -> SaslSpec:
    if not isinstance(service, str) or service not in services:
        raise ConfigError(
            f"{prefix}.auth_service is {service!r}; it must name one of {NAMESPACE}:auth_services: {sorted(services)}"
        )
    if item.get("dovecot_host") is not None:
        raise ConfigError(
            f"{prefix} sets both auth_service and dovecot_host; the Dovecot host is "
            f"{NAMESPACE}:auth_services.{service}.dovecot_host"
        )
    raw = item.get("sasl") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}.sasl must be an object")
    for key in _SERVICE_KEYS:
        if key in raw:
            raise ConfigError(
                f"{prefix}.sasl.{key} is set on the auth service, not on a site that uses one: "
                f"set {NAMESPACE}:auth_services.{service}.{key}"
            )
    unknown = sorted(set(raw) - {*_SERVICE_KEYS, *_SITE_SASL_KEYS})
    if unknown:
        raise ConfigError(f"{prefix}.sasl.{unknown[0]} is not a setting of sasl ({', '.join(_SITE_SASL_KEYS)})")
    # The listener is filled in from the service once every site using it is known.
    return SaslSpec(
        listener="",
        security_options=str(raw.get("security_options", SaslSpec.security_options)),
        tls_security_options=str(raw.get("tls_security_options", SaslSpec.tls_security_options)),
    )


def parse_auth_services(
    raw: Mapping[str, Mapping[str, Any]], hosts: Mapping[str, HostSpec], sites: Mapping[str, SiteSpec]
) -> dict[str, AuthServiceSpec]:
    """Each auth service once; its listener defaults to unix only when every host using it is Dovecot's own."""
    return _each(raw, lambda name, item: _parse_auth_service(name, item, hosts, sites))


def _parse_auth_service(
    name: str, item: Mapping[str, Any], hosts: Mapping[str, HostSpec], sites: Mapping[str, SiteSpec]
) -> AuthServiceSpec:
    prefix = f"{NAMESPACE}:auth_services.{name}"
    dovecot_host = item.get("dovecot_host")
    if dovecot_host not in hosts:
        raise ConfigError(f"{prefix}.dovecot_host is {dovecot_host!r}; it must name one of hosts: {sorted(hosts)}")
    users = [(site.name, h) for site in sites.values() if site.auth_service == name for h in site.postfix_hosts]
    local = bool(users) and all(_same_machine(hosts[h], hosts[dovecot_host]) for _, h in users)
    listener = item.get("listener", "unix" if local else "inet")
    if listener == "unix":
        for site_name, host in users:
            if not _same_machine(hosts[host], hosts[dovecot_host]):
                raise ConfigError(
                    f"{prefix}.listener is unix but {NAMESPACE}:sites.{site_name} uses it from {host} "
                    f"({hosts[host].address}), not from Dovecot's own host {dovecot_host} "
                    f"({hosts[dovecot_host].address}): a UNIX socket cannot cross machines; use inet"
                )
    unknown = sorted(set(item) - {"dovecot_host", *_SERVICE_KEYS})
    if unknown:
        raise ConfigError(
            f"{prefix}.{unknown[0]} is not a setting of an auth service "
            f"(dovecot_host, {', '.join(_SERVICE_KEYS)}); Postfix's side goes in a site's sasl"
        )
    return AuthServiceSpec(
        name=name, dovecot_host=dovecot_host, sasl=_dovecot_side({**item, "listener": listener}, prefix)
    )


def _with_service_listener(site: SiteSpec, services: Mapping[str, AuthServiceSpec]) -> SiteSpec:
    if site.auth_service is None or site.sasl is None:
        return site
    own = services[site.auth_service].sasl
    sasl = SaslSpec(
        listener=own.listener,
        listen_port=own.listen_port,
        bind_address=own.bind_address,
        allow_all_interfaces=own.allow_all_interfaces,
        auth_mechanisms=own.auth_mechanisms,
        security_options=site.sasl.security_options,
        tls_security_options=site.sasl.tls_security_options,
        offer_auth=site.sasl.offer_auth,
    )
    _refuse_plaintext_only(sasl, f"{NAMESPACE}:sites.{site.name}.sasl")
    return SiteSpec(**{**site.__dict__, "sasl": sasl})


def _same_machine(a: HostSpec, b: HostSpec) -> bool:
    return (a.address.lower(), a.port) == (b.address.lower(), b.port)


# What each role owns on its host: two owners in one role on one machine would own it twice.
_OWNED = {
    "postfix_host": "the managed lines of main.cf (each site would record the other's values as the originals)",
    "dovecot_host": "the whole Dovecot file conf.d/99-secure-postfix-auth.conf (each would overwrite or delete it)",
}


def _owners(
    sites: Mapping[str, SiteSpec], services: Mapping[str, AuthServiceSpec]
) -> dict[str, list[tuple[str, str, str]]]:
    """role -> (owner, the key as the user wrote it, host name), in config order."""
    postfix = []
    for name, site in sites.items():
        for index, host in enumerate(site.postfix_hosts):
            key = (
                f"sites.{name}.postfix_host" if len(site.postfix_hosts) == 1 else f"sites.{name}.postfix_hosts[{index}]"
            )
            postfix.append((f"sites.{name}", key, host))
    dovecot = [(f"sites.{n}", f"sites.{n}.dovecot_host", s.dovecot_host) for n, s in sites.items() if s.dovecot_host]
    dovecot += [(f"auth_services.{n}", f"auth_services.{n}.dovecot_host", s.dovecot_host) for n, s in services.items()]
    return {"postfix_host": postfix, "dovecot_host": dovecot}


def _machine(host: HostSpec) -> tuple:
    """What makes two host entries one machine: address and port, and the bastion that reaches them."""
    return (host.address.lower(), host.port, _machine(host.bastion) if host.bastion is not None else None)


def _refuse_shared_hosts(
    sites: Mapping[str, SiteSpec], services: Mapping[str, AuthServiceSpec], hosts: Mapping[str, HostSpec]
) -> None:
    """One owner per machine and role: resources do not share what they own (two host names may be one machine)."""
    for role, owners in _owners(sites, services).items():
        seen: dict[tuple, tuple[str, str, str]] = {}
        for owner, key, host_name in owners:
            host = hosts[host_name]
            # The same private address behind two bastions is two machines.
            machine = _machine(host)
            if machine in seen:
                first_owner, first_key, first_host = seen[machine]
                what = "sites" if first_owner.startswith("sites.") and owner.startswith("sites.") else "owners"
                raise ConfigError(
                    f"{NAMESPACE}:{first_key} ({first_host}) and {NAMESPACE}:{key} ({host_name}) are the same host "
                    f"({host.address}): both {what} would own {_OWNED[role]}. "
                    + (
                        "List each host in one site only, or use different hosts"
                        if role == "postfix_host"
                        else "Declare the Dovecot host once under auth_services and name it from every site "
                        "(auth_service), or use different hosts"
                    )
                )
            seen[machine] = (owner, key, host_name)


def parse_sasl(
    raw: Any, prefix: str, postfix_hosts: tuple[str, ...] | str, dovecot_host: str | None
) -> SaslSpec | None:
    """The older form: a site's own Dovecot host and its whole sasl block."""
    if isinstance(postfix_hosts, str):
        postfix_hosts = (postfix_hosts,)
    if raw is None:
        if dovecot_host is not None:
            raise ConfigError(f"{prefix}.dovecot_host is set but {prefix}.sasl is missing")
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}.sasl must be an object")
    if dovecot_host is None:
        raise ConfigError(
            f"{prefix}.sasl needs {prefix}.auth_service (a key of {NAMESPACE}:auth_services) or "
            f"{prefix}.dovecot_host (the host that runs Dovecot)"
        )
    same_host = all(host == dovecot_host for host in postfix_hosts)
    listener = raw.get("listener", "unix" if same_host else "inet")
    if listener == "unix" and not same_host:
        other = next(host for host in postfix_hosts if host != dovecot_host)
        raise ConfigError(
            f"{prefix}.sasl.listener is unix but Dovecot ({dovecot_host}) and Postfix ({other}) are different "
            "hosts: a UNIX socket cannot cross machines; use inet"
        )
    spec = _dovecot_side({**raw, "listener": listener}, f"{prefix}.sasl")
    spec = SaslSpec(
        **{
            **spec.__dict__,
            "security_options": str(raw.get("security_options", SaslSpec.security_options)),
            "tls_security_options": str(raw.get("tls_security_options", SaslSpec.tls_security_options)),
        }
    )
    _refuse_plaintext_only(spec, f"{prefix}.sasl")
    return spec


def _dovecot_side(raw: Mapping[str, Any], where: str) -> SaslSpec:
    listener = raw.get("listener")
    if listener not in ("unix", "inet"):
        raise ConfigError(f"{where}.listener must be unix or inet, got {listener!r}")
    return SaslSpec(
        listener=listener,
        listen_port=_whole_number(raw.get("listen_port", DEFAULT_SASL_PORT), f"{where}.listen_port"),
        bind_address=raw.get("bind_address"),
        allow_all_interfaces=_boolean(raw, "allow_all_interfaces", False, where),
        auth_mechanisms=str(raw.get("auth_mechanisms", SaslSpec.auth_mechanisms)),
    )


def _refuse_plaintext_only(spec: SaslSpec, where: str) -> None:
    mechanisms = {m.lower() for m in spec.auth_mechanisms.replace(",", " ").split()}
    if "noplaintext" in spec.tls_security_options and mechanisms <= PLAINTEXT_MECHANISMS:
        raise ConfigError(
            f"{where}: tls_security_options has noplaintext but auth_mechanisms ({spec.auth_mechanisms}) "
            "offers only plaintext mechanisms, so AUTH could never succeed"
        )


SERVICE_TYPES = ("submission", "submissions")
# The guide's per-client limits that a submission service may set for itself.
SERVICE_LIMITS = (
    "smtpd_client_connection_rate_limit",
    "smtpd_client_message_rate_limit",
    "smtpd_client_connection_count_limit",
    "smtpd_client_recipient_rate_limit",
)


def parse_services(raw: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """master.cf submission services; values are checked per host by PostfixServices at preview."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}.services must be an object: submission and/or submissions")
    services = {}
    for label, item in raw.items():
        where = f"{prefix}.services.{label}"
        item = {} if item is None else item
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where} must be an object (type, listen, limits, options) or empty")
        unknown = sorted(set(item) - {"type", "listen", "limits", "options"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]} is not a setting of a service (type, listen, limits, options)")
        kind = item.get("type", label)
        if kind not in SERVICE_TYPES:
            raise ConfigError(f"{where}.type is {kind!r}; it must be one of {', '.join(SERVICE_TYPES)}")
        limits, options = item.get("limits") or {}, item.get("options") or {}
        for key, value in (("limits", limits), ("options", options)):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}.{key} must be an object of parameter: value")
        for name in limits:
            if name not in SERVICE_LIMITS:
                raise ConfigError(f"{where}.limits.{name} is not one of {', '.join(SERVICE_LIMITS)}; use options")
        listen = item.get("listen")
        services[label] = {
            "type": kind,
            **({"listen": str(listen)} if listen is not None else {}),
            "options": {**{k: str(v) for k, v in limits.items()}, **{k: str(v) for k, v in options.items()}},
        }
    return services


def _with_offer(sasl: SaslSpec | None, raw: Any, services: Mapping[str, Any], prefix: str) -> SaslSpec | None:
    """Where AUTH is offered; a site with submission services offers it there only unless told otherwise."""
    given = raw.get("offer_auth") if isinstance(raw, Mapping) else None
    if services and sasl is None:
        raise ConfigError(
            f"{prefix}.services needs SMTP AUTH: set {prefix}.auth_service (a key of {NAMESPACE}:auth_services)"
        )
    if sasl is None:
        if given is not None:
            raise ConfigError(f"{prefix}.sasl.offer_auth needs {prefix}.auth_service")
        return None
    offer = given if given is not None else ("submission" if services else "everywhere")
    if offer not in ("submission", "everywhere"):
        raise ConfigError(f"{prefix}.sasl.offer_auth must be submission or everywhere, got {offer!r}")
    if offer == "submission" and not services:
        raise ConfigError(
            f"{prefix}.sasl.offer_auth is submission but {prefix}.services is empty: AUTH would be offered nowhere"
        )
    return SaslSpec(**{**sasl.__dict__, "offer_auth": offer})


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
        security_level=str(raw.get("security_level", TlsSpec.security_level)),
        protocols=str(raw.get("protocols", TlsSpec.protocols)),
        policy=raw.get("policy", TlsSpec.policy),
        mta_policy=raw.get("mta_policy", TlsSpec.mta_policy),
        outbound_security_level=raw.get("outbound_security_level", TlsSpec.outbound_security_level),
        destinations=raw.get("destinations") or {},
        host_cert_file=_host_path(raw, "host_cert_file", prefix),
        host_key_file=_host_path(raw, "host_key_file", prefix),
        renewal_hook=_host_path(raw, "renewal_hook", prefix) or TlsSpec.renewal_hook,
        min_days_left=_days(raw.get("min_days_left", MIN_DAYS_LEFT), f"{prefix}.tls.min_days_left"),
    )
    policy_problems = tls_policy.problems(spec.__dict__)
    if policy_problems:
        problems = [f"{prefix}.{problem}" for problem in policy_problems]
        raise ConfigError("\n".join(problems), problems)
    spec = replace(spec, destinations=dict(spec.destinations))
    sources = [k for k in ("cert_file", "cert_pem", "host_cert_file") if getattr(spec, k) is not None]
    if len(sources) != 1:
        raise ConfigError(
            f"{prefix}.tls needs exactly one of cert_file (a PEM file), cert_pem, or host_cert_file (a file that "
            f"already lives on each host, such as an ACME client's fullchain.pem), got {', '.join(sources) or 'none'}"
        )
    if spec.host_cert_file is not None:
        if spec.host_key_file is None:
            raise ConfigError(f"{prefix}.tls.host_cert_file needs host_key_file: its key's path on the host")
        if spec.key_file is not None or spec.key_secret is not None:
            raise ConfigError(
                f"{prefix}.tls: with host_cert_file the key stays on the host (host_key_file); drop key_file and "
                "key_secret"
            )
        return spec
    if spec.host_key_file is not None or "renewal_hook" in raw:
        raise ConfigError(f"{prefix}.tls.host_key_file and renewal_hook go with host_cert_file")
    if (spec.key_file is None) == (spec.key_secret is None):
        raise ConfigError(
            f"{prefix}.tls needs exactly one of key_file (a PEM file) or key_secret (the name of a secret "
            f"config key: pulumi config set --secret NAME < key.pem)"
        )
    return spec


def _host_path(raw: Mapping[str, Any], key: str, prefix: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    problems = path_problems(key, value)
    if problems:
        raise ConfigError(f"{prefix}.tls.{problems[0]}")
    return str(value)


def _days(value: Any, key: str) -> int:
    days = _whole_number(value, key)
    if days > 366:
        raise ConfigError(f"{key} must be a number of days from 0 to 366, got {value!r}")
    return days


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


def parse_stack(
    hosts_raw: Mapping[str, Any],
    sites_raw: Mapping[str, Any],
    auth_services_raw: Mapping[str, Any] | None = None,
    bastions_raw: Mapping[str, Any] | None = None,
) -> StackSpec:
    hosts = parse_hosts(hosts_raw)
    hosts, bastions = attach_bastions(hosts_raw, hosts, bastions_raw or {})
    sites = parse_sites(sites_raw, hosts, auth_services_raw)
    services = parse_auth_services(_auth_services_raw(auth_services_raw), hosts, sites)
    return StackSpec(hosts=hosts, sites=sites, auth_services=services, bastions=bastions)


def attach_bastions(
    hosts_raw: Mapping[str, Any], hosts: Mapping[str, HostSpec], bastions_raw: Mapping[str, Any]
) -> tuple[dict[str, HostSpec], dict[str, HostSpec]]:
    """`hosts.NAME.bastion` names an entry of `bastions` or another host, reached directly and pinned."""
    if not isinstance(bastions_raw, Mapping):
        raise ConfigError(f"{NAMESPACE}:bastions must be an object of NAME: {{address, host_key, ...}}")
    for name, item in bastions_raw.items():
        if isinstance(item, Mapping) and "bastion" in item:
            raise ConfigError(
                f"{NAMESPACE}:bastions.{name}.bastion: a bastion is reached directly, not through another bastion"
            )
    bastions = parse_hosts(bastions_raw, "bastions")
    for name in sorted(set(bastions) & set(hosts)):
        raise ConfigError(
            f"{NAMESPACE}:bastions.{name} and {NAMESPACE}:hosts.{name} share a name; `bastion: {name}` would be "
            "ambiguous. Rename one"
        )
    wanted = {name: item.get("bastion") for name, item in hosts_raw.items() if isinstance(item, Mapping)}
    wanted = {name: via for name, via in wanted.items() if via is not None}
    resolved = dict(hosts)
    for name, via in wanted.items():
        key = f"{NAMESPACE}:hosts.{name}.bastion"
        if not isinstance(via, str) or not via:
            raise ConfigError(f"{key} must be the name of an entry of bastions or hosts, got {via!r}")
        if via == name:
            raise ConfigError(f"{key} is {name!r}, the host itself: a host cannot be reached through itself")
        if via not in bastions and via not in hosts:
            raise ConfigError(
                f"{key} is {via!r}, which is neither in bastions ({sorted(bastions)}) nor in hosts ({sorted(hosts)})"
            )
        if via in wanted:
            raise ConfigError(
                f"{key} is {via!r}, which is itself reached through {wanted[via]!r} ({NAMESPACE}:hosts.{via}.bastion); "
                "a bastion must be reachable directly from the controller"
            )
        jump = bastions.get(via) or hosts[via]
        where = f"{NAMESPACE}:{'bastions' if via in bastions else 'hosts'}.{via}"
        if not jump.host_key and not jump.insecure_ignore_host_key:
            raise ConfigError(
                f"{where}.host_key is required: {via} is the bastion of {name}, and its key is checked before anything "
                "is sent through it (the output of `ssh-keyscan -t ed25519 HOST` without the host name, or set "
                "insecure_ignore_host_key: true for lab use)"
            )
        resolved[name] = replace(hosts[name], bastion=jump)
    return resolved, bastions


def parse_access(ssh_auth: Any, agent_socket: Any) -> AccessSpec:
    """`ssh_auth`: `private_key` (the default), `agent`, or a list of both in the order to try them."""
    if ssh_auth is None:
        methods: tuple[Any, ...] = ("private_key",)
    elif isinstance(ssh_auth, str):
        methods = tuple(m.strip() for m in ssh_auth.split(","))
    elif isinstance(ssh_auth, (list, tuple)):
        methods = tuple(ssh_auth)
    else:
        raise ConfigError(f"{NAMESPACE}:ssh_auth must be agent, private_key or a list of them, got {ssh_auth!r}")
    wrong = [m for m in methods if m not in SSH_AUTH_METHODS]
    if wrong or not methods or len(set(methods)) != len(methods):
        raise ConfigError(
            f"{NAMESPACE}:ssh_auth must be agent, private_key or a list of both (each once, in the order to try "
            f"them), got {ssh_auth!r}"
        )
    if agent_socket is not None:
        if not isinstance(agent_socket, str) or not agent_socket.startswith("/"):
            raise ConfigError(f"{NAMESPACE}:ssh_agent_socket must be the absolute path of the agent's socket")
        if "agent" not in methods:
            raise ConfigError(
                f"{NAMESPACE}:ssh_agent_socket is set but {NAMESPACE}:ssh_auth does not list agent; add it to use it"
            )
    return AccessSpec(methods=methods, agent_socket=agent_socket)


def with_access(spec: StackSpec, access: AccessSpec) -> StackSpec:
    """Every host (and its bastion) logs in the way `ssh_auth` says."""

    def one(host: HostSpec) -> HostSpec:
        bastion = replace(host.bastion, access=access) if host.bastion is not None else None
        return replace(host, access=access, bastion=bastion)

    hosts = {name: one(host) for name, host in spec.hosts.items()}
    return replace(spec, hosts=hosts, bastions={name: one(b) for name, b in spec.bastions.items()})


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
