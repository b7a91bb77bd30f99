"""A main.cf comes back byte for byte: no final newline, bytes that are not UTF-8, lines Postfix does not split."""

from __future__ import annotations

import pytest

from secure_postfix.core.postfix_features import RELAY_RESTRICTIONS_DEFAULT
from tests.engine.harness import EngineProject, bed_config
from tests.engine.lifecycle_support import MAIN_CF, ehlo_size, reload_postfix, write_file

pytestmark = pytest.mark.engine

HOST = "mx"
# The last definition is unmanaged and has no final newline; a comment and a managed value are Latin-1.
TAIL = b"\n# r\xe9glages locaux\ndelay_warning_time = 4h"
BANNER = b"smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)\n"
# Debian's own line, which the default relay_restrictions takes over in place.
DEBIAN_RELAY = b"smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination"


@pytest.fixture
def odd_main_cf(testbed):
    before = testbed.read_file(HOST, MAIN_CF)
    assert BANNER in before
    odd = before.replace(BANNER, b"smtpd_banner = $myhostname ESMTP caf\xe9\n").rstrip(b"\n") + TAIL
    write_file(testbed, HOST, MAIN_CF, odd)
    reload_postfix(testbed, HOST)
    yield odd
    write_file(testbed, HOST, MAIN_CF, before)
    reload_postfix(testbed, HOST)


def test_bytes_survive_apply_refresh_rollback_and_destroy(testbed, tmp_path, odd_main_cf):
    project = EngineProject(tmp_path / "bytes", "bytes")
    site = {"postfix_host": HOST, "limits": {"message_size_limit": 1048576}}
    site["directives"] = {"smtpd_banner": "$myhostname ESMTP hardened"}
    project.configure(bed_config(testbed, {"b": site}, [HOST]))
    try:
        run = project.up()
        assert run.ok, run.text
        applied = testbed.read_file(HOST, MAIN_CF)
        expected = odd_main_cf.replace(b"ESMTP caf\xe9", b"ESMTP hardened").replace(
            DEBIAN_RELAY, b"smtpd_relay_restrictions = " + RELAY_RESTRICTIONS_DEFAULT.encode()
        )
        assert applied == expected + b"\nmessage_size_limit = 1048576"
        assert ehlo_size(testbed, HOST) == "SIZE 1048576"
        assert "ESMTP hardened" in testbed.smtp_banner(HOST)

        refreshed = project.refresh()
        assert refreshed.ok, refreshed.text
        assert testbed.read_file(HOST, MAIN_CF) == applied

        # A change the probe rejects is rolled back to the exact bytes that were there.
        bad = {**site, "directives": {**site["directives"], "smtpd_tls_security_level": "bogus"}}
        project.configure(bed_config(testbed, {"b": bad}, [HOST]))
        failed = project.up()
        assert not failed.ok and "Invalid TLS level" in failed.stderr, failed.text
        assert testbed.read_file(HOST, MAIN_CF) == applied
        project.configure(bed_config(testbed, {"b": site}, [HOST]))
    finally:
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
    assert testbed.read_file(HOST, MAIN_CF) == odd_main_cf
    testbed.wait_smtp(HOST, timeout=5)
