"""The real `pulumi` CLI, run as a user runs it: in a copy of the project folder, through our language host.

One stack for the module, two sites on two hosts: `a` on mx (the guide's eight limits and TLS), `b` on edge.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from secure_postfix.core.certificates import summary_of
from tests.engine import mail_client
from tests.engine.harness import EngineProject, bed_config, sha256
from tests.tls_files import make_cert
from toolchain.stackctl import pr_preview
from toolchain.stackctl.engine import PROJECT_DIR, ensure_stack, pulumi_bin

pytestmark = pytest.mark.engine

STACK = "cli"
LIMITS_A = {
    "message_size_limit": 1048576,
    "header_size_limit": 51200,
    "queue_minfree": 1572864,
    "default_process_limit": 50,
    "smtpd_client_connection_rate_limit": 30,
    "smtpd_client_message_rate_limit": 60,
    "anvil_rate_time_unit": "60s",
    "smtpd_client_event_limit_exceptions": "$mynetworks",
}
LIMITS_B = {"message_size_limit": 2097152, "smtpd_client_connection_rate_limit": 20}
HOSTS = {"a": "mx", "b": "edge"}
MAIN_CF = "/etc/postfix/main.cf"


class CliProject(EngineProject):
    """A scratch copy of the project folder (program, Pulumi.yaml, virtualenv link) driven by `pulumi`."""

    def __init__(self, root: Path, stack_name: str):
        super().__init__(root, stack_name)
        shutil.copy(PROJECT_DIR / "__main__.py", root / "__main__.py")
        shutil.copytree(
            PROJECT_DIR / "secure_postfix", root / "secure_postfix", ignore=shutil.ignore_patterns("__pycache__")
        )
        # Pulumi.yaml names `.venv`, relative to the project folder, as in a checkout.
        (root / ".venv").symlink_to((PROJECT_DIR / ".venv").resolve())
        self.env = self.settings.cli_env()
        ensure_stack(stack_name, self.settings, self.env)

    def pulumi(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(pulumi_bin()), *args, "--stack", self.stack_name, "--non-interactive"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str) -> str:
        run = self.pulumi(*args)
        assert run.returncode == 0, f"pulumi {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
        return run.stdout

    def urn(self, name: str) -> str:
        resources = json.loads(self.ok("stack", "export"))["deployment"]["resources"]
        return next(r["urn"] for r in resources if r["urn"].endswith(f"::{name}"))


def logins(testbed) -> int:
    """Successful SSH logins on both hosts so far, from their own sshd logs."""
    time.sleep(0.2)  # sshd writes its log line just after the login
    return sum(
        (testbed.hosts[h].root / "log" / "sshd.log").read_text(errors="replace").count("Accepted publickey")
        for h in HOSTS.values()
    )


def postconf(testbed, host: str, name: str) -> str:
    return testbed.run(host, f"postconf -h {name}").stdout.strip()


def main_cf_sum(testbed, host: str) -> str:
    return sha256(testbed.read_file(host, MAIN_CF))


def property_lines(preview: str) -> list[str]:
    """Every `name: value` line of a `preview --diff`, with the display's column padding taken out."""
    lines = (re.sub(r"^([~+-] )?(\w+)\s+:", r"\1\2:", line.strip()) for line in preview.splitlines())
    return [line for line in lines if re.match(r"([~+-] )?\w+: ", line)]


def changed_lines(preview: str) -> list[str]:
    """The changed directives of a `preview --diff`: the `~ name: old => new` (or `+`/`-`) lines inside each
    `main_cf` block. Properties derived from them (the compliance verdicts) change along and are left out."""
    found: list[str] = []
    block_indent: int | None = None
    for raw in preview.splitlines():
        indent = len(raw) - len(raw.lstrip())
        line = re.sub(r"^([~+-] )?(\w+)\s+:", r"\1\2:", raw.strip())
        if block_indent is None:
            if re.match(r"([~+-] )?main_cf: \{$", line):
                block_indent = indent
        elif line == "}" and indent <= block_indent + 2:
            block_indent = None
        elif line[:2] in ("~ ", "+ ", "- "):
            found.append(line)
    return found


@pytest.fixture(scope="module")
def project(testbed, tmp_path_factory):
    certs = make_cert(tmp_path_factory.mktemp("cli-certs"), testbed.hosts["mx"].hostname)
    sites = {
        "a": {"postfix_host": "mx", "limits": LIMITS_A, "tls": {"cert_file": str(certs[0]), "key_file": str(certs[1])}},
        "b": {"postfix_host": "edge", "limits": LIMITS_B},
    }
    originals = {h: testbed.read_file(h, MAIN_CF) for h in HOSTS.values()}
    project = CliProject(tmp_path_factory.mktemp("cli"), STACK)
    project.configure(bed_config(testbed, sites, list(HOSTS.values())))
    project.tls_key = certs[1].read_text()
    project.originals = originals
    project.cert_paths = certs
    yield project
    # Whatever happened, give the hosts back.
    destroyed = project.pulumi("destroy", "--yes")
    for host in HOSTS.values():
        testbed.restart_postfix(host)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert {h: testbed.read_file(h, MAIN_CF) for h in HOSTS.values()} == originals


class TestPulumiCli:
    def test_plain_preview_opens_no_ssh_and_diff_lists_each_directive(self, testbed, project):
        before = logins(testbed)
        plain = project.ok("preview")
        assert "PostfixConfig" in plain
        diff = project.ok("preview", "--diff")
        assert logins(testbed) == before
        lines = property_lines(diff)
        for name, value in {**LIMITS_A, **LIMITS_B}.items():
            assert f'{name}: "{value}"' in lines, (name, diff)

    def test_up_applies_both_sites(self, testbed, project):
        project.ok("up", "--yes")
        for site, limits in (("a", LIMITS_A), ("b", LIMITS_B)):
            for name, value in limits.items():
                assert postconf(testbed, HOSTS[site], name) == str(value), (site, name)
        # As a mail client sees it: the size limit is what the server advertises.
        client = mail_client.connect(testbed.hosts["mx"].address, testbed.client_addresses[0])
        try:
            assert f"SIZE {LIMITS_A['message_size_limit']}" in mail_client.ehlo_lines(client)
        finally:
            client.quit()

    def test_policy_pack_runs_through_our_language_host(self, testbed, project):
        # RunPlugin: the CLI hands the Python pack to the project's language host, which runs it in the
        # project's virtualenv. A weakened limit, put back afterwards, is reported (advisory).
        key = "secure-postfix:sites.b.limits.smtpd_client_connection_rate_limit"
        project.ok("config", "set", "--path", key, "0")
        try:
            out = project.ok("preview", "--policy-pack", str(PROJECT_DIR / "policy"))
        finally:
            project.ok("config", "set", "--path", key, str(LIMITS_B["smtpd_client_connection_rate_limit"]))
        edge = testbed.hosts["edge"].address
        assert "[advisory]" in out, out
        rule = "guide-8.8-smtpd_client_connection_rate_limit"
        assert f"{rule} fails on {edge}: smtpd_client_connection_rate_limit = 0" in out, out

    def test_converged_up_with_refresh_expects_no_changes(self, project):
        project.ok("up", "--refresh", "--yes", "--expect-no-changes")

    def test_config_set_path_then_preview_shows_exactly_that_change(self, testbed, project):
        key = "secure-postfix:sites.b.limits.smtpd_client_connection_rate_limit"
        project.ok("config", "set", "--path", key, "7")
        before = logins(testbed)
        plain = project.ok("preview")
        assert re.search(r"PostfixConfig\s+b-postfix\s+update", plain), plain
        diff = project.ok("preview", "--diff")
        assert logins(testbed) == before  # a preview of a change on existing resources reads only the state
        assert changed_lines(diff) == ['~ smtpd_client_connection_rate_limit: "20" => "7"'], diff
        assert re.search(r"~ 1 to update", diff), diff

    def test_pr_preview_comment_names_site_host_and_each_directive(self, testbed, project):
        # A new certificate and key for site a, put back afterwards: the preview only reads them.
        cert_path, key_path = (Path(p) for p in project.cert_paths)
        saved = cert_path.read_bytes(), key_path.read_bytes()
        make_cert(cert_path.parent, testbed.hosts["mx"].hostname)
        old_summary, new_summary = summary_of(saved[0].decode()), summary_of(cert_path.read_text())
        before = logins(testbed)
        try:
            comment = pr_preview.run(STACK, project.settings)
        finally:
            cert_path.write_bytes(saved[0])
            key_path.write_bytes(saved[1])
        assert logins(testbed) == before
        mx, edge = testbed.hosts["mx"].address, testbed.hosts["edge"].address
        head, verdicts = comment.split("\n\n#### Compliance as planned\n", 1)
        # Every host's planned verdict follows the changes (the preview judges, nothing reads the old report).
        assert (
            f"- host `mx ({mx})` (`a-postfix`): " in verdicts and f"- host `edge ({edge})` (`b-postfix`): " in verdicts
        )
        assert head.splitlines()[1:] == [
            f"### `pulumi preview` of stack `{STACK}`: 2 to update",
            "",
            # The certificate by its one line (expiry, names, fingerprint), as `pulumi preview --diff` shows it.
            f"- site `a`, host `{mx}` (`a-postfix`): `tls_certificate` `{old_summary}` → `{new_summary}`",
            f"- site `a`, host `{mx}` (`a-postfix`): `tls_key_pem` `[secret]` → `[secret]`",
            f"- site `b`, host `{edge}` (`b-postfix`): `smtpd_client_connection_rate_limit` `20` → `7`",
        ], comment
        assert "PRIVATE KEY" not in comment

    def test_up_target_leaves_the_other_site_untouched(self, testbed, project):
        project.ok("config", "set", "--path", "secure-postfix:sites.a.limits.default_process_limit", "40")
        mx_before = main_cf_sum(testbed, "mx")
        project.ok("up", "--yes", "--target", project.urn("b-postfix"))
        assert postconf(testbed, "edge", "smtpd_client_connection_rate_limit") == "7"
        assert main_cf_sum(testbed, "mx") == mx_before
        # Site a's change is still to come.
        assert changed_lines(project.ok("preview", "--diff")) == ['~ default_process_limit: "50" => "40"']

    def test_drift_is_found_by_preview_refresh_diff(self, testbed, project):
        testbed.run("edge", "postconf -e message_size_limit=3000000 && postfix reload")
        diff = project.ok("preview", "--refresh", "--diff")
        assert f'~ message_size_limit: "3000000" => "{LIMITS_B["message_size_limit"]}"' in changed_lines(diff), diff

    def test_refresh_records_the_drift_and_up_heals_it(self, testbed, project):
        project.ok("refresh", "--yes")
        before = logins(testbed)
        diff = project.ok("preview", "--diff")  # from state alone: no SSH, and the drift is in it
        assert logins(testbed) == before
        assert f'~ message_size_limit: "3000000" => "{LIMITS_B["message_size_limit"]}"' in changed_lines(diff), diff
        project.ok("up", "--yes")
        assert postconf(testbed, "edge", "message_size_limit") == str(LIMITS_B["message_size_limit"])
        assert postconf(testbed, "mx", "default_process_limit") == "40"

    def test_stack_export_holds_no_key(self, testbed, project):
        exported = project.ok("stack", "export")
        ssh_key = testbed.client_key_path.read_text()
        for secret, label in ((ssh_key, "SSH key"), (project.tls_key, "TLS key")):
            body = "".join(line for line in secret.splitlines() if "-----" not in line)
            assert body[:40] not in exported.replace("\\n", ""), label
        assert "PRIVATE KEY" not in exported

    def test_destroy_restores_both_hosts(self, testbed, project):
        project.ok("destroy", "--yes")
        assert {h: testbed.read_file(h, MAIN_CF) for h in HOSTS.values()} == project.originals
