"""Shared pytest configuration."""

from testbed.pytest_fixture import testbed_fixture  # noqa: F401  (registers the `testbed` fixture)


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: needs the local test bed (root, Linux namespaces, daemons)")
