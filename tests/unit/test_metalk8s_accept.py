"""Archive acceptance (issue 17 item 1): what MetalK8s accepts validates with warnings in its
format, and stays an error in a signed archive of ours; one rule table says both."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import CRD, metalk8s_archive
from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.findings import RULES, Finding, Severity, for_metalk8s
from metalk8s_solutions.api.manifest import ImageRef, check_manifest, parse_manifest
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.layout import (
    check_names,
    crd_files,
    crd_samples,
    docker_dir_images,
    read_manifest,
)
from metalk8s_solutions.engine.validate import ValidateOptions, ValidateResult, validate
from metalk8s_solutions.errors import ManifestError

XORRISO = shutil.which("xorriso")
ROOT = Path(__file__).resolve().parents[2]

#: The manifest MetalK8s's _default_solution_manifest completes: only a name and a version.
BARE_MANIFEST = b"""\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: Solution
metadata: {name: example-solution}
spec: {version: 1.0.0}
"""
#: The upstream example Makefile's manifest, with its empty UI image entry.
EMPTY_NAME_MANIFEST = b"""\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: Solution
metadata:
  name: example-solution
  annotations: {solutions.metalk8s.scality.com/display-name: Example Solution}
spec:
  version: 1.0.0
  images: [example-solution-operator:1.0.0, ':1.0.0', base-server:1.0.0]
  operator:
    image: {name: example-solution-operator, tag: 1.0.0}
"""
LONG_CRD = (
    "operator/deploy/crds/apiextensions.k8s.io_v1_customresourcedefinition_"
    "examples.metalk8s-solution-example.scality.com_crd.yaml"
)
SAMPLE = b"apiVersion: example.com/v1alpha1\nkind: Example\nmetadata: {name: example}\nspec: {}\n"
OPERATOR_1_0 = b"""\
apiVersion: apps/v1
kind: Deployment
metadata: {name: example-solution-operator}
spec:
  template:
    spec:
      containers: [{name: operator, image: REPLACE_IMAGE}]
"""
LAYOUT_1_0: dict[str, bytes | None] = {
    "manifest.yaml": EMPTY_NAME_MANIFEST,
    "operator/deploy/crds/example_crd.yaml": CRD.encode(),
    "operator/deploy/crds/example.yaml": None,
    "operator/deploy/crds/example_cr.yaml": SAMPLE,
    "operator/deploy/operator.yaml": OPERATOR_1_0,
    "operator/deploy/role_binding.yaml": b"kind: RoleBinding\n",
    "operator/deploy/service_account.yaml": b"kind: ServiceAccount\n",
}


def check(path: Path) -> ValidateResult:
    return validate(ValidateOptions(path, policy=Policy.DISABLED))


def by_level(result: ValidateResult, level: Severity) -> set[str]:
    return {f.rule for f in result.findings if f.level is level}


def extract(iso: Path, dest: Path) -> Path:
    with IsoReader(iso) as reader:
        for name in reader.files():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(reader.read_bytes(name))
    return dest


# -- the rule table -------------------------------------------------------------------------


def test_each_leniency_is_a_warning_for_metalk8s_and_an_error_for_ours() -> None:
    for rule in ("SOL005", "SOL024", "SOL025", "SOL036"):
        assert RULES[rule].severity is Severity.ERROR
        assert RULES[rule].metalk8s is Severity.WARNING
    # What breaks a cluster or hides tampering is an error in both formats.
    for rule in ("SOL021", "SOL023", "SOL031", "SOL040", "SOL050", "SOL071"):
        assert RULES[rule].metalk8s is Severity.ERROR
    assert RULES["SOL056"].severity is RULES["SOL056"].metalk8s is Severity.WARNING


def test_for_metalk8s_keeps_a_policy_severity() -> None:
    explicit = Finding("SOL070", "missing", severity=Severity.ERROR)
    leveled = for_metalk8s([Finding("SOL024", "x"), explicit, Finding("SOL021", "y")])
    assert [f.level for f in leveled] == [Severity.WARNING, Severity.ERROR, Severity.ERROR]


def test_the_rules_page_shows_both_columns() -> None:
    page = (ROOT / "docs" / "developer" / "validation-rules.md").read_text()
    rows = {
        m[1]: (m[2], m[3])
        for m in re.finditer(r"^\| \[(SOL\d{3})\]\(#sol\d{3}\) \| (\w+) \| (\w+) \|", page, re.M)
    }
    assert rows == {r.id: (str(r.severity), str(r.metalk8s)) for r in RULES.values()}


# -- manifest defaults (_default_solution_manifest) ---------------------------------------


def test_bare_manifest_gets_metalk8s_defaults() -> None:
    tree = ["base-server:1.0.0", "example-solution-operator:1.0.0"]
    manifest = parse_manifest(BARE_MANIFEST, archive_images=tree)
    assert manifest.images == (
        ImageRef("base-server", "1.0.0"),
        ImageRef("example-solution-operator", "1.0.0"),
    )
    assert manifest.operator_image == ImageRef("example-solution-operator", "1.0.0")
    _, findings = check_manifest(yaml.safe_load(BARE_MANIFEST), tree)
    derived = [f for f in findings if f.rule == "SOL005"]
    assert len(derived) == 2 and all(f.level is Severity.WARNING for f in derived)
    assert "base-server:1.0.0" in derived[0].message or "base-server:1.0.0" in derived[1].message


def test_bare_manifest_partial_operator_image_is_completed() -> None:
    doc = {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "Solution",
        "metadata": {"name": "sol"},
        "spec": {"version": "2.0.0", "operator": {"image": {"name": "my-operator"}}},
    }
    manifest, findings = check_manifest(doc, ["my-operator:2.0.0"])
    assert manifest is not None and manifest.operator_image == ImageRef("my-operator", "2.0.0")
    assert any("tag not declared" in f.message for f in findings)


def test_bare_manifest_stays_an_error_in_our_format() -> None:
    with pytest.raises(ManifestError, match="SOL015"):
        parse_manifest(BARE_MANIFEST)


def test_empty_image_name_is_ignored_with_a_warning_in_metalk8s_format() -> None:
    manifest = parse_manifest(EMPTY_NAME_MANIFEST, archive_images=[])
    assert [str(i) for i in manifest.images] == [
        "example-solution-operator:1.0.0",
        "base-server:1.0.0",
    ]
    with pytest.raises(ManifestError, match="SOL036"):
        parse_manifest(EMPTY_NAME_MANIFEST)


# -- names and files MetalK8s never applies ----------------------------------------------


def test_long_rock_ridge_names_pass_unportable_ones_do_not() -> None:
    long_name = "a" * 110 + "_crd.yaml"
    findings = check_names([f"operator/deploy/crds/{long_name}"])
    assert [f.rule for f in findings] == ["SOL025"]
    for bad in ("a" * 256, "bad\tname", "bad name", "-x", "caf\u00e9"):
        assert [f.rule for f in check_names([f"ui/{bad}"])] == ["SOL023"], bad
        # An unportable name after a long one is still an error.
        assert [f.rule for f in check_names([f"ui/{'l' * 100}/{bad}"])] == ["SOL023"], bad


def test_sample_and_crd_files_are_told_apart() -> None:
    paths = [
        "operator/deploy/crds/a_crd.yaml",
        "operator/deploy/crds/a_cr.yaml",
        "operator/deploy/crds/b_cr.yml",
        "operator/deploy/crds/plain.yaml",
        "operator/deploy/operator.yaml",
        "images/x/1.0/manifest.json",
    ]
    assert crd_samples(paths) == ["operator/deploy/crds/a_cr.yaml", "operator/deploy/crds/b_cr.yml"]
    assert crd_files(paths) == [
        "operator/deploy/crds/a_crd.yaml",
        "operator/deploy/crds/plain.yaml",
    ]
    assert docker_dir_images(paths) == ["x:1.0"]


def test_upstream_1_0_layout_validates_with_warnings(tmp_path: Path) -> None:
    iso = metalk8s_archive(tmp_path, files=LAYOUT_1_0)
    result = check(iso)
    assert result.valid, [str(f) for f in result.findings]
    assert {"SOL024", "SOL036"} <= by_level(result, Severity.WARNING)
    flagged = {f.path for f in result.findings if f.rule == "SOL024"}
    assert flagged == {
        "operator/deploy/crds/example_cr.yaml",
        "operator/deploy/operator.yaml",
        "operator/deploy/role_binding.yaml",
        "operator/deploy/service_account.yaml",
    }
    with IsoReader(iso) as reader:
        manifest = read_manifest(reader, str(iso))
    assert ":1.0.0" not in [str(i) for i in manifest.images]


def test_bare_manifest_without_role_validates_with_warnings(tmp_path: Path) -> None:
    iso = metalk8s_archive(
        tmp_path, files={"manifest.yaml": BARE_MANIFEST, "operator/deploy/role.yaml": None}
    )
    result = check(iso)
    assert result.valid, [str(f) for f in result.findings]
    assert {"SOL005", "SOL056"} <= by_level(result, Severity.WARNING)
    assert result.report.manifest is not None
    assert str(result.report.manifest.operator_image) == "example-solution-operator:1.0.0"


def test_long_crd_name_in_a_metalk8s_archive_directory(tmp_path: Path) -> None:
    root = extract(metalk8s_archive(tmp_path), tmp_path / "x")
    (root / "operator/deploy/crds/example.yaml").rename(root / LONG_CRD)
    result = check(root)
    assert result.valid, [str(f) for f in result.findings]
    assert "SOL025" in by_level(result, Severity.WARNING)


@pytest.mark.skipif(XORRISO is None, reason="xorriso is not installed")
def test_long_rock_ridge_name_in_an_upstream_built_iso(tmp_path: Path) -> None:
    root = extract(metalk8s_archive(tmp_path), tmp_path / "x")
    (root / "operator/deploy/crds/example.yaml").rename(root / LONG_CRD)
    iso = tmp_path / "upstream.iso"
    subprocess.run(
        [
            *(str(XORRISO), "-as", "mkisofs", "-rock", "-joliet", "-joliet-long"),
            *("-full-iso9660-filenames", "-iso-level", "3", "-o", str(iso), str(root)),
        ],
        check=True,
        capture_output=True,
    )
    result = check(iso)
    assert result.valid, [str(f) for f in result.findings]
    assert any(f.path == LONG_CRD and f.rule == "SOL025" for f in result.findings)


def test_the_same_leniencies_are_errors_in_our_format(
    built_archive: Callable[[], Path],
) -> None:
    iso = built_archive()
    root = extract(iso, iso.parent / "x")
    (root / "operator/deploy/operator.yaml").write_bytes(OPERATOR_1_0)
    (root / "operator/deploy/crds/example_cr.yaml").write_bytes(SAMPLE)
    (root / "operator/deploy/crds/example.yaml").rename(root / LONG_CRD)
    text = (root / "manifest.yaml").read_text()
    (root / "manifest.yaml").write_text(text.replace("[base-server", "[':1.0.0', base-server"))
    result = check(root)
    assert {"SOL024", "SOL025", "SOL036"} <= by_level(result, Severity.ERROR)


def test_activation_reads_the_crds_never_the_samples(tmp_path: Path) -> None:
    from metalk8s_solutions.engine.converge import archive_crds  # noqa: PLC0415

    broken_sample = b"apiVersion: example.com/v1alpha1\nkind: Example\nspec: [\n"
    iso = metalk8s_archive(tmp_path, files={"operator/deploy/crds/example_cr.yaml": broken_sample})
    assert check(iso).valid
    assert [d["metadata"]["name"] for d in archive_crds(iso)] == ["examples.example.com"]
