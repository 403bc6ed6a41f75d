"""``solutions diff``: each differ on hand-written documents, and one archive pair written in
place (SBOMs at ``sboms/sha256-<hex>.spdx.json``) read end to end."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CRD, MANIFEST, ROLE, SHARED_LAYER, make_source, write_oci_layout
from metalk8s_solutions.api.manifest import ImageRef, OperatorMetrics, SolutionManifest
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.cli.diff import diff_text
from metalk8s_solutions.engine.diff import (
    NO_SBOM,
    DiffOptions,
    derived_rights,
    diff_archives,
    diff_blobs,
    diff_crds,
    diff_images,
    diff_manifest,
    diff_packages,
    diff_rbac,
    purl_key,
    role_grants,
    schema_fields,
    spdx_packages,
)
from metalk8s_solutions.errors import ArchiveError
from metalk8s_solutions.images.oci import ImageInfo

# -- packages ----------------------------------------------------------------------------------


def spdx(*packages: tuple[str, str, str | None]) -> dict[str, Any]:
    """An SPDX 2.3 document describing an image and holding ``(name, version, purl)``s."""
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "image",
        "documentNamespace": "https://example.com/spdx/image",
        "documentDescribes": ["SPDXRef-image"],
        "packages": [
            {
                "SPDXID": "SPDXRef-image",
                "name": "base-server",
                "versionInfo": "1.0.0",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": "pkg:oci/base-server@sha256%3Aabc",
                    }
                ],
            },
            *(
                {
                    "SPDXID": f"SPDXRef-{i}",
                    "name": name,
                    "versionInfo": version,
                    **(
                        {
                            "externalRefs": [
                                {
                                    "referenceCategory": "PACKAGE-MANAGER",
                                    "referenceType": "purl",
                                    "referenceLocator": purl,
                                }
                            ]
                        }
                        if purl
                        else {}
                    ),
                }
                for i, (name, version, purl) in enumerate(packages)
            ),
        ],
    }


def test_purl_keys_distribution_packages_by_name_and_others_by_their_full_name() -> None:
    assert purl_key("pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12") == ("deb", "libc6")
    assert purl_key("pkg:apk/alpine/musl@1.2.4-r2") == ("apk", "musl")
    assert purl_key("pkg:pypi/kopf@1.37.2") == ("pypi", "kopf")
    assert purl_key("pkg:npm/%40types/node@20.1.0") == ("npm", "@types/node")
    assert purl_key("pkg:golang/golang.org/x/net@v0.17.0") == ("golang", "golang.org/x/net")
    assert purl_key("cpe:2.3:a:x") is None


def test_spdx_packages_leave_out_the_image_and_key_by_purl() -> None:
    doc = spdx(
        ("libc6", "2.36-9", "pkg:deb/debian/libc6@2.36-9?arch=amd64"),
        ("kopf", "1.37.2", "pkg:pypi/kopf@1.37.2"),
        ("no-purl", "3", None),
    )
    assert spdx_packages(doc, "x") == {
        ("deb", "libc6"): "2.36-9",
        ("pypi", "kopf"): "1.37.2",
        ("other", "no-purl"): "3",
    }
    with pytest.raises(ArchiveError, match="neither an SPDX nor a CycloneDX JSON document"):
        spdx_packages({"bomFormat": "CycloneDX"}, "sboms/x.spdx.json")


def test_cyclonedx_components_are_read_the_same_way() -> None:
    from metalk8s_solutions.engine.diff import sbom_packages  # noqa: PLC0415

    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "metadata": {"component": {"type": "container", "name": "base-server"}},
        "components": [
            {
                "type": "library",
                "name": "libc6",
                "version": "2.36-9",
                "purl": "pkg:deb/debian/libc6@2.36-9",
            },
            {
                "type": "application",
                "name": "app",
                "version": "1",
                "components": [
                    {
                        "type": "library",
                        "name": "kopf",
                        "version": "1.37.2",
                        "purl": "pkg:pypi/kopf@1.37.2",
                    }
                ],
            },
            {"type": "container", "name": "img", "purl": "pkg:oci/img@sha256%3Aab"},
        ],
    }
    assert sbom_packages(doc, "x") == {
        ("deb", "libc6"): "2.36-9",
        ("other", "app"): "1",
        ("pypi", "kopf"): "1.37.2",
    }
    assert sbom_packages(spdx(("kopf", "1.37.2", "pkg:pypi/kopf@1.37.2")), "y") == {
        ("pypi", "kopf"): "1.37.2"
    }


def test_package_diff_upgraded_downgraded_added_removed() -> None:
    before = spdx_packages(
        spdx(
            ("libc6", "2.36-9", "pkg:deb/debian/libc6@2.36-9"),
            ("openssl", "3.0.11-1", "pkg:deb/debian/openssl@3.0.11-1"),
            ("kopf", "1.37.2", "pkg:pypi/kopf@1.37.2"),
            ("curl", "7.88.1-10", "pkg:deb/debian/curl@7.88.1-10"),
        ),
        "a",
    )
    after = spdx_packages(
        spdx(
            ("libc6", "2.36-10", "pkg:deb/debian/libc6@2.36-10"),  # 10 > 9, as numbers
            ("openssl", "3.0.9-1", "pkg:deb/debian/openssl@3.0.9-1"),
            ("kopf", "1.37.2", "pkg:pypi/kopf@1.37.2"),
            ("requests", "2.31.0", "pkg:pypi/requests@2.31.0"),
        ),
        "b",
    )
    assert diff_packages(before, after) == {
        "changed": [
            {
                "type": "deb",
                "name": "libc6",
                "from": "2.36-9",
                "to": "2.36-10",
                "change": "upgraded",
            },
            {
                "type": "deb",
                "name": "openssl",
                "from": "3.0.11-1",
                "to": "3.0.9-1",
                "change": "downgraded",
            },
        ],
        "added": [{"type": "pypi", "name": "requests", "version": "2.31.0"}],
        "removed": [{"type": "deb", "name": "curl", "version": "7.88.1-10"}],
    }


# -- CRD schemas ----------------------------------------------------------------------------


def crd_doc(text: str = CRD) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def test_schema_fields_walk_properties_items_and_additional_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["version"],
                "properties": {
                    "version": {"type": "string"},
                    "port": {"x-kubernetes-int-or-string": True},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                },
            }
        },
    }
    fields = schema_fields(schema)
    assert {p: (f.type, f.required) for p, f in fields.items()} == {
        "spec": ("object", False),
        "spec.version": ("string", True),
        "spec.port": ("int-or-string", False),
        "spec.labels": ("object", False),
        "spec.labels.*": ("string", False),
        "spec.items": ("array", False),
        "spec.items[].name": ("string", False),
    }


def test_crd_diff_names_versions_flags_and_fields() -> None:
    before = crd_doc()
    after = copy.deepcopy(before)
    spec = after["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["logLevel"] = {"type": "string"}  # added
    del spec["properties"]["image"]  # removed
    spec["properties"]["replicas"] = {"type": "string"}  # retyped
    spec["required"] = ["replicas"]  # made required
    after["spec"]["versions"][0].update(storage=False, deprecated=True)
    v1 = copy.deepcopy(after["spec"]["versions"][0])
    after["spec"]["versions"].append({**v1, "name": "v1", "storage": True, "deprecated": False})
    changes = diff_crds([before], [after])
    assert changes == [
        {
            "crd": "examples.example.com",
            "group": "example.com",
            "kind": "Example",
            "change": "changed",
            "versions": [],
            "changes": [
                {"change": "storage", "version": "v1alpha1", "from": True, "to": False},
                {"change": "deprecated", "version": "v1alpha1", "from": False, "to": True},
                {
                    "change": "field-removed",
                    "path": "spec.image",
                    "from": "string",
                    "version": "v1alpha1",
                },
                {
                    "change": "field-added",
                    "path": "spec.logLevel",
                    "to": "string",
                    "version": "v1alpha1",
                },
                {
                    "change": "field-type",
                    "path": "spec.replicas",
                    "from": "integer",
                    "to": "string",
                    "version": "v1alpha1",
                },
                {"change": "field-required", "path": "spec.replicas", "version": "v1alpha1"},
                {
                    "change": "version-added",
                    "version": "v1",
                    "to": "served, storage",
                    "against": "v1alpha1",  # the storage version before: its fields, compared
                    "fields": [
                        {"change": "field-removed", "path": "spec.image", "from": "string"},
                        {"change": "field-added", "path": "spec.logLevel", "to": "string"},
                        {
                            "change": "field-type",
                            "path": "spec.replicas",
                            "from": "integer",
                            "to": "string",
                        },
                        {"change": "field-required", "path": "spec.replicas"},
                    ],
                },
            ],
        }
    ]
    # and back: the field is optional again, the version removed
    back = diff_crds([after], [before])[0]["changes"]
    assert {"change": "field-optional", "path": "spec.replicas", "version": "v1alpha1"} in back
    assert {"change": "version-removed", "version": "v1", "from": "served, storage"} in back


def test_crd_added_and_removed_and_unchanged() -> None:
    other = crd_doc(
        CRD.replace("examples.example.com", "others.example.com").replace("Example", "Other")
    )
    assert diff_crds([crd_doc()], [crd_doc()]) == []
    result = diff_crds([crd_doc()], [other])
    assert [(c["crd"], c["change"]) for c in result] == [
        ("examples.example.com", "removed"),
        ("others.example.com", "added"),
    ]
    assert result[1]["versions"] == [{"version": "v1alpha1", "flags": "served, storage"}]


# -- RBAC -------------------------------------------------------------------------------------


def test_rbac_expands_rules_to_single_grants_and_compares_them() -> None:
    before = [yaml.safe_load(ROLE)]
    after = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "example-solution-operator"},
            "rules": [
                # update dropped, patch granted, get/list/watch kept
                {
                    "apiGroups": ["example.com"],
                    "resources": ["examples"],
                    "verbs": ["get", "list", "watch", "patch"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "resourceNames": ["tls"],
                    "verbs": ["get"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "metrics"},
            "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
        },
    ]
    assert len(role_grants(before)) == 4
    assert diff_rbac(before, after) == {
        "granted": [
            {"role": "ClusterRole", "nonResourceURL": "/metrics", "verb": "get"},
            {
                "role": "Role",
                "apiGroup": "",
                "resource": "secrets",
                "verb": "get",
                "resourceName": "tls",
            },
            {"role": "Role", "apiGroup": "example.com", "resource": "examples", "verb": "patch"},
        ],
        "dropped": [
            {"role": "Role", "apiGroup": "example.com", "resource": "examples", "verb": "update"}
        ],
        "derived": {"granted": [], "dropped": []},
    }


def manifest(version: str, **extra: Any) -> SolutionManifest:
    images = (ImageRef("base-server", version), ImageRef("example-solution-operator", version))
    return SolutionManifest(
        name="example-solution",
        version=version,
        images=images,
        operator_image=images[1],
        display_name="Example Solution",
        **extra,
    )


def test_derived_rights_https_metrics_and_privileged_rules() -> None:
    plain = manifest("1.0.0")
    https = manifest("2.0.0", operator_metrics=OperatorMetrics(enabled=True, scheme="https"))
    privileged = {
        "kind": "Role",
        "metadata": {"name": "op"},
        "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}],
    }
    assert derived_rights(plain, [yaml.safe_load(ROLE)]) == set()
    granted = derived_rights(https, [privileged])
    assert any("system:auth-delegator" in right for right in granted)
    assert any(right.startswith("needs approval: Role op rule") for right in granted)
    result = diff_rbac([], [], derived_rights(plain, []), granted)["derived"]
    assert result["granted"] == sorted(granted) and result["dropped"] == []


# -- manifest, images, blobs ------------------------------------------------------------------


def test_manifest_diff() -> None:
    before = manifest("1.0.0")
    after = manifest(
        "2.0.0", operator_metrics=OperatorMetrics(enabled=True, scheme="http", port=8080)
    )
    assert diff_manifest(before, after) == [
        {"field": "version", "from": "1.0.0", "to": "2.0.0"},
        {
            "field": "operatorImage",
            "from": "example-solution-operator:1.0.0",
            "to": "example-solution-operator:2.0.0",
        },
        {"field": "operatorMetrics", "from": None, "to": "http://:8080/metrics"},
    ]


def image(ref: str, digest: str, blobs: list[str], sizes: dict[str, int]) -> ImageInfo:
    return ImageInfo(ref, f"sha256:{digest * 64}", "m", sum(sizes[b] for b in blobs), [], blobs)


def test_images_and_blobs_pair_by_name_and_count_bytes_to_pull_once() -> None:
    sizes = {"base": 1000, "cfg1": 10, "cfg2": 20, "op1": 300, "op2": 400, "ui": 50, "old": 7}
    before = {
        "base-server:1.0.0": image("base-server:1.0.0", "a", ["base", "cfg1"], sizes),
        "operator:1.0.0": image("operator:1.0.0", "b", ["base", "op1"], sizes),
        "tool:1": image("tool:1", "c", ["old"], sizes),
        "same:1": image("same:1", "d", ["base"], sizes),
    }
    after = {
        "base-server:2.0.0": image("base-server:2.0.0", "e", ["base", "cfg2"], sizes),
        "operator:1.0.0": image("operator:1.0.0", "f", ["base", "op2"], sizes),  # same tag
        "ui:2.0.0": image("ui:2.0.0", "0", ["base", "ui", "op2"], sizes),
        "same:1": image("same:1", "d", ["base"], sizes),
    }
    images = diff_images(before, after, sizes)
    assert [
        (c["name"], c["from"]["image"], c["to"]["image"], c["to"]["newBytes"])
        for c in images["changed"]
    ] == [
        ("base-server", "base-server:1.0.0", "base-server:2.0.0", 20),
        ("operator", "operator:1.0.0", "operator:1.0.0", 400),
    ]
    assert [(i["image"], i["newBytes"]) for i in images["added"]] == [("ui:2.0.0", 450)]
    assert [i["image"] for i in images["removed"]] == ["tool:1"]
    assert [i["image"] for i in images["unchanged"]] == ["same:1"]
    blobs = diff_blobs(before, after, sizes, sizes)
    assert blobs["bytesToPull"] == 20 + 400 + 50  # op2 once, though two images hold it
    assert blobs["bytesRemoved"] == 10 + 300 + 7
    assert blobs["shared"] == 1
    assert [b["digest"] for b in blobs["added"]] == ["sha256:op2", "sha256:ui", "sha256:cfg2"]


# -- two archives read in place ---------------------------------------------------------------


def write_archive(
    tmp_path: Path,
    name: str,
    files: dict[str, bytes],
    base_layer: bytes = b"base",
    *,
    iso: bool = False,
) -> Path:
    """An archive as built (one OCI layout, unsigned) from the test source tree, base-server's
    own layer ``base_layer``, plus ``files``: extracted in a directory (the ISO writer keeps
    names within Joliet's 64 characters, shorter than ``sha256-<hex>.spdx.json``), or an ISO."""
    source = make_source(tmp_path / f"{name}-src")
    write_oci_layout(
        source / "images" / "base-server" / "1.0.0", [SHARED_LAYER, base_layer], "1.0.0"
    )
    index: list[dict[str, Any]] = []
    content: dict[str, bytes] = {
        str(p.relative_to(source)): p.read_bytes()
        for p in source.rglob("*")
        if p.is_file() and "images" not in p.relative_to(source).parts
    }
    for image_dir in sorted((source / "images").glob("*/*")):
        sub = json.loads((image_dir / "index.json").read_text())["manifests"][0]
        ref = f"{image_dir.parent.name}:{image_dir.name}"
        sub["annotations"] = {"org.opencontainers.image.ref.name": ref}
        index.append(sub)
        for blob in (image_dir / "blobs" / "sha256").iterdir():
            content[f"images/blobs/sha256/{blob.name}"] = blob.read_bytes()
    content["images/oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    content["images/index.json"] = json.dumps({"schemaVersion": 2, "manifests": index}).encode()
    content.update(files)
    if iso:
        target = tmp_path / f"{name}.iso"
        write_iso(
            target,
            [IsoFile(p, len(d), (lambda d=d: io.BytesIO(d))) for p, d in content.items()],
            volume_id="S",
            epoch=0,
        )
        return target
    target = tmp_path / name
    for path, data in content.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(data)
    return target


def sbom_file(archive: Path, ref: str, doc: dict[str, Any]) -> dict[str, bytes]:
    """``sboms/sha256-<hex>.spdx.json`` of image ``ref`` of ``archive``, holding ``doc``."""
    from metalk8s_solutions.engine.diff import read_archive  # noqa: PLC0415
    from metalk8s_solutions.images.sbom import sbom_path  # noqa: PLC0415

    return {sbom_path(read_archive(archive).images[ref].digest): json.dumps(doc).encode()}


OLD_SBOM = spdx(("libc6", "2.36-9", "pkg:deb/debian/libc6@2.36-9"))
NEW_SBOM = spdx(
    ("libc6", "2.36-10", "pkg:deb/debian/libc6@2.36-10"),
    ("requests", "2.31.0", "pkg:pypi/requests@2.31.0"),
)


def test_two_archives_diff_read_in_place(tmp_path: Path) -> None:
    probe_a = write_archive(tmp_path / "probe", "a", {})
    probe_b = write_archive(tmp_path / "probe", "b", {}, base_layer=b"base, patched")
    role_b = ROLE.replace("update]", "update, delete]")
    crd_b = CRD.replace(
        "image: {type: string}", "image: {type: string}\n                tag: {type: string}"
    )
    manifest_b = MANIFEST.replace("display-name: Example Solution", "display-name: Example")
    a = write_archive(tmp_path, "a", sbom_file(probe_a, "base-server:1.0.0", OLD_SBOM))
    b = write_archive(
        tmp_path,
        "b",
        {
            "operator/deploy/role.yaml": role_b.encode(),
            "operator/deploy/crds/example.yaml": crd_b.encode(),
            "manifest.yaml": manifest_b.encode(),
            **sbom_file(probe_b, "base-server:1.0.0", NEW_SBOM),
        },
        base_layer=b"base, patched",
    )
    data = diff_archives(DiffOptions(a, b))
    assert data["from"]["sboms"] == 1 and data["to"]["sboms"] == 1
    assert data["manifest"] == [
        {"field": "displayName", "from": "Example Solution", "to": "Example"}
    ]
    changed = data["images"]["changed"]
    assert [(c["name"], c["to"]["newBytes"] > 0) for c in changed] == [("base-server", True)]
    assert [i["image"] for i in data["images"]["unchanged"]] == ["example-solution-operator:1.0.0"]
    assert data["blobs"]["bytesToPull"] == changed[0]["to"]["newBytes"]
    assert data["crds"][0]["changes"] == [
        {"change": "field-added", "path": "spec.tag", "to": "string", "version": "v1alpha1"}
    ]
    assert data["rbac"]["granted"] == [
        {"role": "Role", "apiGroup": "example.com", "resource": "examples", "verb": "delete"}
    ]
    assert data["packages"]["known"] is True
    (entry,) = data["packages"]["images"]
    assert entry["changed"] == [
        {"type": "deb", "name": "libc6", "from": "2.36-9", "to": "2.36-10", "change": "upgraded"}
    ]
    assert entry["added"] == [{"type": "pypi", "name": "requests", "version": "2.31.0"}]
    assert json.loads(json.dumps(data)) == data  # -o json as it is
    text = diff_text(data)
    for line in (
        "~ displayName: Example Solution -> Example",
        "~ base-server 1.0.0: sha256:",
        "  base-server (base-server:1.0.0 -> base-server:1.0.0): 2 package change(s)",
        "~ deb libc6 2.36-9 -> 2.36-10 (upgraded)",
        "+ pypi requests 2.31.0",
        "+ v1alpha1 spec.tag (string)",
        "+ Role: delete examples (example.com)",
    ):
        assert line in text, text


def test_an_archive_without_sboms_says_packages_are_not_known(tmp_path: Path) -> None:
    a = write_archive(tmp_path, "a", {}, iso=True)
    b = write_archive(tmp_path, "b", {}, base_layer=b"other", iso=True)
    data = diff_archives(DiffOptions(a, b))
    assert data["packages"] == {"known": False, "note": NO_SBOM, "images": []}
    assert f"Packages:\n  {NO_SBOM}" in diff_text(data)
    # one side has SBOMs, the other none: per image, which archive lacks it
    probe = write_archive(tmp_path / "probe", "b", {}, base_layer=b"other")
    c = write_archive(tmp_path, "c", sbom_file(probe, "base-server:1.0.0", NEW_SBOM), b"other")
    (entry,) = diff_archives(DiffOptions(a, c))["packages"]["images"]
    assert entry["known"] is False
    assert entry["note"] == "not known (example-solution-1.0.0 has no SBOM)"


def test_a_missing_archive_is_one_clear_error(tmp_path: Path) -> None:
    a = write_archive(tmp_path, "a", {})
    with pytest.raises(ArchiveError, match="no such file"):
        diff_archives(DiffOptions(tmp_path / "missing.iso", a))


def test_sbom_files_are_found_by_the_digest_in_their_path() -> None:
    from metalk8s_solutions.engine.diff import _sbom_digest  # noqa: PLC0415
    from metalk8s_solutions.images.sbom import sbom_path  # noqa: PLC0415

    hexdigest = "ab" * 32
    assert sbom_path(f"sha256:{hexdigest}") == f"sboms/sha256-{hexdigest}.spdx.json"
    assert _sbom_digest(sbom_path(f"sha256:{hexdigest}")) == hexdigest
    assert _sbom_digest(f"sboms/sha256/{hexdigest}.json") == hexdigest
    assert _sbom_digest(f"sboms/sha256/{hexdigest}") == hexdigest  # a name within Joliet's 64
    assert _sbom_digest(f"images/{hexdigest}.json") is None


def test_upgrade_diffs_one_per_deployed_version_and_a_note_for_what_cannot_be_read(
    tmp_path: Path,
) -> None:
    from metalk8s_solutions.engine.diff import upgrade_diffs  # noqa: PLC0415

    old = write_archive(tmp_path, "old", {}, iso=True)
    new = write_archive(tmp_path, "new", {}, base_layer=b"new", iso=True)
    diffs, notes = upgrade_diffs(
        {"0.9.0": None, "1.0.0": str(old), "1.1.0": str(tmp_path / "gone.iso"), "2.0.0": str(new)},
        "2.0.0",
        str(new),
    )
    assert len(diffs) == 1 and diffs[0]["from"]["signature"] is None
    assert [c["name"] for c in diffs[0]["images"]["changed"]] == ["base-server"]
    assert notes[0] == "what changes from 0.9.0 is not known: its archive is not imported"
    assert notes[1].startswith("what changes from 1.1.0 to 2.0.0 is not known: ")
    assert "gone.iso" in notes[1] and len(notes) == 2


def test_imported_archives_are_read_against_their_pins(tmp_path: Path) -> None:
    from metalk8s_solutions.api.pin import Pin  # noqa: PLC0415
    from metalk8s_solutions.archive.pinning import file_digest  # noqa: PLC0415
    from metalk8s_solutions.engine.diff import upgrade_diffs  # noqa: PLC0415

    old = write_archive(tmp_path, "old", {}, iso=True)
    new = write_archive(tmp_path, "new", {}, base_layer=b"new", iso=True)
    pins = {
        str(p): Pin("example-solution-1.0.0", file_digest(p), whole_file=True) for p in (old, new)
    }
    diffs, notes = upgrade_diffs({"1.0.0": str(old)}, "2.0.0", str(new), pins)
    assert len(diffs) == 1 and notes == []
    # the deployed version's file swapped after import: no diff of what it now holds
    swapped = write_archive(tmp_path / "other", "old", {}, base_layer=b"swapped", iso=True)
    old.write_bytes(swapped.read_bytes())
    diffs, notes = upgrade_diffs({"1.0.0": str(old)}, "2.0.0", str(new), pins)
    assert diffs == []
    (note,) = notes
    assert note.startswith("what changes from 1.0.0 to 2.0.0 is not known: archive ")
    assert "changed since it was imported" in note


def every_kind_of_change() -> dict[str, Any]:
    """A diff holding one of each change, made by the differs themselves."""
    sizes = {"a": 10, "b": 2048, "c": 5}
    before_images = {
        "old:1": image("old:1", "a", ["a"], sizes),
        "kept:1": image("kept:1", "c", ["c"], sizes),
    }
    after_images = {
        "new:2": image("new:2", "b", ["b"], sizes),
        "kept:1": image("kept:1", "c", ["c"], sizes),
    }
    images = diff_images(before_images, after_images, sizes)
    cluster_crd = crd_doc(CRD.replace("scope: Namespaced", "scope: Cluster"))
    schema = cluster_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    schema["spec"]["required"] = ["image"]
    gone = crd_doc(CRD.replace("examples.example.com", "gones.example.com"))
    fresh = crd_doc(CRD.replace("examples.example.com", "freshes.example.com"))
    role = {
        "kind": "ClusterRole",
        "metadata": {"name": "r"},
        "rules": [
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["x"], "verbs": ["get"]},
        ],
    }
    return {
        "from": {"archive": "a.iso", "id": "s-1", "name": "s", "version": "1", "signature": None},
        "to": {"archive": "b.iso", "id": "s-2", "name": "s", "version": "2", "signature": "x"},
        "manifest": [
            {"field": "version", "from": "1", "to": "2"},
            {"field": "ui", "from": "u:1 port 80", "to": None},
            {"field": "operatorMetrics", "from": None, "to": "https://:8443/metrics"},
        ],
        "images": images,
        "blobs": diff_blobs(before_images, after_images, sizes, sizes),
        "packages": {
            "known": False,
            "note": "not known for every image",
            "images": [
                {
                    "image": "new",
                    "from": None,
                    "to": "new:2",
                    "known": True,
                    "note": None,
                    **diff_packages({}, {("deb", "libc6"): "2.36"}),
                },
                {
                    "image": "old",
                    "from": "old:1",
                    "to": None,
                    "known": True,
                    "note": None,
                    **diff_packages({("deb", "libc6"): "2.36"}, {}),
                },
                {
                    "image": "x",
                    "from": "x:1",
                    "to": "x:2",
                    "known": False,
                    "note": "not known (s-1 has no SBOM for x:1)",
                },
            ],
        },
        "crds": diff_crds([crd_doc(), gone], [cluster_crd, fresh]),
        "rbac": diff_rbac([role], [], ["needs approval: something"], ["auth-delegator"]),
    }


def test_every_kind_of_change_reads_in_the_terminal_and_on_the_plan_page() -> None:
    from metalk8s_solutions.web.pages import templates  # noqa: PLC0415

    data = every_kind_of_change()
    text = diff_text(data)
    for line in (
        "To:   s-2 (b.iso, signature: x)",
        "  - ui: u:1 port 80",
        "  + operatorMetrics: https://:8443/metrics",
        "Images: 2.0 KiB to pull in 1 new blob(s), 1 blob(s) shared",
        "  + new:2: sha256:bbbbbbbbbbbb, 2.0 KiB new of 2.0 KiB",
        "  - old:1: sha256:aaaaaaaaaaaa, 10 B",
        "  = kept:1",
        "  new (new:2, new image): 1 package(s), -o json lists them",
        "  old (old:1, removed image): 1 package(s), -o json lists them",
        "  x (x:1 -> x:2): not known (s-1 has no SBOM for x:1)",
        "  ~ examples.example.com (Example)",
        "      ~ scope: Namespaced -> Cluster",
        "      ! v1alpha1 spec.image: now required",
        "  + freshes.example.com (Example): v1alpha1 (served, storage)",
        "  - gones.example.com (Example): v1alpha1 (served, storage); removing a CRD deletes",
        "  - ClusterRole: get /metrics",
        "  - ClusterRole: get secrets (core) named x",
        "  + auth-delegator",
        "  - needs approval: something",
    ):
        assert line in text, text
    page = templates.env.get_template("_archive_diff.html").render(plan={"archiveDiffs": [data]})
    for words in (
        "What changes from 1 to 2",
        "ui: removed u:1 port 80",
        "removed</td><td>old:1",
        "unchanged</td><td>kept:1",
        "+ deb libc6 2.36",
        "not known (s-1 has no SBOM for x:1)",
        "scope: Namespaced → Cluster",
        "<code>spec.image</code>: required",
        "<strong>gones.example.com</strong> (Example): removed",
        "dropped: ClusterRole get /metrics",
        "dropped: ClusterRole get secrets (core) named x",
        "granted: auth-delegator",
    ):
        assert words in page, page


def test_a_metalk8s_archive_against_ours(tmp_path: Path) -> None:
    from conftest import metalk8s_archive  # noqa: PLC0415

    theirs = metalk8s_archive(tmp_path)
    ours = write_archive(tmp_path, "ours", {}, iso=True)
    data = diff_archives(DiffOptions(theirs, ours))
    assert data["packages"] == {"known": False, "note": NO_SBOM, "images": []}
    assert [c["name"] for c in data["images"]["changed"]] == [
        "base-server",
        "example-solution-operator",
    ]
    # every blob of ours is new (other layers), each with its size
    assert data["blobs"]["bytesToPull"] == sum(b["size"] for b in data["blobs"]["added"]) > 0
    assert all(b["size"] > 0 for b in data["blobs"]["removed"])
    assert data["crds"] == [] and data["rbac"]["granted"] == data["rbac"]["dropped"] == []
