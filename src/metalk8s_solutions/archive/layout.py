"""The archive layout rules: which paths may exist, and which names are safe.

Two layouts are recognised.  Ours keeps all images in one OCI image layout under ``images/``
(shared layers stored once) with ``SHA256SUMS`` and ``signatures/``.  MetalK8s's keeps one
skopeo ``dir:`` per image under ``images/<image>/<tag>/`` and ships ``registry-config.inc.j2``;
it must still inspect, validate and import, as MetalK8s would: MetalK8s applies only
``operator/deploy/crds/*_crd.yaml`` (the 1.0.x ``operator.yaml``, ``role_binding.yaml``,
``service_account.yaml`` and sample ``*_cr.yaml`` files are never applied: SOL024), its
``mkisofs -rock`` names may be up to 255 characters (SOL025 beyond Joliet's 64), and its manifest
may leave out what MetalK8s derives (:func:`read_manifest`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

from metalk8s_solutions.api.findings import Finding
from metalk8s_solutions.api.manifest import SolutionManifest, parse_manifest
from metalk8s_solutions.api.streams import FileSource, read_limited

MAX_NAME = 255  # Rock Ridge
MAX_JOLIET_NAME = 64
MAX_MANIFEST = 1024 * 1024
CRD_DIR = "operator/deploy/crds/"
#: operator/deploy/ files MetalK8s never applies: the 1.0.x operator-sdk deploy files and the
#: sample custom resources beside the CRDs (MetalK8s applies only ``crds/*_crd.yaml``).
_NOT_APPLIED = re.compile(
    r"^operator/deploy/(?:(?:operator|role_binding|service_account)\.yaml|crds/[^/]+_cr\.ya?ml)$"
)
_SAMPLE = re.compile(r"^operator/deploy/crds/[^/]+_cr\.ya?ml$")
_DOCKER_DIR = re.compile(r"^images/([^/]+)/([^/]+)/[^/]+$")
MAX_DEPTH = 16
PORTABLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+=@-]*$")
HEX64 = "[0-9a-f]{64}"
_COMMON = (
    r"manifest\.yaml",
    _NOT_APPLIED.pattern[1:-1],
    r"operator/deploy/role\.yaml",
    r"operator/deploy/crds/[^/]+\.ya?ml",
    r"(monitoring|ui)/.+",
    r"SHA256SUMS",
    r"signatures/[0-9a-f]{16}\.sig",
)
SBOM = re.compile(rf"^sboms/sha256-({HEX64})\.spdx\.json$")  # one per image manifest
_OCI = (
    r"images/oci-layout",
    r"images/index\.json",
    rf"images/blobs/sha256/{HEX64}",
    SBOM.pattern[1:-1],
)
_METALK8S = (
    r"registry-config\.inc\.j2",
    r"product\.txt",  # MetalK8s 2.4 format (api/product.py)
    r"config\.yaml",
    rf"images/[^/]+/[^/]+/(manifest\.json|version|{HEX64}(\.tar)?)",
)


class Layout(enum.StrEnum):
    OCI = "oci"
    METALK8S = "metalk8s"


def _compile(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile("^(?:" + "|".join(patterns) + ")$")


_ALLOWED = {
    Layout.OCI: _compile((*_COMMON, *_OCI)),
    Layout.METALK8S: _compile((*_COMMON, *_METALK8S)),
}


def detect_layout(paths: Iterable[str]) -> Layout:
    """OCI when ``images/index.json`` is there, MetalK8s when a skopeo dir or its file is."""
    paths = set(paths)
    if "images/index.json" in paths or "images/oci-layout" in paths:
        return Layout.OCI
    if "registry-config.inc.j2" in paths or any(
        p.startswith("images/") and p.endswith("/manifest.json") for p in paths
    ):
        return Layout.METALK8S
    return Layout.OCI


def never_applied(path: str) -> bool:
    """Whether ``path`` is a file of ``operator/deploy/`` that is never applied (SOL024)."""
    return _NOT_APPLIED.match(path) is not None


def crd_samples(paths: Iterable[str]) -> list[str]:
    """The sample custom resources of an archive (``operator/deploy/crds/*_cr.yaml``, 1.0.x
    MetalK8s layout), sorted: never applied, offered as instance templates."""
    return sorted(p for p in paths if _SAMPLE.match(p))


def crd_files(paths: Iterable[str]) -> list[str]:
    """The CRD files of an archive (``operator/deploy/crds/*.yaml`` but the samples), sorted."""
    return sorted(
        p
        for p in paths
        if p.startswith(CRD_DIR)
        and "/" not in p[len(CRD_DIR) :]
        and p.endswith((".yaml", ".yml"))
        and not _SAMPLE.match(p)
    )


def docker_dir_images(paths: Iterable[str]) -> list[str]:
    """``name:tag`` of every ``images/<name>/<tag>/`` directory (a MetalK8s-format archive), as
    MetalK8s's ``list_solution_images`` lists them."""
    return sorted({f"{m[1]}:{m[2]}" for p in paths if (m := _DOCKER_DIR.match(p))})


def read_manifest(source: FileSource, label: str) -> SolutionManifest:
    """The manifest of an archive; for a MetalK8s-format one, with the fields MetalK8s derives
    (``spec.images`` from ``images/``, the operator image) and at its rules' severities."""
    files = source.files()
    data = read_limited(source, "manifest.yaml", MAX_MANIFEST)
    if detect_layout(files) is Layout.METALK8S:
        return parse_manifest(data, label, docker_dir_images(files))
    return parse_manifest(data, label)


def check_names(paths: Iterable[str], label: str = "") -> list[Finding]:
    """SOL021-SOL023 on a list of paths: escapes, case collisions, unportable names."""
    findings: list[Finding] = []
    folded: dict[str, str] = {}
    for path in paths:
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in path:
            findings.append(Finding("SOL021", "path escapes the archive root", path))
            continue
        if len(parts) > MAX_DEPTH:
            findings.append(Finding("SOL023", f"more than {MAX_DEPTH} levels deep", path))
        bad = next((p for p in parts if not PORTABLE_NAME.match(p) or len(p) > MAX_NAME), None)
        longest = max(parts, key=len)
        if bad is not None:
            findings.append(
                Finding(
                    "SOL023",
                    f"name {bad[:MAX_JOLIET_NAME]!r} must be 1-{MAX_NAME} of "
                    "A-Z a-z 0-9 . _ + = @ -",
                    path,
                )
            )
        elif len(longest) > MAX_JOLIET_NAME and not SBOM.match(path):
            findings.append(
                Finding(
                    "SOL025",
                    f"name of {len(longest)} characters: Joliet readers (Windows) see at most "
                    f"{MAX_JOLIET_NAME}; Rock Ridge readers see it whole",
                    path,
                )
            )
        key = path.casefold()
        if key in folded:
            findings.append(
                Finding("SOL022", f"collides with {folded[key]} on case-insensitive media", path)
            )
        else:
            folded[key] = path
    return findings


def check_layout(source: FileSource) -> tuple[Layout, list[Finding]]:
    """The layout of an archive and every breach of rules SOL020-SOL023."""
    files = source.files()
    layout = detect_layout(files)
    allowed = _ALLOWED[layout]
    findings: list[Finding] = [
        Finding("SOL021", f"{kind} entries are not allowed (only regular files)", path)
        for path, kind in sorted(source.special().items())
    ]
    findings.extend(check_names(files))
    for path in sorted(files):
        if never_applied(path):
            what = "a sample custom resource" if _SAMPLE.match(path) else "a 1.0.x deploy file"
            findings.append(
                Finding(
                    "SOL024",
                    f"{what}, never applied to the cluster (only the CRDs and role.yaml are): "
                    "ignored in a MetalK8s-format archive; leave it out of an archive you build",
                    path,
                )
            )
        elif not allowed.match(path):
            findings.append(Finding("SOL020", f"not part of the {layout} archive layout", path))
    return layout, findings
