"""Shared pytest configuration."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The tests build a test bed of their own (its own instance and folder), so that `make test` leaves the hosts and
# the state that `make up` made alone. Both can be overridden, e.g. to run two checkouts' tests at once.
os.environ.setdefault("TESTBED_INSTANCE", "9")
# One folder per instance: two sessions on two instances must not share (and remove) one bed's folder.
os.environ.setdefault(
    "TESTBED_DIR", str(Path(__file__).resolve().parent.parent / f".testbed-tests-{os.environ['TESTBED_INSTANCE']}")
)

from testbed.layout import INSTANCE  # reads TESTBED_INSTANCE, set just above
from testbed.pytest_fixture import testbed_fixture  # noqa: F401  (registers the `testbed` fixture)

_OWN_BASETEMP = pytest.StashKey[str]()
# Figures a test wants in the session's summary (pytest captures what a passing test prints).
FIGURES = pytest.StashKey[list]()


@pytest.fixture
def report_figure(request):
    """`report_figure("…")`: a line shown in the terminal summary, whatever the test's outcome."""
    return request.config.stash.setdefault(FIGURES, []).append


def pytest_terminal_summary(terminalreporter, config):
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("figures")
        for line in figures:
            terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "engine: needs the local test bed (root, Linux namespaces, daemons)")
    # pytest's shared /tmp/pytest-of-USER is pruned by every new session: a second session would delete this
    # one's scratch projects. Each session gets a folder of its own, removed at the end.
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix=f"secure-postfix-tests-{INSTANCE}-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_collection_modifyitems(session, config, items):
    """Modules that set RUN_LAST = True run after every other test (the session-wide secret search)."""
    items.sort(key=lambda item: bool(getattr(item.module, "RUN_LAST", False)))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    # trylast: after pytest's own session teardown, whose fixtures may still use the folder.
    own = session.config.stash.get(_OWN_BASETEMP, None)
    if own:
        shutil.rmtree(own, ignore_errors=True)
