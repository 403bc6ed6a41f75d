"""Operator metrics as MetalK8s deploys them (PR 4813) and webhook certificates: the desired
objects (args, volumes, Secrets, cert-manager's Issuer and Certificate) and certificate reuse."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from cryptography import x509

from metalk8s_solutions.api.manifest import ImageRef, OperatorMetrics, SolutionManifest
from metalk8s_solutions.cluster.apply import Action, Change, key_of, plan
from metalk8s_solutions.engine.certificates import KeyStore, generate_tls
from metalk8s_solutions.engine.deployment import desired_environment
from metalk8s_solutions.engine.desired import Settings, VersionContent


def content(metrics: OperatorMetrics | None) -> VersionContent:
    manifest = SolutionManifest(
        name="sol",
        version="1.0.0",
        images=(ImageRef("sol-operator", "1.0.0"),),
        operator_image=ImageRef("sol-operator", "1.0.0"),
        display_name="Sol",
        operator_metrics=metrics,
    )
    return VersionContent(manifest)


def objects(
    metrics: OperatorMetrics | None, settings: Settings | None = None
) -> dict[str, dict[str, Any]]:
    everything = {("sol", "1.0.0"): content(metrics)}
    desired = desired_environment(
        "prod",
        {"prod": {"sol": "1.0.0"}},
        everything,
        settings or Settings(endpoint="reg.local:5000", keys=KeyStore()),
    )
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in desired}


def pod(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = found["Deployment/sol-operator"]["spec"]["template"]["spec"]
    return spec


def test_https_metrics_as_metalk8s_passes_them() -> None:
    found = objects(OperatorMetrics(enabled=True))
    spec = pod(found)
    container = spec["containers"][0]
    assert container["command"] == [
        "sol-operator",
        "--config=/etc/config/operator.yaml",
        "--metrics-bind-address=:8443",
        "--metrics-cert-path=/tmp/k8s-metrics-server/metrics-certs",
    ]
    assert container["ports"] == [{"name": "metrics", "containerPort": 8443, "protocol": "TCP"}]
    assert {
        "name": "metrics-cert",
        "mountPath": "/tmp/k8s-metrics-server/metrics-certs",
        "readOnly": True,
    } in container["volumeMounts"]
    assert {
        "name": "metrics-cert",
        "secret": {"secretName": "sol-operator-metrics-cert", "defaultMode": 0o644},
    } in spec["volumes"]
    # Without cert-manager: a generated certificate for the metrics Service's names.
    secret = found["Secret/sol-operator-metrics-cert"]
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"]["solutions.metalk8s.scality.com/environment"] == "prod"
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "sol-operator-metrics.prod.svc",
        "sol-operator-metrics.prod.svc.cluster.local",
    ]
    assert "Issuer/sol-operator-metrics-issuer" not in found
    monitor = found["ServiceMonitor/sol-operator-metrics"]
    assert monitor["metadata"]["labels"]["metalk8s.scality.com/monitor"] == ""
    assert found["Service/sol-operator-metrics"]["spec"]["ports"][0]["port"] == 8443


def test_http_metrics_and_no_metrics() -> None:
    found = objects(OperatorMetrics(True, "http", 8080))
    command = pod(found)["containers"][0]["command"]
    assert command[2:] == ["--metrics-bind-address=:8080"]
    assert not any(k.startswith("Secret/") for k in found)
    for metrics in (None, OperatorMetrics()):  # disabled by default, as MetalK8s
        found = objects(metrics)
        assert pod(found)["containers"][0]["command"] == [
            "sol-operator",
            "--config=/etc/config/operator.yaml",
        ]
        assert [v["name"] for v in pod(found)["volumes"]] == ["operator-config", "tmp"]
        assert not any(k.split("/")[0] in ("Secret", "Service", "ServiceMonitor") for k in found)


def test_cert_manager_issues_the_metrics_certificate_when_installed() -> None:
    settings = Settings(endpoint="reg.local:5000", keys=KeyStore(cert_manager=True))
    found = objects(OperatorMetrics(enabled=True), settings)
    assert "Secret/sol-operator-metrics-cert" not in found  # cert-manager writes it
    issuer = found["Issuer/sol-operator-metrics-issuer"]
    assert issuer["apiVersion"] == "cert-manager.io/v1"
    assert issuer["metadata"]["namespace"] == "prod"
    assert issuer["spec"] == {"selfSigned": {}}
    certificate = found["Certificate/sol-operator-metrics-cert"]
    assert certificate["spec"] == {
        "secretName": "sol-operator-metrics-cert",
        "issuerRef": {"kind": "Issuer", "name": "sol-operator-metrics-issuer"},
        "dnsNames": [
            "sol-operator-metrics.prod.svc",
            "sol-operator-metrics.prod.svc.cluster.local",
        ],
    }
    # The Deployment mounts the Secret cert-manager writes.
    volumes = pod(found)["volumes"]
    assert any(
        v.get("secret", {}).get("secretName") == "sol-operator-metrics-cert" for v in volumes
    )
    # Applied after the Issuer, before the Deployment; pruned after the Deployment.
    creates = [c.key.kind for c in plan(list(found.values()), [])]
    assert creates.index("Issuer") < creates.index("Certificate") < creates.index("Deployment")


def test_webhook_mounts_the_solution_cert_secret_at_cert() -> None:
    settings = Settings(
        endpoint="reg.local:5000", webhook=frozenset({("prod", "sol")}), keys=KeyStore()
    )
    found = objects(None, settings)
    spec = pod(found)
    assert {"name": "cert", "mountPath": "/cert", "readOnly": True} in spec["containers"][0][
        "volumeMounts"
    ]
    assert {"name": "cert", "secret": {"secretName": "sol-cert", "defaultMode": 0o644}} in spec[
        "volumes"
    ]
    secret = found["Secret/sol-cert"]
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert "Secret/sol-cert" not in objects(None)


def test_a_live_certificate_is_kept_across_converges() -> None:
    first = objects(OperatorMetrics(enabled=True))
    secret = first["Secret/sol-operator-metrics-cert"]
    # Without the live Secret, a new certificate each time.
    again = objects(OperatorMetrics(enabled=True))
    assert again["Secret/sol-operator-metrics-cert"]["data"] != secret["data"]
    live = [{**secret, "metadata": {**secret["metadata"]}}]
    keys = KeyStore.from_secrets(live, cert_manager=False)
    kept = objects(OperatorMetrics(enabled=True), Settings(endpoint="reg.local:5000", keys=keys))
    assert kept["Secret/sol-operator-metrics-cert"] == secret
    changes = plan(list(kept.values()), [*first.values()])
    assert changes == []


def test_secret_values_never_show_in_a_diff() -> None:
    before, after = generate_tls(["x.ns.svc"]), generate_tls(["x.ns.svc"])
    live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "ns", "labels": {"a": "1"}},
        "data": before,
    }
    desired = {**live, "metadata": {**live["metadata"], "labels": {"a": "2"}}, "data": after}
    diff = Change(Action.CHANGE, key_of(desired), desired, live).diff()
    assert "+    a: '2'" in diff
    assert all(value not in diff for value in [*before.values(), *after.values()])
    summary = Change(Action.CHANGE, key_of(desired), desired, live).summary()
    assert "metadata.labels" in summary and "data.tls.crt" in summary, summary
    assert all(value not in summary for value in [*before.values(), *after.values()])


def test_key_store_ignores_what_is_not_a_tls_secret() -> None:
    keys = KeyStore.from_secrets(
        [
            {"kind": "Secret", "metadata": {"namespace": "n", "name": "a"}, "data": {"x": "eA=="}},
            {"kind": "ConfigMap", "metadata": {"namespace": "n", "name": "b"}, "data": {}},
        ],
        cert_manager=False,
    )
    assert keys.live == {}
    made = keys.data("n", "a", ["a.n.svc"])
    assert keys.data("n", "a", ["a.n.svc"]) == made  # asked twice: the same
    assert dataclasses.asdict(keys)["cert_manager"] is False
