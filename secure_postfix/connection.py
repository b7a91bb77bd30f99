"""How a resource says where its host is, and how the provider turns that into an SSH target.

Users pass a `Connection`, a `pulumi_command.remote.ConnectionArgs` (or a dict with
the same field names), with a bastion as its `proxy`. Inside a resource the fields
are flattened into top-level properties so that a change of host reads as
`host: a => b` in a diff and the private key is a secret property of its own,
never part of a larger value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.output import Unknown

from secure_postfix import reach
from secure_postfix.core.defaults import SSH_PORT, SSH_USER
from secure_postfix.core.problem import InputError, Problem
from secure_postfix.remote.ssh import SshTarget, named_host, parse_host_keys

CONNECTION_FIELDS = ("host", "port", "user", "host_key", "private_key", "private_key_password", *reach.FIELDS)
SECRET_FIELDS = ("private_key", "private_key_password")
OPTION_FIELDS = ("insecure_ignore_host_key", "use_sudo")
REPLACE_ON = ("host", "port")
# Pulumi shows a CheckFailure's property together with that property's whole value, in plaintext even
# when the value is a secret (seen with tls_key_pem). So only properties that never hold a secret, a
# certificate or a map of directives are named; the message itself still names the field.
NAMED_PROPERTIES = frozenset({"host", "port", "user", "host_key", *OPTION_FIELDS, *reach.FIELDS})


@dataclass(frozen=True)
class Connection:
    """How the controller reaches a host over SSH: the target, or (as `proxy`) the bastion in front of it.

    The field names are those of `pulumi_command.remote.ConnectionArgs`, which every resource also takes as it
    is (or a dict of the same names); `name`, `ssh_auth`, `insecure_ignore_host_key` and `use_sudo` are this
    project's own.
    """

    host: pulumi.Input[str]
    """The host's address or DNS name."""
    port: pulumi.Input[int] = SSH_PORT
    """The SSH port."""
    user: pulumi.Input[str] = SSH_USER
    """The login user: root, or a user allowed to run sudo without a password (with `use_sudo`)."""
    host_key: pulumi.Input[str] | None = None
    """The host's public key as `ssh-keyscan -t ed25519 HOST` prints it, without the host name. Required unless
    `insecure_ignore_host_key`: an unknown or changed key is refused."""
    private_key: pulumi.Input[str] | None = None
    """The login key (PEM or OpenSSH text); always kept as a Pulumi secret."""
    private_key_password: pulumi.Input[str] | None = None
    """The passphrase of `private_key`, if it has one; always kept as a Pulumi secret."""
    agent_socket_path: str | None = None
    """Log in with the keys of the SSH agent listening on this UNIX socket."""
    proxy: Connection | None = None
    """The bastion (jump host) the host is reached through; it logs in with the same key or agent, and its own
    `host_key` is checked before anything is sent through it."""
    name: str | None = None
    """What messages call the host (an inventory name); it never changes how the host is reached."""
    ssh_auth: Sequence[str] | None = None
    """The login methods, tried in this order: "private_key" and/or "agent". Default: the private key, and the
    agent when `agent_socket_path` is set."""
    insecure_ignore_host_key: bool = False
    """Log in without checking the host's key: for a lab only."""
    use_sudo: bool = False
    """Run the commands on the host through `sudo -n` (for a `user` other than root)."""


# pulumi_command's ConnectionArgs fills these in itself; only another value is a choice the project cannot honour.
_COMMAND_DEFAULTS = {"dial_error_limit": 10, "per_dial_timeout": 15}
_UNSUPPORTED = {
    "password": "log in with a key (private_key) or an SSH agent (agent_socket_path) instead",
    "dial_error_limit": "the number of login attempts is the project's own (3)",
    "per_dial_timeout": "set SECURE_POSTFIX_CONNECT_TIMEOUT (seconds) in the environment instead",
}
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Connection))


def _given(value: Any) -> dict[str, Any]:
    """The fields set on a Connection, a pulumi_command ConnectionArgs (or ProxyConnectionArgs), or a dict."""
    if isinstance(value, Connection):
        return {f: getattr(value, f) for f in _FIELD_NAMES}
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "host"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    raise InputError(f"connection: must be a Connection, pulumi_command's ConnectionArgs or a dict, not {value!r}")


def read_connection(value: Any, where: str = "connection", label: str | None = None) -> Connection:
    """The connection as the project's one endpoint type; a field it cannot honour is refused by name.

    `label` names the host in messages (a bastion's problems are the problems of the host behind it).
    """
    given = _given(value)
    host = given.get("host")
    label = label or (host if isinstance(host, str) and host else "(host not known yet)")
    problems = []
    for name, why in _UNSUPPORTED.items():
        if given.get(name) is not None and given.get(name) != _COMMAND_DEFAULTS.get(name):
            problems.append(f"{label}: {where}.{name} is not supported: {why}")
    problems += [
        f"{label}: {where}.{name} is not a connection field ({', '.join(_FIELD_NAMES)})"
        for name in given
        if name not in _FIELD_NAMES and name not in _UNSUPPORTED
    ]
    if problems:
        raise InputError("\n".join(problems), problems)
    fields = {k: v for k, v in given.items() if k in _FIELD_NAMES and v is not None}
    if "proxy" in fields:
        fields["proxy"] = read_connection(fields["proxy"], f"{where}.proxy", label)
    return Connection(**fields)


def connection_props(connection: Any, insecure_ignore_host_key: bool = False, use_sudo: bool = False) -> dict:
    """Flatten a connection into resource properties; secrets stay secrets."""
    given = read_connection(connection)
    props: dict[str, Any] = {
        "host": given.host,
        "port": given.port,
        "user": given.user,
        "host_key": given.host_key,
        "private_key": given.private_key,
        "private_key_password": given.private_key_password,
        **_reach_props(given),
    }
    for name in SECRET_FIELDS:
        if props[name] is not None:
            props[name] = pulumi.Output.secret(props[name])
    props["insecure_ignore_host_key"] = _option(given.insecure_ignore_host_key, insecure_ignore_host_key)
    props["use_sudo"] = _option(given.use_sudo, use_sudo)
    return props


def _reach_props(given: Connection) -> dict[str, Any]:
    """The name, login methods and bastion, present only when set: a host reached directly with the
    resource's key keeps the properties (and diff) it always had."""
    fields: dict[str, Any] = {}
    if given.name and given.name != given.host:
        fields["host_name"] = given.name
    methods = tuple(given.ssh_auth) if given.ssh_auth is not None else _methods_of(given)
    if methods != reach.DEFAULT_AUTH:
        fields["ssh_auth"] = list(methods)
    if given.agent_socket_path:
        fields["agent_socket_path"] = given.agent_socket_path
    if given.proxy is not None:
        fields.update(_bastion_props(given, given.proxy))
    return fields


def _methods_of(given: Connection) -> tuple[str, ...]:
    if given.agent_socket_path is None:
        return reach.DEFAULT_AUTH
    return ("private_key", "agent") if given.private_key is not None else ("agent",)


def _bastion_props(target: Connection, jump: Connection) -> dict[str, Any]:
    """The bastion logs in as the host does: another key, agent or hop of its own is refused, not dropped."""
    label = target.host if isinstance(target.host, str) else "(host not known yet)"
    problems = []
    if jump.proxy is not None:
        problems.append(f"{label}: connection.proxy.proxy: one bastion is supported, not a chain of them")
    for name in ("private_key", "private_key_password", "agent_socket_path", "ssh_auth"):
        mine, its = getattr(target, name), getattr(jump, name)
        if its is not None and its is not mine and its != mine:
            problems.append(
                f"{label}: connection.proxy.{name}: the bastion logs in with the host's own {name}; leave it out"
            )
    if jump.use_sudo:
        problems.append(f"{label}: connection.proxy.use_sudo: nothing runs on the bastion; leave it out")
    if problems:
        raise InputError("\n".join(problems), problems)
    fields = {
        "bastion_name": jump.name or jump.host,
        "bastion_host": jump.host,
        "bastion_port": jump.port,
        "bastion_user": jump.user,
        "bastion_host_key": jump.host_key,
        "bastion_insecure_ignore_host_key": jump.insecure_ignore_host_key,
    }
    return {k: v for k, v in fields.items() if v is not None}


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
