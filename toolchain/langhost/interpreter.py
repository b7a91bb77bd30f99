"""Which Python runs the program: `runtime.options` of Pulumi.yaml, the way the official host reads them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class LanguageHostError(Exception):
    """A problem with the project's Python setup, worded for the person running `pulumi`."""


def virtualenv_dir(root_directory: str, options: Mapping[str, Any]) -> Path | None:
    """`runtime.options.virtualenv`, relative to the project's root folder (where Pulumi.yaml is)."""
    venv = options.get("virtualenv")
    if venv in (None, ""):
        return None
    if not isinstance(venv, str):
        raise LanguageHostError(f"Pulumi.yaml: runtime.options.virtualenv must be a path, not {venv!r}")
    path = Path(venv).expanduser()
    return path if path.is_absolute() else Path(root_directory) / path


def resolve(root_directory: str, options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Path:
    """The interpreter for the program: the virtualenv's python, else PULUMI_PYTHON_CMD, else python3 on PATH."""
    env = os.environ if env is None else env
    toolchain = options.get("toolchain", "pip")
    if toolchain != "pip":
        raise LanguageHostError(
            f"Pulumi.yaml: runtime.options.toolchain {toolchain!r} is not supported by this project's language "
            "host; use a pip virtualenv (runtime.options.virtualenv)"
        )
    venv = virtualenv_dir(root_directory, options)
    if venv is not None:
        python = venv / "bin" / "python"
        if not os.access(python, os.X_OK):
            raise LanguageHostError(
                f"Pulumi.yaml names the virtualenv {options['virtualenv']!r}, but {python} is missing or not "
                "executable; create it with scripts/setup.sh (or `python3 -m venv` and "
                "`pip install -r requirements.txt`)"
            )
        return python
    for candidate in (env.get("PULUMI_PYTHON_CMD"), "python3", "python"):
        if candidate:
            found = shutil.which(candidate, path=env.get("PATH"))
            if found:
                return Path(found)
    raise LanguageHostError(
        "no Python interpreter found: set runtime.options.virtualenv in Pulumi.yaml or PULUMI_PYTHON_CMD"
    )
