"""A successful up says which directive changed from what to what on which host; a failed one claims nothing."""

from __future__ import annotations

import pytest

from tests.engine.harness import EngineProject, bed_config

pytestmark = pytest.mark.engine

HOST = "edge"


def test_changes_are_logged_from_what_to_what_once_applied(testbed, tmp_path):
    address = testbed.hosts[HOST].address
    project = EngineProject(tmp_path / "log", "log")

    def up(size: int, **directives: str):
        site = {"postfix_host": HOST, "limits": {"message_size_limit": size}, "directives": directives}
        project.configure(bed_config(testbed, {"l": site}, [HOST]))
        return project.up()

    try:
        run = up(1048576)
        assert run.ok, run.text
        assert f"{HOST} ({address}): changed message_size_limit: (unset) -> 1048576" in run.text, run.text
        run = up(2097152)
        assert run.ok, run.text
        assert f"{HOST} ({address}): changed message_size_limit: 1048576 -> 2097152" in run.text, run.text
        # A change that is rolled back is not reported as made.
        failed = up(2097152, smtpd_helo_required="yes", smtpd_tls_security_level="bogus")
        assert not failed.ok and "Invalid TLS level" in failed.text, failed.text
        assert "smtpd_helo_required: (unset) -> yes" not in failed.text, failed.text
        project.configure(bed_config(testbed, {"l": {"postfix_host": HOST, "limits": {"message_size_limit": 2097152}}}))
    finally:
        destroyed = project.destroy()
    assert destroyed.ok, destroyed.text
    assert f"{HOST} ({address}): restored message_size_limit: 2097152 -> (unset)" in destroyed.text, destroyed.text
