"""Shared pytest wiring: service fixtures and the --run-slow switch."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.services.seaweedfs",
    "tests.services.sshd",
    "tests.services.postgres",
    "tests.services.memcached",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the long fault-injection and soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    deselected = [item for item in items if "slow" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if "slow" not in item.keywords]


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A test that runs the CLI in-process (main() -> setup_logging) leaves the root logger
    writing to that test's captured stderr, closed once the test ends: a later test that
    logs then got a '--- Logging error ---' traceback in its own output."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
