"""The TLS policy: named levels, as Postfix's own cipher and protocol parameters (no I/O).

Postfix has two sets of TLS settings, and each level fills one of them:

- the *mandatory* set (`smtpd_tls_mandatory_ciphers`, `…_mandatory_exclude_ciphers`, `…_mandatory_protocols`),
  which smtpd uses wherever TLS is required: the submission services (587 with `smtpd_tls_security_level=encrypt`,
  465 in wrapper mode), and port 25 on a host whose `security_level` is `encrypt`. That is where passwords travel:
  `tls.policy`, by default `intermediate`, Mozilla's intermediate profile.
- the *opportunistic* set (`smtpd_tls_ciphers`, `smtpd_tls_exclude_ciphers`, `smtpd_tls_protocols`), which smtpd
  uses on port 25 at `may`, and the SMTP client's (`smtp_tls_…`) for mail to other servers: `tls.mta_policy`, by
  default `opportunistic`. Between mail servers TLS is optional: a peer that cannot agree on a cipher sends in
  plaintext instead, so this level refuses only what gives no protection or is broken, and keeps the rest.

Each level is expressed as a cipher grade and exclusions (Postfix's documented way; the grades' cipher lists are
left as each Postfix version ships them), so each is valid on every Postfix the project supports (3.5, 3.7, 3.10):
the exclusions are OpenSSL cipher-string names known to OpenSSL 1.1.1 (Debian 11), 3.0 (Debian 12) and 3.5
(Debian 13), and `openssl ciphers` of each gives the same suites (tests/unit/test_tls_policy.py). The protocols are
kept as `>=TLSv1.x` and written as exclusions on Postfix 3.5 (features.for_version).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secure_postfix.core.problem import Problem

# Mozilla's server-side TLS profiles 5.7, as sslyze 6.3.1 ships them (sslyze/mozilla_tls_profile/5.7.json):
# intermediate's TLS 1.2 suites, in OpenSSL's names. The intermediate level offers these less the three DHE ones.
MOZILLA_INTERMEDIATE_TLS12 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
)
# Mozilla's tls_curves for intermediate and modern; Postfix's default adds X448 and secp521r1, which the profiles
# refuse. Every TLS 1.2 and 1.3 implementation has X25519 or P-256 (RFC 8446 requires P-256), so port 25 loses no
# peer by it either.
CURVES = "X25519 prime256v1 secp384r1"

# Refused everywhere: no encryption, export-grade, single DES, 3DES, RC4, MD5 MACs, and suites that need a
# pre-shared key or an SRP password (the server has neither). Some of these names are gone from newer OpenSSL
# along with their suites; OpenSSL passes over a name it does not know.
BROKEN = ("eNULL", "EXPORT", "LOW", "DES", "3DES", "RC4", "MD5", "IDEA", "SEED", "PSK", "SRP")
# No server authentication: a man in the middle needs no certificate. Never on a server: every client that offers
# an anonymous suite offers authenticated ones too, and with offer_auth: everywhere a password would follow.
ANONYMOUS = ("aNULL",)
# Mozilla intermediate in exclusions of the `high` grade: only ECDHE (forward secrecy) with an AEAD cipher
# (AES-GCM, ChaCha20-Poly1305). Gone are static RSA key exchange, DHE (every client of the profile has ECDHE,
# and it spares a DH group each Postfix version sizes its own way), CBC (the SHA1/SHA256/SHA384 MACs), CAMELLIA,
# ARIA, AES-CCM and DSS.
AEAD_ECDHE_ONLY = ("kRSA", "kDHE", "kDH", "kECDH", "SHA1", "SHA256", "SHA384", "CAMELLIA", "ARIA", "AESCCM", "aDSS")


@dataclass(frozen=True)
class Level:
    """One named level: the lowest protocol and the ciphers, as a Postfix grade and its exclusions."""

    name: str
    protocols: str  # the lowest protocol, as `>=TLSv1.x`
    grade: str  # a Postfix cipher grade: medium or high
    exclusions: tuple[str, ...]  # what a server excludes from the grade
    # What the SMTP client excludes at opportunistic TLS, if other than the server's: it verifies no certificate
    # there, so an anonymous suite protects as much as any, and refusing it would mean plaintext.
    client_exclusions: tuple[str, ...] | None = None
    summary: str = ""

    @property
    def opportunistic_client_exclusions(self) -> tuple[str, ...]:
        return self.exclusions if self.client_exclusions is None else self.client_exclusions


LEVELS: dict[str, Level] = {
    level.name: level
    for level in (
        Level(
            "opportunistic",
            ">=TLSv1.2",
            "medium",
            ANONYMOUS + BROKEN,
            client_exclusions=BROKEN,
            summary="TLS 1.2+, every suite that encrypts soundly and names the server (CBC and static RSA kept)",
        ),
        Level(
            "intermediate",
            ">=TLSv1.2",
            "high",
            ANONYMOUS + BROKEN + AEAD_ECDHE_ONLY,
            summary="Mozilla's intermediate: TLS 1.2+, ECDHE with AES-GCM or ChaCha20-Poly1305 only",
        ),
        Level(
            "modern",
            ">=TLSv1.3",
            "high",
            ANONYMOUS + BROKEN + AEAD_ECDHE_ONLY,
            summary="Mozilla's modern: TLS 1.3 only",
        ),
    )
}
# Where passwords travel (mandatory TLS), and between mail servers (opportunistic TLS): the levels each takes.
POLICY_LEVELS = ("intermediate", "modern")
MTA_POLICY_LEVELS = ("opportunistic", "intermediate")
POLICY_DEFAULT = "intermediate"
MTA_POLICY_DEFAULT = "opportunistic"

# The SMTP client's security level for mail to other servers, and the levels a destination of
# `smtp_tls_policy` may require (Postfix's TLS_README, "Client-side TLS security levels").
OUTBOUND_LEVELS = ("may", "encrypt")
OUTBOUND_DEFAULT = "may"
DESTINATION_LEVELS = ("encrypt", "verify", "secure")
# The per-destination table: a text file Postfix reads whole when the SMTP client starts (texthash:), so there is
# no indexed file to build with postmap beside it and nothing but the one file to swap in and back.
POLICY_MAP_FILE = "/etc/postfix/tls/secure-postfix-tls-policy"
POLICY_MAP = f"texthash:{POLICY_MAP_FILE}"

# The main.cf parameters the policy writes (besides the protocols, which TlsSettings.protocols also sets).
POLICY_DIRECTIVES = (
    "smtpd_tls_ciphers",
    "smtpd_tls_exclude_ciphers",
    "smtpd_tls_mandatory_ciphers",
    "smtpd_tls_mandatory_exclude_ciphers",
    "tls_eecdh_auto_curves",
    "smtp_tls_protocols",
    "smtp_tls_mandatory_protocols",
    "smtp_tls_ciphers",
    "smtp_tls_exclude_ciphers",
    "smtp_tls_mandatory_ciphers",
    "smtp_tls_mandatory_exclude_ciphers",
    "smtp_tls_policy_maps",
)


def _list(items: tuple[str, ...]) -> str:
    return ", ".join(items)


def stricter(protocols: str, floor: str) -> str:
    """`protocols` (TlsSettings.protocols) raised to a level's lowest protocol: >=TLSv1.3 wins over >=TLSv1.2."""
    return floor if floor == ">=TLSv1.3" else protocols


def directives(
    protocols: str, policy: str, mta_policy: str, outbound: str, destinations: Mapping[str, Any]
) -> dict[str, str]:
    """main.cf values of the two levels. A level name that is not one (refused by `problems`) leaves its
    directives out rather than guess."""
    secure, mta = LEVELS.get(policy), LEVELS.get(mta_policy)
    rendered = {"smtpd_tls_protocols": protocols, "smtpd_tls_mandatory_protocols": protocols}
    if secure is not None:
        rendered.update(
            {
                "smtpd_tls_mandatory_protocols": stricter(protocols, secure.protocols),
                "smtpd_tls_mandatory_ciphers": secure.grade,
                "smtpd_tls_mandatory_exclude_ciphers": _list(secure.exclusions),
            }
        )
    rendered["tls_eecdh_auto_curves"] = CURVES
    rendered["smtp_tls_security_level"] = outbound
    if mta is not None:
        opportunistic = stricter(protocols, mta.protocols)
        rendered.update(
            {
                "smtpd_tls_protocols": opportunistic,
                "smtpd_tls_ciphers": mta.grade,
                "smtpd_tls_exclude_ciphers": _list(mta.exclusions),
                # Mail to other servers follows the MTA level, opportunistic or required by a destination (which
                # then has a certificate to show: no anonymous suite).
                "smtp_tls_protocols": opportunistic,
                "smtp_tls_mandatory_protocols": opportunistic,
                "smtp_tls_ciphers": mta.grade,
                "smtp_tls_exclude_ciphers": _list(mta.opportunistic_client_exclusions),
                "smtp_tls_mandatory_ciphers": mta.grade,
                "smtp_tls_mandatory_exclude_ciphers": _list(mta.exclusions),
            }
        )
    if destinations:
        rendered["smtp_tls_policy_maps"] = POLICY_MAP
    return rendered


# A destination as smtp_tls_policy_maps looks it up: a domain, `.domain` (its subdomains), or `[host]:port`.
_DOMAIN_RE = re.compile(r"\.?(?!-)[a-z0-9-]{1,63}(?:\.(?!-)[a-z0-9-]{1,63})+")
_NEXTHOP_RE = re.compile(r"\[([a-z0-9.:-]+)\](?::[0-9]{1,5})?")
_MATCH_RE = re.compile(r"[a-z0-9.:-]+")


def policy_map(destinations: Mapping[str, Any]) -> str:
    """The text of the smtp_tls_policy_maps table: one line per destination, sorted (valid input only)."""
    lines = []
    for destination in sorted(destinations):
        entry = _entry(destinations[destination])
        line = f"{destination} {entry['level']}"
        if entry.get("match"):
            line += f" match={':'.join(entry['match'])}"
        lines.append(line)
    return "# Written by secure-postfix (tls.destinations); edits are undone at the next up.\n" + "".join(
        f"{line}\n" for line in lines
    )


def _entry(raw: Any) -> dict[str, Any]:
    """A destination's settings: a level as text, or {level, match}."""
    if isinstance(raw, str):
        return {"level": raw}
    if isinstance(raw, Mapping):
        match = raw.get("match")
        return {"level": raw.get("level"), "match": [match] if isinstance(match, str) else list(match or [])}
    return {"level": raw}


def problems(tls: Mapping[str, Any]) -> list[Problem]:
    """The policy's own settings in the tls block: levels by name, the destinations' entries."""
    found = []
    for key, allowed, why in (
        ("policy", POLICY_LEVELS, "where passwords travel (the submission services, mandatory TLS)"),
        ("mta_policy", MTA_POLICY_LEVELS, "between mail servers (port 25, mail to other servers)"),
    ):
        value = tls.get(key)
        if value not in allowed:
            levels = "; ".join(f"{n}: {LEVELS[n].summary}" for n in allowed)
            found.append(Problem(f"tls.{key}", f"must be one of {', '.join(allowed)} {why}, got {value!r} ({levels})"))
    outbound = tls.get("outbound_security_level")
    if outbound not in OUTBOUND_LEVELS:
        found.append(
            Problem(
                "tls.outbound_security_level",
                f"must be one of {', '.join(OUTBOUND_LEVELS)}, got {outbound!r}; a destination that must be "
                "verified goes in tls.destinations",
            )
        )
    found += destination_problems(tls.get("destinations") or {})
    return found


def destination_problems(destinations: Any) -> list[Problem]:
    if not isinstance(destinations, Mapping):
        return [Problem("tls.destinations", "must be an object of DESTINATION: LEVEL or {level, match}")]
    found = []
    for destination, raw in destinations.items():
        where = f"tls.destinations.{destination}"
        name = str(destination)
        if name != name.lower() or not (_DOMAIN_RE.fullmatch(name) or _NEXTHOP_RE.fullmatch(name)):
            found.append(
                Problem(
                    where,
                    "must be a domain in lower case (example.com), .example.com for its subdomains, or a next hop "
                    "[host]:port",
                )
            )
            continue
        if not isinstance(raw, (str, Mapping)) or (isinstance(raw, Mapping) and set(raw) - {"level", "match"}):
            found.append(Problem(where, "must be a level (encrypt, verify, secure) or an object {level, match}"))
            continue
        entry = _entry(raw)
        if entry["level"] not in DESTINATION_LEVELS:
            found.append(
                Problem(
                    f"{where}.level" if isinstance(raw, Mapping) else where,
                    f"must be one of {', '.join(DESTINATION_LEVELS)}, got {entry['level']!r} (may is every other "
                    "destination's, outbound_security_level)",
                )
            )
        match = entry.get("match") or []
        if match and (entry["level"] not in ("verify", "secure") or not all(_is_match(m) for m in match)):
            found.append(
                Problem(
                    f"{where}.match",
                    "names the certificate names to accept with verify or secure: host names, .domain, or "
                    "hostname, nexthop and dot-nexthop (one word each)",
                )
            )
    return found


def _is_match(text: Any) -> bool:
    return isinstance(text, str) and bool(_MATCH_RE.fullmatch(text))


def cipher_string(grade_list: str, exclusions: tuple[str, ...]) -> str:
    """The OpenSSL cipher string Postfix builds from a grade's list and the exclusions (tls_set_ciphers)."""
    return grade_list + "".join(f":!{name}" for name in exclusions)
