"""The program body, shared by `__main__.py` and the inline runner in stackctl."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pulumi
from pulumi.runtime import is_config_secret

from secure_postfix.args import DovecotAuthServiceArgs, SaslWiring, TlsSettings
from secure_postfix.connection import Connection
from secure_postfix.core import compliance, compliance_render
from secure_postfix.core.problem import InputError
from secure_postfix.dovecot_auth import DovecotAuthService
from secure_postfix.mail_site import MailSite, MailSiteArgs
from secure_postfix.postfix_config import PostfixConfig
from secure_postfix.stack.config import (
    NAMESPACE,
    AccessSpec,
    ConfigError,
    HostSpec,
    SaslSpec,
    SiteSpec,
    parse_access,
    parse_stack,
    read_inventory,
    with_access,
)

# Keys whose values reach main.cf, Dovecot's file and the resources' state as plain text.
PLAIN_KEYS = ("hosts", "sites", "auth_services", "bastions")


# Set by the pull-request workflow, whose stack configs come from a branch nobody has reviewed yet.
UNTRUSTED_CONFIG = "SECURE_POSTFIX_UNTRUSTED_CONFIG"


def untrusted_config() -> bool:
    return os.environ.get(UNTRUSTED_CONFIG, "").lower() in ("1", "true", "yes")


def _project_path(value: str, field: str) -> Path:
    """Relative paths in stack config are relative to the project directory.

    With an untrusted config a file must lie inside the project folder (symlinks resolved): a path such
    as /proc/self/environ would otherwise put the runner's environment into a certificate input.
    """
    # Inline programs have no root directory of their own: they run where stackctl runs.
    root = Path(pulumi.get_root_directory() or Path.cwd())
    path = Path(value).expanduser()
    path = path if path.is_absolute() else root / path
    if untrusted_config() and not path.resolve().is_relative_to(root.resolve()):
        raise ConfigError(
            f"{NAMESPACE}:{field}: {value} is outside the project folder, refused for a pull request's config"
        )
    return path


def _key_at_apply() -> pulumi.Output[str]:
    """No key at preview: a preview opens no SSH connection. Every resource keeps the key its state holds.

    The value is unknown (as one another resource computes), and `private_key` is ignored as a change, so
    a plan made without the key shows no line for it.
    """

    def keep_key(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not isinstance(args.resource, pulumi.dynamic.Resource):
            return None
        keep = pulumi.ResourceOptions(ignore_changes=["private_key"])
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(args.opts, keep))

    pulumi.runtime.register_stack_transformation(keep_key)
    return pulumi.Output.secret("").apply(lambda _: pulumi.output.UNKNOWN)


_KEY_ONLY = AccessSpec()


def _private_key(config: pulumi.Config, access: AccessSpec = _KEY_ONLY) -> pulumi.Output[str] | None:
    if "private_key" not in access.methods:
        return None  # `ssh_auth: agent`: no key from stack config reaches a resource
    secret = config.get_secret("ssh_private_key")
    if secret is not None:
        return secret
    path = config.get("ssh_private_key_file")
    if pulumi.runtime.is_dry_run() and (path is None or untrusted_config()):
        return _key_at_apply()
    if path is None:
        raise ConfigError(
            f"set {NAMESPACE}:ssh_private_key (pulumi config set --secret) or {NAMESPACE}:ssh_private_key_file"
            + (f", or drop private_key from {NAMESPACE}:ssh_auth" if access.methods != ("private_key",) else "")
        )
    return pulumi.Output.secret(_project_path(path, "ssh_private_key_file").read_text())


def _text_or_list(value: str | None) -> object:
    """`ssh_auth: agent` arrives as text, `ssh_auth: [agent, private_key]` as its JSON."""
    if value is not None and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"{NAMESPACE}:ssh_auth is not a valid list: {value!r}") from None
    return value


def refuse_secrets(secret: Callable[[str], bool] = is_config_secret) -> None:
    """A secret set inside hosts or sites (`pulumi config set --secret --path`) would be kept in plaintext.

    Pulumi marks the whole key secret and the program cannot tell which value was meant, so
    the key is refused as a whole, without ever showing a value.
    """
    for key in PLAIN_KEYS:
        if secret(f"{NAMESPACE}:{key}"):
            raise ConfigError(
                f"{NAMESPACE}:{key} holds a secret value (set with `pulumi config set --secret --path`). Values "
                f"under {key}, directives included, are written to the hosts' config files and kept in state, "
                "diffs and logs as plain text, so a secret is refused there. Keep it in a file on the host (for "
                "example a texthash: table for smtp_sasl_password_maps) and name the file in the directive; a TLS "
                "key goes in tls.key_secret."
            )


def main() -> None:
    """The stack config's program. A refused config is reported as Pulumi reports its own errors: one `error:`
    line per problem, no traceback, and a failed run."""
    try:
        _main()
    except InputError as exc:
        for problem in exc.problems:
            pulumi.log.error(problem)
        count = len(exc.problems)
        raise pulumi.RunError(
            f"{NAMESPACE}: the stack config has {count} problem{'s' if count > 1 else ''} (above); no host was changed"
        ) from None


def _main() -> None:
    config = pulumi.Config(NAMESPACE)
    refuse_secrets()
    hosts_raw = dict(config.get_object("hosts") or {})
    inventory = config.get("inventory_file")
    if inventory:
        hosts_raw = {**read_inventory(_project_path(inventory, "inventory_file")), **hosts_raw}
    spec = parse_stack(
        hosts_raw,
        config.get_object("sites") or {},
        config.get_object("auth_services") or {},
        bastions_raw=config.get_object("bastions") or {},
    )
    access = parse_access(_text_or_list(config.get("ssh_auth")), config.get("ssh_agent_socket"))
    spec = with_access(spec, access)
    private_key = _private_key(config, access)
    # One resource per auth service, however many sites and hosts use it: it alone owns the Dovecot file.
    services = {
        name: DovecotAuthService(f"{name}-dovecot", dovecot_args(svc.sasl, spec.hosts[svc.dovecot_host], private_key))
        for name, svc in spec.auth_services.items()
    }
    for name, service in services.items():
        pulumi.export(f"auth_{name}_sasl_path", service.sasl_path)
    for name, site in spec.sites.items():
        service = services.get(site.auth_service) if site.auth_service else None
        exported = MailSite(name, site_args(site, spec.hosts, private_key, _tls_key(config, site), service))
        versions = {host: p.postfix_version for host, p in exported.postfixes.items()}
        one = len(versions) == 1
        pulumi.export(f"{name}_postfix_version", exported.postfix.postfix_version if one else versions)
        for host, postfix in exported.postfixes.items():
            _report_compliance(host, postfix, site.public_mx)
        if exported.dovecot is not None and service is None:
            pulumi.export(f"{name}_sasl_path", exported.dovecot.sasl_path)


def _report_compliance(host: str, postfix: PostfixConfig, public_mx: bool) -> None:
    """A short table in the preview and up output, judged on the planned main.cf values (at up, with
    the host's own values of what the stack leaves alone).

    Not a stack output: its lines would restate every changed directive in the diff a reviewer reads.
    With a value another resource computes at apply, the table comes with `up` only.
    """

    def log(values: dict | None, found_on_host: dict | None) -> None:
        judged = compliance.judge({k: str(v) for k, v in (values or {}).items()}, public_mx, host=found_on_host or None)
        pulumi.log.info(compliance_render.cli_table(host, judged))

    # At preview the host's values are not read (no SSH), and an output `up` alone computes stays unknown.
    # Nested applies, not Output.all: that would lift each value of both dicts into an Output of its own (about
    # sixty per host), and the SDK waits on every Output the program made before it ends.
    if pulumi.runtime.is_dry_run():
        postfix.main_cf.apply(lambda values: log(values, None))
    else:
        postfix.main_cf.apply(lambda values: postfix.host_values.apply(lambda found: log(values, found)))


def connection_of(host: HostSpec, private_key: pulumi.Input[str] | None) -> Connection:
    """How the stack's host is reached: its address, pinned key and login methods, and its bastion."""
    jump = host.bastion
    proxy = None
    if jump is not None:
        proxy = Connection(
            host=jump.address,
            port=jump.port,
            user=jump.user,
            host_key=jump.host_key,
            name=jump.name,
            insecure_ignore_host_key=jump.insecure_ignore_host_key,
        )
    return Connection(
        host=host.address,
        port=host.port,
        user=host.user,
        host_key=host.host_key,
        private_key=private_key,
        agent_socket_path=host.access.agent_socket,
        proxy=proxy,
        name=host.name,
        ssh_auth=host.access.methods,
        insecure_ignore_host_key=host.insecure_ignore_host_key,
        use_sudo=host.use_sudo,
    )


def dovecot_args(spec: SaslSpec, host: HostSpec, private_key: pulumi.Input[str] | None) -> DovecotAuthServiceArgs:
    """The one DovecotAuthService of a Dovecot host: a site's own (older form) or one under auth_services."""
    inet = spec.listener == "inet"
    return DovecotAuthServiceArgs(
        connection=connection_of(host, private_key),
        listener=spec.listener,
        listen_port=spec.listen_port if inet else None,
        bind_address=spec.bind_address if inet else None,
        allow_all_interfaces=spec.allow_all_interfaces,
        auth_mechanisms=spec.auth_mechanisms,
    )


def site_args(
    site: SiteSpec,
    hosts: dict[str, HostSpec],
    private_key: pulumi.Input[str] | None,
    tls: tuple[str, pulumi.Input[str]] | None,
    auth_service: DovecotAuthService | None,
) -> MailSiteArgs:
    """A site of the stack config in the library's own terms."""
    if site.auth_service is not None and auth_service is None:
        raise ConfigError(
            f"sites.{site.name}.auth_service is {site.auth_service!r} but no DovecotAuthService was given for it"
        )
    # The older form: the site owns its Dovecot host's auth service itself.
    dovecot = None
    if site.sasl is not None and site.dovecot_host is not None and auth_service is None:
        dovecot = dovecot_args(site.sasl, hosts[site.dovecot_host], private_key)
    sasl = None
    if site.sasl is not None and (dovecot is not None or auth_service is not None):
        sasl = SaslWiring(
            security_options=site.sasl.security_options,
            tls_security_options=site.sasl.tls_security_options,
            offer_auth=site.sasl.offer_auth,
        )
    tls_settings = None
    if site.tls is not None and (site.tls.host_cert_file is not None or tls is not None):
        # The policy's levels go with either source of the certificate (on the host, or uploaded).
        common = dict(
            security_level=site.tls.security_level,
            protocols=site.tls.protocols,
            public_mx=site.public_mx,
            policy=site.tls.policy,
            mta_policy=site.tls.mta_policy,
            outbound_security_level=site.tls.outbound_security_level,
            destinations=dict(site.tls.destinations),
            min_days_left=site.tls.min_days_left,
        )
        if site.tls.host_cert_file is not None:
            tls_settings = TlsSettings(
                host_cert_file=site.tls.host_cert_file,
                host_key_file=site.tls.host_key_file,
                renewal_hook=site.tls.renewal_hook,
                **common,
            )
        else:
            tls_settings = TlsSettings(cert_pem=tls[0], **common)
    return MailSiteArgs(
        postfix_hosts={h: connection_of(hosts[h], private_key) for h in site.postfix_hosts},
        limits=site.limits,
        directives=site.directives,
        sasl=sasl,
        auth_service=auth_service,
        dovecot=dovecot,
        tls=tls_settings,
        tls_key_pem=tls[1] if tls is not None else None,
        relay_restrictions=site.relay_restrictions,
        services=site.services,
    )


def _tls_key(config: pulumi.Config, site: SiteSpec) -> tuple[str, pulumi.Input[str]] | None:
    """The site's certificate and its key (a secret)."""
    tls = site.tls
    if tls is None or tls.host_cert_file is not None:
        return None
    where = f"{NAMESPACE}:sites.{site.name}.tls"
    cert = tls.cert_pem if tls.cert_pem is not None else _read(tls.cert_file, f"{where}.cert_file")
    if tls.key_secret is not None:
        key = config.require_secret(tls.key_secret)
    else:
        key = pulumi.Output.secret(_read(tls.key_file, f"{where}.key_file"))
    return cert, key


def _read(path: str | None, field: str) -> str:
    try:
        return _project_path(str(path), field.removeprefix(f"{NAMESPACE}:")).read_text()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from None
