"""The compliance report through the real engine: shown at preview and up, a resource output, live after refresh."""

from __future__ import annotations

import json
import re

import pytest

from compliance.__main__ import cli as compliance_cli
from secure_postfix.core import compliance as c
from tests.engine.harness import EngineProject, bed_config
from tests.engine.test_compliance_html import status_areas

pytestmark = pytest.mark.engine

HOST = "mx"
RATE = "guide-8.8-smtpd_client_connection_rate_limit"
LIMITS = {
    "message_size_limit": 10240000,
    "header_size_limit": 102400,
    "queue_minfree": 15360000,
    "default_process_limit": 100,
    "smtpd_client_connection_rate_limit": 30,
    "smtpd_client_message_rate_limit": 60,
    "anvil_rate_time_unit": "60s",
    "smtpd_client_event_limit_exceptions": "$mynetworks",
}
SITES = {"solo": {"postfix_host": HOST, "limits": LIMITS, "directives": {"smtpd_banner": "$myhostname ESMTP"}}}


@pytest.fixture(scope="module")
def project(testbed, tmp_path_factory):
    project = EngineProject(tmp_path_factory.mktemp("compliance"), "compliance")
    project.configure(bed_config(testbed, SITES, [HOST]))
    yield project
    destroyed = project.destroy()
    testbed.restart_postfix(HOST)
    assert destroyed.ok, destroyed.text


def table_row(text: str, rule_id: str) -> str:
    """The CLI table's line for a rule (the program logs one table per host)."""
    table = text.split(f"compliance of {HOST}:", 1)[-1]
    match = re.search(rf"^\s+{re.escape(rule_id)}\s+(.+)$", table, re.M)
    assert match, f"no row for {rule_id} in:\n{text}"
    return re.sub(r"\s+", " ", match.group(1))


def report_markdown(project, tmp_path) -> tuple[str, str]:
    md, page = tmp_path / "report.md", tmp_path / "report.html"
    args = ["--stack", project.stack_name, "--work-dir", str(project.root), "--state-dir", str(project.root / "state")]
    assert compliance_cli([*args, "--markdown", str(md), "--html", str(page)]) == 0
    return md.read_text(), page.read_text()


class TestComplianceReport:
    def test_preview_shows_a_table_for_the_host(self, project):
        run = project.preview()
        assert run.ok, run.text
        # The program logs the table: it comes with the diagnostics, after the diff.
        assert f"compliance of {HOST}:" in run.text
        assert table_row(run.text, "guide-8.8-queue_minfree").startswith("pass queue_minfree = 15360000")
        assert table_row(run.text, "RHEL-09-252050").startswith("not applicable public MX")
        assert table_row(run.text, "RHEL-09-215101").startswith("not checked needs the host's package database")

    def test_up_shows_the_table_and_the_report_per_host_as_json(self, project, tmp_path):
        run = project.up()
        assert run.ok, run.text
        assert table_row(run.text, RATE) == "pass smtpd_client_connection_rate_limit = 30"
        # The state keeps the values judged, not the verdicts: PostfixConfig.compliance judges them where read,
        # and they are never a stack output that would diff.
        postfix = next(r for r in project.export()["resources"] if r["type"].endswith(":PostfixConfig"))
        assert "compliance" not in postfix["inputs"] and "compliance" not in postfix["outputs"]
        assert c.report_of_props(postfix["outputs"])[RATE] == "pass: smtpd_client_connection_rate_limit = 30"
        assert not any(k.startswith("compliance") for k in project.stack.outputs())
        args = [
            "--stack",
            project.stack_name,
            "--work-dir",
            str(project.root),
            "--state-dir",
            str(project.root / "state"),
        ]
        assert compliance_cli([*args, "--json", str(tmp_path / "report.json")]) == 0
        (exported,) = json.loads((tmp_path / "report.json").read_text()).values()
        guide = {k: v for k, v in exported.items() if k.startswith("guide-8.8-") and k != "guide-8.8-tls"}
        assert len(guide) == 8 and {v["status"] for v in guide.values()} == {"pass"}, guide
        assert exported["postfix_server_banner"]["status"] == "pass"
        assert exported["RHEL-08-040290"]["source"].startswith("DISA STIG for RHEL 8 V2R8: V-230550")
        assert exported["guide-8.8.3-sasl_dovecot"]["status"] == "not managed"

    def test_report_of_the_last_state(self, project, tmp_path):
        markdown, page = report_markdown(project, tmp_path)
        assert f"| `{RATE}` | pass | smtpd_client_connection_rate_limit = 30 |" in markdown
        assert f'data-rule="{RATE}" data-status="pass"' in page

    def test_hand_edit_breaking_a_rule_fails_it_after_refresh(self, testbed, project, tmp_path):
        testbed.run(HOST, "postconf -e smtpd_client_connection_rate_limit=0 && postconf -X smtpd_banner")
        run = project.refresh()
        assert run.ok, run.text
        markdown, page = report_markdown(project, tmp_path)
        assert f"| `{RATE}` | fail | smtpd_client_connection_rate_limit = 0: 0 means no limit |" in markdown
        assert "| `postfix_server_banner` | fail | smtpd_banner = $myhostname ESMTP $mail_name (unset" in markdown
        assert f'data-rule="{RATE}" data-status="fail"' in page
        assert 'data-rule="guide-8.8-queue_minfree" data-status="pass"' in page
        # In the rendered page two cells, and only two, are now drawn red.
        areas = status_areas(page, tmp_path, "after-refresh")
        per_cell = sum(areas.values()) / len(c.RULES)
        assert areas[c.Status.FAIL] == 2 * per_cell, areas

    def test_next_preview_plans_the_fix_and_shows_its_verdict(self, project):
        run = project.preview()
        assert run.ok, run.text
        assert re.search(r'smtpd_client_connection_rate_limit\s*: "0" => "30"', run.stdout), run.stdout
        assert RATE not in run.stdout.split("Resources:")[0], run.stdout  # no verdict line in the diff
        # The table judges what the preview plans.
        assert table_row(run.text, RATE) == "pass smtpd_client_connection_rate_limit = 30"

    def test_up_mends_it(self, project, tmp_path):
        assert project.up().ok
        assert project.refresh().ok
        markdown, _ = report_markdown(project, tmp_path)
        assert f"| `{RATE}` | pass |" in markdown and "| fail |" not in markdown
