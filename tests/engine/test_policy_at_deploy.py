"""The policy pack at deploy: `up` with a rule made mandatory refuses a stack that breaks it, before any host changes.

deploy.yml runs `up` with the same pack and policy/enforcement.json, so a commit that reached main without a
reviewed preview (a direct push, an admin merge) is refused the same way.
"""

from __future__ import annotations

import json

import pytest

from tests.engine.harness import bed_config
from tests.engine.test_compliance_policy import PACK, PolicyProject, cli_root  # noqa: F401  (cli_root: fixture)

pytestmark = pytest.mark.engine

HOST = "mx"
RATE = "guide-8.8-smtpd_client_connection_rate_limit"


def sites(rate: int) -> dict:
    return {"solo": {"postfix_host": HOST, "limits": {"smtpd_client_connection_rate_limit": rate}}}


@pytest.fixture(scope="module")
def project(testbed, tmp_path_factory, cli_root):  # noqa: F811
    project = PolicyProject(tmp_path_factory.mktemp("deploy-policy"), "deploypolicy", cli_root)
    project.configure(bed_config(testbed, sites(30), [HOST]))
    yield project
    destroyed = project.destroy()
    assert destroyed.ok, destroyed.text


def up_with_pack(project, tmp_path, enforcement: dict):
    config = tmp_path / "enforcement.json"
    config.write_text(json.dumps(enforcement))
    return project.up(policy_packs=[PACK], policy_pack_configs=[str(config)])


def test_a_compliant_stack_deploys(testbed, project, tmp_path):
    run = up_with_pack(project, tmp_path, {RATE: "mandatory"})
    assert run.ok, run.text
    assert testbed.run(HOST, "postconf -h smtpd_client_connection_rate_limit").stdout.strip() == "30"


def test_a_stack_breaking_a_mandatory_rule_is_refused_and_no_host_changes(testbed, project, tmp_path):
    project.configure(bed_config(testbed, sites(0), [HOST]))
    main_cf = testbed.read_file(HOST, "/etc/postfix/main.cf")
    run = up_with_pack(project, tmp_path, {RATE: "mandatory"})
    assert not run.ok
    assert "[mandatory]" in run.text and f"{RATE} fails on" in run.text, run.text
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == main_cf


def test_the_same_change_deploys_where_the_rule_is_advisory(testbed, project, tmp_path):
    run = up_with_pack(project, tmp_path, {})
    assert run.ok, run.text
    assert "[advisory]" in run.text
    assert testbed.run(HOST, "postconf -h smtpd_client_connection_rate_limit").stdout.strip() == "0"
