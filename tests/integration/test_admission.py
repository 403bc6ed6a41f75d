"""Only imported images run (issue 22 item 4), against the real local API server.

The environment's ValidatingAdmissionPolicy is enforced by the API server itself: Pods are
created (dry run: admission runs in full, nothing is stored) in and outside the environment,
with images of the deployed archives, foreign images, and tags.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from env_support import Api, build_solution, cli, crd_document, wait_for, write_config
from metalk8s_solutions.api.manifest import parse_manifest
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube
from metalk8s_solutions.engine import admission
from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine.desired import VersionContent, restricted
from metalk8s_solutions.engine.environments import load_version_content
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "admtest"
OTHER = "admother"  # imported, deployed only for a while
GROUP = "admtest.test.solutions"
ENV_LABEL = "solutions.metalk8s.scality.com/environment"
VAP = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
VAPB = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
FOREIGN = "registry.test:5000/elsewhere/busybox@sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("admission-archives")
    return {
        # With a Solution UI: its image differs between versions (the operator's does not).
        "1.0.0": build_solution(out, SOL, "1.0.0", group=GROUP, ui={"port": 8080}),
        "2.0.0": build_solution(out, SOL, "2.0.0", group=GROUP, ui={"port": 8080}),
        OTHER: build_solution(out, OTHER, "1.0.0", group=GROUP, ui={"port": 8080}),
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
def env_name(admin: Api) -> Iterator[str]:
    """A fresh environment name; whatever is left of it is deleted afterwards."""
    name = f"adm-{secrets.token_hex(3)}"
    yield name
    for ns in admin.items("/api/v1/namespaces", f"{ENV_LABEL}={name}"):
        admin.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")
    for path in (VAPB, VAP, "/apis/rbac.authorization.k8s.io/v1/clusterroles"):
        for obj in admin.items(path, f"{ENV_LABEL}={name}"):
            admin.delete(f"{path}/{obj['metadata']['name']}")


@pytest.fixture
def outside(admin: Api) -> Iterator[str]:
    """A namespace that belongs to no environment."""
    name = f"outside-{secrets.token_hex(3)}"
    admin.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    yield name
    admin.delete(f"/api/v1/namespaces/{name}")


def try_pod(admin: Api, ns: str, *images: str, init: str | None = None) -> tuple[int, str]:
    """Create (dry run) a Pod of ``images`` in ``ns``: (HTTP status, message)."""
    named = [(f"c{i}", image) for i, image in enumerate(images)]
    spec = restricted({"containers": [{"name": n, "image": i} for n, i in named]})
    if init is not None:  # restricted too, so that only the image can be refused
        spec["initContainers"] = [{**spec["containers"][0], "name": "init", "image": init}]
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{secrets.token_hex(3)}"},
        "spec": spec,
    }
    response = admin.http.post(f"/api/v1/namespaces/{ns}/pods", params={"dryRun": "All"}, json=body)
    return response.status_code, str(response.json().get("message", ""))


def image_of(admin: Api, ns: str, component: str) -> str:
    dep = admin.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{SOL}-{component}")
    assert dep is not None
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def refused_until_enforced(admin: Api, ns: str, image: str) -> str:
    """The message refusing ``image`` in ``ns`` (a new policy reaches the admission plugin a
    moment after it is stored)."""

    def refused() -> str | None:
        status, message = try_pod(admin, ns, image)
        return message if status == 403 else None

    found: str = wait_for(refused, timeout=30, what=f"{image} refused in {ns}")
    return found


async def test_only_images_of_the_deployed_solutions_run_in_the_environment(
    ctx: Context,
    kube: Kube,
    env_name: str,
    admin: Api,
    outside: str,
    archives: dict[str, Path],
    local_cluster: LocalCluster,
) -> None:
    await envs.create_environment(ctx, envs.CreateEnvOptions(env_name), connection=kube)
    bad = cli(
        ctx.config_path,
        Path(local_cluster.kubeconfig),
        *("env", "add-solution", env_name, SOL, "1.0.0", "--allow-image", "busybox; rm"),
    )
    assert bad.returncode == 1 and "is not an image reference" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    assert admin.get(f"/apis/apps/v1/namespaces/{env_name}/deployments/{SOL}-operator") is None
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60), connection=kube
    )
    # The operator's and the UI's pods were admitted: add_solution waited until both
    # Deployments were Available.
    old = image_of(admin, env_name, "ui")
    assert f"/{SOL}-1.0.0/" in old and "@sha256:" in old
    assert f"/{SOL}-1.0.0/" in image_of(admin, env_name, "operator")
    name = admission.policy_name(env_name)

    message = refused_until_enforced(admin, env_name, FOREIGN)
    assert FOREIGN in message and name in message and env_name in message, message
    assert try_pod(admin, env_name, old) == (201, "")
    # By tag: exactly what the OperatorConfig offers (MetalK8s's contract: operators pull
    # <endpoint>/<name:tag>) is admitted; another tag of the same repository is not.
    by_tag = old.split("@", 1)[0] + ":1.0.0"
    assert try_pod(admin, env_name, by_tag) == (201, "")
    other_tag = old.split("@", 1)[0] + ":6.6.6"
    status, message = try_pod(admin, env_name, other_tag)
    assert status == 403 and other_tag in message
    # Another digest under the archive's own repository: refused.
    repointed = old.split("@", 1)[0] + ":1.0.0@sha256:" + "cd" * 32
    assert try_pod(admin, env_name, repointed)[0] == 403
    # name:tag@digest, as operators read it from the OperatorConfig: the digest decides.
    pinned = old.split("@", 1)[0] + ":1.0.0@" + old.split("@", 1)[1]
    assert try_pod(admin, env_name, pinned) == (201, "")
    # Init containers are checked too.
    status, message = try_pod(admin, env_name, old, init=FOREIGN)
    assert status == 403 and FOREIGN in message
    # Outside the environment, nothing changes.
    assert try_pod(admin, outside, FOREIGN) == (201, "")

    # Another Solution's image, imported but not deployed here: refused.
    other_digest = load_version_content(archives[OTHER]).digests[f"{OTHER}-ui:1.0.0"]
    other = f"registry.test:5000/{OTHER}-1.0.0/{OTHER}-ui@{other_digest}"
    assert try_pod(admin, env_name, other)[0] == 403

    # The administrator's exception: exactly the reference given, kept across converges.
    busybox = "docker.io/library/busybox:1.36"
    assert try_pod(admin, env_name, busybox)[0] == 403
    allowed = await envs.add_solution(
        ctx,
        envs.AddSolutionOptions(env_name, SOL, "1.0.0", timeout=60, allow_images=(busybox,)),
        connection=kube,
    )
    assert ("allow", f"Namespace {env_name}") in {(s.action, s.target) for s in allowed.steps}
    wait_for(lambda: try_pod(admin, env_name, busybox) == (201, ""), what="busybox allowed")
    shown = await envs.show_environment(ctx, env_name, connection=kube)
    assert shown["namespaces"][env_name]["allowedImages"] == [f"{SOL}={busybox}"]
    assert try_pod(admin, env_name, busybox.replace("1.36", "1.37"))[0] == 403

    await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env_name, SOL, "2.0.0", timeout=60), connection=kube
    )
    new = image_of(admin, env_name, "ui")
    assert f"/{SOL}-2.0.0/" in new and new.split("@")[1] != old.split("@")[1]
    assert try_pod(admin, env_name, new) == (201, "")
    # 1.0.0 is still imported, so the operator config offers it: an instance left on 1.0.0
    # by the operator's upgrade keeps getting pods.
    assert try_pod(admin, env_name, old) == (201, "")
    assert try_pod(admin, env_name, busybox) == (201, "")  # the exception survived

    # The other Solution's images run while it is deployed here, and no longer after.
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env_name, OTHER, "1.0.0", timeout=60), connection=kube
    )
    wait_for(lambda: try_pod(admin, env_name, other) == (201, ""), what=f"{OTHER} allowed")
    pod = f"/api/v1/namespaces/{env_name}/pods/kept"
    body = restricted({"containers": [{"name": "c", "image": other}]})
    admin.post(
        f"/api/v1/namespaces/{env_name}/pods",
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kept"}, "spec": body},
    )
    await envs.delete_solution(
        ctx, envs.DeleteSolutionOptions(env_name, OTHER, timeout=60), connection=kube
    )
    assert other in refused_until_enforced(admin, env_name, other)
    # A pod admitted before keeps running and may still be updated with the image it had...
    labelled = admin.http.patch(
        pod,
        json={"metadata": {"labels": {"still": "here"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert labelled.status_code == 200, labelled.text
    # ...but gains no other image, not even as an ephemeral (debug) container.
    debug = {
        "name": "debug",
        "image": FOREIGN,
        "targetContainerName": "c",
        "securityContext": body["containers"][0]["securityContext"],  # Pod Security passes
    }
    running = admin.get(pod)
    assert running is not None
    running["spec"]["ephemeralContainers"] = [debug]
    added = admin.http.put(f"{pod}/ephemeralcontainers", json=running)
    assert added.status_code == 403 and FOREIGN in added.json()["message"], added.text

    # A converge with nothing to do sends nothing (the policy reads back as written).
    again = await envs.converge_environments(
        ctx, envs.ConvergeOptions(envs=(env_name,)), connection=kube
    )
    assert again.steps == [], again.steps

    await envs.delete_environment(ctx, envs.DeleteEnvOptions(env_name, wait=False), connection=kube)
    assert admin.get(f"{VAP}/{name}") is None
    assert admin.get(f"{VAPB}/{name}") is None


def test_two_hundred_digests_fit_the_cel_cost_limits(admin: Api, outside: str) -> None:
    """A policy allowing 200 digests is accepted and enforced (the map keeps checks cheap)."""
    env = f"adm-many-{secrets.token_hex(3)}"
    manifest = parse_manifest(
        b"apiVersion: solutions.metalk8s.scality.com/v1alpha1\nkind: Solution\n"
        b"metadata: {name: many}\nspec:\n  version: 1.0.0\n  images: [op:1]\n"
        b"  operator:\n    image: {name: op, tag: '1'}\n",
        "manifest.yaml",
    )
    digests = {
        f"img{i}:1": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest() for i in range(200)
    }
    objects = admission.admission_objects(env, [VersionContent(manifest, digests=digests)])
    admin.apply(
        f"/api/v1/namespaces/{outside}",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": outside, "labels": {ENV_LABEL: env}},
        },
    )
    try:
        for obj, path in zip(objects, (VAP, VAPB), strict=True):
            admin.apply(f"{path}/{obj['metadata']['name']}", obj)
        last = f"registry.test:5000/many-1.0.0/img199@{digests['img199:1']}"
        refused_until_enforced(admin, outside, FOREIGN)
        images = [f"r/img{i}@{digests[f'img{i}:1']}" for i in range(0, 200, 10)]
        assert try_pod(admin, outside, last, *images) == (201, "")
    finally:
        for path in (VAPB, VAP):
            admin.delete(f"{path}/{admission.policy_name(env)}")
