"""Each test bed instance has names, a subnet and a folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def layout_of(instance: str) -> list[str]:
    """default_dir, bridge and subnet of bed `instance`, as `python -m toolchain.testbed` would see them."""
    env = {k: v for k, v in os.environ.items() if k not in ("TESTBED_DIR", "TESTBED_INSTANCE")}
    env["TESTBED_INSTANCE"] = instance
    code = "from toolchain.testbed import layout as l; print(l.default_dir(), l.BRIDGE, l.SUBNET, sep='\\n')"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=True, timeout=30
    )
    return out.stdout.split()


def test_two_instances_of_one_checkout_keep_their_own_folder():
    default, other = layout_of("0"), layout_of("6")
    assert default[0] == str(PROJECT_DIR / ".testbed")
    assert other[0] == str(PROJECT_DIR / ".testbed-6")
    assert (default[1], default[2]) == ("sptb0", "10.231.7.")
    assert (other[1], other[2]) == ("sptb6", "10.231.13.")


def test_instances_up_to_39_fit_one_private_range_and_beyond_is_refused():
    assert layout_of("39")[1:] == ["sptb39", "10.231.46."]
    env = {**os.environ, "TESTBED_INSTANCE": "40"}
    done = subprocess.run(
        [sys.executable, "-c", "import toolchain.testbed.layout"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "TESTBED_INSTANCE must be a whole number from 0 to 39, not '40'" in done.stderr
