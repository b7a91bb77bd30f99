"""The bed's CA and host certificates pass the path validation clients and sslyze run (cryptography's verifier)."""

from __future__ import annotations

import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from toolchain.testbed import certs

NAMES = ("mx.testbed.invalid", "mx", "10.231.7.11")


def verify(authority: certs.Authority, cert_pem: str, name: x509.GeneralName) -> list[x509.Certificate]:
    root = x509.load_pem_x509_certificate(authority.cert_pem.encode())
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(name)  # type: ignore[arg-type]
    return verifier.verify(x509.load_pem_x509_certificate(cert_pem.encode()), [])


@pytest.fixture(scope="module")
def authority() -> certs.Authority:
    return certs.make_authority()


@pytest.mark.parametrize(
    "name",
    [x509.DNSName("mx.testbed.invalid"), x509.DNSName("mx"), x509.IPAddress(ipaddress.ip_address("10.231.7.11"))],
)
def test_a_host_certificate_is_valid_for_each_name_and_address_of_the_host(authority, name):
    cert_pem, _ = certs.issue(authority, NAMES)
    assert len(verify(authority, cert_pem, name)) == 2


def test_another_name_or_another_ca_is_refused(authority):
    cert_pem, _ = certs.issue(authority, NAMES)
    with pytest.raises(VerificationError):
        verify(authority, cert_pem, x509.DNSName("edge.testbed.invalid"))
    with pytest.raises(VerificationError):
        verify(certs.make_authority(), cert_pem, x509.DNSName("mx.testbed.invalid"))


def test_python_s_default_client_trusts_the_pair_through_the_ca(authority, tmp_path):
    """What tests/engine/mail_client.tls_context(ca) builds: the key matches and the chain loads."""
    cert, key = certs.write_pair(tmp_path, "mx", *certs.issue(authority, NAMES))
    ca, ca_key = authority.write(tmp_path)
    assert oct(key.stat().st_mode & 0o777) == oct(ca_key.stat().st_mode & 0o777) == "0o600"
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(ca))
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 366  # Mozilla's longest leaf
