"""The secure-postfix compliance pack: the same rule data as the report, one policy per rule.

`pulumi preview --policy-pack policy` (or the Automation API's `policy_packs=`) judges every
PostfixConfig and DovecotAuthService on its planned properties. Every policy is advisory
unless the pack's config (`--policy-pack-config`) says otherwise.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

# The pack runs from its own folder; the rules live in the project's core.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from secure_postfix.core.compliance import MIN_DAYS_KEY, UPLOADED_PEM
from secure_postfix.core.compliance_policy import POLICY_RULES, Judged, findings_for, violation


def _plain(props) -> tuple[dict, list[str]]:
    """The properties the rules read, with main.cf names whose value is unknown at preview set apart."""
    plain, pending = {}, []
    # The certificate to upload (its PEM) and the days it must still be valid: the certificate rules judge them.
    keys = ("host", "public_mx", "compliance", "listener", "socket_mode", "socket_user", "socket_group")
    for key in (*keys, UPLOADED_PEM, MIN_DAYS_KEY):
        with contextlib.suppress(UnknownValueError):
            if key in props:
                plain[key] = props.get(key)
    main_cf = {}
    try:
        names = list(props.get("main_cf") or {})
    except UnknownValueError:
        names = []
    for name in names:
        try:
            main_cf[name] = props["main_cf"][name]
        except UnknownValueError:
            pending.append(name)
    plain["main_cf"] = main_cf
    return plain, pending


def _policy(judged: Judged) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != judged.resource_type:
            return
        props, pending = _plain(args.props)
        message = violation(
            judged.rule.id, str(props.get("host") or args.name), findings_for(args.resource_type, props, pending)
        )
        if message:
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=judged.rule.id,
        description=f"{judged.rule.title} ({judged.rule.source})",
        validate=validate,
    )


PolicyPack(
    name="secure-postfix-compliance",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=[_policy(j) for j in POLICY_RULES],
)
