"""The published JSON Schemas and generated reference pages agree with the code.

Each schema must accept what the parser accepts and reject what it rejects, on the same examples;
the CLI reference must list every command; the error index must find the package's errors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from metalk8s_solutions.api.config import parse_config
from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.api.manifest import check_manifest
from metalk8s_solutions.errors import InvalidInput

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "hooks"))

import docgen

CONFIG_VALID = [
    "",
    "apiVersion: solutions.metalk8s.scality.com/v1alpha1\nkind: SolutionsConfiguration\n",
    "archives: [/srv/a.iso]\nactive: {example-solution: 1.0.0, other: latest}\n",
    "active: {s: 1.0.0-rc.1}\n",
    "active: {s: '1.1.2.1', t: 1.1.2-dev, u: '2.0'}\n",
    "registry: {mode: push, pushUrl: 'https://h:5000', insecure: true}\nextra: kept\n",
    "registry: {mode: builtin, endpoint: 'h:5000', listen: '0.0.0.0:5000', custom: 1}\n",
    "trust: {keys: [/k.pub], policy: if-signed}\n",
]
CONFIG_INVALID = [
    "kind: Other\n",
    "apiVersion: v1\n",
    "archives: [relative.iso]\n",
    "archives: /srv/a.iso\n",
    "active: {s: 1.0}\n",
    "active: {s: 2}\n",
    "active: {s: 1.0.0-rc.1+build.5}\n",
    "active: {s: V1.0.0}\n",
    "active: [s]\n",
    "registry: {mode: mirror}\n",
    "registry: {mode: push}\n",
    "registry: {insecure: 'yes'}\n",
    "registry: {endpoint: 5000}\n",
    "trust: {policy: sometimes}\n",
    "trust: {keys: ['']}\n",
    "trust: []\n",
    "- a list\n",
]

MANIFEST = {
    "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
    "kind": "Solution",
    "metadata": {
        "name": "example-solution",
        "annotations": {"solutions.metalk8s.scality.com/display-name": "Example"},
    },
    "spec": {
        "version": "1.0.0",
        "images": ["base-server:1.0.0", "example-solution-operator:1.0.0"],
        "operator": {"image": {"name": "example-solution-operator", "tag": "1.0.0"}},
    },
}


def _manifest(path: str, value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(yaml.safe_dump(MANIFEST))
    node = doc
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


MANIFEST_VALID = [
    MANIFEST,
    _manifest("spec.version", "2.0.0-rc.1.git.abc"),
    _manifest("spec.version", "1.1.2.1"),  # not semver: a warning only
    _manifest("spec.version", "2.0"),
    _manifest("metadata.labels", {"tier": "gold"}),
    _manifest("metadata.annotations", None),  # display name missing: a warning only
    _manifest("metadata.name", "a"),
]
MANIFEST_INVALID = [
    _manifest("apiVersion", "v1"),
    _manifest("kind", "Application"),
    _manifest("metadata.name", "Example"),
    _manifest("metadata.name", "-example"),
    _manifest("metadata.name", "x" * 64),
    _manifest("spec.version", 2.0),
    _manifest("spec.version", "2.0.0-rc.1+git.abc"),  # '+' cannot be in a repository name
    _manifest("spec.version", "1.0.0-RC1"),
    _manifest("spec.images", []),
    _manifest("spec.images", ["registry.io/base-server:1.0.0", "example-solution-operator:1.0.0"]),
    _manifest("spec.images", ["base-server", "example-solution-operator:1.0.0"]),
    _manifest("spec.images", ["base-server:1.0.0", "base-server:1.0.0"]),
    _manifest("spec.operator", None),
    _manifest("metadata.labels", {"n": 1}),
]


def _schema_ok(schema: dict[str, Any], doc: Any) -> bool:
    validator = jsonschema.Draft202012Validator(schema)
    return not list(validator.iter_errors(doc))


def _config_ok(text: str) -> bool:
    try:
        parse_config(text.encode(), "test")
    except InvalidInput:
        return False
    return True


def _manifest_ok(doc: Any) -> bool:
    model, findings = check_manifest(doc)
    return model is not None and not [f for f in findings if f.level is Severity.ERROR]


def test_schemas_are_valid_json_schemas() -> None:
    for schema in docgen.schemas().values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("text", CONFIG_VALID)
def test_configuration_valid(text: str) -> None:
    assert _config_ok(text)
    assert _schema_ok(docgen.configuration_schema(), yaml.safe_load(text))


@pytest.mark.parametrize("text", CONFIG_INVALID)
def test_configuration_invalid(text: str) -> None:
    assert not _config_ok(text)
    assert not _schema_ok(docgen.configuration_schema(), yaml.safe_load(text))


@pytest.mark.parametrize("doc", MANIFEST_VALID)
def test_manifest_valid(doc: dict[str, Any]) -> None:
    assert _manifest_ok(doc)
    assert _schema_ok(docgen.manifest_schema(), doc)


@pytest.mark.parametrize("doc", MANIFEST_INVALID)
def test_manifest_invalid(doc: dict[str, Any]) -> None:
    assert not _manifest_ok(doc)
    assert not _schema_ok(docgen.manifest_schema(), doc)


OPERATOR_CONFIG_INVALID = [
    {"apiVersion": "v1", "kind": "OperatorConfig", "repositories": {"1.0.0": []}},
    {"apiVersion": "solutions.metalk8s.scality.com/v1alpha1", "kind": "Config"},
    {"apiVersion": "solutions.metalk8s.scality.com/v1alpha1", "kind": "OperatorConfig"},
    {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "OperatorConfig",
        "repositories": {},
    },
    {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "OperatorConfig",
        "repositories": {"1.0.0": [{"images": ["a:1"]}]},
    },
    {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "OperatorConfig",
        "repositories": {"1.0.0": [{"endpoint": "r/x-1.0.0", "images": [""]}]},
    },
]


def test_operator_config_written_by_the_product_is_valid() -> None:
    from metalk8s_solutions.api.manifest import parse_manifest  # noqa: PLC0415
    from metalk8s_solutions.engine.desired import VersionContent, operator_config  # noqa: PLC0415

    versions = []
    for version in ("1.0.0", "1.10.0", "2.0", "1.9.0", "1.1.2.1"):
        doc = _manifest("spec.version", version)
        versions.append(VersionContent(parse_manifest(yaml.safe_dump(doc).encode())))
    text = operator_config("registry.local:5000", versions)
    document = yaml.safe_load(text)
    assert _schema_ok(docgen.operator_config_schema(), document)
    # in the one order; "2.0" stays a string key (quoted), as upstream's loader reads it
    assert list(document["repositories"]) == ["1.0.0", "1.1.2.1", "1.9.0", "1.10.0", "2.0"]
    example = pytest.importorskip("example_solution_operator.config")
    example.parse_config(text)


@pytest.mark.parametrize("doc", OPERATOR_CONFIG_INVALID)
def test_operator_config_invalid(doc: dict[str, Any]) -> None:
    assert not _schema_ok(docgen.operator_config_schema(), doc)
    example = pytest.importorskip("example_solution_operator.config")
    with pytest.raises(example.ConfigError):
        example.parse_config(yaml.safe_dump(doc))


def test_cli_reference_lists_every_command() -> None:
    from metalk8s_solutions.cli.main import cli  # noqa: PLC0415

    page = docgen.cli_reference()
    for path, command, _ in docgen.walk_commands(cli, ("solutions",)):
        assert f"{{#{docgen.anchor(path)}}}" in page
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in page, f"{' '.join(path)} {opt} missing from the reference"


def test_error_index_finds_errors() -> None:
    entries = docgen.error_index()
    messages = {e.message for e in entries}
    assert "no archive given" in messages
    assert all(e.exit_code in (1, 2, 130) for e in entries)  # 130: interrupted (Ctrl-C)
    assert "# Error messages" in docgen.error_reference()
