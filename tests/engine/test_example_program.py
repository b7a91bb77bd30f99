"""The library as a Pulumi user meets it: `pip install` of the package into a virtualenv of their own, outside
this checkout, and a plain Python program (examples/behind-a-bastion) with no stack config of this project's.

The mail host (mx) answers SSH only to the bastion (auth) while the test runs, so the program's
`ConnectionArgs(proxy=…)` is the only way in; the host is then checked from outside as a mail client would."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine import fault_support as fs
from tests.engine import mail_client
from tests.engine.harness import RECORD, dovecot_password
from tests.tls_files import make_cert
from toolchain.stackctl.engine import PROJECT_DIR, EngineSettings, pulumi_bin
from toolchain.testbed.jumpnet import behind_bastion

pytestmark = [pytest.mark.engine, pytest.mark.long(120)]

EXAMPLE = PROJECT_DIR / "examples" / "behind-a-bastion"
TARGET, BASTION = "mx", "auth"
USER = "carol"
DOVECOT_FILE = "/etc/dovecot/conf.d/99-secure-postfix-auth.conf"
FILES = (*fs.WATCHED, DOVECOT_FILE)
PASSPHRASE = "example-passphrase"


def _pins(lock: Path) -> str:
    """The runtime lock's versions without its hashes, as pip constraints: the user gets what CI tested."""
    return "\n".join(m.group(0) for m in re.finditer(r"^[A-Za-z0-9_.\-]+==[^\s\\]+", lock.read_text(), re.M)) + "\n"


def user_env() -> dict[str, str]:
    """A user's shell: no PYTHONPATH into this checkout (an inline run earlier in the session sets one)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory) -> Path:
    """A virtualenv outside the checkout that has run `pip install <package>[command]` and nothing else."""
    base = tmp_path_factory.mktemp("library-user")
    source = base / "secure-postfix"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_DIR / name, source / name)
    package = PROJECT_DIR / "secure_postfix"
    shutil.copytree(package, source / "secure_postfix", ignore=shutil.ignore_patterns("__pycache__"))
    (base / "constraints.txt").write_text(_pins(PROJECT_DIR / "requirements.txt"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=user_env())
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*install, "-c", str(base / "constraints.txt"), f"{source}[command]"],
        check=True,
        timeout=900,
        cwd=base,
        env=user_env(),
    )
    return venv


def test_pip_install_gives_the_public_api_and_nothing_of_the_checkout(user_venv, tmp_path):
    probe = "import secure_postfix, typing; print(secure_postfix.__all__); print(secure_postfix.__file__)"
    run = subprocess.run(
        [str(user_venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=user_env(),
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    names, where = run.stdout.splitlines()
    assert "'PostfixConfig'" in names and "'DovecotAuthServiceArgs'" in names and "'MailSite'" in names
    assert where.startswith(str(user_venv)), where
    assert not Path(where).is_relative_to(PROJECT_DIR)


class UserProject:
    """The example program in a folder of its own, its virtualenv the user's, driven by the `pulumi` CLI."""

    def __init__(self, root: Path, venv: Path):
        shutil.copytree(EXAMPLE, root)
        (root / "venv").symlink_to(venv)
        self.root = root
        settings = EngineSettings(work_dir=root, state_dir=root / "state", passphrase=PASSPHRASE)
        settings.state_dir.mkdir()
        self.env = settings.cli_env()
        self.run("stack", "init", "dev", "--secrets-provider", "passphrase")

    def run(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        done = subprocess.run(
            [str(pulumi_bin()), *args, "--non-interactive"],
            cwd=self.root,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"pulumi {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def config(self, key: str, value: str, secret: bool = False) -> None:
        if secret:
            RECORD.secret(f"example {key}", value)
        self.run("config", "set", *(["--secret"] if secret else []), key, stdin=value)


def test_the_example_hardens_a_host_behind_a_bastion_and_destroy_gives_it_back(testbed, user_venv, tmp_path):
    target, bastion = testbed.hosts[TARGET], testbed.hosts[BASTION]
    password = dovecot_password(testbed, (TARGET,), USER, "Dovecot password (example)")
    cert, key = make_cert(tmp_path / "tls", target.hostname)
    project = UserProject(tmp_path / "example", user_venv)
    project.config("host", target.address)
    project.config("host_key", target.host_key)
    project.config("bastion", bastion.address)
    project.config("bastion_host_key", bastion.host_key)
    project.config("ssh_private_key", testbed.client_key_path.read_text(), secret=True)
    project.config("tls_cert_pem", cert.read_text())
    project.config("tls_key_pem", key.read_text(), secret=True)
    pristine = fs.digests(testbed, TARGET, FILES)
    logins = _bastion_logins(testbed)
    with behind_bastion(testbed, [TARGET], BASTION):
        project.run("up", "--yes", timeout=600)
        assert _bastion_logins(testbed) > logins, "the target was not reached through the bastion"
        outputs = json.loads(project.run("stack", "output", "--json"))
        assert outputs["sasl_path"] == "private/auth" and outputs["postfix_version"]

        # From outside, as a mail client: the size limit announced, no AUTH before STARTTLS, 235 after it.
        client = mail_client.connect(target.address, testbed.client_addresses[-1])
        try:
            assert "SIZE 20480000" in mail_client.ehlo_lines(client)
            assert not any(ln.startswith("AUTH") for ln in mail_client.ehlo_lines(client))
            client.starttls(context=mail_client.tls_context())
            client.ehlo("client.example")
            token = base64.b64encode(f"\0{USER}\0{password}".encode()).decode()
            code, _ = client.docmd("AUTH", "PLAIN " + token)
            assert code == 235
        finally:
            client.close()

        project.run("preview", "--expect-no-changes")
        project.run("destroy", "--yes", timeout=600)
    assert fs.digests(testbed, TARGET, FILES) == pristine


def _bastion_logins(testbed) -> int:
    log = (testbed.hosts[BASTION].root / "log" / "sshd.log").read_text(errors="replace")
    return log.count("Accepted publickey")
