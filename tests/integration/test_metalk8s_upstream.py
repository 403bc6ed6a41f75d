"""MetalK8s compatibility, proved on archives built the way upstream builds them.

Each release layout of the upstream example Solution (``tests/metalk8s_upstream.py``: skopeo
``dir:`` v2s2 images, ``hardlink -c``, the registry-config include, mkisofs with the Makefile's
flags) goes through what a MetalK8s user does with no extra flag: validate, import, pull from the
registry with skopeo, activate, add to an environment, upgrade 1.0.3 → 1.1.2-dev, remove,
unimport.  The OperatorConfig the product hands the operator is loaded by a checker built with
gopkg.in/yaml.v2's strict decoding and the rules of MetalK8s's operator library
(``tests/operator_config_check``).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SolutionsCli
from env_support import Api
from go_tools import go_tool
from metalk8s_solutions.engine.registry import ServeOptions, registry_in_thread
from metalk8s_solutions.images.catalog import load_catalog
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from metalk8s_upstream import NAME, NEW_GROUP, OLD_GROUP, UpstreamArchive, build_upstream_archive

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

VERSIONS = ("1.0.1", "1.0.3", "1.1.2-dev", "1.1.2.1")
DEFAULTS_VERSION = "0.9.0"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> dict[str, UpstreamArchive]:
    out = tmp_path_factory.mktemp("upstream")
    built = {v: build_upstream_archive(out, v) for v in VERSIONS}
    built[DEFAULTS_VERSION] = build_upstream_archive(out, DEFAULTS_VERSION, "defaults")
    return built


@pytest.fixture(scope="module")
def config_check() -> Path:
    return go_tool("operator_config_check", ".", "operator-config-check", "yaml.v2-v2.4.0")


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        yield Api(http)


def findings(cli: SolutionsCli, iso: Path) -> list[dict[str, Any]]:
    result = cli("validate", str(iso), "-o", "json")
    report = json.loads(result.stdout)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert result.returncode == 0 and not errors, (result.stderr, errors)
    return list(report["findings"])


@pytest.mark.parametrize("version", [*VERSIONS, DEFAULTS_VERSION])
def test_every_upstream_layout_validates_without_errors(
    cli: SolutionsCli, upstream: dict[str, UpstreamArchive], version: str
) -> None:
    archive = upstream[version]
    warned = {f["rule"] for f in findings(cli, archive.path)}
    if archive.layout == "1.0.1":
        assert "SOL040" in warned or any(r.startswith("SOL04") for r in warned)
    if archive.layout == "defaults":
        assert warned, "derived defaults and the missing role.yaml are said"


def skopeo_inspect(address: str, ref: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15  # the registry notices a new config within ~1 s
    while True:
        result = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", f"docker://{address}/{ref}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode == 0:
            data: dict[str, Any] = json.loads(result.stdout)
            return data
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.3)


def operator_config(admin: Api, namespace: str, check: Path, tmp_path: Path) -> dict[str, Any]:
    """The OperatorConfig of the namespace, as the upstream loader rules read it."""
    cm = admin.get(f"/api/v1/namespaces/{namespace}/configmaps/{NAME}-operator-config")
    assert cm is not None, "no OperatorConfig ConfigMap"
    path = tmp_path / f"operator-{namespace}.yaml"
    path.write_text(cm["data"]["operator.yaml"])
    loaded = subprocess.run([str(check), str(path)], capture_output=True, text=True, check=False)
    assert loaded.returncode == 0, loaded.stderr
    data: dict[str, Any] = json.loads(loaded.stdout)
    return data


def names(admin: Api, path: str) -> set[str]:
    listed = admin.get(path)
    assert listed is not None
    return {item["metadata"]["name"] for item in listed["items"]}


def test_upstream_releases_import_deploy_upgrade_and_leave_nothing(
    cli: SolutionsCli,
    upstream: dict[str, UpstreamArchive],
    admin: Api,
    config_check: Path,
    tmp_path: Path,
) -> None:
    old, new = upstream["1.0.3"], upstream["1.1.2-dev"]
    env, ns = "upstream-e2e", "upstream-e2e"
    cluster_roles_before = names(admin, "/apis/rbac.authorization.k8s.io/v1/clusterroles")
    bindings_before = names(admin, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")
    cli.config.parent.mkdir(parents=True, exist_ok=True)
    with registry_in_thread(
        ServeOptions(config=cli.config, listen="127.0.0.1:0", interval=0.2)
    ) as reg:
        cli.ok("import", str(old.path), str(new.path))
        for archive in (old, new):
            catalog = load_catalog(archive.path)
            for image, tag, digest in catalog.image_refs():
                served = skopeo_inspect(reg.address, f"{catalog.solution_id}/{image}:{tag}")
                assert served["Digest"] == digest

        cli.ok("activate", NAME, old.version)
        crd = admin.get(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/versionservers.{OLD_GROUP}"
        )
        assert crd is not None and crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

        cli.ok("env", "create", env)
        cli.ok("env", "add-solution", env, NAME, old.version, "--timeout", "120")
        config = operator_config(admin, ns, config_check, tmp_path)
        assert set(config["repositories"]) == {old.version, new.version}
        for repos in config["repositories"].values():
            for repo in repos:
                assert repo["endpoint"]
                assert all(not image.startswith(":") for image in repo["images"]), repo
        role_bindings = names(
            admin, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"
        )
        assert role_bindings, "the operator's Role is bound in the namespace"

        cli.ok("activate", NAME, new.version)
        cli.ok("env", "upgrade", env, NAME, new.version, "--timeout", "120")
        shown = cli.ok("env", "show", env, "-o", "json")
        assert new.version in shown
        bound = admin.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings")
        assert bound is not None
        refs = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bound["items"]}
        assert any(kind == "ClusterRole" for kind, _ in refs), refs
        crd = admin.get(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/versionservers.{NEW_GROUP}"
        )
        assert crd is not None

        cli.ok("env", "delete-solution", env, NAME, "--delete-data")
        cli.ok("env", "delete", env, "--timeout", "120")
        cli.ok("deactivate", NAME)
        cli.ok("unimport", str(old.path), str(new.path))
        assert NAME not in cli.ok("list")

    assert (
        admin.get(f"/api/v1/namespaces/{ns}") is None
        or admin.get(f"/api/v1/namespaces/{ns}")["status"].get("phase") == "Terminating"
    )
    leftover_roles = names(admin, "/apis/rbac.authorization.k8s.io/v1/clusterroles")
    leftover_bindings = names(admin, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")
    assert leftover_roles - cluster_roles_before == set()
    assert leftover_bindings - bindings_before == set()


@pytest.mark.parametrize(
    ("version", "layout"),
    [("1.0.1", "1.0.1"), ("1.1.2.1", "1.1.2-dev"), (DEFAULTS_VERSION, "defaults")],
)
def test_each_layout_deploys_with_no_flag(
    cli: SolutionsCli,
    upstream: dict[str, UpstreamArchive],
    admin: Api,
    config_check: Path,
    tmp_path: Path,
    version: str,
    layout: str,
) -> None:
    archive = upstream[version]
    assert archive.layout == layout
    env = f"up-{layout.replace('.', '-')}"
    cli.ok("import", str(archive.path))
    cli.ok("activate", NAME, version)
    cli.ok("env", "create", env)
    cli.ok("env", "add-solution", env, NAME, version, "--timeout", "120")
    config = operator_config(admin, env, config_check, tmp_path)
    assert list(config["repositories"]) == [version]
    images = [i.split("@")[0] for i in config["repositories"][version][0]["images"]]
    assert f"{NAME}-operator:{version}" in images and f"base-server:{version}" in images
    cli.ok("env", "delete", env, "--timeout", "120")
    cli.ok("deactivate", NAME)
    cli.ok("unimport", str(archive.path))


def test_non_semver_versions_order_as_metalk8s_did(
    cli: SolutionsCli, upstream: dict[str, UpstreamArchive]
) -> None:
    dev, patch = upstream["1.1.2-dev"], upstream["1.1.2.1"]
    cli.ok("import", str(dev.path), str(patch.path))
    listed = json.loads(cli.ok("list", "-o", "json"))["solutions"][NAME]
    assert [e["version"] for e in listed] == ["1.1.2-dev", "1.1.2.1"]
    cli.ok("activate", NAME)  # the latest: 1.1.2.1
    listed = json.loads(cli.ok("list", "-o", "json"))["solutions"][NAME]
    assert [e["version"] for e in listed if e["active"]] == ["1.1.2.1"]
    cli.ok("deactivate", NAME)
    cli.ok("unimport", str(dev.path), str(patch.path))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("repositories: {'1.0': [{endpoint: r/x, images: [a:1]}]}\nextra: 1\n", "extra"),
        ("repositories: {'1.0': [{endpoint: r/x, image: [a:1]}]}\n", "image"),
        ("repositories: {'1.0': [{endpoint: r/x, images: ['']}]}\n", "cannot be empty"),
        ("repositories: {'1.0': []}\n", "cannot be empty"),
        ("repositories: {'1.0': [{images: [a:1]}]}\n", "endpoint"),
        ("repositories: {}\n", "repositories"),
        ("repositories: {'1.0': [{endpoint: a, endpoint: b}]}\n", "already set"),
    ],
)
def test_the_checker_refuses_what_the_operator_library_refuses(
    config_check: Path, tmp_path: Path, text: str, reason: str
) -> None:
    """The check above can fail: each of the library's refusals is seen."""
    path = tmp_path / "operator.yaml"
    header = "apiVersion: solutions.metalk8s.scality.com/v1alpha1\nkind: OperatorConfig\n"
    path.write_text(header + text)
    loaded = subprocess.run(
        [str(config_check), str(path)], capture_output=True, text=True, check=False
    )
    assert loaded.returncode == 1 and reason in loaded.stderr, loaded.stderr
