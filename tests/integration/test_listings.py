"""``solutions list`` and ``solutions env list`` on the lean client, against the local cluster.

Their output (table, ``-o json``, ``-o yaml``) is the one the engine's async listings give,
rendered by the same CLI functions; they send the fewest requests and load neither lightkube,
httpx2 nor asyncio; and what the lean client does not serve still works through the full path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from env_support import Api, build_solution, cli, write_config
from metalk8s_solutions.cli.env import _env_rows
from metalk8s_solutions.cli.output import FORMATS, emit
from metalk8s_solutions.cli.solutions import _human_list
from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.cluster.lean import LeanKube
from metalk8s_solutions.cluster.state import ENV_LABEL
from metalk8s_solutions.engine import environments, listings, solutions
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

ENVS = {"lst-a": ("lst-a1", "lst-a2"), "lst-b": ("lst-b1",)}


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    """Two environments (three namespaces), one namespace running a solution; deleted after."""
    with local_cluster.admin_http() as http:
        api = Api(http)
        for env, namespaces in ENVS.items():
            for ns in namespaces:
                api.apply(
                    f"/api/v1/namespaces/{ns}",
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {
                            "name": ns,
                            "labels": {ENV_LABEL: env},
                            "annotations": {
                                "solutions.metalk8s.scality.com/environment-description": (
                                    f"the {env} one"
                                )
                            },
                        },
                    },
                )
        api.apply(
            "/api/v1/namespaces/lst-a2/configmaps/metalk8s-environment",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "metalk8s-environment", "namespace": "lst-a2"},
                "data": {"lst-sol": "1.0.0", "other": "2.1.0"},
            },
        )
        yield api
        for namespaces in ENVS.values():
            for ns in namespaces:
                api.delete(f"/api/v1/namespaces/{ns}")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration listing a real archive and a missing one, the real one active."""
    out = tmp_path_factory.mktemp("listings")
    archive = build_solution(out, "lst-sol", "1.0.0", group="lst.test.solutions")
    path = write_config(out / "solutions.yaml", [archive, out / "gone-1.0.0.iso"])
    data = yaml.safe_load(path.read_text())
    data["active"] = {"lst-sol": "latest"}
    path.write_text(yaml.safe_dump(data))
    return path


def _rendered(data: Any, fmt: str, human: Callable[[Any], str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        emit(data, fmt, human)
    return out.getvalue()


def _same_as_full_path(
    full: Callable[[], Any], human: Callable[[Any], str], run: Callable[[str], str]
) -> None:
    """Each format's output of ``run`` is the full path's, rendered alike.  The full path is
    read before and after: if the cluster changed meanwhile (another test's namespaces going
    away), the comparison is made again."""
    for fmt in FORMATS:
        for _ in range(3):
            before = full()
            got = run(fmt)
            if full() == before:
                break
        assert got == _rendered(before, fmt, human), fmt


def test_env_list_prints_what_the_full_path_prints(
    admin: Api, config: Path, local_cluster: LocalCluster
) -> None:
    ctx = Context(config, ClusterTarget(kubeconfig=local_cluster.kubeconfig))

    def run(fmt: str) -> str:
        result = cli(config, local_cluster.kubeconfig, "env", "list", "-o", fmt)
        assert result.returncode == 0, result.stderr
        return result.stdout

    _same_as_full_path(lambda: asyncio.run(environments.list_environments(ctx)), _env_rows, run)
    listed = json.loads(run("json"))
    mine = {e["name"]: e for e in listed if e["name"] in ENVS}
    assert mine["lst-a"]["namespaces"]["lst-a2"]["config"] == {"lst-sol": "1.0.0", "other": "2.1.0"}
    assert mine["lst-a"]["description"] == "the lst-a one"
    assert set(mine["lst-b"]["namespaces"]) == {"lst-b1"}


def test_list_prints_what_the_full_path_prints(
    admin: Api, config: Path, local_cluster: LocalCluster
) -> None:
    ctx = Context(config, ClusterTarget(kubeconfig=local_cluster.kubeconfig))

    def run(fmt: str) -> str:
        result = cli(config, local_cluster.kubeconfig, "list", "-o", fmt)
        assert result.returncode == 0, result.stderr
        return result.stdout

    _same_as_full_path(lambda: asyncio.run(solutions.list_solutions(ctx)), _human_list, run)
    data = json.loads(run("json"))
    assert data["clusterError"] is None
    (entry,) = data["solutions"]["lst-sol"]
    assert entry["active"] is True
    assert entry["recorded"] is False
    assert "does not exist" in data["solutions"]["(unknown)"][0]["problem"]


def test_listings_send_the_fewest_requests(admin: Api, local_cluster: LocalCluster) -> None:
    """env list: one Namespace LIST and one ConfigMap LIST, however many namespaces; list: one
    GET of the cluster record.  No /version, no discovery."""
    with LeanKube.open(local_cluster.kubeconfig, None) as api:
        envs = listings.read_environments(api)
        assert {e["name"] for e in envs} >= set(ENVS)
        assert api.requests == 2
    with LeanKube.open(local_cluster.kubeconfig, None) as api:
        api.get("/api/v1/namespaces/metalk8s-solutions/configmaps/metalk8s-solutions")
        assert api.requests == 1


LOADED = """
import contextlib, io, json, sys
from metalk8s_solutions.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("args", [["env", "list"], ["list"]])
def test_a_listing_loads_no_async_client(
    args: list[str], admin: Api, config: Path, local_cluster: LocalCluster
) -> None:
    """No lightkube, httpx2 or asyncio: they cost more than kubectl's whole answer."""
    argv = ["--config", str(config), "--kubeconfig", str(local_cluster.kubeconfig), *args]
    child = subprocess.run(
        [sys.executable, "-c", LOADED, json.dumps(argv)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(child.stdout)
    assert report["code"] == 0, child.stderr
    assert "lst-" in report["out"]
    loaded = {m.split(".")[0] for m in report["modules"]}
    assert loaded & {"lightkube", "httpx2", "httpcore2", "asyncio", "msgspec"} == set()
    # neither PyYAML for a kubeconfig in kubectl's style nor http.client's email package
    assert {"email", "http"} & loaded == set()
    if args == ["env", "list"]:
        assert "yaml" not in loaded


def _variant(kubeconfig: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load(kubeconfig.read_text())
    change(data)
    path = tmp_path / "variant.kubeconfig"
    path.write_text(yaml.safe_dump(data))
    return path


def _files_instead_of_data(data: dict[str, Any], tmp_path: Path) -> None:
    """CA, certificate and key in files named relative to the kubeconfig."""
    cluster = data["clusters"][0]["cluster"]
    user = data["users"][0]["user"]
    for section, key in ((cluster, "certificate-authority"), (user, "client-certificate")):
        (tmp_path / f"{key}.pem").write_bytes(base64.b64decode(section.pop(f"{key}-data")))
        section[key] = f"{key}.pem"
    (tmp_path / "key.pem").write_bytes(base64.b64decode(user.pop("client-key-data")))
    user["client-key"] = "key.pem"


def _insecure(data: dict[str, Any]) -> None:
    """No CA, insecure-skip-tls-verify: the lean client does not serve it, the full path does."""
    cluster = data["clusters"][0]["cluster"]
    cluster.pop("certificate-authority-data")
    cluster["insecure-skip-tls-verify"] = True


@pytest.mark.parametrize("variant", ["files", "insecure", "flow"])
def test_other_kubeconfigs_list_the_same(
    variant: str, admin: Api, config: Path, local_cluster: LocalCluster, tmp_path: Path
) -> None:
    def change(data: dict[str, Any]) -> None:
        if variant == "files":
            _files_instead_of_data(data, tmp_path)
        elif variant == "insecure":
            _insecure(data)

    other = _variant(local_cluster.kubeconfig, tmp_path, change)
    if variant == "flow":  # beyond the lean reader's style: PyYAML reads it, still lean
        other.write_text(yaml.safe_dump(yaml.safe_load(other.read_text()), default_flow_style=True))
    lean = listings.list_environments(other, None)
    assert (lean is None) == (variant == "insecure")
    for args in (["env", "list", "-o", "json"], ["list", "-o", "json"]):
        expected = cli(config, local_cluster.kubeconfig, *args)
        got = cli(config, other, *args)
        assert got.returncode == 0, got.stderr
        assert got.stdout == expected.stdout


def test_a_user_who_may_not_list_configmaps_everywhere(
    admin: Api, mint_kubeconfig: Callable[..., Path]
) -> None:
    """May list Namespaces and get ConfigMaps, not list them: the lean client reads them one
    namespace at a time (the cluster-wide LIST is refused) and lists the same."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    user = "lst-viewer"
    admin.apply(
        f"{rbac}/clusterroles/{user}",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": user},
            "rules": [
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
            ],
        },
    )
    subject = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    admin.apply(
        f"{rbac}/clusterrolebindings/{user}",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": user},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": user,
            },
            "subjects": subject,
        },
    )
    try:
        with LeanKube.open(mint_kubeconfig(user), None) as api:
            envs = listings.read_environments(api)
            # every namespace of every environment, one GET each, after the refused LIST
            namespaces = sum(len(e["namespaces"]) for e in envs)
            assert api.requests == 2 + namespaces
        with LeanKube.open(mint_kubeconfig("admin-like", ("system:masters",)), None) as api:
            assert listings.read_environments(api) == envs
    finally:
        admin.delete(f"{rbac}/clusterrolebindings/{user}")
        admin.delete(f"{rbac}/clusterroles/{user}")
