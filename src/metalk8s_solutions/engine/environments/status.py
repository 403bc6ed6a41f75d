"""``status``: the whole state in one view (imported versions, configuration, environments)."""

from __future__ import annotations

from typing import Any

from metalk8s_solutions.api.versions import version_key
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import (
    read_environment_states,
)
from metalk8s_solutions.cluster.state import read_records
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.environments.core import (
    session,
)
from metalk8s_solutions.engine.state import (
    Context,
)


async def status(ctx: Context, *, connection: Kube | None = None) -> dict[str, Any]:
    """The whole-state view: ``available``, ``config`` and ``environments`` (the brief's pillar)."""
    config = await ConfigStore(ctx.config_path).read_async()
    async with session(ctx, connection) as kube:
        records, _ = await read_records(kube)
        envs = await read_environment_states(kube)
    return {
        "available": {
            sol: [r.to_json() for r in sorted(versions, key=lambda r: version_key(r.version))]
            for sol, versions in sorted(records.items())
        },
        "config": {
            "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
            "kind": "SolutionsConfiguration",
            "archives": list(config.archives),
            "active": dict(config.active),
        },
        "environments": {name: envs[name].to_json() for name in sorted(envs)},
    }
