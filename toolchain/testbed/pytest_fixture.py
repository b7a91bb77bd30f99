"""Session fixture for tests that need the bed; imported by tests/conftest.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from .layout import INSTANCE
from .lifecycle import create, destroy
from .model import TestBed

REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "setsid", "postfix", "dovecot", "/usr/sbin/sshd", "ssh-keygen", "openssl")


def missing_requirements() -> list[str]:
    missing = [] if os.geteuid() == 0 else ["root"]
    return missing + [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


# The bed instances this process built: the run's leftover check looks for those, and leaves other beds alone.
BUILT: list[int] = []


@pytest.fixture(scope="session", name="testbed")
def testbed_fixture() -> Iterator[TestBed]:
    missing = missing_requirements()
    if missing:
        pytest.fail(f"test bed needs: {', '.join(missing)} (run scripts/setup.sh as root)")
    try:
        # A fresh bed every session: a bed left by `make up` carries changed configs.
        BUILT.append(INSTANCE)
        destroy()
        yield create()
    finally:
        # Runs after the last test of the session, failed or not, and also
        # when create() itself failed half way. TESTBED_KEEP=1 leaves the bed
        # up for a look at the hosts; `python -m toolchain.testbed down` removes it.
        if os.environ.get("TESTBED_KEEP") != "1":
            destroy()
