"""Checks on a certificate and its private key, made before anything is written.

Messages never quote the key: they name the field and what is wrong with it.
"""

from __future__ import annotations

import datetime as dt

# cryptography's x509 is imported where a certificate is read: only TLS needs it, and its import (15 to 20 ms) would
# otherwise delay every engine command's first call to the provider plugin.


def certificate_problems(cert_pem: str, key_pem: str, now: dt.datetime | None = None) -> list[tuple[str, str]]:
    """(field, message) pairs: unreadable PEM, a key that does not match, an expired certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return [("tls.cert_pem", "is not a PEM X.509 certificate")]
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return [("tls_key_pem", "is not an unencrypted PEM private key")]
    problems = []
    if _public_bytes(key.public_key()) != _public_bytes(cert.public_key()):
        problems.append(("tls_key_pem", "does not match the certificate in tls.cert_pem (different public key)"))
    moment = now or dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc < moment:
        problems.append(("tls.cert_pem", f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"))
    return problems


def fingerprint(cert_pem: str) -> str:
    """SHA-256 of the DER form, as `openssl x509 -fingerprint -sha256` prints it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _public_bytes(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
