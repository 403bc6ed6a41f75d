"""MetalK8s-format archives MetalK8s accepts (issue 17 item 1) import, activate and deploy on the
local cluster with no extra flag: a manifest with only a name and a version (the rest derived as
MetalK8s's ``_default_solution_manifest`` does), and a 1.0.x layout without ``role.yaml``."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.generic_resource import create_global_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from conftest import CRD, SolutionsCli, metalk8s_archive
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

SOL = "example-solution"
GROUP = "accept.example.com"
CRD_NAME = f"examples.{GROUP}"
OUR_CRD = CRD.replace("example.com", GROUP).encode()
BARE_MANIFEST = b"""\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: Solution
metadata: {name: example-solution}
spec: {version: 1.0.0}
"""
ROLELESS_MANIFEST = b"""\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: Solution
metadata:
  name: example-solution
  annotations: {solutions.metalk8s.scality.com/display-name: Example Solution}
spec:
  version: 1.0.1
  images: [example-solution-operator:1.0.0, ':1.0.1', base-server:1.0.0]
  operator:
    image: {name: example-solution-operator, tag: 1.0.0}
"""
CustomResourceDefinition = create_global_resource(
    "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions"
)


@pytest.fixture
def admin(local_cluster: LocalCluster) -> Client:
    return Client(config=KubeConfig.from_file(local_cluster.kubeconfig), field_manager="tests")


@pytest.fixture
def archives(tmp_path: Path) -> dict[str, Path]:
    bare = metalk8s_archive(
        tmp_path,
        files={
            "manifest.yaml": BARE_MANIFEST,
            "operator/deploy/crds/example.yaml": None,
            "operator/deploy/crds/example_crd.yaml": OUR_CRD,
        },
        name="bare-1.0.0.iso",
    )
    roleless = metalk8s_archive(
        tmp_path,
        files={
            "manifest.yaml": ROLELESS_MANIFEST,
            "operator/deploy/role.yaml": None,
            "operator/deploy/crds/example.yaml": None,
            "operator/deploy/crds/example_crd.yaml": OUR_CRD,
            "operator/deploy/crds/example_cr.yaml": b"apiVersion: x/v1\nkind: Example\n",
            "operator/deploy/operator.yaml": b"kind: Deployment\n",
            "operator/deploy/role_binding.yaml": b"kind: RoleBinding\n",
            "operator/deploy/service_account.yaml": b"kind: ServiceAccount\n",
        },
        name="roleless-1.0.1.iso",
    )
    return {"1.0.0": bare, "1.0.1": roleless}


@pytest.fixture
def env_name(admin: Client, cli: SolutionsCli) -> Iterator[str]:
    with contextlib.suppress(ApiError):  # each test starts from an empty cluster record
        admin.delete(ConfigMap, "metalk8s-solutions", namespace="metalk8s-solutions")
    name = f"acc-{secrets.token_hex(3)}"
    yield name
    cli("env", "delete", name, "--timeout", "60")
    cli("deactivate", SOL)
    with contextlib.suppress(ApiError):
        admin.delete(CustomResourceDefinition, CRD_NAME)


def operator_config(admin: Client, ns: str) -> dict[str, Any]:
    cm = admin.get(ConfigMap, f"{SOL}-operator-config", namespace=ns)
    assert cm.data is not None
    loaded: dict[str, Any] = yaml.safe_load(cm.data["operator.yaml"])
    return loaded


def test_bare_and_roleless_archives_import_activate_and_deploy(
    cli: SolutionsCli, archives: dict[str, Path], admin: Client, env_name: str
) -> None:
    for version, iso in archives.items():
        checked = json.loads(cli.ok("validate", str(iso), "-o", "json"))
        assert checked["valid"] and checked["errors"] == 0, checked["findings"]
        rules = {f["rule"] for f in checked["findings"]}
        assert ({"SOL005"} if version == "1.0.0" else {"SOL024", "SOL036", "SOL056"}) <= rules
    cli.ok("import", *map(str, archives.values()))
    listed = cli.ok("list")
    assert f"{SOL}-1.0.0" in listed and f"{SOL}-1.0.1" in listed
    cli.ok("activate", SOL, "1.0.0")
    crd = admin.get(CustomResourceDefinition, CRD_NAME)
    assert crd.metadata is not None and crd.metadata.name == CRD_NAME

    one, two = f"{env_name}-1", f"{env_name}-2"
    cli.ok("env", "create", env_name, "-N", one, "-N", two)
    for version, ns in (("1.0.0", one), ("1.0.1", two)):
        added = cli("env", "add-solution", env_name, SOL, version, "-N", ns, "--timeout", "60")
        assert added.returncode == 0, added.stderr
        deployment = admin.get(Deployment, f"{SOL}-operator", namespace=ns)
        assert deployment.spec is not None and deployment.spec.template.spec is not None
        image = deployment.spec.template.spec.containers[0].image
        # The derived operator image (1.0.0) and the declared one (1.0.1), under the id.
        assert f"/{SOL}-{version}/example-solution-operator@sha256:" in image, image
        repositories = operator_config(admin, ns)["repositories"]
        images = [i for entries in repositories.values() for e in entries for i in e["images"]]
        assert "" not in images and not any(i.startswith(":") for i in images), repositories
        listed = repositories[version][0]["images"]
        assert all("@sha256:" in i for i in listed), listed  # pinned (engine/admission.py)
        assert sorted(i.split("@")[0] for i in listed) == [
            "base-server:1.0.0",
            "example-solution-operator:1.0.0",
        ]
    bindings = {
        ns: [b.metadata.name for b in admin.list(RoleBinding, namespace=ns) if b.metadata]
        for ns in (one, two)
    }
    assert any(SOL in name for name in bindings[one]), bindings  # role.yaml granted
    # No role.yaml: nothing granted to the operator of 1.0.1 beyond its namespace's defaults.
    assert bindings[two] == [], bindings
    shown = cli.ok("env", "show", env_name)
    assert f"{SOL} 1.0.0" in shown and f"{SOL} 1.0.1" in shown
    for ns in (one, two):
        cli.ok("env", "delete-solution", env_name, SOL, "-N", ns, "--timeout", "60")
        assert not [d for d in admin.list(Deployment, namespace=ns)], ns
    cli.ok("deactivate", SOL)
    cli.ok("unimport", *map(str, archives.values()))
    assert admin.get(Namespace, one).metadata is not None
