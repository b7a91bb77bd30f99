"""The guide's SASL and TLS settings for Postfix, as main.cf directives, and their rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from secure_postfix.core import postfix_rules as rules
from secure_postfix.core import tls_policy
from secure_postfix.core.problem import Problem
from secure_postfix.core.renewal_hook import path_problems
from secure_postfix.core.sasl_path import problems as sasl_path_problems

TLS_DIR = "/etc/postfix/tls"
# The private key and the certificate chain in one file (key first), named by both smtpd_tls_cert_file and
# smtpd_tls_key_file: one rename puts the new pair live, so no smtpd ever starts with the new certificate and the
# old key (Postfix reads the key from the certificate's file when both name it, in every version).
TLS_PAIR_FILE = f"{TLS_DIR}/secure-postfix.pem"
# Where earlier releases kept them, one file each; removed once the pair file has taken over.
LEGACY_TLS_FILES = (f"{TLS_DIR}/secure-postfix.crt", f"{TLS_DIR}/secure-postfix.key")

SASL_DEFAULTS = {
    "security_options": "noanonymous, noplaintext",
    "tls_security_options": "noanonymous",
}
TLS_DEFAULTS = {
    "security_level": "may",
    "protocols": ">=TLSv1.2",
    "public_mx": True,
    "policy": tls_policy.POLICY_DEFAULT,
    "mta_policy": tls_policy.MTA_POLICY_DEFAULT,
    "outbound_security_level": tls_policy.OUTBOUND_DEFAULT,
}
TLS_LEVELS = ("may", "encrypt")

# Directives the sasl and tls blocks own; setting them under `directives` too would be ambiguous.
SASL_DIRECTIVES = (
    "smtpd_sasl_auth_enable",
    "smtpd_sasl_type",
    "smtpd_sasl_path",
    "smtpd_sasl_security_options",
    "smtpd_sasl_tls_security_options",
)
TLS_DIRECTIVES = (
    "smtpd_tls_cert_file",
    "smtpd_tls_key_file",
    "smtpd_tls_security_level",
    "smtpd_tls_auth_only",
    "smtpd_tls_protocols",
    "smtpd_tls_mandatory_protocols",
    "smtp_tls_security_level",
    *tls_policy.POLICY_DIRECTIVES,
)


OFFER_AUTH = ("everywhere", "submission")


def sasl_directives(sasl: Mapping[str, Any]) -> dict[str, Any]:
    """Section 8.8.3 step 2 of the guide. `path` may still be unknown at preview.

    `sasl` holds every setting (SaslWiring.from_props fills in the defaults); so do `tls` below.

    With `offer_auth: submission`, main.cf keeps AUTH off (port 25 never offers it, and never
    needs Dovecot); the submission services of master.cf turn it on for themselves.
    """
    everywhere = sasl["offer_auth"] == "everywhere"
    return {
        "smtpd_sasl_auth_enable": "yes" if everywhere else "no",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": sasl["path"],
        "smtpd_sasl_security_options": sasl["security_options"],
        "smtpd_sasl_tls_security_options": sasl["tls_security_options"],
    }


def tls_directives(tls: Mapping[str, Any]) -> dict[str, str]:
    """The certificate, STARTTLS, and the TLS policy's levels (core/tls_policy.py) for smtpd and smtp."""
    return {
        "smtpd_tls_cert_file": TLS_PAIR_FILE,
        "smtpd_tls_key_file": TLS_PAIR_FILE,
        "smtpd_tls_security_level": tls["security_level"],
        # Without it, the guide's `noplaintext` leaves no mechanism before STARTTLS and every smtpd dies.
        "smtpd_tls_auth_only": "yes",
        **tls_policy.directives(
            str(tls["protocols"]),
            # Settings stored before the policy existed come without its keys: they get its defaults.
            tls.get("policy", TLS_DEFAULTS["policy"]),
            tls.get("mta_policy", TLS_DEFAULTS["mta_policy"]),
            tls.get("outbound_security_level", TLS_DEFAULTS["outbound_security_level"]),
            tls.get("destinations") or {},
        ),
    }


def tls_policy_map(tls: Mapping[str, Any]) -> str | None:
    """The text of the per-destination table (tls.destinations), None without destinations."""
    destinations = tls.get("destinations") or {}
    return tls_policy.policy_map(destinations) if destinations else None


# The directives that carry `tls.protocols`: the tls block's `>=TLSv1.x`, written as exclusions before Postfix 3.6.
TLS_PROTOCOL_DIRECTIVES = (
    "smtpd_tls_protocols",
    "smtpd_tls_mandatory_protocols",
    "smtp_tls_protocols",
    "smtp_tls_mandatory_protocols",
)


def uses_tls_block(props: Mapping[str, Any]) -> bool:
    """Whether a PostfixConfig's stored inputs come with the tls block: only it stores the certificate (its PEM,
    or the path of the one on the host)."""
    return any(props.get(k) for k in ("tls_cert_pem", "tls_host_cert_file"))


def for_version(main_cf: Mapping[str, str], version: str, tls_block: bool) -> dict[str, str]:
    """main.cf values as the host's Postfix `version` must be given them.

    The tls block's protocols are kept in the stack as `>=TLSv1.2` (or `>=TLSv1.3`) whatever the host; a
    Postfix before 3.6 gets the exclusions that mean the same. What a user wrote under `directives` is written
    as written, and refused on such a host by rules.version_problems.
    """
    rendered = dict(main_cf)
    if not tls_block or not rules.needs_exclusions(version):
        return rendered
    for name in TLS_PROTOCOL_DIRECTIVES:
        equivalent = rules.exclusions_for(rendered[name]) if name in rendered else None
        if equivalent:
            rendered[name] = equivalent
    return rendered


def as_declared(live: Mapping[str, str], declared: Mapping[str, str], version: str, tls_block: bool) -> dict[str, str]:
    """The host's values, with each one that is what `for_version` writes for its declared value shown as declared:
    a refresh then finds no drift where the host holds exactly what an up writes there."""
    rendered = for_version(declared, version, tls_block)
    return {
        name: str(declared[name]) if name in declared and value == rendered.get(name) else value
        for name, value in live.items()
    }


# Who may send mail to other domains through this host. Postfix's own default ends in defer_unauth_destination,
# which tells an outside client trying to relay to come back later (454) instead of refusing it (554).
RELAY_RESTRICTIONS_DEFAULT = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
RELAY_DIRECTIVE = "smtpd_relay_restrictions"


def relay_problems(text: Any) -> list[Problem]:
    """`relay_restrictions` must end relaying for everyone else with a permanent refusal."""
    if not isinstance(text, str) or not text.strip():
        return [Problem("relay_restrictions", f"must be a Postfix restriction list, got {text!r}")]
    items = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    if "defer_unauth_destination" in items:
        return [
            Problem(
                "relay_restrictions",
                "has defer_unauth_destination, which tells a client trying to relay to retry later; use "
                "reject_unauth_destination to refuse it",
            )
        ]
    if "reject_unauth_destination" not in items and items[-1] != "reject":
        return [
            Problem(
                "relay_restrictions",
                "must refuse relaying for everyone it does not permit: include reject_unauth_destination "
                f"(the default is {RELAY_RESTRICTIONS_DEFAULT!r})",
            )
        ]
    return []


# One rule, read by the stack config (naming its keys) and by PostfixConfig's check (for direct use).
SASL_NEEDS_TLS = (
    "with the guide's noplaintext and no TLS, AUTH can never succeed (and with only plaintext mechanisms in "
    "Dovecot, every smtpd dies at connect)"
)


def sasl_problems(sasl: Mapping[str, Any], tls: Mapping[str, Any] | None, is_unknown) -> list[Problem]:
    problems = []
    if not tls:
        problems.append(Problem("sasl", f"needs tls: {SASL_NEEDS_TLS}"))
    path = sasl.get("path")
    if path is None or path == "":
        problems.append(Problem("sasl.path", "is required (DovecotAuthService.sasl_path)"))
    elif not is_unknown(path):
        problems += sasl_path_problems(str(path))
    offer = sasl["offer_auth"]
    if not is_unknown(offer) and offer not in OFFER_AUTH:
        problems.append(Problem("sasl.offer_auth", f"must be one of {', '.join(OFFER_AUTH)}, got {offer!r}"))
    options = sasl["security_options"]
    if not is_unknown(options) and "noanonymous" not in str(options):
        problems.append(Problem("sasl.security_options", "must include noanonymous"))
    return problems


def tls_problems(tls: Mapping[str, Any]) -> list[Problem]:
    problems = []
    level = tls["security_level"]
    if level not in TLS_LEVELS:
        problems.append(Problem("tls.security_level", f"must be one of {', '.join(TLS_LEVELS)}, got {level!r}"))
    public_mx = tls["public_mx"]
    if not isinstance(public_mx, bool):
        problems.append(Problem("tls.public_mx", f"must be true or false (a real boolean), got {public_mx!r}"))
    if level == "encrypt" and public_mx is not False:
        problems.append(
            Problem(
                "tls.security_level",
                "encrypt is refused on a public MX: RFC 3207 forbids requiring TLS on a publicly-referenced "
                "SMTP server, and mail from servers without TLS would bounce. Use may, or set "
                "tls.public_mx: false for a submission-only host",
            )
        )
    problems += certificate_source_problems(tls)
    problems += tls_policy.problems({**TLS_DEFAULTS, **tls})
    protocols = str(tls["protocols"])
    if not protocols_at_least_tls12(protocols):
        problems.append(
            Problem(
                "tls.protocols",
                f"{protocols!r} is not a TLS 1.2+ policy; use >=TLSv1.2, >=TLSv1.3, or exclusions that include "
                "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
            )
        )
    return problems


def certificate_source_problems(tls: Mapping[str, Any]) -> list[Problem]:
    """Exactly one source: a PEM uploaded from the controller, or files that live on the host (an ACME client's)."""
    uploaded, on_host = bool(tls.get("cert_pem")), tls.get("host_cert_file") is not None
    if uploaded == on_host:
        return [
            Problem(
                "tls.cert_pem",
                "give exactly one of cert_pem (uploaded from the controller) or host_cert_file (a file that already "
                "lives on the host, such as an ACME client's fullchain.pem)",
            )
        ]
    problems = []
    days = tls.get("min_days_left")
    # Numbers reach a provider as floats (protobuf): 21.0 is 21 days.
    whole = isinstance(days, int | float) and not isinstance(days, bool) and float(days).is_integer()
    if days is not None and not (whole and 0 <= days <= 366):
        problems.append(Problem("tls.min_days_left", f"must be a whole number of days from 0 to 366, got {days!r}"))
    if not on_host:
        return problems
    problems += path_problems("tls.host_cert_file", tls.get("host_cert_file"))
    problems += path_problems("tls.host_key_file", tls.get("host_key_file"))
    problems += path_problems("tls.renewal_hook", tls.get("renewal_hook"))
    hook = tls.get("renewal_hook")
    if isinstance(hook, str) and hook in (TLS_PAIR_FILE, *LEGACY_TLS_FILES):
        problems.append(Problem("tls.renewal_hook", f"{hook} is the project's own TLS file; name another path"))
    return problems


_OLD_PROTOCOLS = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"}


def protocols_at_least_tls12(protocols: str) -> bool:
    """`>=TLSv1.2`, `>=TLSv1.3`, or a pure exclusion list that excludes everything older than TLS 1.2.

    Inclusion lists (`TLSv1.2`) are refused too: they silently switch newer protocols off.
    """
    if protocols.strip() in (">=TLSv1.2", ">=TLSv1.3"):
        return True
    tokens = [t for t in re.split(r"[\s,:]+", protocols) if t]
    if not tokens or not all(t.startswith("!") for t in tokens):
        return False
    return {t[1:] for t in tokens} >= _OLD_PROTOCOLS


def overlapping_directives(directives: Mapping[str, Any], sasl: Any, tls: Any, relay: Any = None) -> list[Problem]:
    owned = (SASL_DIRECTIVES if sasl else ()) + (TLS_DIRECTIVES if tls else ())
    problems = [
        Problem(f"directives.{name}", "is set by the sasl/tls settings; change it there")
        for name in directives
        if name in owned
    ]
    if relay and RELAY_DIRECTIVE in directives:
        problems.append(Problem(f"directives.{RELAY_DIRECTIVE}", "is set by relay_restrictions; change it there"))
    return problems
