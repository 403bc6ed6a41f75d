"""The seed's test plan, end to end, with the installed ``solutions`` command and the example
Solution: import, activate, create an environment, add, create a VersionServer served by the
operator (run as a local process with the ServiceAccount the product created, so its RBAC is what
is tested), scale it, upgrade, downgrade, delete-solution, delete the environment, deactivate,
unimport — checking the cluster after each step.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from env_support import Api, cli, wait_for
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "example-solution"
ENV = "journey"
GROUP = "example-solution.metalk8s.scality.com"
CRD = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/versionservers.{GROUP}"
OPERATOR = str(Path(sys.executable).with_name("example-solution-operator"))


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def operator_kubeconfig(admin: Api, local_cluster: LocalCluster, path: Path) -> Path:
    """A kubeconfig with a token of the operator's ServiceAccount (its rights, nothing more)."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    token = admin.post(f"/api/v1/namespaces/{ENV}/serviceaccounts/{SOL}-operator/token", request)[
        "status"
    ]["token"]
    admin_doc = yaml.safe_load(local_cluster.kubeconfig.read_text())
    ca = admin_doc["clusters"][0]["cluster"]["certificate-authority-data"]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": local_cluster.server, "certificate-authority-data": ca},
            }
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {"name": "c", "context": {"cluster": "c", "user": "operator", "namespace": ENV}}
        ],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def local_operator(admin: Api, local_cluster: LocalCluster, tmp: Path, tag: str) -> Iterator[None]:
    """The operator as the Deployment would run it: its mounted config, its ServiceAccount."""
    cm = admin.get(f"/api/v1/namespaces/{ENV}/configmaps/{SOL}-operator-config")
    assert cm is not None
    config = tmp / f"operator-{tag}.yaml"
    config.write_text(cm["data"]["operator.yaml"])
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KUBECONFIG": str(
            operator_kubeconfig(admin, local_cluster, tmp / f"operator-{tag}.kubeconfig")
        ),
        "WATCH_NAMESPACE": ENV,
        "POD_NAME": f"{SOL}-operator-local",
        "OPERATOR_NAME": f"{SOL}-operator",
    }
    log = tmp / f"operator-{tag}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [OPERATOR, f"--config={config}"], stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    try:
        yield
    except BaseException:
        print(f"--- operator log ---\n{log.read_text()[-4000:]}")
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def base_server(admin: Api) -> dict[str, Any] | None:
    return admin.get(f"/apis/apps/v1/namespaces/{ENV}/deployments/web")


def ready_replicas(admin: Api, replicas: int, version: str) -> bool:
    vs = admin.get(f"/apis/{GROUP}/v1alpha1/namespaces/{ENV}/versionservers/web") or {}
    status = vs.get("status") or {}
    return status.get("readyReplicas") == replicas and status.get("version") == version


@pytest.fixture
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        yield api
        api.delete(f"/api/v1/namespaces/{ENV}")
        if api.get(CRD) is not None:
            api.delete(CRD)


def test_journey(
    example_archives: Any, local_cluster: LocalCluster, admin: Api, tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "solutions.yaml"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(config, local_cluster.kubeconfig, *args)

    isos = example_archives.isos

    # Import: the three versions, checked and recorded.
    ok(
        run(
            "import",
            "--key",
            str(example_archives.public_key),
            *(str(isos[v]) for v in sorted(isos)),
        )
    )
    record = admin.get("/api/v1/namespaces/metalk8s-solutions/configmaps/metalk8s-solutions")
    assert record is not None
    assert [r["version"] for r in json.loads(record["data"][SOL])] == ["1.0.0", "1.1.0", "2.0.0"]

    # Activate 1.0.0: its CRD serves v1alpha1.
    ok(run("activate", SOL, "--version", "1.0.0"))
    crd = admin.get(CRD)
    assert crd is not None
    assert [v["name"] for v in crd["spec"]["versions"] if v["served"]] == ["v1alpha1"]

    # Create the environment.
    ok(run("env", "create", ENV, "-d", "The journey"))
    ns = admin.get(f"/api/v1/namespaces/{ENV}")
    assert (
        ns is not None
        and ns["metadata"]["labels"]["solutions.metalk8s.scality.com/environment"] == ENV
    )

    # Add 1.0.0: the operator is deployed, by digest, and Available.
    out = ok(run("env", "add-solution", ENV, SOL, "1.0.0", "--timeout", "120"))
    assert f"{SOL} 1.0.0 is deployed in {ENV}" in out
    dep = admin.get(f"/apis/apps/v1/namespaces/{ENV}/deployments/{SOL}-operator")
    assert dep is not None and dep["status"]["availableReplicas"] == 1
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith(f"127.0.0.1:5000/{SOL}-1.0.0/{SOL}-operator@sha256:")

    # An instance, served by the operator, then scaled.
    with local_operator(admin, local_cluster, tmp_path, "1.0.0"):
        out = ok(
            run(
                "instance",
                "create",
                ENV,
                SOL,
                "--kind",
                "VersionServer",
                "--name",
                "web",
                "--set",
                "spec.version=1.0.0",
                "--set",
                "spec.replicas=1",
            )
        )
        assert f"created VersionServer {ENV}/web" in out
        wait_for(lambda: ready_replicas(admin, 1, "1.0.0"), timeout=90, what="web ready on 1.0.0")
        listed = json.loads(ok(run("instance", "list", ENV, SOL, "-o", "json")))
        assert [(i["kind"], i["name"], i["columns"]["Replicas"]) for i in listed] == [
            ("VersionServer", "web", 1)
        ]

        refused = run(
            "instance", "edit", ENV, SOL, "VersionServer/web", "--set", "spec.replicas=500"
        )
        assert refused.returncode == 1 and "does not match" in refused.stderr
        ok(run("instance", "edit", ENV, SOL, "VersionServer/web", "--set", "spec.replicas=3"))
        wait_for(lambda: ready_replicas(admin, 3, "1.0.0"), timeout=90, what="web scaled to 3")
        assert (base_server(admin) or {})["spec"]["replicas"] == 3

    # Upgrade: activate 2.0.0's CRDs (v1beta1), then the operator; refused before that.
    early = run("env", "upgrade", ENV, SOL, "2.0.0", "--timeout", "120")
    assert early.returncode == 1 and "v1beta1" in early.stderr and "activate" in early.stderr
    ok(run("activate", SOL, "--version", "2.0.0"))
    ok(run("env", "upgrade", ENV, SOL, "2.0.0", "--timeout", "120"))
    dep = admin.get(f"/apis/apps/v1/namespaces/{ENV}/deployments/{SOL}-operator")
    assert dep is not None and dep["metadata"]["labels"]["app.kubernetes.io/version"] == "2.0.0"
    with local_operator(admin, local_cluster, tmp_path, "2.0.0"):
        ok(run("instance", "edit", ENV, SOL, "VersionServer/web", "--set", "spec.version=2.0.0"))
        wait_for(lambda: ready_replicas(admin, 3, "2.0.0"), timeout=90, what="web on 2.0.0")
        image = (base_server(admin) or {})["spec"]["template"]["spec"]["containers"][0]["image"]
        assert f"/{SOL}-2.0.0/base-server" in image

    # Downgrade to 1.1.0 (its CRD versions are served by 2.0.0's CRD).
    ok(run("env", "upgrade", ENV, SOL, "1.1.0", "--timeout", "120"))
    shown = json.loads(ok(run("env", "show", ENV, "-o", "json")))
    info = shown["namespaces"][ENV]["solutions"][SOL]
    assert info["version"] == "1.1.0" and info["operator"].startswith("Available")
    assert [(r["from"], r["to"], r["result"]) for r in info["history"]] == [
        (None, "1.0.0", "succeeded"),
        ("1.0.0", "2.0.0", "succeeded"),
        ("2.0.0", "1.1.0", "succeeded"),
    ]

    # Remove the solution: the operator goes, the data stays and is listed.
    removed = run("env", "delete-solution", ENV, SOL, "--timeout", "60")
    ok(removed)
    assert f"VersionServer {ENV}/web" in removed.stdout and "--delete-data" in removed.stdout
    assert admin.get(f"/apis/apps/v1/namespaces/{ENV}/deployments/{SOL}-operator") is None
    assert admin.get(f"/apis/{GROUP}/v1beta1/namespaces/{ENV}/versionservers/web") is not None
    env_cm = admin.get(f"/api/v1/namespaces/{ENV}/configmaps/metalk8s-environment")
    assert env_cm is not None and not env_cm.get("data")

    # Delete the environment (and with it the instance), then deactivate and unimport.
    ok(run("env", "delete", ENV, "--timeout", "120"))
    assert admin.get(f"/api/v1/namespaces/{ENV}") is None
    ok(run("deactivate", SOL))
    assert admin.get(CRD) is None
    ok(run("unimport", *(f"{SOL}-{v}" for v in sorted(isos))))
    record = admin.get("/api/v1/namespaces/metalk8s-solutions/configmaps/metalk8s-solutions")
    assert record is not None and SOL not in (record.get("data") or {})
    assert yaml.safe_load(config.read_text())["archives"] == []
