"""The OperatorConfig: which registry endpoint serves each imported version of the Solution.

The product mounts ConfigMap ``example-solution-operator-config`` (key ``operator.yaml``) at
``/etc/config`` and passes ``--config=/etc/config/operator.yaml``::

    apiVersion: solutions.metalk8s.scality.com/v1alpha1
    kind: OperatorConfig
    repositories:
      1.0.0:
        - endpoint: registry.example:5000/example-solution-1.0.0
          images: [base-server:1.0.0, example-solution-operator:1.0.0]

It is validated strictly: a typo must stop the operator with a message naming the field, not
produce Deployments with a wrong image.  Image entries are ``name:tag``, ``name@sha256:<hex>`` or
``name:tag@sha256:<hex>``; a digest, when given, is what the operator deploys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "solutions.metalk8s.scality.com/v1alpha1"
KIND = "OperatorConfig"
MAX_BYTES = 1024 * 1024

_NAME = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?P<name>{_NAME})(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class ConfigError(Exception):
    """The OperatorConfig is missing, unreadable or invalid; the message names the field."""


@dataclass(frozen=True)
class ImageRef:
    """One entry of ``images``: ``name[:tag][@digest]`` (at least a tag or a digest)."""

    name: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str, where: str) -> ImageRef:
        match = _IMAGE.match(text)
        if match is None or (match["tag"] is None and match["digest"] is None):
            raise ConfigError(
                f"{where}: {text!r} is not an image reference; "
                "write name:tag, name@sha256:<hex> or name:tag@sha256:<hex>"
            )
        return cls(match["name"], match["tag"], match["digest"])

    def pull_reference(self, endpoint: str) -> str:
        """Where to pull it from ``endpoint``: by digest when known, else by tag."""
        if self.digest is not None:
            return f"{endpoint}/{self.name}@{self.digest}"
        return f"{endpoint}/{self.name}:{self.tag}"


@dataclass(frozen=True)
class Repository:
    endpoint: str
    images: tuple[ImageRef, ...]

    def find(self, name: str) -> ImageRef | None:
        return next((image for image in self.images if image.name == name), None)


@dataclass(frozen=True)
class OperatorConfig:
    repositories: Mapping[str, tuple[Repository, ...]]

    def versions(self) -> list[str]:
        return sorted(self.repositories)


def _expect_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be a non-empty string, got {value!r}")
    if value != value.strip():
        raise ConfigError(f"{where}: {value!r} has leading or trailing spaces")
    return value


def _repository(entry: Any, where: str) -> Repository:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping with endpoint and images")
    _expect_keys(entry, {"endpoint", "images"}, where)
    if "endpoint" not in entry:
        raise ConfigError(f"{where}: endpoint is missing")
    endpoint = _string(entry["endpoint"], f"{where}.endpoint").rstrip("/")
    images = entry.get("images")
    if not isinstance(images, list) or not images:
        raise ConfigError(f"{where}.images: must be a non-empty list of image references")
    refs = tuple(
        ImageRef.parse(_string(image, f"{where}.images[{i}]"), f"{where}.images[{i}]")
        for i, image in enumerate(images)
    )
    return Repository(endpoint, refs)


def parse_config(text: str, source: str = "operator config") -> OperatorConfig:
    """Parse and strictly validate an OperatorConfig document."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a YAML mapping (an OperatorConfig document)")
    _expect_keys(data, {"apiVersion", "kind", "repositories"}, source)
    if data.get("apiVersion") != API_VERSION:
        raise ConfigError(
            f"{source}: apiVersion is {data.get('apiVersion')!r}, expected {API_VERSION!r}"
        )
    if data.get("kind") != KIND:
        raise ConfigError(f"{source}: kind is {data.get('kind')!r}, expected {KIND!r}")
    repositories = data.get("repositories")
    if not isinstance(repositories, dict) or not repositories:
        raise ConfigError(f"{source}: repositories must be a non-empty mapping of version to list")
    parsed: dict[str, tuple[Repository, ...]] = {}
    for version, entries in repositories.items():
        if not isinstance(version, str) or not version:
            raise ConfigError(
                f"{source}: repositories key {version!r} is not a version string (quote it)"
            )
        where = f"{source}: repositories[{version}]"
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{where}: must be a non-empty list of repositories")
        parsed[version] = tuple(_repository(e, f"{where}[{i}]") for i, e in enumerate(entries))
    return OperatorConfig(parsed)


def load_config(path: Path) -> OperatorConfig:
    """Read and validate the OperatorConfig at ``path``."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the operator config: {err.strerror}") from err
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES} bytes, not an operator config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text") from err
    return parse_config(text, str(path))
