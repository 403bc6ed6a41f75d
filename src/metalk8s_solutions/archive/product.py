"""Reading a MetalK8s 2.4 archive (``product.txt``, no ``manifest.yaml``) as a Solution.

The pure rules are in :mod:`metalk8s_solutions.api.product`; here they meet the archive's files:
``product.txt``, the optional ``config.yaml`` and the ``images/<image>/<tag>/`` directories.
:func:`read_solution_manifest` and :func:`operator_roles` are what every reader of an archive
calls, whichever format it is in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from metalk8s_solutions.api.findings import Finding, error_of
from metalk8s_solutions.api.manifest import SolutionManifest
from metalk8s_solutions.api.product import (
    CONFIG_PATH,
    MAX_CONFIG_BYTES,
    MAX_PRODUCT_BYTES,
    PRODUCT_PATH,
    ProductSolution,
    load_product,
)
from metalk8s_solutions.api.streams import FileSource, read_limited
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.layout import read_manifest
from metalk8s_solutions.errors import ArchiveError, ManifestError

MANIFEST_PATH = "manifest.yaml"
ROLE_PATH = "operator/deploy/role.yaml"
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_ROLE_BYTES = 4 * 1024 * 1024
_IMAGE_DIR = re.compile(r"^images/([^/]+)/([^/]+)/manifest\.json$")


def is_product_archive(paths: Iterable[str]) -> bool:
    """A MetalK8s 2.4 archive: ``product.txt`` and no ``manifest.yaml``."""
    paths = set(paths)
    return PRODUCT_PATH in paths and MANIFEST_PATH not in paths


def image_dirs(paths: Iterable[str]) -> list[str]:
    """``name:tag`` of every ``images/<name>/<tag>/`` image (``list_solution_images``)."""
    return sorted({f"{m[1]}:{m[2]}" for p in paths if (m := _IMAGE_DIR.match(p))})


def load_product_solution(source: FileSource) -> tuple[ProductSolution | None, list[Finding]]:
    """The Solution of a MetalK8s 2.4 archive and every problem of its ``product.txt`` and
    ``config.yaml``."""
    files = source.files()
    try:
        product = read_limited(source, PRODUCT_PATH, MAX_PRODUCT_BYTES)
        config = (
            read_limited(source, CONFIG_PATH, MAX_CONFIG_BYTES) if CONFIG_PATH in files else None
        )
    except ArchiveError as err:
        return None, [Finding("SOL100", str(err), PRODUCT_PATH)]
    return load_product(product, config, image_dirs(files))


def _product_solution(source: FileSource, label: str) -> ProductSolution:
    solution, findings = load_product_solution(source)
    first = error_of(findings)
    if solution is None or first is not None:
        assert first is not None  # noqa: S101 - a missing model always comes with an error
        raise ManifestError(f"{label}: {first.rule} {first.path}: {first.message}")
    return solution


def read_solution_manifest(source: FileSource, label: str) -> SolutionManifest:
    """The manifest of an archive: ``manifest.yaml``, or the one derived from a MetalK8s 2.4
    archive's ``product.txt`` and ``config.yaml``; ManifestError naming ``label`` otherwise."""
    if is_product_archive(source.files()):
        return _product_solution(source, label).manifest
    return read_manifest(source, label)


def operator_roles(source: FileSource, label: str) -> list[Any]:
    """The Role and ClusterRole documents granted to the operator: ``role.yaml``'s (none when
    absent) or, for a MetalK8s 2.4 archive, the Role MetalK8s 2.4 generated (its ``role.yaml``,
    if any, was never used)."""
    files = source.files()
    if is_product_archive(files):
        return list(_product_solution(source, label).roles)
    if ROLE_PATH not in files:
        return []
    data = read_limited(source, ROLE_PATH, MAX_ROLE_BYTES)
    return load_yaml_documents(data, f"{label}:role.yaml")
