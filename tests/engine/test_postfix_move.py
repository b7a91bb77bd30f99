"""Moving a site to another host replaces the resource: the new host gets the limits, the old one its originals."""

from __future__ import annotations

import re

import pytest

from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config
from toolchain.testbed.layout import SUBNET

pytestmark = pytest.mark.engine

LIMITS = {"message_size_limit": 5242880, "queue_minfree": 7864320}
DEFAULT = "SIZE 10240000"


def test_change_of_host_replaces(testbed, tmp_path):
    originals = {h: testbed.read_file(h, "/etc/postfix/main.cf") for h in ("edge", "auth")}
    project = EngineProject(tmp_path / "move", "move")
    try:
        project.configure(bed_config(testbed, {"m": {"postfix_host": "edge", "limits": LIMITS}}, ["edge", "auth"]))
        assert project.up().ok
        project.configure(bed_config(testbed, {"m": {"postfix_host": "auth", "limits": LIMITS}}, ["edge", "auth"]))
        preview = project.preview()
        assert preview.ok, preview.text
        assert preview.summary.get("replace") == 1, preview.summary
        assert re.search(rf"host\s*: \"{re.escape(SUBNET)}12\" => \"{re.escape(SUBNET)}13\"", preview.stdout), (
            preview.stdout
        )
        run = project.up()
        assert run.ok, run.text
        assert testbed.read_file("edge", "/etc/postfix/main.cf") == originals["edge"]
        assert testbed.run("auth", "postconf -h message_size_limit").stdout.strip() == "5242880"
        # The running daemons: the new host advertises the limit, the old one Postfix's default again.
        assert size_line(testbed, "auth", 37) == "SIZE 5242880" and size_line(testbed, "edge", 38) == DEFAULT
    finally:
        assert project.destroy().ok
    assert testbed.read_file("auth", "/etc/postfix/main.cf") == originals["auth"]
    assert size_line(testbed, "auth", 39) == DEFAULT


def size_line(testbed, host: str, source: int) -> str:
    client = mail_client.connect(testbed.hosts[host].address, testbed.client_addresses[source])
    try:
        return next(ln for ln in mail_client.ehlo_lines(client) if ln.startswith("SIZE"))
    finally:
        client.close()
