"""The GitHub workflows pass actionlint (built by scripts/setup.sh), and a typo in them does not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
ACTIONLINT = PROJECT_DIR / ".cache" / "bin" / "actionlint"
WORKFLOWS = PROJECT_DIR / ".github" / "workflows"


def actionlint(root: Path) -> subprocess.CompletedProcess[str]:
    if not ACTIONLINT.exists():
        pytest.fail(f"{ACTIONLINT} is missing: run scripts/setup.sh")
    return subprocess.run(
        [str(ACTIONLINT), "-no-color"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


def test_workflows_pass_actionlint():
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == ["deploy.yml", "preview.yml"]
    run = actionlint(PROJECT_DIR)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("good", "bad", "complaint"),
    [
        ("needs.stacks.outputs.list != ", "needs.stack.outputs.list != ", 'property "stack" is not defined'),
        ("matrix.stack }}", "matrix.stak }}", 'property "stak" is not defined'),
    ],
)
def test_a_planted_typo_fails_actionlint(tmp_path, good, bad, complaint):
    # actionlint lints the workflows of the git repository it runs in: a scratch one with a broken copy.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copytree(WORKFLOWS, tmp_path / ".github" / "workflows")
    flow = tmp_path / ".github" / "workflows" / "deploy.yml"
    text = flow.read_text()
    assert good in text
    flow.write_text(text.replace(good, bad, 1))
    run = actionlint(tmp_path)
    assert run.returncode == 1 and complaint in run.stdout, run.stdout + run.stderr
