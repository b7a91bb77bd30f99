"""How a resource says the way to its host: through a bastion, and with which login methods.

Like the rest of the connection, these are flat, plain (never secret) resource properties, so
that a change of bastion reads as `bastion_host: a => b` in a diff. They are present only when
set: a host reached directly with the stack's key keeps the properties it always had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.output import Unknown

from secure_postfix.core.defaults import SSH_AUTH_METHODS, SSH_PORT, SSH_USER
from secure_postfix.core.problem import Problem
from secure_postfix.remote.ssh import SshTarget

BASTION_FIELDS = (
    "bastion_name",
    "bastion_host",
    "bastion_port",
    "bastion_user",
    "bastion_host_key",
    "bastion_insecure_ignore_host_key",
)
# host_name: what the stack calls the host, for messages; it never changes how the host is reached.
FIELDS = ("host_name", "ssh_auth", "agent_socket_path", *BASTION_FIELDS)
DEFAULT_AUTH = ("private_key",)


def methods(props: Mapping[str, Any]) -> tuple[str, ...]:
    given = props.get("ssh_auth")
    return tuple(given) if isinstance(given, (list, tuple)) else DEFAULT_AUTH


def needs_private_key(props: Mapping[str, Any]) -> bool:
    """Only a host that logs in with nothing but the stack's key must have one."""
    return methods(props) == DEFAULT_AUTH


def check(props: Mapping[str, Any], host_key_problem) -> list[Problem]:
    """Problems of the reach properties visible without contacting anything."""
    if any(isinstance(props.get(k), Unknown) for k in FIELDS):
        return []
    problems = []
    auth = props.get("ssh_auth")
    if auth is not None and (
        not isinstance(auth, (list, tuple))
        or not auth
        or any(m not in SSH_AUTH_METHODS for m in auth)
        or len(set(auth)) != len(auth)
    ):
        problems.append(Problem("ssh_auth", f"must be a list of {' and/or '.join(SSH_AUTH_METHODS)}, got {auth!r}"))
    socket = props.get("agent_socket_path")
    if socket is not None and (not isinstance(socket, str) or not socket.startswith("/")):
        problems.append(Problem("agent_socket_path", f"must be the absolute path of the agent socket, got {socket!r}"))
    if props.get("bastion_host") is None:
        return problems
    return problems + _bastion_problems(props, host_key_problem)


def _bastion_problems(props: Mapping[str, Any], host_key_problem) -> list[Problem]:
    problems = []
    host, port = props.get("bastion_host"), props.get("bastion_port", 22)
    name = props.get("bastion_name") or host
    if not isinstance(host, str) or not host.strip():
        problems.append(Problem("bastion_host", f"must be the address of the bastion, got {host!r}"))
    if isinstance(port, bool) or not (isinstance(port, (int, float)) and 0 < int(port) < 65536):
        problems.append(Problem("bastion_port", f"must be a TCP port number, got {port!r}"))
    elif host == props.get("host") and int(port) == int(props.get("port") or SSH_PORT):
        problems.append(Problem("bastion_host", f"is the host itself ({host}): no host is reached through itself"))
    ignore = props.get("bastion_insecure_ignore_host_key", False)
    if not isinstance(ignore, bool):
        problems.append(
            Problem("bastion_insecure_ignore_host_key", f"must be true or false (a real boolean), got {ignore!r}")
        )
    key = props.get("bastion_host_key")
    if key:
        problem = host_key_problem(key)
        if problem:
            problems.append(Problem("bastion_host_key", f"(bastion {name}) {problem}"))
    elif ignore is not True:
        problems.append(
            Problem(
                "bastion_host_key",
                f"is required so the bastion {name} can be verified before anything is sent through it: the output "
                "of `ssh-keyscan -t ed25519 HOST` without the host name (or set insecure_ignore_host_key for lab use)",
            )
        )
    return problems


def target_fields(props: Mapping[str, Any]) -> dict[str, Any]:
    """SshTarget fields for the login methods and the bastion (which logs in the same way)."""
    fields: dict[str, Any] = {
        "auth_methods": methods(props),
        "agent_socket": props.get("agent_socket_path") or None,
    }
    if props.get("bastion_host"):
        fields["bastion"] = SshTarget(
            host=props["bastion_host"],
            port=int(props.get("bastion_port") or SSH_PORT),
            user=props.get("bastion_user") or SSH_USER,
            private_key=props.get("private_key") or None,
            private_key_password=props.get("private_key_password") or None,
            host_key=props.get("bastion_host_key") or None,
            insecure_ignore_host_key=props.get("bastion_insecure_ignore_host_key") is True,
            **{k: v for k, v in fields.items()},
        )
        fields["bastion_name"] = props.get("bastion_name") or props["bastion_host"]
    return fields
