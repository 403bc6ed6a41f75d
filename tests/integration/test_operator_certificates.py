"""Operator metrics as MetalK8s deploys them (PR 4813) and ``add-solution --webhook``, on the
real local control plane.

A Solution declaring ``spec.operator.metrics: {enabled: true}`` (https on 8443, MetalK8s's
defaults) is added to an environment: without cert-manager a certificate is generated into
Secret ``<sol>-operator-metrics-cert`` and kept by every later converge and upgrade; the
operator gets ``--metrics-bind-address``/``--metrics-cert-path``; the ServiceMonitor carries
``metalk8s.scality.com/monitor``.  ``--webhook`` mounts Secret ``<sol>-cert`` at ``/cert``.
With cert-manager's CRDs installed, an Issuer and a Certificate are created instead.

Neither the Prometheus Operator nor cert-manager is installed by the harness: this module
installs reduced stand-ins of their CRDs (same group, version, names and scope; open schema)
and deletes them at the end (the control plane is shared by the whole session).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from env_support import (
    Api,
    build_solution,
    cli,
    crd_document,
    open_crd,
    remove_stand_in_crds,
    wait_for,
    write_config,
)
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube
from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine.certificates import generate_tls
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "certtest"
GROUP = "certtest.test.solutions"
ENV_LABEL = "solutions.metalk8s.scality.com/environment"
METRICS_SECRET = f"{SOL}-operator-metrics-cert"
WEBHOOK_SECRET = f"{SOL}-cert"
CERT_MANAGER = "/apis/cert-manager.io/v1"
#: Where kubebuilder's scaffolding, and so the upstream example operator, mounts it.
CERT_PATH = "/tmp/k8s-metrics-server/metrics-certs"
STAND_INS = {
    ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    ("cert-manager.io", "Issuer", "issuers"),
    ("cert-manager.io", "Certificate", "certificates"),
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("certificate-archives")
    return [
        build_solution(out, SOL, version, group=GROUP, metrics={"enabled": True})
        for version in ("1.0.0", "1.1.0")
    ]


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        api.install_crd(crd_document(GROUP, ("v1alpha1",), "v1alpha1"))
        api.install_crd(open_crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"))
        yield api
        remove_stand_in_crds(api, STAND_INS)


@pytest.fixture
def ctx(tmp_path: Path, archives: list[Path], local_cluster: LocalCluster) -> Context:
    config = write_config(tmp_path / "solutions.yaml", archives)
    return Context(config, ClusterTarget(kubeconfig=local_cluster.kubeconfig))


def secret(admin: Api, ns: str, name: str) -> dict[str, Any] | None:
    return admin.get(f"/api/v1/namespaces/{ns}/secrets/{name}")


def pod_spec(admin: Api, ns: str) -> dict[str, Any]:
    dep = admin.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{SOL}-operator")
    assert dep is not None
    spec: dict[str, Any] = dep["spec"]["template"]["spec"]
    return spec


def mounted(spec: dict[str, Any], secret_name: str, path: str) -> bool:
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = spec["containers"][0]["volumeMounts"]
    return any(
        m["mountPath"] == path
        and (volumes[m["name"]].get("secret") or {}).get("secretName") == secret_name
        for m in mounts
    )


async def test_https_metrics_with_a_generated_certificate_kept_across_converges(
    ctx: Context, kube: Kube, env_names: list[str], admin: Api
) -> None:
    env = env_names[0]
    await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
    added = await envs.add_solution(
        ctx, envs.AddSolutionOptions(env, SOL, "1.0.0", timeout=60), connection=kube
    )
    targets = [s.target for s in added.steps if s.action == "create"]
    assert targets.index(f"Secret {env}/{METRICS_SECRET}") < targets.index(
        f"Deployment {env}/{SOL}-operator"
    )
    made = secret(admin, env, METRICS_SECRET)
    assert made is not None and made["type"] == "kubernetes.io/tls"
    assert made["metadata"]["labels"][ENV_LABEL] == env
    assert set(made["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    spec = pod_spec(admin, env)
    command = spec["containers"][0]["command"]
    assert command[-2:] == ["--metrics-bind-address=:8443", f"--metrics-cert-path={CERT_PATH}"]
    assert mounted(spec, METRICS_SECRET, CERT_PATH)
    service = admin.get(f"/api/v1/namespaces/{env}/services/{SOL}-operator-metrics")
    assert service is not None and service["spec"]["ports"][0]["port"] == 8443
    monitor = admin.get(
        f"/apis/monitoring.coreos.com/v1/namespaces/{env}/servicemonitors/{SOL}-operator-metrics"
    )
    assert monitor is not None
    assert monitor["metadata"]["labels"]["metalk8s.scality.com/monitor"] == ""
    assert monitor["spec"]["endpoints"][0]["scheme"] == "https"

    # A converge with nothing to do writes nothing: the certificate is not made again.
    before = kube.counter.mutating
    again = await envs.converge_environments(ctx, envs.ConvergeOptions((env,)), connection=kube)
    assert again.steps == [] and kube.counter.mutating == before
    # An upgrade keeps it too (the Secret's version label changes, its data does not).
    await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env, SOL, "1.1.0", timeout=60), connection=kube
    )
    kept = secret(admin, env, METRICS_SECRET)
    assert kept is not None and kept["data"] == made["data"]
    assert kept["metadata"]["labels"]["app.kubernetes.io/version"] == "1.1.0"
    # Removing the solution removes its certificate.
    await envs.delete_solution(
        ctx, envs.DeleteSolutionOptions(env, SOL, timeout=60), connection=kube
    )
    assert secret(admin, env, METRICS_SECRET) is None


async def test_webhook_mounts_the_cert_secret_kept_across_upgrade(
    ctx: Context, kube: Kube, env_names: list[str], admin: Api, local_cluster: LocalCluster
) -> None:
    env = env_names[0]
    await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
    shown = cli(
        ctx.config_path,
        local_cluster.kubeconfig,
        "env",
        "add-solution",
        env,
        SOL,
        "1.0.0",
        "--webhook",
        "--timeout",
        "60",
    )
    assert shown.returncode == 0, shown.stderr
    assert f"Secret {env}/{WEBHOOK_SECRET}" in shown.stdout
    made = secret(admin, env, WEBHOOK_SECRET)
    assert made is not None and made["type"] == "kubernetes.io/tls"
    assert mounted(pod_spec(admin, env), WEBHOOK_SECRET, "/cert")
    await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env, SOL, "1.1.0", timeout=60), connection=kube
    )
    kept = secret(admin, env, WEBHOOK_SECRET)
    assert kept is not None and kept["data"] == made["data"]
    assert mounted(pod_spec(admin, env), WEBHOOK_SECRET, "/cert")  # remembered: no flag again
    shown_env = await envs.show_environment(ctx, env, connection=kube)
    assert shown_env["namespaces"][env]["webhook"] == [SOL]
    await envs.delete_solution(
        ctx, envs.DeleteSolutionOptions(env, SOL, timeout=60), connection=kube
    )
    assert secret(admin, env, WEBHOOK_SECRET) is None
    namespace = admin.get(f"/api/v1/namespaces/{env}")
    assert namespace is not None
    annotations = namespace["metadata"].get("annotations") or {}
    assert "solutions.metalk8s.scality.com/webhook" not in annotations
    # Added again without --webhook: no Secret, no mount.
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env, SOL, "1.0.0", timeout=60), connection=kube
    )
    assert secret(admin, env, WEBHOOK_SECRET) is None
    assert not mounted(pod_spec(admin, env), WEBHOOK_SECRET, "/cert")


async def test_a_cert_secret_made_by_someone_else_keeps_its_certificate(
    ctx: Context, kube: Kube, env_names: list[str], admin: Api
) -> None:
    """As on a cluster MetalK8s ran: ``<sol>-cert`` exists, unlabelled; it is labelled, not
    replaced."""
    env = env_names[0]
    await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
    theirs = generate_tls([f"{SOL}-webhook.{env}.svc"])
    admin.post(
        f"/api/v1/namespaces/{env}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": WEBHOOK_SECRET},
            "type": "kubernetes.io/tls",
            "data": theirs,
        },
    )
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env, SOL, "1.0.0", webhook=True, timeout=60), connection=kube
    )
    kept = secret(admin, env, WEBHOOK_SECRET)
    assert kept is not None and kept["data"] == theirs
    assert kept["metadata"]["labels"][ENV_LABEL] == env
    assert mounted(pod_spec(admin, env), WEBHOOK_SECRET, "/cert")


async def test_https_metrics_scrapes_pass_the_operators_authentication(
    ctx: Context, kube: Kube, env_names: list[str], admin: Api
) -> None:
    """What controller-runtime's WithAuthenticationAndAuthorization (the upstream example
    operator's metrics filter) asks the API server on each scrape, asked here as the operator's
    ServiceAccount with the token Prometheus presents: a TokenReview, then a
    SubjectAccessReview for ``get`` on the metrics path.  Both must pass, with a token that is
    not Prometheus's own and that gets nothing else."""
    env = env_names[0]
    await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env, SOL, "1.0.0", timeout=60), connection=kube
    )
    monitor = admin.get(
        f"/apis/monitoring.coreos.com/v1/namespaces/{env}/servicemonitors/{SOL}-operator-metrics"
    )
    assert monitor is not None
    endpoint = monitor["spec"]["endpoints"][0]
    assert "bearerTokenFile" not in endpoint
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": f"{SOL}-metrics-scraper-token", "key": "token"},
    }

    def token() -> str | None:
        found = secret(admin, env, f"{SOL}-metrics-scraper-token")
        data = (found or {}).get("data") or {}
        return base64.b64decode(data["token"]).decode() if "token" in data else None

    wait_for(lambda: token() is not None, what="the scraper's token")
    scraper_token = token()
    operator = {"Impersonate-User": f"system:serviceaccount:{env}:{SOL}-operator"}
    review = admin.http.post(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": scraper_token},
        },
        headers=operator,
    )
    assert review.status_code == 201, review.text
    user = review.json()["status"]
    assert user["authenticated"] is True
    assert user["user"]["username"] == f"system:serviceaccount:{env}:{SOL}-metrics-scraper"

    def allowed(attributes: dict[str, Any]) -> bool:
        asked = admin.http.post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user["user"]["username"],
                    "groups": user["user"]["groups"],
                    **attributes,
                },
            },
            headers=operator,
        )
        assert asked.status_code == 201, asked.text
        return bool(asked.json()["status"]["allowed"])

    assert allowed({"nonResourceAttributes": {"path": "/metrics", "verb": "get"}})
    # The scraper's token reads metrics and nothing else.
    assert not allowed({"nonResourceAttributes": {"path": "/healthz/etcd", "verb": "get"}})
    assert not allowed(
        {"resourceAttributes": {"namespace": env, "verb": "get", "resource": "secrets"}}
    )
    # Removing the solution removes the grants: no cluster-wide object of it is left.
    await envs.delete_solution(
        ctx, envs.DeleteSolutionOptions(env, SOL, timeout=60), connection=kube
    )
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    for kind in ("clusterroles", "clusterrolebindings"):
        names = [o["metadata"]["name"] for o in admin.http.get(f"{rbac}/{kind}").json()["items"]]
        assert not [n for n in names if n.startswith(f"solutions:{env}:")], names
    assert secret(admin, env, f"{SOL}-metrics-scraper-token") is None


# Last in the module: it installs cert-manager's CRDs (removed by the module's teardown).
async def test_with_cert_manager_an_issuer_and_a_certificate(
    ctx: Context, kube: Kube, env_names: list[str], admin: Api
) -> None:
    for group, kind, plural in STAND_INS:
        if group == "cert-manager.io":
            admin.install_crd(open_crd(group, kind, plural))
    env = env_names[0]
    await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
    # cert-manager's controller is not running here: its Secret never comes, nor the pod.
    await envs.add_solution(
        ctx, envs.AddSolutionOptions(env, SOL, "1.0.0", wait=False), connection=kube
    )
    issuer = admin.get(f"{CERT_MANAGER}/namespaces/{env}/issuers/{SOL}-operator-metrics-issuer")
    assert issuer is not None and issuer["spec"] == {"selfSigned": {}}
    assert issuer["metadata"]["labels"][ENV_LABEL] == env
    certificate = admin.get(f"{CERT_MANAGER}/namespaces/{env}/certificates/{METRICS_SECRET}")
    assert certificate is not None
    assert certificate["spec"] == {
        "secretName": METRICS_SECRET,
        "issuerRef": {"kind": "Issuer", "name": f"{SOL}-operator-metrics-issuer"},
        "dnsNames": [
            f"{SOL}-operator-metrics.{env}.svc",
            f"{SOL}-operator-metrics.{env}.svc.cluster.local",
        ],
    }
    assert secret(admin, env, METRICS_SECRET) is None  # cert-manager's to write
    assert mounted(pod_spec(admin, env), METRICS_SECRET, CERT_PATH)
    before = kube.counter.mutating
    again = await envs.converge_environments(ctx, envs.ConvergeOptions((env,)), connection=kube)
    assert again.steps == [] and kube.counter.mutating == before
    await envs.delete_solution(
        ctx, envs.DeleteSolutionOptions(env, SOL, wait=False), connection=kube
    )
    assert admin.items(f"{CERT_MANAGER}/namespaces/{env}/issuers") == []
    assert admin.items(f"{CERT_MANAGER}/namespaces/{env}/certificates") == []
