"""Three versions of one Solution whose CRD evolves like the example Solution's:

- 1.0.0 serves v1alpha1 (storage);
- 1.1.0 adds v1beta1 with an optional field, both served, v1alpha1 still storage;
- 2.0.0 makes v1beta1 the storage version, v1alpha1 served and deprecated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from metalk8s_solutions.engine.build import BuildOptions, build

GROUP = "widgets.test.solutions"
CRD_NAME = f"widgets.{GROUP}"


def _version(
    name: str, *, storage: bool, deprecated: bool = False, log_level: bool = False
) -> dict[str, Any]:
    spec_props: dict[str, Any] = {
        "version": {"type": "string"},
        "replicas": {"type": "integer", "minimum": 0},
    }
    if log_level:
        spec_props["logLevel"] = {"type": "string", "enum": ["debug", "info", "warning"]}
    version: dict[str, Any] = {
        "name": name,
        "served": True,
        "storage": storage,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "required": ["version"], "properties": spec_props},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }
        },
        "subresources": {"status": {}},
    }
    if deprecated:
        version["deprecated"] = True
    return version


def crd(solution_version: str) -> dict[str, Any]:
    versions = {
        "1.0.0": [_version("v1alpha1", storage=True)],
        "1.1.0": [
            _version("v1alpha1", storage=True, log_level=True),
            _version("v1beta1", storage=False, log_level=True),
        ],
        "2.0.0": [
            _version("v1alpha1", storage=False, deprecated=True, log_level=True),
            _version("v1beta1", storage=True, log_level=True),
        ],
    }[solution_version]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": "Widget",
                "plural": "widgets",
                "singular": "widget",
                "listKind": "WidgetList",
            },
            "versions": versions,
        },
    }


def build_version(src: Path, out: Path, version: str, key: Path | None = None) -> Path:
    """Turn the source tree ``src`` (from conftest.make_source) into archive ``version``."""
    manifest = yaml.safe_load((src / "manifest.yaml").read_text())
    manifest["spec"]["version"] = version
    (src / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    (src / "operator" / "deploy" / "crds" / "example.yaml").write_text(yaml.safe_dump(crd(version)))
    role = src / "operator" / "deploy" / "role.yaml"
    doc = yaml.safe_load(role.read_text())
    doc["rules"][0]["apiGroups"] = [GROUP]
    doc["rules"][0]["resources"] = ["widgets"]
    role.write_text(yaml.safe_dump(doc))
    iso = out / f"example-solution-{version}.iso"
    build(BuildOptions(src, iso, key=key, epoch=1_700_000_000))
    return iso
