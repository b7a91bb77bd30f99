"""SMTP AUTH through Dovecot SASL with TLS, on one host (UNIX socket) and across two (TCP)."""

from __future__ import annotations

import base64
import difflib
import hashlib
import re
import secrets
import smtplib
import ssl
import time

import pytest

from testbed.layout import SUBNET
from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from tests.tls_files import der_fingerprint, make_cert

pytestmark = pytest.mark.engine

# site -> (postfix host, dovecot host)
SITES = {"solo": ("mx", "mx"), "split": ("edge", "auth")}
USER = "alice"
SNAPSHOT = (
    # Names, modes and owners of everything under the config folders, contents of every file.
    "find /etc/postfix /etc/dovecot -printf '%p %m %u:%g\\n' | sort; "
    "find /etc/postfix /etc/dovecot -type f -print0 | sort -z | xargs -0 sha256sum"
)


def snapshot(testbed) -> dict[str, str]:
    return {h: testbed.run(h, SNAPSHOT, check=False).stdout for h in ("mx", "edge", "auth")}


@pytest.fixture(scope="module")
def password(testbed) -> str:
    """A passwd-file user on each Dovecot host, made now and never written to the repo."""
    word = secrets.token_urlsafe(16)
    for host in ("mx", "auth"):
        testbed.run(
            host,
            f"umask 027; printf '%s:%s\\n' {USER} \"$(doveadm pw -s SHA512-CRYPT -p '{word}')\" > /etc/dovecot/users; "
            "chown root:dovecot /etc/dovecot/users",
        )
    return word


@pytest.fixture(scope="module")
def certs(tmp_path_factory, testbed):
    folder = tmp_path_factory.mktemp("certs")
    return {site: make_cert(folder, testbed.hosts[postfix].hostname) for site, (postfix, _) in SITES.items()}


def site_config(certs, listener_solo: str = "unix") -> dict:
    sites = {}
    for site, (postfix, dovecot) in SITES.items():
        cert, key = certs[site]
        sites[site] = {
            "postfix_host": postfix,
            "dovecot_host": dovecot,
            "sasl": {"listener": listener_solo if site == "solo" else "inet"},
            "tls": {"cert_file": str(cert), "key_file": str(key)},
        }
    return sites


@pytest.fixture(scope="module")
def project(testbed, password, certs, tmp_path_factory):
    before = snapshot(testbed)
    project = EngineProject(tmp_path_factory.mktemp("sasl"), "sasl")
    project.configure(bed_config(testbed, site_config(certs)))
    yield project, before
    project.destroy()


def auth_plain(user: str, word: str) -> str:
    return base64.b64encode(f"\0{user}\0{word}".encode()).decode()


def tls_client(testbed, site: str, source: str) -> smtplib.SMTP:
    postfix = SITES[site][0]
    client = mail_client.connect(testbed.hosts[postfix].address, source)
    client.ehlo()
    code, _ = client.starttls(context=mail_client.tls_context())
    assert code == 220
    return client


SOURCES = iter(range(110, 139))


def next_source(testbed) -> str:
    return f"{SUBNET}{next(SOURCES)}"


class TestSaslTls:
    def test_preview_and_up(self, project):
        proj, _ = project
        preview = proj.preview()
        assert preview.ok, preview.text
        assert "smtpd_sasl_path" in preview.stdout and "private/auth" in preview.stdout
        run = proj.up()
        assert run.ok, run.text
        # Dovecot before Postfix: the SASL path is a dependency.
        for site in SITES:
            assert run.stdout.index(f"{site}-dovecot") < run.stdout.index(f"{site}-postfix")

    @pytest.mark.parametrize("site", SITES)
    def test_no_auth_before_starttls(self, testbed, site):
        postfix = SITES[site][0]
        client = mail_client.connect(testbed.hosts[postfix].address, next_source(testbed))
        try:
            lines = mail_client.ehlo_lines(client)
            assert "STARTTLS" in lines and not any(ln.startswith("AUTH") for ln in lines), lines
            code, text = client.docmd("AUTH", "PLAIN " + auth_plain(USER, "whatever"))
            assert code == 503, (code, text)
        finally:
            client.close()

    @pytest.mark.parametrize("site", SITES)
    def test_auth_after_starttls(self, testbed, password, site):
        client = tls_client(testbed, site, next_source(testbed))
        try:
            lines = client.ehlo()[1].decode().splitlines()
            assert "AUTH PLAIN LOGIN" in lines, lines
            assert client.docmd("AUTH", "PLAIN " + auth_plain(USER, password))[0] == 235
        finally:
            client.close()
        client = tls_client(testbed, site, next_source(testbed))
        try:
            code, text = client.docmd("AUTH", "PLAIN " + auth_plain(USER, password + "x"))
            assert code == 535, (code, text)
        finally:
            client.close()

    @pytest.mark.parametrize("site", SITES)
    def test_tls_version_and_certificate(self, testbed, certs, site):
        client = tls_client(testbed, site, next_source(testbed))
        try:
            assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
            served = hashlib.sha256(client.sock.getpeercert(binary_form=True)).digest()
            assert served == der_fingerprint(certs[site][0])
        finally:
            client.close()

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")
    @pytest.mark.parametrize("site", SITES)
    def test_tls_older_than_1_2_is_refused(self, testbed, site):
        """A client that offers at most TLS 1.1 (allowed on our side) gets a protocol-version alert."""

        def offer_tls11(host: str) -> str:
            context = mail_client.tls_context()
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            client = mail_client.connect(testbed.hosts[host].address, next_source(testbed))
            try:
                client.ehlo()
                client.starttls(context=context)
                return client.sock.version()
            except ssl.SSLError as exc:
                return exc.reason
            finally:
                client.close()

        assert offer_tls11(SITES[site][0]) == "TLSV1_ALERT_PROTOCOL_VERSION"
        # Control: Debian's own settings on the Postfix of the Dovecot-only host still speak TLS 1.1.
        assert offer_tls11("auth") == "TLSv1.1"

    def test_auth_with_dovecot_stopped_never_succeeds_and_recovers(self, testbed, password):
        """Stop the split site's Dovecot entirely; see what mail clients get, then bring it back."""
        testbed.run("auth", "doveadm stop >/dev/null 2>&1; pkill -x auth; sleep 0.5; ! pgrep -x dovecot")
        outcomes = []
        for _ in range(3):
            try:
                client = tls_client(testbed, "split", next_source(testbed))
                code, _text = client.docmd("AUTH", "PLAIN " + auth_plain(USER, password))
                outcomes.append(str(code))
                if code == 454:
                    # A temporary failure leaves the session usable for mail that needs no AUTH.
                    assert client.mail("a@client.testbed.invalid")[0] == 250
                client.close()
            except smtplib.SMTPServerDisconnected:
                outcomes.append("closed")
        print(f"AUTH with Dovecot stopped: {outcomes}")
        assert all(o in ("454", "closed") for o in outcomes), outcomes
        testbed.run("auth", "dovecot </dev/null >/dev/null 2>&1")
        started = time.monotonic()
        while True:
            try:
                client = tls_client(testbed, "split", testbed.client_addresses[-2])
                code = client.docmd("AUTH", "PLAIN " + auth_plain(USER, password))[0]
                client.close()
                if code == 235:
                    break
            except (smtplib.SMTPException, OSError):
                pass
            assert time.monotonic() - started < 90, "AUTH did not come back within 90 s"
            time.sleep(1)
        print(f"AUTH back {time.monotonic() - started:.1f} s after Dovecot restarted")
        # A fresh smtpd that met the outage died, and the master then throttles smtpd for 60 s: say so,
        # and lift it so the next tests start from a serving host.
        log = testbed.run("edge", "grep -c 'bad command startup -- throttling' /var/log/mail.log || true").stdout
        print(f"smtpd throttled during the outage: {int(log.strip() or 0) > 0}")
        testbed.restart_postfix("edge")

    def test_switch_solo_site_to_tcp(self, testbed, password, certs, project):
        proj, _ = project
        proj.configure(bed_config(testbed, site_config(certs, listener_solo="inet")))
        preview = proj.preview()
        assert preview.ok, preview.text
        assert preview.summary.get("update") == 2, preview.summary
        out = preview.stdout
        # Both resources change, Dovecot's first: Postfix's path is Dovecot's output.
        dovecot_at, postfix_at = out.index("solo-dovecot]"), out.index("solo-postfix]")
        assert dovecot_at < postfix_at
        assert re.search(r'listener\s*: "unix" => "inet"', out[dovecot_at:postfix_at]), out
        assert re.search(
            rf'smtpd_sasl_path\s*: "private/auth" => "inet:{re.escape(SUBNET)}11:12345"', out[postfix_at:]
        ), out
        run = proj.up()
        assert run.ok, run.text
        assert run.stdout.index("solo-dovecot") < run.stdout.index("solo-postfix")
        assert f"smtpd_sasl_path = inet:{SUBNET}11:12345" in testbed.run("mx", "postconf smtpd_sasl_path").stdout
        client = tls_client(testbed, "solo", next_source(testbed))
        try:
            assert client.docmd("AUTH", "PLAIN " + auth_plain(USER, password))[0] == 235
        finally:
            client.close()
        again = proj.preview()
        assert again.ok and set(again.summary) == {"same"}, again.summary

    def test_changed_certificate_is_redeployed(self, testbed, certs, project, tmp_path):
        proj, _ = project
        cert, key = make_cert(tmp_path, testbed.hosts["edge"].hostname)
        certs["split"] = (cert, key)
        proj.configure(bed_config(testbed, site_config(certs, listener_solo="inet")))
        run = proj.up()
        assert run.ok, run.text
        assert run.summary.get("update") == 1, run.summary
        client = tls_client(testbed, "split", next_source(testbed))
        try:
            served = hashlib.sha256(client.sock.getpeercert(binary_form=True)).digest()
        finally:
            client.close()
        assert served == der_fingerprint(cert)
        mode = testbed.run("edge", "stat -c '%a %U' /etc/postfix/tls/secure-postfix.key").stdout.strip()
        assert mode == "600 root"

    def test_tls_keys_never_in_state_or_output(self, certs, project):
        proj, _ = project
        state = proj.state_text()
        for _cert, key in certs.values():
            body = key.read_text().splitlines()[1]
            assert body not in state
        preview = proj.preview()
        assert "PRIVATE KEY" not in preview.text

    def test_dovecot_drift_shows_in_refresh_and_up_restores(self, testbed, password, project):
        proj, _ = project
        conf = "/etc/dovecot/conf.d/99-secure-postfix-auth.conf"
        testbed.run("auth", f"sed -i 's/^auth_mechanisms = .*/auth_mechanisms = plain/' {conf}")
        assert proj.refresh().ok
        preview = proj.preview()
        assert re.search(r"-\s*auth_mechanisms = plain\n\s*\+\s*auth_mechanisms = plain login", preview.stdout), (
            preview.stdout
        )
        assert proj.up().ok
        assert "auth_mechanisms = plain login" in testbed.run("auth", f"cat {conf}").stdout

    def test_up_heals_a_host_whose_smtpd_is_throttled(self, testbed, project):
        """A hand edit kills every new smtpd; the master throttles; `refresh` + `up` put it right."""
        proj, _ = project
        testbed.run("edge", "postconf -e smtpd_tls_security_level=bogus && postfix reload")
        time.sleep(1)
        with pytest.raises((OSError, smtplib.SMTPException)):
            mail_client.connect(testbed.hosts["edge"].address, next_source(testbed)).close()
        testbed.run("edge", "grep -q 'bad command startup -- throttling' /var/log/mail.log")
        assert proj.refresh().ok
        run = proj.up()
        assert run.ok, run.text
        assert "restarting it instead of a reload" in run.stderr, run.text
        assert mail_client.banner(testbed.hosts["edge"].address, next_source(testbed)).code == 220

    def test_destroy_leaves_hosts_as_before(self, testbed, project):
        proj, before = project
        run = proj.destroy()
        assert run.ok, run.text
        after = snapshot(testbed)
        for host in before:
            changed = "\n".join(difflib.unified_diff(before[host].splitlines(), after[host].splitlines(), lineterm=""))
            assert not changed, f"{host} differs after destroy:\n{changed}"
