"""A MetalK8s environment whose operator serves https metrics with cert-manager installed.

MetalK8s 129 (PR #4813) then makes a self-signed Issuer ``S-operator-metrics-issuer`` and a
Certificate ``S-operator-metrics-cert``, whose Secret cert-manager writes (annotated with the
Certificate's name, no owner).  Adopting the environment takes them over when the new version
serves https metrics too (the Secret stays: cert-manager keeps writing it for our Certificate,
no reissue), and removing the solution leaves none of the three behind.

cert-manager itself is not installed: its CRDs are reduced stand-ins (same group, names and
scope, open schema) and the Secret is created as its controller would write it.  This module
installs them and removes them at its end (other modules share the cluster).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import salt_environment as salt
from env_support import (
    Api,
    build_solution,
    cli,
    crd_document,
    open_crd,
    remove_stand_in_crds,
    write_config,
)
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "cmsol"
GROUP = "cmsol.test.solutions"
IMAGES = {v: [f"base-server:{v}", f"{SOL}-operator:{v}"] for v in ("1.0.0", "1.1.0")}
STAND_INS = (
    ("cert-manager.io", "Issuer", "issuers"),
    ("cert-manager.io", "Certificate", "certificates"),
)
CM = "/apis/cert-manager.io/v1/namespaces/{ns}"
CERT = f"{SOL}-operator-metrics-cert"
ISSUER = f"{SOL}-operator-metrics-issuer"


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("cert-manager-archives")
    return [
        build_solution(out, SOL, version, group=GROUP, metrics={"enabled": True})
        for version in ("1.0.0", "1.1.0")
    ]


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        api.install_crd(crd_document(GROUP, ("v1alpha1",), "v1alpha1"))
        for group, kind, plural in STAND_INS:
            api.install_crd(open_crd(group, kind, plural))
        yield api
        remove_stand_in_crds(api, STAND_INS)


@pytest.fixture
def env(admin: Api) -> Iterator[str]:
    name = f"cm-{secrets.token_hex(3)}"
    yield name
    for ns in admin.items("/api/v1/namespaces", f"{salt.ENV_LABEL}={name}"):
        admin.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")
    for kind in ("clusterroles", "clusterrolebindings"):
        admin.delete(f"/apis/rbac.authorization.k8s.io/v1/{kind}/{SOL}-operator-metrics-auth")


def get(admin: Api, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    if kind == "secrets":
        return admin.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
    return admin.get(f"{CM.format(ns=ns)}/{kind}/{name}")


def test_metalk8s_cert_manager_objects_are_taken_over_and_removed(
    tmp_path: Path, archives: list[Path], admin: Api, local_cluster: LocalCluster, env: str
) -> None:
    config = write_config(tmp_path / "solutions.yaml", archives)

    def run(*args: str) -> str:
        done = cli(config, local_cluster.kubeconfig, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    ns = f"{env}-ns"
    salt.create_env(admin.http, env, ns, "made by MetalK8s")
    salt.add_solution(
        admin.http,
        ns,
        SOL,
        "1.0.0",
        roles=[],
        images=IMAGES,
        operator_image=f"{SOL}-operator:1.0.0",
        metrics_port=8443,
        cert_manager=True,
    )
    issued = get(admin, ns, "secrets", CERT)
    assert issued is not None

    plan = run("env", "upgrade", env, SOL, "1.1.0", "--dry-run")
    assert f"would replace Issuer {ns}/{ISSUER}" in plan, plan
    assert f"would replace Certificate {ns}/{CERT}" in plan, plan
    assert f"Secret {ns}/{CERT}" not in plan, plan  # cert-manager keeps writing it for ours

    run("env", "upgrade", env, SOL, "1.1.0", "--no-wait")
    for kind, name in (("issuers", ISSUER), ("certificates", CERT)):
        taken = get(admin, ns, kind, name)
        assert taken is not None, kind
        assert taken["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "metalk8s-solutions"
    kept = get(admin, ns, "secrets", CERT)
    assert kept is not None and kept["metadata"]["uid"] == issued["metadata"]["uid"]

    # Removing the solution removes the Certificate and the Secret issued for it.
    removal = run("env", "delete-solution", env, SOL, "--dry-run")
    assert f"would delete Secret {ns}/{CERT}: issued for Certificate {CERT}" in removal, removal
    run("env", "delete-solution", env, SOL, "--timeout", "60")
    for kind, name in (("issuers", ISSUER), ("certificates", CERT), ("secrets", CERT)):
        assert get(admin, ns, kind, name) is None, kind
