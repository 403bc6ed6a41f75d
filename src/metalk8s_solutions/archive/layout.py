"""The archive layout rules: which paths may exist, and which names are safe.

Two layouts are recognised.  Ours keeps all images in one OCI image layout under ``images/``
(shared layers stored once) with ``SHA256SUMS`` and ``signatures/``.  MetalK8s's keeps one
skopeo ``dir:`` per image under ``images/<image>/<tag>/`` and ships ``registry-config.inc.j2``;
it must still inspect, validate and import.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

from metalk8s_solutions.api.findings import Finding
from metalk8s_solutions.api.streams import FileSource

MAX_NAME = 64
MAX_DEPTH = 16
PORTABLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+=@-]*$")
HEX64 = "[0-9a-f]{64}"
_COMMON = (
    r"manifest\.yaml",
    r"operator/deploy/role\.yaml",
    r"operator/deploy/crds/[^/]+\.ya?ml",
    r"(monitoring|ui)/.+",
    r"SHA256SUMS",
    r"signatures/[0-9a-f]{16}\.sig",
)
_OCI = (r"images/oci-layout", r"images/index\.json", rf"images/blobs/sha256/{HEX64}")
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
        for part in parts:
            if not PORTABLE_NAME.match(part) or len(part) > MAX_NAME:
                findings.append(
                    Finding(
                        "SOL023",
                        f"name {part[:MAX_NAME]!r} must be 1-{MAX_NAME} of A-Z a-z 0-9 . _ + = @ -",
                        path,
                    )
                )
                break
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
    findings.extend(
        Finding("SOL020", f"not part of the {layout} archive layout", path)
        for path in sorted(files)
        if not allowed.match(path)
    )
    return layout, findings
