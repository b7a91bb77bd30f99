"""What a reviewer reads in `pulumi preview --diff`: one line per changed directive or drifted file, nothing restated.

Neither the compliance verdicts nor the text of the Dovecot file are inputs: a change of one limit plans one
property change, a hand edit of the Dovecot file shows as one `drift` line after refresh, and `up` mends it.
"""

from __future__ import annotations

import pytest

from secure_postfix.core.certificates import read_leaf
from secure_postfix.core.dovecot_conf import CONFIG_FILE
from tests.engine.harness import EngineProject, bed_config, planned
from tests.tls_files import make_cert

pytestmark = pytest.mark.engine

HOST = "mx"
LIMITS = {
    "message_size_limit": 10240000,
    "header_size_limit": 102400,
    "queue_minfree": 15360000,
    "smtpd_client_connection_rate_limit": 30,
}


def sites(cert, key, message_size_limit: int = 10240000) -> dict:
    return {
        "solo": {
            "postfix_host": HOST,
            "dovecot_host": HOST,
            "sasl": {"listener": "unix"},
            "tls": {"cert_file": str(cert), "key_file": str(key)},
            "limits": {**LIMITS, "message_size_limit": message_size_limit},
        }
    }


@pytest.fixture(scope="module")
def bed(testbed, tmp_path_factory):
    cert, key = make_cert(tmp_path_factory.mktemp("certs"), testbed.hosts[HOST].hostname)
    project = EngineProject(tmp_path_factory.mktemp("difflines"), "difflines")
    project.configure(bed_config(testbed, sites(cert, key), [HOST]))
    first = project.up()
    assert first.ok, first.text
    yield project, cert, key
    destroyed = project.destroy()
    assert destroyed.ok, destroyed.text


def test_a_limit_change_plans_one_property_of_one_resource(testbed, bed):
    project, cert, key = bed
    project.configure(bed_config(testbed, sites(cert, key, message_size_limit=5120000), [HOST]))
    try:
        run = project.preview()
        assert run.ok, run.text
        assert planned(run) == {"solo-postfix": ("update", ["main_cf.message_size_limit"])}, run.text
        changed = [line for line in run.stdout.splitlines() if "=>" in line]
        assert len(changed) == 1 and "message_size_limit" in changed[0], run.stdout
        assert "compliance" not in run.stdout.split("Resources:")[0], run.stdout
    finally:
        project.configure(bed_config(testbed, sites(cert, key), [HOST]))


def test_a_new_certificate_is_one_line_old_to_new_expiry(testbed, bed, tmp_path):
    """The PEM is not restated line by line: one line says which certificate goes and which comes; the PEM's own
    diff is marked hidden, and its key, a secret, is the other changed line."""
    project, cert, key = bed
    new_cert, new_key = make_cert(tmp_path, testbed.hosts[HOST].hostname, days=60)
    old_expiry, new_expiry = (read_leaf(p.read_text()).expiry() for p in (cert, new_cert))
    project.configure(bed_config(testbed, sites(new_cert, new_key), [HOST]))
    try:
        run = project.preview()
        assert run.ok, run.text
        assert "BEGIN CERTIFICATE" not in run.stdout and "MII" not in run.stdout, run.stdout
        changed = [line.strip() for line in run.stdout.splitlines() if "=>" in line]
        assert len(changed) == 2, run.stdout
        assert [ln.split() for ln in run.stdout.splitlines() if "(hidden)" in ln] == [["~", "tls_cert_pem", "(hidden)"]]
        (line,) = [c for c in changed if c.startswith("~ tls_certificate")]
        assert f'"expires {old_expiry} (' in line and f'=> "expires {new_expiry} (' in line, line
        assert any(c.startswith("~ tls_key_pem") and "[secret] => [secret]" in c for c in changed), changed
    finally:
        project.configure(bed_config(testbed, sites(cert, key), [HOST]))


def test_a_hand_edited_dovecot_file_is_one_drift_line_and_up_mends_it(testbed, bed):
    project, _, _ = bed
    written = testbed.read_file(HOST, CONFIG_FILE)
    testbed.run(HOST, f"printf '# edited by hand\\n' >> {CONFIG_FILE}")
    refreshed = project.refresh()
    assert refreshed.ok, refreshed.text
    run = project.preview()
    assert run.ok, run.text
    assert planned(run) == {"solo-dovecot": ("update", ["drift"])}, run.text
    assert f"{CONFIG_FILE} was changed on the host" in run.stdout
    assert "# edited by hand" not in run.stdout  # the file's text is not printed
    mended = project.up()
    assert mended.ok, mended.text
    assert testbed.read_file(HOST, CONFIG_FILE) == written
    again = project.preview()
    assert again.ok and planned(again) == {}, again.text


def test_a_hand_edited_limit_is_one_line_after_refresh(testbed, bed):
    project, _, _ = bed
    testbed.run(HOST, "postconf -e smtpd_client_connection_rate_limit=0")
    refreshed = project.refresh()
    assert refreshed.ok, refreshed.text
    run = project.preview()
    assert run.ok, run.text
    assert planned(run) == {"solo-postfix": ("update", ["main_cf.smtpd_client_connection_rate_limit"])}, run.text
    assert project.up().ok
