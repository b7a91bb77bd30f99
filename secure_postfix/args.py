"""What a program hands each resource: typed fields, each with its default and its own doc.

A default is the one constant the rules use (core/postfix_features.py, core/dovecot_conf.py), so the value a
field shows here is the value the host gets. `None` means "leave the host's own value", except where a field's
doc says otherwise. Providers rebuild these from the engine's properties with `from_props`, the one place where
a property left out takes its default.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pulumi

from secure_postfix import connection as conn
from secure_postfix.core import dovecot_conf as dc
from secure_postfix.core import postfix_features as features
from secure_postfix.core.certificates import MIN_DAYS_LEFT
from secure_postfix.core.renewal_hook import DEFAULT_HOOK

# A Connection, pulumi_command's ConnectionArgs, or a dict with the same field names.
ConnectionInput = conn.Connection | Mapping[str, Any] | Any

T = TypeVar("T")


def _from_props(cls: type[T], raw: Mapping[str, Any] | None) -> T:
    """`cls` from stored properties: a property left out (null or empty) takes the field's own default."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in (raw or {}).items() if k in names and v is not None and v != ""})


def _shallow(settings: Any) -> dict[str, Any]:
    """The fields as a dict, values as they are (asdict would copy an unknown value, which must stay itself)."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


@dataclass(frozen=True)
class Limits:
    """The guide's limits against denial-of-service floods (RHEL security guide, "Reducing Postfix network-related
    DoS attacks"). A limit left as None keeps the host's own value; Postfix's default is given in each doc."""

    smtpd_client_connection_rate_limit: pulumi.Input[int] | None = None
    """Connection attempts any one client may make per `anvil_rate_time_unit` (Postfix: 0, no limit). Clients in
    `smtpd_client_event_limit_exceptions` are exempt."""
    anvil_rate_time_unit: pulumi.Input[str] | None = None
    """The time unit of the rate limits, such as "60s" (Postfix: 60s)."""
    smtpd_client_event_limit_exceptions: pulumi.Input[str] | None = None
    """Clients exempt from the connection and rate limits (Postfix: $mynetworks, the trusted networks)."""
    smtpd_client_message_rate_limit: pulumi.Input[int] | None = None
    """Message delivery requests any one client may make per time unit, accepted or not (Postfix: 0, no limit)."""
    default_process_limit: pulumi.Input[int] | None = None
    """The most child processes that provide one service, unless master.cf says otherwise (Postfix: 100)."""
    queue_minfree: pulumi.Input[int] | None = None
    """Free bytes the queue file system needs before any mail is accepted; at least 1.5 times
    `message_size_limit` (Postfix: 0, which means 1.5 times `message_size_limit`)."""
    header_size_limit: pulumi.Input[int] | None = None
    """Bytes of memory for one message header; the excess is discarded (Postfix: 102400)."""
    message_size_limit: pulumi.Input[int] | None = None
    """The largest message, envelope included, in bytes (Postfix: 10240000)."""

    def directives(self) -> dict[str, Any]:
        """The limits that are set, as main.cf names and values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


def limits_props(limits: Limits | Mapping[str, Any] | None) -> dict[str, Any]:
    """Limits as the `limits` property. A mapping is taken as it is: check names a key that is not one of the
    guide's limits, at preview, with the host."""
    if limits is None:
        return {}
    return limits.directives() if isinstance(limits, Limits) else dict(limits)


@dataclass(frozen=True)
class SaslWiring:
    """SMTP AUTH through Dovecot (the guide's section 8.8.3 step 2): where Postfix finds the auth service and what
    it offers."""

    path: pulumi.Input[str] | None = None
    """Where Postfix finds Dovecot's auth service: a DovecotAuthService's `sasl_path` output ("private/auth" or
    "inet:ADDRESS:PORT"). Required; a MailSite fills it in from its auth service."""
    security_options: pulumi.Input[str] = features.SASL_DEFAULTS["security_options"]
    """smtpd_sasl_security_options: mechanisms refused without TLS; must include noanonymous."""
    tls_security_options: pulumi.Input[str] = features.SASL_DEFAULTS["tls_security_options"]
    """smtpd_sasl_tls_security_options: mechanisms refused once TLS is on."""
    offer_auth: str = features.OFFER_AUTH[0]
    """Where AUTH is offered: "everywhere" (port 25 too) or "submission" (only the submission services)."""

    def props(self) -> dict[str, Any]:
        return _shallow(self)

    @classmethod
    def from_props(cls, raw: Mapping[str, Any] | None) -> SaslWiring:
        return _from_props(cls, raw)


@dataclass(frozen=True)
class TlsSettings:
    """The certificate Postfix serves and its TLS policy; the key travels apart, as a secret
    (`PostfixConfigArgs.tls_key_pem`)."""

    cert_pem: pulumi.Input[str] | None = None
    """The PEM certificate chain to serve, leaf first, uploaded from the controller with `tls_key_pem`. Give this
    or `host_cert_file`."""
    security_level: str = features.TLS_DEFAULTS["security_level"]
    """smtpd_tls_security_level: "may" (STARTTLS offered) or "encrypt" (required; refused on a public MX)."""
    protocols: str = features.TLS_DEFAULTS["protocols"]
    """smtpd_tls_protocols and smtpd_tls_mandatory_protocols: TLS 1.2 or newer only."""
    public_mx: bool = features.TLS_DEFAULTS["public_mx"]
    """Whether other mail servers deliver to this host (an MX): then TLS may not be required of them."""
    policy: str = features.TLS_DEFAULTS["policy"]
    """The TLS level where passwords travel, wherever TLS is required (the submission services 587 and 465, and
    port 25 at `encrypt`): "intermediate" (Mozilla's intermediate profile: TLS 1.2+, ECDHE with AES-GCM or
    ChaCha20-Poly1305 only; no anonymous, CBC or static-RSA suites) or "modern" (TLS 1.3 only)."""
    mta_policy: str = features.TLS_DEFAULTS["mta_policy"]
    """The TLS level between mail servers, where TLS is optional (port 25 at `may`, and mail this host sends):
    "opportunistic" (TLS 1.2+, every suite that encrypts soundly: only anonymous, NULL, export, DES, 3DES, RC4
    and MD5 suites refused, since a peer that cannot agree sends in plaintext) or "intermediate"."""
    outbound_security_level: str = features.TLS_DEFAULTS["outbound_security_level"]
    """smtp_tls_security_level, for mail this host sends: "may" (TLS when the server offers it) or "encrypt"
    (never without TLS: only for a host that relays to known servers)."""
    destinations: Mapping[str, Any] = field(default_factory=dict)
    """Destinations that must get TLS, by domain (`.domain` for its subdomains, `[host]:port` for a next hop):
    a level ("encrypt", "verify", "secure") or {level, match}; written to smtp_tls_policy_maps (texthash:)."""
    host_cert_file: str | None = None
    """A PEM certificate chain that already lives on the host, leaf first (an ACME client's, such as
    /etc/letsencrypt/live/NAME/fullchain.pem), instead of `cert_pem`; needs `host_key_file`. Nothing is uploaded:
    `up` builds Postfix's pair file from it on the host and installs `renewal_hook`, which does the same after each
    renewal."""
    host_key_file: str | None = None
    """The private key of `host_cert_file`, on the host (privkey.pem); it never leaves the host."""
    renewal_hook: str = DEFAULT_HOOK
    """Where `up` installs the renewal hook with `host_cert_file`: a path certbot runs
    (/etc/letsencrypt/renewal-hooks/deploy/secure-postfix), or one to give lego's --renew-hook or a systemd .path
    unit."""
    min_days_left: int = MIN_DAYS_LEFT
    """The compliance rule tls-certificate-expiry fails when the served certificate expires within this many
    days."""

    def props(self) -> dict[str, Any]:
        return _shallow(self)

    @classmethod
    def from_props(cls, raw: Mapping[str, Any] | None) -> TlsSettings:
        return _from_props(cls, raw)


@dataclass(frozen=True)
class PostfixConfigArgs:
    """The arguments of a PostfixConfig: main.cf directives on one host."""

    connection: ConnectionInput
    """How to reach the host: a Connection, pulumi_command's ConnectionArgs (a bastion as its `proxy`), or a dict
    of the same fields."""
    limits: Limits | Mapping[str, pulumi.Input[Any]] = field(default_factory=Limits)
    """The guide's eight DoS limits (`Limits`, or a dict of the same names)."""
    directives: Mapping[str, pulumi.Input[Any]] = field(default_factory=dict)
    """Any other main.cf parameter, by name; values are checked against Postfix's own types at preview."""
    sasl: SaslWiring | None = None
    """SMTP AUTH through Dovecot; None leaves SASL as the host has it."""
    tls: TlsSettings | None = None
    """The certificate and TLS policy; None leaves TLS as the host has it. Needed with `sasl`."""
    tls_key_pem: pulumi.Input[str] | None = None
    """The private key of `tls.cert_pem` (PEM); always kept as a Pulumi secret."""
    relay_restrictions: pulumi.Input[str] | None = features.RELAY_RESTRICTIONS_DEFAULT
    """smtpd_relay_restrictions: who may relay; everyone else is refused for good. None leaves the host's own."""

    def props(self) -> dict[str, Any]:
        return {
            **conn.connection_props(self.connection),
            "limits": limits_props(self.limits),
            "directives": dict(self.directives),
            "sasl": self.sasl.props() if self.sasl is not None else None,
            "tls": self.tls.props() if self.tls is not None else None,
            "tls_key_pem": pulumi.Output.secret(self.tls_key_pem) if self.tls_key_pem is not None else None,
            "relay_restrictions": self.relay_restrictions,
        }


@dataclass(frozen=True)
class DovecotAuthServiceArgs:
    """The arguments of a DovecotAuthService: the auth listener Postfix's SASL uses (guide section 8.8.3 step 1)."""

    connection: ConnectionInput
    """How to reach the Dovecot host (see PostfixConfigArgs.connection)."""
    listener: str = dc.Listener.kind
    """"unix" (Postfix on the same host, through a socket in its queue) or "inet" (Postfix on other hosts)."""
    socket_path: str | None = None
    """The UNIX socket; None: `postfix_queue_directory`/private/auth (dc.DEFAULT_SOCKET)."""
    listen_port: int | None = None
    """The TCP port of an inet listener; None: 12345 (dc.DEFAULT_PORT)."""
    bind_address: str | None = None
    """The address an inet listener binds; None: the address the host is reached by, never all interfaces."""
    allow_all_interfaces: bool = False
    """Let an inet listener bind 0.0.0.0 or ::, which exposes the auth service to every network."""
    auth_mechanisms: str = dc.DEFAULT_MECHANISMS
    """Dovecot's auth_mechanisms; with the guide's noplaintext they are offered only after STARTTLS."""
    postfix_queue_directory: str | None = None
    """Postfix's queue directory on this host, where a unix socket goes; None: /var/spool/postfix."""

    def props(self) -> dict[str, Any]:
        return {
            **conn.connection_props(self.connection),
            "listener": self.listener,
            "socket_path": self.socket_path,
            "listen_port": self.listen_port,
            "bind_address": self.bind_address,
            "allow_all_interfaces": self.allow_all_interfaces,
            "auth_mechanisms": self.auth_mechanisms,
            "postfix_queue_directory": self.postfix_queue_directory,
        }


@dataclass(frozen=True)
class PostfixServicesArgs:
    """The arguments of a PostfixServices: the submission services of master.cf on one host."""

    connection: ConnectionInput
    """How to reach the host (see PostfixConfigArgs.connection)."""
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Entries by label ("submission", "submissions"): `type`, `listen` (port or address:port) and `options`
    (the -o overrides); a submission service gets the guide's TLS and AUTH overrides by default."""
    tls_cert_pem: pulumi.Input[str] | None = None
    """The certificate main.cf's tls block uploads (or give `tls_host_cert_file`): the services need TLS. The probe
    after a change expects the certificate Postfix serves, read from the host."""
    tls_host_cert_file: str | None = None
    """The certificate main.cf's tls block takes from the host (`TlsSettings.host_cert_file`), instead of
    `tls_cert_pem`."""

    def props(self) -> dict[str, Any]:
        return {
            **conn.connection_props(self.connection),
            "services": {k: dict(v or {}) for k, v in self.services.items()},
            "tls_cert_pem": self.tls_cert_pem,
            "tls_host_cert_file": self.tls_host_cert_file,
        }


def docs_of(cls: type) -> dict[str, str]:
    """Each field's doc (the string below it), for the reference pages and the check that none is missing."""

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    found = {}
    for node, after in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            found[node.target.id] = " ".join(str(after.value.value).split())  # type: ignore[union-attr]
    return found


PUBLIC_ARGS: Sequence[type] = (
    conn.Connection,
    Limits,
    SaslWiring,
    TlsSettings,
    PostfixConfigArgs,
    DovecotAuthServiceArgs,
    PostfixServicesArgs,
)
