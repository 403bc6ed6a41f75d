"""The example Solution's UI image, as the 2.0.0 archive ships it: its layers and config, and
(as root) the image run in a chroot as the product runs it, forwarding the page's API calls to a
stand-in API server over TLS with the caller's credentials only."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import ssl
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml

from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.testing.pki import CertificateAuthority

from .support import (
    EXAMPLE,
    GROUP,
    REF_NAME,
    background,
    chroot_command,
    example_build,
    free_port,
    image_blobs,
    unpack_image,
    wait_until,
)
from .test_ui_server import BASE, PATHS, ui_config

UI = "example-solution-ui:2.0.0"
SERVER = "usr/local/bin/example-solution-ui"
STATIC = "usr/share/example-solution-ui"
# /var/run/secrets/..., where the kubelet mounts it: /var/run is a link to /run in Debian.
CA = "run/secrets/kubernetes.io/serviceaccount/ca.crt"


def top_layer(iso: Path, ref: str) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """``{name: (entry, content)}`` of the last layer of image ``ref`` in the archive."""
    manifest, _ = image_blobs(iso, ref)
    digest = manifest["layers"][-1]["digest"].removeprefix("sha256:")
    with IsoReader(iso) as reader:
        data = gzip.decompress(reader.read_bytes(f"images/blobs/sha256/{digest}"))
    entries: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    with tarfile.open(fileobj=_Reader(data), mode="r|") as tar:
        for member in tar:
            stream = tar.extractfile(member) if member.isreg() else None
            entries[member.name] = (member, stream.read() if stream else b"")
    return entries


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.offset + size
        chunk = self.data[self.offset : end]
        self.offset += len(chunk)
        return chunk


def test_only_2_0_0_ships_the_ui(example_archives: Any) -> None:
    for version, iso in example_archives.isos.items():
        with IsoReader(iso) as reader:
            index = json.loads(reader.read_bytes("images/index.json"))
            manifest = yaml.safe_load(reader.read_bytes("manifest.yaml"))
        refs = {m["annotations"][REF_NAME] for m in index["manifests"]}
        listed = f"example-solution-ui:{version}" in manifest["spec"]["images"]
        assert (f"example-solution-ui:{version}" in refs) == listed == (version == "2.0.0")
    manifest = yaml.safe_load((EXAMPLE / "versions" / "2.0.0" / "manifest.yaml").read_text())
    assert manifest["spec"]["ui"] == {
        "image": {"name": "example-solution-ui", "tag": "2.0.0"},
        "port": 8080,
    }


def test_the_ui_image_config(example_archives: Any) -> None:
    iso = example_archives.isos["2.0.0"]
    manifest, config = image_blobs(iso, UI)
    runtime = config["config"]
    assert runtime["Entrypoint"] == ["/usr/bin/python3", f"/{SERVER}"]
    assert "Cmd" not in runtime
    assert runtime["User"] == "65534:65534"
    assert runtime["ExposedPorts"] == {"8080/tcp": {}}
    assert "SOLUTION_UI_CONFIG=/etc/solution-ui/config.json" in runtime["Env"]
    assert "SOLUTION_UI_PORT=8080" in runtime["Env"]
    base_server, _ = image_blobs(iso, "base-server:2.0.0")
    assert len(manifest["layers"]) == 2
    assert manifest["layers"][0] == base_server["layers"][0], "the shared Debian layer"
    assert manifest["annotations"]["org.opencontainers.image.title"] == "example-solution-ui"


def test_the_ui_layer_holds_the_server_and_the_page(example_archives: Any) -> None:
    entries = top_layer(example_archives.isos["2.0.0"], UI)
    static = sorted(p.name for p in (EXAMPLE / "ui" / "static").iterdir())
    assert static == ["app.js", "index.html", "style.css"]
    assert sorted(entries) == [
        "usr",
        "usr/local",
        "usr/local/bin",
        SERVER,
        "usr/share",
        STATIC,
        *(f"{STATIC}/{name}" for name in static),
    ]
    for name in static:
        info, content = entries[f"{STATIC}/{name}"]
        assert content == (EXAMPLE / "ui" / "static" / name).read_bytes()
        assert (info.mode, info.uid, info.gid, info.mtime) == (0o644, 0, 0, example_build().EPOCH)
    info, server = entries[SERVER]
    assert info.mode == 0o755
    text = server.decode()
    assert text.startswith("#!/usr/bin/python3\n")
    assert '\n__version__ = "2.0.0"\n' in text
    assert f'\nSTATIC = Path("/{STATIC}")\n' in text


def test_the_ui_image_is_reproducible(example_archives: Any, tmp_path: Path) -> None:
    out = tmp_path / "again"
    out.mkdir()
    shutil.copy(example_archives.private_key, out / "vendor.key")
    shutil.copy(example_archives.public_key, out / "vendor.pub")
    again = example_build().build(out, ("2.0.0",))
    assert again.isos["2.0.0"].read_bytes() == example_archives.isos["2.0.0"].read_bytes()
    images = again.info["versions"]["2.0.0"]["images"]
    first = example_archives.info["versions"]["2.0.0"]["images"]
    assert images["example-solution-ui"] == first["example-solution-ui"]


# --- the image run as the product runs it (root: unpacking and chroot) -----------------------


class FakeApi(BaseHTTPRequestHandler):
    """Answers every GET with a VersionServerList; records what it was sent."""

    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, dict(self.headers.items())))
        body = json.dumps({"kind": "VersionServerList", "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Warning", '299 - "v1alpha1 is deprecated"')
        self.send_header("Set-Cookie", "not=forwarded")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """A TLS server on loopback standing in for the API server: (port, its CA in PEM)."""
    ca = CertificateAuthority.create("fake-kubernetes-ca")
    pair = ca.issue("kubernetes", ip_addresses=("127.0.0.1",), server=True)
    (tmp_path / "api.crt").write_bytes(pair.cert_pem)
    (tmp_path / "api.key").write_bytes(pair.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "api.crt", tmp_path / "api.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    FakeApi.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], ca.cert_pem
    finally:
        server.shutdown()
        server.server_close()


def _write(rootfs: Path, path: str, data: bytes) -> None:
    """A file of the image's root filesystem that its user (65534) can read."""
    target = rootfs / path
    # A link in the image (/var/run -> /run) would lead out of it, onto the host.
    assert target.resolve().is_relative_to(rootfs.resolve()), f"{path} leaves the rootfs"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(0o644)


@pytest.mark.skipif(os.geteuid() != 0, reason="unpacking images and chroot need root")
def test_the_ui_image_serves_and_forwards_with_the_callers_credentials(
    example_archives: Any, tmp_path: Path, fake_api: tuple[int, bytes]
) -> None:
    api_port, ca_pem = fake_api
    rootfs = tmp_path / "rootfs"
    runtime = unpack_image(example_archives.isos["2.0.0"], UI, rootfs)
    # What the product and the kubelet mount; the environment they set.
    config = json.dumps(ui_config()).encode()
    _write(rootfs, "etc/solution-ui/config.json", config)
    assert (rootfs / "var" / "run").readlink() == Path("/run")
    _write(rootfs, CA, ca_pem)
    port = free_port()
    env = [
        *runtime["Env"],
        f"SOLUTION_UI_PORT={port}",
        "SOLUTION_UI_LISTEN=127.0.0.1",
        f"SOLUTION_UI_BASE_PATH={BASE}",
        "KUBERNETES_SERVICE_HOST=127.0.0.1",
        f"KUBERNETES_SERVICE_PORT={api_port}",
    ]
    command = chroot_command(rootfs, {**runtime, "Env": env})
    with background(command, tmp_path / "ui.log") as server:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200, "the UI image")
        page = httpx.get(url + BASE)
        assert page.status_code == 200
        assert page.headers["server"].startswith("example-solution-ui/2.0.0 ")
        assert page.text == (EXAMPLE / "ui" / "static" / "index.html").read_text()
        assert httpx.get(f"{url}{BASE}config.json").content == config

        caller = {
            "Authorization": "Bearer the-callers-token",
            "Cookie": "session=secret",
            "Impersonate-User": "system:admin",
            "X-Forwarded-For": "10.0.0.1",
        }
        listed = httpx.get(f"{url}{BASE}api/kubernetes{PATHS[0]}?limit=5", headers=caller)
        assert listed.status_code == 200, (tmp_path / "ui.log").read_text()
        assert listed.json() == {"kind": "VersionServerList", "items": []}
        assert listed.headers["warning"] == '299 - "v1alpha1 is deprecated"'
        assert "set-cookie" not in listed.headers
        refused = httpx.get(f"{url}{BASE}api/kubernetes/api/v1/secrets", headers=caller)
        assert refused.status_code == 403
        anonymous = httpx.get(f"{url}{BASE}api/kubernetes{PATHS[1]}")
        assert anonymous.status_code == 401
        assert server.poll() is None

    [(path, headers)] = FakeApi.seen
    assert path == f"/apis/{GROUP}/v1alpha1/namespaces/prod/versionservers?limit=5"
    sent = {name.lower(): value for name, value in headers.items()}
    assert sent["authorization"] == "Bearer the-callers-token"
    assert sent.keys() <= {"authorization", "accept", "accept-encoding", "host", "user-agent"}
    assert sent["user-agent"].startswith("example-solution-ui/2.0.0")
