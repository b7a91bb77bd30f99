"""secure-postfix: harden Postfix mail servers from a Pulumi program, the way the RHEL security guide asks.

Encryption (TLS), SMTP AUTH through Dovecot SASL, and limits against denial-of-service floods, each applied
over SSH by a resource whose every change is checked on a staged copy, swapped in atomically, reloaded,
probed as a mail client would, and put back on any failure:

    import secure_postfix as sp

    sp.PostfixConfig("mx1", sp.PostfixConfigArgs(
        connection=sp.Connection(host="192.0.2.25", host_key="ssh-ed25519 AAAA…", private_key=key),
        limits=sp.Limits(message_size_limit=20480000, smtpd_client_connection_rate_limit=30),
    ))

The pure core (`secure_postfix.core`: parse, validate, render, judge) imports no Pulumi.
"""

from secure_postfix.args import (
    DovecotAuthServiceArgs,
    Limits,
    PostfixConfigArgs,
    PostfixServicesArgs,
    SaslWiring,
    TlsSettings,
)
from secure_postfix.connection import Connection
from secure_postfix.core.problem import InputError
from secure_postfix.dovecot_auth import DovecotAuthService
from secure_postfix.mail_site import MailSite, MailSiteArgs
from secure_postfix.postfix_config import PostfixConfig
from secure_postfix.postfix_services import PostfixServices
from secure_postfix.provider import ApplyError

__version__ = "0.10.0"

__all__ = [
    "ApplyError",
    "Connection",
    "DovecotAuthService",
    "DovecotAuthServiceArgs",
    "InputError",
    "Limits",
    "MailSite",
    "MailSiteArgs",
    "PostfixConfig",
    "PostfixConfigArgs",
    "PostfixServices",
    "PostfixServicesArgs",
    "SaslWiring",
    "TlsSettings",
]
