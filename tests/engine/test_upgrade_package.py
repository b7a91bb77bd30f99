"""State written before the resources became the `secure_postfix` package, then this release's code: the same
resources, nothing replaced (only this release's new main.cf lines planned), refresh and destroy work, and the hosts
end byte-identical to where they started.

Each resource's state names its provider's class by the path it had (`components.postfix_config.…`); the
`components` shim at the project's root keeps those references loading."""

from __future__ import annotations

import json

import pytest

from tests.engine import fault_support as fs
from tests.engine.harness import bed_config
from tests.engine.test_pulumi_cli import CliProject
from tests.engine.test_upgrade import previous_release, this_release
from tests.tls_files import make_cert

pytestmark = pytest.mark.engine

# The last release whose resources lived in the `components` package.
PREVIOUS = "59517a7"
MX, AUTH = "mx", "auth"
DOVECOT_FILE = "/etc/dovecot/conf.d/99-secure-postfix-auth.conf"
FILES = (*fs.WATCHED, DOVECOT_FILE)


def digests(testbed) -> dict[str, dict[str, str | None]]:
    return {host: fs.digests(testbed, host, FILES) for host in (MX, AUTH)}


def resource_types(cli: CliProject) -> dict[str, str]:
    resources = json.loads(cli.ok("stack", "export"))["deployment"]["resources"]
    return {r["urn"].rsplit("::", 1)[1]: r["type"] for r in resources if r.get("custom") and "dynamic" in r["type"]}


def test_state_from_the_components_package_plans_nothing_and_destroys_to_the_same_bytes(testbed, tmp_path):
    cli = CliProject(tmp_path / "upgrade", "upgrade")
    previous_release(cli.root, PREVIOUS)
    cert, key = make_cert(tmp_path / "tls", testbed.hosts[MX].hostname)
    site = {
        "postfix_hosts": [MX],
        "auth_service": "central",
        "limits": {"message_size_limit": 4194304, "smtpd_client_connection_rate_limit": 25},
        "tls": {"cert_file": str(cert), "key_file": str(key)},
        "services": {"submission": {}},
    }
    config = bed_config(testbed, {"pkg": site}, [MX, AUTH])
    config["auth_services"] = {"central": {"dovecot_host": AUTH, "listener": "inet"}}
    cli.configure(config)
    pristine = digests(testbed)
    cli.ok("up", "--yes")
    applied = digests(testbed)
    types = resource_types(cli)
    assert set(types) == {"central-dovecot", "pkg-postfix", "pkg-services"}, types

    this_release(cli.root)
    # The provider reference in state moved: nothing is replaced, created or deleted, and Dovecot's resource plans
    # nothing. What this release writes that the old one did not (the TLS policy's main.cf lines, the certificate's
    # one-line summary) is an update in place, on main.cf alone.
    preview = json.loads(cli.ok("preview", "--json"))
    ops = {step["urn"].rsplit("::", 1)[1]: step["op"] for step in preview.get("steps", [])}
    assert set(ops.values()) <= {"same", "update"}, ops
    assert ops.get("central-dovecot", "same") == "same", ops
    cli.ok("up", "--yes")
    upgraded = digests(testbed)
    assert [f for f in FILES if upgraded[MX][f] != applied[MX][f]] == [fs.MAIN_CF], (applied, upgraded)
    assert upgraded[AUTH] == applied[AUTH]
    cli.ok("refresh", "--yes", "--expect-no-changes")
    cli.ok("up", "--yes", "--expect-no-changes")
    assert resource_types(cli) == types
    assert digests(testbed) == upgraded
    cli.ok("destroy", "--yes")
    assert digests(testbed) == pristine
