"""An outside client trying to relay through a hardened host is refused for good (554), not told to retry (454)."""

from __future__ import annotations

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config

pytestmark = pytest.mark.engine

HOST = "edge"


def relay_attempt(testbed, source: str) -> tuple[int, str]:
    """RCPT TO another domain, from a client outside mynetworks and not logged in."""
    client = mail_client.connect(testbed.hosts[HOST].address, source)
    try:
        client.ehlo("client.testbed.invalid")
        assert client.mail("someone@client.testbed.invalid")[0] == 250
        code, text = client.rcpt("someone@elsewhere.invalid")
        return code, text.decode()
    finally:
        client.close()


def test_relaying_is_refused_permanently_and_false_leaves_the_hosts_own(testbed, tmp_path):
    project = EngineProject(tmp_path / "relay", "relay")
    site = {"postfix_host": HOST, "limits": {"message_size_limit": 10240000}}
    try:
        project.configure(bed_config(testbed, {"r": site}, [HOST]))
        assert (run := project.up()).ok, run.text
        assert testbed.run(HOST, "postconf -h smtpd_relay_restrictions").stdout.strip() == (
            "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
        )
        code, text = relay_attempt(testbed, testbed.client_addresses[38])
        assert code == 554 and "Relay access denied" in text, (code, text)
        # `relay_restrictions: false`: the directive is no longer managed and Postfix's own default is back.
        project.configure(bed_config(testbed, {"r": {**site, "relay_restrictions": False}}, [HOST]))
        assert (run := project.up()).ok, run.text
        code, text = relay_attempt(testbed, testbed.client_addresses[39])
        assert code == 454 and "Relay access denied" in text, (code, text)
    finally:
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
