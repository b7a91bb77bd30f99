"""Compliance of one Postfix host's main.cf with the RHEL guide and the public baselines, as data.

Every rule names its source and is judged on main.cf values only: the planned `main_cf`
map at preview, the values `read` found on the host at refresh. What a rule needs beyond
the config files (a package database, listening sockets, /etc/aliases) is listed as not
checked, with why; a rule written for hosts that are not mail servers is not applicable
on a public MX, with the reason.

Sources (IDs, titles and check text as published; read from ComplianceAsCode/content at
b3a2cca, 2026-08-21, which carries DISA's XCCDF files and the CIS mappings):
- the RHEL security hardening guide, 8.8 "Securing the Postfix service" and 8.8.3
  "Configuring Postfix to use SASL". The guide numbers no rules; the IDs `guide-8.8-...`
  are this project's labels for its items.
- DISA STIG for RHEL 8 V2R8 and RHEL 9 V2R9 (shared/references/disa-stig-rhel{8,9}-*-xccdf-manual.xml).
- CIS Benchmarks for RHEL 8 v4.0.0, RHEL 9 v2.0.0 and Debian 12 v1.1.0, as mapped to SSG rules
  in products/rhel{8,9}/controls/cis_rhel{8,9}.yml and controls/cis_debian12.yml.
- SCAP Security Guide rules under linux_os/guide/services/mail/.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from secure_postfix.core import client_networks
from secure_postfix.core.certificates import MIN_DAYS_LEFT, CertificateError, CertificateFacts, read_leaf
from secure_postfix.core.postfix_expand import Unresolved, expand, references
from secure_postfix.core.postfix_rules import POSTFIX_DEFAULTS, time_seconds


class Status(Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not applicable"
    NOT_MANAGED = "not managed"
    NOT_CHECKED = "not checked"


# `postconf -d` of Postfix 3.7 for every parameter a rule reads; POSTFIX_DEFAULTS stays the authority for its own.
DEFAULTS: dict[str, str] = {
    "default_process_limit": "100",
    "smtpd_client_connection_rate_limit": "0",
    "smtpd_client_message_rate_limit": "0",
    "anvil_rate_time_unit": "60s",
    "smtpd_client_event_limit_exceptions": "${smtpd_client_connection_limit_exceptions:$mynetworks}",
    "smtpd_sasl_auth_enable": "no",
    "smtpd_sasl_type": "cyrus",
    "smtpd_sasl_path": "smtpd",
    "smtpd_sasl_security_options": "noanonymous",
    "smtpd_sasl_tls_security_options": "$smtpd_sasl_security_options",
    "smtpd_tls_security_level": "",
    "smtpd_tls_cert_file": "",
    "smtpd_tls_key_file": "",
    "smtpd_client_restrictions": "",
    "inet_interfaces": "all",
    "smtpd_banner": "$myhostname ESMTP $mail_name",
    "mail_name": "Postfix",
    # Gone from Postfix 3.x; the default of smtpd_client_event_limit_exceptions still names it.
    "smtpd_client_connection_limit_exceptions": "",
    **POSTFIX_DEFAULTS,
}
# Names whose default Postfix computes on the host (from its interfaces or its name): unknown elsewhere.
COMPUTED_DEFAULTS = ("mynetworks", "myhostname", "mydomain")

PENDING = "(computed at apply)"
# Where a PostfixConfig's properties keep the PEM chain to upload (its diff hidden: the one-line `tls_certificate`
# stands for it) and the days a certificate must still be valid.
UPLOADED_PEM = "tls_cert_pem"
MIN_DAYS_KEY = "tls_min_days_left"


class NotJudged(Exception):
    """The rule cannot be judged on what is known here; the message says why (reported as not checked)."""


class Values:
    """Effective main.cf values: managed ones as given, "" (absent on the host) as Postfix's default.

    `host`: the host's own values of names the stack does not manage ("" where main.cf does not
    set them), as apply and refresh read them; None where they are not known (a preview).
    `certificate`: the leaf of the chain Postfix serves (None where it is not known), judged `now` against
    `min_days` left.
    """

    def __init__(
        self,
        main_cf: Mapping[str, str],
        pending: Iterable[str] = (),
        host: Mapping[str, str] | None = None,
        certificate: CertificateFacts | None = None,
        min_days: int = MIN_DAYS_LEFT,
        now: dt.datetime | None = None,
    ):
        self.pending = set(pending)
        self.managed = {k: v for k, v in main_cf.items() if k not in self.pending}
        self.host = None if host is None else {k: v for k, v in host.items() if k not in self.managed}
        self.certificate, self.min_days, self.now = certificate, min_days, now

    def is_managed(self, name: str) -> bool:
        return name in self.managed or name in self.pending

    def known(self, name: str) -> str | None:
        """The value in force, or None when it is not known here."""
        if name in self.managed:
            value = self.managed[name]
        elif self.host is not None and name in self.host:
            value = self.host[name]
        else:
            return None
        if value == "":
            return None if name in COMPUTED_DEFAULTS else DEFAULTS.get(name, "")
        return value

    def get(self, name: str) -> str:
        value = self.known(name)
        return DEFAULTS.get(name, "") if value is None else value

    def partner(self, name: str) -> str:
        """A value another directive is judged against: the one in force, never an assumed default."""
        if name in self.pending:
            raise NotJudged(f"{name} is computed at apply")
        value = self.known(name)
        if value is None:
            raise NotJudged(f"{name} is not managed and the host's value is not known here (refresh reads it)")
        return value

    def resolve(self, name: str) -> str:
        """A `$name` reference's value, for expansion."""
        if name in self.pending:
            raise Unresolved(f"${name} is computed at apply")
        value = self.known(name)
        if value is not None:
            return value
        if name in DEFAULTS and name not in COMPUTED_DEFAULTS and (self.host is not None or name == "mail_name"):
            return DEFAULTS[name]
        if name in COMPUTED_DEFAULTS and self.host is not None:
            raise Unresolved(f"${name} is computed by Postfix on the host")
        raise Unresolved(f"${name} is not managed and the host's value is not known here")

    def show(self, name: str) -> str:
        if name in self.pending:
            return f"{name} = {PENDING}"
        value = self.managed.get(name)
        if value is None and self.host is not None and self.host.get(name):
            return f"{name} = {self.host[name]} (the host's own)"
        if value is None or value == "":
            where = "not managed" if value is None else "unset"
            default = DEFAULTS.get(name, "")
            return f"{name} = {default + ' ' if default else ''}({where}: Postfix default)"
        return f"{name} = {value}"


Judge = Callable[[Values], tuple[bool, str]]


@dataclass(frozen=True)
class Rule:
    id: str
    source: str
    title: str
    # The main.cf parameters the rule is about: with none of them managed, the rule is "not managed".
    directives: tuple[str, ...] = ()
    judge: Judge | None = None
    # Why a rule cannot be judged from config files (then judge is None).
    not_checked: str = ""
    # Why a rule written for hosts that are not mail servers does not apply to a public MX.
    not_for_public_mx: str = ""


@dataclass(frozen=True)
class Finding:
    rule: Rule
    status: Status
    value: str

    def record(self) -> dict[str, str]:
        """The machine-readable form exported per host, under the rule's ID."""
        return {"status": self.status.value, "value": self.value, "source": self.rule.source}


# -- judges -------------------------------------------------------------------------------


def _whole(text: str) -> int | None:
    # ASCII digits only: str.isdigit() also takes Arabic-Indic digits and superscripts, which Postfix does not.
    return int(text) if text.isascii() and text.isdigit() else None


def positive(name: str, meaning_of_zero: str) -> Judge:
    def judge(v: Values) -> tuple[bool, str]:
        number = _whole(v.get(name))
        shown = v.show(name)
        if name in v.pending:
            return True, shown
        if number is None:
            return False, f"{shown}: not a whole number"
        return (number > 0, shown if number > 0 else f"{shown}: {meaning_of_zero}")

    return judge


def _header_bounded(v: Values) -> tuple[bool, str]:
    shown = v.show("header_size_limit")
    if "header_size_limit" in v.pending:
        return True, shown
    header, size = _whole(v.get("header_size_limit")), _whole(v.partner("message_size_limit"))
    if header is None or header == 0:
        return False, f"{shown}: must be a number of bytes above 0"
    if size and header > size:
        return False, f"{shown}: above message_size_limit ({size})"
    return True, shown


def _queue_minfree_bounded(v: Values) -> tuple[bool, str]:
    shown = v.show("queue_minfree")
    if v.pending & {"queue_minfree", "message_size_limit"}:
        return True, shown
    minfree, size = _whole(v.get("queue_minfree")), _whole(v.partner("message_size_limit"))
    if minfree is None or size is None:
        return False, f"{shown}: not a whole number"
    if size == 0:
        return False, f"{shown}: message_size_limit is 0 (no limit), so no free space is enough"
    need = (size * 3 + 1) // 2
    if minfree < need:
        return False, f"{shown}: below 1.5 x message_size_limit ({size}) = {need}"
    return True, f"{shown} (>= 1.5 x {size})"


def _time_positive(v: Values) -> tuple[bool, str]:
    shown = v.show("anvil_rate_time_unit")
    if "anvil_rate_time_unit" in v.pending:
        return True, shown
    try:
        return time_seconds(v.get("anvil_rate_time_unit")) > 0, shown
    except ValueError:
        return False, f"{shown}: not a Postfix time value"


def _exceptions_bounded(v: Values) -> tuple[bool, str]:
    name = "smtpd_client_event_limit_exceptions"
    shown = v.show(name)
    if name in v.pending:
        return True, shown
    try:
        covered = client_networks.coverage(expand(v.get(name), v.resolve))
    except (Unresolved, client_networks.NotJudgeable) as why:
        raise NotJudged(f"{shown}: {why}") from None
    wide = covered.too_wide()
    if wide:
        return False, f"{shown}: {' and '.join(wide)}, exempting that many clients from the limits"
    return True, shown


def _options(text: str) -> set[str]:
    return {t for t in re.split(r"[\s,]+", text.strip()) if t}


def _sasl_dovecot(v: Values) -> tuple[bool, str]:
    names = ("smtpd_sasl_auth_enable", "smtpd_sasl_type", "smtpd_sasl_path")
    shown = "; ".join(v.show(n) for n in names)
    path_ok = "smtpd_sasl_path" in v.pending or v.get("smtpd_sasl_path") not in ("", "smtpd")
    ok = v.get("smtpd_sasl_auth_enable") == "yes" and v.get("smtpd_sasl_type") == "dovecot" and path_ok
    return ok, shown


def options_include(name: str, wanted: tuple[str, ...]) -> Judge:
    def judge(v: Values) -> tuple[bool, str]:
        shown = v.show(name)
        if name in v.pending:
            return True, shown
        value = v.get(name)
        if name == "smtpd_sasl_tls_security_options" and value == "$smtpd_sasl_security_options":
            value = v.get("smtpd_sasl_security_options")
        missing = [w for w in wanted if w not in _options(value)]
        return (not missing, f"{shown}: lacks {', '.join(missing)}" if missing else shown)

    return judge


def _tls_in_use(v: Values) -> tuple[bool, str]:
    names = ("smtpd_tls_security_level", "smtpd_tls_cert_file", "smtpd_tls_key_file")
    shown = "; ".join(v.show(n) for n in names)
    ok = v.get("smtpd_tls_security_level") in ("may", "encrypt") and all(v.get(n) for n in names[1:])
    return ok, shown


def _no_relay_for_unknown_clients(v: Values) -> tuple[bool, str]:
    shown = v.show("smtpd_client_restrictions")
    entries = _options(v.get("smtpd_client_restrictions"))
    extra = sorted(entries - {"permit_mynetworks", "reject"})
    if extra:
        return False, f"{shown}: entries other than permit_mynetworks and reject: {', '.join(extra)}"
    if entries != {"permit_mynetworks", "reject"}:
        return False, f"{shown}: must be permit_mynetworks, reject"
    return True, shown


def _local_only(v: Values) -> tuple[bool, str]:
    shown = v.show("inet_interfaces")
    return v.get("inet_interfaces").strip() in ("loopback-only", "localhost"), shown


_BANNER_GIVEAWAYS = ("$mail_name", "${mail_name}", "$mail_version", "${mail_version}", "postfix")


_MTA_NAMES = ("mail_name", "mail_version")
# Names a banner may carry whatever their value: the host's own name says nothing of the MTA.
_HOST_NAMES = ("myhostname", "mydomain")


def _banner_plain(v: Values) -> tuple[bool, str]:
    """The banner as Postfix expands it names neither the MTA nor its version."""
    shown = v.show("smtpd_banner")
    told: list[str] = []

    def resolve(name: str) -> str:
        if name in _MTA_NAMES:
            told.append(f"${name}")
            return ""
        if name in _HOST_NAMES and v.known(name) is None:
            return "host.invalid"
        return v.resolve(name)

    try:
        text = expand(v.get("smtpd_banner"), resolve)
    except Unresolved as why:
        raise NotJudged(f"{shown}: {why}") from None
    if "postfix" in text.lower():
        told.append("postfix")
    return (not told, f"{shown}: names the MTA ({', '.join(dict.fromkeys(told))})" if told else shown)


_NO_CERTIFICATE = "the certificate is read from the host at up and refresh (or from the stack's PEM)"


def _certificate(v: Values) -> CertificateFacts:
    if v.certificate is None:
        raise NotJudged(_NO_CERTIFICATE)
    return v.certificate


def _certificate_lasts(v: Values) -> tuple[bool, str]:
    cert = _certificate(v)
    left = cert.days_left(v.now)
    shown = f"{cert.subject}, issuer {cert.issuer}: expires {cert.expiry()}"
    if left < 0:
        return False, f"{shown}: EXPIRED {-left} days ago"
    told = f"{shown} ({left} days left; at least {v.min_days} wanted)"
    return left >= v.min_days, told if left >= v.min_days else f"{told}: renew it now"


def _certificate_names_host(v: Values) -> tuple[bool, str]:
    cert = _certificate(v)
    try:
        name = expand(v.partner("myhostname"), v.resolve).strip()
    except Unresolved as why:
        raise NotJudged(f"myhostname: {why}") from None
    shown = f"myhostname = {name}; certificate names {cert.sans or cert.subject + ' (no subjectAltName)'}"
    if not cert.dns_names and not cert.ip_addresses:
        return False, f"{shown}: clients check only the subjectAltName, and this certificate has none"
    return cert.names(name), shown if cert.names(name) else f"{shown}: {name} is not among them"


# -- the rules ------------------------------------------------------------------------------

GUIDE = "RHEL security hardening guide, 8.8 Securing the Postfix service"
GUIDE_SASL = "RHEL security hardening guide, 8.8.3 Configuring Postfix to use SASL"
STIG8 = "DISA STIG for RHEL 8 V2R8"
STIG9 = "DISA STIG for RHEL 9 V2R9"
SSG = "SCAP Security Guide (ComplianceAsCode) rule"

_NO_LIMIT = "0 means no limit"
_PUBLIC_MX_LISTENS = "public MX: it must listen on its public address (the rule is for hosts that send local mail only)"
# The STIG allows documented extra entries; on an MX, smtpd_relay_restrictions is what stops open relaying.
_PUBLIC_MX_RELAY = (
    "public MX: permit_mynetworks, reject would refuse all inbound mail; smtpd_relay_restrictions bounds relaying"
)
_PACKAGES = "needs the host's package database, not main.cf"
WATCH = "secure-postfix: certificates watched"
_ALIASES = "needs /etc/aliases and postmap -q on the host, not main.cf"

RULES: tuple[Rule, ...] = (
    Rule(
        "guide-8.8-message_size_limit",
        GUIDE,
        "message_size_limit bounds the size of a message, envelope included",
        ("message_size_limit",),
        positive("message_size_limit", _NO_LIMIT),
    ),
    Rule(
        "guide-8.8-header_size_limit",
        GUIDE,
        "header_size_limit bounds the memory for a message header, at most message_size_limit",
        ("header_size_limit",),
        _header_bounded,
    ),
    Rule(
        "guide-8.8-queue_minfree",
        GUIDE,
        "queue_minfree is at least 1.5 x message_size_limit",
        ("queue_minfree",),
        _queue_minfree_bounded,
    ),
    Rule(
        "guide-8.8-default_process_limit",
        GUIDE,
        "default_process_limit bounds the child processes per service",
        ("default_process_limit",),
        positive("default_process_limit", "no process could start"),
    ),
    Rule(
        "guide-8.8-smtpd_client_connection_rate_limit",
        GUIDE,
        "smtpd_client_connection_rate_limit bounds a client's connection attempts per time unit",
        ("smtpd_client_connection_rate_limit",),
        positive("smtpd_client_connection_rate_limit", _NO_LIMIT),
    ),
    Rule(
        "guide-8.8-smtpd_client_message_rate_limit",
        GUIDE,
        "smtpd_client_message_rate_limit bounds a client's message deliveries per time unit",
        ("smtpd_client_message_rate_limit",),
        positive("smtpd_client_message_rate_limit", _NO_LIMIT),
    ),
    Rule(
        "guide-8.8-anvil_rate_time_unit",
        GUIDE,
        "anvil_rate_time_unit is a time unit above zero for the rate limits",
        ("anvil_rate_time_unit",),
        _time_positive,
    ),
    Rule(
        "guide-8.8-smtpd_client_event_limit_exceptions",
        GUIDE,
        "smtpd_client_event_limit_exceptions exempts trusted networks only, not every client",
        ("smtpd_client_event_limit_exceptions",),
        _exceptions_bounded,
    ),
    Rule(
        "guide-8.8.3-sasl_dovecot",
        GUIDE_SASL,
        "SMTP AUTH through Dovecot: smtpd_sasl_auth_enable = yes, smtpd_sasl_type = dovecot, smtpd_sasl_path set",
        ("smtpd_sasl_auth_enable", "smtpd_sasl_type", "smtpd_sasl_path"),
        _sasl_dovecot,
    ),
    Rule(
        "guide-8.8.3-smtpd_sasl_security_options",
        GUIDE_SASL,
        "smtpd_sasl_security_options = noanonymous, noplaintext (no anonymous or plaintext AUTH without TLS)",
        ("smtpd_sasl_security_options",),
        options_include("smtpd_sasl_security_options", ("noanonymous", "noplaintext")),
    ),
    Rule(
        "guide-8.8.3-smtpd_sasl_tls_security_options",
        GUIDE_SASL,
        "smtpd_sasl_tls_security_options = noanonymous (no anonymous AUTH over TLS)",
        ("smtpd_sasl_tls_security_options",),
        options_include("smtpd_sasl_tls_security_options", ("noanonymous",)),
    ),
    Rule(
        "guide-8.8-tls",
        GUIDE,
        "the SMTP server uses encryption: smtpd_tls_security_level may or encrypt, with a certificate and key",
        ("smtpd_tls_security_level", "smtpd_tls_cert_file", "smtpd_tls_key_file"),
        _tls_in_use,
    ),
    Rule(
        "tls-certificate-expiry",
        f"{WATCH} (ACME clients renew 30 days ahead; RFC 8555)",
        "the certificate Postfix serves is valid for at least the wanted days (tls.min_days_left, 21 by default)",
        ("smtpd_tls_cert_file",),
        _certificate_lasts,
    ),
    Rule(
        "tls-certificate-names-host",
        f"{WATCH} (RFC 6125 section 6: the subjectAltName names the server)",
        "the certificate Postfix serves names the host (myhostname) in its subjectAltName",
        ("smtpd_tls_cert_file",),
        _certificate_names_host,
    ),
    Rule(
        "RHEL-08-040290",
        f"{STIG8}: V-230550 (SV-230550r1017312_rule), CCI-000366; {SSG} postfix_prevent_unrestricted_relay "
        "(CCE-84054-6)",
        "RHEL 8 must be configured to prevent unrestricted mail relaying.",
        ("smtpd_client_restrictions",),
        _no_relay_for_unknown_clients,
        not_for_public_mx=_PUBLIC_MX_RELAY,
    ),
    Rule(
        "RHEL-09-252050",
        f"{STIG9}: V-257951 (SV-257951r1014843_rule), CCI-000366; {SSG} postfix_prevent_unrestricted_relay "
        "(CCE-87232-5)",
        "RHEL 9 must be configured to prevent unrestricted mail relaying.",
        ("smtpd_client_restrictions",),
        _no_relay_for_unknown_clients,
        not_for_public_mx=_PUBLIC_MX_RELAY,
    ),
    Rule(
        "CIS-RHEL8-2.1.23",
        f"CIS Benchmark for RHEL 8 v4.0.0, 2.1.23; {SSG} postfix_network_listening_disabled (CCE-82174-4)",
        "Ensure mail transfer agents are configured for local-only mode (Automated)",
        ("inet_interfaces",),
        _local_only,
        not_for_public_mx=_PUBLIC_MX_LISTENS,
    ),
    Rule(
        "CIS-RHEL9-2.1.21",
        f"CIS Benchmark for RHEL 9 v2.0.0, 2.1.21; {SSG} postfix_network_listening_disabled (CCE-90825-1)",
        "Ensure mail transfer agents are configured for local-only mode (Automated)",
        ("inet_interfaces",),
        _local_only,
        not_for_public_mx=_PUBLIC_MX_LISTENS,
    ),
    Rule(
        "CIS-Debian12-2.1.21",
        f"CIS Benchmark for Debian 12 v1.1.0, 2.1.21; {SSG} postfix_network_listening_disabled",
        "Ensure mail transfer agent is configured for local-only mode (Automated)",
        ("inet_interfaces",),
        _local_only,
        not_for_public_mx=_PUBLIC_MX_LISTENS,
    ),
    Rule(
        "postfix_server_banner",
        f"{SSG} postfix_server_banner (CCE-82379-9)",
        "Configure SMTP Greeting Banner (smtpd_banner = $myhostname ESMTP, not naming the MTA)",
        ("smtpd_banner",),
        _banner_plain,
    ),
    Rule(
        "has_nonlocal_mta",
        f"{SSG} has_nonlocal_mta (CCE-88499-9), part of CIS RHEL 9 2.1.21 and RHEL 8 2.1.23",
        "Ensure Mail Transfer Agent is not Listening on any non-loopback Address",
        not_checked="needs the host's listening sockets (ss -lntu), not main.cf",
        not_for_public_mx=_PUBLIC_MX_LISTENS,
    ),
    Rule(
        "RHEL-09-215101",
        f"{STIG9}: V-272488, CCI-000015; {SSG} package_postfix_installed",
        "RHEL 9 must have the Postfix package installed.",
        not_checked=_PACKAGES,
    ),
    Rule(
        "RHEL-08-040002",
        f"{STIG8}: V-230489, CCI-000381; {SSG} package_sendmail_removed",
        "RHEL 8 must not have the sendmail package installed.",
        not_checked=_PACKAGES,
    ),
    Rule(
        "RHEL-09-215020",
        f"{STIG9}: V-257827, CCI-000381; {SSG} package_sendmail_removed",
        "RHEL 9 must not have the sendmail package installed.",
        not_checked=_PACKAGES,
    ),
    Rule(
        "RHEL-08-030030",
        f"{STIG8}: V-230389, CCI-000139; {SSG} postfix_client_configure_mail_alias_postmaster",
        "The RHEL 8 ISSO and SA (at a minimum) must have mail aliases to be notified of an audit processing failure.",
        not_checked=_ALIASES,
    ),
    Rule(
        "RHEL-09-252060",
        f"{STIG9}: V-257953, CCI-000139; {SSG} postfix_client_configure_mail_alias_postmaster",
        "RHEL 9 must forward mail from postmaster to the root account using a postfix alias.",
        not_checked=_ALIASES,
    ),
    Rule(
        "RHEL-09-653125",
        f"{STIG9}: V-258174, CCI-000139; {SSG} postfix_client_configure_mail_alias",
        "RHEL 9 must have mail aliases to notify the ISSO and SA (at a minimum) in the event of an audit "
        "processing failure.",
        not_checked=_ALIASES,
    ),
)

RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
WATCHED: tuple[str, ...] = tuple(dict.fromkeys(d for r in RULES for d in r.directives))
# What apply and refresh read from the host for the rules: their directives, the partners they are
# judged against, and the names their defaults refer to.
HOST_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *WATCHED,
            "message_size_limit",
            *COMPUTED_DEFAULTS,
            *_MTA_NAMES,
            *references(DEFAULTS["smtpd_client_event_limit_exceptions"]),
        ]
    )
)


def judge_rule(rule: Rule, values: Values, public_mx: bool) -> Finding:
    if public_mx and rule.not_for_public_mx:
        return Finding(rule, Status.NOT_APPLICABLE, rule.not_for_public_mx)
    if rule.judge is None:
        return Finding(rule, Status.NOT_CHECKED, rule.not_checked)
    if not any(values.is_managed(d) for d in rule.directives):
        return Finding(rule, Status.NOT_MANAGED, f"{', '.join(rule.directives)}: the host's own value")
    try:
        ok, seen = rule.judge(values)
    except NotJudged as why:
        return Finding(rule, Status.NOT_CHECKED, str(why))
    return Finding(rule, Status.PASS if ok else Status.FAIL, seen)


def judge(
    main_cf: Mapping[str, str],
    public_mx: bool = True,
    pending: Iterable[str] = (),
    host: Mapping[str, str] | None = None,
    certificate: CertificateFacts | None = None,
    min_days: int = MIN_DAYS_LEFT,
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Every rule against one host's main.cf values.

    `main_cf` is the managed map (planned, or read from the host where "" means absent);
    `pending` names managed directives whose value another resource computes at apply;
    `host` the host's own values of the names in HOST_NAMES the stack does not manage, when known;
    `certificate` the leaf Postfix serves (or will serve), judged `now` against `min_days` left.
    """
    values = Values(main_cf, pending, host, certificate, min_days, now)
    return [judge_rule(rule, values, public_mx) for rule in RULES]


# -- the state form: one line per rule, what a diff shows -----------------------------------

SCOPE_KEY = "scope"
PUBLIC_MX = "public MX"
NOT_PUBLIC_MX = "not a public MX"


def cells(findings: Iterable[Finding], public_mx: bool) -> dict[str, str]:
    """rule ID -> "status: value seen", plus the scope the rules were judged for."""
    table = {SCOPE_KEY: PUBLIC_MX if public_mx else NOT_PUBLIC_MX}
    table.update({f.rule.id: f"{f.status.value}: {f.value}" for f in findings})
    return table


def from_cells(table: Mapping[str, str]) -> list[Finding]:
    """Back from the state form; rules this version does not know are skipped."""
    findings = []
    statuses = sorted(Status, key=lambda s: -len(s.value))
    # State maps come back in any order; the report follows the rule list.
    for rule in RULES:
        cell = table.get(rule.id)
        if cell is None:
            continue
        status = next((s for s in statuses if cell.startswith(f"{s.value}: ") or cell == s.value), None)
        if status is not None:
            findings.append(Finding(rule, status, cell[len(status.value) + 2 :]))
    return findings


def public_mx_of(table: Mapping[str, str] | None) -> bool:
    return (table or {}).get(SCOPE_KEY) != NOT_PUBLIC_MX


def public_mx_of_props(props: Mapping[str, object]) -> bool:
    """A PostfixConfig's scope: its `public_mx` input (absent: a public MX), or in state of earlier
    releases the scope cell of the `compliance` map they stored as an input."""
    if "public_mx" in props:
        return props["public_mx"] is not False
    table = props.get("compliance")
    return public_mx_of(table if isinstance(table, Mapping) else None)


def report(
    main_cf: Mapping[str, str],
    public_mx: bool = True,
    pending: Iterable[str] = (),
    host: Mapping[str, str] | None = None,
    certificate: CertificateFacts | None = None,
    min_days: int = MIN_DAYS_LEFT,
) -> dict[str, str]:
    """The verdicts as a map: rule ID -> "status: value seen" (`PostfixConfig.compliance`)."""
    return cells(judge(main_cf, public_mx, pending, host, certificate, min_days), public_mx)


def report_of_props(props: Mapping[str, object]) -> dict[str, str]:
    """The verdicts (rule ID -> "status: value seen") on a PostfixConfig's stored properties: main_cf, the host's
    own values (`host_values`), the certificate served or to upload, the scope and the days it must stay valid."""
    main_cf = props.get("main_cf")
    values = {str(k): str(v) for k, v in main_cf.items()} if isinstance(main_cf, Mapping) else {}
    host = props.get("host_values")
    found = {str(k): str(v) for k, v in host.items()} if isinstance(host, Mapping) and host else None
    return report(
        values,
        public_mx_of_props(props),
        host=found,
        certificate=certificate_of_props(props),
        min_days=min_days_of_props(props),
    )


def certificate_of_props(props: Mapping[str, object]) -> CertificateFacts | None:
    """The certificate a PostfixConfig's properties know of: the one read from the host (the `certificate`
    output of up and refresh), else the PEM the stack uploads."""
    record = props.get("certificate")
    if isinstance(record, Mapping):
        found = CertificateFacts.from_record(record)
        if found is not None:
            return found
    pem = props.get(UPLOADED_PEM)
    if isinstance(pem, str) and pem:
        try:
            return read_leaf(pem)
        except CertificateError:
            return None
    return None


def min_days_of_props(props: Mapping[str, object]) -> int:
    """tls.min_days_left as stored (only when not the default), else the default."""
    value = props.get(MIN_DAYS_KEY)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return MIN_DAYS_LEFT
    return int(value)


def records(table: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The exported per-host form: rule ID -> status, value, source."""
    return {f.rule.id: f.record() for f in from_cells(table)}


# -- Dovecot's side of the guide (DovecotAuthService settings) -----------------------------

DOVECOT_LISTENER = Rule(
    "guide-8.8.3-dovecot_auth_listener",
    GUIDE_SASL,
    "Dovecot's auth unix_listener for Postfix has mode 0660, user postfix, group postfix",
)


def judge_dovecot(settings: Mapping[str, object]) -> list[Finding]:
    """The guide's step 1 on a DovecotAuthService's settings (an inet listener has no file mode to judge)."""
    if (settings.get("listener") or "unix") != "unix":
        return [Finding(DOVECOT_LISTENER, Status.NOT_APPLICABLE, "an inet listener has no socket file mode")]
    seen = {
        "mode": str(settings.get("socket_mode") or "0660"),
        "user": str(settings.get("socket_user") or "postfix"),
        "group": str(settings.get("socket_group") or "postfix"),
    }
    shown = ", ".join(f"{k} = {v}" for k, v in seen.items())
    ok = seen == {"mode": "0660", "user": "postfix", "group": "postfix"}
    return [Finding(DOVECOT_LISTENER, Status.PASS if ok else Status.FAIL, shown)]
