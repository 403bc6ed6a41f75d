"""The local registry is a real OCI registry: skopeo pushes to it and pulls the same bytes back."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from metalk8s_solutions.testing.images import write_test_image
from metalk8s_solutions.testing.registry import LocalRegistry

pytestmark = pytest.mark.registry


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_push_then_pull_through_the_local_registry(
    local_registry: LocalRegistry, skopeo: str, tmp_path: Path
) -> None:
    image = write_test_image(
        tmp_path / "src",
        "demo:1.0",
        [{"etc/motd": b"hello\n"}, {"srv/data.bin": bytes(range(256)) * 64}],
    )
    dest = f"docker://{local_registry.address}/solutions-test/demo:1.0"
    run(
        skopeo,
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci:{image.layout}:demo:1.0",
        dest,
    )

    # The registry serves the manifest under its digest, through the standard API.
    resp = httpx.get(
        f"{local_registry.url}/v2/solutions-test/demo/manifests/1.0",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert resp.status_code == 200
    assert resp.headers["Docker-Content-Digest"] == image.manifest_digest
    assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == image.manifest_digest
    tags = httpx.get(f"{local_registry.url}/v2/solutions-test/demo/tags/list").json()
    assert tags["tags"] == ["1.0"]

    # Pull back into a fresh layout: identical blobs.
    out = tmp_path / "pulled"
    run(skopeo, "copy", "--preserve-digests", "--src-tls-verify=false", dest, f"oci:{out}:demo:1.0")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.manifest_digest
    for digest in image.layer_digests:
        hex_digest = digest.split(":", 1)[1]
        pulled = (out / "blobs" / "sha256" / hex_digest).read_bytes()
        assert pulled == (image.layout / "blobs" / "sha256" / hex_digest).read_bytes()


def test_registry_refuses_a_busy_port(tmp_path: Path, local_registry: LocalRegistry) -> None:
    from metalk8s_solutions.errors import EnvironmentFailure  # noqa: PLC0415

    with pytest.raises(EnvironmentFailure, match=rf"port {local_registry.port} .* in use"):
        LocalRegistry(tmp_path / "second", port=local_registry.port).start()
