"""Fixtures of the example Solution's cluster tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from metalk8s_solutions.testing.pytest_plugin import LocalCluster

from .support import Api, remove_crd


@pytest.fixture(scope="module")
def example_crd_removed_afterwards(local_cluster: LocalCluster) -> Iterator[None]:
    """The VersionServer CRD is cluster-wide: leave the cluster without it for later tests."""
    yield
    with local_cluster.admin_http() as http:
        remove_crd(Api(http))
