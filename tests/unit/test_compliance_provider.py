"""PostfixConfig's `compliance` output: judged on the main.cf values, never an input that diffs."""

from __future__ import annotations

import pytest
from pulumi.output import Unknown

from secure_postfix import postfix_config as pc
from secure_postfix.core import compliance as c
from tests.unit.test_provider_checks import make_pair, postfix_props


@pytest.fixture(scope="module")
def pair():
    return make_pair()


def verdicts(props):
    """What apply and refresh return as `compliance`, for the inputs check makes of `props`."""
    return pc._compliance(pc.checked_inputs(props))


def test_the_verdicts_are_not_an_input(pair):
    inputs = pc.checked_inputs(postfix_props(pair))
    assert "compliance" not in inputs and "public_mx" not in inputs
    assert "compliance" in pc.COMPUTED_OUTPUTS  # a refresh keeps it out of the inputs it writes back


def test_apply_and_refresh_judge_the_main_cf_values(pair):
    table = verdicts(postfix_props(pair))
    assert table[c.SCOPE_KEY] == c.PUBLIC_MX
    assert table["guide-8.8-queue_minfree"].startswith("pass: queue_minfree = 15360000")
    assert table["guide-8.8-tls"].startswith("pass: ")
    assert table["postfix_server_banner"] == "pass: smtpd_banner = $myhostname ESMTP"
    assert table["guide-8.8-smtpd_client_connection_rate_limit"].startswith("not managed: ")


def test_a_sasl_path_computed_by_dovecot_is_pending_not_failed(pair):
    table = verdicts(postfix_props(pair, sasl={"path": Unknown()}))
    assert table["guide-8.8.3-sasl_dovecot"] == (
        f"pass: smtpd_sasl_auth_enable = yes; smtpd_sasl_type = dovecot; smtpd_sasl_path = {c.PENDING}"
    )


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
