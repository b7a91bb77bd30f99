"""Test certificates, made at test time (nothing secret is ever committed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from toolchain.testbed import certs


def make_pair(hostname: str, days: int = 30) -> tuple[str, str]:
    """A self-signed EC P-256 certificate for `hostname` and its key, both as PEM text."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def make_cert(directory: Path, hostname: str, days: int = 30) -> tuple[Path, Path]:
    """make_pair written to `directory` (the key mode 0600); returns (cert path, key path)."""
    cert_pem, key_pem = make_pair(hostname, days)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{hostname}.crt", directory / f"{hostname}.key"
    cert_path.write_text(cert_pem)
    key_path.write_text(key_pem)
    key_path.chmod(0o600)
    return cert_path, key_path


def der_fingerprint(cert_path: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256())


# Certificates signed by a test CA, which a client checking chain and name accepts (toolchain/testbed/certs.py).


def make_authority(directory: Path) -> tuple[Path, Path]:
    """A new test CA written to `directory` as ca.crt and ca.key (0600); returns (cert path, key path)."""
    return certs.make_authority().write(directory)


def make_signed_pair(ca: tuple[Path, Path], names: Sequence[str], days: int = 30) -> tuple[str, str]:
    """A certificate for `names` (host names and addresses, the first its CN) signed by the CA `ca` (cert path, key
    path), and its key, both as PEM text."""
    authority = certs.Authority(ca[0].read_text(), ca[1].read_text())
    return certs.issue(authority, names, days)


def make_signed_cert(directory: Path, ca: tuple[Path, Path], names: Sequence[str], days: int = 30) -> tuple[Path, Path]:
    """make_signed_pair written to `directory` as NAME.crt and NAME.key (0600), NAME the first of `names`."""
    cert_pem, key_pem = make_signed_pair(ca, names, days)
    return certs.write_pair(directory, names[0], cert_pem, key_pem)
