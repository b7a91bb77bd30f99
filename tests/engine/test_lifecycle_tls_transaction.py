"""The TLS key and certificate go live together, in one step, and as one transaction with main.cf.

- the pair (key and chain in one file) that cannot be renamed into place leaves main.cf, the old pair and the served
  certificate as they were (the fault is real: the deployed file is made immutable with chattr +i);
- the controller killed with SIGKILL while the host is in the middle of that rename: every STARTTLS during and after
  it is served a matching certificate and key, never `454 4.7.0 TLS not available due to local problem`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path

import pytest

from tests.engine import fault_support as fs
from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from tests.tls_files import der_fingerprint, make_cert

pytestmark = pytest.mark.engine

HOST = "mx"
PAIR = fs.PAIR


def served_certificate(testbed, source: str | None = None) -> bytes:
    client = mail_client.connect(testbed.hosts[HOST].address, source or testbed.controller_address)
    try:
        client.ehlo()
        code, text = client.starttls(context=mail_client.tls_context())
        assert code == 220, (code, text)
        return hashlib.sha256(client.sock.getpeercert(binary_form=True)).digest()
    finally:
        client.close()


def site(cert: tuple[Path, Path]) -> dict:
    return {"postfix_host": HOST, "tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])}}


def test_pair_that_cannot_be_written_leaves_everything_as_it_was(testbed, tmp_path):
    first = make_cert(tmp_path / "a", testbed.hosts[HOST].hostname)
    second = make_cert(tmp_path / "b", testbed.hosts[HOST].hostname)
    project = EngineProject(tmp_path / "tlstx", "tlstx")
    project.configure(bed_config(testbed, {"t": site(first)}, [HOST]))
    try:
        assert (run := project.up()).ok, run.text
        assert served_certificate(testbed) == der_fingerprint(first[0])
        assert testbed.run(HOST, "postconf -h smtpd_tls_cert_file smtpd_tls_key_file").stdout.split() == [PAIR] * 2
        deployed = testbed.read_file(HOST, PAIR)
        main_cf = testbed.read_file(HOST, fs.MAIN_CF)
        testbed.run(HOST, f"chattr +i {PAIR}")
        project.configure(bed_config(testbed, {"t": site(second)}, [HOST]))
        run = project.up()
        assert not run.ok
        assert testbed.read_file(HOST, PAIR) == deployed
        assert testbed.read_file(HOST, fs.MAIN_CF) == main_cf
        assert served_certificate(testbed) == der_fingerprint(first[0])
        for fragment in [testbed.hosts[HOST].address, PAIR, "main.cf was not changed"]:
            assert fragment in run.stderr, run.stderr
        listing = testbed.run(HOST, "ls -a /etc/postfix/tls").stdout.split()
        assert sorted(listing) == [".", "..", "secure-postfix.pem"], listing
    finally:
        testbed.run(HOST, f"chattr -i {PAIR}", check=False)
        project.configure(bed_config(testbed, {"t": site(first)}, [HOST]))
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text


# At the rename that puts the new pair live: the host finishes it after the controller is gone, or the SSH session
# dies first and it never runs. (With the certificate and key in two files, the second case left the new
# certificate beside the old key: `454 4.7.0 TLS not available due to local problem` until the next `up`.)
RENAME_FAULTS = {"finished-by-the-host": fs.pause(3), "never-run": fs.KILL_SESSION + "; exit 1"}


@pytest.mark.parametrize("fault", sorted(RENAME_FAULTS))
def test_controller_killed_in_the_pairs_rename_never_serves_a_mismatched_pair(testbed, tmp_path, fault):
    first = make_cert(tmp_path / "a", testbed.hosts[HOST].hostname)
    second = make_cert(tmp_path / "b", testbed.hosts[HOST].hostname)
    project = EngineProject(tmp_path / "tlskill", "tlskill")
    project.configure(bed_config(testbed, {"t": site(first)}, [HOST]))
    fingerprints = {der_fingerprint(first[0]), der_fingerprint(second[0])}
    try:
        assert (run := project.up()).ok, run.text
        project.configure(bed_config(testbed, {"t": site(second)}, [HOST]))
        # The host pauses in the rename that puts the new pair in place; the controller is killed meanwhile.
        fs.arm(testbed, HOST, fs.Point("pair-rename", "/usr/bin/mv", f"* {PAIR}"), RENAME_FAULTS[fault])
        served = []
        try:
            fs.kill_controller_when_fired(testbed, HOST, project, "rename")
            # New smtpd processes read the files as they are now (an idle one would still hold the old pair).
            testbed.run(HOST, "postfix reload")
            for n in range(8):
                served.append(served_certificate(testbed, testbed.client_addresses[24 + n]))
                time.sleep(0.5)
        finally:
            fs.restore(testbed, HOST)
        assert set(served) <= fingerprints, "a certificate that was never deployed was served"
        assert b"key values mismatch" not in testbed.read_file(HOST, "/var/log/mail.log")
        with contextlib.suppress(Exception):
            project.stack.cancel()
        assert (again := project.up()).ok, again.text
        assert served_certificate(testbed) == der_fingerprint(second[0])
    finally:
        project.configure(bed_config(testbed, {"t": site(first)}, [HOST]))
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
