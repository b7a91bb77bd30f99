"""PostfixConfig's `compliance` property: judged by check on the planned main.cf, kept with the inputs."""

from __future__ import annotations

import pytest
from pulumi.output import Unknown

from components import postfix_config as pc
from components.core import compliance as c
from tests.unit.test_provider_checks import make_pair, postfix_props


@pytest.fixture(scope="module")
def pair():
    return make_pair()


def test_check_stores_the_judged_rules_with_the_inputs(pair):
    table = pc.checked_inputs(postfix_props(pair))["compliance"]
    assert table[c.SCOPE_KEY] == c.PUBLIC_MX
    assert table["guide-8.8-queue_minfree"].startswith("pass: queue_minfree = 15360000")
    assert table["guide-8.8-tls"].startswith("pass: ")
    assert table["postfix_server_banner"] == "pass: smtpd_banner = $myhostname ESMTP"
    assert table["guide-8.8-smtpd_client_connection_rate_limit"].startswith("not managed: ")


def test_a_sasl_path_computed_by_dovecot_is_pending_not_failed(pair):
    table = pc.checked_inputs(postfix_props(pair, sasl={"path": Unknown()}))["compliance"]
    assert table["guide-8.8.3-sasl_dovecot"] == (
        f"pass: smtpd_sasl_auth_enable = yes; smtpd_sasl_type = dovecot; smtpd_sasl_path = {c.PENDING}"
    )


def test_scope_follows_the_sites_public_mx(pair):
    tls = {**postfix_props(pair)["tls"], "public_mx": False}
    props = postfix_props(pair, tls=tls, directives={"smtpd_client_restrictions": "permit_mynetworks, reject"})
    table = pc.checked_inputs(props)["compliance"]
    assert table[c.SCOPE_KEY] == c.NOT_PUBLIC_MX
    assert table["RHEL-09-252050"] == "pass: smtpd_client_restrictions = permit_mynetworks, reject"
