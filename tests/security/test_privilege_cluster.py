"""Least privilege against the real local control plane: Pod Security admission refuses pods
that are not ``restricted`` in environment namespaces, while ours and the example Solution's are
admitted; an approval of privileged role rules is given explicitly and survives converges."""

from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from example_solution_operator.resources import VersionServer, deployment_manifest

from env_support import Api, build_solution, cli, crd_document, wait_for, write_config
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube
from metalk8s_solutions.cluster.state import ENV_LABEL
from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine.desired import privileged_approval
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.errors import InvalidInput, Refused
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "privsol"
GROUP = "privsol.test.solutions"
PSA = "pod-security.kubernetes.io"
ANNOTATION = "solutions.metalk8s.scality.com/allow-privileged-role"
PRIVILEGED_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "operator"},
    "rules": [
        {"apiGroups": [GROUP], "resources": ["gadgets"], "verbs": ["get", "list", "watch"]},
        # (every secret alone is no longer privileged: bounded to the namespace, issue 17)
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"]},
    ],
}

#: 3.0.0 asks for one more privileged right than 2.0.0's approved rules
MORE_PRIVILEGED_ROLE = {
    **PRIVILEGED_ROLE,
    "rules": [
        *PRIVILEGED_ROLE["rules"],
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
    ],
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("privilege-archives")
    return {
        "plain": build_solution(out, SOL, "1.0.0", group=GROUP, ui={}),
        "privileged": build_solution(out, SOL, "2.0.0", group=GROUP, roles=[PRIVILEGED_ROLE]),
        "more": build_solution(out, SOL, "3.0.0", group=GROUP, roles=[MORE_PRIVILEGED_ROLE]),
    }


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        api.install_crd(crd_document(GROUP, ("v1alpha1",), "v1alpha1"))
        yield api


@pytest.fixture
def ctx(tmp_path: Path, archives: dict[str, Path], local_cluster: LocalCluster) -> Context:
    config = write_config(tmp_path / "solutions.yaml", list(archives.values()))
    return Context(config, ClusterTarget(kubeconfig=local_cluster.kubeconfig))


@pytest.fixture
async def kube(ctx: Context) -> AsyncIterator[Kube]:
    async with Kube(ctx.target) as connection:
        yield connection


@pytest.fixture
def env(admin: Api) -> Iterator[str]:
    """A fresh environment name; its namespaces are deleted afterwards (not awaited)."""
    name = f"p-{secrets.token_hex(3)}"
    yield name
    for ns in admin.items("/api/v1/namespaces", f"{ENV_LABEL}={name}"):
        admin.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")


def labels(admin: Api, ns: str) -> dict[str, str]:
    namespace = admin.get(f"/api/v1/namespaces/{ns}")
    assert namespace is not None
    return dict(namespace["metadata"].get("labels") or {})


def pods(admin: Api, ns: str, selector: str) -> list[dict[str, Any]]:
    return admin.items(f"/api/v1/namespaces/{ns}/pods", selector)


def refusals(admin: Api, ns: str) -> list[str]:
    """Messages of the FailedCreate events of ``ns`` (Pod Security refusals land there)."""
    events = admin.items(f"/api/v1/namespaces/{ns}/events")
    return [e.get("message", "") for e in events if e.get("reason") == "FailedCreate"]


async def test_environment_namespaces_enforce_restricted_and_admit_our_pods(
    ctx: Context, kube: Kube, admin: Api, env: str
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
    assert {k: v for k, v in labels(admin, env).items() if k.startswith(PSA)} == {
        f"{PSA}/enforce": "restricted",
        f"{PSA}/warn": "restricted",
        f"{PSA}/audit": "restricted",
    }
    # The example's base-server image is not in this archive: allowed explicitly, so that
    # only Pod Security can refuse the pods below (engine/admission.py).
    base_server = "registry.test:5000/example-solution-1.0.0/base-server:1.0.0"
    await envs.add_solution(
        ctx,
        envs.AddSolutionOptions(env, SOL, "1.0.0", wait=False, allow_images=(base_server,)),
        connection=kube,
    )
    # The operator's and the UI's pods pass admission (KWOK nodes then run them).
    for component in ("operator", "ui"):
        selector = f"app.kubernetes.io/name={SOL}-{component}"
        wait_for(lambda s=selector: pods(admin, env, s), what=f"{component} pod admitted")

    # The example Solution's base-server, as its operator creates it, is admitted too.
    vs = VersionServer(
        api_version=f"{GROUP}/v1alpha1",
        name="web",
        namespace=env,
        uid="none",
        generation=1,
        version="1.0.0",
        replicas=1,
        log_level=None,
        status={},
    )
    example = deployment_manifest(vs, base_server)
    del example["metadata"]["ownerReferences"]  # no VersionServer here: no garbage collection
    admin.post(f"/apis/apps/v1/namespaces/{env}/deployments", example)
    wait_for(lambda: pods(admin, env, "app.kubernetes.io/instance=web"), what="base-server pod")

    # The control: the same pod without its securityContext is refused by the API server.
    bare = deployment_manifest(vs, base_server)
    del bare["metadata"]["ownerReferences"]
    bare["metadata"]["name"] = "bare"
    template = bare["spec"]["template"]
    for sel in (bare["spec"]["selector"]["matchLabels"], template["metadata"]["labels"]):
        sel["app.kubernetes.io/instance"] = "bare"
    del template["spec"]["securityContext"]
    del template["spec"]["containers"][0]["securityContext"]
    admin.post(f"/apis/apps/v1/namespaces/{env}/deployments", bare)
    messages = wait_for(
        lambda: [m for m in refusals(admin, env) if "bare" in m], what="bare pod refused"
    )
    assert "violates PodSecurity" in messages[0] and "restricted" in messages[0]
    assert pods(admin, env, "app.kubernetes.io/instance=bare") == []


async def test_pod_security_level_is_a_choice_kept_by_later_creates(
    ctx: Context, kube: Kube, admin: Api, env: str
) -> None:
    await envs.create_environment(
        ctx, envs.CreateEnvOptions(env, pod_security="baseline"), connection=kube
    )
    assert labels(admin, env)[f"{PSA}/enforce"] == "baseline"
    # Adding a namespace later keeps the environment's level, on every namespace.
    await envs.create_environment(
        ctx, envs.CreateEnvOptions(env, namespaces=(f"{env}-b",)), connection=kube
    )
    assert labels(admin, f"{env}-b")[f"{PSA}/enforce"] == "baseline"
    assert labels(admin, env)[f"{PSA}/enforce"] == "baseline"
    shown = await envs.show_environment(ctx, env, connection=kube)
    assert shown["namespaces"][env]["podSecurity"] == "baseline"
    with pytest.raises(InvalidInput, match="Pod Security level 'loose'"):
        await envs.create_environment(
            ctx, envs.CreateEnvOptions(env, pod_security="loose"), connection=kube
        )


async def test_privileged_rules_need_an_approval_that_persists(
    ctx: Context, kube: Kube, admin: Api, env: str, archives: dict[str, Path]
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
    opts = envs.AddSolutionOptions(env, SOL, "2.0.0", wait=False)
    with pytest.raises(Refused, match="--allow-privileged-role") as caught:
        await envs.add_solution(ctx, opts, connection=kube)
    assert "bind" in str(caught.value) and "pods/exec" in str(caught.value)
    roles_path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{env}/roles"
    assert admin.items(roles_path, f"app.kubernetes.io/part-of={SOL}") == []  # nothing changed
    cm_path = f"/api/v1/namespaces/{env}/configmaps/metalk8s-environment"
    cm = admin.get(cm_path)
    assert cm is not None and SOL not in (cm.get("data") or {})
    assert ANNOTATION not in (cm["metadata"].get("annotations") or {})

    approve = envs.AddSolutionOptions(env, SOL, "2.0.0", wait=False, allow_privileged_role=True)
    plan = await envs.add_solution(ctx, dataclasses.replace(approve, dry_run=True), connection=kube)
    approved = [s for s in plan.steps if s.action == "approve"]
    assert len(approved) == 2  # exactly the two privileged rules, named
    assert any("verb bind" in s.detail for s in approved)
    assert any("pods/exec" in s.detail for s in approved)
    assert admin.items(roles_path, f"app.kubernetes.io/part-of={SOL}") == []  # a dry run

    await envs.add_solution(ctx, approve, connection=kube)
    (role,) = admin.items(roles_path, f"app.kubernetes.io/part-of={SOL}")
    assert role["rules"][2]["verbs"] == ["bind"]
    ns_path = f"/api/v1/namespaces/{env}"
    recorded = (admin.get(ns_path) or {})["metadata"]["annotations"][ANNOTATION]
    assert recorded.startswith(f"{SOL}@")
    cm = admin.get(cm_path)  # the approval is not where the operator may write (ConfigMaps)
    assert cm is not None and ANNOTATION not in (cm["metadata"].get("annotations") or {})

    # An operator that may update ConfigMaps forges an approval of 3.0.0's rules and moves the
    # version there: the next converge refuses, nothing is deployed.
    forged = privileged_approval(envs.load_version_content(archives["more"]))
    cm["metadata"].setdefault("annotations", {})[ANNOTATION] = forged
    cm["data"][SOL] = "3.0.0"
    admin.http.put(cm_path, json=cm).raise_for_status()
    with pytest.raises(Refused, match="impersonate"):
        await envs.converge_environments(ctx, envs.ConvergeOptions(envs=(env,)), connection=kube)
    (role,) = admin.items(roles_path, f"app.kubernetes.io/part-of={SOL}")
    assert all("impersonate" not in r["verbs"] for r in role["rules"])
    cm = admin.get(cm_path)
    assert cm is not None
    cm["data"][SOL] = "2.0.0"
    cm["metadata"]["annotations"].pop(ANNOTATION)
    admin.http.put(cm_path, json=cm).raise_for_status()

    # A later converge (no flag) keeps the approval and changes nothing.
    outcome = await envs.converge_environments(
        ctx, envs.ConvergeOptions(envs=(env,)), connection=kube
    )
    assert outcome.steps == []
    shown = await envs.show_environment(ctx, env, connection=kube)
    assert shown["namespaces"][env]["privilegedRolesAllowed"] == [SOL]

    # The approval covers these rules only: a version asking for more needs a new one.
    upgrade = envs.UpgradeOptions(env, SOL, "3.0.0", wait=False)
    with pytest.raises(Refused, match="--allow-privileged-role") as caught:
        await envs.upgrade_solution(ctx, upgrade, connection=kube)
    assert "impersonate" in str(caught.value)
    assert (admin.get(cm_path) or {}).get("data", {}).get(SOL) == "2.0.0"  # nothing changed
    await envs.upgrade_solution(
        ctx, dataclasses.replace(upgrade, allow_privileged_role=True), connection=kube
    )
    cm = admin.get(cm_path)
    assert cm is not None and cm["data"][SOL] == "3.0.0"
    recorded = (admin.get(ns_path) or {})["metadata"]["annotations"][ANNOTATION]
    assert recorded == forged  # 3.0.0's rules, approved by the administrator this time

    # Removing the solution withdraws the approval.
    await envs.delete_solution(
        ctx, envs.DeleteSolutionOptions(env, SOL, wait=False), connection=kube
    )
    assert ANNOTATION not in ((admin.get(ns_path) or {})["metadata"].get("annotations") or {})


def test_the_cli_refuses_in_one_line_and_approves_with_the_flag(
    ctx: Context, local_cluster: LocalCluster, admin: Api, env: str
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(ctx.config_path, local_cluster.kubeconfig, *args)

    created = run("env", "create", env, "--pod-security", "baseline")
    assert created.returncode == 0, created.stderr
    assert "Pod Security baseline" in created.stdout
    refused = run("env", "add-solution", env, SOL, "2.0.0", "--no-wait")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "--allow-privileged-role" in refused.stderr and "nothing was changed" in refused.stderr
    plan = run("env", "add-solution", env, SOL, "2.0.0", "--allow-privileged-role", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "would approve privileged privsol 2.0.0: Role operator rule" in plan.stdout
    done = run("env", "add-solution", env, SOL, "2.0.0", "--allow-privileged-role", "--no-wait")
    assert done.returncode == 0, done.stderr
    shown = run("env", "show", env, "-o", "json")
    entry = json.loads(shown.stdout)["namespaces"][env]
    assert (entry["privilegedRolesAllowed"], entry["podSecurity"]) == ([SOL], "baseline")
