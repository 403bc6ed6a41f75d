"""TLS certificates of the operators: metrics (``spec.operator.metrics``) and webhooks.

MetalK8s (PR 4813) serves an operator's https metrics with a certificate from cert-manager: a
self-signed ``Issuer`` and a ``Certificate`` whose Secret ``<sol>-operator-metrics-cert`` the
operator mounts.  When cert-manager's CRDs are not installed, the product generates the
certificate itself and keeps it in a Secret of that same name; and the webhook Secret
``<sol>-cert`` (``add-solution --webhook``, mounted at ``/cert``) is always generated here.

A generated certificate is made once: each converge reads the live Secrets first
(:class:`KeyStore`) and puts their data back in the desired object, so the planner sees no
change and the certificate stays the same across converges and upgrades.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.cluster.apply import (
    CERT_MANAGER_API,
    CERT_MANAGER_KINDS,
    Action,
    Change,
    ObjectKey,
    get_object,
    order,
    request,
)
from metalk8s_solutions.cluster.kube import Kube

#: cert-manager's kinds we create, with their API resource names.
CERT_MANAGER_RESOURCES = {"Issuer": "issuers", "Certificate": "certificates"}
#: Where the operator finds its metrics certificate: the path kubebuilder's scaffolding (and the
#: upstream example operator's ``config/default``) mounts it at; passed explicitly as
#: ``--metrics-cert-path`` anyway.
METRICS_CERT_MOUNT = "/tmp/k8s-metrics-server/metrics-certs"  # noqa: S108 - a mount, not a tmp file
METRICS_CERT_VOLUME = "metrics-cert"
#: Where MetalK8s mounts the webhook Secret ``<sol>-cert`` (``add-solution --webhook``).
WEBHOOK_CERT_MOUNT = "/cert"
WEBHOOK_CERT_VOLUME = "cert"
TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")
VALIDITY = dt.timedelta(days=3650)
Obj = dict[str, Any]


def metrics_secret_name(solution: str) -> str:
    """The Secret the operator's metrics certificate is in (the name MetalK8s gives it)."""
    return f"{solution}-operator-metrics-cert"


def metrics_issuer_name(solution: str) -> str:
    return f"{solution}-operator-metrics-issuer"


def webhook_secret_name(solution: str) -> str:
    """The Secret MetalK8s mounts at ``/cert`` when an environment enables webhooks."""
    return f"{solution}-cert"


def service_dns_names(service: str, namespace: str) -> list[str]:
    return [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


def generate_tls(dns_names: Sequence[str]) -> dict[str, str]:
    """A new self-signed serving certificate for ``dns_names``, as a ``kubernetes.io/tls``
    Secret's ``data`` (base64 ``tls.crt``, ``tls.key`` and ``ca.crt``, the certificate itself)."""
    # Imported here: most commands never make a certificate (start-up time).
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encoded = [base64.b64encode(pem).decode() for pem in (cert_pem, key_pem, cert_pem)]
    return dict(zip(TLS_KEYS, encoded, strict=True))


@dataclass
class KeyStore:
    """The certificates of an environment: those of its live Secrets, new ones otherwise.

    ``live`` maps (namespace, Secret name) to the ``data`` of the Secrets found in the cluster;
    ``cert_manager`` says whether cert-manager's CRDs are installed (then metrics certificates
    come from it).  A certificate generated here is remembered, so asking twice gives the same.
    """

    live: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)
    cert_manager: bool = False
    _made: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_secrets(cls, secrets: Iterable[Mapping[str, Any]], *, cert_manager: bool) -> KeyStore:
        live: dict[tuple[str, str], Mapping[str, str]] = {}
        for secret in secrets:
            if secret.get("kind") != "Secret":
                continue
            meta = secret.get("metadata") or {}
            data = secret.get("data") or {}
            if all(isinstance(data.get(k), str) and data.get(k) for k in ("tls.crt", "tls.key")):
                live[(str(meta.get("namespace")), str(meta.get("name")))] = {
                    k: str(v) for k, v in data.items() if k in TLS_KEYS
                }
        return cls(live, cert_manager)

    def data(self, namespace: str, name: str, dns_names: Sequence[str]) -> dict[str, str]:
        """The certificate of Secret ``name``: the live one when there is one, else a new one."""
        key = (namespace, name)
        found = self.live.get(key)
        if found is not None:
            return dict(found)
        if key not in self._made:
            self._made[key] = generate_tls(dns_names)
        return dict(self._made[key])


async def read_cert_manager(kube: Kube) -> bool:
    """Whether cert-manager's Issuer and Certificate are served, in one discovery request."""
    data = await request(
        kube,
        "GET",
        f"/apis/{CERT_MANAGER_API}",
        action=f"discovering {CERT_MANAGER_API}",
        missing_ok=True,
    )
    served = {str(r.get("name")) for r in (data or {}).get("resources") or []}
    return set(CERT_MANAGER_RESOURCES.values()) <= served


async def read_unlabelled(
    kube: Kube, keys: KeyStore, wanted: Iterable[tuple[str, str]]
) -> KeyStore:
    """``keys`` with the certificates of the ``wanted`` Secrets (namespace, name) that exist but
    that this tool did not label (made by MetalK8s, cert-manager or by hand): they are kept
    and merely labelled, never replaced by a new certificate."""
    found = dict(keys.live)
    for namespace, name in wanted:
        if (namespace, name) in found:
            continue
        secret = await request(
            kube,
            "GET",
            f"/api/v1/namespaces/{namespace}/secrets/{name}",
            action=f"reading Secret {namespace}/{name}",
            missing_ok=True,
        )
        if secret:
            found.update(
                KeyStore.from_secrets([{**secret, "kind": "Secret"}], cert_manager=False).live
            )
    return KeyStore(found, keys.cert_manager, keys._made)


def tls_secret(
    name: str, namespace: str, labels: Mapping[str, str], data: Mapping[str, str]
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "type": "kubernetes.io/tls",
        "data": dict(data),
    }


def metrics_certificate_objects(
    solution: str, namespace: str, labels: Mapping[str, str], service: str, keys: KeyStore
) -> list[Obj]:
    """What makes the https metrics certificate of ``solution``'s operator in ``namespace``.

    With cert-manager: a self-signed Issuer and a Certificate writing the Secret, as MetalK8s;
    without: the Secret itself, generated once and kept.
    """
    secret = metrics_secret_name(solution)
    dns = service_dns_names(service, namespace)
    if not keys.cert_manager:
        return [tls_secret(secret, namespace, labels, keys.data(namespace, secret, dns))]
    issuer = metrics_issuer_name(solution)
    meta = {"namespace": namespace, "labels": dict(labels)}
    return [
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Issuer",
            "metadata": {"name": issuer, **meta},
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Certificate",
            "metadata": {"name": secret, **meta},
            "spec": {
                "secretName": secret,
                "issuerRef": {"kind": "Issuer", "name": issuer},
                "dnsNames": dns,
            },
        },
    ]


def webhook_secret(
    solution: str, namespace: str, labels: Mapping[str, str], service: str, keys: KeyStore
) -> Obj:
    """Secret ``<sol>-cert`` (mounted at ``/cert``), generated once and kept."""
    name = webhook_secret_name(solution)
    data = keys.data(namespace, name, service_dns_names(service, namespace))
    return tls_secret(name, namespace, labels, data)


#: What cert-manager writes on the Secret it issues for a Certificate.
CERTIFICATE_ANNOTATION = "cert-manager.io/certificate-name"


async def issued_secret(kube: Kube, namespace: str, certificate: Mapping[str, Any]) -> Obj | None:
    """The Secret cert-manager wrote for ``certificate`` (its ``secretName``, annotated with the
    Certificate's name), or None."""
    name = str(((certificate.get("spec") or {}).get("secretName")) or "")
    if not name:
        return None
    secret = await get_object(kube, ObjectKey("Secret", namespace, name))
    meta = (secret or {}).get("metadata") or {}
    if secret is None or (meta.get("annotations") or {}).get(CERTIFICATE_ANNOTATION) != (
        (certificate.get("metadata") or {}).get("name")
    ):
        return None
    secret["apiVersion"], secret["kind"] = "v1", "Secret"
    return secret


async def with_issued_secrets(kube: Kube, changes: Sequence[Change]) -> list[Change]:
    """``changes``, and the deletion of the Secret cert-manager issued for each Certificate they
    delete: cert-manager sets no owner on it (by default), so it would outlive the Solution.
    Asks the API server only when a Certificate is deleted."""
    out = list(changes)
    planned = {c.key for c in out}
    for change in changes:
        if change.action is not Action.DELETE or change.key.kind != "Certificate":
            continue
        if change.live is None:
            continue
        secret = await issued_secret(kube, change.key.namespace, change.live)
        if (
            secret is not None
            and ObjectKey("Secret", change.key.namespace, secret["metadata"]["name"]) not in planned
        ):
            key = ObjectKey("Secret", change.key.namespace, secret["metadata"]["name"])
            out.append(
                Change(
                    Action.DELETE,
                    key,
                    live=secret,
                    note=f"issued for Certificate {change.key.name}",
                )
            )
            planned.add(key)
    return order(out)


def secret_volume(volume: str, secret: str, mount: str) -> tuple[Obj, Obj]:
    """(the pod volume, the container's read-only mount) of ``secret`` at ``mount``."""
    return (
        {"name": volume, "secret": {"secretName": secret, "defaultMode": 0o644}},
        {"name": volume, "mountPath": mount, "readOnly": True},
    )


__all__ = [
    "CERT_MANAGER_API",
    "CERT_MANAGER_KINDS",
    "CERT_MANAGER_RESOURCES",
    "METRICS_CERT_MOUNT",
    "WEBHOOK_CERT_MOUNT",
    "KeyStore",
    "generate_tls",
    "issued_secret",
    "metrics_certificate_objects",
    "metrics_secret_name",
    "read_cert_manager",
    "read_unlabelled",
    "secret_volume",
    "webhook_secret",
    "webhook_secret_name",
    "with_issued_secrets",
]
