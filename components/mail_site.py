"""MailSite: one site's resources, composed from its stack config."""

from __future__ import annotations

import pulumi

from components.postfix_config import PostfixConfig
from components.stack_config import HostSpec, SiteSpec


def connection_for(host: HostSpec, private_key: pulumi.Input[str]) -> dict:
    return {
        "host": host.address,
        "port": host.port,
        "user": host.user,
        "host_key": host.host_key,
        "private_key": private_key,
        "insecure_ignore_host_key": host.insecure_ignore_host_key,
        "use_sudo": host.use_sudo,
    }


class MailSite(pulumi.ComponentResource):
    postfix: PostfixConfig

    def __init__(
        self,
        name: str,
        site: SiteSpec,
        hosts: dict[str, HostSpec],
        private_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("secure-postfix:index:MailSite", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.postfix = PostfixConfig(
            f"{name}-postfix",
            connection=connection_for(hosts[site.postfix_host], private_key),
            limits=site.limits,
            directives=site.directives,
            opts=child,
        )
        self.register_outputs({"postfix_version": self.postfix.postfix_version})
