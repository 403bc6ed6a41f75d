"""The Solution manifest (``manifest.yaml`` at the archive root), its schema and strict checks.

Field names are MetalK8s's own so that existing Solutions keep working.  :func:`check_manifest`
reports every problem as a :class:`~metalk8s_solutions.api.findings.Finding` (for ``validate``);
:func:`parse_manifest` is the strict entry point for everything else and raises on the first error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.api.findings import Finding, Severity, error_of, for_metalk8s
from metalk8s_solutions.api.versions import is_semantic, version_problem
from metalk8s_solutions.api.yamldoc import load_yaml_document
from metalk8s_solutions.errors import ManifestError

API_VERSION = "solutions.metalk8s.scality.com/v1alpha1"
KIND = "Solution"
ANNOTATION_PREFIX = "solutions.metalk8s.scality.com/"
DISPLAY_NAME = ANNOTATION_PREFIX + "display-name"
BUILD_TIMESTAMP = ANNOTATION_PREFIX + "build-timestamp"
BUILD_HOST = ANNOTATION_PREFIX + "build-host"
GIT_REVISION = ANNOTATION_PREFIX + "git-revision"
MAX_MANIFEST_BYTES = 256 * 1024
MAX_IMAGES = 1000

DNS_LABEL = re.compile(r"^(?!-)[0-9a-z-]{1,63}(?<!-)$")
IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_KNOWN = {
    "": {"apiVersion", "kind", "metadata", "spec"},
    "metadata": {"name", "annotations", "labels"},
    "spec": {"version", "images", "operator", "ui"},
    "spec.operator": {"image", "metrics"},
    "spec.operator.image": {"name", "tag"},
    "spec.operator.metrics": {"enabled", "scheme", "port", "path"},
    "spec.ui": {"image", "port"},
    "spec.ui.image": {"name", "tag"},
}
#: The port a Solution UI serves HTTP on when ``spec.ui.port`` is not set (MetalK8s's UIs ran
#: nginx on port 80).
DEFAULT_UI_PORT = 80


@dataclass(frozen=True, order=True)
class ImageRef:
    """An image of a Solution, ``name:tag`` (no registry, no repository path)."""

    name: str
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def parse_image_ref(text: object) -> ImageRef:
    """``base-server:1.0.0`` -> ImageRef, or ManifestError."""
    if not isinstance(text, str) or text.count(":") != 1:
        raise ManifestError(f"{text!r} is not an image reference of the form name:tag")
    name, tag = text.split(":")
    if not IMAGE_NAME.match(name) or len(name) > 128:
        raise ManifestError(f"{text!r}: {name!r} is not a valid image name (lowercase, no '/')")
    if not IMAGE_TAG.match(tag):
        raise ManifestError(f"{text!r}: {tag!r} is not a valid image tag")
    return ImageRef(name, tag)


@dataclass(frozen=True)
class OperatorMetrics:
    """``spec.operator.metrics``: where the operator serves Prometheus metrics (MetalK8s PR 4813).

    As MetalK8s: ``enabled`` defaults to false, ``scheme`` to ``https``, ``port`` to 8443 for
    https and 8080 for http, ``path`` to ``/metrics``.  Deploying the operator then passes it
    ``--metrics-bind-address=:<port>`` (and, for https, ``--metrics-cert-path`` with a
    certificate), adds a named container port ``metrics``, a Service and a ServiceMonitor per
    environment namespace (``engine/monitoring.py``, ``engine/certificates.py``).
    """

    enabled: bool = False
    scheme: str = "https"
    port: int = 8443
    path: str = "/metrics"

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "scheme": self.scheme,
            "port": self.port,
            "path": self.path,
        }


#: The metrics port MetalK8s uses when ``spec.operator.metrics.port`` is not given.
DEFAULT_METRICS_PORTS = {"https": 8443, "http": 8080}


@dataclass(frozen=True)
class UiSpec:
    """``spec.ui``: the Solution's own web UI, deployed beside the operator in each namespace.

    MetalK8s defaulted the image to ``<name>-ui:<version>``; here too, but a UI exists only when
    ``spec.ui`` is declared and its image is listed in ``spec.images``, so a deployment never
    refers to an image the archive does not carry, and an existing archive that merely carries
    such an image does not start deploying it (``validate`` says how to opt in).
    """

    image: ImageRef
    port: int = DEFAULT_UI_PORT

    def to_dict(self) -> dict[str, Any]:
        return {"image": {"name": self.image.name, "tag": self.image.tag}, "port": self.port}


@dataclass(frozen=True)
class SolutionManifest:
    """A validated Solution manifest."""

    name: str
    version: str
    images: tuple[ImageRef, ...]
    operator_image: ImageRef
    display_name: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    operator_metrics: OperatorMetrics | None = None
    ui: UiSpec | None = None

    @property
    def id(self) -> str:
        """``<name>-<version>``: the registry prefix and the key of a version everywhere."""
        return f"{self.name}-{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """The manifest as MetalK8s writes it."""
        metadata: dict[str, Any] = {"name": self.name}
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        if self.labels:
            metadata["labels"] = dict(self.labels)
        operator: dict[str, Any] = {
            "image": {"name": self.operator_image.name, "tag": self.operator_image.tag}
        }
        if self.operator_metrics is not None:
            operator["metrics"] = self.operator_metrics.to_dict()
        spec: dict[str, Any] = {
            "version": self.version,
            "images": [str(i) for i in self.images],
            "operator": operator,
        }
        if self.ui is not None:
            spec["ui"] = self.ui.to_dict()
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def _string_map(value: object, where: str, findings: list[Finding]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        findings.append(Finding("SOL011", f"{where} must be a map of strings", "manifest.yaml"))
        return {}
    return dict(value)


def _unknown_fields(doc: Mapping[str, Any], findings: list[Finding]) -> None:
    for section, known in _KNOWN.items():
        node: object = doc
        for part in section.split(".") if section else []:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            for key in sorted(set(map(str, node)) - known):
                where = f"{section}.{key}" if section else key
                findings.append(Finding("SOL017", f"unknown field {where}", "manifest.yaml"))


def _check_header(doc: Mapping[str, Any], path: str, findings: list[Finding]) -> None:
    if doc.get("apiVersion") != API_VERSION:
        findings.append(
            Finding(
                "SOL011", f"apiVersion must be {API_VERSION}, not {doc.get('apiVersion')!r}", path
            )
        )
    if doc.get("kind") != KIND:
        findings.append(Finding("SOL011", f"kind must be {KIND}, not {doc.get('kind')!r}", path))


def _check_images(
    spec: Mapping[str, Any],
    path: str,
    findings: list[Finding],
    archive_images: Sequence[str] | None,
) -> list[ImageRef]:
    images: list[ImageRef] = []
    raw_images = spec.get("images")
    if raw_images is None and archive_images is not None:
        # MetalK8s's _default_solution_manifest: every images/<name>/<tag>/ of the archive.
        raw_images = sorted(archive_images)
        findings.append(
            Finding(
                "SOL005",
                "spec.images is not declared: derived from the images/ tree, as MetalK8s does: "
                + (", ".join(raw_images) or "(none)"),
                path,
            )
        )
    if not isinstance(raw_images, list) or not raw_images:
        findings.append(Finding("SOL015", "spec.images must be a non-empty list", path))
        return images
    if len(raw_images) > MAX_IMAGES:
        findings.append(Finding("SOL015", f"more than {MAX_IMAGES} images", path))
        return images
    for item in raw_images:
        if isinstance(item, str) and item.startswith(":") and item.count(":") == 1:
            findings.append(
                Finding(
                    "SOL036",
                    f"spec.images entry {item!r} has no image name: ignored (MetalK8s's "
                    "example Makefile emits it for an undefined image variable)",
                    path,
                )
            )
            continue
        try:
            ref = parse_image_ref(item)
        except ManifestError as err:
            findings.append(Finding("SOL015", f"spec.images: {err}", path))
            continue
        if ref in images:
            findings.append(Finding("SOL015", f"spec.images lists {ref} twice", path))
        images.append(ref)
    if not images:
        findings.append(Finding("SOL015", "spec.images names no image", path))
    return images


def _image_ref(
    image: object, rule: str, where: str, not_a_map: str, path: str, findings: list[Finding]
) -> ImageRef | None:
    """The image ``{name, tag}`` at ``where`` in the manifest; None, with a finding of ``rule``,
    when it is not a mapping (the finding says ``where`` ``not_a_map``) or not a valid name."""
    if not isinstance(image, dict):
        findings.append(Finding(rule, f"{where} {not_a_map}", path))
        return None
    try:
        return parse_image_ref(f"{image.get('name')}:{image.get('tag')}")
    except ManifestError as err:
        findings.append(Finding(rule, f"{where}: {err}", path))
        return None


def _check_operator(
    spec: Mapping[str, Any],
    images: list[ImageRef],
    path: str,
    findings: list[Finding],
    default: ImageRef | None,
) -> ImageRef | None:
    """``spec.operator.image``; with ``default`` (a MetalK8s-format archive), a missing name or
    tag is derived from it as MetalK8s does (``<name>-operator:<version>``)."""
    operator = spec.get("operator")
    image = operator.get("image") if isinstance(operator, dict) else None
    if default is not None and (image is None or isinstance(image, dict)):
        given = {k: v for k, v in (image or {}).items() if v is not None}
        missing = [key for key in ("name", "tag") if key not in given]
        if missing:
            image = {"name": default.name, "tag": default.tag, **given}
            findings.append(
                Finding(
                    "SOL005",
                    f"spec.operator.image {' and '.join(missing)} not declared: "
                    f"{image['name']}:{image['tag']}, as MetalK8s derives it",
                    path,
                )
            )
    ref = _image_ref(
        image, "SOL016", "spec.operator.image", "{name, tag} is missing", path, findings
    )
    if ref is None:
        return None
    if images and ref not in images:
        findings.append(Finding("SOL016", f"operator image {ref} is not in spec.images", path))
    return ref


def _check_metrics(
    spec: Mapping[str, Any], path: str, findings: list[Finding]
) -> OperatorMetrics | None:
    operator = spec.get("operator")
    raw = operator.get("metrics") if isinstance(operator, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, dict):
        findings.append(Finding("SOL018", "spec.operator.metrics must be a mapping", path))
        return None
    defaults = OperatorMetrics()
    enabled = raw.get("enabled", defaults.enabled)
    scheme = raw.get("scheme", defaults.scheme)
    port = raw.get("port", DEFAULT_METRICS_PORTS.get(str(scheme), defaults.port))
    metrics_path = raw.get("path", defaults.path)
    problems = []
    if not isinstance(enabled, bool):
        problems.append(f"enabled must be true or false, not {enabled!r}")
    if scheme not in ("http", "https"):
        problems.append(f"scheme must be http or https, not {scheme!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(f"port must be a number from 1 to 65535, not {port!r}")
    if not isinstance(metrics_path, str) or not metrics_path.startswith("/"):
        problems.append(f"path must start with '/', not {metrics_path!r}")
    for problem in problems:
        findings.append(Finding("SOL018", f"spec.operator.metrics.{problem}", path))
    if problems:
        return None
    return OperatorMetrics(enabled, scheme, port, metrics_path)


def _check_ui(
    spec: Mapping[str, Any],
    default: ImageRef | None,
    images: list[ImageRef],
    path: str,
    findings: list[Finding],
) -> UiSpec | None:
    """``spec.ui``; its image defaults to ``<name>-ui:<version>``, as in MetalK8s."""
    raw = spec.get("ui")
    if raw is None:
        if default is not None and default in images:
            findings.append(
                Finding(
                    "SOL019",
                    f"spec.images lists {default}, the name MetalK8s gave a Solution's UI, but "
                    "spec.ui is not declared, so no UI is deployed; declare spec.ui (at least "
                    f"'ui: {{port: N}}') to deploy it",
                    path,
                    severity=Severity.WARNING,
                )
            )
        return None
    if not isinstance(raw, dict):
        findings.append(Finding("SOL019", "spec.ui must be a mapping", path))
        return None
    ref = default
    image = raw.get("image")
    if image is not None:
        ref = _image_ref(image, "SOL019", "spec.ui.image", "must be {name, tag}", path, findings)
        if ref is None:
            return None
    port = raw.get("port", DEFAULT_UI_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        findings.append(
            Finding("SOL019", f"spec.ui.port must be a number from 1 to 65535, not {port!r}", path)
        )
        return None
    if ref is None:  # no image given and no valid name/version to default it from
        findings.append(Finding("SOL019", "spec.ui.image {name, tag} is missing", path))
        return None
    if images and ref not in images:
        findings.append(
            Finding(
                "SOL019",
                f"the UI image {ref} is not in spec.images: list it (and ship it in images/) "
                "or remove spec.ui",
                path,
            )
        )
        return None
    return UiSpec(ref, port)


def _check_version(version: object, path: str, findings: list[Finding]) -> None:
    problem = version_problem(version)
    if problem is not None:
        findings.append(Finding("SOL013", f"spec.version {problem}", path))
    elif isinstance(version, str) and not is_semantic(version):
        # MetalK8s accepted any version: ordered the way it ordered them, with a warning.
        findings.append(
            Finding(
                "SOL013",
                f"spec.version {version!r} is not a semantic version: it is ordered against "
                "other versions the way MetalK8s ordered them (RPM-style segments, "
                "see 'How versions are ordered')",
                path,
                severity=Severity.WARNING,
            )
        )


def check_manifest(
    doc: object, archive_images: Sequence[str] | None = None
) -> tuple[SolutionManifest | None, list[Finding]]:
    """Every problem of a decoded manifest, and the model when there is no error.

    ``archive_images`` is given for a MetalK8s-format archive: the ``name:tag`` of each
    ``images/<name>/<tag>/`` directory.  The manifest then gets MetalK8s's defaults
    (``_default_solution_manifest``: ``spec.images`` from that tree, the operator image
    ``<name>-operator:<version>``) and the findings come at the MetalK8s-format severities.
    """
    path = "manifest.yaml"
    findings: list[Finding] = []
    if not isinstance(doc, dict):
        return None, [Finding("SOL010", "the manifest must be a YAML mapping", path)]
    if archive_images is None:
        return _check_manifest(doc, path, findings, None)
    manifest, findings = _check_manifest(doc, path, findings, archive_images)
    findings = for_metalk8s(findings)
    return (manifest if error_of(findings) is None else None), findings


def _check_manifest(
    doc: Mapping[str, Any],
    path: str,
    findings: list[Finding],
    archive_images: Sequence[str] | None,
) -> tuple[SolutionManifest | None, list[Finding]]:
    _check_header(doc, path, findings)
    metadata = doc.get("metadata")
    spec = doc.get("spec")
    if not isinstance(metadata, dict):
        findings.append(Finding("SOL011", "metadata must be a mapping", path))
        metadata = {}
    if not isinstance(spec, dict):
        findings.append(Finding("SOL011", "spec must be a mapping", path))
        spec = {}
    name = metadata.get("name")
    if not isinstance(name, str) or not DNS_LABEL.match(name):
        findings.append(
            Finding(
                "SOL012",
                f"metadata.name {name!r} is not a DNS label "
                "(1-63 of a-z, 0-9, '-', not starting or ending with '-')",
                path,
            )
        )
    annotations = _string_map(metadata.get("annotations"), "metadata.annotations", findings)
    labels = _string_map(metadata.get("labels"), "metadata.labels", findings)
    display = annotations.get(DISPLAY_NAME, "")
    if not display.strip():
        findings.append(Finding("SOL014", f"annotation {DISPLAY_NAME} is missing or empty", path))
    version = spec.get("version")
    _check_version(version, path, findings)
    named = (
        isinstance(name, str)
        and DNS_LABEL.match(name) is not None
        and isinstance(version, str)
        and IMAGE_TAG.match(version) is not None
    )
    images = _check_images(spec, path, findings, archive_images)
    default_operator = (
        ImageRef(f"{name}-operator", str(version)) if named and archive_images is not None else None
    )
    operator = _check_operator(spec, images, path, findings, default_operator)
    metrics = _check_metrics(spec, path, findings)
    default_ui = ImageRef(f"{name}-ui", str(version)) if named else None
    ui = _check_ui(spec, default_ui, images, path, findings)
    _unknown_fields(doc, findings)
    leveled = for_metalk8s(findings) if archive_images is not None else findings
    if operator is None or error_of(leveled) is not None:
        return None, findings
    assert isinstance(name, str) and isinstance(version, str)  # noqa: S101 - narrowed above
    manifest = SolutionManifest(
        name=name,
        version=version,
        images=tuple(images),
        operator_image=operator,
        display_name=display or name,
        annotations=annotations,
        labels=labels,
        operator_metrics=metrics,
        ui=ui,
    )
    return manifest, findings


def load_manifest(
    data: bytes, source: str = "manifest.yaml", archive_images: Sequence[str] | None = None
) -> tuple[SolutionManifest | None, list[Finding]]:
    """Decode and check manifest bytes; YAML problems become a SOL010 finding.
    ``archive_images``: see :func:`check_manifest`."""
    try:
        doc = load_yaml_document(data, source, max_bytes=MAX_MANIFEST_BYTES)
    except ManifestError as err:
        return None, [
            Finding("SOL010", str(err).removeprefix(f"SOL010 {source}: "), "manifest.yaml")
        ]
    return check_manifest(doc, archive_images)


def parse_manifest(
    data: bytes, source: str = "manifest.yaml", archive_images: Sequence[str] | None = None
) -> SolutionManifest:
    """The strict entry point: a valid manifest or ManifestError naming ``source`` and the rule.
    ``archive_images``: see :func:`check_manifest` (``archive.layout.read_manifest`` gives it for
    an archive)."""
    manifest, findings = load_manifest(data, source, archive_images)
    first = error_of(findings)
    if manifest is None or first is not None:
        assert first is not None  # noqa: S101 - a missing model always comes with an error
        raise ManifestError(f"{source}: {first.rule} {first.message}")
    return manifest


__all__ = [
    "API_VERSION",
    "DEFAULT_METRICS_PORTS",
    "KIND",
    "ImageRef",
    "OperatorMetrics",
    "Severity",
    "SolutionManifest",
    "UiSpec",
    "check_manifest",
    "load_manifest",
    "parse_image_ref",
    "parse_manifest",
]
