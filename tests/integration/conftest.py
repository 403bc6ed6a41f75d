"""Fixtures shared by the integration modules that drive the engine on the local cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from metalk8s_solutions.cluster.kube import Kube, RequestCounter
from metalk8s_solutions.engine.solutions import Context


@pytest.fixture
async def kube(ctx: Context) -> AsyncIterator[Kube]:
    """One connection for a test, counting its requests; ``ctx`` is the module's own."""
    async with Kube(ctx.target, counter=RequestCounter()) as connection:
        yield connection
