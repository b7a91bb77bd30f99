"""A managed name defined twice by hand: the edit leaves one definition, destroy puts both lines back in place."""

from __future__ import annotations

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from tests.engine.lifecycle_support import MAIN_CF, reload_postfix, write_file

pytestmark = pytest.mark.engine

HOST = "mx"
NAME = b"smtpd_client_connection_rate_limit"


@pytest.fixture
def duplicated(testbed):
    before = testbed.read_file(HOST, MAIN_CF)
    lines = before.splitlines(keepends=True)
    # Postfix accepts this with "overriding earlier entry" and uses 7.
    odd = b"".join([*lines[:10], NAME + b" = 5\n", *lines[10:], NAME + b" = 7\n"])
    write_file(testbed, HOST, MAIN_CF, odd)
    reload_postfix(testbed, HOST)
    assert testbed.run(HOST, f"postconf -h {NAME.decode()}").stdout.strip() == "7"
    yield odd
    write_file(testbed, HOST, MAIN_CF, before)
    reload_postfix(testbed, HOST)


def test_duplicate_of_a_managed_name_is_resolved_and_restored(testbed, tmp_path, duplicated):
    project = EngineProject(tmp_path / "dup", "dup")
    site = {"postfix_host": HOST, "limits": {NAME.decode(): 2}}
    project.configure(bed_config(testbed, {"d": site}, [HOST]))
    try:
        run = project.up()
        assert run.ok, run.text
        applied = testbed.read_file(HOST, MAIN_CF)
        assert applied.count(NAME + b" =") == 1 and NAME + b" = 2\n" in applied
        checked = testbed.run(HOST, "postconf -n >/dev/null")
        assert "overriding" not in checked.stderr, checked.stderr
        # A client sees the managed limit: the third connection in the time unit is refused.
        address, source = testbed.hosts[HOST].address, testbed.client_addresses[-1]
        codes = [mail_client.banner(address, source).code for _ in range(3)]
        assert codes == [220, 220, 421], codes
        again = project.up()
        assert again.ok and again.summary.get("update", 0) == 0, again.text
    finally:
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
    assert testbed.read_file(HOST, MAIN_CF) == duplicated
