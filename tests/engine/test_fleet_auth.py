"""A fleet: one site on two MX hosts, one Dovecot auth service on a third host over TCP, shared by both."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, Run, bed_config, dovecot_password, ssh_logins
from tests.tls_files import make_cert
from toolchain.testbed.layout import SUBNET

pytestmark = pytest.mark.engine

MX_HOSTS = ("mx", "edge")
DOVECOT = "auth"
USER = "carol"
SNAPSHOT = (
    # Names, modes and owners of everything under the config folders, contents of every file.
    "find /etc/postfix /etc/dovecot -printf '%p %m %u:%g\\n' | sort; "
    "find /etc/postfix /etc/dovecot -type f -print0 | sort -z | xargs -0 sha256sum"
)


def snapshot(testbed) -> dict[str, str]:
    return {h: testbed.run(h, "set -o pipefail; " + SNAPSHOT).stdout for h in (*MX_HOSTS, DOVECOT)}


@pytest.fixture(scope="module")
def password(testbed) -> str:
    return dovecot_password(testbed, (DOVECOT,), USER, "Dovecot password (fleet)")


def fleet_config(testbed, cert: Path, key: Path, sites: dict | None = None, services: dict | None = None) -> dict:
    tls = {"cert_file": str(cert), "key_file": str(key)}
    config = bed_config(
        testbed, sites or {"fleet": {"postfix_hosts": list(MX_HOSTS), "auth_service": "central", "tls": tls}}
    )
    config["auth_services"] = services or {"central": {"dovecot_host": DOVECOT, "listener": "inet"}}
    return config


@pytest.fixture(scope="module")
def cert(tmp_path_factory, testbed):
    return make_cert(tmp_path_factory.mktemp("fleet-cert"), testbed.hosts["mx"].hostname)


@pytest.fixture(scope="module")
def project(testbed, password, cert, tmp_path_factory):
    before = snapshot(testbed)
    project = EngineProject(tmp_path_factory.mktemp("fleet"), "fleet")
    project.configure(fleet_config(testbed, *cert))
    yield project, before
    project.destroy()


def auth_reply(testbed, host: str, source: str, word: str) -> int:
    client = mail_client.connect(testbed.hosts[host].address, source)
    try:
        assert client.starttls(context=mail_client.tls_context())[0] == 220
        assert "AUTH PLAIN LOGIN" in mail_client.ehlo_lines(client)
        plain = base64.b64encode(f"\0{USER}\0{word}".encode()).decode()
        return client.docmd("AUTH", "PLAIN " + plain)[0]
    finally:
        client.close()


def urn_of(deployment: dict, name: str) -> str:
    (urn,) = [r["urn"] for r in deployment["resources"] if r["urn"].endswith(f"::{name}")]
    return urn


def refused_at_preview(testbed, tmp_path, config: dict, fragments: list[str]) -> None:
    project = EngineProject(tmp_path, "refused")
    project.configure(config)
    logins = ssh_logins(testbed)
    run = project.preview()
    assert not run.ok
    for fragment in fragments:
        assert fragment in run.stderr, run.stderr
    assert ssh_logins(testbed) == logins


class TestFleet:
    def test_preview_plans_one_dovecot_for_both_hosts(self, testbed, project):
        proj, _ = project
        run = proj.preview()
        assert run.ok, run.text
        # the stack, the MailSite, one DovecotAuthService, a PostfixConfig per host
        assert run.summary.get("create") == 5, run.summary
        assert run.stdout.count("+ pulumi-python:dynamic/dovecot:DovecotAuthService: (create)") == 1, run.stdout

    def test_up_gives_auth_on_both_hosts_through_one_dovecot(self, testbed, password, project):
        proj, _ = project
        run = proj.up()
        assert run.ok, run.text
        assert_dovecot_before_each_host(run, proj.export())
        for n, host in enumerate(MX_HOSTS):
            assert auth_reply(testbed, host, f"{SUBNET}{110 + n}", password) == 235, host
            assert auth_reply(testbed, host, f"{SUBNET}{112 + n}", password + "x") == 535, host
        path = testbed.run(host, "postconf -h smtpd_sasl_path").stdout.strip()
        assert path == f"inet:{testbed.hosts[DOVECOT].address}:12345"

    def test_destroy_leaves_all_three_hosts_as_they_were(self, testbed, project):
        proj, before = project
        run = proj.destroy()
        assert run.ok, run.text
        assert snapshot(testbed) == before
        assert mail_client.refused(testbed.hosts[DOVECOT].address, 12345)


def assert_dovecot_before_each_host(run: Run, deployment: dict) -> None:
    dovecot = urn_of(deployment, "central-dovecot")
    for host in MX_HOSTS:
        postfix = urn_of(deployment, f"fleet-{host}-postfix")
        (record,) = [r for r in deployment["resources"] if r["urn"] == postfix]
        assert dovecot in record.get("dependencies", []), record.get("dependencies")
        done = [e.sequence for e in run.events if e.res_outputs_event and e.res_outputs_event.metadata.urn == dovecot]
        began = [
            e.sequence for e in run.events if e.resource_pre_event and e.resource_pre_event.metadata.urn == postfix
        ]
        assert done and began and max(done) < min(began), (host, done, began)


def test_a_host_in_two_sites_is_refused_at_preview(testbed, cert, tmp_path):
    tls = {"cert_file": str(cert[0]), "key_file": str(cert[1])}
    sites = {
        "a": {"postfix_hosts": ["mx", "edge"], "auth_service": "central", "tls": tls},
        "b": {"postfix_hosts": ["edge"], "auth_service": "central", "tls": tls},
    }
    refused_at_preview(
        testbed,
        tmp_path,
        fleet_config(testbed, *cert, sites=sites),
        ["secure-postfix:sites.a.postfix_hosts[1] (edge)", "secure-postfix:sites.b.postfix_host (edge)"],
    )


def test_an_unknown_auth_service_is_refused_at_preview(testbed, cert, tmp_path):
    tls = {"cert_file": str(cert[0]), "key_file": str(cert[1])}
    sites = {"a": {"postfix_hosts": ["mx"], "auth_service": "nowhere", "tls": tls}}
    refused_at_preview(
        testbed,
        tmp_path,
        fleet_config(testbed, *cert, sites=sites),
        ["secure-postfix:sites.a.auth_service is 'nowhere'"],
    )


def test_a_unix_listener_used_from_another_host_is_refused_at_preview(testbed, cert, tmp_path):
    services = {"central": {"dovecot_host": DOVECOT, "listener": "unix"}}
    refused_at_preview(
        testbed,
        tmp_path,
        fleet_config(testbed, *cert, services=services),
        ["secure-postfix:auth_services.central.listener is unix but secure-postfix:sites.fleet uses it from mx"],
    )
