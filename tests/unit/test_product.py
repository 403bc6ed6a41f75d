"""MetalK8s 2.4-format archives: ``product.txt``, optional ``config.yaml`` (SolutionConfig) and the
operator Role MetalK8s 2.4 generated from ``customApiGroups``."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from conftest import CRD
from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.api.product import (
    load_product,
    machine_name,
    operator_role,
    parse_product_txt,
)
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.product import operator_roles, read_solution_manifest
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.validate import ValidateOptions, validate
from metalk8s_solutions.errors import ManifestError

PRODUCT = b"""\
NAME=Example Solution
VERSION=1.0.0-dev
SHORT_VERSION=1-0
GIT=1.0.0-dev-0-g853a48f
DEVELOPMENT_RELEASE=1
BUILD_TIMESTAMP=2020-03-02T10:00:00Z
BUILD_HOST=builder
"""
CONFIG = b"""\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: SolutionConfig
customApiGroups:
  - example-solution.metalk8s.scality.com
"""
IMAGES = (
    "base-server:1.0.0-dev",
    "example-solution-operator:1.0.0-dev",
    "example-solution-ui:1.0.0-dev",
)


def docker_dir(ref: str) -> dict[str, bytes]:
    """One skopeo ``dir:`` image (Docker v2s2) at ``images/<name>/<tag>/``."""
    name, tag = ref.split(":")
    layer, config = f"layer of {ref}".encode(), b'{"os":"linux","architecture":"amd64"}'
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                "size": len(layer),
            }
        ],
    }
    base = f"images/{name}/{tag}"
    return {
        f"{base}/manifest.json": json.dumps(manifest).encode(),
        f"{base}/version": b"Directory Transport Version: 1.1\n",
        f"{base}/{hashlib.sha256(config).hexdigest()}": config,
        f"{base}/{hashlib.sha256(layer).hexdigest()}": layer,
    }


def product_archive(
    tmp_path: Path, *, config: bytes | None = CONFIG, product: bytes = PRODUCT
) -> Path:
    """A MetalK8s 2.4-format archive as its Makefile laid it out (no manifest.yaml)."""
    files = {
        "product.txt": product,
        "registry-config.inc.j2": b"{# registry #}\n",
        "operator/deploy/crds/example.yaml": CRD.encode(),
        "operator/deploy/role.yaml": b"kind: Role\napiVersion: rbac.authorization.k8s.io/v1\n"
        b"metadata: {name: example-solution-operator}\nrules: []\n",
    }
    if config is not None:
        files["config.yaml"] = config
    for ref in IMAGES:
        files.update(docker_dir(ref))
    iso = tmp_path / "product.iso"
    write_iso(
        iso,
        [IsoFile(p, len(d), (lambda d=d: io.BytesIO(d))) for p, d in files.items()],
        volume_id="Example Solution 1.0.0-dev",
        epoch=0,
    )
    return iso


def test_product_txt_is_shell_style_key_value() -> None:
    values, findings = parse_product_txt(b'# c\nNAME="My Sol"\nVERSION=2.0\nNAME=Other\nbad line\n')
    assert findings == []
    assert values == {"NAME": "My Sol", "VERSION": "2.0"}
    assert machine_name(values["NAME"]) == "my-sol"


@pytest.mark.parametrize("data", [b"VERSION=1.0.0\n", b"NAME=x\n", b"NAME=\nVERSION=1\n", b"\xff"])
def test_product_txt_without_name_or_version_is_sol100(data: bytes) -> None:
    _, findings = parse_product_txt(data)
    assert findings and {f.rule for f in findings} == {"SOL100"}
    assert all(f.level is Severity.ERROR for f in findings)


def test_defaults_without_config_yaml() -> None:
    solution, findings = load_product(PRODUCT, None, IMAGES)
    assert solution is not None, findings
    manifest = solution.manifest
    assert (manifest.name, manifest.version) == ("example-solution", "1.0.0-dev")
    assert manifest.display_name == "Example Solution"
    assert str(manifest.operator_image) == "example-solution-operator:1.0.0-dev"
    assert sorted(map(str, manifest.images)) == sorted(IMAGES)
    assert manifest.ui is not None and str(manifest.ui.image) == "example-solution-ui:1.0.0-dev"
    assert manifest.ui.port == 80
    assert manifest.annotations["solutions.metalk8s.scality.com/git-revision"] == (
        "1.0.0-dev-0-g853a48f"
    )
    assert solution.custom_api_groups == ()
    assert [f.rule for f in findings] == ["SOL102"]
    assert findings[0].level is Severity.WARNING
    assert "MetalK8s 2.4 format" in findings[0].message


def test_config_yaml_overrides_merge_over_the_defaults() -> None:
    config = CONFIG + b"operator: {image: {tag: custom}}\nui: {image: {name: none}}\n"
    images = (*IMAGES, "example-solution-operator:custom")
    solution, findings = load_product(PRODUCT, config, images)
    assert solution is not None, findings
    assert str(solution.manifest.operator_image) == "example-solution-operator:custom"
    assert solution.manifest.ui is None  # none:1.0.0-dev is not shipped
    assert solution.custom_api_groups == ("example-solution.metalk8s.scality.com",)


@pytest.mark.parametrize(
    "config",
    [
        b"kind: Other\napiVersion: solutions.metalk8s.scality.com/v1alpha1\n",
        CONFIG.replace(b"example-solution.metalk8s.scality.com", b"'*'"),
        CONFIG.replace(b"example-solution.metalk8s.scality.com", b"''"),
        CONFIG.replace(b"example-solution.metalk8s.scality.com", b"rbac.authorization.k8s.io"),
        CONFIG.replace(b"example-solution.metalk8s.scality.com", b"apps"),
        CONFIG + b"operator: {image: {name: [x]}}\n",
        b"[not: a mapping",
    ],
)
def test_bad_config_yaml_is_sol101(config: bytes) -> None:
    solution, findings = load_product(PRODUCT, config, IMAGES)
    assert solution is None
    assert "SOL101" in {f.rule for f in findings if f.level is Severity.ERROR}, findings


def test_unknown_config_field_is_a_warning() -> None:
    solution, findings = load_product(PRODUCT, CONFIG + b"extra: 1\n", IMAGES)
    assert solution is not None
    assert [f.rule for f in findings if f.rule == "SOL101"] == ["SOL101"]
    assert all(f.level is Severity.WARNING for f in findings)


def test_missing_operator_image_is_an_error() -> None:
    solution, findings = load_product(PRODUCT, None, ("base-server:1.0.0-dev",))
    assert solution is None
    assert "SOL016" in {f.rule for f in findings}
    assert all(f.path == "product.txt" for f in findings)


def test_generated_role_is_metalk8s_2_4s_template() -> None:
    role = operator_role("example-solution", ["example-solution.metalk8s.scality.com"])
    assert role["kind"] == "Role"
    assert role["metadata"]["name"] == "example-solution-operator"
    rules = role["rules"]
    assert rules[0] == {
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
    }
    assert rules[1]["apiGroups"] == ["apps"] and rules[1]["verbs"] == ["*"]
    assert rules[2] == {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["servicemonitors"],
        "verbs": ["get", "create"],
    }
    assert rules[3]["resourceNames"] == ["example-solution-operator"]
    assert rules[3]["resources"] == ["deployments/finalizers"]
    assert rules[4] == {
        "apiGroups": ["example-solution.metalk8s.scality.com"],
        "resources": ["*"],
        "verbs": ["*"],
    }
    assert len(operator_role("s")["rules"]) == 4  # no customApiGroups: no fifth rule


def test_a_2_4_archive_validates_with_warnings_only(tmp_path: Path) -> None:
    result = validate(ValidateOptions(product_archive(tmp_path)))
    errors = [f for f in result.findings if f.level is Severity.ERROR]
    assert errors == []
    assert result.report.manifest is not None
    assert result.report.manifest.id == "example-solution-1.0.0-dev"
    sol102 = [f for f in result.findings if f.rule == "SOL102"]
    assert {f.path for f in sol102} == {"product.txt", "operator/deploy/role.yaml"}


def test_a_2_4_archive_reads_as_a_manifest_and_the_generated_role(tmp_path: Path) -> None:
    with IsoReader(product_archive(tmp_path)) as iso:
        assert read_solution_manifest(iso, "a.iso").id == "example-solution-1.0.0-dev"
        roles = operator_roles(iso, "a.iso")
    assert roles == [operator_role("example-solution", ["example-solution.metalk8s.scality.com"])]


def test_a_broken_2_4_archive_is_one_clear_error(tmp_path: Path) -> None:
    iso_path = product_archive(tmp_path, product=b"NAME=Example Solution\n")
    with IsoReader(iso_path) as iso, pytest.raises(ManifestError, match=r"SOL100 product\.txt"):
        read_solution_manifest(iso, "a.iso")
    result = validate(ValidateOptions(iso_path))
    assert "SOL100" in {f.rule for f in result.findings if f.level is Severity.ERROR}


def test_inspect_shows_the_derived_manifest_and_the_generated_role(tmp_path: Path) -> None:
    from metalk8s_solutions.engine.inspect import InspectOptions, inspect  # noqa: PLC0415

    data = inspect(InspectOptions(product_archive(tmp_path))).data
    assert data["id"] == "example-solution-1.0.0-dev"
    assert data["problems"] == []
    # the generated Role (five rules), not the unused role.yaml of the archive (none)
    assert data["roles"] == [{"kind": "Role", "name": "example-solution-operator", "rules": 5}]
