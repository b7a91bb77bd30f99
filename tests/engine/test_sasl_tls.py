"""SMTP AUTH through Dovecot SASL with TLS, on one host (UNIX socket) and across two (TCP)."""

from __future__ import annotations

import base64
import difflib
import hashlib
import itertools
import re
import smtplib
import ssl
import time

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, Run, bed_config, dovecot_password, log_offset, log_since
from tests.tls_files import der_fingerprint, make_cert
from toolchain.testbed.layout import SUBNET

pytestmark = pytest.mark.engine

# site -> (postfix host, dovecot host)
SITES = {"solo": ("mx", "mx"), "split": ("edge", "auth")}
USER = "alice"
DOVECOT_FILE = "/etc/dovecot/conf.d/99-secure-postfix-auth.conf"
SNAPSHOT = (
    # Names, modes and owners of everything under the config folders, contents of every file.
    "find /etc/postfix /etc/dovecot -printf '%p %m %u:%g\\n' | sort; "
    "find /etc/postfix /etc/dovecot -type f -print0 | sort -z | xargs -0 sha256sum"
)


def snapshot(testbed) -> dict[str, str]:
    taken = {h: testbed.run(h, "set -o pipefail; " + SNAPSHOT).stdout for h in ("mx", "edge", "auth")}
    for host, text in taken.items():
        assert "/etc/postfix/main.cf 644 root:root" in text and "/etc/dovecot/dovecot.conf" in text, (host, text)
    return taken


@pytest.fixture(scope="module")
def password(testbed) -> str:
    """A passwd-file user on each Dovecot host, made now and never written to the repo."""
    return dovecot_password(testbed, ("mx", "auth"), USER, "Dovecot password")


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


def tls_client(testbed, site: str, source: str, timeout: float = mail_client.TIMEOUT) -> smtplib.SMTP:
    postfix = SITES[site][0]
    client = mail_client.connect(testbed.hosts[postfix].address, source, timeout=timeout)
    client.ehlo()
    code, _ = client.starttls(context=mail_client.tls_context())
    assert code == 220
    return client


# No rate limit is managed in this module, so addresses may come round again.
SOURCES = itertools.cycle(range(110, 139))


def next_source(testbed) -> str:
    return f"{SUBNET}{next(SOURCES)}"


def urn_of(deployment: dict, name: str) -> str:
    (urn,) = [r["urn"] for r in deployment["resources"] if r["urn"].endswith(f"::{name}")]
    return urn


def assert_dovecot_first(run: Run, deployment: dict, site: str) -> None:
    """The dependency itself: state records it, and the engine finished Dovecot before it started Postfix."""
    dovecot, postfix = urn_of(deployment, f"{site}-dovecot"), urn_of(deployment, f"{site}-postfix")
    (record,) = [r for r in deployment["resources"] if r["urn"] == postfix]
    assert dovecot in record.get("dependencies", []), record.get("dependencies")
    assert dovecot in record.get("propertyDependencies", {}).get("sasl", []), record.get("propertyDependencies")
    done = [e.sequence for e in run.events if e.res_outputs_event and e.res_outputs_event.metadata.urn == dovecot]
    began = [e.sequence for e in run.events if e.resource_pre_event and e.resource_pre_event.metadata.urn == postfix]
    assert done and began and max(done) < min(began), (done, began)


def stock_postfix_offers_no_auth(testbed, host: str) -> None:
    """After destroy: Debian's Postfix, STARTTLS still offered (its own certificate), AUTH never."""
    client = mail_client.connect(testbed.hosts[host].address, next_source(testbed))
    try:
        lines = mail_client.ehlo_lines(client)
        assert not any(ln.startswith("AUTH") for ln in lines), lines
        assert client.starttls(context=mail_client.tls_context())[0] == 220
        lines = mail_client.ehlo_lines(client)
        assert not any(ln.startswith("AUTH") for ln in lines), lines
    finally:
        client.close()


class TestSaslTls:
    def test_preview_and_up(self, testbed, project):
        proj, _ = project
        preview = proj.preview()
        assert preview.ok, preview.text
        assert "smtpd_sasl_path" in preview.stdout and "private/auth" in preview.stdout
        run = proj.up()
        deployment = proj.export()
        for site in SITES:
            assert_dovecot_first(run, deployment, site)
        assert run.ok, run.text

    def test_auth_socket_is_0660_postfix_postfix(self, testbed):
        out = testbed.run("mx", "stat -c '%F %a %U:%G' /var/spool/postfix/private/auth").stdout.strip()
        assert out == "socket 660 postfix:postfix"

    def test_tcp_listener_binds_only_the_private_address(self, testbed, password):
        listening = testbed.run("auth", "ss -Hltn 'sport = :12345'").stdout.split()
        assert listening[3:4] == [f"{testbed.hosts['auth'].address}:12345"] and len(listening) == 5, listening
        # From the host itself, loopback finds nothing there; the private address answers the auth protocol.
        assert testbed.run("auth", "exec 3<>/dev/tcp/127.0.0.1/12345", check=False).returncode != 0
        assert {"PLAIN", "LOGIN"} <= mail_client.auth_mechanisms(testbed.hosts["auth"].address, 12345)

    @pytest.mark.parametrize("site", SITES)
    def test_no_auth_before_starttls_and_auth_after_it(self, testbed, password, site):
        """One connection: no AUTH in clear (503), then STARTTLS, then AUTH offered and accepted."""
        postfix = SITES[site][0]
        client = mail_client.connect(testbed.hosts[postfix].address, next_source(testbed))
        try:
            lines = mail_client.ehlo_lines(client)
            assert "STARTTLS" in lines and not any(ln.startswith("AUTH") for ln in lines), lines
            code, text = client.docmd("AUTH", "PLAIN " + auth_plain(USER, "whatever"))
            assert code == 503, (code, text)
            assert client.starttls(context=mail_client.tls_context())[0] == 220
            assert "AUTH PLAIN LOGIN" in mail_client.ehlo_lines(client)
            assert client.docmd("AUTH", "PLAIN " + auth_plain(USER, password))[0] == 235
        finally:
            client.close()

    @pytest.mark.parametrize("site", SITES)
    def test_wrong_password_is_refused(self, testbed, password, site):
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

        def tls11(host: str) -> str:
            return mail_client.tls_at_most_1_1(testbed.hosts[host].address, next_source(testbed))

        assert tls11(SITES[site][0]) == "TLSV1_ALERT_PROTOCOL_VERSION"
        # Control: Debian's own settings on the Postfix of the Dovecot-only host still speak TLS 1.1.
        assert tls11("auth") == "TLSv1.1"

    def test_dovecot_outage_as_mail_clients_see_it(self, testbed, password):
        """README, "When Dovecot is down": what each kind of smtpd does, measured on the split site."""
        testbed.restart_postfix("edge")  # no idle smtpd left from earlier tests: the next ones are fresh
        held = tls_client(testbed, "split", next_source(testbed))
        offset = log_offset(testbed, "edge")
        try:
            assert "AUTH PLAIN LOGIN" in mail_client.ehlo_lines(held)  # this smtpd has the mechanism list
            testbed.run("auth", "doveadm stop >/dev/null 2>&1; pkill -x auth; sleep 0.5; ! pgrep -x dovecot")
            # An smtpd that already has the list: 454, and it keeps taking mail.
            code, text = held.docmd("AUTH", "PLAIN " + auth_plain(USER, password))
            assert code == 454 and text.startswith(b"4.7.0 Temporary authentication failure"), (code, text)
            message = "Subject: taken while Dovecot is down\r\n\r\nx\r\n"
            assert held.sendmail("a@client.testbed.invalid", ["postmaster@edge.testbed.invalid"], message) == {}
            # While that smtpd stays busy, a new client gets a fresh one: it dies after STARTTLS, and then the
            # master throttles port 25 (no banner at all).
            outcomes = [_attempt(testbed, password)]
            while outcomes[-1] != "timed out before the banner" and len(outcomes) < 4:
                outcomes.append(_attempt(testbed, password))
            held.close()
            log = log_since(testbed, "edge", offset)
            # The master may have started one more smtpd before it logged the throttle: that one dies too.
            assert outcomes[0] == "closed after STARTTLS" and outcomes[-1] == "timed out before the banner", (
                outcomes,
                log,
            )
            assert set(outcomes[1:-1]) <= {"closed after STARTTLS"}, (outcomes, log)
            assert "fatal: no SASL authentication mechanisms" in log and "bad command startup -- throttling" in log
            assert testbed.run("edge", "postconf -h service_throttle_time").stdout.strip() == "60s"
        finally:
            testbed.run("auth", "pgrep -x dovecot >/dev/null || dovecot </dev/null >/dev/null 2>&1")
            testbed.restart_postfix("edge")  # lifts the throttle
        _wait_for_auth(testbed, password)

    def test_switch_solo_site_to_tcp(self, testbed, password, certs, project):
        proj, _ = project
        proj.configure(bed_config(testbed, site_config(certs, listener_solo="inet")))
        preview = proj.preview()
        assert preview.ok, preview.text
        assert preview.summary.get("update") == 2, preview.summary
        out = preview.stdout
        dovecot_at, postfix_at = out.index("solo-dovecot]"), out.index("solo-postfix]")
        assert re.search(r'listener\s*: "unix" => "inet"', out[dovecot_at:]), out
        assert re.search(
            rf'smtpd_sasl_path\s*: "private/auth" => "inet:{re.escape(SUBNET)}11:12345"', out[postfix_at:]
        ), out
        run = proj.up()
        assert run.ok, run.text
        assert_dovecot_first(run, proj.export(), "solo")
        assert f"smtpd_sasl_path = inet:{SUBNET}11:12345" in testbed.run("mx", "postconf smtpd_sasl_path").stdout
        # The old UNIX socket is gone, the TCP listener answers from outside, AUTH works through it.
        assert testbed.run("mx", "test -e /var/spool/postfix/private/auth", check=False).returncode == 1
        assert {"PLAIN", "LOGIN"} <= mail_client.auth_mechanisms(testbed.hosts["mx"].address, 12345)
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
        assert served_fingerprint(testbed) == der_fingerprint(cert)
        mode = testbed.run("edge", "stat -c '%a %U' /etc/postfix/tls/secure-postfix.pem").stdout.strip()
        assert mode == "600 root"

    def test_failed_apply_puts_the_previous_tls_files_back(self, testbed, certs, project, tmp_path):
        """A new certificate with a change that breaks TLS: the probe fails, the old files come back."""
        proj, _ = project
        files = "/etc/postfix/tls/secure-postfix.pem"
        before = testbed.run("edge", f"sha256sum {files}; stat -c '%n %a %U' {files}").stdout
        config = bed_config(testbed, site_config({**certs, "split": make_cert(tmp_path, "edge2")}, "inet"))
        config["sites"]["split"]["directives"] = {"tls_medium_cipherlist": "NO-SUCH-CIPHER"}
        proj.configure(config)
        try:
            run = proj.up()
            assert not run.ok and "was put back (the TLS files too)" in run.stderr, run.text
            assert testbed.run("edge", f"sha256sum {files}; stat -c '%n %a %U' {files}").stdout == before
            assert served_fingerprint(testbed) == der_fingerprint(certs["split"][0])
        finally:
            proj.configure(bed_config(testbed, site_config(certs, listener_solo="inet")))

    def test_dovecot_drift_shows_in_refresh_and_up_restores(self, testbed, password, project):
        proj, _ = project
        auth = testbed.hosts["auth"].address
        testbed.run("auth", f"sed -i 's/^auth_mechanisms = .*/auth_mechanisms = plain/' {DOVECOT_FILE}")
        assert proj.refresh().ok
        preview = proj.preview()
        # One line says the file drifted; its text is not printed.
        assert re.search(rf'- drift\s*: "{re.escape(DOVECOT_FILE)} was changed on the host', preview.stdout), (
            preview.stdout
        )
        assert "auth_mechanisms = plain" not in preview.stdout
        assert proj.up().ok
        assert "auth_mechanisms = plain login" in testbed.run("auth", f"cat {DOVECOT_FILE}").stdout
        assert {"PLAIN", "LOGIN"} <= mail_client.auth_mechanisms(auth, 12345)  # the running auth service

    def test_dovecot_drift_that_was_reloaded_is_repaired(self, testbed, password, project):
        """The admin's edit was also reloaded: the running service offers PLAIN only until `up` repairs it."""
        proj, _ = project
        auth = testbed.hosts["auth"].address
        testbed.run(
            "auth", f"sed -i 's/^auth_mechanisms = .*/auth_mechanisms = plain/' {DOVECOT_FILE} && doveadm reload"
        )
        try:
            _until(lambda: mail_client.auth_mechanisms(auth, 12345) == {"PLAIN"}, "Dovecot did not take the edit")
            assert proj.refresh().ok
            run = proj.up()
            assert run.ok, run.text
            assert {"PLAIN", "LOGIN"} <= mail_client.auth_mechanisms(auth, 12345)
        finally:
            testbed.run(
                "auth",
                f"sed -i 's/^auth_mechanisms = .*/auth_mechanisms = plain login/' {DOVECOT_FILE} && doveadm reload",
            )
            _until(lambda: "LOGIN" in mail_client.auth_mechanisms(auth, 12345), "Dovecot did not come back")
            assert proj.refresh().ok

    def test_up_heals_a_host_whose_smtpd_is_throttled(self, testbed, project):
        """A hand edit kills every new smtpd; the master throttles; `refresh` + `up` put it right."""
        proj, _ = project
        offset = log_offset(testbed, "edge")
        testbed.run("edge", "postconf -e smtpd_tls_security_level=bogus && postfix reload")
        _until(lambda: "reload -- version" in log_since(testbed, "edge", offset), "no reload line")
        # New smtpds die before their banner (closed); once the master throttles, nothing answers (timed out).
        outcomes = [_greeting(testbed)]
        while outcomes[-1] != "timed out before the banner" and len(outcomes) < 4:
            outcomes.append(_greeting(testbed))
        log = log_since(testbed, "edge", offset)
        assert outcomes[-1] == "timed out before the banner", (outcomes, log)
        assert set(outcomes[:-1]) <= {"closed before the banner"}, (outcomes, log)
        assert 'fatal: Invalid TLS level "bogus"' in log and "bad command startup -- throttling" in log, log
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
        # The running daemons, as clients see them: no AUTH on either Postfix, both auth listeners closed.
        for host in ("mx", "edge"):
            stock_postfix_offers_no_auth(testbed, host)
        for host in ("mx", "auth"):
            assert mail_client.refused(testbed.hosts[host].address, 12345), host


def served_fingerprint(testbed) -> bytes:
    client = tls_client(testbed, "split", next_source(testbed))
    try:
        return hashlib.sha256(client.sock.getpeercert(binary_form=True)).digest()
    finally:
        client.close()


def _greeting(testbed) -> str:
    try:
        mail_client.connect(testbed.hosts["edge"].address, next_source(testbed), timeout=3).close()
    except TimeoutError:
        return "timed out before the banner"
    except (smtplib.SMTPServerDisconnected, ConnectionResetError):
        return "closed before the banner"
    return "greeted"


def _attempt(testbed, password: str) -> str:
    """One fresh client on the split site: how far it gets with AUTH while Dovecot is down."""
    try:
        client = mail_client.connect(testbed.hosts["edge"].address, next_source(testbed), timeout=3)
    except TimeoutError:
        return "timed out before the banner"
    except (smtplib.SMTPServerDisconnected, ConnectionResetError):
        return "closed before the banner"
    try:
        client.ehlo()
        if client.starttls(context=mail_client.tls_context())[0] != 220:
            return "no STARTTLS"
        client.ehlo()
        code, text = client.docmd("AUTH", "PLAIN " + auth_plain(USER, password))
        return f"AUTH {code} {text.decode()}"
    except (smtplib.SMTPServerDisconnected, ConnectionResetError, ssl.SSLError, TimeoutError) as exc:
        return "timed out after STARTTLS" if mail_client.timed_out(exc) else "closed after STARTTLS"
    finally:
        client.close()


def _wait_for_auth(testbed, password: str, seconds: float = 30) -> None:
    def works() -> bool:
        try:
            client = tls_client(testbed, "split", next_source(testbed), timeout=3)
        except (smtplib.SMTPException, OSError):
            return False
        try:
            return client.docmd("AUTH", "PLAIN " + auth_plain(USER, password))[0] == 235
        finally:
            client.close()

    _until(works, "AUTH did not come back after Dovecot restarted", seconds)


def _until(condition, message: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)
