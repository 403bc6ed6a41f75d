"""Push mode against real registries: Debian's docker-registry (CNCF distribution 2.8), plain,
with htpasswd basic auth, behind a bearer-token server, and over TLS with a private CA.

Every push is checked the way a node would see it: skopeo pulls each image back by digest and
the digests match the archive's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import CRD, ROLE, metalk8s_archive, write_oci_layout
from metalk8s_solutions.cli.main import main as cli_main
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.errors import RegistryError
from metalk8s_solutions.images.catalog import load_catalog
from metalk8s_solutions.images.client import RegistryTarget
from metalk8s_solutions.images.push import Action, PushResult, push_images
from metalk8s_solutions.testing.pki import CertificateAuthority
from metalk8s_solutions.testing.processes import ProcessRecord, free_port, spawn, wait_until
from metalk8s_solutions.testing.registry import LocalRegistry, find_docker_registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]

MIB = 1024 * 1024


# -- archives ---------------------------------------------------------------------------------


def solution_source(root: Path, version: str, images: dict[str, list[bytes]]) -> Path:
    """A source tree of ``example-solution`` ``version`` with one OCI layout per image."""
    (root / "operator" / "deploy" / "crds").mkdir(parents=True)
    refs = ", ".join(f"{image}:{version}" for image in images)
    operator = next(iter(images))
    (root / "manifest.yaml").write_text(
        "apiVersion: solutions.metalk8s.scality.com/v1alpha1\n"
        "kind: Solution\n"
        "metadata:\n  name: example-solution\n"
        f"spec:\n  version: {version}\n  images: [{refs}]\n"
        f"  operator:\n    image: {{name: {operator}, tag: {version}}}\n"
    )
    (root / "operator" / "deploy" / "crds" / "example.yaml").write_text(CRD)
    (root / "operator" / "deploy" / "role.yaml").write_text(ROLE)
    for image, layers in images.items():
        write_oci_layout(root / "images" / image / version, layers, version)
    return root


def build_archive(tmp_path: Path, version: str, images: dict[str, list[bytes]]) -> Path:
    source = solution_source(tmp_path / f"src-{version}", version, images)
    iso = tmp_path / f"example-solution-{version}.iso"
    build(BuildOptions(source, iso))
    return iso


def push(archive: Path, target: RegistryTarget, **options: object) -> PushResult:
    return asyncio.run(push_images(load_catalog(archive), target, **options))  # type: ignore[arg-type]


def pull_and_compare(skopeo: str, result: PushResult, tmp_path: Path, **tls: str) -> None:
    """Pull every pushed image by digest with skopeo; its manifest digest must be the same."""
    assert result.images
    for ref, location in result.images.items():
        out = tmp_path / "pulled" / ref.replace(":", "-")
        out.parent.mkdir(exist_ok=True)
        argv = [skopeo, "copy", "--preserve-digests"]
        argv += [f"--src-{k.replace('_', '-')}={v}" for k, v in tls.items()] or [
            "--src-tls-verify=false"
        ]
        argv += [f"docker://{location}", f"oci:{out}:pulled"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        index = json.loads((out / "index.json").read_text())
        assert index["manifests"][0]["digest"] == location.rsplit("@", 1)[1]
        for blob in (out / "blobs" / "sha256").iterdir():
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def stored_blobs(registry_root: Path) -> set[str]:
    """Digests of the blobs a docker-registry has committed (its global blob store)."""
    base = registry_root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    if not base.is_dir():
        return set()
    return {f"sha256:{path.parent.name}" for path in base.glob("*/*/data")}


# -- registries with authentication and TLS -----------------------------------------------------


@dataclass
class Registry:
    """A docker-registry with a configuration of our own."""

    url: str
    root: Path
    record: ProcessRecord

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc


@contextlib.contextmanager
def registry_with(
    root: Path, extra: dict[str, object], tls: tuple[Path, Path] | None = None
) -> Iterator[Registry]:
    port = free_port()
    http: dict[str, object] = {"addr": f"127.0.0.1:{port}"}
    if tls is not None:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": http,
        **extra,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yml").write_text(yaml.safe_dump(config))
    record = spawn(
        "docker-registry",
        [find_docker_registry(), "serve", str(root / "config.yml")],
        root / "registry.log",
        bind_to_parent=True,
    )
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        wait_until(
            record,
            lambda: (
                httpx.get(f"{url}/v2/", verify=False, timeout=2).status_code  # noqa: S501
                in (200, 401)
            ),
            timeout=30,
            what="answer /v2/",
        )
        yield Registry(url, root, record)
    finally:
        record.stop()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A Docker token service: checks basic credentials, grants scopes, signs ES256 JWTs."""

    SERVICE = "test-registry"
    ISSUER = "test-token-issuer"

    def __init__(self, ca: CertificateAuthority, users: dict[str, tuple[str, tuple[str, ...]]]):
        pair = ca.issue("token-signer", client=True)
        self.cert_der = x509.load_pem_x509_certificate(pair.cert_pem).public_bytes(
            serialization.Encoding.DER
        )
        key = serialization.load_pem_private_key(pair.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key
        self.users = users  # user -> (password, actions granted)
        self.requests: list[dict[str, list[str]]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def sign(self, user: str, scopes: list[str], actions: tuple[str, ...]) -> str:
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, name, wanted = scope.split(":")
            granted = [a for a in wanted.split(",") if a in actions]
            access.append({"type": kind, "name": name, "actions": granted})
        claims = {
            "iss": self.ISSUER,
            "sub": user,
            "aud": self.SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing_input = (
            f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server.requests.append(query)
                auth = self.headers.get("Authorization", "")
                user = password = ""
                if auth.startswith("Basic "):
                    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                known = server.users.get(user)
                if known is None or known[0] != password:
                    self.send_response(401)
                    self.end_headers()
                    return
                token = server.sign(user, query.get("scope", []), known[1])
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def __enter__(self) -> TokenServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class ThrottledProxy:
    """A TCP proxy that forwards uploads at ``rate`` bytes/s in total: slow enough to be
    interrupted in the middle of a push, on purpose."""

    def __init__(self, upstream_port: int, rate: int) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.budget_lock = asyncio.Lock()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, throttle: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(64 * 1024):
                if throttle:
                    async with self.budget_lock:
                        await asyncio.sleep(len(data) / self.rate)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(
            self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False)
        )

    def __enter__(self) -> ThrottledProxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", self.port), self.loop
        ).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


# -- tests --------------------------------------------------------------------------------------


def test_push_archive_then_pull_every_image_back_by_digest(
    built_archive: Callable[[], Path], local_registry: LocalRegistry, skopeo: str, tmp_path: Path
) -> None:
    archive = built_archive()
    catalog = load_catalog(archive)
    target = RegistryTarget(local_registry.url, prefix="first/push")
    events = []
    result = asyncio.run(push_images(catalog, target, progress=events.append))

    unique = {d for repos in catalog.repository_blobs.values() for d in repos} - set(
        catalog.manifests
    )
    assert result.uploaded_blobs == len(unique)
    assert result.uploaded_bytes == sum(catalog.blobs[d].size for d in unique)
    assert result.mounted_blobs == 2  # the shared layer and config are uploaded once
    assert result.manifests_pushed == 4  # 2 images, 2 cosign signatures
    assert result.images == {
        f"{image}:{tag}": f"{local_registry.address}/first/push/example-solution-1.0.0/{image}@{d}"
        for image, tag, d in catalog.image_refs()
    }
    assert result.references_at("registry.cluster:5000/first/push/") == {
        f"{image}:{tag}": f"registry.cluster:5000/first/push/example-solution-1.0.0/{image}@{d}"
        for image, tag, d in catalog.image_refs()
    }
    assert events[-1].phase == "done"
    assert events[-1].bytes_done == events[-1].bytes_total == result.uploaded_bytes
    assert events[-1].blobs_done == events[-1].blobs_total
    pull_and_compare(skopeo, result, tmp_path)
    tags = httpx.get(
        f"{local_registry.url}/v2/first/push/example-solution-1.0.0/base-server/tags/list"
    ).json()
    assert tags["tags"][0] == "1.0.0"  # and the signature tag sha256-<hex>.sig
    assert [t.endswith(".sig") for t in tags["tags"]] == [False, True]

    again = asyncio.run(push_images(catalog, target, progress=events.append))
    assert again.uploaded_bytes == 0 and again.uploaded_blobs == 0 and again.mounted_blobs == 0
    assert again.skipped_blobs == result.uploaded_blobs + result.mounted_blobs
    assert again.manifests_pushed == 0 and again.manifests_skipped == 4
    assert again.images == result.images


def test_push_metalk8s_layout_archive_with_chunked_uploads(
    local_registry: LocalRegistry, skopeo: str, tmp_path: Path
) -> None:
    archive = metalk8s_archive(tmp_path)
    target = RegistryTarget(local_registry.url, prefix="metalk8s")
    result = push(archive, target, chunk_size=16)  # every layer in several PATCH chunks
    assert result.uploaded_blobs >= 2 and result.manifests_pushed == 2
    pull_and_compare(skopeo, result, tmp_path)
    resp = httpx.get(
        f"{local_registry.url}/v2/metalk8s/example-solution-1.0.0/base-server/manifests/1.0.0",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert resp.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert resp.headers["Docker-Content-Digest"] == result.images["base-server:1.0.0"].split("@")[1]


def test_next_version_mounts_the_layers_it_shares(
    local_registry: LocalRegistry, skopeo: str, tmp_path: Path
) -> None:
    base, tools = os.urandom(3 * MIB), os.urandom(MIB)
    first = build_archive(
        tmp_path,
        "1.0.0",
        {"operator": [base, b"operator 1.0.0"], "server": [base, tools, b"server 1.0.0"]},
    )
    second = build_archive(
        tmp_path,
        "1.1.0",
        {"operator": [base, b"operator 1.1.0"], "server": [base, tools, b"server 1.1.0"]},
    )
    target = RegistryTarget(local_registry.url, prefix="versions")
    full = push(first, target)
    dry = push(second, target, related=["example-solution-1.0.0"], dry_run=True)
    assert {s.action for s in dry.steps if s.size >= MIB} == {Action.MOUNT}
    assert dry.manifests_pushed == 2

    result = push(second, target, related=["example-solution-1.0.0"])
    assert result.mounted_bytes >= 2 * len(base) + len(tools)
    assert result.uploaded_bytes < 1024  # the small own layers and configs only
    assert result.uploaded_bytes < full.uploaded_bytes * 0.15
    assert next(s.source for s in result.steps if s.size == len(base)) == (
        "versions/example-solution-1.0.0/operator"
    )
    pull_and_compare(skopeo, result, tmp_path)


def multi_platform_layout(root: Path, tag: str) -> str:
    """An OCI layout whose image is an index of two platform manifests; the index digest."""
    digests = []
    for arch in ("amd64", "arm64"):
        write_oci_layout(root, [f"{arch} layer".encode()], tag, arch=arch)
        digests.append(json.loads((root / "index.json").read_text())["manifests"][0])
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {**d, "annotations": {}, "platform": {"os": "linux", "architecture": arch}}
                for d, arch in zip(digests, ("amd64", "arm64"), strict=True)
            ],
        }
    ).encode()
    hexdigest = hashlib.sha256(index).hexdigest()
    (root / "blobs" / "sha256" / hexdigest).write_bytes(index)
    top = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": f"sha256:{hexdigest}",
        "size": len(index),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return f"sha256:{hexdigest}"


def test_multi_platform_index_is_pushed_after_its_manifests(
    local_registry: LocalRegistry, skopeo: str, tmp_path: Path
) -> None:
    source = solution_source(tmp_path / "src", "1.0.0", {"operator": [b"operator"]})
    shutil.rmtree(source / "images" / "operator")
    index_digest = multi_platform_layout(source / "images" / "operator" / "1.0.0", "1.0.0")
    iso = tmp_path / "multi.iso"
    build(BuildOptions(source, iso))
    # distribution refuses an index whose manifests are not there yet: order matters.
    result = push(iso, RegistryTarget(local_registry.url, prefix="multi"))
    assert result.images["operator:1.0.0"].endswith(f"@{index_digest}")
    assert result.uploaded_blobs == 4  # two layers, two configs
    out = tmp_path / "pulled"
    done = subprocess.run(
        [
            skopeo,
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            f"docker://{result.images['operator:1.0.0']}",
            f"oci:{out}:pulled",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == index_digest


def test_dry_run_pushes_nothing(local_registry: LocalRegistry, tmp_path: Path) -> None:
    archive = build_archive(tmp_path, "1.0.0", {"operator": [b"a layer"], "server": [b"b"]})
    target = RegistryTarget(local_registry.url, prefix="dry")
    dry = push(archive, target, dry_run=True)
    assert dry.dry_run and dry.uploaded_blobs >= 2 and dry.manifests_pushed == 2
    resp = httpx.get(f"{local_registry.url}/v2/dry/example-solution-1.0.0/operator/tags/list")
    assert resp.status_code == 404
    real = push(archive, target)
    assert (real.uploaded_blobs, real.mounted_blobs) == (dry.uploaded_blobs, dry.mounted_blobs)


def test_sigkill_during_push_then_rerun_converges(skopeo: str, tmp_path: Path) -> None:
    images = {f"image{i}": [os.urandom(6 * MIB), f"own {i}".encode()] for i in range(6)}
    archive = build_archive(tmp_path, "1.0.0", images)
    catalog = load_catalog(archive)
    registry = LocalRegistry(tmp_path / "registry").start()
    try:
        with ThrottledProxy(registry.port or 0, rate=12 * MIB) as proxy:
            command = [
                sys.executable,
                "-m",
                "metalk8s_solutions.cli",
                "--config",
                str(tmp_path / "absent.yaml"),
                "push",
                str(archive),
                "--registry",
                f"http://127.0.0.1:{proxy.port}",
                "--concurrency",
                "2",
                "-q",
            ]
            process = subprocess.Popen(command, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while len(stored_blobs(registry.root)) < 3 and time.monotonic() < deadline:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        time.sleep(0.5)  # let the registry finish what it was committing
        before = stored_blobs(registry.root)
        needed = {d for repos in catalog.repository_blobs.values() for d in repos} - set(
            catalog.manifests
        )
        assert 3 <= len(before & needed) < len(needed), "the push was not interrupted midway"
        tags = httpx.get(f"{registry.url}/v2/example-solution-1.0.0/image0/tags/list")
        assert tags.status_code == 404  # manifests come last: nothing is half-visible

        target = RegistryTarget(registry.url)
        result = push(archive, target)
        missing = needed - before
        assert result.uploaded_bytes == sum(catalog.blobs[d].size for d in missing)
        assert result.uploaded_blobs == len(missing)
        assert result.skipped_blobs + result.mounted_blobs + result.uploaded_blobs == sum(
            len(set(repos) - set(catalog.manifests)) for repos in catalog.repository_blobs.values()
        )
        pull_and_compare(skopeo, result, tmp_path)
        assert push(archive, target).uploaded_bytes == 0
    finally:
        registry.stop()


@pytest.fixture(scope="module")
def basic_auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("basic-registry")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5)).decode()
    (root / "htpasswd").write_text(f"pusher:{hashed}\n")
    auth = {"auth": {"htpasswd": {"realm": "test", "path": str(root / "htpasswd")}}}
    with registry_with(root, auth) as registry:
        yield registry


def test_basic_auth(
    basic_auth_registry: Registry,
    built_archive: Callable[[], Path],
    skopeo: str,
    tmp_path: Path,
) -> None:
    archive = built_archive()
    url = basic_auth_registry.url
    result = push(
        archive, RegistryTarget(url, prefix="basic", username="pusher", password="s3cret")
    )
    assert result.manifests_pushed == 4  # 2 images, 2 cosign signatures
    pull_and_compare(skopeo, result, tmp_path, creds="pusher:s3cret", tls_verify="false")

    with pytest.raises(RegistryError) as wrong:
        push(archive, RegistryTarget(url, username="pusher", password="wrong"))
    assert "credentials of user 'pusher' were rejected" in str(wrong.value)
    assert url in str(wrong.value) and "passwordFile" in str(wrong.value)

    with pytest.raises(RegistryError) as anonymous:
        push(archive, RegistryTarget(url))
    assert "requires authentication" in str(anonymous.value)
    assert "registry.username" in str(anonymous.value)


def test_bearer_token_auth(built_archive: Callable[[], Path], skopeo: str, tmp_path: Path) -> None:
    ca = CertificateAuthority.create("token-ca")
    (tmp_path / "token-ca.pem").write_bytes(ca.cert_pem)
    users = {"pusher": ("t0ken-pass", ("pull", "push")), "reader": ("read", ("pull",))}
    with TokenServer(ca, users) as tokens:
        auth = {
            "auth": {
                "token": {
                    "realm": tokens.realm,
                    "service": TokenServer.SERVICE,
                    "issuer": TokenServer.ISSUER,
                    "rootcertbundle": str(tmp_path / "token-ca.pem"),
                }
            }
        }
        with registry_with(tmp_path / "registry", auth) as registry:
            archive = built_archive()
            target = RegistryTarget(
                registry.url, prefix="bearer", username="pusher", password="t0ken-pass"
            )
            result = push(archive, target)
            assert result.manifests_pushed == 4 and result.mounted_blobs == 2
            # One token per scope, reused: far fewer token requests than registry requests.
            scopes = [tuple(q.get("scope", [])) for q in tokens.requests]
            assert len(scopes) == len(set(scopes)) <= 6
            assert any(
                "repository:bearer/example-solution-1.0.0/base-server:pull,push" in s
                for s in scopes
            )
            pull_and_compare(
                skopeo, result, tmp_path, creds="pusher:t0ken-pass", tls_verify="false"
            )

            again = push(archive, target)
            assert again.uploaded_bytes == 0

            with pytest.raises(RegistryError) as wrong:
                push(archive, RegistryTarget(registry.url, username="pusher", password="nope"))
            assert "token server" in str(wrong.value) and "refused user 'pusher'" in str(
                wrong.value
            )

            with pytest.raises(RegistryError) as denied:
                push(archive, RegistryTarget(registry.url, username="reader", password="read"))
            assert "access denied to user 'reader'" in str(denied.value)
            assert "grant push permission" in str(denied.value)


def test_tls_with_a_custom_ca(
    built_archive: Callable[[], Path], skopeo: str, tmp_path: Path
) -> None:
    ca = CertificateAuthority.create("registry-ca")
    pair = ca.issue("registry", ip_addresses=("127.0.0.1",), server=True)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(pair.key_pem)
    tls = (tmp_path / "tls.crt", tmp_path / "tls.key")
    with registry_with(tmp_path / "registry", {}, tls=tls) as registry:
        archive = built_archive()
        result = push(archive, RegistryTarget(registry.url, ca_file=tmp_path / "ca.pem"))
        assert result.manifests_pushed == 4  # 2 images, 2 cosign signatures
        certs = tmp_path / "certs"
        certs.mkdir()
        (certs / "ca.crt").write_bytes(ca.cert_pem)
        pull_and_compare(skopeo, result, tmp_path, cert_dir=str(certs))

        with pytest.raises(RegistryError) as untrusted:
            push(archive, RegistryTarget(registry.url))
        message = str(untrusted.value)
        assert "TLS certificate is not trusted" in message and "caFile" in message

        with pytest.raises(RegistryError) as plain:
            push(archive, RegistryTarget(registry.url.replace("https", "http"), insecure=True))
        assert "https://" in str(plain.value)

        insecure = push(archive, RegistryTarget(registry.url, insecure=True))
        assert insecure.uploaded_bytes == 0


def test_unreachable_registry_and_corrupt_archive(
    local_registry: LocalRegistry, tmp_path: Path
) -> None:
    with pytest.raises(RegistryError) as unreachable:
        push(metalk8s_archive(tmp_path), RegistryTarget(f"http://127.0.0.1:{free_port()}"))
    assert "unreachable" in str(unreachable.value) and "pushUrl" in str(unreachable.value)

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    with pytest.raises(RegistryError) as mismatch:
        push(metalk8s_archive(corrupt, corrupt=True), RegistryTarget(local_registry.url))
    message = str(mismatch.value)
    assert "does not match its digest" in message and "solutions validate" in message


def test_push_command(
    local_registry: LocalRegistry,
    built_archive: Callable[[], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "solutions.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
                "kind": "SolutionsConfiguration",
                "registry": {"mode": "push", "pushUrl": local_registry.url, "pushPrefix": "cli"},
            }
        )
    )
    archive = built_archive()
    argv = ["--config", str(config), "push", str(archive), "-o", "json"]
    assert cli_main([*argv, "--dry-run"]) == 0
    planned = json.loads(capsys.readouterr().out)
    # two images and, the archive being signed, their two cosign signature images
    assert planned[0]["dryRun"] is True and planned[0]["manifests"]["pushed"] == 4

    assert cli_main(argv) == 0
    pushed = json.loads(capsys.readouterr().out)[0]
    assert pushed["prefix"] == "cli" and pushed["manifests"]["pushed"] == 4
    assert all("/cli/example-solution-1.0.0/" in ref for ref in pushed["images"].values())

    assert cli_main(["--config", str(config), "push", str(archive), "-q"]) == 0
    human = capsys.readouterr().out
    assert "uploaded 0 blobs" in human and "4 up to date" in human

    status = cli_main(["--config", str(config), "push", str(archive), "--registry", "bad url"])
    assert status == 1
    assert "not valid" in capsys.readouterr().err
