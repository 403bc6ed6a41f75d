"""Adversarial: an archive must not take over, or later delete, a CRD that it does not own.

A live CRD installed by another tool (or another solution) shares its name with a CRD of the
archive: activation refuses and names the owner; ``--take-over-crd`` takes it over and says so;
``deactivate --force`` never deletes a CRD that Solutions did not apply.  Against the real API
server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import SolutionsCli, make_source
from crd_versions import CRD_NAME, GROUP, build_version, crd
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from web.conftest import admin_token, ui_server  # noqa: F401 - fixtures of the web UI tests
from web.support import RunningUi

pytestmark = pytest.mark.cluster

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("takeover")
    return build_version(make_source(out / "src"), out, "1.0.0")


@pytest.fixture
def api(local_cluster: LocalCluster) -> Iterator[Any]:
    with local_cluster.admin_http() as http:
        yield http
        http.delete(f"{CRDS}/{CRD_NAME}")
        for _ in range(300):
            if http.get(f"{CRDS}/{CRD_NAME}").status_code == 404:
                break
            time.sleep(0.1)


def install_foreign_crd(api: Any, namespace: str, labels: dict[str, str]) -> str:
    """Create the CRD as another tool would (its own field manager), with one object."""
    doc = crd("1.0.0")
    doc["metadata"]["labels"] = labels
    created = api.post(CRDS, json=doc, params={"fieldManager": "helm"})
    assert created.status_code == 201, created.text
    for _ in range(300):
        conditions = (api.get(f"{CRDS}/{CRD_NAME}").json().get("status") or {}).get("conditions")
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions or []):
            break
        time.sleep(0.1)
    widgets = f"/apis/{GROUP}/v1alpha1/namespaces/{namespace}/widgets"
    for _ in range(100):
        made = api.post(
            widgets,
            json={
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "Widget",
                "metadata": {"name": "precious"},
                "spec": {"version": "1.0.0"},
            },
        )
        if made.status_code != 404:  # the new kind may take a moment to be served
            break
        time.sleep(0.1)
    assert made.status_code == 201, made.text
    return f"{widgets}/precious"


def labels_of(api: Any) -> dict[str, str]:
    return dict(api.get(f"{CRDS}/{CRD_NAME}").json()["metadata"].get("labels") or {})


def test_activation_refuses_a_foreign_crd_and_takes_it_over_only_when_told(
    cli: SolutionsCli, archive: Path, api: Any, kube_namespace: str
) -> None:
    foreign = {"app.kubernetes.io/part-of": "cert-manager"}
    widget = install_foreign_crd(api, kube_namespace, foreign)
    cli.ok("import", str(archive))
    before = cli.config.read_bytes()

    for extra in ((), ("--force",)):  # --force overrides safety checks, never ownership
        refused = cli("activate", "example-solution", *extra)
        assert refused.returncode == 1, refused.stdout
        message = refused.stderr.strip().splitlines()[-1]
        assert "error: activating example-solution 1.0.0 would take over CRDs it does not own" in (
            message
        )
        assert f"CRD {CRD_NAME} belongs to cert-manager" in message
        assert "field managers: helm" in message
        assert f"--take-over-crd {CRD_NAME}" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert labels_of(api) == foreign
    assert cli.config.read_bytes() == before
    assert api.get(widget).status_code == 200

    # A name the archive does not ship is an input error, not a silent no-op.
    wrong = cli("activate", "example-solution", "--take-over-crd", "certificates.cert-manager.io")
    assert wrong.returncode == 1
    assert "ships no such CRD" in wrong.stderr
    assert labels_of(api) == foreign

    plan = cli.ok("activate", "example-solution", "--take-over-crd", CRD_NAME, "--dry-run")
    assert f"would crd {CRD_NAME}: take over from cert-manager" in plan
    assert "with its 1 object(s)" in plan
    assert labels_of(api) == foreign

    done = cli("activate", "example-solution", "--take-over-crd", CRD_NAME)
    assert done.returncode == 0, done.stderr
    assert f"--take-over-crd {CRD_NAME}: the CRD of cert-manager" in done.stdout + done.stderr
    assert labels_of(api)["app.kubernetes.io/part-of"] == "example-solution"
    assert api.get(widget).status_code == 200
    assert yaml.safe_load(cli.config.read_text())["active"] == {"example-solution": "latest"}


def test_a_crd_of_another_solution_is_refused_naming_it(
    cli: SolutionsCli, archive: Path, api: Any, kube_namespace: str
) -> None:
    theirs = {
        "app.kubernetes.io/part-of": "other-solution",
        "app.kubernetes.io/managed-by": "metalk8s-solutions",
    }
    install_foreign_crd(api, kube_namespace, theirs)
    cli.ok("import", str(archive))
    refused = cli("activate", "example-solution")
    assert refused.returncode == 1
    assert f"CRD {CRD_NAME} belongs to solution other-solution" in refused.stderr
    assert labels_of(api) == theirs


def test_our_labels_on_a_crd_we_never_applied_do_not_make_it_ours(
    cli: SolutionsCli, archive: Path, api: Any, kube_namespace: str
) -> None:
    spoofed = {
        "app.kubernetes.io/part-of": "example-solution",
        "app.kubernetes.io/managed-by": "metalk8s-solutions",
    }
    widget = install_foreign_crd(api, kube_namespace, spoofed)
    cli.ok("import", str(archive))
    refused = cli("activate", "example-solution")
    assert refused.returncode == 1, refused.stdout
    assert "labelled for example-solution that Solutions never applied" in refused.stderr
    assert f"--take-over-crd {CRD_NAME}" in refused.stderr
    assert api.get(widget).status_code == 200


def test_deactivate_force_never_deletes_a_crd_solutions_did_not_apply(
    cli: SolutionsCli, archive: Path, api: Any, kube_namespace: str
) -> None:
    # Someone put our labels on their CRD: labels alone do not make it ours to delete.
    spoofed = {
        "app.kubernetes.io/part-of": "example-solution",
        "app.kubernetes.io/managed-by": "metalk8s-solutions",
    }
    widget = install_foreign_crd(api, kube_namespace, spoofed)
    cli.ok("import", str(archive))
    result = cli("deactivate", "example-solution", "--force")
    assert result.returncode == 0, result.stderr
    assert "was not applied by Solutions; it is left in place" in result.stdout + result.stderr
    assert api.get(f"{CRDS}/{CRD_NAME}").status_code == 200
    assert api.get(widget).status_code == 200


def test_the_http_api_refuses_and_takes_over_alike(
    ui_server: RunningUi,  # noqa: F811 - the imported fixture
    admin_token: str,  # noqa: F811 - the imported fixture
    archive: Path,
    api: Any,
    kube_namespace: str,
) -> None:
    foreign = {"app.kubernetes.io/part-of": "cert-manager"}
    widget = install_foreign_crd(api, kube_namespace, foreign)
    sol = "example-solution"
    with ui_server.client(admin_token) as http:
        imported = http.post("/api/solutions/import", json={"archives": [str(archive)]})
        assert imported.status_code == 200, imported.text
        try:
            refused = http.post(f"/api/solutions/{sol}/activate", json={})
            assert refused.status_code == 409, refused.text
            message = refused.json()["error"]["message"]
            assert f"CRD {CRD_NAME} belongs to cert-manager" in message
            assert labels_of(api) == foreign

            body = {"takeOverCrds": [CRD_NAME]}
            plan = http.post(f"/api/solutions/{sol}/activate", json={**body, "dryRun": True})
            assert plan.status_code == 200, plan.text
            assert any(
                s["target"] == CRD_NAME and s["detail"].startswith("take over from cert-manager")
                for s in plan.json()["steps"]
            ), plan.json()
            assert labels_of(api) == foreign

            done = http.post(f"/api/solutions/{sol}/activate", json=body)
            assert done.status_code == 200, done.text
            assert any("--take-over-crd" in w for w in done.json()["warnings"])
            assert labels_of(api)["app.kubernetes.io/part-of"] == sol
            assert api.get(widget).status_code == 200
        finally:
            http.post(f"/api/solutions/{sol}/deactivate", json={"force": True})
            http.post("/api/solutions/unimport", json={"refs": [f"{sol}-1.0.0"]})


def webhook_archive(out: Path, client_config: Any) -> Path:
    src = make_source(out / "src")
    build_version(src, out, "1.0.0")  # the widgets CRD and its role
    doc = crd("1.0.0")
    doc["spec"]["conversion"] = {
        "strategy": "Webhook",
        "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": client_config},
    }
    (src / "operator" / "deploy" / "crds" / "example.yaml").write_text(yaml.safe_dump(doc))
    iso = out / "hooked" / "example-solution-1.0.0.iso"
    iso.parent.mkdir()
    build(BuildOptions(src, iso, epoch=1_700_000_000))
    return iso


def test_the_conversion_webhook_service_must_be_in_the_namespace_the_crd_names(
    cli: SolutionsCli, api: Any, kube_namespace: str, tmp_path: Path
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "convert"},
        "spec": {"ports": [{"port": 443}]},
    }
    made = api.post(f"/api/v1/namespaces/{kube_namespace}/services", json=service)
    assert made.status_code == 201, made.text
    elsewhere = webhook_archive(
        tmp_path / "a", {"service": {"namespace": "default", "name": "convert"}}
    )
    cli.ok("import", str(elsewhere))
    refused = cli("activate", "example-solution")
    assert refused.returncode == 1
    assert "conversion webhook service convert does not exist in namespace default" in (
        refused.stderr
    )
    assert api.get(f"{CRDS}/{CRD_NAME}").status_code == 404


def test_a_malformed_conversion_webhook_is_refused_not_a_traceback(
    cli: SolutionsCli, api: Any, tmp_path: Path
) -> None:
    broken = webhook_archive(tmp_path / "b", None)
    cli.ok("import", str(broken))
    refused = cli("activate", "example-solution")
    assert "Traceback" not in refused.stderr, refused.stderr
    assert refused.returncode == 1
    assert "conversion webhook has no service reference" in refused.stderr
    assert api.get(f"{CRDS}/{CRD_NAME}").status_code == 404
