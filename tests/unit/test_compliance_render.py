"""The compliance report's renderers and how the command picks hosts out of exported state (pure)."""

from __future__ import annotations

import re

from compliance.state import POSTFIX_TYPE, report_from_deployment
from secure_postfix.core import compliance as c
from secure_postfix.core import compliance_render as render

MX = {
    "smtpd_client_connection_rate_limit": "30",
    "message_size_limit": "10240000",
    "queue_minfree": "100",
    "smtpd_banner": "$myhostname ESMTP",
}


def report():
    return {"mx": c.judge(MX), "edge": c.judge({"smtpd_client_connection_rate_limit": "0"}, public_mx=False)}


def test_cli_table_has_one_line_per_rule_with_id_status_and_value():
    text = render.cli_table("mx", c.judge(MX))
    lines = text.splitlines()
    assert lines[0].startswith("compliance of mx: ") and "1 fail" in lines[0]
    assert len(lines) == 1 + len(c.RULES)
    row = next(ln for ln in lines if "guide-8.8-queue_minfree" in ln)
    assert re.search(r"guide-8.8-queue_minfree\s+fail\s+queue_minfree = 100: below", row)


def test_markdown_has_a_table_per_host_with_source():
    text = render.markdown(report())
    assert "### mx" in text and "### edge" in text
    assert "| `RHEL-09-252050` | fail | smtpd_client_restrictions" not in text  # not managed on edge
    assert "| `guide-8.8-smtpd_client_connection_rate_limit` | fail | smtpd_client_connection_rate_limit = 0" in text
    assert "DISA STIG for RHEL 9 V2R9: V-257951" in text


def test_markdown_escapes_pipes_in_values():
    text = render.markdown({"mx": c.judge({"smtpd_banner": "a | b"})})
    assert "smtpd_banner = a \\| b" in text


def test_html_matrix_cells_carry_status_and_colour():
    page = render.html(report())
    cell = re.search(r'<td class="cell" data-rule="guide-8.8-queue_minfree" data-status="fail" [^>]*>(.*?)</td>', page)
    assert cell and render.COLOURS[c.Status.FAIL] in cell.group(1)
    # Besides the colour, a mark: the status reads without telling red from green.
    assert f'<div class="mark">{render.MARKS[c.Status.FAIL]}</div>' in cell.group(1)
    assert len(set(render.MARKS.values())) == len(c.Status)
    rows = re.findall(r'<tr><th class="host">([^<]+)</th>', page)
    assert rows == ["mx", "edge"]
    assert page.count('class="cell"') == 2 * len(c.RULES)
    assert "<script" not in page and "http" not in page.split("</style>")[0]  # self-contained


def test_html_escapes_values():
    page = render.html({"<mx>": c.judge({"smtpd_banner": '"><script>x</script>'})})
    assert "<script>" not in page and "&lt;mx&gt;" in page


def test_report_from_deployment_judges_each_postfix_config_by_todays_rules():
    # A verdict stored by an earlier rule version is not what the report shows.
    stale = {"guide-8.8-queue_minfree": "pass: stale"}
    deployment = {
        "resources": [
            {"urn": "urn:pulumi:s::p::pulumi:pulumi:Stack::p-s", "type": "pulumi:pulumi:Stack", "outputs": {}},
            {
                "urn": "urn:pulumi:s::p::secure-postfix:index:MailSite$" + POSTFIX_TYPE + "::solo-postfix",
                "type": POSTFIX_TYPE,
                "outputs": {"host": "192.0.2.25", "main_cf": dict(MX), "compliance": stale},
            },
            {"urn": "urn:x::old", "type": POSTFIX_TYPE, "delete": True, "outputs": {"main_cf": dict(MX)}},
            {"urn": "urn:x::edge-postfix", "type": POSTFIX_TYPE, "outputs": {"host": "192.0.2.10", "main_cf": {}}},
            {"urn": "urn:x::failed-create", "type": POSTFIX_TYPE, "outputs": {"host": "192.0.2.11"}},
        ]
    }
    found = report_from_deployment({"deployment": deployment})
    assert list(found) == ["192.0.2.10 (edge-postfix)", "192.0.2.25 (solo-postfix)"]  # sorted
    statuses = {f.rule.id: f.status for f in found["192.0.2.25 (solo-postfix)"]}
    assert statuses["guide-8.8-queue_minfree"] is c.Status.FAIL
