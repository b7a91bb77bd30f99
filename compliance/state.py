"""Pick the per-host compliance out of a stack's exported deployment (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.core.compliance import Finding, from_cells

POSTFIX_TYPE = "pulumi-python:dynamic/postfix:PostfixConfig"


def report_from_deployment(exported: Mapping[str, Any]) -> dict[str, list[Finding]]:
    """host label -> findings, from `pulumi stack export` output (refresh keeps these outputs current)."""
    deployment = exported.get("deployment", exported)
    report: dict[str, list[Finding]] = {}
    for resource in deployment.get("resources") or []:
        if resource.get("type") != POSTFIX_TYPE or resource.get("delete"):
            continue
        outputs = resource.get("outputs") or {}
        table = outputs.get("compliance")
        if not isinstance(table, Mapping):
            continue
        name = str(resource.get("urn", "")).rsplit("::", 1)[-1]
        report[f"{outputs.get('host', '?')} ({name})"] = from_cells(table)
    return dict(sorted(report.items()))
