"""`pulumi up` piped to a file, as CI logs and `| tee` keep it: plain text, no colour markup, even in the summary
of a failed run."""

from __future__ import annotations

import pytest

from tests.engine.harness import bed_config
from tests.engine.test_pulumi_cli import CliProject

pytestmark = pytest.mark.engine

HOST = "edge"


def test_a_failed_up_piped_to_a_file_has_no_colour_markup(testbed, tmp_path):
    cli = CliProject(tmp_path / "piped", "piped")
    # Postfix's staged check refuses an account the host does not have: the resource errors.
    site = {"p": {"postfix_host": HOST, "directives": {"default_privs": "no-such-account"}}}
    cli.configure(bed_config(testbed, site, [HOST]))
    try:
        run = cli.pulumi("up", "--yes", "--diff")
        text = run.stdout + run.stderr
        assert run.returncode != 0 and "1 errored" in text, text
        assert "<{%" not in text and "%}>" not in text, [ln for ln in text.splitlines() if "<{%" in ln]
        assert "\x1b[" not in text, "colour escapes in piped output"
    finally:
        cli.pulumi("destroy", "--yes")
