"""MailSite: one site's resources, composed from its stack config.

Dovecot's auth service comes first when the site has SASL: Postfix's
smtpd_sasl_path is the Dovecot resource's `sasl_path` output, so the engine
orders the two hosts by that dependency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components import reach
from components.dovecot_auth import DovecotAuthArgs, DovecotAuthService
from components.postfix_config import PostfixConfig, PostfixConfigArgs, SaslWiring, TlsSettings
from components.postfix_services import PostfixServices, PostfixServicesArgs
from components.stack_config import ConfigError, HostSpec, SaslSpec, SiteSpec


@dataclass(frozen=True)
class TlsMaterial:
    cert_pem: str
    key_pem: pulumi.Input[str]  # always a secret


def connection_for(host: HostSpec, private_key: pulumi.Input[str]) -> dict:
    return {
        "host": host.address,
        "port": host.port,
        "user": host.user,
        "host_key": host.host_key,
        "private_key": private_key,
        "insecure_ignore_host_key": host.insecure_ignore_host_key,
        "use_sudo": host.use_sudo,
        **reach.host_fields(host),
    }


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
            raise ConfigError(
                f"{field} is a secret: main.cf values are kept in state, diffs and logs as plain text. Keep the "
                "secret in a file on the host (for example a texthash: table) and name the file here."
            )
        return await value.future(with_unknowns=True)

    # Not secret once checked; is_known runs as a task so that it is awaited even when the check raises.
    return pulumi.Output(value.resources(), checked(), asyncio.ensure_future(value.is_known()))


def dovecot_for(
    resource_name: str, spec: SaslSpec, host: HostSpec, private_key: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> DovecotAuthService:
    """The one DovecotAuthService of a Dovecot host: a site's own (older form) or one under auth_services."""
    args = DovecotAuthArgs(
        connection=connection_for(host, private_key),
        listener=spec.listener,
        listen_port=spec.listen_port if spec.listener == "inet" else None,
        bind_address=spec.bind_address if spec.listener == "inet" else None,
        allow_all_interfaces=spec.allow_all_interfaces,
        auth_mechanisms=spec.auth_mechanisms,
    )
    return DovecotAuthService(resource_name, args, opts)


def postfix_resource_name(site: str, hosts: tuple[str, ...], host: str) -> str:
    """A one-host site keeps its first name, so a stack written before fleets plans no replacement."""
    return f"{site}-postfix" if len(hosts) == 1 else f"{site}-{host}-postfix"


class MailSite(pulumi.ComponentResource):
    """One policy on every Postfix host of the site; each host waits for the auth service it uses.

    Hosts do not depend on each other, so the engine applies them in parallel.
    """

    postfix: PostfixConfig
    postfixes: dict[str, PostfixConfig]
    dovecot: DovecotAuthService | None

    def __init__(
        self,
        name: str,
        site: SiteSpec,
        hosts: dict[str, HostSpec],
        private_key: pulumi.Input[str],
        tls: TlsMaterial | None = None,
        opts: pulumi.ResourceOptions | None = None,
        auth_service: DovecotAuthService | None = None,
    ):
        super().__init__("secure-postfix:index:MailSite", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if site.auth_service is not None and auth_service is None:
            raise ConfigError(
                f"sites.{name}.auth_service is {site.auth_service!r} but no DovecotAuthService was given for it"
            )
        # The older form: the site owns its Dovecot host's auth service itself.
        self.dovecot = auth_service
        if site.sasl is not None and site.dovecot_host is not None and auth_service is None:
            self.dovecot = dovecot_for(f"{name}-dovecot", site.sasl, hosts[site.dovecot_host], private_key, child)
        sasl = None
        if site.sasl is not None and self.dovecot is not None:
            sasl = SaslWiring(
                path=self.dovecot.sasl_path,
                security_options=site.sasl.security_options,
                tls_security_options=site.sasl.tls_security_options,
                offer_auth=site.sasl.offer_auth,
            )
        tls_settings = None
        if site.tls is not None and tls is not None:
            tls_settings = TlsSettings(
                cert_pem=tls.cert_pem,
                security_level=site.tls.security_level,
                protocols=site.tls.protocols,
                public_mx=site.public_mx,
            )
        self.postfixes = {}
        self.services: dict[str, PostfixServices] = {}
        for index, host in enumerate(site.postfix_hosts):
            resource = postfix_resource_name(name, site.postfix_hosts, host)
            aliases = [pulumi.Alias(name=f"{name}-postfix")] if index == 0 and resource != f"{name}-postfix" else []
            depends = [self.dovecot] if self.dovecot is not None else []
            args = PostfixConfigArgs(
                connection=connection_for(hosts[host], private_key),
                limits=refuse_secret_values(site.limits, f"sites.{name}.limits"),
                directives=refuse_secret_values(site.directives, f"sites.{name}.directives"),
                sasl=sasl,
                tls=tls_settings,
                tls_key_pem=tls.key_pem if tls is not None else None,
                relay_restrictions=site.relay_restrictions,
            )
            options = pulumi.ResourceOptions(parent=self, depends_on=depends, aliases=aliases)
            self.postfixes[host] = PostfixConfig(resource, args, options)
            if site.services:
                # master.cf's entries come after main.cf's SASL and TLS settings, which they rely on.
                services = PostfixServicesArgs(
                    connection=connection_for(hosts[host], private_key),
                    services=site.services,
                    tls_cert_pem=tls.cert_pem if tls is not None else None,
                )
                after_main_cf = pulumi.ResourceOptions(parent=self, depends_on=[self.postfixes[host]])
                self.services[host] = PostfixServices(
                    resource.removesuffix("-postfix") + "-services", services, after_main_cf
                )
        self.postfix = self.postfixes[site.postfix_hosts[0]]
        outputs: dict[str, Any] = {
            "postfix_host": hosts[site.postfix_host].address,
            "postfix_version": self.postfix.postfix_version,
            "postfix_hosts": [hosts[h].address for h in site.postfix_hosts],
        }
        if self.dovecot is not None:
            outputs["sasl_path"] = self.dovecot.sasl_path
        self.register_outputs(outputs)
