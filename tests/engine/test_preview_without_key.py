"""A preview needs no SSH key (the pull-request workflow gets none); `up` without one is refused.

And a pull request's stack config (SECURE_POSTFIX_UNTRUSTED_CONFIG) cannot make the program read files
outside the project folder.
"""

from __future__ import annotations

import pytest

from tests.engine import harness
from tests.engine.harness import EngineProject, bed_config, ssh_logins

pytestmark = pytest.mark.engine

HOST = "mx"


def sites(rate: int = 30) -> dict:
    return {"solo": {"postfix_host": HOST, "limits": {"smtpd_client_connection_rate_limit": rate}}}


def keyless(testbed, rate: int = 30) -> dict:
    config = bed_config(testbed, sites(rate), [HOST])
    del config["ssh_private_key_file"]
    return config


@pytest.fixture(scope="module")
def project(testbed, tmp_path_factory):
    project = EngineProject(tmp_path_factory.mktemp("nokey"), "nokey")
    project.configure(bed_config(testbed, sites(), [HOST]))
    first = project.up()
    assert first.ok, first.text
    yield project
    project.configure(bed_config(testbed, sites(), [HOST]))
    destroyed = project.destroy()
    assert destroyed.ok, destroyed.text


def planned(run) -> dict[str, list[str]]:
    return {name: paths for name, (_, paths) in harness.planned(run).items()}


def test_a_preview_without_any_key_plans_nothing_for_the_key(testbed, project):
    project.configure(keyless(testbed))
    before = ssh_logins(testbed, [HOST])
    run = project.preview()
    assert run.ok, run.text
    assert planned(run) == {}, run.text
    assert ssh_logins(testbed, [HOST]) == before


def test_a_change_previewed_without_a_key_is_its_one_line(testbed, project):
    project.configure(keyless(testbed, rate=20))
    run = project.preview()
    assert run.ok, run.text
    assert planned(run) == {"solo-postfix": ["main_cf.smtpd_client_connection_rate_limit"]}, run.text
    assert "private_key" not in run.stdout


def test_up_without_a_key_is_refused_and_changes_nothing(testbed, project):
    project.configure(keyless(testbed, rate=20))
    main_cf = testbed.read_file(HOST, "/etc/postfix/main.cf")
    run = project.up()
    assert not run.ok
    assert "set secure-postfix:ssh_private_key" in run.text, run.text
    assert testbed.read_file(HOST, "/etc/postfix/main.cf") == main_cf


def test_a_pull_requests_config_cannot_read_files_outside_the_project(testbed, project, monkeypatch):
    config = keyless(testbed)
    config["sites"]["solo"]["tls"] = {"cert_file": "/proc/self/environ", "key_file": "/etc/ssl/private/none.key"}
    project.configure(config)
    monkeypatch.setenv("SECURE_POSTFIX_UNTRUSTED_CONFIG", "true")
    run = project.preview()
    assert not run.ok
    assert "secure-postfix:sites.solo.tls.cert_file: /proc/self/environ is outside the project folder" in run.text
    assert "PULUMI_CONFIG_PASSPHRASE" not in run.text


def test_a_pull_requests_config_never_reads_the_key_file(testbed, project, monkeypatch):
    config = bed_config(testbed, sites(), [HOST])  # names the bed's key file, outside the project folder
    project.configure(config)
    monkeypatch.setenv("SECURE_POSTFIX_UNTRUSTED_CONFIG", "true")
    run = project.preview()
    assert run.ok, run.text
    assert planned(run) == {}, run.text
