"""The TLS files are one transaction with main.cf: a key that cannot be written puts the certificate back too.

The fault is real: the deployed key is made immutable (chattr +i), so the rename onto it fails on the host
after the new certificate was already in place.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from tests.tls_files import der_fingerprint, make_cert

pytestmark = pytest.mark.engine

HOST = "mx"
CERT, KEY = "/etc/postfix/tls/secure-postfix.crt", "/etc/postfix/tls/secure-postfix.key"


def served_certificate(testbed) -> bytes:
    client = mail_client.connect(testbed.hosts[HOST].address, testbed.controller_address)
    try:
        client.ehlo()
        client.starttls(context=mail_client.tls_context())
        return hashlib.sha256(client.sock.getpeercert(binary_form=True)).digest()
    finally:
        client.quit()


def site(cert: tuple[Path, Path]) -> dict:
    return {"postfix_host": HOST, "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])}}


def test_key_write_failure_rolls_back_the_certificate(testbed, tmp_path):
    first = make_cert(tmp_path / "a", testbed.hosts[HOST].hostname)
    second = make_cert(tmp_path / "b", testbed.hosts[HOST].hostname)
    project = EngineProject(tmp_path / "tlstx", "tlstx")
    project.configure(bed_config(testbed, {"t": site(first)}, [HOST]))
    try:
        assert (run := project.up()).ok, run.text
        assert served_certificate(testbed) == der_fingerprint(first[0])
        deployed = testbed.read_file(HOST, CERT)
        testbed.run(HOST, f"chattr +i {KEY}")
        project.configure(bed_config(testbed, {"t": site(second)}, [HOST]))
        run = project.up()
        assert not run.ok
        assert testbed.read_file(HOST, CERT) == deployed
        assert served_certificate(testbed) == der_fingerprint(first[0])
        for fragment in [testbed.hosts[HOST].address, KEY, "put back", "main.cf was not changed"]:
            assert fragment in run.stderr, run.stderr
        listing = testbed.run(HOST, "ls -a /etc/postfix/tls").stdout.split()
        assert sorted(listing) == [".", "..", "secure-postfix.crt", "secure-postfix.key"], listing
    finally:
        testbed.run(HOST, f"chattr -i {KEY}", check=False)
        project.configure(bed_config(testbed, {"t": site(first)}, [HOST]))
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
