"""Shared pytest configuration."""

import os
from pathlib import Path

# The tests build a test bed of their own (its own instance and folder), so that `make test` leaves the hosts and
# the state that `make up` made alone. Both can be overridden, e.g. to run two checkouts' tests at once.
os.environ.setdefault("TESTBED_INSTANCE", "9")
os.environ.setdefault("TESTBED_DIR", str(Path(__file__).resolve().parent.parent / ".testbed-tests"))

from testbed.pytest_fixture import testbed_fixture  # noqa: F401  (registers the `testbed` fixture)


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: needs the local test bed (root, Linux namespaces, daemons)")
