"""The operator against the real local control plane, with only the rights of its role.yaml.

It runs as a process, as the product's Deployment would run it (``--config``, WATCH_NAMESPACE,
POD_NAME, OPERATOR_NAME), authenticated as a user bound to the Role the archive ships, so a
missing permission fails these tests.  Pods land on KWOK nodes, so Deployments become Available.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from metalk8s_solutions.testing.pytest_plugin import LocalCluster

from .support import (
    Api,
    background,
    chroot_command,
    ensure_crd,
    free_port,
    operator_config,
    role_document,
    unpack_image,
    vs_path,
    wait_until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("example_crd_removed_afterwards")]

REGISTRY = "registry.test:5000"
DIGEST = "sha256:" + "d" * 64
OPERATOR_COMMAND = str(Path(sys.executable).with_name("example-solution-operator"))


@pytest.fixture
def api(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        yield Api(http)


@pytest.fixture
def crd(api: Api) -> Callable[[str], dict[str, Any]]:
    """``crd("1.0.0")`` installs that version's CRD (cluster-wide, as activation would)."""
    return lambda version: ensure_crd(api, version)


@pytest.fixture
def operator_kubeconfig(api: Api, local_cluster: LocalCluster, kube_namespace: str) -> Path:
    """A kubeconfig with exactly the rights of role.yaml in the namespace (no admin)."""
    role = role_document("2.0.0")
    role["metadata"]["namespace"] = kube_namespace
    api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{kube_namespace}/roles", role)
    user = f"operator-{kube_namespace}"
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "example-solution-operator", "namespace": kube_namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    api.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{kube_namespace}/rolebindings", binding
    )
    return local_cluster.user_kubeconfig(user)


@contextlib.contextmanager
def operator(
    command: list[str], namespace: str, kubeconfig: Path, log: Path
) -> Iterator[Callable[[], None]]:
    """Run the operator; yields a check that it is still running (shows its log if not)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KUBECONFIG": str(kubeconfig),
        "WATCH_NAMESPACE": namespace,
        "POD_NAME": "example-solution-operator-test",
        "OPERATOR_NAME": "example-solution-operator",
    }
    with background(command, log, env) as process:

        def alive() -> None:
            code = process.poll()
            assert code is None, f"the operator exited ({code}):\n{log.read_text()[-4000:]}"

        try:
            yield alive
        except BaseException:
            print(f"--- operator log ({log}) ---\n{log.read_text()[-6000:]}")
            raise
        alive()


def versionserver(name: str, api_version: str = "v1alpha1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"example-solution.metalk8s.scality.com/{api_version}",
        "kind": "VersionServer",
        "metadata": {"name": name},
        "spec": spec,
    }


def ready(vs: dict[str, Any] | None, generation: int, replicas: int) -> bool:
    """The status says: this generation converged, ``replicas`` ready, condition Ready."""
    if vs is None:
        return False
    status = vs.get("status", {})
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    return (
        status.get("observedGeneration") == generation
        and status.get("readyReplicas") == replicas
        and conditions.get("Ready", {}).get("status") == "True"
    )


def refused(vs: dict[str, Any] | None, generation: int) -> dict[str, Any] | None:
    """The Ready condition, once it reports UnknownVersion for ``generation``."""
    status = (vs or {}).get("status", {})
    conditions = status.get("conditions") or [{}]
    if status.get("observedGeneration") == generation:
        condition: dict[str, Any] = conditions[0]
        return condition if condition.get("reason") == "UnknownVersion" else None
    return None


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def available(api: Api, namespace: str, name: str) -> dict[str, Any] | None:
    deployment = api.get(deployment_path(namespace, name))
    conditions = (deployment or {}).get("status", {}).get("conditions", [])
    if any(c["type"] == "Available" and c["status"] == "True" for c in conditions):
        return deployment
    return None


def pods(api: Api, namespace: str) -> list[dict[str, Any]]:
    listing = api.get(f"/api/v1/namespaces/{namespace}/pods")
    assert listing is not None
    return [p for p in listing["items"] if not p["metadata"].get("deletionTimestamp")]


def image_of(deployment: dict[str, Any]) -> str:
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_the_operator_converges_versionservers(
    api: Api,
    crd: Callable[[str], dict[str, Any]],
    kube_namespace: str,
    operator_kubeconfig: Path,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    crd("1.0.0")
    config = tmp_path / "operator.yaml"
    endpoints = {v: [f"{REGISTRY}/example-solution-{v}"] for v in ("1.0.0", "1.1.0")}
    config.write_text(operator_config(endpoints, digests={"1.1.0": DIGEST}))
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    command = [OPERATOR_COMMAND, f"--config={config}", f"--liveness={liveness}"]
    with operator(command, ns, operator_kubeconfig, tmp_path / "operator.log") as alive:
        wait_until(lambda: httpx.get(liveness).status_code == 200, "the liveness endpoint")
        path = vs_path(ns, "v1alpha1", "web")
        created = api.create(vs_path(ns), versionserver("web", version="1.0.0", replicas=2))
        uid = created["metadata"]["uid"]

        # Created: a Deployment Available on KWOK nodes, a Service, and the status says so.
        vs = wait_until(lambda: (v := api.get(path)) and ready(v, 1, 2) and v, "web ready")
        assert vs["status"]["version"] == "1.0.0"
        assert not vs["metadata"].get("finalizers"), "no finalizer: deletion never waits"
        deployment = available(api, ns, "web")
        assert deployment is not None
        assert image_of(deployment) == f"{REGISTRY}/example-solution-1.0.0/base-server:1.0.0"
        running = pods(api, ns)
        assert len(running) == 2
        assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in running)
        assert all(p["status"]["phase"] == "Running" for p in running)
        service = api.get(f"/api/v1/namespaces/{ns}/services/web")
        assert service is not None
        for obj in (deployment, service):
            (owner,) = obj["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["uid"], owner["controller"]) == (
                "VersionServer",
                uid,
                True,
            )

        # Scaled.
        api.merge(path, {"spec": {"replicas": 3}})
        wait_until(lambda: ready(api.get(path), 2, 3), "web scaled to 3")
        assert len(pods(api, ns)) == 3

        # Upgraded: the image of the new version's endpoint, by digest.
        api.merge(path, {"spec": {"version": "1.1.0"}})
        vs = wait_until(lambda: (v := api.get(path)) and ready(v, 3, 3) and v, "web on 1.1.0")
        want = f"{REGISTRY}/example-solution-1.1.0/base-server@{DIGEST}"
        assert vs["status"]["image"] == want
        assert vs["status"]["version"] == "1.1.0"
        wait_until(
            lambda: {c["image"] for p in pods(api, ns) for c in p["spec"]["containers"]} == {want},
            "every pod on the new image",
        )

        # Changed by hand: put back.
        api.merge(deployment_path(ns, "web"), {"spec": {"replicas": 1}})
        wait_until(
            lambda: (d := api.get(deployment_path(ns, "web"))) and d["spec"]["replicas"] == 3,
            "the operator to restore 3 replicas",
        )

        # A version the config does not list: reported, the running version stays.
        api.merge(path, {"spec": {"version": "9.9.9"}})
        condition = wait_until(lambda: refused(api.get(path), 4), "UnknownVersion for web")
        assert condition["status"] == "False"
        assert "'9.9.9' is not available" in condition["message"]
        deployment = api.get(deployment_path(ns, "web"))
        assert deployment is not None and image_of(deployment) == want
        # ... and for a new VersionServer: nothing is created for it.
        later = vs_path(ns, "v1alpha1", "later")
        api.create(vs_path(ns), versionserver("later", version="3.0.0", replicas=1))
        wait_until(lambda: refused(api.get(later), 1), "UnknownVersion for later")
        assert api.get(deployment_path(ns, "later")) is None
        alive()

        # Back to a listed version: converged at once (no retry delay in the way).
        api.merge(path, {"spec": {"version": "1.0.0"}})
        wait_until(lambda: ready(api.get(path), 5, 3), "web back on 1.0.0", timeout=20)

        # 3.0.0 gets imported: the product rewrites the mounted config. Nothing else changes,
        # so only the operator's watch of its config can start "later".
        endpoints["3.0.0"] = [f"{REGISTRY}/example-solution-3.0.0"]
        config.write_text(operator_config(endpoints, digests={"1.1.0": DIGEST}))
        vs = wait_until(lambda: (v := api.get(later)) and ready(v, 1, 1) and v, "later ready")
        assert vs["status"]["image"] == f"{REGISTRY}/example-solution-3.0.0/base-server:3.0.0"

        # Deleted: the garbage collector removes what the operator made.
        for name in ("web", "later"):
            api.delete(vs_path(ns, "v1alpha1", name))
        wait_until(lambda: api.get(path) is None, "web deleted")
        wait_until(
            lambda: (
                api.get(deployment_path(ns, "web")) is None
                and api.get(f"/api/v1/namespaces/{ns}/services/web") is None
                and api.get(deployment_path(ns, "later")) is None
            ),
            "the Deployments and Services to be garbage-collected",
        )
        wait_until(lambda: not pods(api, ns), "the pods to go")


@pytest.fixture(scope="module")
def operator_image(
    example_archives: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("running the operator image in a chroot needs root (CI runs as root)")
    rootfs = tmp_path_factory.mktemp("operator-2.0.0") / "rootfs"
    runtime = unpack_image(
        example_archives.isos["2.0.0"], "example-solution-operator:2.0.0", rootfs
    )
    return rootfs, runtime


@pytest.mark.parametrize("how", ["local process", "image in a chroot"])
def test_v1beta1_and_log_level_with_the_2_0_0_crd(
    request: pytest.FixtureRequest,
    api: Api,
    crd: Callable[[str], dict[str, Any]],
    kube_namespace: str,
    operator_kubeconfig: Path,
    tmp_path: Path,
    how: str,
) -> None:
    """With the 2.0.0 CRD the operator serves the preferred version, v1beta1, and its field."""
    ns = kube_namespace
    crd("2.0.0")
    text = operator_config({"2.0.0": [f"{REGISTRY}/example-solution-2.0.0"]})
    if how == "local process":
        config = tmp_path / "operator.yaml"
        config.write_text(text)
        command = [OPERATOR_COMMAND, f"--config={config}"]
        kubeconfig = operator_kubeconfig
    else:
        rootfs, runtime = request.getfixturevalue("operator_image")
        (rootfs / "etc" / "config").mkdir(exist_ok=True)
        (rootfs / "etc" / "config" / "operator.yaml").write_text(text)
        # The image runs as nobody: give it its own readable copy of the kubeconfig.
        kubeconfig = rootfs / "tmp" / f"{ns}.kubeconfig"
        shutil.copy(operator_kubeconfig, kubeconfig)
        os.chown(kubeconfig, 65534, 65534)
        env = [
            f"KUBECONFIG=/tmp/{ns}.kubeconfig",
            f"WATCH_NAMESPACE={ns}",
            "POD_NAME=example-solution-operator-test",
            "OPERATOR_NAME=example-solution-operator",
        ]
        command = chroot_command(
            rootfs, {**runtime, "Env": [*runtime["Env"], *env]}, runtime["Cmd"]
        )
    metrics_port = free_port()
    command = [*command, f"--metrics-port={metrics_port}"]
    with operator(command, ns, kubeconfig, tmp_path / "operator.log"):
        body = versionserver("api", "v1beta1", version="2.0.0", replicas=1, logLevel="debug")
        api.create(vs_path(ns, "v1beta1"), body)
        path = vs_path(ns, "v1beta1", "api")
        wait_until(lambda: ready(api.get(path), 1, 1), "api ready")
        # 2.0.0 declares operator metrics: real counters, in the Prometheus text format.  The
        # operator sets its gauge after its status write returns, so poll until it has.
        gauge = f'example_solution_versionserver_ready_replicas{{name="{ns}/api"}} 1'

        def scrape() -> httpx.Response | None:
            answer = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
            return answer if gauge in answer.text else None

        scraped = wait_until(scrape, "the ready-replicas gauge", timeout=30)
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = scraped.text
        ok_line = next(
            ln
            for ln in text.splitlines()
            if ln.startswith('example_solution_reconciliations_total{result="ok"}')
        )
        assert int(ok_line.split()[-1]) >= 1
        if how != "local process":
            assert 'example_solution_operator_info{version="2.0.0"} 1' in text
        deployment = available(api, ns, "api")
        assert deployment is not None
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["--port=8080", "--log-level=debug"]
        assert container["image"] == f"{REGISTRY}/example-solution-2.0.0/base-server:2.0.0"
        (owner,) = deployment["metadata"]["ownerReferences"]
        assert owner["apiVersion"] == "example-solution.metalk8s.scality.com/v1beta1"
        api.delete(path)
        wait_until(lambda: api.get(path) is None, "api deleted, without waiting for the operator")
