"""Fixtures shared by the integration modules that drive the engine on the local cluster."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from env_support import Api
from metalk8s_solutions.cluster.kube import Kube, RequestCounter
from metalk8s_solutions.cluster.state import ENV_LABEL
from metalk8s_solutions.engine.solutions import Context


@pytest.fixture
async def kube(ctx: Context) -> AsyncIterator[Kube]:
    """One connection for a test, counting its requests; ``ctx`` is the module's own."""
    async with Kube(ctx.target, counter=RequestCounter()) as connection:
        yield connection


@pytest.fixture
def env_names(admin: Api) -> Iterator[list[str]]:
    """Two fresh environment names; their namespaces are deleted afterwards (not awaited).
    ``admin`` is the module's own."""
    names = [f"e-{secrets.token_hex(3)}" for _ in range(2)]
    yield names
    for name in names:
        for ns in admin.items("/api/v1/namespaces", f"{ENV_LABEL}={name}"):
            admin.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")
