"""The test bed's certificate authority and the host certificates it signs, made when a bed is created.

Clients check a server the way current ones do (RFC 5280 path validation, the name in subjectAltName, the CA/Browser
Forum's profile as cryptography's verifier and sslyze apply it): a CA certificate with critical basicConstraints and
keyCertSign, a leaf with subjectAltName naming every host name and address it is reached by, serverAuth, and key
identifiers linking the two. The CA's key never leaves the bed's folder (or the test's temporary one) and nothing
of it is committed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "secure-postfix test CA"
# Mozilla's profiles refuse a leaf that lives longer than 366 days (intermediate) or 90 (modern).
LEAF_DAYS = 30
CA_DAYS = 365


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate and key as PEM text."""

    cert_pem: str
    key_pem: str

    def write(self, directory: Path) -> tuple[Path, Path]:
        """`ca.crt` and `ca.key` (mode 0600) in `directory`; returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / "ca.crt", directory / "ca.key"
        key.touch(mode=0o600)
        key.chmod(0o600)
        key.write_text(self.key_pem)
        cert.write_text(self.cert_pem)
        return cert, key

    @classmethod
    def read(cls, directory: Path) -> Authority:
        return cls((directory / "ca.crt").read_text(), (directory / "ca.key").read_text())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_authority(name: str = CA_NAME, days: int = CA_DAYS) -> Authority:
    """A new self-signed EC P-256 CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue(authority: Authority, names: Iterable[str], days: int = LEAF_DAYS) -> tuple[str, str]:
    """A server certificate signed by `authority` for `names` (host names and addresses; the first is its CN) and
    its new EC P-256 key, both as PEM text."""
    names = list(names)
    ca_cert = x509.load_pem_x509_certificate(authority.cert_pem.encode())
    ca_key = serialization.load_pem_private_key(authority.key_pem.encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_alt_name(n) for n in names]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


def write_pair(directory: Path, stem: str, cert_pem: str, key_pem: str) -> tuple[Path, Path]:
    """STEM.crt and STEM.key (mode 0600) in `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    key.touch(mode=0o600)
    key.chmod(0o600)
    key.write_text(key_pem)
    cert.write_text(cert_pem)
    return cert, key
