"""Drives the real Pulumi engine on a stack of its own, in a scratch project directory.

The stack runner lives in `toolchain.stackctl.scratch` (the benchmark uses it too); its names stay importable here.
"""

from __future__ import annotations

import hashlib
import secrets

from tests.session_checks import find_secrets, secret_fragments  # noqa: F401  (re-exported for the tests)
from toolchain.stackctl.scratch import (  # noqa: F401  (re-exported for the tests)
    PASSPHRASE,
    RECORD,
    EngineProject,
    Recorded,
    Run,
    SessionRecord,
    bed_config,
    bed_target,
    ssh_logins,
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_offset(bed, host: str, path: str = "/var/log/mail.log") -> int:
    """The size of a host's log now: what a test reads from later sees only lines written after this."""
    return int(bed.run(host, f"stat -c %s {path} 2>/dev/null || echo 0").stdout.strip() or 0)


def log_since(bed, host: str, offset: int, path: str = "/var/log/mail.log") -> str:
    return bed.run(host, f"tail -c +{offset + 1} {path} 2>/dev/null || true").stdout


def dovecot_password(testbed, hosts, user: str, label: str) -> str:
    """A fresh passwd-file password for `user` in /etc/dovecot/users on each of `hosts`, recorded as a secret."""
    # Never starting with "-": a command line that takes it as an argument must not read it as an option.
    word = "p" + secrets.token_urlsafe(16)
    RECORD.secret(label, word)
    for host in hosts:
        testbed.run(
            host,
            f"umask 027; printf '%s:%s\\n' {user} \"$(doveadm pw -s SHA512-CRYPT -p '{word}')\" > /etc/dovecot/users; "
            "chown root:dovecot /etc/dovecot/users",
        )
    return word


def haystacks(testbed) -> list[tuple[str, str]]:
    """(where, text) of everything this process wrote that a secret could leak into: engine commands, projects,
    the hosts' logs."""
    found = [(f"{r.stack}: {r.command} ({'ok' if r.ok else 'failed'})", r.text) for r in RECORD.commands]
    for project in RECORD.projects:
        found.append((f"{project.stack_name}: state files", project.state_text()))
        if project.config_file.exists():
            found.append((f"{project.stack_name}: stack config", project.config_file.read_text()))
    for host in testbed.hosts:
        logs = testbed.run(host, "cat /var/log/*.log", check=False).stdout
        found.append((f"{host}: /var/log", logs))
    return found


def planned(run: Run) -> dict[str, tuple[str, list[str]]]:
    """Resource name -> (operation, the property paths the engine's detailed diff names), for every resource of
    ours a preview or up plans to change (from the engine's own events)."""
    found = {}
    for event in run.events:
        pre = event.resource_pre_event
        if pre is None or pre.metadata.op.value in ("same", "read", "refresh"):
            continue
        if not pre.metadata.type.startswith("pulumi-python:dynamic/"):
            continue  # the provider's own step, which the display does not show
        name = pre.metadata.urn.rsplit("::", 1)[-1]
        found[name] = (pre.metadata.op.value, sorted(pre.metadata.detailed_diff or {}))
    return found
