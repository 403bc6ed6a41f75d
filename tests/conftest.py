"""Shared fixtures: a small, valid Solution source tree and archive built in Python (the control
plane and registry fixtures come from metalk8s_solutions.testing.pytest_plugin)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metalk8s_solutions.archive.signing import generate_key
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

SOLUTIONS = str(Path(sys.executable).parent / "solutions")

MANIFEST = """\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: Solution
metadata:
  name: example-solution
  annotations:
    solutions.metalk8s.scality.com/display-name: Example Solution
spec:
  version: 1.0.0
  images: [base-server:1.0.0, example-solution-operator:1.0.0]
  operator:
    image: {name: example-solution-operator, tag: 1.0.0}
"""

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: examples.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Example, plural: examples, singular: example, listKind: ExampleList}
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                replicas: {type: integer}
                image: {type: string}
"""

ROLE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: example-solution-operator
rules:
  - apiGroups: [example.com]
    resources: [examples]
    verbs: [get, list, watch, update]
"""


def write_oci_layout(
    root: Path, layers: list[bytes], tag: str, arch: str = "amd64", ref_name: str | None = None
) -> str:
    """An OCI image layout with one image; returns the manifest digest."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layer_descs = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", **put(layer)} for layer in layers
    ]
    config = json.dumps(
        {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
        "layers": layer_descs,
    }
    desc = put(json.dumps(manifest).encode())
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **desc,
                "annotations": {"org.opencontainers.image.ref.name": ref_name or tag},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    return str(desc["digest"])


SHARED_LAYER = b"shared layer " * 1000


def make_source(root: Path) -> Path:
    """A valid source tree at ``root``: two images sharing a layer, a CRD and a role."""
    (root / "operator" / "deploy" / "crds").mkdir(parents=True)
    (root / "manifest.yaml").write_text(MANIFEST)
    (root / "operator" / "deploy" / "crds" / "example.yaml").write_text(CRD)
    (root / "operator" / "deploy" / "role.yaml").write_text(ROLE)
    write_oci_layout(root / "images" / "base-server" / "1.0.0", [SHARED_LAYER, b"base"], "1.0.0")
    write_oci_layout(
        root / "images" / "example-solution-operator" / "1.0.0",
        [SHARED_LAYER, b"operator binary"],
        "1.0.0",
    )
    return root


@pytest.fixture
def source_tree(tmp_path: Path) -> Path:
    return make_source(tmp_path / "src")


@pytest.fixture(scope="session")
def built_archive(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """A signed archive built once per session; returns a fresh copy path on each call."""
    base = tmp_path_factory.mktemp("archive")
    src = make_source(base / "src")
    private, public = generate_key()
    (base / "vendor.key").write_bytes(private)
    (base / "vendor.pub").write_bytes(public)
    iso = base / "example-solution-1.0.0.iso"
    build(BuildOptions(src, iso, key=base / "vendor.key", epoch=1_700_000_000))
    counter = iter(range(1_000_000))

    def copy() -> Path:
        target = tmp_path_factory.mktemp(f"copy{next(counter)}") / iso.name
        target.write_bytes(iso.read_bytes())
        (target.parent / "vendor.pub").write_bytes(public)
        return target

    return copy


def metalk8s_archive(
    tmp_path: Path,
    corrupt: bool = False,
    files: dict[str, bytes | None] | None = None,
    name: str = "metalk8s.iso",
) -> Path:
    """A MetalK8s-layout archive: skopeo dir: images with Docker v2s2 manifests.

    ``files`` replaces or adds files (``None`` leaves one out) beside the images."""
    top: dict[str, bytes | None] = {
        "manifest.yaml": MANIFEST.encode(),
        "operator/deploy/crds/example.yaml": CRD.encode(),
        "operator/deploy/role.yaml": ROLE.encode(),
        "registry-config.inc.j2": b"{# registry #}\n",
        **(files or {}),
    }
    content = {p: d for p, d in top.items() if d is not None}
    for ref in ("base-server/1.0.0", "example-solution-operator/1.0.0"):
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
        content[f"images/{ref}/manifest.json"] = json.dumps(manifest).encode()
        content[f"images/{ref}/version"] = b"Directory Transport Version: 1.1\n"
        content[f"images/{ref}/{hashlib.sha256(config).hexdigest()}"] = config
        content[f"images/{ref}/{hashlib.sha256(layer).hexdigest()}"] = (
            layer.upper() if corrupt else layer
        )
    iso = tmp_path / name
    write_iso(
        iso,
        [IsoFile(p, len(d), (lambda d=d: io.BytesIO(d))) for p, d in content.items()],
        volume_id="M",
        epoch=0,
    )
    return iso


@pytest.fixture(scope="session")
def example_archives(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The example Solution's three signed ISOs, built once per session by
    ``examples/example-solution/build.py`` (layers cached under ~/.cache, so a warm build takes
    about a second; a cold one, with mmdebstrap, under a minute).

    Returns its ``Built`` record: ``.isos`` maps each version ("1.0.0", "1.1.0", "2.0.0") to its
    ISO path, ``.public_key`` / ``.private_key`` are the PEM keys the ISOs are signed with,
    ``.sources`` maps each version to the source tree given to ``solutions build``, ``.info`` is
    build-info.json (digests, sizes, Debian package versions, timings).
    """
    from example_solution.support import example_build  # noqa: PLC0415 (loads build.py)

    return example_build().build(tmp_path_factory.mktemp("example-solution"))


@dataclass(frozen=True)
class SolutionsCli:
    """The installed ``solutions`` command, run as a user would, on one config and cluster."""

    config: Path
    kubeconfig: Path

    def __call__(
        self, *args: str, kubeconfig: Path | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                SOLUTIONS,
                "--config",
                str(self.config),
                "--kubeconfig",
                str(kubeconfig or self.kubeconfig),
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def ok(self, *args: str) -> str:
        """Run, assert success, return stdout."""
        result = self(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def cli(local_cluster: LocalCluster, tmp_path: Path) -> SolutionsCli:
    """``solutions`` with a fresh SolutionsConfiguration, against the session control plane."""
    return SolutionsCli(tmp_path / "etc" / "solutions.yaml", local_cluster.kubeconfig)


@pytest.fixture
def unreachable_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose API server does not exist (port 1 on loopback)."""
    path = tmp_path / "unreachable.kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    return path
