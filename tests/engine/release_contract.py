"""The contract on every release, one suite run over two mixed beds: each Debian release in each role.

A module that runs it names its `LAYOUT`: which release each host of the worker's bed runs (Debian 13: Postfix
3.10, Dovecot 2.4; Debian 12: Postfix 3.7, the machine's own; Debian 11: Postfix 3.5, RHEL 9's version, Dovecot
2.3.13). Two sites: `shared`, mx and auth as MXes sharing mx's Dovecot over TCP (a fleet of two releases), and
`own`, edge with its own Dovecot over the UNIX socket. Each MX gets the guide's limits, TLS and the submission
services. Then, on every MX: EHLO shows SIZE, AUTH on port 25 is 503, TLS is 1.2 or newer and a client offering
at most TLS 1.1 is refused; on 587 AUTH before STARTTLS is 503 or 530, after it 235 for the right password and 535
for a wrong one; a client past the connection rate limit gets 421. A hand edit on every host shows in `preview
--refresh --diff` and `up` restores it; a change every daemon rejects is rolled back on every host; destroy
leaves each host byte for byte as it was.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, dovecot_password
from tests.engine.lifecycle_support import SNAPSHOT
from tests.engine.release_support import releases_bed
from tests.tls_files import make_cert
from toolchain.testbed import TestBed

POSTFIX = {"trixie": "3.10.", None: "3.7.", "bullseye": "3.5."}
DOVECOT = {"trixie": "2.4.", None: "2.3.19", "bullseye": "2.3.13"}


@dataclass(frozen=True)
class Layout:
    """The release of each host (None: the machine's own Debian 12)."""

    mx: str | None
    edge: str | None
    auth: str | None = None

    def releases(self) -> dict[str, str | None]:
        return {"mx": self.mx, "edge": self.edge, "auth": self.auth}


MX_HOSTS = ("mx", "auth", "edge")
USER = "carol"
SIZE = 2097152
RATE = 4
SOURCES = iter(range(100, 130))


@pytest.fixture(scope="module")
def layout(request) -> Layout:
    return request.module.LAYOUT


@pytest.fixture(scope="module")
def bed(testbed: TestBed, layout: Layout) -> Iterator[TestBed]:
    with releases_bed(testbed, layout.releases()) as mixed:
        yield mixed


def source(bed: TestBed) -> str:
    return bed.client_addresses[next(SOURCES) - 100]


def config(bed: TestBed, cert, **extra) -> dict:
    tls = {"cert_file": str(cert[0]), "key_file": str(cert[1])}
    limits = {"message_size_limit": SIZE, "smtpd_client_connection_rate_limit": RATE}
    services = {"submission": {}, "submissions": {}}
    common = {"tls": tls, "limits": limits, "services": services, **extra}
    sites = {
        "shared": {"postfix_hosts": ["mx", "auth"], "auth_service": "central", **common},
        "own": {"postfix_hosts": ["edge"], "dovecot_host": "edge", "sasl": {"listener": "unix"}, **common},
    }
    wanted = bed_config(bed, sites, list(MX_HOSTS))
    wanted["auth_services"] = {"central": {"dovecot_host": "mx", "listener": "inet"}}
    return wanted


def snapshot(bed: TestBed) -> dict[str, str]:
    return {h: bed.run(h, "set -o pipefail; " + SNAPSHOT).stdout for h in MX_HOSTS}


@pytest.fixture(scope="module")
def password(bed) -> str:
    return dovecot_password(bed, ("mx", "edge"), USER, "Dovecot password (release contract)")


@pytest.fixture(scope="module")
def cert(bed, tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("release-cert"), bed.hosts["mx"].hostname)


@pytest.fixture(scope="module")
def project(bed, password, cert, tmp_path_factory):
    before = snapshot(bed)
    project = EngineProject(tmp_path_factory.mktemp("release"), "release")
    project.configure(config(bed, cert))
    yield project, before
    project.destroy()


def plain(word: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{USER}\0{word}".encode()).decode()


class TestEveryRelease:
    def test_the_hosts_run_their_releases_daemons(self, bed, layout):
        for host, release in layout.releases().items():
            assert bed.run(host, "postconf -h mail_version").stdout.startswith(POSTFIX[release]), host
        for host in ("mx", "edge"):  # the two Dovecots: shared over TCP, own over the UNIX socket
            version = DOVECOT[layout.releases()[host]]
            assert bed.run(host, "dovecot --version").stdout.startswith(version), host

    def test_up(self, project):
        proj, _ = project
        run = proj.up()
        assert run.ok, run.text

    def test_each_resource_stores_the_version_its_host_reported(self, bed, layout, project):
        proj, _ = project
        address = {bed.hosts[h].address: h for h in MX_HOSTS}
        stored = {
            (r["type"].rsplit(":", 1)[-1], address[r["outputs"]["host"]]): r["outputs"].get("postfix_version", "")
            for r in proj.export()["resources"]
            if r["type"].endswith((":PostfixConfig", ":PostfixServices"))
        }
        assert len(stored) == 2 * len(MX_HOSTS), stored
        for (kind, host), version in stored.items():
            assert version.startswith(POSTFIX[layout.releases()[host]]), (kind, host, version)

    def test_an_option_debian_11s_postfix_cannot_read_is_refused_at_preview(self, bed, cert, layout, project):
        proj, _ = project
        old = next(h for h, release in layout.releases().items() if release == "bullseye")
        options = {"smtpd_tls_protocols": ">=TLSv1.3"}
        proj.configure(config(bed, cert, services={"submission": {"options": options}, "submissions": {}}))
        try:
            run = proj.preview()
        finally:
            proj.configure(config(bed, cert))
        assert not run.ok
        refusal = f"{old} ({bed.hosts[old].address}): services.submission.options.smtpd_tls_protocols: '>=TLSv1.3'"
        assert refusal in run.text and "Postfix 3.5.25 does not know it" in run.text, run.text
        others = [f"{h} ({bed.hosts[h].address}): services.submission" for h in MX_HOSTS if h != old]
        assert not any(other in run.text for other in others), run.text

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ssl's TLSv1 and TLSv1_1, offered on purpose
    @pytest.mark.parametrize("host", MX_HOSTS)
    def test_port_25_says_size_refuses_auth_and_speaks_tls_12_or_newer_only(self, bed, project, host):
        client = mail_client.connect(bed.hosts[host].address, source(bed))
        try:
            assert f"SIZE {SIZE}" in mail_client.ehlo_lines(client)
            # AUTH is offered on the submission services only: port 25 refuses it.
            assert client.docmd("AUTH", "PLAIN")[0] == 503
            assert client.starttls(context=mail_client.tls_context())[0] == 220
            assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        finally:
            client.close()
        assert mail_client.tls_at_most_1_1(bed.hosts[host].address, source(bed)) == "TLSV1_ALERT_PROTOCOL_VERSION"

    @pytest.mark.parametrize("host", MX_HOSTS)
    def test_587_auth_only_after_starttls(self, bed, password, project, host):
        client = mail_client.connect(bed.hosts[host].address, source(bed), port=587)
        try:
            mail_client.ehlo_lines(client)
            # 530 where the service requires TLS first, 503 where AUTH is only off before it.
            assert client.docmd("AUTH", plain(password))[0] in (503, 530)
            assert client.starttls(context=mail_client.tls_context())[0] == 220
            assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
            mail_client.ehlo_lines(client)
            assert client.docmd("AUTH", plain(password + "x"))[0] == 535
            assert client.docmd("AUTH", plain(password))[0] == 235
        finally:
            client.close()

    @pytest.mark.parametrize("host", MX_HOSTS)
    def test_a_client_past_the_rate_limit_gets_421(self, bed, project, host):
        address, one = bed.hosts[host].address, source(bed)
        codes = [mail_client.banner(address, one).code for _ in range(RATE + 1)]
        assert codes[:RATE] == [220] * RATE and codes[RATE] == 421, codes

    def test_a_hand_edit_on_every_host_is_drift_and_up_restores_it(self, bed, project):
        proj, _ = project
        for host in MX_HOSTS:
            bed.run(host, "postconf -e message_size_limit=1048576 && postfix reload")
        run = proj.preview(refresh=True)
        assert run.ok, run.text
        assert run.stdout.count("message_size_limit") >= len(MX_HOSTS), run.stdout
        assert (run := proj.up(refresh=True)).ok, run.text
        for host in MX_HOSTS:
            assert bed.run(host, "postconf -h message_size_limit").stdout.strip() == str(SIZE), host

    def test_a_change_every_daemon_rejects_is_rolled_back_on_every_host(self, bed, cert, project):
        proj, _ = project
        before = snapshot(bed)
        proj.configure(config(bed, cert, directives={"smtpd_tls_CAfile": "/nonexistent/secure-postfix-ca.pem"}))
        run = proj.up()
        assert not run.ok
        assert any(bed.hosts[h].address in run.stderr for h in MX_HOSTS), run.stderr
        assert "smtpd_tls_CAfile" in run.stderr, run.stderr
        after = snapshot(bed)
        assert [h for h in MX_HOSTS if after[h] != before[h]] == [], run.stderr
        for host in MX_HOSTS:
            bed.wait_smtp(host, timeout=30)
        proj.configure(config(bed, cert))

    def test_destroy_leaves_every_host_as_it_was(self, bed, project):
        proj, before = project
        run = proj.destroy()
        assert run.ok, run.text
        assert snapshot(bed) == before
        for host in MX_HOSTS:
            assert mail_client.refused(bed.hosts[host].address, 587)
