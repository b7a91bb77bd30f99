"""The CrossGuard pack in policy/ through the real engine: advisory by default, per-rule mandatory by its config.

A preview opens no SSH connection, so these hosts need not exist. The inline runner has no
Python language host of its own, so the CLI starts the pack through the
`pulumi-analyzer-policy-python` plugin that scripts/setup.sh installs; the CLI used here sits
in a folder with only that plugin and the dynamic-provider shim beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pulumi import automation as auto

from secure_postfix.stack.program import main as program
from tests.engine.harness import EngineProject, Run
from tests.tls_files import make_cert
from toolchain.stackctl.engine import CACHE_DIR, PROJECT_DIR

pytestmark = pytest.mark.engine

PACK = str(PROJECT_DIR / "policy")
RATE = "guide-8.8-smtpd_client_connection_rate_limit"
HOST = "192.0.2.25"  # documentation address: a preview never connects
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
GUIDE_LIMITS = {
    "message_size_limit": 10240000,
    "header_size_limit": 102400,
    "queue_minfree": 15360000,
    "default_process_limit": 100,
    "smtpd_client_connection_rate_limit": 30,
    "smtpd_client_message_rate_limit": 60,
    "anvil_rate_time_unit": "60s",
    "smtpd_client_event_limit_exceptions": "$mynetworks",
}


# The functions of scripts/setup.sh that write the Python plugins' shims.
SHIM_WRITERS = ("python_plugin_shim", "plugin_shims")


@pytest.fixture(scope="module")
def cli_root(tmp_path_factory) -> Path:
    """The pinned CLI with the plugins setup puts beside it, but no language host."""
    root = tmp_path_factory.mktemp("cli")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    try:
        os.link(CACHE_DIR / "bin" / "pulumi", bin_dir / "pulumi")
    except OSError:
        shutil.copy2(CACHE_DIR / "bin" / "pulumi", bin_dir / "pulumi")
    shutil.copy2(CACHE_DIR / "bin" / "pulumi-resource-pulumi-python", bin_dir)
    # The plugins exactly as scripts/setup.sh writes them.
    functions = "; ".join(
        f'source <(sed -n "/^{name}()/,/^}}/p" {PROJECT_DIR}/scripts/setup.sh)' for name in SHIM_WRITERS
    )
    script = f"{functions}; plugin_shims"
    env = {**os.environ, "BIN": str(bin_dir), "ROOT": str(PROJECT_DIR)}
    subprocess.run(["bash", "-c", script], check=True, env=env)
    assert (bin_dir / "pulumi-analyzer-policy-python").stat().st_mode & 0o100
    return root


class PolicyProject(EngineProject):
    """An EngineProject whose stack runs on the CLI in `cli_root` (the harness's runs on the one in .cache/bin)."""

    def __init__(self, root: Path, stack_name: str, cli_root: Path):
        super().__init__(root, stack_name)
        self.cli_root = cli_root
        self._policy_stack: auto.Stack | None = None

    @property
    def stack(self) -> auto.Stack:
        if self._policy_stack is None:
            self.settings.state_dir.mkdir(parents=True, exist_ok=True)
            env = self.settings.env()
            others = (p for p in os.environ["PATH"].split(":") if "/.cache/bin" not in p)
            env["PATH"] = ":".join([str(self.cli_root / "bin"), *others])
            workspace = auto.LocalWorkspace(
                work_dir=str(self.root),
                pulumi_home=str(CACHE_DIR / "pulumi-home"),
                program=program,
                env_vars=env,
                secrets_provider="passphrase",
                pulumi_command=auto.PulumiCommand(root=str(self.cli_root), skip_version_check=True),
            )
            self._policy_stack = auto.Stack.create_or_select(self.stack_name, workspace)
        return self._policy_stack


@pytest.fixture(scope="module")
def project(tmp_path_factory, cli_root) -> PolicyProject:
    return PolicyProject(tmp_path_factory.mktemp("policy"), "policy", cli_root)


@pytest.fixture(scope="module")
def site(project) -> dict:
    """The guide's settings on one host: limits, SASL over the UNIX socket, TLS."""
    cert, key = make_cert(project.root / "tls", "mx.example.invalid")
    return {
        "postfix_host": "mx",
        "dovecot_host": "mx",
        "limits": GUIDE_LIMITS,
        "sasl": {"listener": "unix"},
        "tls": {"cert_file": str(cert), "key_file": str(key)},
    }


@pytest.fixture
def configure(project, site):
    ssh_key = project.root / "ssh_key"
    ssh_key.write_text("unused: a preview opens no SSH connection\n")

    def write(**limits) -> None:
        # Every rule's directives set: a rule the stack leaves to the host counts as a violation.
        banner = {"smtpd_banner": "$myhostname ESMTP"}
        sites = {"solo": {**site, "limits": {**GUIDE_LIMITS, **limits}, "directives": banner}}
        hosts = {"mx": {"address": HOST, "host_key": HOST_KEY}}
        project.configure({"ssh_private_key_file": str(ssh_key), "hosts": hosts, "sites": sites})

    return write


def preview(project, tmp_path, config: dict | None = None) -> Run:
    kwargs: dict = {"policy_packs": [PACK]}
    if config is not None:
        path = tmp_path / "policy-config.json"
        path.write_text(json.dumps(config))
        kwargs["policy_pack_configs"] = [str(path)]
    return project.preview(**kwargs)


def test_guide_settings_pass_every_rule_made_mandatory(project, configure, tmp_path):
    configure()
    run = preview(project, tmp_path, {"all": "mandatory"})
    assert run.ok, run.text
    assert "secure-postfix-compliance" in run.text  # the pack did run
    assert "fails on" not in run.text


def test_weakened_host_is_advisory_by_default(project, configure, tmp_path):
    configure(smtpd_client_connection_rate_limit=0)
    run = preview(project, tmp_path)
    assert run.ok, run.text
    assert "[advisory]" in run.text
    assert f"{RATE} fails on {HOST}: smtpd_client_connection_rate_limit = 0" in run.text


def test_mandatory_rule_fails_the_preview_naming_rule_host_and_value(project, configure, tmp_path):
    configure(smtpd_client_connection_rate_limit=0, queue_minfree=100)
    run = preview(project, tmp_path, {RATE: "mandatory"})
    assert not run.ok
    assert "[mandatory]" in run.text
    assert f"{RATE} fails on {HOST}: smtpd_client_connection_rate_limit = 0: 0 means no limit" in run.text
    # The other failed rule stays advisory: reported, but it does not fail the preview by itself.
    assert f"guide-8.8-queue_minfree fails on {HOST}: queue_minfree = 100" in run.text


def test_a_rule_left_to_the_host_is_a_violation(project, configure, tmp_path, site):
    sites = {"solo": {**site, "limits": GUIDE_LIMITS}}  # no smtpd_banner
    hosts = {"mx": {"address": HOST, "host_key": HOST_KEY}}
    configure()
    project.configure({"ssh_private_key_file": str(project.root / "ssh_key"), "hosts": hosts, "sites": sites})
    run = preview(project, tmp_path, {"postfix_server_banner": "mandatory"})
    assert not run.ok
    assert f"postfix_server_banner is not managed on {HOST}" in run.text, run.text


def test_mended_config_passes_with_the_rule_mandatory(project, configure, tmp_path):
    configure()
    run = preview(project, tmp_path, {RATE: "mandatory"})
    assert run.ok, run.text
    assert "fails on" not in run.text
