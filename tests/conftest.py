"""Shared pytest configuration."""

import shutil
import tempfile
from pathlib import Path

import pytest

from testbed.layout import INSTANCE
from testbed.pytest_fixture import testbed_fixture  # noqa: F401  (registers the `testbed` fixture)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "engine: needs the local test bed (root, Linux namespaces, daemons)")
    # pytest's shared /tmp/pytest-of-USER is pruned by every new session: a second bed's session would delete
    # this one's scratch projects. Each test-bed instance gets a folder of its own, removed at the end.
    if not config.option.basetemp:
        config.option.basetemp = str(Path(tempfile.gettempdir()) / f"secure-postfix-tests-{INSTANCE}")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


_OWN_BASETEMP = pytest.StashKey[str]()


def pytest_collection_modifyitems(session, config, items):
    """Modules that set RUN_LAST = True run after every other test (the session-wide secret search)."""
    items.sort(key=lambda item: bool(getattr(item.module, "RUN_LAST", False)))


def pytest_sessionfinish(session):
    own = session.config.stash.get(_OWN_BASETEMP, None)
    if own:
        shutil.rmtree(own, ignore_errors=True)
