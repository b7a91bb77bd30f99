"""Input that would weaken or break a host is refused at preview, by name, before any SSH login."""

from __future__ import annotations

import time

import pytest

from tests.engine.harness import EngineProject, bed_config, sha256

pytestmark = pytest.mark.engine

HOST = "edge"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = EngineProject(tmp_path_factory.mktemp("refused"), "refused")
    yield project
    project.destroy()


def ssh_logins(testbed, host: str = HOST) -> int:
    time.sleep(0.2)  # sshd writes its log line just after the login
    return (testbed.hosts[host].root / "log" / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def main_cf(testbed, host: str = HOST) -> str:
    return sha256(testbed.read_file(host, "/etc/postfix/main.cf"))


def refused_everywhere(project, fragments: list[str]) -> str:
    """Preview and up both fail, naming every fragment; returns the preview's error text."""
    preview = project.preview()
    assert not preview.ok
    for fragment in fragments:
        assert fragment in preview.stderr, preview.stderr
    assert not project.up().ok
    return preview.stderr


FLAG = f"secure-postfix:hosts.{HOST}.insecure_ignore_host_key"


@pytest.mark.parametrize(
    ("flag", "fragments"),
    [
        ("no", [FLAG, "'no'"]),
        ("off", [FLAG, "'off'"]),
        ("False ", [FLAG, "'False '"]),
        # The exact word is read as false, so the unpinned host is refused for what it is.
        ("false", ["host_key: is required", "ssh-keyscan"]),
    ],
)
def test_text_false_for_insecure_ignore_host_key_is_refused_without_a_login(testbed, project, flag, fragments):
    """YAML 1.2 gives `no` to the program as text; bool("no") would have turned host-key checking off."""
    config = bed_config(testbed, {"one": {"postfix_host": HOST, "limits": {"default_process_limit": 90}}}, [HOST])
    config["hosts"][HOST] = {"address": testbed.hosts[HOST].address, "insecure_ignore_host_key": flag}
    project.configure(config)
    before, logins = main_cf(testbed), ssh_logins(testbed)
    refused_everywhere(project, fragments)
    assert ssh_logins(testbed) == logins  # nobody was asked for a host key, so no impostor could answer
    assert main_cf(testbed) == before
