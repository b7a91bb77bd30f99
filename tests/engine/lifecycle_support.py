"""Helpers shared by the lifecycle engine tests: host files written as bytes, what a client sees."""

from __future__ import annotations

import base64
import shlex

from tests.engine import mail_client

MAIN_CF = "/etc/postfix/main.cf"
# Names, modes and owners of everything under the config folders, contents of every file.
SNAPSHOT = (
    "find /etc/postfix /etc/dovecot -printf '%p %m %u:%g\\n' | sort; "
    "find /etc/postfix /etc/dovecot -type f -print0 | sort -z | xargs -0 sha256sum"
)


def write_file(testbed, host: str, path: str, data: bytes) -> None:
    """Write exact bytes to a host file (in place, keeping its mode and owner)."""
    encoded = base64.b64encode(data).decode()
    testbed.run(host, f"printf %s {encoded} | base64 -d > {shlex.quote(path)}")


def reload_postfix(testbed, host: str) -> None:
    testbed.run(host, "postfix reload >/dev/null 2>&1")
    testbed.restart_postfix(host)


def ehlo_size(testbed, host: str, source: str | None = None) -> str:
    """The SIZE line a client sees in the EHLO reply of a fresh smtpd."""
    client = mail_client.connect(testbed.hosts[host].address, source or testbed.controller_address)
    try:
        return next((ln for ln in mail_client.ehlo_lines(client) if ln.startswith("SIZE")), "SIZE (none)")
    finally:
        client.quit()


def snapshot(testbed, host: str) -> str:
    return testbed.run(host, SNAPSHOT, check=False).stdout
