"""Shared pytest configuration: real-process fixtures are plugins under tests/fixtures."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures.redis", "tests.fixtures.slack", "tests.fixtures.cluster", "tests.fixtures.workers"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False, help="also run the long soak variants")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip_soak = pytest.mark.skip(reason="long soak variant; run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip_soak)
