"""Pick the per-host compliance out of a stack's exported deployment (pure).

Each PostfixConfig's `main_cf` in state (the planned values after `up`, the host's own after `refresh`)
is judged by this release's rules, so a report never shows the verdict of an older rule version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secure_postfix.core.compliance import (
    Finding,
    certificate_of_props,
    judge,
    min_days_of_props,
    public_mx_of_props,
)

POSTFIX_TYPE = "pulumi-python:dynamic/postfix:PostfixConfig"


def report_from_deployment(exported: Mapping[str, Any]) -> dict[str, list[Finding]]:
    """host label -> findings, from `pulumi stack export` output (refresh keeps `main_cf` current)."""
    deployment = exported.get("deployment", exported)
    report: dict[str, list[Finding]] = {}
    for resource in deployment.get("resources") or []:
        if resource.get("type") != POSTFIX_TYPE or resource.get("delete"):
            continue
        outputs = resource.get("outputs") or {}
        main_cf = outputs.get("main_cf")
        if not isinstance(main_cf, Mapping):
            continue
        name = str(resource.get("urn", "")).rsplit("::", 1)[-1]
        values = {str(k): v for k, v in main_cf.items() if isinstance(v, str)}
        host = outputs.get("host_values")
        host = {str(k): v for k, v in host.items() if isinstance(v, str)} if isinstance(host, Mapping) else None
        # The certificate as the last up or refresh read it, judged against today's date.
        report[f"{outputs.get('host', '?')} ({name})"] = judge(
            values,
            public_mx_of_props(outputs),
            host=host,
            certificate=certificate_of_props(outputs),
            min_days=min_days_of_props(outputs),
        )
    return dict(sorted(report.items()))
