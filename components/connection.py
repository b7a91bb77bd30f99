"""How a resource says where its host is, and how the provider turns that into an SSH target.

Users pass `pulumi_command.remote.ConnectionArgs` (or a dict with the same field
names). Inside a resource the fields are flattened into top-level properties so
that a change of host reads as `host: a => b` in a diff and the private key is a
secret property of its own, never part of a larger value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pulumi
from pulumi.output import Unknown

from components import reach
from components.core.defaults import SSH_PORT, SSH_USER
from components.core.problem import Problem
from components.remote.ssh import SshTarget, named_host, parse_host_keys

CONNECTION_FIELDS = ("host", "port", "user", "host_key", "private_key", "private_key_password", *reach.FIELDS)
SECRET_FIELDS = ("private_key", "private_key_password")
OPTION_FIELDS = ("insecure_ignore_host_key", "use_sudo")
REPLACE_ON = ("host", "port")
# Pulumi shows a CheckFailure's property together with that property's whole value, in plaintext even
# when the value is a secret (seen with tls_key_pem). So only properties that never hold a secret, a
# certificate or a map of directives are named; the message itself still names the field.
NAMED_PROPERTIES = frozenset({"host", "port", "user", "host_key", *OPTION_FIELDS, *reach.FIELDS})


def connection_props(connection: Any, insecure_ignore_host_key: bool = False, use_sudo: bool = False) -> dict:
    """Flatten ConnectionArgs (or a dict) into resource properties; secrets stay secrets."""

    def field(name: str) -> Any:
        if isinstance(connection, Mapping):
            return connection.get(name)
        return getattr(connection, name, None)

    props: dict[str, Any] = {name: field(name) for name in CONNECTION_FIELDS}
    # Present only when set: a host reached directly keeps the properties (and diff) it always had.
    props = {k: v for k, v in props.items() if v is not None or k not in reach.FIELDS}
    for name in SECRET_FIELDS:
        if props[name] is not None:
            props[name] = pulumi.Output.secret(props[name])
    if props["port"] is None:
        props["port"] = SSH_PORT
    if props["user"] is None:
        props["user"] = SSH_USER
    extra = {k: field(k) for k in OPTION_FIELDS if isinstance(connection, Mapping)}
    props["insecure_ignore_host_key"] = _option(extra.get("insecure_ignore_host_key"), insecure_ignore_host_key)
    props["use_sudo"] = _option(extra.get("use_sudo"), use_sudo)
    return props


def _option(given: Any, argument: Any) -> Any:
    """A literal True from the dict or the argument turns an option on.

    Anything that is not a real boolean is passed on as it is, so that `check` refuses it by
    name instead of `bool("false")` quietly turning host-key checking off.
    """
    for value in (given, argument):
        if value is not None and not isinstance(value, bool):
            return value
    return given is True or argument is True


def failure_property(field: str, named: Iterable[str] = NAMED_PROPERTIES) -> str:
    """The input property a problem's field belongs to, for Pulumi to show; "" when it must not be shown."""
    name = field.split(".")[0]
    return name if name in frozenset(named) else ""


def host_label(props: Mapping[str, Any]) -> str:
    host = props.get("host")
    if not (isinstance(host, str) and host):
        return "(host not known yet)"
    name = props.get("host_name")
    return named_host(name if isinstance(name, str) else "", host)


def check_connection(props: Mapping[str, Any]) -> list[Problem]:
    """Connection problems visible without contacting the host."""
    problems = []
    host, port = props.get("host"), props.get("port")
    if not is_unknown(host) and (not isinstance(host, str) or not host.strip()):
        problems.append(Problem("host", "is required: the address or name of the host to configure"))
    if not is_unknown(port) and not (isinstance(port, (int, float)) and 0 < int(port) < 65536):
        problems.append(Problem("port", f"must be a TCP port number, got {port!r}"))
    if not is_unknown(props.get("private_key")) and not props.get("private_key") and reach.needs_private_key(props):
        problems.append(Problem("private_key", "is required: the SSH private key (a Pulumi secret)"))
    problems += reach.check(props, host_key_problem)
    for name in OPTION_FIELDS:
        value = props.get(name)
        if not is_unknown(value) and value is not None and not isinstance(value, bool):
            problems.append(Problem(name, f"must be true or false (a real boolean), got {value!r}"))
    host_key = props.get("host_key")
    if host_key and not is_unknown(host_key):
        problem = host_key_problem(host_key)
        if problem:
            problems.append(Problem("host_key", problem))
    ignore = props.get("insecure_ignore_host_key")
    if not props.get("host_key") and ignore is not True and not is_unknown(ignore):
        problems.append(
            Problem(
                "host_key",
                "is required so the host can be verified: the output of `ssh-keyscan -t ed25519 HOST` without "
                "the host name (or set insecure_ignore_host_key for lab use)",
            )
        )
    return problems


_KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-", "sk-")
_HOW_TO_GET_IT = (
    "get the host's real key with `ssh-keyscan -t ed25519 HOST`, check its fingerprint out of band, and pin the "
    "key type and base64 text it prints after the host name"
)


def host_key_problem(host_key: Any) -> str | None:
    """Why a pinned host key cannot be used, found at preview rather than at the first SSH login."""
    if not isinstance(host_key, str):
        return f"must be text such as 'ssh-ed25519 AAAA…', got {type(host_key).__name__}; {_HOW_TO_GET_IT}"
    for line in host_key.strip().splitlines():
        first = line.split()[0] if line.split() else ""
        if not first.startswith(_KEY_TYPE_PREFIXES):
            return f"a line starts with {first[:40]!r}, not a key type such as ssh-ed25519; {_HOW_TO_GET_IT}"
    try:
        parse_host_keys(host_key)
    except Exception:  # paramiko signals bad keys with several types (InvalidHostKey, SSHException, ...)
        shown = host_key.strip()[:40] + ("…" if len(host_key.strip()) > 40 else "")
        return f"{shown!r} is not a valid SSH public key (a placeholder?); {_HOW_TO_GET_IT}"
    return None


def ssh_target(props: Mapping[str, Any]) -> SshTarget:
    return SshTarget(
        host=props["host"],
        port=int(props.get("port") or SSH_PORT),
        user=props.get("user") or SSH_USER,
        private_key=props.get("private_key") or None,
        private_key_password=props.get("private_key_password") or None,
        host_key=props.get("host_key") or None,
        insecure_ignore_host_key=props.get("insecure_ignore_host_key") is True,
        use_sudo=props.get("use_sudo") is True,
        name=props.get("host_name") or "",
        **reach.target_fields(props),
    )


def replaced_fields(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """A different host is a different resource: the old one is given back, the new one set."""
    return [k for k in REPLACE_ON if not is_unknown(news.get(k)) and olds.get(k) != news.get(k)] + [
        k for k in REPLACE_ON if is_unknown(news.get(k))
    ]


def is_unknown(value: Any) -> bool:
    """True for a value another resource computes, seen during preview."""
    return isinstance(value, Unknown)
