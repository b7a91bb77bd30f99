"""The workflows keep the fleet's secrets from unreviewed code, and the supply chain pinned (read from the files).

Each check fails on the mistake it names: a test below plants that mistake in a copy and sees it caught.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
# What logs in as root on every host, and what decrypts every secret in state.
DEPLOY_SECRETS = ("SSH_PRIVATE_KEY",)
STATE_SECRETS = ("PULUMI_CONFIG_PASSPHRASE",)
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(text: str) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True.
    data = yaml.safe_load(text)
    if True in data:
        data["on"] = data.pop(True)
    return data


def workflows() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(WORKFLOWS.glob("*.yml"))}


def triggers(flow: dict[str, Any]) -> set[str]:
    on = flow.get("on")
    return {on} if isinstance(on, str) else set(on or ())


def steps(flow: dict[str, Any]):
    for name, job in (flow.get("jobs") or {}).items():
        for step in job.get("steps") or []:
            yield name, job, step


def secrets_named(value: Any) -> set[str]:
    return set(re.findall(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)", yaml.safe_dump(value)))


# -- the checks ---------------------------------------------------------------------------


def unpinned_actions(text: str) -> list[str]:
    """Every `uses:` that is not a commit SHA (a tag can be moved to other code)."""
    flow = load(text)
    found = []
    for _, _job, step in steps(flow):
        uses = step.get("uses")
        if uses and not uses.startswith("./") and not PINNED.match(uses):
            found.append(uses)
    for job in (flow.get("jobs") or {}).values():
        uses = job.get("uses")
        if uses and not uses.startswith("./") and not PINNED.match(uses):
            found.append(uses)
    return found


def secrets_reachable_from_pull_requests(text: str) -> list[str]:
    """A `pull_request` workflow runs the branch's code: no deploy key and no state passphrase may reach it.

    A `pull_request_target` workflow runs main's code with secrets: it must not run the branch's code, so
    its checkouts of the pull request are of the stack configs alone, and the deploy key is not there at all.
    """
    flow = load(text)
    on = triggers(flow)
    problems = []
    if "pull_request" in on or "pull_request_target" in on:
        for name, job in (flow.get("jobs") or {}).items():
            named = secrets_named(job)
            for secret in DEPLOY_SECRETS:
                if secret in named:
                    problems.append(f"job {name} can read {secret}")
            if "pull_request" in on:
                for secret in STATE_SECRETS:
                    if secret in named:
                        problems.append(f"job {name} runs the branch's code and can read {secret}")
            for secret in STATE_SECRETS:
                if secret in secrets_named({k: v for k, v in job.items() if k != "steps"}):
                    problems.append(f"job {name} gives {secret} to every step (give it to the step that needs it)")
    if "pull_request_target" in on:
        for name, _, step in steps(flow):
            ref = str((step.get("with") or {}).get("ref", ""))
            sparse = (step.get("with") or {}).get("sparse-checkout")
            if ("pull_request" in ref or "head" in ref) and sparse != "stacks":
                problems.append(f"job {name} checks out the pull request's code, not only its stack configs")
    return problems


def hygiene(text: str) -> list[str]:
    """Expressions pasted into shell text, and checkouts that leave the token on disk."""
    problems = []
    for name, _, step in steps(load(text)):
        run = step.get("run") or ""
        for expression in re.findall(r"\$\{\{[^}]*\}\}", run):
            problems.append(f"job {name}: {expression} is pasted into a shell script (pass it through env:)")
        uses = step.get("uses") or ""
        if uses.startswith("actions/checkout@") and (step.get("with") or {}).get("persist-credentials") is not False:
            problems.append(f"job {name}: actions/checkout without persist-credentials: false")
    return problems


def unhashed_requirements(text: str) -> list[str]:
    """Every requirement of a lock without its hash (pip then installs whatever the index serves)."""
    found = []
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        entry = entry.split("#", 1)[0].strip() if not entry.strip().startswith("--hash") else entry.strip()
        if not entry or entry.startswith("-"):
            continue
        if "==" not in entry.split()[0] or "--hash=sha256:" not in entry:
            found.append(entry.split()[0])
    return found


# -- on the project's files -------------------------------------------------------------------


def test_every_action_is_pinned_by_commit():
    for name, text in workflows().items():
        assert unpinned_actions(text) == [], name


def test_no_deploy_key_or_passphrase_reaches_unreviewed_code():
    for name, text in workflows().items():
        assert secrets_reachable_from_pull_requests(text) == [], name


def test_workflow_hygiene():
    for name, text in workflows().items():
        assert hygiene(text) == [], name


def test_only_deploy_gets_the_deploy_key_and_it_runs_the_policy_pack():
    deploy = load((WORKFLOWS / "deploy.yml").read_text())
    assert triggers(deploy) == {"push"}
    assert "SSH_PRIVATE_KEY" in secrets_named(deploy)
    inputs = [step.get("with") or {} for _, _, step in steps(deploy)]
    up = next(i for i in inputs if i.get("command") == "up")
    assert up["policyPacks"] == "policy" and up["policyPackConfigs"] == "policy/enforcement.json"
    preview = (WORKFLOWS / "preview.yml").read_text()
    assert "--policy-pack policy" in preview and "--policy-pack-config policy/enforcement.json" in preview


def test_no_workflow_refreshes_in_a_preview():
    preview = load((WORKFLOWS / "preview.yml").read_text())
    assert "refresh" not in yaml.safe_dump([step for _, _, step in steps(preview)])


def test_locks_are_hashed_and_the_workflows_install_the_runtime_lock_only():
    for lock in ("requirements.txt", "requirements-dev.txt"):
        assert unhashed_requirements((PROJECT_DIR / lock).read_text()) == [], lock
    runtime = (PROJECT_DIR / "requirements.txt").read_text()
    assert not {"pytest", "ruff", "hypothesis", "matplotlib"} & set(re.findall(r"^([a-z0-9-]+)==", runtime, re.M))
    for name, text in workflows().items():
        for _, _, step in steps(load(text)):
            if "pip install" in (step.get("run") or ""):
                assert "--require-hashes -r requirements.txt" in step["run"], name
                assert "requirements-dev" not in step["run"], name
    setup = (PROJECT_DIR / "scripts" / "setup.sh").read_text()
    assert "pip install -q --require-hashes -r requirements.txt -r requirements-dev.txt" in setup


def test_go_tools_build_read_only_from_checked_in_sums():
    setup = (PROJECT_DIR / "scripts" / "setup.sh").read_text()
    assert "-mod=mod" not in setup and "go install" not in setup
    assert setup.count("GOFLAGS=-mod=readonly") >= 3
    for folder in ("toolchain/engine", "toolchain/engine/actionlint", "toolchain/engine/seaweedfs"):
        assert (PROJECT_DIR / folder / "go.sum").stat().st_size > 0, folder
    for variable, folder, module in (
        ("ACTIONLINT_VERSION", "actionlint", "github.com/rhysd/actionlint"),
        ("SEAWEEDFS_VERSION", "seaweedfs", "github.com/seaweedfs/seaweedfs"),
    ):
        version = re.search(rf"^{variable}=(\S+)", setup, re.M).group(1)
        go_mod = (PROJECT_DIR / "toolchain" / "engine" / folder / "go.mod").read_text()
        assert f"{module} {version}\n" in go_mod, folder


# -- each check catches its mistake -------------------------------------------------------------


def test_a_tag_pinned_action_is_caught():
    text = (WORKFLOWS / "deploy.yml").read_text()
    planted = re.sub(r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v4", text, count=1)
    assert unpinned_actions(planted) == ["actions/checkout@v4"]


@pytest.mark.parametrize(
    ("planted", "complaint"),
    [
        ("  pull_request:\n    branches: [main]\n", "runs the branch's code and can read PULUMI_CONFIG_PASSPHRASE"),
        ("SSH", "can read SSH_PRIVATE_KEY"),
        ("ref-head", "checks out the pull request's code"),
        ("job-env", "gives PULUMI_CONFIG_PASSPHRASE to every step"),
    ],
)
def test_secrets_within_reach_of_a_pull_request_are_caught(planted, complaint):
    text = (WORKFLOWS / "preview.yml").read_text()
    if planted.startswith("  pull_request:"):
        text = text.replace("  pull_request_target:\n    branches: [main]\n", planted)
    elif planted == "SSH":
        text = text.replace("SECURE_POSTFIX_UNTRUSTED_CONFIG:", "KEY: ${{ secrets.SSH_PRIVATE_KEY }}\n          X:")
    elif planted == "ref-head":
        text = text.replace("          sparse-checkout: stacks\n", "", 1)
    else:
        job_env = "      PULUMI_CONFIG_PASSPHRASE: ${{ secrets.PULUMI_CONFIG_PASSPHRASE }}\n"
        text = text.replace("      STACK: ${{ matrix.stack }}\n", "      STACK: ${{ matrix.stack }}\n" + job_env)
    assert any(complaint in p for p in secrets_reachable_from_pull_requests(text)), text


def test_an_expression_in_shell_text_and_a_persisted_token_are_caught():
    text = (WORKFLOWS / "deploy.yml").read_text()
    planted = text.replace('--stack "$STACK"', '--stack "${{ matrix.stack }}"', 1)
    assert any("pasted into a shell script" in p for p in hygiene(planted))
    planted = text.replace("persist-credentials: false", "persist-credentials: true", 1)
    assert any("persist-credentials" in p for p in hygiene(planted))


def test_an_unhashed_requirement_is_caught():
    assert unhashed_requirements("pulumi==3.259.0\n") == ["pulumi==3.259.0"]
    assert unhashed_requirements("pulumi>=3 \\\n    --hash=sha256:00\n") == ["pulumi>=3"]
    assert unhashed_requirements("pulumi==3.259.0 \\\n    --hash=sha256:00\n") == []
