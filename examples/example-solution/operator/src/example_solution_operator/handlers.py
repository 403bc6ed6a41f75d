"""The kopf handlers: converge each VersionServer when it, its Deployment or the config change.

One idempotent function, :func:`converge`, does all the work (server-side apply of the
Deployment and Service computed by :mod:`resources`, then a status write); the handlers only
decide when to call it.  There is no delete handler, timer or daemon, so kopf puts no finalizer
on VersionServers: deleting one never waits for the operator, and the garbage collector removes
its Deployment and Service through their owner references.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import kopf
from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from example_solution_operator import metrics as prometheus
from example_solution_operator._version import VERSION
from example_solution_operator.config import ConfigError, OperatorConfig, load_config
from example_solution_operator.resources import (
    GROUP,
    KIND,
    OPERATOR,
    PLURAL,
    Resolution,
    VersionServer,
    compute_status,
    controller_of,
    deployment_manifest,
    is_controlled_by,
    resolve_image,
    service_manifest,
)

CONFIG_POLL = 5.0  # seconds between checks of the mounted config for changes


@dataclass
class State:
    """Operator-wide state, shared by every handler through kopf's memo."""

    config_path: Path
    config: OperatorConfig
    namespace: str
    client: AsyncClient | None = None
    api_version: str | None = None  # of the VersionServers, as kopf serves them
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    watcher: asyncio.Task[None] | None = None
    metrics: prometheus.Metrics = field(default_factory=prometheus.Metrics)
    metrics_port: int | None = None  # None: no metrics endpoint (before 2.0.0)
    metrics_cert_path: Path | None = None  # tls.crt and tls.key: metrics over https
    metrics_runner: Any = None

    def current_config(self, logger: kopf.Logger) -> OperatorConfig:
        """Re-read the mounted config (the product updates it on import); keep the last good one."""
        try:
            self.config = load_config(self.config_path)
        except ConfigError as err:
            logger.error(f"keeping the previous operator config: {err}")
        return self.config

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, name), asyncio.Lock())


def _api(state: State) -> AsyncClient:
    if state.client is None:
        state.client = AsyncClient(field_manager=OPERATOR)
    return state.client


def _resource(api_version: str) -> Any:
    version = api_version.split("/", 1)[1]
    return create_namespaced_resource(GROUP, version, KIND, PLURAL)


async def _get(client: AsyncClient, kind: Any, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        obj = await client.get(kind, name, namespace=namespace)
    except ApiError as err:
        if err.status.code == 404:
            return None
        raise
    return _as_dict(obj)


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else dict(obj.to_dict())


async def converge(state: State, body: dict[str, Any], logger: Any) -> Resolution:
    """Make the Deployment and Service of one VersionServer match its spec; write its status."""
    vs = VersionServer.from_body(body)
    state.api_version = vs.api_version
    client = _api(state)
    async with state.lock(vs.namespace, vs.name):
        resolution = resolve_image(state.current_config(logger), vs.version)
        deployment = await _get(client, Deployment, vs.name, vs.namespace)
        service = await _get(client, Service, vs.name, vs.namespace)
        conflict = next(
            (
                f"a {kind} named {vs.name} exists and is not managed by this VersionServer; "
                "delete it or rename the VersionServer"
                for kind, obj in (("Deployment", deployment), ("Service", service))
                if obj is not None and not is_controlled_by(obj, vs)
            ),
            None,
        )
        if conflict is None and resolution.image is not None:
            desired = cast(
                Deployment, Deployment.from_dict(deployment_manifest(vs, resolution.image))
            )
            deployment = _as_dict(await client.apply(desired, force=True))
            await client.apply(cast(Service, Service.from_dict(service_manifest(vs))), force=True)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = compute_status(vs, resolution, deployment, now, conflict=conflict)
        if not _same_status(vs.status, status):
            try:
                await client.patch(
                    _resource(vs.api_version).Status,
                    vs.name,
                    {"status": status},
                    namespace=vs.namespace,
                    patch_type=PatchType.MERGE,
                )
            except ApiError as err:
                if err.status.code != 404:  # deleted meanwhile: nothing to report to
                    raise
        if conflict is not None:
            logger.warning(conflict)
        result = (
            "ok"
            if resolution.image is not None and conflict is None
            else ("unknown_version" if resolution.image is None else "error")
        )
        state.metrics.reconciled(f"{vs.namespace}/{vs.name}", result, status.get("readyReplicas"))
        return resolution


def _same_status(before: Any, after: dict[str, Any]) -> bool:
    """Whether writing ``after`` (a merge patch: None removes a field) would change nothing."""
    for key, value in after.items():
        if value is None:
            if key in before:
                return False
        elif before.get(key) != value:
            return False
    return True


async def watch_config(state: State, logger: kopf.Logger) -> None:
    """Converge every VersionServer again when the mounted config changes (a version imported
    into or removed from the environment, a new registry endpoint)."""
    seen = state.config
    while True:
        await asyncio.sleep(CONFIG_POLL)
        try:
            current = load_config(state.config_path)
        except ConfigError as err:
            logger.error(f"keeping the previous operator config: {err}")
            continue
        if current == seen or state.api_version is None:
            continue
        logger.info("the operator config changed: converging every VersionServer")
        try:
            client = _api(state)
            async for vs in client.list(_resource(state.api_version), namespace=state.namespace):
                body = _as_dict(vs)
                if not body["metadata"].get("deletionTimestamp"):
                    await converge(state, body, logger)
        except Exception as err:  # this task must outlive any failure
            logger.error(f"converging after a config change failed, will retry: {err}")
            continue
        seen = current


@kopf.on.startup()
async def configure(
    settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    # Only the watched namespace and the CRDs present at startup: no cluster-wide permission.
    settings.scanning.disabled = True
    # Keep kopf's bookkeeping under the Solution's own prefix.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.WARNING
    state: State = memo.state
    state.watcher = asyncio.create_task(watch_config(state, logger))
    if state.metrics_port is not None:
        try:
            state.metrics_runner = await prometheus.serve(
                state.metrics, VERSION, state.metrics_port, cert_path=state.metrics_cert_path
            )
            logger.info(f"serving Prometheus metrics on :{state.metrics_port}/metrics")
        except OSError as err:  # metrics are an aid: the operator's job goes on without them
            logger.error(f"cannot serve metrics on port {state.metrics_port}: {err}")


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    state: State = memo.state
    if state.watcher is not None:
        state.watcher.cancel()
    if state.metrics_runner is not None:
        await state.metrics_runner.cleanup()
    if state.client is not None:
        await state.client.close()


@kopf.on.resume(GROUP, PLURAL)
@kopf.on.create(GROUP, PLURAL)
@kopf.on.update(GROUP, PLURAL, field="spec")
async def reconcile(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    resolution = await converge(memo.state, dict(body), logger)
    if resolution.image is None:
        # Not a crash and no retry loop: the status says why, and the VersionServer is
        # converged again when its spec or the operator config changes.
        logger.warning(resolution.message)


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": OPERATOR})
async def deployment_changed(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Report rollout progress in the owner's status, and undo changes made by hand."""
    owner = controller_of(body)
    if owner is None:
        return
    api_version, name, uid = owner
    state: State = memo.state
    vs = await _get(_api(state), _resource(api_version), name, str(body.metadata.namespace))
    if vs is None or vs["metadata"].get("uid") != uid or vs["metadata"].get("deletionTimestamp"):
        return
    await converge(state, vs, logger)
