"""MailSite: one site's resources: a PostfixConfig (and PostfixServices) per host, and the auth service they use.

Dovecot's auth service comes first when the site has SASL: Postfix's
smtpd_sasl_path is the Dovecot resource's `sasl_path` output, so the engine
orders the two hosts by that dependency.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from secure_postfix.args import (
    ConnectionInput,
    DovecotAuthServiceArgs,
    Limits,
    PostfixConfigArgs,
    PostfixServicesArgs,
    SaslWiring,
    TlsSettings,
    limits_props,
)
from secure_postfix.core import postfix_features as features
from secure_postfix.core.problem import InputError
from secure_postfix.dovecot_auth import DovecotAuthService
from secure_postfix.postfix_config import PostfixConfig
from secure_postfix.postfix_services import PostfixServices


def refuse_secret_values(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """main.cf values are plain text in state, diffs and logs: a secret Output among them is refused.

    The check happens while the value resolves, before it reaches the provider (which only ever
    sees plain values and could not tell).
    """
    return {name: _plain(value, f"{where}.{name}") for name, value in values.items()}


def _plain(value: Any, field: str) -> Any:
    if not isinstance(value, pulumi.Output):
        return value

    async def checked() -> Any:
        if await value.is_secret():
            raise InputError(
                f"{field} is a secret: main.cf values are kept in state, diffs and logs as plain text. Keep the "
                "secret in a file on the host (for example a texthash: table) and name the file here."
            )
        return await value.future(with_unknowns=True)

    # Not secret once checked; is_known runs as a task so that it is awaited even when the check raises.
    return pulumi.Output(value.resources(), checked(), asyncio.ensure_future(value.is_known()))


def postfix_resource_name(site: str, hosts: tuple[str, ...], host: str) -> str:
    """A one-host site keeps its first name, so a stack written before fleets plans no replacement."""
    return f"{site}-postfix" if len(hosts) == 1 else f"{site}-{host}-postfix"


@dataclass(frozen=True)
class MailSiteArgs:
    """One policy for the Postfix hosts of a site, and the Dovecot auth service they use."""

    postfix_hosts: Mapping[str, ConnectionInput]
    """The site's Postfix hosts by name (a Connection, ConnectionArgs or dict each); with one host its resources
    are named after the site alone."""
    limits: Limits | Mapping[str, pulumi.Input[Any]] = field(default_factory=Limits)
    """The guide's DoS limits, on every host of the site."""
    directives: Mapping[str, pulumi.Input[Any]] = field(default_factory=dict)
    """Any other main.cf parameter, on every host of the site; a secret Output is refused."""
    sasl: SaslWiring | None = None
    """SMTP AUTH; its `path` is taken from the auth service (`auth_service`, or `dovecot`) when left out."""
    auth_service: DovecotAuthService | None = None
    """A DovecotAuthService declared by the program, which any number of sites may share."""
    dovecot: DovecotAuthServiceArgs | None = None
    """An auth service the site owns itself, created as its child (NAME-dovecot)."""
    tls: TlsSettings | None = None
    """The certificate and TLS policy, on every host of the site."""
    tls_key_pem: pulumi.Input[str] | None = None
    """The private key of `tls.cert_pem`; always kept as a Pulumi secret."""
    relay_restrictions: pulumi.Input[str] | None = features.RELAY_RESTRICTIONS_DEFAULT
    """smtpd_relay_restrictions (see PostfixConfigArgs)."""
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """master.cf submission services on every host (see PostfixServicesArgs); none when empty."""


class MailSite(pulumi.ComponentResource):
    """One policy on every Postfix host of the site; each host waits for the auth service it uses.

    Hosts do not depend on each other, so the engine applies them in parallel.
    """

    postfix: PostfixConfig
    postfixes: dict[str, PostfixConfig]
    dovecot: DovecotAuthService | None

    def __init__(self, name: str, args: MailSiteArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("secure-postfix:index:MailSite", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.auth_service is not None and args.dovecot is not None:
            raise InputError(f"sites.{name}: give either auth_service or dovecot, not both")
        self.dovecot = args.auth_service
        if args.dovecot is not None:
            self.dovecot = DovecotAuthService(f"{name}-dovecot", args.dovecot, child)
        sasl = args.sasl
        if sasl is not None and sasl.path is None:
            if self.dovecot is None:
                raise InputError(f"sites.{name}.sasl: needs a path, an auth_service or a dovecot service")
            sasl = dataclasses.replace(sasl, path=self.dovecot.sasl_path)
        hosts = tuple(args.postfix_hosts)
        if not hosts:
            raise InputError(f"sites.{name}.postfix_hosts: name at least one host")
        self.postfixes = {}
        self.services: dict[str, PostfixServices] = {}
        for index, host in enumerate(hosts):
            resource = postfix_resource_name(name, hosts, host)
            aliases = [pulumi.Alias(name=f"{name}-postfix")] if index == 0 and resource != f"{name}-postfix" else []
            depends = [self.dovecot] if self.dovecot is not None else []
            config = PostfixConfigArgs(
                connection=args.postfix_hosts[host],
                limits=refuse_secret_values(limits_props(args.limits), f"sites.{name}.limits"),
                directives=refuse_secret_values(args.directives, f"sites.{name}.directives"),
                sasl=sasl,
                tls=args.tls,
                tls_key_pem=args.tls_key_pem,
                relay_restrictions=args.relay_restrictions,
            )
            options = pulumi.ResourceOptions(parent=self, depends_on=depends, aliases=aliases)
            self.postfixes[host] = PostfixConfig(resource, config, options)
            if args.services:
                # master.cf's entries come after main.cf's SASL and TLS settings, which they rely on.
                services = PostfixServicesArgs(
                    connection=args.postfix_hosts[host],
                    services=args.services,
                    tls_cert_pem=args.tls.cert_pem if args.tls is not None else None,
                    tls_host_cert_file=args.tls.host_cert_file if args.tls is not None else None,
                )
                # Like main.cf's: the first host's entries keep their resource when the site grows.
                grown = [pulumi.Alias(name=f"{name}-services")] if aliases else []
                after_main_cf = pulumi.ResourceOptions(parent=self, depends_on=[self.postfixes[host]], aliases=grown)
                self.services[host] = PostfixServices(
                    resource.removesuffix("-postfix") + "-services", services, after_main_cf
                )
        self.postfix = self.postfixes[hosts[0]]
        outputs: dict[str, Any] = {
            "postfix_host": self.postfix.host,
            "postfix_version": self.postfix.postfix_version,
            "postfix_hosts": [p.host for p in self.postfixes.values()],
        }
        if self.dovecot is not None:
            outputs["sasl_path"] = self.dovecot.sasl_path
        self.register_outputs(outputs)
