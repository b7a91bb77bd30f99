"""Harden one mail host behind a bastion: Dovecot's auth service, then Postfix's limits, SASL and TLS.

    pulumi config set host 10.0.0.25                 # the mail host, as the bastion reaches it
    pulumi config set host_key "ssh-ed25519 AAAA…"   # ssh-keyscan -t ed25519 10.0.0.25 (without the name)
    pulumi config set bastion 192.0.2.9
    pulumi config set bastion_host_key "ssh-ed25519 AAAA…"
    pulumi config set --secret ssh_private_key < ~/.ssh/id_ed25519
    pulumi config set tls_cert_pem < mail.crt
    pulumi config set --secret tls_key_pem < mail.key
"""

import pulumi
from pulumi_command.remote import ConnectionArgs, ProxyConnectionArgs

import secure_postfix as sp

config = pulumi.Config()
bastion = ProxyConnectionArgs(host=config.require("bastion"), host_key=config.require("bastion_host_key"))
mail_host = ConnectionArgs(
    host=config.require("host"),
    host_key=config.require("host_key"),
    private_key=config.require_secret("ssh_private_key"),
    proxy=bastion,
)

# Postfix on the same host reaches Dovecot through a socket in its queue directory.
auth = sp.DovecotAuthService("auth", sp.DovecotAuthServiceArgs(connection=mail_host))

postfix = sp.PostfixConfig(
    "postfix",
    sp.PostfixConfigArgs(
        connection=mail_host,
        limits=sp.Limits(
            message_size_limit=20480000,
            smtpd_client_connection_rate_limit=30,
            smtpd_client_message_rate_limit=60,
            anvil_rate_time_unit="60s",
        ),
        sasl=sp.SaslWiring(path=auth.sasl_path),
        tls=sp.TlsSettings(cert_pem=config.require("tls_cert_pem")),
        tls_key_pem=config.require_secret("tls_key_pem"),
    ),
)

pulumi.export("postfix_version", postfix.postfix_version)
pulumi.export("sasl_path", auth.sasl_path)
