"""Shared pytest configuration: real-process fixtures are plugins under tests/fixtures."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures.redis", "tests.fixtures.slack", "tests.fixtures.cluster", "tests.fixtures.workers",
                  "tests.fixtures.image", "tests.fixtures.alertmanager"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False, help="also run the long soak variants")


CLUSTER_FIXTURES = {"k8s_cluster", "kubeconfig", "k8s_api", "namespace", "scenarios", "alertmanager"}
"""Fixtures that start the local control plane (or Alertmanager, also built from source): a test using one is a
``cluster`` test (``make test-fast`` skips it)."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())) and "cluster" not in item.keywords:
            item.add_marker(pytest.mark.cluster)
    if config.getoption("--soak"):
        return
    skip_soak = pytest.mark.skip(reason="long soak variant; run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip_soak)
