"""Secrets never show: given as config secrets they work, and the search finds a planted one.

The search itself runs once after the last test of the whole run, over every test process's record
(`tests/session_checks.py`, `sweep`): the state, the `stack export` and the output of every engine command
(failures included), and the hosts' logs, for every line of each secret's body and for the body joined. When this
module was part of the run, the sweep also checks that it saw every kind of command, a failure, a TLS key and the
config secrets given here.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, find_secrets, haystacks, secret_fragments
from tests.tls_files import make_pair

pytestmark = pytest.mark.engine

HOST = "edge"


@pytest.fixture(scope="module")
def secret_stack(testbed, tmp_path_factory):
    """The SSH key and the TLS key given as config secrets (`pulumi config set --secret`), as README step 3 says."""
    cert_pem, key_pem = make_pair(testbed.hosts[HOST].hostname)
    project = EngineProject(tmp_path_factory.mktemp("secrets"), "secrets")
    config = bed_config(
        testbed, {"s": {"postfix_host": HOST, "tls": {"cert_pem": cert_pem, "key_secret": "edge_tls_key"}}}, [HOST]
    )
    del config["ssh_private_key_file"]
    project.configure(config)
    project.set_secret("ssh_private_key", testbed.client_key_path.read_text())
    project.set_secret("edge_tls_key", key_pem)
    yield project, cert_pem, config
    project.destroy()


def served_certificate(testbed, source: str) -> bytes:
    client = mail_client.connect(testbed.hosts[HOST].address, source)
    try:
        client.ehlo()
        assert client.starttls(context=mail_client.tls_context())[0] == 220
        return hashlib.sha256(client.sock.getpeercert(binary_form=True)).digest()
    finally:
        client.close()


def pem_fingerprint(cert_pem: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(cert_pem.encode()).fingerprint(hashes.SHA256())


def test_config_secrets_are_used_and_shown_as_secret_in_diffs(testbed, secret_stack):
    project, cert_pem, config = secret_stack
    preview = project.preview()
    assert preview.ok, preview.text
    for name in ("private_key", "tls_key_pem"):
        assert re.search(rf"^\s+{name}\s*: \[secret\]$", preview.stdout, re.M), preview.stdout
    run = project.up()
    assert run.ok, run.text
    assert served_certificate(testbed, testbed.client_addresses[20]) == pem_fingerprint(cert_pem)
    assert project.refresh().ok
    # A failed apply goes into the search too: the staged check refuses an account the host does not have.
    config["sites"]["s"]["directives"] = {"default_privs": "no-such-account"}
    project.configure(config)
    failed = project.up()
    assert not failed.ok and "Postfix rejects the new main.cf" in failed.stderr, failed.text


def test_destroy_gives_back_debians_certificate(testbed, secret_stack):
    project, cert_pem, _config = secret_stack
    run = project.destroy()
    assert run.ok, run.text
    assert served_certificate(testbed, testbed.client_addresses[21]) != pem_fingerprint(cert_pem)


def test_search_finds_a_planted_secret(testbed, secret_stack):
    """Positive control: a key line put into a directive shows up in the recorded preview and is found."""
    project, _cert, config = secret_stack
    _, planted = make_pair("planted.testbed.invalid")
    line = secret_fragments(planted)[1]
    config["sites"]["s"]["directives"] = {"smtpd_banner": f"$myhostname ESMTP {line}"}
    project.configure(config)
    assert project.preview().ok
    hits = [where for where, text in haystacks(testbed) if find_secrets(text, {"planted": planted})]
    assert any("preview" in where for where in hits), hits
    # The joined body is found where no single line is, and an unused key is found nowhere.
    joined = "".join(planted.splitlines()[1:-1])
    assert find_secrets(json.dumps({"key": joined}), {"planted": planted}) == ["planted"]
    _, unused = make_pair("unused.testbed.invalid")
    assert not [where for where, text in haystacks(testbed) if find_secrets(text, {"unused": unused})]
    config["sites"]["s"].pop("directives")
    project.configure(config)
