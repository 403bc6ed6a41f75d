"""Which Kubernetes API paths a Solution's UI may call through ``solutions ui``.

The answer comes from the verified archive, never from an object in the namespace: the
environment's record in the namespace (``metalk8s-environment``, read as the user) says which
version of the solution runs there, and that version's imported archive — its signature checked
at import — says whether it has a UI (``spec.ui``) and which CRDs it serves
(:func:`~metalk8s_solutions.engine.solution_ui.api_paths`).  The UI's ConfigMap only informs the
UI's own pages: rewriting it opens nothing.  Whoever rewrites the environment record can at most
pick another imported version of the same solution, whose paths are again that vendor's CRDs'
collections in this namespace.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.state import ENV_CONFIGMAP, ENV_LABEL
from metalk8s_solutions.engine.environments.core import load_version_content, read_inventory
from metalk8s_solutions.engine.solution_ui import api_paths
from metalk8s_solutions.engine.solutions import Context


async def ui_api_paths(
    ctx: Context, kube: Kube, env: str, namespace: str, solution: str
) -> tuple[str, ...] | None:
    """The API paths of ``solution``'s UI in ``env``'s ``namespace``; None: no UI there.

    ``kube`` acts as the user: reading the environment record needs ``get`` on ConfigMaps in the
    namespace (:class:`~metalk8s_solutions.cluster.kube.Forbidden` otherwise).
    """
    record = await request(
        kube,
        "GET",
        f"/api/v1/namespaces/{quote(namespace)}/configmaps/{ENV_CONFIGMAP}",
        action=f"reading ConfigMap {namespace}/{ENV_CONFIGMAP}",
        missing_ok=True,
    )
    labels = ((record or {}).get("metadata") or {}).get("labels") or {}
    if record is None or labels.get(ENV_LABEL) != env:
        return None  # not a namespace of this environment
    version = (record.get("data") or {}).get(solution)
    if not version:
        return None
    inventory = await read_inventory(ctx)
    found = [
        item
        for item in inventory.imported
        if item.manifest is not None
        and (item.manifest.name, item.manifest.version) == (solution, version)
        and item.problem is None
    ]
    if not found or found[0].manifest is None or found[0].manifest.ui is None:
        return None  # not imported (any more), damaged, or a version without a UI
    archive = Path(inventory.require(solution, str(version)))
    content = await asyncio.to_thread(load_version_content, archive, inventory.pin(str(archive)))
    return tuple(api_paths(content, namespace))


__all__ = ["ui_api_paths"]
