"""The TLS judges: sslyze's Mozilla intermediate check on 587 and 465, where passwords travel; the documented
port-25 policy (docs/stack-config.md, "tls"); and no AUTH over an anonymous cipher suite, as a client tries it.

One `up` of a site with both submission services on one host with its own Dovecot, serving the bed's own certificate
(signed by the bed's CA, naming the host), then the judges, which the test trusts the bed's CA for.
"""

from __future__ import annotations

import base64
import smtplib
import ssl
import time

import pytest

from tests.engine import mail_client, tls_judges
from tests.engine.harness import EngineProject, bed_config, dovecot_password, log_offset, log_since
from toolchain.testbed.layout import SUBNET

pytestmark = [pytest.mark.engine, pytest.mark.long(90)]

HOST = "mx"
PARTNER = "edge"
USER = "tess"
SERVICES = {"submission": {}, "submissions": {}}
# Never offered on port 25 (docs/stack-config.md): no server authentication, no encryption, or broken.
REFUSED_ON_25 = ("_anon_", "_NULL_", "EXPORT", "_RC4_", "_DES_", "3DES", "_MD5")


@pytest.fixture(scope="module")
def password(testbed) -> str:
    return dovecot_password(testbed, (HOST,), USER, "Dovecot password (TLS judges)")


@pytest.fixture(scope="module")
def project(testbed, password, tmp_path_factory):
    tls = {
        "cert_file": str(testbed.tls_dir / f"{HOST}.crt"),
        "key_file": str(testbed.tls_dir / f"{HOST}.key"),
        # A partner that must be reached over verified TLS: edge, whose certificate mx's Postfix cannot verify.
        "destinations": {f"[{testbed.hosts[PARTNER].address}]": "secure"},
    }
    config = bed_config(
        testbed, {"judged": {"postfix_hosts": [HOST], "auth_service": "own", "tls": tls, "services": SERVICES}}, [HOST]
    )
    config["auth_services"] = {"own": {"dovecot_host": HOST}}
    project = EngineProject(tmp_path_factory.mktemp("tls-judges"), "tlsjudges")
    project.configure(config)
    yield project
    project.destroy()


@pytest.fixture(scope="module")
def verdicts(testbed, project) -> dict[str, tls_judges.Verdict]:
    if not tls_judges.available():
        pytest.fail(f"sslyze is missing: {tls_judges.JUDGES_PYTHON} (run scripts/setup.sh)")
    host = testbed.hosts[HOST]
    targets = [
        tls_judges.Target(host.hostname, host.address, 587, starttls=True),
        tls_judges.Target(host.hostname, host.address, 465, starttls=False),
        tls_judges.Target(host.hostname, host.address, 25, starttls=True),
    ]
    found = tls_judges.judge(targets, testbed.ca_path)
    for verdict in found.values():
        print(verdict.summary())
    return found


def test_up(project):
    run = project.up()
    assert run.ok, run.text


@pytest.mark.parametrize("port", [587, 465])
def test_submission_passes_mozilla_intermediate(testbed, verdicts, port):
    verdict = verdicts[f"{testbed.hosts[HOST].hostname}:{port}"]
    assert verdict.chain_verified, verdict.console
    assert verdict.compliant is True, verdict.summary()


def test_port_25_keeps_its_documented_policy(testbed, verdicts):
    verdict = verdicts[f"{testbed.hosts[HOST].hostname}:25"]
    assert verdict.chain_verified, verdict.console
    assert sorted(verdict.accepted) == ["TLSv1.2", "TLSv1.3"], verdict.accepted
    weak = [s for suites in verdict.accepted.values() for s in suites if any(w in s for w in REFUSED_ON_25)]
    assert weak == [], verdict.accepted
    # Opportunistic: what a peer needs for TLS rather than plaintext stays (forward-secret AES-GCM at least).
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" in verdict.accepted["TLSv1.2"], verdict.accepted


def _anonymous_only() -> ssl.SSLContext:
    """A client that offers nothing but anonymous suites (no server certificate), as a man in the middle would
    have a victim's client negotiate; TLS 1.3 has none, so TLS 1.2."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("aNULL:@SECLEVEL=0")
    return context


def _plain(password: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{USER}\0{password}".encode()).decode()


def _client(testbed, port: int, context: ssl.SSLContext, source: str) -> smtplib.SMTP:
    address = testbed.hosts[HOST].address
    if port == 465:
        client = smtplib.SMTP_SSL(
            local_hostname="client.testbed.invalid",
            timeout=mail_client.TIMEOUT,
            source_address=(source, 0),
            context=context,
        )
        client._host = address
        client.connect(address, port)
        return client
    client = mail_client.connect(address, source, port=port)
    client.starttls(context=context)
    return client


@pytest.mark.parametrize("port", [587, 465, 25])
def test_no_auth_over_an_anonymous_suite(testbed, password, project, port):
    """The handshake itself fails: no suite without a server certificate is left to negotiate. Should it succeed,
    the test says what AUTH then answered."""
    source = f"{SUBNET}{120 + port % 7}"
    try:
        client = _client(testbed, port, _anonymous_only(), source)
    except (TimeoutError, ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionResetError):
        pass
    else:
        try:
            suite = client.sock.cipher()
            client.ehlo()
            code, text = client.docmd("AUTH", _plain(password))
        finally:
            client.close()
        pytest.fail(f"port {port} negotiated {suite} with no server certificate; AUTH PLAIN then got {code} {text!r}")
    # The same client with authenticated suites and the bed's CA: chain and name checked, AUTH goes through.
    client = _client(testbed, port, mail_client.tls_context(testbed.ca_path), source)
    try:
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.ehlo()
        if port != 25:
            assert client.docmd("AUTH", _plain(password))[0] == 235
    finally:
        client.close()


def test_a_destination_that_must_be_verified_gets_no_mail_without_it(testbed, project):
    """smtp_tls_policy_maps as the SMTP client reads it: mail to a `secure` destination whose certificate does not
    verify stays queued, where `may` would have sent it over TLS anyway."""
    partner = testbed.hosts[PARTNER].address
    offset = log_offset(testbed, HOST)
    sender = f"root@{testbed.hosts[HOST].hostname}"
    testbed.run(HOST, f"printf 'Subject: partner\\n\\nhello\\n' | sendmail -f {sender} 'someone@[{partner}]'")
    try:
        deadline = time.monotonic() + 20
        while "status=" not in (log := log_since(testbed, HOST, offset)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "status=deferred (Server certificate not verified)" in log, log
    finally:
        testbed.run(HOST, "postsuper -d ALL deferred 2>/dev/null; postsuper -d ALL 2>/dev/null", check=False)
