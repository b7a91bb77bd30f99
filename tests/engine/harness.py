"""Drives the real Pulumi engine on a stack of its own, in a scratch project directory.

The stack runner itself lives in `stackctl.scratch` (bench/ uses it too); the names stay importable from here.
"""

from __future__ import annotations

import hashlib
import secrets

from stackctl.scratch import (  # noqa: F401  (re-exported for the tests)
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


def secret_fragments(text: str) -> list[str]:
    """What would betray a secret: each line of its body (PEM/OpenSSH armour dropped) and the body joined.

    Lines shorter than 16 characters (a final base64 line, say) would match by chance and are left out;
    the joined body still covers them.
    """
    body = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("-----")]
    fragments = [ln for ln in body if len(ln) >= 16]
    joined = "".join(body)
    if joined not in fragments:
        fragments.append(joined)
    return fragments


def find_secrets(haystack: str, secrets: dict[str, str]) -> list[str]:
    """Labels of the secrets any fragment of which occurs in `haystack`."""
    return [label for label, text in secrets.items() if any(f in haystack for f in secret_fragments(text))]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_offset(bed, host: str, path: str = "/var/log/mail.log") -> int:
    """The size of a host's log now: what a test reads from later sees only lines written after this."""
    return int(bed.run(host, f"stat -c %s {path} 2>/dev/null || echo 0").stdout.strip() or 0)


def log_since(bed, host: str, offset: int, path: str = "/var/log/mail.log") -> str:
    return bed.run(host, f"tail -c +{offset + 1} {path} 2>/dev/null || true").stdout


def dovecot_password(testbed, hosts, user: str, label: str) -> str:
    """A fresh passwd-file password for `user` in /etc/dovecot/users on each of `hosts`, recorded as a secret."""
    word = secrets.token_urlsafe(16)
    RECORD.secret(label, word)
    for host in hosts:
        testbed.run(
            host,
            f"umask 027; printf '%s:%s\\n' {user} \"$(doveadm pw -s SHA512-CRYPT -p '{word}')\" > /etc/dovecot/users; "
            "chown root:dovecot /etc/dovecot/users",
        )
    return word
