"""The environment stackctl gives the `pulumi` CLI."""

from __future__ import annotations

from toolchain.stackctl.engine import CACHE_DIR, LOCAL_PASSPHRASE, PROJECT_DIR, EngineSettings, pulumi_bin


def test_local_stack_gets_its_passphrase_and_the_project_state(monkeypatch):
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    env = EngineSettings.for_stack("local").cli_vars()
    assert env["PULUMI_CONFIG_PASSPHRASE"] == LOCAL_PASSPHRASE
    assert env["PULUMI_BACKEND_URL"] == f"file://{PROJECT_DIR / '.state'}"
    assert env["PATH"].split(":")[0] == str(CACHE_DIR / "bin")
    assert env["PULUMI_HOME"] == str(CACHE_DIR / "pulumi-home")
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"


def test_other_stacks_take_the_users_passphrase_and_backend(monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://bucket/prefix")
    env = EngineSettings.for_stack("prod").cli_vars()
    assert "PULUMI_CONFIG_PASSPHRASE" not in env
    assert env["PULUMI_BACKEND_URL"] == "s3://bucket/prefix"


def test_the_program_never_inherits_a_pythonpath(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = EngineSettings.for_stack("local").cli_env()
    assert "PYTHONPATH" not in env and env["SOMETHING_ELSE"] == "kept"


def test_the_pinned_cli_comes_first_and_ci_uses_the_one_on_path(tmp_path, monkeypatch):
    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "pulumi").write_text("#!/bin/sh\n")
    (on_path / "pulumi").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert pulumi_bin(tmp_path / "no-cache") == on_path / "pulumi"
    pinned = tmp_path / "cache" / "bin" / "pulumi"
    pinned.parent.mkdir(parents=True)
    pinned.write_text("")
    assert pulumi_bin(tmp_path / "cache") == pinned
