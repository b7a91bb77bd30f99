"""scripts/setup.sh installs our language host beside the CLI, unless a real one is on PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
SETUP = PROJECT_DIR / "scripts" / "setup.sh"


def run_language_host(root: Path, path: str) -> subprocess.CompletedProcess[str]:
    """setup.sh's language_host function alone, with ROOT and BIN in a scratch folder."""
    script = f"""
set -euo pipefail
ROOT={root}; BIN={root}/.cache/bin
log() {{ printf 'setup: %s\\n' "$*" >&2; }}
eval "$(sed -n '/^language_host()/,/^}}/p' {SETUP})"
language_host
"""
    return subprocess.run(["bash", "-c", script], env={"PATH": path}, capture_output=True, text=True, check=True)


def test_ours_goes_beside_the_cli_and_runs_the_project_host(tmp_path):
    run_language_host(tmp_path, "/usr/bin:/bin")
    host = tmp_path / ".cache" / "bin" / "pulumi-language-python"
    assert host.stat().st_mode & 0o111
    assert f'"{tmp_path}/.venv/bin/python" -u "{tmp_path}/toolchain/langhost/__main__.py" "$@"' in host.read_text()


def test_a_real_one_on_path_is_left_to_be_used(tmp_path):
    official = tmp_path / "official"
    official.mkdir()
    (official / "pulumi-language-python").write_text("#!/bin/sh\n")
    (official / "pulumi-language-python").chmod(0o755)
    run_language_host(tmp_path, "/usr/bin:/bin")  # ours first, as on a machine that had none
    done = run_language_host(tmp_path, f"{tmp_path}/.cache/bin:{official}:/usr/bin:/bin")
    assert not (tmp_path / ".cache" / "bin" / "pulumi-language-python").exists()
    assert f"using the Python language host on PATH: {official}/pulumi-language-python" in done.stderr
