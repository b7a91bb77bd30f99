"""What the policy pack reports per resource (pure; the pack itself runs in the engine tests)."""

from __future__ import annotations

from secure_postfix.core import compliance_policy as cp
from tests.unit.test_compliance import GUIDE_MAIN_CF


def postfix_props(**main_cf) -> dict:
    return {"host": "192.0.2.25", "main_cf": {**GUIDE_MAIN_CF, **main_cf}}


def test_every_judged_rule_is_a_policy_and_not_checked_ones_are_not():
    names = [j.rule.id for j in cp.POLICY_RULES]
    assert len(names) == len(set(names))
    assert "guide-8.8-queue_minfree" in names and "guide-8.8.3-dovecot_auth_listener" in names
    assert "RHEL-09-215101" not in names
    assert all(name != "all" and " " not in name and "/" not in name for name in names)


def test_violation_names_rule_host_and_value():
    findings = cp.findings_for(cp.POSTFIX_TYPE, postfix_props(queue_minfree="100"))
    message = cp.violation("guide-8.8-queue_minfree", "192.0.2.25", findings)
    assert message == (
        "guide-8.8-queue_minfree fails on 192.0.2.25: queue_minfree = 100: below 1.5 x message_size_limit "
        "(10240000) = 15360000"
    )
    assert cp.violation("guide-8.8-message_size_limit", "192.0.2.25", findings) is None


def test_a_sasl_path_not_known_yet_is_not_a_violation():
    props = postfix_props()
    del props["main_cf"]["smtpd_sasl_path"]
    assert cp.violation("guide-8.8.3-sasl_dovecot", "h", cp.findings_for(cp.POSTFIX_TYPE, props)) is not None
    findings = cp.findings_for(cp.POSTFIX_TYPE, props, pending=["smtpd_sasl_path"])
    assert cp.violation("guide-8.8.3-sasl_dovecot", "h", findings) is None


def test_scope_comes_from_the_public_mx_input():
    props = {**postfix_props(smtpd_client_restrictions="permit"), "public_mx": False}
    findings = cp.findings_for(cp.POSTFIX_TYPE, props)
    assert cp.violation("RHEL-09-252050", "h", findings) is not None
    del props["public_mx"]
    assert cp.violation("RHEL-09-252050", "h", cp.findings_for(cp.POSTFIX_TYPE, props)) is None


def test_dovecot_listener_is_judged_on_its_settings():
    findings = cp.findings_for(cp.DOVECOT_TYPE, {"listener": "unix", "socket_mode": "0666"})
    assert "mode = 0666" in cp.violation("guide-8.8.3-dovecot_auth_listener", "h", findings)
    assert cp.findings_for("pulumi:pulumi:Stack", {}) == []


def test_a_rule_whose_directives_leave_the_stack_is_a_violation():
    # A pull request drops the sasl block: the host gets its own options back, which a preview cannot see.
    props = postfix_props()
    for name in [n for n in props["main_cf"] if n.startswith("smtpd_sasl")]:
        del props["main_cf"][name]
    message = cp.violation("guide-8.8.3-smtpd_sasl_security_options", "mx", cp.findings_for(cp.POSTFIX_TYPE, props))
    assert message is not None and message.startswith("guide-8.8.3-smtpd_sasl_security_options is not managed on mx")
    # Not applicable and not checked are no violation.
    findings = cp.findings_for(cp.POSTFIX_TYPE, postfix_props())
    assert cp.violation("RHEL-09-252050", "mx", findings) is None
