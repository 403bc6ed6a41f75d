"""CRDs and their objects on the API server, as plain JSON documents.

Custom resources of any kind are read and written with raw REST paths (``/apis/<group>/<version>/
<plural>``) so no model class is needed; CRDs are applied with server-side apply under our field
manager.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from metalk8s_solutions.cluster.kube import FIELD_MANAGER, Kube
from metalk8s_solutions.errors import ClusterError

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
RETRIES = 40


async def _request(
    kube: Kube, method: str, path: str, action: str, *, ok_missing: bool = False, **kwargs: Any
) -> dict[str, Any] | None:
    delay = 0.1
    for _ in range(RETRIES):
        with kube.errors(action):
            response = await kube.http.request(method, path, **kwargs)
        # Right after a CRD changes, its storage is re-initialised and the API server answers
        # 429 ("storage is (re)initializing") for a moment: wait and try again.
        if response.status_code not in (429, 503):
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", 0)) or delay)
        delay = min(delay * 2, 2.0)
    if response.status_code == 404 and ok_missing:
        return None
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        if response.status_code == 403:
            raise ClusterError(
                f"{action}: permission denied ({message})",
                hint="ask a cluster administrator for the rights, or use another --kubeconfig",
            )
        raise ClusterError(f"{action}: the API server answered {response.status_code}: {message}")
    body: dict[str, Any] = response.json() if response.content else {}
    return body


async def get_crd(kube: Kube, name: str) -> dict[str, Any] | None:
    return await _request(kube, "GET", f"{CRD_PATH}/{name}", f"reading CRD {name}", ok_missing=True)


async def list_crds(kube: Kube, selector: str) -> list[dict[str, Any]]:
    body = await _request(kube, "GET", CRD_PATH, "listing CRDs", params={"labelSelector": selector})
    return list((body or {}).get("items", []))


async def apply_crd(kube: Kube, doc: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    name = doc["metadata"]["name"]
    params = {"fieldManager": FIELD_MANAGER, "force": "true"}
    if dry_run:
        params["dryRun"] = "All"
    body = await _request(
        kube,
        "PATCH",
        f"{CRD_PATH}/{name}",
        f"applying CRD {name}",
        params=params,
        content=json.dumps(doc).encode(),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert body is not None  # noqa: S101 - 404 raises above
    return body


async def wait_established(kube: Kube, name: str, seconds: float = 60.0) -> None:
    def established(crd: dict[str, Any] | None) -> bool:
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    try:
        async with asyncio.timeout(seconds):
            while not established(await get_crd(kube, name)):  # noqa: ASYNC110 - polling the API
                await asyncio.sleep(0.2)
    except TimeoutError as err:
        raise ClusterError(f"CRD {name} was not Established within {seconds:.0f}s") from err


async def delete_crd(kube: Kube, name: str, seconds: float = 120.0) -> None:
    """Delete a CRD and wait until it is gone (the API server first removes its objects), so
    that a new activation right after never meets a terminating CRD."""
    await _request(kube, "DELETE", f"{CRD_PATH}/{name}", f"deleting CRD {name}", ok_missing=True)
    try:
        async with asyncio.timeout(seconds):
            while await get_crd(kube, name) is not None:  # noqa: ASYNC110 - polling the API
                await asyncio.sleep(0.2)
    except TimeoutError as err:
        raise ClusterError(
            f"CRD {name} is still being deleted after {seconds:.0f}s",
            hint="its objects may have finalizers that nothing removes; look at them",
        ) from err


async def set_stored_versions(kube: Kube, name: str, versions: list[str]) -> None:
    await _request(
        kube,
        "PATCH",
        f"{CRD_PATH}/{name}/status",
        f"trimming status.storedVersions of CRD {name}",
        content=json.dumps({"status": {"storedVersions": versions}}).encode(),
        headers={"Content-Type": "application/merge-patch+json"},
    )


def objects_path(group: str, version: str, plural: str, namespace: str | None = None) -> str:
    if namespace:
        return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    return f"/apis/{group}/{version}/{plural}"


async def list_objects(
    kube: Kube, group: str, version: str, plural: str, namespace: str | None = None
) -> list[dict[str, Any]]:
    """Every object of a custom resource (all namespaces unless one is given)."""
    body = await _request(
        kube,
        "GET",
        objects_path(group, version, plural, namespace),
        f"listing {plural}.{group}",
        ok_missing=True,
    )
    return list((body or {}).get("items", []))


async def rewrite_object(
    kube: Kube, group: str, version: str, plural: str, obj: dict[str, Any]
) -> None:
    """PUT an object back unchanged, so the API server stores it in the storage version."""
    meta = obj["metadata"]
    path = objects_path(group, version, plural, meta.get("namespace")) + f"/{meta['name']}"
    await _request(
        kube,
        "PUT",
        path,
        f"migrating {plural}.{group} {meta.get('namespace', '')}/{meta['name']}",
        content=json.dumps(obj).encode(),
        headers={"Content-Type": "application/json"},
    )


async def service_names(kube: Kube, namespaces: set[str]) -> set[str]:
    """``namespace/name`` of the Services in ``namespaces``."""
    names: set[str] = set()
    for namespace in sorted(namespaces):
        body = await _request(
            kube,
            "GET",
            f"/api/v1/namespaces/{namespace}/services",
            f"listing services in {namespace}",
            ok_missing=True,
        )
        for item in (body or {}).get("items", []):
            names.add(f"{namespace}/{item['metadata']['name']}")
    return names
