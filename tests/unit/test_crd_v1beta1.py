"""v1beta1 CRDs (MetalK8s 1.0.x-era archives, operator-sdk 0.x) converted to v1 at activation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from conftest import metalk8s_archive
from crd_v1beta1 import CRD_FILE, GADGET_SAMPLE, OPERATOR_SDK_0, SAMPLE_FILE
from metalk8s_solutions.api.crd import check_crd
from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.crds import convert_v1beta1, is_v1beta1_crd
from metalk8s_solutions.engine.inspect import InspectOptions, inspect
from metalk8s_solutions.engine.instances import read_samples
from metalk8s_solutions.engine.validate import ValidateOptions, validate


def load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def test_operator_sdk_0_shape_becomes_a_valid_v1_crd() -> None:
    doc = load(OPERATOR_SDK_0)
    assert is_v1beta1_crd(doc)
    assert check_crd(doc, "x")[0].rule == "SOL040"  # as it is, refused

    v1 = convert_v1beta1(doc)

    assert v1["apiVersion"] == "apiextensions.k8s.io/v1"
    assert check_crd(v1, "x") == []
    assert "validation" not in v1["spec"] and "version" not in v1["spec"]
    assert "preserveUnknownFields" not in v1["spec"] and "subresources" not in v1["spec"]
    (version,) = v1["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    root = version["schema"]["openAPIV3Schema"]
    assert root["type"] == "object"
    # preserveUnknownFields defaulted to true in v1beta1: nothing was pruned, nothing will be.
    assert root["x-kubernetes-preserve-unknown-fields"] is True
    spec = root["properties"]["spec"]
    assert spec["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["required"] == ["colour"]
    assert spec["properties"]["colour"] == {"type": "string", "description": "any colour"}
    assert root["properties"]["metadata"] == {"type": "object"}  # the API server's own
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1beta1"  # the input is left alone


def test_preserve_unknown_fields_false_prunes_as_before() -> None:
    doc = load(OPERATOR_SDK_0)
    doc["spec"]["preserveUnknownFields"] = False
    root = convert_v1beta1(doc)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "x-kubernetes-preserve-unknown-fields" not in root
    assert "x-kubernetes-preserve-unknown-fields" not in root["properties"]["spec"]


def test_no_schema_keeps_every_field() -> None:
    doc = load(OPERATOR_SDK_0)
    del doc["spec"]["validation"]
    v1 = convert_v1beta1(doc)
    assert v1["spec"]["versions"][0]["schema"] == {
        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    }
    assert check_crd(v1, "x") == []


def test_singular_version_only() -> None:
    doc = load(OPERATOR_SDK_0)
    del doc["spec"]["versions"]
    (version,) = convert_v1beta1(doc)["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_untyped_nodes_get_the_type_their_content_implies() -> None:
    doc = load(OPERATOR_SDK_0)
    doc["spec"]["preserveUnknownFields"] = False
    doc["spec"]["validation"]["openAPIV3Schema"]["properties"]["spec"] = {
        "properties": {
            "ports": {"items": {"properties": {"port": {"type": "integer"}}}},
            "free": {"description": "anything"},
            "size": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "odd": {"type": "object", "oneOf": [{"type": "integer"}, {"required": ["a"]}]},
        }
    }
    v1 = convert_v1beta1(doc)
    spec = v1["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["type"] == "object"
    assert spec["properties"]["ports"]["type"] == "array"
    assert spec["properties"]["ports"]["items"]["type"] == "object"
    assert spec["properties"]["free"] == {
        "description": "anything",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    # the int-or-string idiom becomes v1's marker
    assert spec["properties"]["size"] == {"x-kubernetes-int-or-string": True}
    # other junctor branches stay as they are: a type inside oneOf is not structural, in v1 as
    # in v1beta1's structural rules, and stays an error
    findings = check_crd(v1, "x")
    assert [f.rule for f in findings] == ["SOL041"]
    assert "oneOf[0]: type is not allowed" in findings[0].message


def test_per_version_schemas_columns_and_webhook_conversion() -> None:
    doc = load(OPERATOR_SDK_0)
    spec = doc["spec"]
    del spec["validation"], spec["version"]
    spec["additionalPrinterColumns"] = [
        {"name": "Colour", "type": "string", "JSONPath": ".spec.colour"},
        {"name": "Age", "type": "date", "JSONPath": ".metadata.creationTimestamp"},
    ]
    schema = {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}}
    spec["versions"] = [
        {"name": "v1alpha1", "served": True, "storage": False, "schema": schema},
        {
            "name": "v1beta1",
            "served": True,
            "storage": True,
            "schema": schema,
            "subresources": {
                "status": {},
                "scale": {"specReplicasPath": ".spec.count", "statusReplicasPath": ".status.count"},
            },
            "additionalPrinterColumns": [
                {"name": "Count", "type": "integer", "JSONPath": ".spec.count", "priority": 1}
            ],
        },
    ]
    spec["conversion"] = {
        "strategy": "Webhook",
        "webhookClientConfig": {"service": {"namespace": "shop", "name": "convert"}},
    }
    v1 = convert_v1beta1(doc)
    old, new = v1["spec"]["versions"]
    assert (old["storage"], new["storage"]) == (False, True)
    assert old["additionalPrinterColumns"] == [
        {"name": "Colour", "type": "string", "jsonPath": ".spec.colour"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    assert new["additionalPrinterColumns"] == [
        {"name": "Count", "type": "integer", "jsonPath": ".spec.count", "priority": 1}
    ]
    assert old["subresources"] == {"status": {}}
    assert new["subresources"]["scale"] == {
        "specReplicasPath": ".spec.count",
        "statusReplicasPath": ".status.count",
    }
    assert v1["spec"]["conversion"] == {
        "strategy": "Webhook",
        "webhook": {
            "clientConfig": {"service": {"namespace": "shop", "name": "convert"}},
            "conversionReviewVersions": ["v1beta1"],
        },
    }
    assert check_crd(v1, "x") == []


def test_v1_documents_are_returned_unchanged() -> None:
    doc = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}
    assert not is_v1beta1_crd(doc)
    assert convert_v1beta1(doc) == doc


def extract(iso: Path, dest: Path) -> Path:
    with IsoReader(iso) as reader:
        for name in reader.files():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(reader.read_bytes(name))
    return dest


def test_metalk8s_archive_with_v1beta1_crd_and_sample_validates_with_a_warning(
    tmp_path: Path,
) -> None:
    root = extract(metalk8s_archive(tmp_path), tmp_path / "x")
    (root / CRD_FILE).write_text(OPERATOR_SDK_0)
    (root / SAMPLE_FILE).write_text(GADGET_SAMPLE)
    result = validate(ValidateOptions(root))
    assert result.valid, result.findings
    (warning,) = [f for f in result.findings if f.rule == "SOL044"]
    assert warning.level is Severity.WARNING and warning.path == CRD_FILE
    assert "gadgets.shop.example.org" in warning.message and "converted" in warning.message
    # the sample is no CRD: not checked as one, only said never to be applied (SOL024)
    on_sample = [f for f in result.findings if f.path == SAMPLE_FILE]
    assert [(f.rule, f.level) for f in on_sample] == [("SOL024", Severity.WARNING)]

    crds = inspect(InspectOptions(root)).data["crds"]
    gadget = next(c for c in crds if c["file"] == CRD_FILE)
    assert gadget["convertedFrom"] == "apiextensions.k8s.io/v1beta1"
    assert (gadget["versions"], gadget["storageVersion"]) == (["v1alpha1"], "v1alpha1")
    assert SAMPLE_FILE not in {c["file"] for c in crds}


def test_samples_read_from_the_archive(tmp_path: Path) -> None:
    root = extract(metalk8s_archive(tmp_path), tmp_path / "x")
    (root / CRD_FILE).write_text(OPERATOR_SDK_0)
    sample = GADGET_SAMPLE.replace("name: example-gadget", "name: g\n  namespace: elsewhere")
    nameless = "apiVersion: shop.example.org/v1alpha1\nkind: Gadget\nspec: {colour: red}\n"
    (root / SAMPLE_FILE).write_text(f"{sample}---\n{nameless}---\n# only a comment\n")
    iso = tmp_path / "with-samples.iso"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    write_iso(
        iso,
        [
            IsoFile(str(p.relative_to(root)), p.stat().st_size, (lambda p=p: p.open("rb")))
            for p in files
        ],
        volume_id="S",
        epoch=0,
    )

    samples = read_samples(iso)

    assert [(s.kind, s.name, s.file) for s in samples] == [
        ("Gadget", "g", SAMPLE_FILE),
        ("Gadget", "shop_v1alpha1_gadget_cr", SAMPLE_FILE),  # named after its file
    ]
    # the sample's namespace is dropped: an instance goes where the solution runs
    assert samples[0].document["metadata"] == {"name": "g"}
    assert samples[0].to_dict()["spec"] == {"colour": "blue", "count": 3}


def test_cli_validate_and_inspect_say_what_is_converted(tmp_path: Path) -> None:
    root = extract(metalk8s_archive(tmp_path), tmp_path / "x")
    (root / CRD_FILE).write_text(OPERATOR_SDK_0)
    (root / SAMPLE_FILE).write_text(GADGET_SAMPLE)
    solutions = str(Path(sys.executable).parent / "solutions")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [solutions, *args], capture_output=True, text=True, check=False, timeout=60
        )

    checked = run("validate", str(root))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    said = " ".join((checked.stdout + checked.stderr).split())
    assert (
        f"SOL044 {CRD_FILE}: CRD gadgets.shop.example.org is apiextensions.k8s.io/v1beta1" in said
    )
    shown = run("inspect", str(root))
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "gadgets.shop" in line)
    assert row.endswith("v1alpha1 (converted from v1beta1)")


def test_any_shape_converts_without_a_crash() -> None:
    """Archive content is untrusted: whatever the shape, conversion returns a document and
    validation reports what is wrong (never a traceback)."""
    head = {"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition"}
    odd: list[dict[str, Any]] = [
        head,
        {**head, "metadata": "x", "spec": "y"},
        {**head, "spec": {"versions": "v1", "version": 3, "validation": [1]}},
        {**head, "spec": {"versions": [1, {"name": "v1", "schema": "s"}], "subresources": 2}},
        {
            **head,
            "spec": {
                "version": "v1",
                "additionalPrinterColumns": [1, {"JSONPath": 2}],
                "conversion": {"strategy": "Webhook", "conversionReviewVersions": 5},
                "validation": {"openAPIV3Schema": {"properties": {"a": [1], "b": {"items": 3}}}},
            },
        },
    ]
    for doc in odd:
        converted = convert_v1beta1(doc)
        assert converted["apiVersion"] == "apiextensions.k8s.io/v1"
        check_crd(converted, "x")  # findings, not exceptions
