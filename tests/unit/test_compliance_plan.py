"""The verdicts a preview plans: judged on the values in force after the change (pure)."""

from __future__ import annotations

import base64

from secure_postfix.core import compliance as c
from secure_postfix.core import compliance_plan as plan
from secure_postfix.core import maincf
from tests.unit.test_compliance import DEBIAN_HOST, GUIDE_MAIN_CF

RATE = "guide-8.8-smtpd_client_connection_rate_limit"
SASL = "guide-8.8.3-smtpd_sasl_security_options"


def step(op, old_main_cf=None, new_main_cf=None, originals=None, host_values=None):
    found = {
        "op": op,
        "urn": "urn:pulumi:prod::secure-postfix::pulumi-python:dynamic/postfix:PostfixConfig::solo-postfix",
    }
    if old_main_cf is not None:
        outputs = {"main_cf": old_main_cf, "originals": originals or {}}
        if host_values is not None:
            outputs["host_values"] = host_values
        found["oldState"] = {"inputs": {"main_cf": old_main_cf}, "outputs": outputs}
    if new_main_cf is not None:
        found["newState"] = {"inputs": {"main_cf": new_main_cf}}
    return found


def by_id(findings):
    return {f.rule.id: f for f in findings}


def test_a_weakening_change_is_a_planned_fail_beside_the_current_pass():
    judged = plan.verdicts(
        step("update", GUIDE_MAIN_CF, {**GUIDE_MAIN_CF, "smtpd_client_connection_rate_limit": "0"}),
        "mx",
        "solo-postfix",
    )
    assert by_id(judged.planned)[RATE].status is c.Status.FAIL
    assert by_id(judged.current)[RATE].status is c.Status.PASS
    assert [(p.rule.id, n.status) for p, n in judged.changed() if p.rule.id == RATE] == [(RATE, c.Status.PASS)]


def test_dropping_a_directive_is_judged_on_the_original_the_host_gets_back():
    # The site's sasl block leaves the stack: the host gets Debian's own line back, without noplaintext.
    originals = {"smtpd_sasl_security_options": "smtpd_sasl_security_options = noanonymous"}
    new = {k: v for k, v in GUIDE_MAIN_CF.items() if not k.startswith("smtpd_sasl")}
    judged = plan.verdicts(step("update", GUIDE_MAIN_CF, new, originals), "mx", "solo-postfix")
    finding = by_id(judged.planned)[SASL]
    assert finding.status is c.Status.FAIL, finding
    assert "lacks noplaintext" in finding.value


def test_a_directive_that_was_absent_goes_back_to_postfixs_default():
    new = {k: v for k, v in GUIDE_MAIN_CF.items() if k != "smtpd_client_connection_rate_limit"}
    judged = plan.verdicts(step("update", GUIDE_MAIN_CF, new, {"smtpd_client_connection_rate_limit": ""}), "mx", "s")
    assert by_id(judged.planned)[RATE].status is c.Status.FAIL  # Postfix's default, 0: no limit


def test_a_removed_resource_is_judged_on_every_original():
    originals = {name: "" for name in GUIDE_MAIN_CF}
    judged = plan.verdicts(step("delete", GUIDE_MAIN_CF, None, originals), "mx", "solo-postfix")
    assert by_id(judged.planned)[RATE].status is c.Status.FAIL
    assert judged.operation == "delete"


def test_original_definitions_in_state_form():
    assert plan.original_value("a", "a = 1\n  2") == "1 2"
    assert plan.original_value("a", "") == ""
    encoded = maincf.STATE_BASE64_PREFIX + base64.b64encode(b"a = caf\xe9").decode()
    assert plan.original_value("a", encoded).startswith("caf")


def test_the_hosts_own_values_from_state_are_used():
    judged = plan.verdicts(step("same", GUIDE_MAIN_CF, GUIDE_MAIN_CF, host_values=DEBIAN_HOST), "mx", "s")
    exceptions = by_id(judged.planned)["guide-8.8-smtpd_client_event_limit_exceptions"]
    assert exceptions.status is c.Status.PASS, exceptions


def test_a_value_computed_at_apply_is_pending():
    new = {**GUIDE_MAIN_CF, "smtpd_sasl_path": plan.UNKNOWN}
    judged = plan.verdicts(step("create", None, new), "mx", "s")
    assert by_id(judged.planned)["guide-8.8.3-sasl_dovecot"].status is c.Status.PASS
    assert judged.current is None
