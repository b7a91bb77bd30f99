"""What a deployed certificate says about itself: the facts the report, refresh and the preview show (pure).

A certificate is public: its subject, names, issuer and dates may go into state, diffs and logs. Only
certificate blocks are ever read here; a key that shares their file is never parsed or kept.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Expiring within this many days fails the compliance rule: ACME clients renew 30 days ahead (certbot,
# lego), so a certificate still this close to its end has missed at least nine days of renewals.
MIN_DAYS_LEFT = 21

_CERT_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class CertificateError(ValueError):
    """The text holds no certificate that can be read; the message says what is wrong, never the text."""


def certificate_blocks(text: str) -> list[str]:
    """The PEM certificate blocks of a file, in order; anything else in it (a key) is left out."""
    return [m.group(0) + "\n" for m in _CERT_BLOCK.finditer(text)]


@dataclass(frozen=True)
class CertificateFacts:
    """The leaf of a chain: who it names, who signed it, until when."""

    subject: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    issuer: str
    not_after: dt.datetime
    fingerprint: str  # SHA-256 of the DER form, colon-separated hex, as `openssl x509 -fingerprint -sha256`

    def days_left(self, now: dt.datetime | None = None) -> int:
        """Whole days until it expires (negative once it has)."""
        moment = now or dt.datetime.now(dt.UTC)
        return (self.not_after - moment) // dt.timedelta(days=1)

    @property
    def sans(self) -> str:
        return ", ".join([*(f"DNS:{n}" for n in self.dns_names), *(f"IP:{a}" for a in self.ip_addresses)])

    def names(self, host: str) -> bool:
        """Whether a client reaching `host` (a name or an address) finds it among the certificate's names.

        As clients check since RFC 6125: the subjectAltName alone when it has any, a wildcard standing for
        exactly one leftmost label; the subject's CN only when there is no DNS name at all.
        """
        wanted = host.strip().rstrip(".").lower()
        try:
            address = ipaddress.ip_address(wanted.strip("[]"))
        except ValueError:
            address = None
        if address is not None:
            return any(ipaddress.ip_address(a) == address for a in self.ip_addresses)
        names = self.dns_names or tuple(_common_names(self.subject))
        return any(_name_matches(n, wanted) for n in names)

    def expiry(self) -> str:
        return f"{self.not_after:%Y-%m-%d}"

    def summary(self) -> str:
        """One line for a diff: when it expires, whom it names, which one it is."""
        return f"expires {self.expiry()} ({self.sans or self.subject}; sha256 {self.fingerprint[:11]})"

    def record(self) -> dict[str, str]:
        """The state form (every value a string: state maps hold no dates)."""
        return {
            "subject": self.subject,
            "sans": self.sans,
            "issuer": self.issuer,
            "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> CertificateFacts | None:
        """Back from the state form; None when it is not one (older state, or nothing deployed)."""
        try:
            not_after = dt.datetime.strptime(str(record["not_after"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except (KeyError, ValueError):
            return None
        sans = [s.strip() for s in str(record.get("sans") or "").split(",") if s.strip()]
        return cls(
            subject=str(record.get("subject") or ""),
            dns_names=tuple(s[4:] for s in sans if s.startswith("DNS:")),
            ip_addresses=tuple(s[3:] for s in sans if s.startswith("IP:")),
            issuer=str(record.get("issuer") or ""),
            not_after=not_after,
            fingerprint=str(record.get("fingerprint") or ""),
        )


def read_leaf(pem: str) -> CertificateFacts:
    """The facts of the first certificate in `pem` (a chain, leaf first; a key among the blocks is skipped)."""
    # Imported here, not at the top: see tls_material.py.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    blocks = certificate_blocks(pem)
    if not blocks:
        raise CertificateError("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        cert = x509.load_pem_x509_certificate(blocks[0].encode())
    except ValueError:
        raise CertificateError("holds a certificate block that is not a readable X.509 certificate") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return CertificateFacts(
        subject=cert.subject.rfc4514_string(),
        dns_names=dns,
        ip_addresses=ips,
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    )


def summary_of(pem: str) -> str:
    """The one line a preview shows for a certificate to upload; a PEM that cannot be read says so."""
    try:
        return read_leaf(pem).summary()
    except CertificateError as why:
        return f"unreadable: {why}"


def _common_names(subject: str) -> list[str]:
    return [part[3:] for part in re.split(r"(?<!\\),", subject) if part.upper().startswith("CN=")]


def _name_matches(pattern: str, host: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


@dataclass(frozen=True)
class HostMaterial:
    """A certificate and key that live on the host, as the host reports them (the key is never read out).

    `state`: "match", "mismatch", "missing-cert", "missing-key", "bad-cert" or "bad-key".
    """

    state: str
    pair_sha256: str = ""
    chain: str = ""


def parse_host_material(out: str) -> HostMaterial:
    lines = out.splitlines()
    state = lines[0].strip() if lines else "missing-cert"
    if state not in ("match", "mismatch"):
        return HostMaterial(state)
    digest = lines[1].strip() if len(lines) > 1 else ""
    return HostMaterial(state, digest, "".join(certificate_blocks("\n".join(lines[2:]))))


def host_material_problem(material: HostMaterial, cert_file: str, key_file: str) -> str | None:
    """What is wrong with a host's certificate and key, in words a mail admin can act on; None when nothing is."""
    if material.state == "match":
        return None
    return {
        "missing-cert": f"tls.host_cert_file: {cert_file} does not exist on the host or cannot be read",
        "missing-key": f"tls.host_key_file: {key_file} does not exist on the host or cannot be read",
        "bad-cert": f"tls.host_cert_file: {cert_file} is not a PEM certificate",
        "bad-key": f"tls.host_key_file: {key_file} is not an unencrypted PEM private key",
        "mismatch": (
            f"tls.host_key_file: {key_file} does not match the certificate in {cert_file} (different public key)"
        ),
    }.get(material.state, f"tls.host_cert_file: {cert_file} could not be checked ({material.state})")
