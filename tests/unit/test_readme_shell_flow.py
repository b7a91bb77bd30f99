"""The README's shell flow, step by step, on a fresh clone: no folder made by hand in between."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def fresh_clone(root: Path) -> Path:
    """The checkout's tracked and not-ignored files (what a clone holds, uncommitted edits included), with the
    virtualenv and CLI that setup installed: no `.state/`, no `.testbed/`."""
    clone = root / "clone"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_DIR,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source, target = PROJECT_DIR / name.decode(), clone / name.decode()
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    for installed in (".venv", ".cache"):
        (clone / installed).symlink_to(PROJECT_DIR / installed)
    return clone


def test_env_then_stack_select_then_preview_work_in_the_documented_order(tmp_path):
    clone = fresh_clone(tmp_path)
    assert not (clone / ".state").exists()
    script = """
set -e
eval "$(.venv/bin/python -m toolchain.stackctl env)"
pulumi stack select --create local --secrets-provider passphrase
pulumi stack ls
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "unable to open state directory" not in done.stderr
    assert "local*" in done.stdout, done.stdout
    assert (clone / ".state" / ".pulumi").is_dir()
