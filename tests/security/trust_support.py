"""Helpers of the trust tests (``tests/security/test_trust_*.py``): archives, configs, a UI."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from conftest import SHARED_LAYER, make_source, write_oci_layout
from metalk8s_solutions.archive.signing import generate_key
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from web.support import serve_ui

TOKEN_NAMESPACE = "solutions-trust-tests"


def build_archive(
    root: Path,
    *,
    key: Path | None,
    version: str = "1.0.0",
    name: str | None = None,
    layer: bytes | None = None,
    crd: str | None = None,
) -> Path:
    """An archive of the test Solution at ``version``, signed by ``key`` (None: unsigned);
    ``layer``: another content for the base-server image; ``crd``: another CRD file."""
    src = make_source(root / f"src-{version}-{key.stem if key else 'unsigned'}-{len(layer or b'')}")
    manifest = src / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", f"version: {version}"))
    if layer is not None:
        image = src / "images" / "base-server" / "1.0.0"
        shutil.rmtree(image)
        write_oci_layout(image, [SHARED_LAYER, layer], "1.0.0")
    if crd is not None:
        (src / "operator" / "deploy" / "crds" / "example.yaml").write_text(crd)
    iso = root / (name or f"example-solution-{version}.iso")
    build(BuildOptions(src, iso, key=key, epoch=1_700_000_000))
    return iso


def keypair(root: Path, name: str) -> tuple[Path, Path]:
    """(private, public) key files ``root/name.key`` and ``root/name.pub``."""
    private, public = generate_key()
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.key").write_bytes(private)
    (root / f"{name}.pub").write_bytes(public)
    return root / f"{name}.key", root / f"{name}.pub"


def write_trust_config(path: Path, keys: list[Path], policy: str | None) -> Path:
    """A SolutionsConfiguration with only a ``trust`` section."""
    trust: dict[str, object] = {"keys": [str(k) for k in keys]}
    if policy is not None:
        trust["policy"] = policy
    doc = {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "SolutionsConfiguration",
        "archives": [],
        "active": {},
        "trust": trust,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def admin_token(cluster: LocalCluster, name: str) -> str:
    """A bearer token of a cluster-admin ServiceAccount ``name`` (created if missing)."""
    with cluster.admin_http() as http:
        http.post("/api/v1/namespaces", json={"metadata": {"name": TOKEN_NAMESPACE}})
        http.post(
            f"/api/v1/namespaces/{TOKEN_NAMESPACE}/serviceaccounts",
            json={"metadata": {"name": name}},
        )
        http.post(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            json={
                "metadata": {"name": f"trust-test-{name}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": name, "namespace": TOKEN_NAMESPACE}
                ],
            },
        )
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
        deadline = time.monotonic() + 30
        while True:
            resp = http.post(
                f"/api/v1/namespaces/{TOKEN_NAMESPACE}/serviceaccounts/{name}/token", json=body
            )
            if resp.status_code < 400 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        resp.raise_for_status()
        token = str(resp.json()["status"]["token"])
        user = f"system:serviceaccount:{TOKEN_NAMESPACE}:{name}"
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": ["system:serviceaccounts"],
                "resourceAttributes": {"verb": "update", "resource": "configmaps"},
            },
        }
        while time.monotonic() < deadline:
            answer = http.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=review)
            if answer.json().get("status", {}).get("allowed"):
                break
            time.sleep(0.2)
    return token


@contextmanager
def running_ui(cluster: LocalCluster, config: Path, base: Path) -> Iterator[str]:
    """``solutions ui`` on loopback in a thread, on ``config``; yields its URL."""
    with serve_ui(cluster.kubeconfig, base, config) as served:
        yield served.ui.url


def ui_client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=240)
