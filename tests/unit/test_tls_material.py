"""Certificate and key checks; all key material is generated here, never read from files."""

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from secure_postfix.core.tls_material import certificate_problems, fingerprint

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def key_pem(key, password: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def cert_pem(key, not_before: dt.datetime, not_after: dt.datetime, name: str = "mx.example.test", issuer_key=None):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA" if issuer_key else name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(issuer_key or key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def valid_cert(key):
    return cert_pem(key, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=90))


def test_ec_p256_pair_has_no_problems(ec_key):
    assert certificate_problems(valid_cert(ec_key), key_pem(ec_key)) == []


def test_rsa_2048_pair_has_no_problems(rsa_key):
    assert certificate_problems(valid_cert(rsa_key), key_pem(rsa_key)) == []


def test_traditional_openssl_key_format_is_read(rsa_key):
    traditional = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    assert traditional.splitlines()[0].startswith("-----BEGIN RSA ")  # the traditional (PKCS#1) form
    assert certificate_problems(valid_cert(rsa_key), traditional) == []


MISMATCH = ("tls_key_pem", "does not match the certificate in tls.cert_pem (different public key)")


def test_mismatched_ec_key_refused(ec_key, other_ec_key):
    assert certificate_problems(valid_cert(ec_key), key_pem(other_ec_key)) == [MISMATCH]


def test_key_of_another_algorithm_refused(ec_key, rsa_key):
    assert certificate_problems(valid_cert(rsa_key), key_pem(ec_key)) == [MISMATCH]
    assert certificate_problems(valid_cert(ec_key), key_pem(rsa_key)) == [MISMATCH]


def test_expired_certificate_refused_with_its_date(ec_key):
    expired_on = NOW - dt.timedelta(days=3)
    cert = cert_pem(ec_key, NOW - dt.timedelta(days=400), expired_on)
    assert certificate_problems(cert, key_pem(ec_key)) == [("tls.cert_pem", f"expired on {expired_on:%Y-%m-%d}")]


def test_expired_and_mismatched_reports_both(ec_key, other_ec_key):
    expired_on = NOW - dt.timedelta(days=1)
    cert = cert_pem(ec_key, NOW - dt.timedelta(days=30), expired_on)
    assert certificate_problems(cert, key_pem(other_ec_key)) == [
        MISMATCH,
        ("tls.cert_pem", f"expired on {expired_on:%Y-%m-%d}"),
    ]


def test_expiry_is_judged_at_the_given_moment(ec_key):
    not_after = NOW + dt.timedelta(days=10)
    cert = cert_pem(ec_key, NOW - dt.timedelta(days=1), not_after)
    key = key_pem(ec_key)
    assert certificate_problems(cert, key, now=not_after) == []
    assert certificate_problems(cert, key, now=not_after + dt.timedelta(seconds=1)) == [
        ("tls.cert_pem", f"expired on {not_after:%Y-%m-%d}")
    ]


def test_chain_is_judged_by_its_leaf(ec_key, rsa_key):
    ca = cert_pem(rsa_key, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=365), name="Test CA")
    leaf = cert_pem(ec_key, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=90), issuer_key=rsa_key)
    assert certificate_problems(leaf + ca, key_pem(ec_key)) == []
    assert certificate_problems(leaf + ca, key_pem(rsa_key)) == [MISMATCH]


@pytest.mark.parametrize(
    "text", ["", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_unreadable_certificate(ec_key, text):
    assert certificate_problems(text, key_pem(ec_key)) == [("tls.cert_pem", "is not a PEM X.509 certificate")]


def test_key_given_as_the_certificate(ec_key):
    key = key_pem(ec_key)
    assert certificate_problems(key, key) == [("tls.cert_pem", "is not a PEM X.509 certificate")]


def test_unreadable_key(ec_key):
    cert = valid_cert(ec_key)
    unreadable = ("tls_key_pem", "is not an unencrypted PEM private key")
    assert certificate_problems(cert, "") == [unreadable]
    assert certificate_problems(cert, "not a key") == [unreadable]
    assert certificate_problems(cert, cert) == [unreadable]


def test_encrypted_key_refused(ec_key):
    encrypted = key_pem(ec_key, password=b"correct horse")
    assert "ENCRYPTED" in encrypted
    assert certificate_problems(valid_cert(ec_key), encrypted) == [
        ("tls_key_pem", "is not an unencrypted PEM private key")
    ]


def test_messages_never_quote_the_key(ec_key, other_ec_key):
    key = key_pem(other_ec_key)
    body_lines = [line for line in key.splitlines() if line and not line.startswith("-----")]
    expired = cert_pem(ec_key, NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=1))
    problems = [p for cert in (expired, "garbage") for k in (key, key[:-40]) for p in certificate_problems(cert, k)]
    # Every pair is wrong (expired or unreadable certificate, or a cut key): each one must have said why.
    assert len(problems) >= 4, problems
    assert len(body_lines) >= 3
    for field, message in problems:
        assert field in ("tls.cert_pem", "tls_key_pem")
        assert not any(line in message for line in body_lines)


def test_fingerprint_is_sha256_of_der_in_openssl_format(rsa_key):
    pem = valid_cert(rsa_key)
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    expected = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert fingerprint(pem) == expected
    assert len(fingerprint(pem)) == 32 * 3 - 1


def test_fingerprints_differ_between_certificates(ec_key):
    assert fingerprint(valid_cert(ec_key)) != fingerprint(valid_cert(ec_key))
