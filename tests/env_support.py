"""Helpers for the environment tests: small archives of any name and version, and cluster checks.

Each test module builds its own solution (its own name and CRD group), so that CRDs, which are
cluster-wide, never couple tests that share the session's control plane.
"""

from __future__ import annotations

import contextlib
import copy
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from metalk8s_solutions.engine.build import BuildOptions, build

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = str(Path(sys.executable).parent / "solutions")
sys.path.insert(0, str(REPO / "tests"))

from conftest import SHARED_LAYER, make_source, write_oci_layout  # noqa: E402


def crd_document(group: str, served: Sequence[str], storage: str) -> dict[str, Any]:
    schema = {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 0, "maximum": 10},
                        "color": {"type": "string", "enum": ["red", "green"]},
                    },
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": "Gadget",
                "plural": "gadgets",
                "singular": "gadget",
                "listKind": "GadgetList",
            },
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": v == storage,
                    "schema": copy.deepcopy(schema),
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
                    ],
                }
                for v in served
            ],
        },
    }


def open_crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    """A reduced stand-in of an upstream CRD: same group, v1, names and scope, open schema."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "listKind": f"{kind}List",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def remove_stand_in_crds(api: Api, stand_ins: Iterable[tuple[str, str, str]]) -> None:
    """Delete the stand-in CRDs ``(group, kind, plural)`` a module installed, and wait until the
    API server no longer serves their groups (other modules share the cluster)."""
    stand_ins = list(stand_ins)
    for group, _, plural in stand_ins:
        api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}")
    wait_for(
        lambda: all(api.http.get(f"/apis/{g}/v1").status_code == 404 for g, _, _ in stand_ins),
        what="stand-in CRDs gone",
    )


def build_solution(
    out: Path,
    name: str,
    version: str,
    *,
    group: str,
    served: Sequence[str] = ("v1alpha1",),
    storage: str = "v1alpha1",
    roles: Sequence[dict[str, Any]] | None = None,
    files: Mapping[str, str] | None = None,
    metrics: Mapping[str, Any] | None = None,
    ui: Mapping[str, Any] | None = None,
) -> Path:
    """An archive of solution ``name`` ``version`` whose CRD serves ``served`` in ``group``.

    ``files`` adds files to the source tree (path -> text, e.g. ``monitoring/rules.yaml``);
    ``metrics`` becomes ``spec.operator.metrics`` of the manifest; ``ui`` becomes ``spec.ui``
    and its image (default ``<name>-ui:<version>``) is added to the archive.
    """
    src = make_source(out / f"src-{name}-{version}")
    manifest = yaml.safe_load((src / "manifest.yaml").read_text())
    manifest["metadata"]["name"] = name
    manifest["spec"]["version"] = version
    if metrics is not None:
        manifest["spec"]["operator"]["metrics"] = dict(metrics)
    if ui is not None:
        image = dict(ui.get("image") or {"name": f"{name}-ui", "tag": version})
        layers = [SHARED_LAYER, f"ui of {name} {version}".encode()]
        write_oci_layout(src / "images" / image["name"] / image["tag"], layers, image["tag"])
        manifest["spec"]["images"].append(f"{image['name']}:{image['tag']}")
        manifest["spec"]["ui"] = dict(ui)
    for path, text in (files or {}).items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text)
    (src / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    (src / "operator" / "deploy" / "crds" / "example.yaml").write_text(
        yaml.safe_dump(crd_document(group, served, storage))
    )
    if roles is None:
        roles = [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": f"{name}-operator"},
                "rules": [
                    {
                        "apiGroups": [group],
                        "resources": ["gadgets"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            }
        ]
    (src / "operator" / "deploy" / "role.yaml").write_text(yaml.safe_dump_all(list(roles)))
    iso = out / f"{name}-{version}.iso"
    build(BuildOptions(src, iso, epoch=1_700_000_000))
    shutil.rmtree(src)
    return iso


def write_config(
    path: Path, archives: Sequence[Path], endpoint: str = "registry.test:5000"
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
                "kind": "SolutionsConfiguration",
                "archives": [str(a) for a in archives],
                "active": {},
                "registry": {"endpoint": endpoint},
            }
        )
    )
    return path


class Api:
    """Plain admin HTTP calls for checks (the code under test uses its own client)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.http.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def items(self, path: str, selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else {}
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return list(response.json().get("items") or [])

    def apply(self, path: str, body: dict[str, Any], manager: str = "tests") -> dict[str, Any]:
        response = self.http.patch(
            path,
            params={"fieldManager": manager, "force": "true"},
            content=yaml.safe_dump(body).encode(),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def delete(self, path: str) -> None:
        response = self.http.delete(path)
        if response.status_code != 404:
            response.raise_for_status()

    def wait_allowed(
        self,
        user: str,
        verb: str,
        resource: str,
        *,
        group: str = "",
        namespace: str = "",
        groups: Sequence[str] = (),
    ) -> None:
        """Wait until RBAC lets ``user`` do ``verb`` on ``resource``: the authorizer reads
        bindings from a cache that a new binding reaches a moment after it is created."""
        attributes = {"verb": verb, "resource": resource, "group": group, "namespace": namespace}
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": list(groups), "resourceAttributes": attributes},
        }
        path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
        wait_for(
            lambda: self.post(path, review)["status"].get("allowed"),
            timeout=30,
            what=f"RBAC to let {user} {verb} {resource}",
        )

    def install_crd(self, doc: dict[str, Any]) -> None:
        """Apply a CRD and wait until its objects can be listed (storage initialised)."""
        name = doc["metadata"]["name"]
        self.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", doc)
        spec = doc["spec"]
        version = next(v["name"] for v in spec["versions"] if v["served"])
        probe = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
        wait_for(lambda: self.http.get(probe).status_code == 200, what=f"CRD {name} served")


def wait_for(check: Callable[[], Any], *, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def cli(
    config: Path, kubeconfig: Path, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``solutions`` command as a user would."""
    return subprocess.run(
        [SOLUTIONS, "--config", str(config), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


@contextlib.contextmanager
def serve_command(config: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``solutions registry serve`` in a child process, until it prints ``serving on URL``:
    ``(process, URL)``; killed on exit."""
    proc = subprocess.Popen(
        [SOLUTIONS, "--config", str(config), "registry", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("serving on "), (line, proc.poll())
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
