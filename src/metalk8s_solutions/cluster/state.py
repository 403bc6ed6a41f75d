"""The cluster side of the state: the record of imported solutions and the environments.

- ConfigMap ``metalk8s-solutions`` in Namespace ``metalk8s-solutions``: ``data[<solution>]`` is a
  JSON list of ``{name, id, version, archive, mountpoint, manifest, active}`` (MetalK8s format),
  plus ``pin`` (:mod:`metalk8s_solutions.api.pin`; absent from entries written by MetalK8s or by
  older versions).  We never mount archives, so ``mountpoint`` is always ``null``.
- Environments: Namespaces labelled ``solutions.metalk8s.scality.com/environment: <env>``, each
  with a ConfigMap ``metalk8s-environment`` mapping ``<solution>: <version>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.cluster.kube import FIELD_MANAGER, Kube, NotFound

RECORD_NAMESPACE = "metalk8s-solutions"
RECORD_NAME = "metalk8s-solutions"
ENV_LABEL = "solutions.metalk8s.scality.com/environment"
ENV_DESCRIPTION = "solutions.metalk8s.scality.com/environment-description"
ENV_CONFIGMAP = "metalk8s-environment"
MANAGED_LABELS = {
    "app.kubernetes.io/managed-by": FIELD_MANAGER,
    "app.kubernetes.io/part-of": "metalk8s",
}


def _status_code(err: BaseException) -> int | None:
    code = getattr(getattr(err, "status", None), "code", None)
    return code if isinstance(code, int) else None


@dataclass(frozen=True)
class SolutionRecord:
    """One imported version, as the cluster record lists it."""

    name: str  # display name
    id: str
    version: str
    archive: str
    manifest: Mapping[str, Any]
    active: bool = False
    mountpoint: str | None = None
    pin: Pin | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "id": self.id,
            "version": self.version,
            "archive": self.archive,
            "mountpoint": self.mountpoint,
            "manifest": dict(self.manifest),
            "active": self.active,
        }
        if self.pin is not None:
            data["pin"] = self.pin.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SolutionRecord:
        return cls(
            name=str(data.get("name", "")),
            id=str(data.get("id", "")),
            version=str(data.get("version", "")),
            archive=str(data.get("archive", "")),
            manifest=dict(data.get("manifest") or {}),
            active=bool(data.get("active", False)),
            mountpoint=data.get("mountpoint"),
            pin=Pin.from_json(data.get("pin")),
        )


#: solution name -> its imported versions
Records = dict[str, list[SolutionRecord]]


def encode_records(records: Records) -> dict[str, str]:
    """ConfigMap data for ``records`` (versions sorted by the caller)."""
    return {
        name: json.dumps([r.to_json() for r in versions], sort_keys=True)
        for name, versions in sorted(records.items())
        if versions
    }


def decode_records(data: Mapping[str, str] | None) -> Records:
    records: Records = {}
    for name, text in (data or {}).items():
        try:
            items = json.loads(text)
        except ValueError:
            continue  # a hand-edited entry we cannot read is rewritten from the configuration
        if isinstance(items, list):
            records[name] = [SolutionRecord.from_json(i) for i in items if isinstance(i, dict)]
    return records


async def read_records(kube: Kube) -> tuple[Records, bool]:
    """The cluster record and whether the ConfigMap exists."""
    from lightkube.resources.core_v1 import ConfigMap  # noqa: PLC0415 (listings: cluster.lean)

    with kube.errors(f"reading ConfigMap {RECORD_NAMESPACE}/{RECORD_NAME}"):
        try:
            cm = await kube.client.get(ConfigMap, RECORD_NAME, namespace=RECORD_NAMESPACE)
        except Exception as err:  # 404 is "not there yet", anything else is a real failure
            if _status_code(err) == 404:
                return {}, False
            raise
    return decode_records(cm.data), True


async def write_records(kube: Kube, records: Records) -> None:
    """Server-side apply the namespace and the ConfigMap holding exactly ``records``."""
    from lightkube.models.meta_v1 import ObjectMeta  # noqa: PLC0415
    from lightkube.resources.core_v1 import ConfigMap, Namespace  # noqa: PLC0415

    with kube.errors(f"writing ConfigMap {RECORD_NAMESPACE}/{RECORD_NAME}"):
        await kube.client.apply(
            Namespace(metadata=ObjectMeta(name=RECORD_NAMESPACE, labels=dict(MANAGED_LABELS))),
            force=True,
        )
        data = encode_records(records)
        try:
            current = await kube.client.get(ConfigMap, RECORD_NAME, namespace=RECORD_NAMESPACE)
            stale = set(current.data or {}) - set(data)
        except Exception as err:
            if _status_code(err) != 404:
                raise
            stale = set()
        body = ConfigMap(
            metadata=ObjectMeta(
                name=RECORD_NAME, namespace=RECORD_NAMESPACE, labels=dict(MANAGED_LABELS)
            ),
            data=data,
        )
        if stale:
            # Keys we no longer write would survive an apply if another manager owned them.
            await kube.client.replace(body)
        else:
            await kube.client.apply(body, force=True)


@dataclass
class EnvironmentView:
    """An environment: its namespaces and what each one runs."""

    name: str
    description: str = ""
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # ns -> config

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "namespaces": {ns: {"config": cfg} for ns, cfg in sorted(self.namespaces.items())},
        }


async def read_environments(
    kube: Kube, *, include_terminating: bool = True
) -> dict[str, EnvironmentView]:
    """Every environment in the cluster, from labelled namespaces and their ConfigMaps.

    Namespaces being deleted still count by default (what runs there still runs); pass
    ``include_terminating=False`` to see only the environments that can be changed.
    """
    from lightkube.resources.core_v1 import ConfigMap, Namespace  # noqa: PLC0415

    envs: dict[str, EnvironmentView] = {}
    with kube.errors("listing environment namespaces"):
        async for ns in kube.client.list(Namespace, labels={ENV_LABEL: None}):
            meta = ns.metadata
            if meta is None or meta.name is None:
                continue
            if not include_terminating and meta.deletionTimestamp is not None:
                continue
            env_name = (meta.labels or {}).get(ENV_LABEL, "")
            view = envs.setdefault(env_name, EnvironmentView(env_name))
            description = (meta.annotations or {}).get(ENV_DESCRIPTION)
            if description:
                view.description = description
            try:
                cm = await kube.client.get(ConfigMap, ENV_CONFIGMAP, namespace=meta.name)
                view.namespaces[meta.name] = dict(cm.data or {})
            except Exception as err:
                if _status_code(err) != 404:
                    raise
                view.namespaces[meta.name] = {}
    return envs


def usage_of(envs: Mapping[str, EnvironmentView], solution: str, version: str) -> list[str]:
    """``env/namespace`` places where ``solution`` runs ``version``."""
    return sorted(
        f"{env.name}/{ns}"
        for env in envs.values()
        for ns, config in env.namespaces.items()
        if config.get(solution) == version
    )


__all__ = [
    "ENV_CONFIGMAP",
    "ENV_DESCRIPTION",
    "ENV_LABEL",
    "RECORD_NAME",
    "RECORD_NAMESPACE",
    "EnvironmentView",
    "NotFound",
    "Records",
    "SolutionRecord",
    "read_environments",
    "read_records",
    "usage_of",
    "write_records",
]
