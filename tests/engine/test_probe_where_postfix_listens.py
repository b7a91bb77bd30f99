"""A host whose Postfix listens on its own address only (`inet_interfaces`, a common hardening): the probes ask it
there. Asked at 127.0.0.1:25, the check before the change found no Postfix, so every apply restarted it instead of a
reload, then failed its probe and rolled back with a second restart.
"""

from __future__ import annotations

import time

import pytest

from tests.engine.harness import EngineProject, bed_config
from tests.tls_files import make_cert

pytestmark = pytest.mark.engine

HOST = "edge"
MAIN_CF = "/etc/postfix/main.cf"


def starts(testbed) -> int:
    """How often the master has been started (not reloaded) so far."""
    out = testbed.run(HOST, "grep -c 'daemon started -- version' /var/log/mail.log || true").stdout
    return int(out.strip() or 0)


def restart(testbed) -> None:
    before = starts(testbed)
    testbed.run(HOST, "postfix stop >/dev/null 2>&1; postfix start >/dev/null 2>&1")
    # The master's line reaches the log a moment after `postfix start` returns.
    for _ in range(50):
        if starts(testbed) > before:
            return
        time.sleep(0.1)
    raise AssertionError(f"{HOST}: Postfix did not log its start")


@pytest.fixture
def public_only(testbed):
    """Postfix on HOST listening on the host's address alone (inet_interfaces needs a restart to change)."""
    before = testbed.read_file(HOST, MAIN_CF)
    address = testbed.hosts[HOST].address
    testbed.run(HOST, f"postconf -e inet_interfaces={address}")
    restart(testbed)
    assert testbed.run(HOST, "ss -Hltn 'sport = :25'").stdout.split()[3] == f"{address}:25"
    yield address
    (testbed.hosts[HOST].root / MAIN_CF.lstrip("/")).write_bytes(before)
    restart(testbed)


def test_an_apply_reloads_and_probes_where_postfix_listens(testbed, public_only, tmp_path):
    address = public_only
    cert = make_cert(tmp_path / "tls", testbed.hosts[HOST].hostname)
    site = {
        "postfix_hosts": [HOST],
        "auth_service": "central",
        "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])},
        "limits": {"smtpd_client_connection_rate_limit": 12},
        "services": {"submission": {}},
    }
    config = bed_config(testbed, {"public": site}, [HOST, "auth"])
    config["auth_services"] = {"central": {"dovecot_host": "auth", "listener": "inet"}}
    project = EngineProject(tmp_path / "public", "public")
    project.configure(config)
    started = starts(testbed)
    try:
        run = project.up()
        assert run.ok, run.text
        assert "restarting it instead of a reload" not in run.text
        assert starts(testbed) == started, "Postfix was restarted, not reloaded"
        assert testbed.run(HOST, "postconf -h smtpd_client_connection_rate_limit").stdout.strip() == "12"
        assert testbed.run(HOST, "ss -Hltn 'sport = :587'").stdout.split()[3] == f"{address}:587"
        assert (run := project.destroy()).ok, run.text
        assert starts(testbed) == started
    finally:
        project.destroy()
