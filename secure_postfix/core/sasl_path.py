"""The grammar of smtpd_sasl_path: `inet:ADDRESS:PORT` (IPv6 in brackets) or a socket path relative to the queue
directory. Written, read and judged here only: the Dovecot side renders it, the Postfix side checks it and the
host reads it back to find the auth service.
"""

from __future__ import annotations

import posixpath
import re

from secure_postfix.core.problem import Problem

_INET_RE = re.compile(r"inet:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):([0-9]{1,5})")
_RELATIVE_RE = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")


def inet(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"inet:{host}:{port}"


def unix(socket_path: str, queue_directory: str) -> str:
    """A socket at `socket_path`, as a chrooted smtpd names it: relative to the queue directory."""
    return posixpath.relpath(socket_path, queue_directory)


def parse_inet(path: str) -> tuple[str, int] | None:
    """(address, port) of an `inet:` path (brackets dropped); None for a socket path."""
    if not path.startswith("inet:"):
        return None
    address, _, port = path.removeprefix("inet:").rpartition(":")
    return address.strip("[]"), int(port)


def problems(path: str) -> list[Problem]:
    """What is wrong with `path` as the value of smtpd_sasl_path (the field is sasl.path)."""
    if path.startswith("/"):
        return [
            Problem(
                "sasl.path",
                f"{path!r} is absolute; a chrooted smtpd (Debian's default) cannot see it and AUTH never works. "
                "Use the path relative to the Postfix queue directory, e.g. private/auth",
            )
        ]
    if path.startswith("inet:"):
        match = _INET_RE.fullmatch(path)
        if match is None or not 0 < int(match.group(2)) < 65536:
            return [Problem("sasl.path", f"{path!r} is not inet:ADDRESS:PORT")]
        return []
    if not _RELATIVE_RE.fullmatch(path) or ".." in path.split("/"):
        return [Problem("sasl.path", f"{path!r} is not a socket path inside the queue directory (e.g. private/auth)")]
    return []
