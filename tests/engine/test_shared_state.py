"""A team's shared state: two operators on two machines, one real S3-compatible backend (SeaweedFS).

The object store runs in the `auth` host's network namespace; operator alice works from `mx`'s and bob
from `edge`'s (each with its own checkout, hostname and PULUMI_HOME), both on the same stack in the same
bucket with the same passphrase, as a team with its stack config in git would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine.harness import PASSPHRASE, bed_config, find_secrets
from toolchain.stackctl.engine import PROJECT_DIR, EngineSettings, pulumi_bin
from toolchain.testbed.s3server import S3Server

pytestmark = [pytest.mark.engine, pytest.mark.long(150)]

STACK = "team"
RATE = "smtpd_client_connection_rate_limit"
HOST_LOCK = "/run/secure-postfix/host.lock"
LOCKS = ".pulumi/locks"


class Operator:
    """One operator's checkout (program, Pulumi.yaml, .venv link, stack config) whose CLI runs on a bed host."""

    def __init__(self, root: Path, bed, machine: str, server: S3Server, stack: str = STACK):
        self.root, self.bed, self.machine, self.stack = root, bed, machine, stack
        root.mkdir(parents=True)
        for name in ("__main__.py", "Pulumi.yaml"):
            shutil.copy(PROJECT_DIR / name, root / name)
        shutil.copytree(
            PROJECT_DIR / "secure_postfix", root / "secure_postfix", ignore=shutil.ignore_patterns("__pycache__")
        )
        (root / ".venv").symlink_to((PROJECT_DIR / ".venv").resolve())
        (root / "stacks").mkdir()
        settings = EngineSettings(work_dir=root, passphrase=PASSPHRASE, backend_url=server.backend_url())
        self.env = {**settings.cli_env(), **server.credentials(), "PULUMI_HOME": str(root / ".pulumi-home")}

    @property
    def config_file(self) -> Path:
        return self.root / "stacks" / f"Pulumi.{self.stack}.yaml"

    def configure(self, config: dict) -> None:
        """The stack config as the team's repository holds it (the passphrase salt kept)."""
        old = self.config_file.read_text() if self.config_file.exists() else ""
        salt = [ln for ln in old.splitlines() if ln.startswith("encryptionsalt:")]
        values = {f"secure-postfix:{k}": v for k, v in config.items()}
        self.config_file.write_text("\n".join([*salt, "config: " + json.dumps(values)]) + "\n")

    def pulls_from(self, other: Operator) -> None:
        shutil.copy(other.config_file, self.config_file)

    def command(self, *args: str) -> list[str]:
        pid = self.bed.hosts[self.machine].pid
        # Its network and its host name: another machine, as far as the network and the lock holder go.
        return ["nsenter", "-t", str(pid), "-n", "-u", "--", str(pulumi_bin()), *args, "--non-interactive"]

    def pulumi(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args, "--stack", self.stack),
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args, "--stack", self.stack),
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def ok(self, *args: str) -> str:
        done = self.pulumi(*args)
        assert done.returncode == 0, f"{self.machine}: pulumi {' '.join(args)}\n{done.stdout}\n{done.stderr}"
        return done.stdout


def sites(rate: int, extra: dict | None = None) -> dict:
    return {"solo": {"postfix_host": "mx", "limits": {RATE: rate}, "directives": extra or {}}}


@pytest.fixture(scope="module")
def team(testbed, tmp_path_factory):
    server = S3Server(testbed, "auth", tmp_path_factory.mktemp("s3") / "data")
    server.start()
    alice = Operator(tmp_path_factory.mktemp("alice") / "checkout", testbed, "mx", server)
    bob = Operator(tmp_path_factory.mktemp("bob") / "checkout", testbed, "edge", server)
    try:
        alice.configure(bed_config(testbed, sites(30), ["mx"]))
        alice.ok("stack", "init", "--secrets-provider", "passphrase")
        bob.pulls_from(alice)
        bob.ok("stack", "select")
        yield server, alice, bob
        release_host_lock(testbed)
        bob.pulumi("cancel", "--yes")
        alice.configure(bed_config(testbed, sites(30), ["mx"]))
        alice.ok("destroy", "--yes")
    finally:
        release_host_lock(testbed)
        server.stop()


def hold_host_lock(testbed) -> None:
    """The project's own lock on mx, held by hand: an `up` then waits for it, holding the stack lock meanwhile."""
    testbed.run(
        "mx",
        f"mkdir -p -m 0700 /run/secure-postfix && (flock {HOST_LOCK} sleep 300 </dev/null >/dev/null 2>&1 &)",
    )


def release_host_lock(testbed) -> None:
    testbed.run("mx", "pkill -f 'sleep 300' || true", check=False)


def until_locked(server: S3Server, proc: subprocess.Popen, timeout: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        locks = server.objects(LOCKS)
        if locks:
            return locks
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.3)
    raise AssertionError("the first up never took the stack lock")


def postconf(testbed, name: str) -> str:
    return testbed.run("mx", f"postconf -h {name}").stdout.strip()


def test_one_operators_up_is_what_the_other_previews_against(testbed, team):
    server, alice, bob = team
    alice.ok("up", "--yes")
    assert postconf(testbed, RATE) == "30"
    # bob's checkout holds the same config: nothing to change, and nothing read from a host.
    bob.ok("preview", "--expect-no-changes")
    assert any("/.pulumi/stacks/" in path for path in server.objects(".pulumi"))


def test_a_second_up_is_refused_by_the_stack_lock_naming_its_holder(testbed, team):
    server, alice, bob = team
    hold_host_lock(testbed)
    alice.configure(bed_config(testbed, sites(25), ["mx"]))
    first = alice.start("up", "--yes")
    try:
        until_locked(server, first)
        second = bob.pulumi("up", "--yes", timeout=120)
        refused = second.stdout + second.stderr
        assert second.returncode != 0
        assert "the stack is currently locked" in refused and "pulumi cancel" in refused, refused
        # The holder: alice's machine, by its host name.
        assert f"created by root@{testbed.hosts['mx'].hostname} (pid " in refused, refused
        print(f"bob's up while alice's runs: {refused.strip().splitlines()[-2:]}")
    finally:
        release_host_lock(testbed)
    output, _ = first.communicate(timeout=180)
    assert first.returncode == 0, output
    assert postconf(testbed, RATE) == "25"
    assert server.objects(LOCKS) == []
    bob.pulls_from(alice)
    bob.ok("preview", "--expect-no-changes")


def test_refresh_from_either_sees_the_others_change(testbed, team):
    _, alice, bob = team
    bob.configure(bed_config(testbed, sites(20), ["mx"]))
    bob.ok("up", "--yes")
    alice.ok("refresh", "--yes")
    exported = json.loads(alice.ok("stack", "export"))
    postfix = next(r for r in exported["deployment"]["resources"] if r["type"].endswith(":PostfixConfig"))
    assert postfix["outputs"]["main_cf"][RATE] == "20"
    # alice's checkout is behind bob's: her preview shows what pulling first avoids.
    assert '"20" => "25"' in alice.ok("preview", "--diff")
    alice.pulls_from(bob)
    alice.ok("preview", "--expect-no-changes")


def test_a_controller_killed_mid_up_leaves_a_lock_the_other_clears(testbed, team):
    server, alice, bob = team
    hold_host_lock(testbed)
    alice.configure(bed_config(testbed, sites(15), ["mx"]))
    killed = alice.start("up", "--yes")
    try:
        until_locked(server, killed)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert server.objects(LOCKS), "the killed up left no lock"
        refused = bob.pulumi("up", "--yes")
        assert refused.returncode != 0 and "the stack is currently locked" in refused.stdout + refused.stderr
        print(f"the lock left by alice's killed up: {server.objects(LOCKS)}")
        bob.ok("cancel", "--yes")
        assert server.objects(LOCKS) == []
    finally:
        release_host_lock(testbed)
    bob.ok("up", "--yes")
    assert postconf(testbed, RATE) == "20"  # bob's checkout: what he declares
    bob.ok("preview", "--expect-no-changes", "--refresh")
    alice.pulls_from(bob)


def test_two_stacks_on_one_host_from_two_operators_at_once(testbed, team):
    server, alice, bob = team
    other = Operator(bob.root.parent / "other-stack", testbed, "edge", server, stack="team-extra")
    extra = {"solo": {"postfix_host": "mx", "directives": {"default_process_limit": "77"}}}
    other.configure({**bed_config(testbed, {}, ["mx"]), "sites": extra})
    other.ok("stack", "init", "--secrets-provider", "passphrase")
    alice.configure(bed_config(testbed, sites(12), ["mx"]))
    try:
        ups = [alice.start("up", "--yes"), other.start("up", "--yes")]
        outputs = [p.communicate(timeout=300)[0] for p in ups]
        assert [p.returncode for p in ups] == [0, 0], outputs
        # The host lock took them in turn: each change is there, neither lost.
        assert postconf(testbed, RATE) == "12" and postconf(testbed, "default_process_limit") == "77"
        alice.ok("preview", "--expect-no-changes", "--refresh")
        other.ok("preview", "--expect-no-changes", "--refresh")
    finally:
        other.ok("destroy", "--yes")
        other.ok("stack", "rm", "--yes")
    assert postconf(testbed, RATE) == "12"


def test_the_bucket_holds_no_secret_in_plaintext(testbed, team):
    server, _, _ = team
    secrets = {"SSH private key": testbed.client_key_path.read_text(), "passphrase": PASSPHRASE}
    paths = server.objects()
    assert len(paths) >= 2, paths  # the stack's checkpoint and its history, at least
    found = {path: find_secrets(server.read(path).decode("utf-8", "replace"), secrets) for path in paths}
    assert {p: f for p, f in found.items() if f} == {}
    print(f"secret sweep of the bucket: {len(paths)} objects, 0 holding a secret")
