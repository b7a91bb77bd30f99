"""A secret among main.cf values is refused before it reaches a provider, and never shown."""

import asyncio

import pulumi
import pytest

from secure_postfix.core.problem import InputError
from secure_postfix.mail_site import refuse_secret_values
from secure_postfix.stack.config import ConfigError
from secure_postfix.stack.program import refuse_secrets

SECRET = "s3cret-relay-password"


def resolve(make_values):
    """Outputs need a running event loop: they are made inside it."""

    async def run():
        checked = refuse_secret_values(make_values(), "sites.one.directives")
        return {k: (await v.future()) if isinstance(v, pulumi.Output) else v for k, v in checked.items()}

    return asyncio.run(run())


def test_a_secret_output_in_directives_is_refused_naming_the_directive():
    table = f"inline:{{ [relay.example.com]:587=user:{SECRET} }}"
    with pytest.raises(InputError) as info:
        resolve(lambda: {"smtp_sasl_password_maps": pulumi.Output.secret(table), "smtpd_helo_required": "yes"})
    message = str(info.value)
    assert "sites.one.directives.smtp_sasl_password_maps is a secret" in message
    assert SECRET not in message


def test_plain_values_and_plain_outputs_pass_through():
    def values():
        return {"smtpd_helo_required": "yes", "message_size_limit": pulumi.Output.from_input("1048576")}

    assert resolve(values) == {"smtpd_helo_required": "yes", "message_size_limit": "1048576"}


@pytest.mark.parametrize("key", ["sites", "hosts"])
def test_a_secret_set_inside_sites_or_hosts_is_refused(key):
    with pytest.raises(ConfigError) as info:
        refuse_secrets(lambda k: k == f"secure-postfix:{key}")
    assert f"secure-postfix:{key} holds a secret value" in str(info.value)


def test_other_secret_keys_are_fine():
    # The SSH key and the TLS keys are secret keys of their own: that is where secrets belong.
    refuse_secrets(lambda k: k in ("secure-postfix:ssh_private_key", "secure-postfix:mx1_tls_key"))
