"""The local stack as `make up` applies it: limits, SASL and TLS together on each site, checked as a client sees it."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
import yaml

from tests.engine import mail_client
from tests.engine.harness import EngineProject, dovecot_password, ssh_logins
from tests.tls_files import der_fingerprint
from toolchain.stackctl.engine import PROJECT_DIR

pytestmark = pytest.mark.engine

STACK_FILE = PROJECT_DIR / "stacks" / "Pulumi.local.yaml"
# The one site, its Postfix hosts, and the host of the auth service they share.
SITE, POSTFIX_HOSTS, DOVECOT = "fleet", ("mx", "edge"), "auth"
USER = "bob"
DOVECOT_FILE = "/etc/dovecot/conf.d/99-secure-postfix-auth.conf"


def local_config(testbed) -> dict:
    """stacks/Pulumi.local.yaml with its `.testbed/` paths pointing at this session's bed."""
    doc = yaml.safe_load(STACK_FILE.read_text())["config"]
    config = {k.removeprefix("secure-postfix:"): v for k, v in doc.items()}

    def bed_path(value: str) -> str:
        return str(testbed.dir / Path(value).relative_to(".testbed"))

    config["inventory_file"] = bed_path(config["inventory_file"])
    config["ssh_private_key_file"] = bed_path(config["ssh_private_key_file"])
    for site in config["sites"].values():
        site["tls"] = {k: bed_path(v) if k.endswith("_file") else v for k, v in site["tls"].items()}
    return config


@pytest.fixture(scope="module")
def password(testbed) -> str:
    return dovecot_password(testbed, (DOVECOT,), USER, "Dovecot password (local stack)")


@pytest.fixture(scope="module")
def project(testbed, password, tmp_path_factory):
    originals = {h: testbed.read_file(h, "/etc/postfix/main.cf") for h in ("mx", "edge")}
    project = EngineProject(tmp_path_factory.mktemp("local"), "local")
    config = local_config(testbed)
    project.configure(config)
    yield project, config, originals
    project.destroy()


def auth_plain(word: str) -> str:
    return base64.b64encode(f"\0{USER}\0{word}".encode()).decode()


def test_preview_opens_no_ssh_connection_and_hides_secrets(testbed, project):
    proj, _config, _ = project
    logins = ssh_logins(testbed)
    run = proj.preview()
    assert run.ok, run.text
    assert ssh_logins(testbed) == logins
    assert run.summary.get("create") == 5, run.summary  # the stack, a MailSite, 2 PostfixConfigs, one Dovecot
    for name in ("private_key", "tls_key_pem"):
        assert re.search(rf"^\s+{name}\s*: \[secret\]$", run.stdout, re.M), run.stdout


def test_up_applies_limits_sasl_and_tls_together(testbed, password, project):
    proj, config, _ = project
    run = proj.up()
    assert run.ok, run.text
    site = SITE
    for n, postfix in enumerate(POSTFIX_HOSTS):
        wanted = config["sites"][site]["limits"]
        live = dict(
            line.split(" = ", 1) for line in testbed.run(postfix, "postconf -n").stdout.splitlines() if " = " in line
        )
        assert {k: live.get(k) for k in wanted} == {k: str(v) for k, v in wanted.items()}, postfix
        client = mail_client.connect(testbed.hosts[postfix].address, testbed.client_addresses[30 + n])
        try:
            lines = mail_client.ehlo_lines(client)
            assert f"SIZE {wanted['message_size_limit']}" in lines and not any(ln.startswith("AUTH") for ln in lines)
            assert client.starttls(context=mail_client.tls_context())[0] == 220
            assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
            served = hashlib.sha256(client.sock.getpeercert(binary_form=True)).digest()
            assert served == der_fingerprint(Path(config["sites"][site]["tls"]["cert_file"]))
            assert "AUTH PLAIN LOGIN" in mail_client.ehlo_lines(client)
            assert client.docmd("AUTH", "PLAIN " + auth_plain(password))[0] == 235
        finally:
            client.close()


def test_preview_after_up_changes_nothing_and_opens_no_connection(testbed, project):
    proj, _config, _ = project
    logins = ssh_logins(testbed)
    run = proj.preview()
    assert run.ok and set(run.summary) == {"same"}, run.summary
    assert ssh_logins(testbed) == logins


def test_destroy_gives_every_host_back_as_clients_see_it(testbed, project):
    proj, _config, originals = project
    run = proj.destroy()
    assert run.ok, run.text
    for host, text in originals.items():
        assert testbed.read_file(host, "/etc/postfix/main.cf") == text, host
    for host in ("mx", "auth"):
        assert testbed.run(host, f"test -e {DOVECOT_FILE}", check=False).returncode == 1, host
    # The UNIX socket is gone, the TCP listener closed, and neither Postfix offers AUTH any more.
    assert testbed.run("mx", "test -e /var/spool/postfix/private/auth", check=False).returncode == 1
    assert mail_client.refused(testbed.hosts["auth"].address, 12345)
    for n, host in enumerate(("mx", "edge")):
        client = mail_client.connect(testbed.hosts[host].address, testbed.client_addresses[32 + n])
        try:
            assert client.starttls(context=mail_client.tls_context())[0] == 220
            lines = mail_client.ehlo_lines(client)
            assert not any(ln.startswith("AUTH") for ln in lines), (host, lines)
            assert "SIZE 10240000" in lines
        finally:
            client.close()
