"""PostfixConfig's verdicts: judged on the stored main.cf values, never an input that diffs, never in state."""

from __future__ import annotations

import pulumi
import pytest

from secure_postfix import postfix_config as pc
from secure_postfix.args import PostfixConfigArgs, TlsSettings
from secure_postfix.core import compliance as c
from tests.unit.test_provider_checks import CONNECTION, make_pair, postfix_props


@pytest.fixture(scope="module")
def pair():
    return make_pair()


def verdicts(props):
    """The verdicts on what an apply stores for the inputs check makes of `props` (no host values read)."""
    return c.report_of_props(pc.checked_inputs(props))


def test_the_verdicts_are_neither_an_input_nor_stored(pair):
    inputs = pc.checked_inputs(postfix_props(pair))
    assert "compliance" not in inputs and "public_mx" not in inputs
    assert "compliance" not in pc.COMPUTED_OUTPUTS
    # An earlier release's stored verdicts never come back as an input, and never hide a moved provider.
    assert "compliance" in pc.PostfixConfigProvider.computed


def test_apply_and_refresh_judge_the_main_cf_values(pair):
    table = verdicts(postfix_props(pair))
    assert table[c.SCOPE_KEY] == c.PUBLIC_MX
    assert table["guide-8.8-queue_minfree"].startswith("pass: queue_minfree = 15360000")
    assert table["guide-8.8-tls"].startswith("pass: ")
    assert table["postfix_server_banner"] == "pass: smtpd_banner = $myhostname ESMTP"
    assert table["guide-8.8-smtpd_client_connection_rate_limit"].startswith("not managed: ")


def test_the_hosts_own_values_are_judged_where_the_stack_leaves_them(pair):
    limits = {k: v for k, v in postfix_props(pair)["limits"].items() if k != "message_size_limit"}
    stored = pc.checked_inputs(postfix_props(pair, limits=limits))
    assert c.report_of_props(stored)["guide-8.8-queue_minfree"].startswith("not checked: message_size_limit")
    # queue_minfree (15360000) against the host's own message_size_limit, as an up or refresh stores it.
    stored["host_values"] = {"message_size_limit": "20480000"}
    assert c.report_of_props(stored)["guide-8.8-queue_minfree"].startswith("fail: queue_minfree = 15360000")
    stored["host_values"] = {"message_size_limit": "10240000"}
    assert c.report_of_props(stored)["guide-8.8-queue_minfree"].startswith("pass: queue_minfree = 15360000")


def test_scope_follows_the_sites_public_mx(pair):
    tls = {**postfix_props(pair)["tls"], "public_mx": False}
    props = postfix_props(pair, tls=tls, directives={"smtpd_client_restrictions": "permit_mynetworks, reject"})
    assert pc.checked_inputs(props)["public_mx"] is False
    table = verdicts(props)
    assert table[c.SCOPE_KEY] == c.NOT_PUBLIC_MX
    assert table["RHEL-09-252050"] == "pass: smtpd_client_restrictions = permit_mynetworks, reject"


def test_state_of_earlier_releases_keeps_its_scope():
    # Earlier releases kept the scope inside the `compliance` map they stored as an input.
    assert c.public_mx_of_props({"compliance": c.report({}, public_mx=False)}) is False
    assert c.public_mx_of_props({"compliance": c.report({}, public_mx=True)}) is True
    assert c.public_mx_of_props({}) is True
    assert c.public_mx_of_props({"public_mx": False, "compliance": c.report({}, public_mx=True)}) is False


# -- PostfixConfig.compliance: the library's Output, judged from what the engine returns ---------------------------

RATE = "guide-8.8-smtpd_client_connection_rate_limit"


class StoredByUp(pulumi.runtime.Mocks):
    """The engine's answer to a registration: the inputs, and main_cf and the host's values as an up stores them."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        stored = {
            "main_cf": {"smtpd_client_connection_rate_limit": "30", "queue_minfree": "15360000"},
            "host_values": {"message_size_limit": "10240000", "smtpd_tls_security_level": "may"},
            "certificate": {},
        }
        return [f"{args.name}-id", {**args.inputs, **stored}]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def mocked_engine():
    pulumi.runtime.set_mocks(StoredByUp(), preview=False)
    yield
    pulumi.runtime.settings.reset_options()


def test_the_resource_judges_its_stored_outputs(mocked_engine):
    args = PostfixConfigArgs(connection=CONNECTION, tls=TlsSettings(cert_pem=None, public_mx=False))
    config = pc.PostfixConfig("mx-postfix", args)
    seen = {}

    @pulumi.runtime.test
    def judged():
        return config.compliance.apply(seen.update)

    judged()
    assert seen[RATE] == "pass: smtpd_client_connection_rate_limit = 30"
    # queue_minfree is judged against the host's own message_size_limit (1.5 x 10240000 = 15360000).
    assert seen["guide-8.8-queue_minfree"].startswith("pass: queue_minfree = 15360000")
    assert seen[c.SCOPE_KEY] == c.NOT_PUBLIC_MX
