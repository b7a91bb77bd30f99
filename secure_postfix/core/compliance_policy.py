"""What the policy pack reports: the compliance rules' failures on one resource's planned properties (pure).

The pack in policy/ wraps each rule in a CrossGuard ResourceValidationPolicy named by the
rule's ID, so `--policy-pack-config` can set each rule's enforcement level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from secure_postfix.core import compliance as c

POSTFIX_TYPE = "pulumi-python:dynamic/postfix:PostfixConfig"
DOVECOT_TYPE = "pulumi-python:dynamic/dovecot:DovecotAuthService"
DOVECOT_SETTINGS = ("listener", "socket_mode", "socket_user", "socket_group")


@dataclass(frozen=True)
class Judged:
    resource_type: str
    rule: c.Rule


# Only rules that can be judged from the planned values become policies.
POLICY_RULES: tuple[Judged, ...] = (
    *(Judged(POSTFIX_TYPE, r) for r in c.RULES if r.judge is not None),
    Judged(DOVECOT_TYPE, c.DOVECOT_LISTENER),
)


def findings_for(resource_type: str, props: Mapping[str, Any], pending: Iterable[str] = ()) -> list[c.Finding]:
    """`pending`: main.cf names whose value is not known yet (another resource computes it)."""
    if resource_type == POSTFIX_TYPE:
        main_cf = {k: str(v) for k, v in (props.get("main_cf") or {}).items() if v is not None}
        certificate, days = c.certificate_of_props(props), c.min_days_of_props(props)
        return c.judge(main_cf, c.public_mx_of_props(props), pending, certificate=certificate, min_days=days)
    if resource_type == DOVECOT_TYPE:
        return c.judge_dovecot({k: props.get(k) for k in DOVECOT_SETTINGS})
    return []


def violation(rule_id: str, host: str, findings: Iterable[c.Finding]) -> str | None:
    """The message for a failed rule: rule ID, host and the value seen (the policy's description cites the source).

    A rule none of whose directives the stack manages counts too: the host then keeps, or gets back when a
    pull request drops the directive, a value of its own that a preview cannot see. Advisory rules only warn;
    a mandatory one needs its directives in the stack.
    """
    finding = next((f for f in findings if f.rule.id == rule_id), None)
    if finding is None:
        return None
    if finding.status is c.Status.FAIL:
        return f"{rule_id} fails on {host}: {finding.value}"
    if finding.status is c.Status.NOT_MANAGED:
        return (
            f"{rule_id} is not managed on {host} ({finding.value}): the host keeps or gets back a value of its "
            "own, which a preview cannot judge; set it in the stack"
        )
    return None
