"""Fixtures of the Kubernetes adapter tests: the real-cluster fixtures come from ``tests.fixtures.cluster``.

It is registered here unless the root conftest (or another directory) already loaded it, so a session
has one cluster either way.
"""

from __future__ import annotations

import pytest

CLUSTER_PLUGIN = "tests.fixtures.cluster"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(CLUSTER_PLUGIN):
        config.pluginmanager.import_plugin(CLUSTER_PLUGIN)
