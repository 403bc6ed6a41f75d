"""The OCI distribution-spec conformance suite, pull workflow, against the built-in registry.

The suite is built once from its Go module, pinned in ``tests/conformance/go.mod`` and
``go.sum``, into ``${XDG_CACHE_HOME:-~/.cache}/metalk8s-solutions/bin/`` in the folder
``conformance-<version>-<hash>/`` (the hash covers the pins, so changing them rebuilds it).

Our registry is read-only, so the suite runs in its read-only mode: ``OCI_API_PUSH=false`` and
the content to pull named by ``OCI_RO_DATA_TAGS``, ``OCI_RO_DATA_MANIFESTS``,
``OCI_RO_DATA_BLOBS`` and ``OCI_RO_DATA_REFERRERS`` (the images of an imported archive).  Every
push and delete test is then reported "Disabled" by the suite itself.

The pinned suite dereferences a nil pointer when it writes its report after a run with push
disabled (the "sha256 blobs" group records a data status for test data it never created), so
each group of pull tests runs on its own with ``OCI_FILTER_TEST``, which leaves that group out.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import metalk8s_archive
from go_tools import go_tool
from metalk8s_solutions.engine.registry import RunningRegistry, ServeOptions, registry_in_thread
from metalk8s_solutions.images.catalog import SolutionImages, load_catalog

MODULE_DIR = Path(__file__).resolve().parent.parent / "conformance"
PACKAGE = "github.com/opencontainers/distribution-spec/conformance"
#: the groups of the suite that apply to a registry without push (see the module docstring)
PULL_GROUPS = ("ping", "empty", "read-only", "missing-manifest", "invalid-digest-format")

pytestmark = pytest.mark.timeout(300)


def suite_version() -> str:
    match = re.search(rf"^\s*{re.escape(PACKAGE)} (\S+)", (MODULE_DIR / "go.mod").read_text(), re.M)
    assert match, "tests/conformance/go.mod does not require the conformance module"
    return match.group(1)


def suite_binary() -> Path:
    """The conformance binary, built from the pinned module when not cached yet."""
    return go_tool("conformance", PACKAGE, "conformance", suite_version())


@pytest.fixture(scope="module")
def conformance() -> Path:
    return suite_binary()


def serve(config: Path) -> Iterator[RunningRegistry]:
    with registry_in_thread(ServeOptions(config, listen="127.0.0.1:0")) as registry:
        yield registry


def run_pull_suite(
    binary: Path, registry: RunningRegistry, catalog: SolutionImages, results: Path
) -> dict[str, str]:
    """Run every pull group against the first two repositories; returns test -> status."""
    image, tag, digest = next(catalog.image_refs())
    repo1, repo2 = catalog.repositories()[:2]
    repository = f"{catalog.solution_id}/{image}"
    assert repository == repo1
    blobs = sorted(d for d in catalog.blobs if d in catalog.repository_blobs[image] and d != digest)
    statuses: dict[str, str] = {}
    for group in PULL_GROUPS:
        env = dict(
            os.environ,
            OCI_REGISTRY=registry.address,
            OCI_TLS="insecure" if registry.scheme == "https" else "disabled",
            OCI_REPO1=repo1,
            OCI_REPO2=repo2,
            OCI_API_PUSH="false",
            OCI_API_BLOBS_DELETE="false",
            OCI_API_MANIFESTS_DELETE="false",
            OCI_API_TAGS_DELETE="false",
            OCI_RO_DATA_TAGS=tag,
            OCI_RO_DATA_MANIFESTS=digest,
            OCI_RO_DATA_BLOBS=" ".join(blobs),
            OCI_RO_DATA_REFERRERS=digest,
            OCI_FILTER_TEST=f"OCI Conformance Test/{group}",
            OCI_RESULTS_DIR=str(results / group),
        )
        result = subprocess.run(
            [str(binary)],
            env=env,
            cwd=results,  # no oci-conformance.yaml there: the environment is the configuration
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{group}:\n{result.stdout}\n{result.stderr}"
        report = result.stdout.split("Test results", 1)[1].split("\n\n", 1)[0]
        for line in report.strip().splitlines():
            name, _, status = line.strip().rpartition(": ")
            statuses[name] = status
        assert re.search(r"FAIL\.*:\s+0\b", result.stdout), result.stdout
        assert re.search(r"Error\.*:\s+0\b", result.stdout), result.stdout
    return statuses


def check_statuses(statuses: dict[str, str]) -> None:
    ran = {name: s for name, s in statuses.items() if s != "Disabled"}
    assert all(s == "Pass" for s in ran.values()), ran
    # the pull workflow was exercised, not filtered away
    for name in (
        "OCI Conformance Test/ping",
        "OCI Conformance Test/read-only/pull/manifest-by-tag",
        "OCI Conformance Test/read-only/pull/manifest-by-digest",
        "OCI Conformance Test/read-only/pull/blob-get",
        "OCI Conformance Test/read-only/head/manifest-head-by-tag",
        "OCI Conformance Test/read-only/head/blob-head",
        "OCI Conformance Test/read-only/tag-list",
        "OCI Conformance Test/missing-manifest/by-digest",
        "OCI Conformance Test/invalid-digest-format/manifest-get",
    ):
        assert statuses.get(name) == "Pass", (name, statuses)
    # what the suite turns off for a read-only registry: pushes and deletes only
    disabled = {name.split("/")[-1] for name, s in statuses.items() if s == "Disabled"}
    assert disabled <= {
        "push",
        "manifest-by-digest",
        "manifest-by-tag",
        "delete",
        "manifest-delete",
        "blob-delete",
        "manifest-put",
    }, disabled


def write_config(path: Path, archive: Path) -> Path:
    path.write_text(yaml.safe_dump({"archives": [str(archive)]}))
    return path


def test_conformance_pull_oci_layout_archive(
    conformance: Path, built_archive: Callable[[], Path], tmp_path: Path
) -> None:
    iso = built_archive()
    config = write_config(tmp_path / "solutions.yaml", iso)
    for registry in serve(config):
        check_statuses(run_pull_suite(conformance, registry, load_catalog(iso), tmp_path))


def test_conformance_pull_metalk8s_layout_archive(conformance: Path, tmp_path: Path) -> None:
    iso = metalk8s_archive(tmp_path)
    config = write_config(tmp_path / "solutions.yaml", iso)
    for registry in serve(config):
        check_statuses(run_pull_suite(conformance, registry, load_catalog(iso), tmp_path))
