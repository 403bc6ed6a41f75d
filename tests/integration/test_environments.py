"""Environments against the real local control plane: deploy, converge, upgrade, roll back, prune.

The engine is called in-process (with a request counter) where counting matters, and the
installed ``solutions`` command where the user-visible output matters.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shlex
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from env_support import (
    SOLUTIONS,
    Api,
    build_solution,
    cli,
    crd_document,
    wait_for,
    write_config,
)
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube
from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine import instances
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.errors import InvalidInput, Refused
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "envtest"
GROUP = "envtest.test.solutions"
SELECTOR = "app.kubernetes.io/managed-by=metalk8s-solutions,app.kubernetes.io/component=operator"


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("env-archives")
    return {
        "1.0.0": build_solution(out, SOL, "1.0.0", group=GROUP),
        "1.1.0": build_solution(out, SOL, "1.1.0", group=GROUP, served=("v1alpha1", "v1beta1")),
        "2.0.0": build_solution(
            out, SOL, "2.0.0", group=GROUP, served=("v1alpha1", "v1beta1"), storage="v1beta1"
        ),
    }


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        api.install_crd(crd_document(GROUP, ("v1alpha1", "v1beta1"), "v1beta1"))
        yield api


@pytest.fixture
def ctx(tmp_path: Path, archives: dict[str, Path], local_cluster: LocalCluster) -> Context:
    config = write_config(tmp_path / "solutions.yaml", list(archives.values()))
    return Context(config, ClusterTarget(kubeconfig=local_cluster.kubeconfig))


@pytest.fixture
def env_name(ctx: Context, admin: Api) -> Iterator[str]:
    """A fresh environment name; the environment is deleted afterwards (not awaited)."""
    name = f"e-{secrets.token_hex(3)}"
    yield name
    for ns in admin.items(
        "/api/v1/namespaces", f"solutions.metalk8s.scality.com/environment={name}"
    ):
        admin.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")
    for kind in ("clusterroles", "clusterrolebindings"):
        for obj in admin.items(
            f"/apis/rbac.authorization.k8s.io/v1/{kind}",
            f"solutions.metalk8s.scality.com/environment={name}",
        ):
            admin.delete(f"/apis/rbac.authorization.k8s.io/v1/{kind}/{obj['metadata']['name']}")


def deployment(admin: Api, ns: str) -> dict[str, Any] | None:
    return admin.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{SOL}-operator")


def managed(admin: Api, ns: str) -> dict[str, dict[str, Any]]:
    """kind/name -> object, for everything we deployed in ``ns``."""
    paths = {
        "ServiceAccount": f"/api/v1/namespaces/{ns}/serviceaccounts",
        "ConfigMap": f"/api/v1/namespaces/{ns}/configmaps",
        "Role": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        "RoleBinding": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        "Deployment": f"/apis/apps/v1/namespaces/{ns}/deployments",
    }
    return {
        f"{kind}/{obj['metadata']['name']}": obj
        for kind, path in paths.items()
        for obj in admin.items(path, SELECTOR)
    }


async def test_add_deploys_the_operator_contract_and_a_rerun_sends_nothing(
    ctx: Context, kube: Kube, env_name: str, admin: Api
) -> None:
    await envs.create_environment(
        ctx, envs.CreateEnvOptions(env_name, description="tests"), connection=kube
    )
    outcome = await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60), connection=kube
    )
    assert outcome.rollouts == {f"Deployment {env_name}/{SOL}-operator": "1/1 replicas available"}
    objects = managed(admin, env_name)
    assert sorted(objects) == [
        f"ConfigMap/{SOL}-operator-config",
        f"Deployment/{SOL}-operator",
        f"Role/{SOL}-operator",
        f"RoleBinding/{SOL}-operator",
        f"ServiceAccount/{SOL}-operator",
    ]
    dep = objects[f"Deployment/{SOL}-operator"]
    labels = dep["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == f"{SOL}-operator"
    assert labels["app.kubernetes.io/instance"] == f"{SOL}-operator"
    assert labels["app.kubernetes.io/version"] == "1.0.0"
    assert labels["app.kubernetes.io/component"] == "operator"
    assert labels["app.kubernetes.io/part-of"] == SOL
    assert labels["app.kubernetes.io/managed-by"] == "metalk8s-solutions"
    assert labels["solutions.metalk8s.scality.com/environment"] == env_name
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == f"{SOL}-operator"
    container = pod["containers"][0]
    assert container["command"] == [f"{SOL}-operator", "--config=/etc/config/operator.yaml"]
    assert container["image"].startswith(
        f"registry.test:5000/{SOL}-1.0.0/example-solution-operator@sha256:"
    )
    assert {e["name"] for e in container["env"]} == {"WATCH_NAMESPACE", "POD_NAME", "OPERATOR_NAME"}
    assert container["volumeMounts"][0]["mountPath"] == "/etc/config"
    config = objects[f"ConfigMap/{SOL}-operator-config"]["data"]["operator.yaml"]
    assert "kind: OperatorConfig" in config
    for version in ("1.0.0", "1.1.0", "2.0.0"):  # every imported version
        assert f"registry.test:5000/{SOL}-{version}" in config
    env_cm = admin.get(f"/api/v1/namespaces/{env_name}/configmaps/metalk8s-environment")
    assert env_cm is not None and env_cm["data"] == {SOL: "1.0.0"}

    before = kube.counter.mutating
    again = await envs.converge_environments(
        ctx, envs.ConvergeOptions((env_name,)), connection=kube
    )
    assert again.steps == []
    re_add = await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60), connection=kube
    )
    assert re_add.steps == []
    assert kube.counter.mutating == before, "a converge with nothing to do must not write"


async def test_drift_is_reported_and_restored(
    ctx: Context, kube: Kube, env_name: str, admin: Api
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", wait=False), connection=kube
    )
    path = f"/apis/apps/v1/namespaces/{env_name}/deployments/{SOL}-operator"
    original = deployment(admin, env_name)
    assert original is not None
    admin.apply(
        path,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"{SOL}-operator", "namespace": env_name},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "operator", "image": "evil.example/op:latest"}]
                    }
                }
            },
        },
        manager="someone-else",
    )
    admin.delete(f"/api/v1/namespaces/{env_name}/serviceaccounts/{SOL}-operator")
    outcome = await envs.converge_environments(
        ctx, envs.ConvergeOptions((env_name,)), connection=kube
    )
    steps = {(s.action, s.target): s.detail for s in outcome.steps}
    assert ("create", f"ServiceAccount {env_name}/{SOL}-operator") in steps
    assert "drift" in steps[("change", f"Deployment {env_name}/{SOL}-operator")]
    assert "evil.example/op:latest" in outcome.diffs[f"Deployment {env_name}/{SOL}-operator"]
    assert any("changed outside" in w for w in outcome.warnings)
    restored = deployment(admin, env_name)
    assert restored is not None
    image = restored["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == original["spec"]["template"]["spec"]["containers"][0]["image"]
    assert (
        await envs.converge_environments(ctx, envs.ConvergeOptions((env_name,)), connection=kube)
    ).steps == []


async def test_side_by_side_versions_share_nothing_and_removal_leaves_the_other(
    ctx: Context, kube: Kube, admin: Api, env_name: str
) -> None:
    other = f"{env_name}-b"
    try:
        await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
        await envs.create_environment(ctx, envs.CreateEnvOptions(other), connection=kube)
        await envs.add_solution(
            ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60), connection=kube
        )
        await envs.add_solution(
            ctx, envs.AddSolutionOptions(other, SOL, "1.1.0", timeout=60), connection=kube
        )
        a, b = managed(admin, env_name), managed(admin, other)
        uids_a = {o["metadata"]["uid"] for o in a.values()}
        uids_b = {o["metadata"]["uid"] for o in b.values()}
        assert uids_a.isdisjoint(uids_b)
        assert (
            b[f"Deployment/{SOL}-operator"]["metadata"]["labels"]["app.kubernetes.io/version"]
            == "1.1.0"
        )
        versions_before = {k: o["metadata"]["resourceVersion"] for k, o in b.items()}

        removed = await envs.delete_solution(
            ctx, envs.DeleteSolutionOptions(env_name, SOL, timeout=60), connection=kube
        )
        assert any(s.target == f"Deployment {env_name}/{SOL}-operator" for s in removed.steps)
        assert managed(admin, env_name) == {}
        env_cm = admin.get(f"/api/v1/namespaces/{env_name}/configmaps/metalk8s-environment")
        assert env_cm is not None and not env_cm.get("data")
        assert not admin.items(
            f"/api/v1/namespaces/{env_name}/pods", f"app.kubernetes.io/part-of={SOL}"
        )
        after = {k: o["metadata"]["resourceVersion"] for k, o in managed(admin, other).items()}
        assert after == versions_before
    finally:
        admin.delete(f"/api/v1/namespaces/{other}")


async def test_upgrade_downgrade_and_history(
    ctx: Context, kube: Kube, env_name: str, admin: Api
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60), connection=kube
    )
    up = await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env_name, SOL, "2.0.0", timeout=60), connection=kube
    )
    assert ("upgrade", f"{SOL} in {env_name}/{env_name}") in {
        (s.action, s.target) for s in up.steps
    }
    dep = deployment(admin, env_name)
    assert dep is not None
    assert dep["metadata"]["labels"]["app.kubernetes.io/version"] == "2.0.0"
    assert f"/{SOL}-2.0.0/" in dep["spec"]["template"]["spec"]["containers"][0]["image"]
    down = await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env_name, SOL, "1.1.0", timeout=60), connection=kube
    )
    assert ("downgrade", f"{SOL} in {env_name}/{env_name}") in {
        (s.action, s.target) for s in down.steps
    }
    shown = await envs.show_environment(ctx, env_name, connection=kube)
    info = shown["namespaces"][env_name]["solutions"][SOL]
    assert info["version"] == "1.1.0"
    assert info["operator"].startswith("Available")
    assert [(r["from"], r["to"], r["result"]) for r in info["history"]] == [
        (None, "1.0.0", "succeeded"),
        ("1.0.0", "2.0.0", "succeeded"),
        ("2.0.0", "1.1.0", "succeeded"),
    ]
    with pytest.raises(Refused, match="not imported"):
        await envs.upgrade_solution(
            ctx, envs.UpgradeOptions(env_name, SOL, "9.9.9"), connection=kube
        )


async def test_rollback_when_the_new_operator_is_not_available(
    ctx: Context, kube: Kube, env_name: str, admin: Api
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60), connection=kube
    )
    # No node takes new pods: the rolling update cannot make progress (the old pod stays).
    with cordoned(admin):
        await _failing_upgrades(ctx, kube, env_name, admin)


@contextlib.contextmanager
def cordoned(admin: Api) -> Iterator[None]:
    nodes = [n["metadata"]["name"] for n in admin.items("/api/v1/nodes")]

    def cordon(value: bool) -> None:
        for node in nodes:
            response = admin.http.patch(
                f"/api/v1/nodes/{node}",
                json={"spec": {"unschedulable": value}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            response.raise_for_status()

    cordon(True)
    try:
        yield
    finally:
        cordon(False)


async def _failing_upgrades(ctx: Context, kube: Kube, env_name: str, admin: Api) -> None:
    with pytest.raises(envs.RolloutFailed, match="rolled back to the previous revision"):
        await envs.upgrade_solution(
            ctx, envs.UpgradeOptions(env_name, SOL, "1.1.0", timeout=4), connection=kube
        )
    dep = deployment(admin, env_name)
    assert dep is not None
    assert dep["metadata"]["labels"]["app.kubernetes.io/version"] == "1.0.0"
    env_cm = admin.get(f"/api/v1/namespaces/{env_name}/configmaps/metalk8s-environment")
    assert env_cm is not None and env_cm["data"] == {SOL: "1.0.0"}
    wait_for(
        lambda: (deployment(admin, env_name) or {}).get("status", {}).get("availableReplicas") == 1
    )

    with pytest.raises(envs.RolloutFailed, match="left as it is"):
        await envs.upgrade_solution(
            ctx,
            envs.UpgradeOptions(env_name, SOL, "1.1.0", timeout=3, rollback=False),
            connection=kube,
        )
    dep = deployment(admin, env_name)
    assert dep is not None and dep["metadata"]["labels"]["app.kubernetes.io/version"] == "1.1.0"
    shown = await envs.show_environment(ctx, env_name, connection=kube)
    history = shown["namespaces"][env_name]["solutions"][SOL]["history"]
    assert [(r["to"], r["result"]) for r in history] == [
        ("1.0.0", "succeeded"),
        ("1.1.0", "rolled-back"),
        ("1.1.0", "failed"),
    ]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_while_waiting(ctx: Context, cluster: LocalCluster, *args: str) -> str:
    """Run ``solutions ARGS``, send SIGINT once it waits for the rollout; its stderr (exit 130)."""
    options = ["--config", str(ctx.config_path), "--kubeconfig", str(cluster.kubeconfig)]
    proc = subprocess.Popen(
        [SOLUTIONS, *options, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: a test run started in the background ('cmd &' in a script) inherits
        # SIGINT ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=_default_sigint,  # noqa: PLW1509 - runs before exec, no thread involved
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the versions are written: it now awaits the operators
        seen.append(line)
        if "waiting up to" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr
    return stderr


def pasted(ctx: Context, cluster: LocalCluster, stderr: str) -> subprocess.CompletedProcess[str]:
    """Run the command the ``aborted:`` line says finishes the work, as printed."""
    aborted = [line for line in stderr.splitlines() if line.startswith("aborted: ")]
    assert len(aborted) == 1, stderr
    command = aborted[0].split("finish it with: ", 1)[1]
    words = shlex.split(command)
    assert words[0] == "solutions", command
    return cli(ctx.config_path, cluster.kubeconfig, *words[1:])


async def test_interrupted_upgrade_is_recorded_and_resumed_by_the_pasted_command(
    ctx: Context, kube: Kube, env_name: str, admin: Api, local_cluster: LocalCluster
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60), connection=kube
    )
    with cordoned(admin):  # the new operator cannot start: the command waits
        stderr = interrupt_while_waiting(
            ctx, local_cluster, "env", "upgrade", env_name, SOL, "2.0.0", "--timeout", "120"
        )
    assert "Traceback" not in stderr
    assert (
        f"aborted: {SOL}: {env_name}/{env_name} is set to 2.0.0 (1.0.0 -> 2.0.0, revision 2 in "
        f"progress)" in stderr
    ), stderr
    assert f"finish it with: solutions env upgrade {env_name} {SOL} 2.0.0" in stderr
    shown = await envs.show_environment(ctx, env_name, connection=kube)
    info = shown["namespaces"][env_name]["solutions"][SOL]
    assert info["version"] == "2.0.0"
    assert [(r["revision"], r["from"], r["to"], r["result"]) for r in info["history"]] == [
        (1, None, "1.0.0", "succeeded"),
        (2, "1.0.0", "2.0.0", "in-progress"),
    ]
    assert f"solutions env upgrade {env_name} {SOL} 2.0.0" in info["history"][-1]["message"]

    again = pasted(ctx, local_cluster, stderr)  # a re-run resumes: not "nothing to do"
    assert again.returncode == 0, again.stderr
    assert f"resume {SOL} in {env_name}/{env_name}: revision 2: 1.0.0 -> 2.0.0" in again.stdout
    assert "nothing to do" not in again.stdout
    shown = await envs.show_environment(ctx, env_name, connection=kube)
    info = shown["namespaces"][env_name]["solutions"][SOL]
    assert info["operator"].startswith("Available")
    assert [(r["revision"], r["from"], r["to"], r["result"]) for r in info["history"]] == [
        (1, None, "1.0.0", "succeeded"),
        (2, "1.0.0", "2.0.0", "succeeded"),
    ]


async def test_interrupted_upgrade_completed_by_an_upgrade_to_another_version(
    ctx: Context, kube: Kube, env_name: str, admin: Api, local_cluster: LocalCluster
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60), connection=kube
    )
    with cordoned(admin):  # 2.0.0 never becomes Available: the record says so
        interrupt_while_waiting(
            ctx, local_cluster, "env", "upgrade", env_name, SOL, "2.0.0", "--timeout", "120"
        )
        other = cli(
            ctx.config_path,
            local_cluster.kubeconfig,
            "env",
            "upgrade",
            env_name,
            SOL,
            "1.1.0",
            "--no-wait",
        )
        assert other.returncode == 0, other.stderr
    shown = await envs.show_environment(ctx, env_name, connection=kube)
    history = shown["namespaces"][env_name]["solutions"][SOL]["history"]
    assert [(r["revision"], r["from"], r["to"], r["result"], r["message"]) for r in history] == [
        (1, None, "1.0.0", "succeeded", ""),
        (2, "1.0.0", "2.0.0", "applied", "interrupted before the operator was Available"),
        (3, "2.0.0", "1.1.0", "applied", "not awaited"),
    ]


async def test_interrupted_add_solution_is_recorded_and_completed_by_converge(
    ctx: Context, kube: Kube, env_name: str, admin: Api, local_cluster: LocalCluster
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    with cordoned(admin):
        stderr = interrupt_while_waiting(
            ctx, local_cluster, "env", "add-solution", env_name, SOL, "1.0.0", "--timeout", "120"
        )
        assert (
            f"aborted: {SOL}: {env_name}/{env_name} is set to 1.0.0 (none -> 1.0.0, revision 1 "
            "in progress)" in stderr
        ), stderr
        assert f"finish it with: solutions env add-solution {env_name} {SOL} 1.0.0" in stderr
        shown = await envs.show_environment(ctx, env_name, connection=kube)
        info = shown["namespaces"][env_name]["solutions"][SOL]
        assert info["operator"].startswith("Not available")
        assert [(r["from"], r["to"], r["result"]) for r in info["history"]] == [
            (None, "1.0.0", "in-progress")
        ]
    # Any later command that converges the environment completes the record from what it sees.
    done = cli(ctx.config_path, local_cluster.kubeconfig, "env", "converge", env_name, "--wait")
    assert done.returncode == 0, done.stderr
    shown = await envs.show_environment(ctx, env_name, connection=kube)
    history = shown["namespaces"][env_name]["solutions"][SOL]["history"]
    assert [(r["from"], r["to"], r["result"], r["message"]) for r in history] == [
        (None, "1.0.0", "succeeded", "interrupted; found Available by a later command")
    ]


async def test_interrupted_add_solution_completed_by_delete_solution(
    ctx: Context, kube: Kube, env_name: str, admin: Api, local_cluster: LocalCluster
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    with cordoned(admin):  # the operator never becomes Available: the record says so
        interrupt_while_waiting(
            ctx, local_cluster, "env", "add-solution", env_name, SOL, "1.0.0", "--timeout", "120"
        )
        await envs.delete_solution(
            ctx, envs.DeleteSolutionOptions(env_name, SOL, wait=False), connection=kube
        )
    shown = await envs.show_environment(ctx, env_name, connection=kube)
    history = shown["namespaces"][env_name]["solutions"][SOL]["history"]
    assert [(r["revision"], r["from"], r["to"], r["result"], r["message"]) for r in history] == [
        (1, None, "1.0.0", "applied", "interrupted before the operator was Available"),
        (2, "1.0.0", None, "removed", ""),
    ]


async def test_upgrade_refused_when_the_active_crds_do_not_serve_the_target(
    ctx: Context, kube: Kube, env_name: str, admin: Api, tmp_path: Path
) -> None:
    group = f"narrow-{secrets.token_hex(2)}.test.solutions"
    name = "narrowsol"
    old = build_solution(tmp_path, name, "1.0.0", group=group)
    new = build_solution(tmp_path, name, "2.0.0", group=group, served=("v1alpha1", "v1beta1"))
    write_config(ctx.config_path, [old, new])
    admin.install_crd(crd_document(group, ("v1alpha1",), "v1alpha1"))
    try:
        await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
        await envs.add_solution(
            ctx, envs.AddSolutionOptions(env_name, name, "1.0.0", wait=False), connection=kube
        )
        with pytest.raises(Refused) as refused:
            await envs.upgrade_solution(
                ctx, envs.UpgradeOptions(env_name, name, "2.0.0"), connection=kube
            )
        message = str(refused.value)
        assert f"CRD gadgets.{group} does not serve v1beta1" in message
        assert f"solutions activate {name}" in message
    finally:
        admin.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}")


async def test_delete_solution_keeps_custom_resources_unless_asked(
    ctx: Context, kube: Kube, env_name: str, admin: Api
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", wait=False), connection=kube
    )
    gadgets = f"/apis/{GROUP}/v1beta1/namespaces/{env_name}/gadgets"
    admin.post(
        gadgets,
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "Gadget",
            "metadata": {"name": "g1"},
            "spec": {"size": 1},
        },
    )
    kept = await envs.delete_solution(
        ctx, envs.DeleteSolutionOptions(env_name, SOL), connection=kube
    )
    assert any(f"Gadget {env_name}/g1" in w and "--delete-data" in w for w in kept.warnings)
    assert admin.get(f"{gadgets}/g1") is not None
    assert managed(admin, env_name) == {}

    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", wait=False), connection=kube
    )
    gone = await envs.delete_solution(
        ctx, envs.DeleteSolutionOptions(env_name, SOL, delete_data=True), connection=kube
    )
    assert ("delete", f"Gadget {env_name}/g1") in {(s.action, s.target) for s in gone.steps}
    assert admin.get(f"{gadgets}/g1") is None
    shown = await envs.show_environment(ctx, env_name, connection=kube)
    history = shown["namespaces"][env_name]["solutions"][SOL]["history"]
    assert [r["result"] for r in history][-1] == "removed"


async def test_cluster_scope_warned_unless_allowed_and_never_collides(
    ctx: Context, kube: Kube, env_name: str, admin: Api, tmp_path: Path
) -> None:
    name = "widesol"
    group = "widesol.test.solutions"
    roles = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "operator"},
            "rules": [
                {"apiGroups": [group], "resources": ["gadgets"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
            ],
        }
    ]
    v1 = build_solution(tmp_path, name, "1.0.0", group=group, roles=roles)
    v2 = build_solution(tmp_path, name, "2.0.0", group=group, roles=roles)
    write_config(ctx.config_path, [v1, v2])
    admin.install_crd(crd_document(group, ("v1alpha1",), "v1alpha1"))
    other = f"{env_name}-b"
    try:
        await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
        await envs.create_environment(ctx, envs.CreateEnvOptions(other), connection=kube)
        # As MetalK8s: bound by RoleBindings (which cannot grant nodes), with a warning.
        plain = await envs.add_solution(
            ctx, envs.AddSolutionOptions(env_name, name, "1.0.0", wait=False), connection=kube
        )
        assert any("core/nodes" in w and "--allow-cluster-scope" in w for w in plain.warnings)
        assert (
            admin.items(
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                "app.kubernetes.io/part-of=widesol",
            )
            == []
        )
        for env, version in ((env_name, "1.0.0"), (other, "2.0.0"), (other, "2.0.0")):
            await envs.add_solution(
                ctx,
                envs.AddSolutionOptions(env, name, version, allow_cluster_scope=True, wait=False),
                connection=kube,
            )
        roles_live = admin.items(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles", "app.kubernetes.io/part-of=widesol"
        )
        names = sorted(r["metadata"]["name"] for r in roles_live)
        mine = [
            f"solutions:{env_name}:widesol-1.0.0:operator",
            f"solutions:{env_name}:widesol-1.0.0:operator:cluster",
        ]
        theirs = [
            f"solutions:{other}:widesol-2.0.0:operator",
            f"solutions:{other}:widesol-2.0.0:operator:cluster",
        ]
        assert names == sorted(mine + theirs)
        for role in roles_live:
            assert "*" not in json.dumps(role["rules"])
        binding = admin.get(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{env_name}/rolebindings/widesol-1.0.0-operator"
        )
        assert binding is not None and binding["roleRef"]["kind"] == "ClusterRole"
        # The permission is remembered: a plain converge keeps the cluster-scoped grant.
        again = await envs.converge_environments(
            ctx, envs.ConvergeOptions((env_name, other)), connection=kube
        )
        assert again.steps == []
        deleted = await envs.delete_environment(
            ctx, envs.DeleteEnvOptions(other, timeout=60), connection=kube
        )
        assert ("delete", f"ClusterRole solutions:{other}:widesol-2.0.0:operator") in {
            (s.action, s.target) for s in deleted.steps
        }
        left = admin.items(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles", "app.kubernetes.io/part-of=widesol"
        )
        assert sorted(r["metadata"]["name"] for r in left) == mine
        assert admin.get(f"/api/v1/namespaces/{other}") is None
    finally:
        admin.delete(f"/api/v1/namespaces/{other}")
        admin.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}")


async def test_operator_is_rescheduled_when_its_node_goes_away(
    ctx: Context, kube: Kube, env_name: str, admin: Api, local_cluster: LocalCluster
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60), connection=kube
    )
    pods = admin.items(f"/api/v1/namespaces/{env_name}/pods", f"app.kubernetes.io/part-of={SOL}")
    assert len(pods) == 1
    node = pods[0]["spec"]["nodeName"]
    admin.delete(f"/api/v1/nodes/{node}")
    try:

        def rescheduled() -> bool:
            now = admin.items(
                f"/api/v1/namespaces/{env_name}/pods", f"app.kubernetes.io/part-of={SOL}"
            )
            running = [p for p in now if p["spec"].get("nodeName") not in (None, node)]
            dep = deployment(admin, env_name) or {}
            return bool(running) and dep.get("status", {}).get("availableReplicas") == 1

        wait_for(rescheduled, timeout=120, what="the operator pod on another node")
        rollouts = await envs.converge_environments(
            ctx, envs.ConvergeOptions((env_name,), wait=True, timeout=30), connection=kube
        )
        assert rollouts.steps == []
    finally:
        with contextlib.suppress(Exception):
            local_cluster.plane.add_node(node)


def test_cli_create_list_show_dry_run_and_delete(
    ctx: Context, env_name: str, admin: Api, local_cluster: LocalCluster
) -> None:
    def run(*args: str) -> Any:
        return cli(ctx.config_path, local_cluster.kubeconfig, *args)

    bad = run("env", "create", "Not_Valid")
    assert bad.returncode == 1 and "is not a valid name" in bad.stderr
    plan = run(
        "env",
        "create",
        env_name,
        "-N",
        f"{env_name}-1",
        "-N",
        f"{env_name}-2",
        "-d",
        "Team A",
        "--dry-run",
    )
    assert plan.returncode == 0, plan.stderr
    assert f"would create Namespace {env_name}-1" in plan.stdout
    assert admin.get(f"/api/v1/namespaces/{env_name}-1") is None
    done = run(
        "env", "create", env_name, "-N", f"{env_name}-1", "-N", f"{env_name}-2", "-d", "Team A"
    )
    assert done.returncode == 0, done.stderr
    ns = admin.get(f"/api/v1/namespaces/{env_name}-1")
    assert ns is not None
    assert ns["metadata"]["labels"]["solutions.metalk8s.scality.com/environment"] == env_name
    assert (
        ns["metadata"]["annotations"]["solutions.metalk8s.scality.com/environment-description"]
        == "Team A"
    )
    assert "nothing to do" in run("env", "create", env_name, "-N", f"{env_name}-1").stdout

    dry = run("env", "add-solution", env_name, SOL, "1.0.0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would create Deployment {env_name}-1/{SOL}-operator" in dry.stdout
    assert f"would create Deployment {env_name}-2/{SOL}-operator" in dry.stdout
    assert managed(admin, f"{env_name}-1") == {}
    added = run(
        "env", "add-solution", env_name, SOL, "1.0.0", "-N", f"{env_name}-1", "--timeout", "60"
    )
    assert added.returncode == 0, added.stderr
    assert "replicas available" in added.stderr  # progress lines
    summary = run("env", "upgrade", env_name, SOL, "2.0.0", "--dry-run")
    assert summary.returncode == 0, summary.stderr
    assert f"would change Deployment {env_name}-1/{SOL}-operator: metadata.labels" in summary.stdout
    assert "app.kubernetes.io/version" not in summary.stdout  # the diff is on request
    diff = run("env", "upgrade", env_name, SOL, "2.0.0", "--dry-run", "--diff")
    assert diff.returncode == 0, diff.stderr
    assert f"would change Deployment {env_name}-1/{SOL}-operator" in diff.stdout
    assert "-    app.kubernetes.io/version: 1.0.0" in diff.stdout, diff.stdout
    assert "+    app.kubernetes.io/version: 2.0.0" in diff.stdout
    assert "applied-hash" not in diff.stdout

    listed = json.loads(run("env", "list", "-o", "json").stdout)
    mine = next(e for e in listed if e["name"] == env_name)
    assert mine["namespaces"] == {
        f"{env_name}-1": {"config": {SOL: "1.0.0"}},
        f"{env_name}-2": {"config": {}},
    }
    shown = run("env", "show", env_name)
    assert f"{SOL} 1.0.0: Available" in shown.stdout
    status = json.loads(run("status", "-o", "json").stdout)
    assert status["environments"][env_name]["description"] == "Team A"
    assert set(status) == {"available", "config", "environments"}

    missing = run("env", "show", "no-such-env")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    deleted = run("env", "delete", env_name, "--timeout", "60")
    assert deleted.returncode == 0, deleted.stderr
    assert admin.get(f"/api/v1/namespaces/{env_name}-1") is None
    assert admin.get(f"/api/v1/namespaces/{env_name}-2") is None


async def test_invalid_names_and_unknown_namespaces(
    ctx: Context, kube: Kube, env_name: str
) -> None:
    with pytest.raises(InvalidInput, match="not a valid name"):
        await envs.create_environment(ctx, envs.CreateEnvOptions("-bad"), connection=kube)
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    with pytest.raises(InvalidInput, match="not part of environment"):
        await envs.add_solution(
            ctx,
            envs.AddSolutionOptions(env_name, SOL, "1.0.0", namespaces=("elsewhere",)),
            connection=kube,
        )
    with pytest.raises(Refused, match="default is a system namespace"):
        await envs.create_environment(
            ctx, envs.CreateEnvOptions("x" + env_name, namespaces=("default",)), connection=kube
        )


async def test_instances_validated_before_sending(
    ctx: Context, kube: Kube, env_name: str, admin: Api
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", wait=False), connection=kube
    )
    with pytest.raises(InvalidInput, match=r"size: 50 is greater than the maximum of 10"):
        await instances.create_instance(
            ctx,
            instances.CreateInstanceOptions(
                env_name, SOL, kind="Gadget", name="g", sets=("spec.size=50",)
            ),
            connection=kube,
        )
    with pytest.raises(InvalidInput, match="'size' is a required property"):
        await instances.create_instance(
            ctx,
            instances.CreateInstanceOptions(env_name, SOL, kind="gadgets", name="g"),
            connection=kube,
        )
    before = kube.counter.mutating
    dry = await instances.create_instance(
        ctx,
        instances.CreateInstanceOptions(
            env_name, SOL, kind="Gadget", name="g", sets=("spec.size=2",), dry_run=True
        ),
        connection=kube,
    )
    assert (
        dry["name"] == "g"
        and admin.get(f"/apis/{GROUP}/v1alpha1/namespaces/{env_name}/gadgets/g") is None
    )
    assert kube.counter.mutating == before + 1  # the server-side dry run only
    created = await instances.create_instance(
        ctx,
        instances.CreateInstanceOptions(
            env_name, SOL, kind="Gadget", name="g", sets=("spec.size=2",)
        ),
        connection=kube,
    )
    assert created["columns"] == {"Size": 2}
    edited = await instances.edit_instance(
        ctx,
        instances.EditInstanceOptions(env_name, SOL, "Gadget/g", ("spec.size=4", "spec.color=red")),
        connection=kube,
    )
    assert edited["spec"] == {"size": 4, "color": "red"}
    with pytest.raises(InvalidInput, match="color"):
        await instances.edit_instance(
            ctx,
            instances.EditInstanceOptions(env_name, SOL, "Gadget/g", ("spec.color=blue",)),
            connection=kube,
        )
    listed = await instances.list_instances(
        ctx, instances.InstanceQuery(env_name, SOL), connection=kube
    )
    assert [(i["kind"], i["name"], i["spec"]["size"]) for i in listed] == [("Gadget", "g", 4)]
    gone = await instances.delete_instance(
        ctx, instances.DeleteInstanceOptions(env_name, SOL, "Gadget/g"), connection=kube
    )
    assert gone["gone"]
    assert (
        await instances.list_instances(ctx, instances.InstanceQuery(env_name, SOL), connection=kube)
        == []
    )
