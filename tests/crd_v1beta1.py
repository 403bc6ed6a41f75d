"""A v1beta1 CRD and its sample, shaped as operator-sdk 0.x wrote them (MetalK8s 1.0.x era, e.g.
the upstream example's 1.0.1 release): top-level ``validation`` and ``subresources``, singular
``version`` plus ``versions``, an untyped schema root, a ``*_cr.yaml`` sample beside it."""

from __future__ import annotations


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
