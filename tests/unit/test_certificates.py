"""Certificates watched: the leaf's facts, whether it names the host, the two rules, the renewal hook's text, and
the tls keys of a certificate that lives on the host."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secure_postfix.core import compliance as c
from secure_postfix.core.certificates import (
    CertificateError,
    CertificateFacts,
    certificate_blocks,
    host_material_problem,
    parse_host_material,
    read_leaf,
)
from secure_postfix.core.compliance_policy import POSTFIX_TYPE, findings_for, violation
from secure_postfix.core.postfix_features import tls_problems
from secure_postfix.core.renewal_hook import HookSpec
from secure_postfix.stack.config import ConfigError, parse_tls
from tests.tls_files import make_pair

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
TLS_MANAGED = {"smtpd_tls_cert_file": "/etc/postfix/tls/secure-postfix.pem", "myhostname": "mx.example.org"}


def issued(
    names: list[x509.GeneralName] | None, days: int = 60, cn: str = "mx.example.org", start: dt.datetime = NOW
) -> str:
    """A certificate signed by a CA of its own, with the subjectAltName `names` (None: no such extension)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(days=1))
        .not_valid_after(start + dt.timedelta(days=days))
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    from cryptography.hazmat.primitives import serialization

    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_the_leaf_s_facts_are_read_from_a_chain_with_a_key_before_it():
    leaf = issued([x509.DNSName("mx.example.org"), x509.IPAddress(ipaddress.ip_address("192.0.2.25"))], days=30)
    _, key = make_pair("other.example.org")
    facts = read_leaf(key + leaf + issued(None, cn="Intermediate"))
    assert facts.subject == "CN=mx.example.org"
    assert facts.issuer == "CN=Test CA"
    assert facts.sans == "DNS:mx.example.org, IP:192.0.2.25"
    assert facts.expiry() == (NOW + dt.timedelta(days=30)).strftime("%Y-%m-%d")
    assert facts.days_left(NOW) == 30
    assert facts.days_left(NOW + dt.timedelta(days=31)) < 0
    assert len(facts.fingerprint.split(":")) == 32
    assert "PRIVATE KEY" not in "".join(certificate_blocks(key + leaf))


def test_the_state_form_comes_back_as_it_went():
    facts = read_leaf(issued([x509.DNSName("mx.example.org"), x509.IPAddress(ipaddress.ip_address("2001:db8::25"))]))
    assert CertificateFacts.from_record(facts.record()) == facts
    assert CertificateFacts.from_record({}) is None


@pytest.mark.parametrize(
    ("names", "host", "named"),
    [
        ([x509.DNSName("mx.example.org")], "MX.example.org.", True),
        ([x509.DNSName("*.example.org")], "mx.example.org", True),
        ([x509.DNSName("*.example.org")], "a.mx.example.org", False),
        ([x509.DNSName("*.example.org")], "example.org", False),
        ([x509.DNSName("mail.example.org")], "mx.example.org", False),
        ([x509.IPAddress(ipaddress.ip_address("192.0.2.25"))], "192.0.2.25", True),
        ([x509.DNSName("192.0.2.25")], "192.0.2.25", False),  # an address is matched against IP entries only
        # With a subjectAltName, the CN is not looked at (RFC 6125).
        ([x509.DNSName("other.example.org")], "mx.example.org", False),
        (None, "mx.example.org", True),  # no subjectAltName at all: the CN, as older clients read it
    ],
)
def test_names_is_the_check_clients_make(names, host, named):
    assert read_leaf(issued(names)).names(host) is named


def test_unreadable_text_is_an_error_that_quotes_nothing():
    with pytest.raises(CertificateError) as caught:
        read_leaf("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    assert "bm90" not in str(caught.value)
    with pytest.raises(CertificateError):
        read_leaf(make_pair("x")[1])


def cell(rule_id: str, findings) -> c.Finding:
    return next(f for f in findings if f.rule.id == rule_id)


@pytest.mark.parametrize(("days", "status"), [(60, c.Status.PASS), (21, c.Status.PASS), (20, c.Status.FAIL)])
def test_the_expiry_rule_fails_within_the_wanted_days(days, status):
    cert = read_leaf(issued([x509.DNSName("mx.example.org")], days=days))
    found = cell("tls-certificate-expiry", c.judge(TLS_MANAGED, certificate=cert, now=NOW))
    assert found.status is status, found
    assert f"expires {cert.expiry()}" in found.value and cert.issuer in found.value


def test_the_wanted_days_are_configurable_and_an_expired_certificate_says_so():
    cert = read_leaf(issued([x509.DNSName("mx.example.org")], days=10))
    assert cell("tls-certificate-expiry", c.judge(TLS_MANAGED, certificate=cert, min_days=7, now=NOW)).status is (
        c.Status.PASS
    )
    later = NOW + dt.timedelta(days=12)
    found = cell("tls-certificate-expiry", c.judge(TLS_MANAGED, certificate=cert, now=later))
    assert found.status is c.Status.FAIL and "EXPIRED 2 days ago" in found.value


def test_the_name_rule_judges_myhostname_against_the_subject_alt_name():
    good = read_leaf(issued([x509.DNSName("mx.example.org")]))
    other = read_leaf(issued([x509.DNSName("mail.example.org")]))
    bare = read_leaf(issued(None))
    assert cell("tls-certificate-names-host", c.judge(TLS_MANAGED, certificate=good)).status is c.Status.PASS
    found = cell("tls-certificate-names-host", c.judge(TLS_MANAGED, certificate=other))
    assert found.status is c.Status.FAIL and "mx.example.org is not among them" in found.value
    found = cell("tls-certificate-names-host", c.judge(TLS_MANAGED, certificate=bare))
    assert found.status is c.Status.FAIL and "has none" in found.value
    # myhostname as the host has it, when the stack does not set it.
    managed = {"smtpd_tls_cert_file": TLS_MANAGED["smtpd_tls_cert_file"]}
    found = cell(
        "tls-certificate-names-host", c.judge(managed, host={"myhostname": "mx.example.org"}, certificate=good)
    )
    assert found.status is c.Status.PASS


def test_certificate_rules_without_a_certificate_or_without_tls():
    unknown = c.judge(TLS_MANAGED)
    assert cell("tls-certificate-expiry", unknown).status is c.Status.NOT_CHECKED
    assert cell("tls-certificate-names-host", c.judge({})).status is c.Status.NOT_MANAGED


def test_the_policy_judges_the_pem_a_stack_uploads_and_its_days():
    # The pack judges against today's date.
    pem = issued([x509.DNSName("mx.example.org")], days=10, start=dt.datetime.now(dt.UTC))
    props = {"host": "192.0.2.25", "main_cf": TLS_MANAGED, "tls_cert_pem": pem}
    message = violation("tls-certificate-expiry", "192.0.2.25", findings_for(POSTFIX_TYPE, props))
    assert message is not None and message.startswith("tls-certificate-expiry fails on 192.0.2.25")
    relaxed = {**props, "tls_min_days_left": 5.0}
    assert violation("tls-certificate-expiry", "192.0.2.25", findings_for(POSTFIX_TYPE, relaxed)) is None


def test_the_host_s_answer_about_its_own_certificate_and_key():
    chain = issued([x509.DNSName("mx.example.org")])
    found = parse_host_material(f"match\n{'ab' * 32}\n{chain}")
    assert found.state == "match" and found.pair_sha256 == "ab" * 32 and read_leaf(found.chain)
    assert host_material_problem(found, "/c.pem", "/k.pem") is None
    mismatch = parse_host_material("mismatch\n" + "cd" * 32 + "\n" + chain)
    assert "tls.host_key_file: /k.pem does not match the certificate in /c.pem" in str(
        host_material_problem(mismatch, "/c.pem", "/k.pem")
    )
    missing = parse_host_material("missing-cert\n")
    assert host_material_problem(missing, "/c.pem", "/k.pem") == (
        "tls.host_cert_file: /c.pem does not exist on the host or cannot be read"
    )


def test_the_hook_names_its_files_as_shell_data_and_parses():
    spec = HookSpec(
        "/etc/letsencrypt/live/mx x/fullchain.pem", "/k'ey.pem", "/etc/postfix/tls/secure-postfix.pem", "::1", 25
    )
    text = spec.render()
    assert "CERT='/etc/letsencrypt/live/mx x/fullchain.pem'" in text
    assert "KEY='/k'\"'\"'ey.pem'" in text
    assert "ADDRESS='[::1]'" in text and "PORT=25" in text
    assert "@" not in text.replace("$@", "")
    assert subprocess.run(["sh", "-n"], input=text, text=True, capture_output=True).returncode == 0


def test_a_certificate_on_the_host_in_the_stack_config():
    where = "secure-postfix:sites.s"
    spec = parse_tls(
        {"host_cert_file": "/etc/le/live/mx/fullchain.pem", "host_key_file": "/etc/le/live/mx/privkey.pem"}, where
    )
    assert spec.host_key_file == "/etc/le/live/mx/privkey.pem" and spec.renewal_hook.startswith("/etc/postfix/tls/")
    for raw, said in [
        ({"host_cert_file": "/a.pem"}, "needs host_key_file"),
        ({"host_cert_file": "/a.pem", "host_key_file": "/b.pem", "key_secret": "k"}, "the key stays on the host"),
        ({"host_cert_file": "/a.pem", "cert_file": "c.pem", "key_file": "k"}, "exactly one of"),
        ({"host_cert_file": "a.pem", "host_key_file": "/b.pem"}, "absolute path"),
        ({"cert_file": "c.pem", "key_file": "k.pem", "renewal_hook": "/x"}, "go with host_cert_file"),
        ({"cert_file": "c.pem", "key_file": "k.pem", "min_days_left": 400}, "from 0 to 366"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse_tls(raw, where)
        assert said in str(caught.value), (raw, caught.value)


def test_tls_settings_take_exactly_one_certificate_source_and_sane_days():
    base = {"security_level": "may", "protocols": ">=TLSv1.2", "public_mx": True, "renewal_hook": "/h"}
    assert tls_problems({**base, "host_cert_file": "/c.pem", "host_key_file": "/k.pem"}) == []
    both = tls_problems({**base, "cert_pem": "x", "host_cert_file": "/c.pem", "host_key_file": "/k.pem"})
    assert [p.field for p in both] == ["tls.cert_pem"]
    days = tls_problems({**base, "cert_pem": "x", "min_days_left": -1})
    assert [p.field for p in days] == ["tls.min_days_left"]
    hook = tls_problems(
        {
            **base,
            "host_cert_file": "/c.pem",
            "host_key_file": "/k.pem",
            "renewal_hook": "/etc/postfix/tls/secure-postfix.pem",
        }
    )
    assert [p.field for p in hook] == ["tls.renewal_hook"]


def test_the_providers_load_without_x509_until_a_certificate_is_read():
    """Every engine command's plugin imports the providers; x509 (15 to 20 ms) waits for TLS to need it."""
    script = (
        "import sys, secure_postfix.postfix_config, secure_postfix.postfix_services, secure_postfix.dovecot_auth\n"
        "assert 'cryptography.x509' not in sys.modules, 'x509 imported with the providers'\n"
        "from secure_postfix.core.tls_material import fingerprint\n"
        "import secure_postfix.core.certificates as c\n"
        "assert c.certificate_blocks('') == []\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
