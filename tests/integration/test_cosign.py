"""cosign, built from its Go module, verifies the image signatures of our archives: served by the
built-in registry, and in docker-registry after a push; a re-pointed tag, a replaced signature
and another image's signature all fail.

The transparency log is off (an air-gapped site has none): ``--insecure-ignore-tlog=true``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import make_source
from metalk8s_solutions.archive.signing import Algorithm, generate_key
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.engine.registry import RunningRegistry, ServeOptions, registry_in_thread
from metalk8s_solutions.images.catalog import SolutionImages, load_catalog
from metalk8s_solutions.images.client import RegistryTarget
from metalk8s_solutions.images.push import push_images
from metalk8s_solutions.testing import binaries
from metalk8s_solutions.testing.registry import LocalRegistry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(900)]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def cosign() -> Path:
    """cosign, built once from its pinned Go module (testing/gomod/cosign)."""
    return binaries.ensure(["cosign"])["cosign"]


def verify(cosign: Path, key: Path, reference: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``cosign verify --key`` as a site would run it: no transparency log, plain HTTP."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "TUF_ROOT": str(home / "tuf")}
    command = [
        str(cosign),
        "verify",
        "--key",
        str(key),
        "--insecure-ignore-tlog=true",
        "--allow-insecure-registry",
        "--allow-http-registry",
        reference,
    ]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, env=env, timeout=120
    )


def write_config(path: Path, archives: list[Path]) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
                "kind": "SolutionsConfiguration",
                "archives": [str(a) for a in archives],
            }
        )
    )
    return path


@pytest.fixture
def serving(tmp_path: Path) -> Callable[[Path], Any]:
    def serve(archive: Path) -> Any:
        config = write_config(tmp_path / "solutions.yaml", [archive])
        return registry_in_thread(ServeOptions(config, listen="127.0.0.1:0", interval=0.1))

    return serve


def references(address: str, prefix: str, catalog: SolutionImages) -> Iterator[str]:
    for image, _tag, digest in catalog.image_refs():
        yield f"{address}/{prefix}{catalog.solution_id}/{image}@{digest}"


def assert_verified(result: subprocess.CompletedProcess[str], reference: str) -> None:
    assert result.returncode == 0, (reference, result.stderr)
    claims = json.loads(result.stdout)
    digest = reference.rsplit("@", 1)[1]
    assert [c["critical"]["image"]["docker-manifest-digest"] for c in claims] == [digest]


def test_example_images_verify_when_served_and_after_a_push(
    cosign: Path,
    example_archives: Any,
    serving: Callable[[Path], Any],
    local_registry: LocalRegistry,
    tmp_path: Path,
) -> None:
    """The example Solution as a new user gets it: signed with the key 'solutions keygen'
    made; every image verifies from the built-in registry, then from docker-registry."""
    archive = example_archives.isos["1.0.0"]
    key = example_archives.public_key
    catalog = load_catalog(archive)
    assert len(list(catalog.image_refs())) >= 2
    registry: RunningRegistry
    with serving(archive) as registry:
        for reference in references(registry.address, "", catalog):
            assert_verified(verify(cosign, key, reference, tmp_path / "home"), reference)
            # By tag too: cosign resolves the tag, then checks that digest's signatures.
            by_tag = reference.split("@")[0] + ":" + catalog.manifest.version
            result = verify(cosign, key, by_tag, tmp_path / "home")
            assert result.returncode == 0, (by_tag, result.stderr)
    target = RegistryTarget(local_registry.url, prefix="cosign")
    pushed = asyncio.run(push_images(catalog, target))
    assert pushed.manifests_pushed == 2 * len(list(catalog.image_refs()))
    for reference in references(local_registry.address, "cosign/", catalog):
        assert_verified(verify(cosign, key, reference, tmp_path / "home"), reference)


def test_ed25519_signed_archive_verifies(
    cosign: Path, serving: Callable[[Path], Any], tmp_path: Path
) -> None:
    private, public = generate_key(Algorithm.ED25519)
    (tmp_path / "vendor.key").write_bytes(private)
    (tmp_path / "vendor.pub").write_bytes(public)
    archive = tmp_path / "example-solution-1.0.0.iso"
    build(BuildOptions(make_source(tmp_path / "src"), archive, key=tmp_path / "vendor.key"))
    catalog = load_catalog(archive)
    with serving(archive) as registry:
        for reference in references(registry.address, "", catalog):
            result = verify(cosign, tmp_path / "vendor.pub", reference, tmp_path / "home")
            assert_verified(result, reference)


def _put_manifest(base: str, repository: str, reference: str, data: bytes) -> str:
    response = httpx.put(
        f"{base}/v2/{repository}/manifests/{reference}",
        content=data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    return str(response.headers["Docker-Content-Digest"])


def test_tampering_in_the_registry_fails(
    cosign: Path, built_archive: Callable[[], Path], local_registry: LocalRegistry, tmp_path: Path
) -> None:
    archive = built_archive()
    key = archive.parent / "vendor.pub"
    catalog = load_catalog(archive)
    target = RegistryTarget(local_registry.url, prefix="tamper")
    asyncio.run(push_images(catalog, target))
    base = local_registry.url
    home = tmp_path / "home"
    (base_image, tag, digest), (other_image, _, other_digest) = list(catalog.image_refs())
    repository = f"tamper/{catalog.solution_id}/{base_image}"
    other_repository = f"tamper/{catalog.solution_id}/{other_image}"
    reference = f"{local_registry.address}/{repository}"
    assert verify(cosign, key, f"{reference}@{digest}", home).returncode == 0

    # Another key: the signatures do not verify.
    (tmp_path / "other.pub").write_bytes(generate_key()[1])
    failed = verify(cosign, tmp_path / "other.pub", f"{reference}@{digest}", home)
    assert failed.returncode != 0 and "no matching signatures" in failed.stderr, failed.stderr

    # A tag re-pointed at a modified manifest: it has no signature.
    original = httpx.get(
        f"{base}/v2/{repository}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}
    ).content
    changed = json.loads(original)
    changed["annotations"] = {"org.opencontainers.image.description": "tampered"}
    changed_digest = _put_manifest(base, repository, tag, json.dumps(changed).encode())
    assert changed_digest != digest
    failed = verify(cosign, key, f"{reference}:{tag}", home)
    assert failed.returncode != 0 and "no signatures found" in failed.stderr, failed.stderr

    # A valid signature of another image put under this image's signature tag: its claim
    # names the other manifest.
    sig_tag = "sha256-" + digest.removeprefix("sha256:") + ".sig"
    other_tag = "sha256-" + other_digest.removeprefix("sha256:") + ".sig"
    other_signature = httpx.get(
        f"{base}/v2/{other_repository}/manifests/{other_tag}", headers={"Accept": OCI_MANIFEST}
    ).content
    for blob in [json.loads(other_signature)["config"], *json.loads(other_signature)["layers"]]:
        mounted = httpx.post(
            f"{base}/v2/{repository}/blobs/uploads/",
            params={"mount": blob["digest"], "from": other_repository},
        )
        assert mounted.status_code == 201, mounted.text
    _put_manifest(base, repository, sig_tag, other_signature)
    failed = verify(cosign, key, f"{reference}@{digest}", home)
    assert failed.returncode != 0 and "invalid or missing digest in claim" in failed.stderr, (
        failed.stderr
    )
