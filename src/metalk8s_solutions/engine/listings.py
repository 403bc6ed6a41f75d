"""The listings (``solutions list``, ``solutions env list``) on the lean client, and their form.

A listing is what a user runs most, so it starts like kubectl: this module imports neither
lightkube, httpx2 nor asyncio, reads the cluster with :class:`~..cluster.lean.LeanKube` in the
fewest requests (``env list``: one Namespace LIST, then one ConfigMap LIST for all the
environments' namespaces; ``list``: one GET of the cluster record), and reads the archives'
manifests only when the configuration lists archives.  When the lean client cannot answer
(:class:`~..cluster.lean.Fallback`), the functions here return None and the caller runs the
engine's async listing (:func:`.environments.list_environments`,
:func:`.solutions.list_solutions`), which answers as before — or fails with the same error.
Both paths build their answer with the same functions (:func:`solutions_listing`,
:func:`~..cluster.envstate.environment_states`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalk8s_solutions.cluster.envstate import environment_states, set_config
from metalk8s_solutions.cluster.lean import Fallback, LeanKube
from metalk8s_solutions.cluster.state import (
    ENV_CONFIGMAP,
    ENV_LABEL,
    RECORD_NAME,
    RECORD_NAMESPACE,
    Records,
    decode_records,
)

if TYPE_CHECKING:
    from metalk8s_solutions.api.config import SolutionsConfiguration
    from metalk8s_solutions.engine.state import Imported


def solutions_listing(
    config_path: Path,
    config: SolutionsConfiguration,
    records: Records | None,
    cluster_error: str | None,
    imported: list[Imported],
) -> dict[str, Any]:
    """``solutions list``'s answer: imported versions per solution, the active mark, problems
    and whether the cluster record has them (``records`` None: it could not be read)."""
    from metalk8s_solutions.api.versions import version_key  # noqa: PLC0415

    versions: dict[str, list[str]] = {}
    for item in imported:
        if item.manifest:
            versions.setdefault(item.manifest.name, []).append(item.manifest.version)
    active: Mapping[str, str] = {}
    if versions:
        from metalk8s_solutions.engine.state import resolve_active  # noqa: PLC0415

        active = resolve_active(config.active, versions)
    recorded = {r.id for rs in (records or {}).values() for r in rs}
    solutions: dict[str, list[dict[str, Any]]] = {}
    for item in imported:
        m = item.manifest
        key = m.name if m else "(unknown)"
        entry = {
            "id": item.id,
            "name": m.display_name if m else None,
            "version": m.version if m else None,
            "archive": item.archive,
            "active": bool(m and active.get(m.name) == m.version),
            "recorded": None if records is None else (item.id in recorded),
            "problem": item.problem,
            # the key whose signature was verified at import (also a key given with --key)
            "signer": item.pin.signer if item.pin else None,
        }
        solutions.setdefault(key, []).append(entry)
    for entries in solutions.values():
        entries.sort(key=lambda e: version_key(e["version"] or ""))
    return {
        "config": str(config_path),
        "activeConfigured": dict(config.active),
        "solutions": solutions,
        "clusterError": cluster_error,
    }


def list_solutions(
    config_path: Path, kubeconfig: Path | None, context: str | None
) -> dict[str, Any] | None:
    """:func:`.solutions.list_solutions` on the lean client; None when it cannot answer."""
    from metalk8s_solutions.engine.config_store import ConfigStore  # noqa: PLC0415

    config = ConfigStore(config_path).read()
    try:
        with LeanKube.open(kubeconfig, context) as api:
            record = api.get(f"/api/v1/namespaces/{RECORD_NAMESPACE}/configmaps/{RECORD_NAME}")
    except Fallback:
        return None
    records = decode_records((record or {}).get("data"))
    imported: list[Imported] = []
    if config.archives:
        from metalk8s_solutions.engine.state import scan_config  # noqa: PLC0415

        imported = scan_config(config, records)
    return solutions_listing(config_path, config, records, None, imported)


def read_environments(api: LeanKube) -> list[dict[str, Any]]:
    """Every environment, as :func:`.environments.list_environments` gives them."""
    listed = api.get("/api/v1/namespaces", {"labelSelector": ENV_LABEL})
    envs = environment_states((listed or {}).get("items") or [])
    states = {ns.name: ns for env in envs.values() for ns in env.namespaces.values()}
    if len(states) > 1:  # one LIST for them all, rather than one GET each
        try:
            configmaps = api.get(
                "/api/v1/configmaps", {"fieldSelector": f"metadata.name={ENV_CONFIGMAP}"}
            )
        except Fallback as err:
            if err.status != 403:  # a user who may not list ConfigMaps everywhere: one by one
                raise
        else:
            for item in (configmaps or {}).get("items") or []:
                ns = states.get(str((item.get("metadata") or {}).get("namespace")))
                if ns is not None:
                    set_config(ns, item)
            return [envs[name].to_json() for name in sorted(envs)]
    for ns in states.values():
        set_config(ns, api.get(f"/api/v1/namespaces/{ns.name}/configmaps/{ENV_CONFIGMAP}"))
    return [envs[name].to_json() for name in sorted(envs)]


def list_environments(kubeconfig: Path | None, context: str | None) -> list[dict[str, Any]] | None:
    """:func:`.environments.list_environments` on the lean client; None when it cannot answer."""
    try:
        with LeanKube.open(kubeconfig, context) as api:
            return read_environments(api)
    except Fallback:
        return None
