"""A MetalK8s 2.4-format archive (``product.txt``, ``config.yaml``, no ``manifest.yaml``), built
the way its Makefile built it (skopeo ``dir:`` v2s2 images, ``hardlink``-free, mkisofs flags),
validates, imports, activates and deploys with the Role MetalK8s 2.4 generated."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import SHARED_LAYER, SolutionsCli, write_oci_layout
from env_support import Api, crd_document
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

MKISOFS_FLAGS = (
    "-quiet",
    "-rock",
    "-joliet",
    "-joliet-long",
    "-full-iso9660-filenames",
    "-iso-level",
    "3",
    "-gid",
    "0",
    "-uid",
    "0",
    "-input-charset",
    "iso8859-1",
    "-output-charset",
    "iso8859-1",
)


def build_24_archive(out: Path, display: str, version: str, group: str) -> Path:
    """``make iso`` of MetalK8s 2.4's example Solution, with tiny images."""
    name = display.replace(" ", "-").lower()
    root = out / "root"
    for image in ("base-server", f"{name}-operator", f"{name}-ui"):
        oci = out / "oci" / image
        write_oci_layout(oci, [SHARED_LAYER, f"{image} {version}".encode()], version)
        (root / "images" / image / version).mkdir(parents=True)  # the Makefile's mkdir -p
        subprocess.run(
            [
                "skopeo",
                "--override-os",
                "linux",
                "--insecure-policy",
                "copy",
                "--format",
                "v2s2",
                "--dest-compress",
                f"oci:{oci}:{version}",
                f"dir:{root}/images/{image}/{version}",
            ],
            check=True,
            capture_output=True,
        )
    (root / "registry-config.inc.j2").write_text("# static-container-registry output\n")
    crds = root / "operator" / "deploy" / "crds"
    crds.mkdir(parents=True)
    (crds / f"{group.split('.', maxsplit=1)[0]}_v1alpha1_gadget_crd.yaml").write_text(
        yaml.safe_dump(crd_document(group, ("v1alpha1",), "v1alpha1"))
    )
    (root / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
                "kind": "SolutionConfig",
                "customApiGroups": [group],
            }
        )
    )
    (root / "product.txt").write_text(
        f"NAME={display}\nVERSION={version}\nSHORT_VERSION=1-0\nGIT=v{version}-0-gabcdef0\n"
        "DEVELOPMENT_RELEASE=0\nBUILD_TIMESTAMP=2020-03-02T10:00:00Z\nBUILD_HOST=builder\n"
    )
    iso = out / f"{name}-{version}.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-output", str(iso), *MKISOFS_FLAGS, "-volid",
         f"{display} {version}", str(root)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    shutil.rmtree(out / "oci")
    return iso


@pytest.fixture
def api(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        yield Api(http)


def test_a_2_4_archive_imports_activates_and_deploys_with_the_generated_role(
    cli: SolutionsCli, api: Api, tmp_path: Path
) -> None:
    suffix = secrets.token_hex(3)
    display, env = f"Old Timer {suffix}", f"old-{suffix}"
    name, group = f"old-timer-{suffix}", f"oldtimer{suffix}.test.solutions"
    iso = build_24_archive(tmp_path, display, "1.0.0", group)

    checked = cli("validate", str(iso))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SOL102" in checked.stdout + checked.stderr
    try:
        cli.ok("import", str(iso))
        assert f"{name}-1.0.0" in cli.ok("list")
        cli.ok("activate", name, "--version", "1.0.0")
        assert api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}")
        cli.ok("env", "create", env)
        # The generated Role ('*' on the workloads, every secret) is bound in the namespace as
        # MetalK8s 2.4 bound it: no approval flag (warnings only).
        cli.ok("env", "add-solution", env, name, "1.0.0", "--no-wait")

        deployment = api.get(f"/apis/apps/v1/namespaces/{env}/deployments/{name}-operator")
        assert deployment is not None
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert f"/{name}-1.0.0/{name}-operator" in container["image"]
        role = api.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{env}/roles/{name}-operator")
        assert role is not None
        rules = role["rules"]
        assert {"apiGroups": [group], "resources": ["*"], "verbs": ["*"]} in rules
        assert any(r.get("resourceNames") == [f"{name}-operator"] for r in rules)
        binding = api.get(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{env}/rolebindings/{name}-operator"
        )
        assert binding is not None and binding["roleRef"]["name"] == f"{name}-operator"
        config = api.get(f"/api/v1/namespaces/{env}/configmaps/{name}-operator-config")
        assert config is not None
        repositories = yaml.safe_load(config["data"]["operator.yaml"])["repositories"]
        listed = repositories["1.0.0"][0]["images"]
        assert all("@sha256:" in i for i in listed), listed  # pinned (engine/admission.py)
        assert sorted(i.split("@")[0] for i in listed) == [
            "base-server:1.0.0",
            f"{name}-operator:1.0.0",
            f"{name}-ui:1.0.0",
        ]
    finally:
        cli("env", "delete", env, "--timeout", "60")
        cli("deactivate", name, "--force")
        cli("unimport", f"{name}-1.0.0")
