"""The MetalK8s 2.4 archive format: ``product.txt``, an optional ``config.yaml`` (SolutionConfig)
and the operator Role MetalK8s 2.4 generated from it.

MetalK8s 2.4 had no ``manifest.yaml``: it read ``NAME`` and ``VERSION`` from ``product.txt``
(shell-style ``KEY=value`` lines; also ``SHORT_VERSION``, ``GIT``, ``DEVELOPMENT_RELEASE``,
``BUILD_TIMESTAMP``, ``BUILD_HOST``), named the Solution ``NAME`` lowercased with spaces turned
into ``-``, and merged ``config.yaml`` over defaults: operator image ``<name>-operator:<version>``,
UI image ``<name>-ui:<version>``, every ``images/<image>/<tag>/`` directory, no
``customApiGroups``.  The operator got a fixed Role (core and apps workloads, ServiceMonitors, its
Deployment's finalizers) plus every resource of each ``customApiGroups`` entry.

:func:`product_manifest` turns all this into the same :class:`SolutionManifest` a
``manifest.yaml`` gives (an adapter: the engine sees no second format) and
:func:`operator_role` into the Role document that stands where ``role.yaml`` stands.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metalk8s_solutions.api.findings import Finding, Severity
from metalk8s_solutions.api.manifest import (
    API_VERSION,
    BUILD_HOST,
    BUILD_TIMESTAMP,
    DISPLAY_NAME,
    GIT_REVISION,
    KIND,
    SolutionManifest,
    check_manifest,
)
from metalk8s_solutions.api.yamldoc import load_yaml_document
from metalk8s_solutions.errors import ManifestError

PRODUCT_PATH = "product.txt"
CONFIG_PATH = "config.yaml"
MAX_PRODUCT_BYTES = 64 * 1024
MAX_CONFIG_BYTES = 256 * 1024
CONFIG_KIND = "SolutionConfig"
CONFIG_API_VERSIONS = ("solutions.metalk8s.scality.com/v1alpha1",)
RBAC_API = "rbac.authorization.k8s.io/v1"
_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
#: an API group name: a DNS subdomain (``example-solution.metalk8s.scality.com``)
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_API_GROUP = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_CONFIG_KEYS = {"apiVersion", "kind", "operator", "ui", "images", "customApiGroups"}
_UI_PORT = 80  # MetalK8s 2.4's UI Deployment and Service: nginx on port 80


@dataclass(frozen=True)
class ProductSolution:
    """A MetalK8s 2.4 archive read as a Solution: its manifest and its generated operator Role."""

    manifest: SolutionManifest
    custom_api_groups: tuple[str, ...]

    @property
    def roles(self) -> tuple[dict[str, Any], ...]:
        return (operator_role(self.manifest.name, self.custom_api_groups),)


def parse_product_txt(data: bytes) -> tuple[dict[str, str], list[Finding]]:
    """The ``KEY=value`` pairs of ``product.txt`` (the first of each key, as MetalK8s's regexes
    find them; one level of shell quotes removed), and SOL100 when NAME or VERSION is missing."""
    if len(data) > MAX_PRODUCT_BYTES:
        return {}, [Finding("SOL100", f"larger than {MAX_PRODUCT_BYTES} bytes", PRODUCT_PATH)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {}, [Finding("SOL100", "is not UTF-8 text", PRODUCT_PATH)]
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        key, value = match[1], match[2].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values.setdefault(key, value)
    findings = [
        Finding("SOL100", f"{key}= is missing or empty (e.g. {key}={example})", PRODUCT_PATH)
        for key, example in (("NAME", "Example Solution"), ("VERSION", "1.0.0"))
        if not values.get(key)
    ]
    return values, findings


def is_builtin_group(group: str) -> bool:
    """A Kubernetes API group (``apps``, ``batch``, ``*.k8s.io``): never a Solution's own, and
    every right on it (e.g. RBAC, admission webhooks) reaches far beyond the operator."""
    return "." not in group or group.endswith(".k8s.io") or group == "k8s.io"


def machine_name(name: str) -> str:
    """The Solution name MetalK8s 2.4 derived from ``NAME``: ``Example Solution`` ->
    ``example-solution``."""
    return name.replace(" ", "-").lower()


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Salt's ``dictupdate.update``: mappings merge recursively, anything else replaces."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _image_of(config: Mapping[str, Any], section: str, findings: list[Finding]) -> str | None:
    node = config.get(section)
    image = node.get("image") if isinstance(node, dict) else None
    if not isinstance(image, dict) or not all(
        isinstance(image.get(k), str) and image.get(k) for k in ("name", "tag")
    ):
        findings.append(
            Finding("SOL101", f"{section}.image must be {{name: ..., tag: ...}}", CONFIG_PATH)
        )
        return None
    return f"{image['name']}:{image['tag']}"


def check_solution_config(
    doc: object, name: str, version: str, images: Iterable[str]
) -> tuple[dict[str, Any], list[Finding]]:
    """``config.yaml`` (None when absent) merged over MetalK8s 2.4's defaults, and its problems
    (SOL101; unknown fields are a warning, MetalK8s ignored them)."""
    config: dict[str, Any] = {
        "operator": {"image": {"name": f"{name}-operator", "tag": version}},
        "ui": {"image": {"name": f"{name}-ui", "tag": version}},
        "images": sorted(images),
        "customApiGroups": [],
    }
    findings: list[Finding] = []
    if doc is None:
        return config, findings
    if not isinstance(doc, dict):
        return config, [Finding("SOL101", "must be a YAML mapping", CONFIG_PATH)]
    if doc.get("kind") != CONFIG_KIND or doc.get("apiVersion") not in CONFIG_API_VERSIONS:
        findings.append(
            Finding(
                "SOL101",
                f"apiVersion/kind must be {CONFIG_API_VERSIONS[0]}/{CONFIG_KIND}, not "
                f"{doc.get('apiVersion')!r}/{doc.get('kind')!r}",
                CONFIG_PATH,
            )
        )
    findings.extend(
        Finding(
            "SOL101",
            f"unknown field {key!r}, ignored (MetalK8s ignored it too)",
            CONFIG_PATH,
            Severity.WARNING,
        )
        for key in sorted(set(map(str, doc)) - _CONFIG_KEYS)
    )
    _merge(config, {k: v for k, v in doc.items() if k in _CONFIG_KEYS - {"apiVersion", "kind"}})
    groups = config["customApiGroups"]
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and _API_GROUP.match(g) and not is_builtin_group(g) for g in groups
    ):
        findings.append(
            Finding(
                "SOL101",
                f"customApiGroups must be a list of API group names of the Solution's own "
                f"CRDs (e.g. example.metalk8s.scality.com; never a Kubernetes group such as "
                f"apps or rbac.authorization.k8s.io, on which it would grant every right), "
                f"not {groups!r}",
                CONFIG_PATH,
            )
        )
        config["customApiGroups"] = []
    if not isinstance(config["images"], list):
        findings.append(Finding("SOL101", "images must be a list of name:tag", CONFIG_PATH))
        config["images"] = sorted(images)
    return config, findings


def product_manifest(
    product: Mapping[str, str], config_doc: object, archive_images: Iterable[str]
) -> tuple[ProductSolution | None, list[Finding]]:
    """The Solution of a MetalK8s 2.4 archive: ``product.txt``'s values, ``config.yaml`` (decoded,
    None when absent) and the ``name:tag`` of its ``images/`` directories, checked by the same
    rules as a ``manifest.yaml`` (findings located at ``product.txt``)."""
    display, version = product.get("NAME", ""), product.get("VERSION", "")
    name = machine_name(display)
    config, findings = check_solution_config(config_doc, name, version, archive_images)
    operator = _image_of(config, "operator", findings)
    ui = _image_of(config, "ui", findings)
    images = config["images"]
    annotations = {DISPLAY_NAME: display}
    for key, annotation in (
        ("BUILD_TIMESTAMP", BUILD_TIMESTAMP),
        ("BUILD_HOST", BUILD_HOST),
        ("GIT", GIT_REVISION),
    ):
        if product.get(key):
            annotations[annotation] = product[key]
    spec: dict[str, Any] = {"version": version, "images": images}
    if operator is not None:
        name_, _, tag = operator.partition(":")
        spec["operator"] = {"image": {"name": name_, "tag": tag}}
    if ui is not None and ui in images:
        name_, _, tag = ui.partition(":")
        spec["ui"] = {"image": {"name": name_, "tag": tag}, "port": _UI_PORT}
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    }
    manifest, checked = check_manifest(doc)
    findings.extend(
        dataclasses.replace(f, path=PRODUCT_PATH, message=f"derived manifest: {f.message}")
        for f in checked
    )
    if manifest is None or any(f.level is Severity.ERROR for f in findings):
        return None, findings
    groups = tuple(config["customApiGroups"])
    derived = [
        f"name {manifest.name}, version {manifest.version}",
        f"operator image {manifest.operator_image}",
        f"images {', '.join(map(str, manifest.images))}",
        f"the operator Role {manifest.name}-operator"
        + (f" with every resource of {', '.join(groups)}" if groups else ""),
    ]
    derived.append(f"UI image {manifest.ui.image}" if manifest.ui else f"no UI ({ui} not shipped)")
    findings.append(
        Finding(
            "SOL102",
            "MetalK8s 2.4 format (no manifest.yaml): derived " + "; ".join(derived),
            PRODUCT_PATH,
        )
    )
    return ProductSolution(manifest, groups), findings


def load_product(
    product_data: bytes, config_data: bytes | None, archive_images: Iterable[str]
) -> tuple[ProductSolution | None, list[Finding]]:
    """Decode ``product.txt`` and ``config.yaml`` bytes, then :func:`product_manifest`."""
    product, findings = parse_product_txt(product_data)
    if findings:
        return None, findings
    config_doc: object = None
    if config_data is not None:
        try:
            config_doc = load_yaml_document(config_data, CONFIG_PATH, max_bytes=MAX_CONFIG_BYTES)
        except ManifestError as err:
            message = str(err).removeprefix(f"SOL010 {CONFIG_PATH}: ")
            return None, [Finding("SOL101", message, CONFIG_PATH)]
    return product_manifest(product, config_doc, archive_images)


def operator_role(solution: str, custom_api_groups: Iterable[str] = ()) -> dict[str, Any]:
    """The Role MetalK8s 2.4 granted the operator of ``solution`` (its rules, in its order)."""
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": [""],
            "resources": [
                "pods",
                "services",
                "endpoints",
                "persistentvolumeclaims",
                "events",
                "configmaps",
                "secrets",
            ],
            "verbs": ["*"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments", "daemonsets", "replicasets", "statefulsets"],
            "verbs": ["*"],
        },
        {
            "apiGroups": ["monitoring.coreos.com"],
            "resources": ["servicemonitors"],
            "verbs": ["get", "create"],
        },
        {
            "apiGroups": ["apps"],
            "resourceNames": [f"{solution}-operator"],
            "resources": ["deployments/finalizers"],
            "verbs": ["update"],
        },
    ]
    groups = list(custom_api_groups)
    if groups:
        rules.append({"apiGroups": groups, "resources": ["*"], "verbs": ["*"]})
    return {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": {"name": f"{solution}-operator"},
        "rules": rules,
    }


__all__ = [
    "CONFIG_PATH",
    "PRODUCT_PATH",
    "ProductSolution",
    "check_solution_config",
    "load_product",
    "machine_name",
    "operator_role",
    "parse_product_txt",
    "product_manifest",
]
