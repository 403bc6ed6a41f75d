"""A v1beta1 CRD and its sample, shaped as operator-sdk 0.x wrote them (MetalK8s 1.0.x era, e.g.
the upstream example's 1.0.1 release): top-level ``validation`` and ``subresources``, singular
``version`` plus ``versions``, an untyped schema root, a ``*_cr.yaml`` sample beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def v1beta1_crd(group: str, kind: str = "Gadget") -> str:
    plural = f"{kind.lower()}s"
    return f"""\
apiVersion: apiextensions.k8s.io/v1beta1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  names: {{kind: {kind}, listKind: {kind}List, plural: {plural}, singular: {kind.lower()}}}
  scope: Namespaced
  subresources:
    status: {{}}
  validation:
    openAPIV3Schema:
      properties:
        apiVersion: {{type: string}}
        kind: {{type: string}}
        metadata: {{type: object}}
        spec:
          properties:
            colour: {{type: string, description: any colour}}
            count: {{type: integer}}
          required: [colour]
          type: object
        status: {{type: object}}
  version: v1alpha1
  versions:
  - name: v1alpha1
    served: true
    storage: true
"""


def v1beta1_sample(group: str, kind: str = "Gadget") -> str:
    return f"""\
apiVersion: {group}/v1alpha1
kind: {kind}
metadata:
  name: example-{kind.lower()}
spec:
  # Add fields here
  colour: blue
  count: 3
"""


OPERATOR_SDK_0 = v1beta1_crd("shop.example.org")
GADGET_SAMPLE = v1beta1_sample("shop.example.org")
CRD_FILE = "operator/deploy/crds/shop_v1alpha1_gadget_crd.yaml"
SAMPLE_FILE = "operator/deploy/crds/shop_v1alpha1_gadget_cr.yaml"


def v1beta1_shapes(group: str) -> dict[str, dict[str, Any]]:
    """Several v1beta1 CRD shapes (each its own kind in ``group``), by what they exercise."""
    shapes: dict[str, dict[str, Any]] = {}

    def base(kind: str) -> dict[str, Any]:
        doc = yaml.safe_load(v1beta1_crd(group, kind))
        assert isinstance(doc, dict)
        shapes[kind] = doc
        return doc

    base("Sdkzero")
    del base("Noschema")["spec"]["validation"]
    del base("Singular")["spec"]["versions"]
    untyped = base("Untyped")["spec"]
    untyped["preserveUnknownFields"] = False
    untyped["validation"]["openAPIV3Schema"]["properties"]["spec"] = {
        "properties": {
            "ports": {"items": {"properties": {"port": {"type": "integer"}}}},
            "free": {"description": "anything"},
            "size": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        }
    }
    multi = base("Multi")["spec"]
    del multi["validation"], multi["version"]
    multi["additionalPrinterColumns"] = [
        {"name": "Colour", "type": "string", "JSONPath": ".spec.colour"},
    ]
    schema = {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}}
    multi["versions"] = [
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
    multi["conversion"] = {
        "strategy": "Webhook",
        "webhookClientConfig": {"service": {"namespace": "default", "name": "convert"}},
    }
    return shapes


def metalk8s_v1beta1_archive(out: Path, solution: str, group: str, prefix: str) -> Path:
    """A MetalK8s-format ISO (skopeo ``dir:`` images) of ``solution`` 1.0.1 whose only CRD is a
    v1beta1 Clock, with its ``<prefix>_v1alpha1_clock_cr.yaml`` sample beside it (an archive of
    our own format never holds samples: SOL024 is an error there)."""
    from conftest import metalk8s_archive  # noqa: PLC0415

    manifest = {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "Solution",
        "metadata": {"name": solution},
        "spec": {
            "version": "1.0.1",
            "images": ["base-server:1.0.0", "example-solution-operator:1.0.0"],
            "operator": {"image": {"name": "example-solution-operator", "tag": "1.0.0"}},
        },
    }
    crds = "operator/deploy/crds"
    files: dict[str, bytes | None] = {
        "manifest.yaml": yaml.safe_dump(manifest).encode(),
        f"{crds}/example.yaml": None,
        f"{crds}/{prefix}_v1alpha1_clock_crd.yaml": v1beta1_crd(group, "Clock").encode(),
        f"{crds}/{prefix}_v1alpha1_clock_cr.yaml": v1beta1_sample(group, "Clock").encode(),
    }
    return metalk8s_archive(out, files=files, name=f"{solution}-1.0.1.iso")
