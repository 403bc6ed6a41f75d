"""The built-in registry serves imported archives to real clients (skopeo, plain HTTP).

Each test starts its own registry on a free loopback port against its own SolutionsConfiguration:
in a thread of the test process (fast), or as the ``solutions registry serve`` command when the
process itself matters (signals, restart, port in use).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import make_source, metalk8s_archive
from env_support import serve_command
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.engine.registry import RunningRegistry, ServeOptions, registry_in_thread
from metalk8s_solutions.images.catalog import load_catalog
from metalk8s_solutions.testing.pki import CertificateAuthority

SOLUTIONS = str(Path(sys.executable).parent / "solutions")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

pytestmark = pytest.mark.timeout(120)


def write_config(path: Path, archives: list[Path], **registry: str) -> Path:
    doc: dict[str, object] = {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "SolutionsConfiguration",
        "archives": [str(a) for a in archives],
    }
    if registry:
        doc["registry"] = registry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc))
    tmp.replace(path)  # atomically, as the config store does
    return path


def build_version(tmp_path: Path, version: str) -> Path:
    """An unsigned archive of example-solution ``version`` (same images as 1.0.0)."""
    src = make_source(tmp_path / f"src-{version}")
    manifest = src / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", f"version: {version}"))
    iso = tmp_path / f"example-solution-{version}.iso"
    build(BuildOptions(src, iso, key=None, epoch=1_700_000_000))
    return iso


@contextlib.contextmanager
def serving(config: Path, **options: object) -> Iterator[RunningRegistry]:
    opts = ServeOptions(config, listen="127.0.0.1:0", interval=0.1, **options)  # type: ignore[arg-type]
    with registry_in_thread(opts) as registry:
        yield registry


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def skopeo_run(skopeo: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([skopeo, *args], capture_output=True, text=True, check=False, timeout=60)


def pull_to_dir(skopeo: str, reference: str, dest: Path, *tls: str) -> Path:
    """``skopeo copy`` to a ``dir:`` (keeps the manifest bytes as served); checks every file."""
    tls = tls or ("--src-tls-verify=false",)
    result = skopeo_run(skopeo, "copy", *tls, f"docker://{reference}", f"dir:{dest}")
    assert result.returncode == 0, result.stderr
    for path in dest.iterdir():
        if len(path.name) == 64:  # blobs are named by their hex digest
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    return dest


def manifest_digest(directory: Path) -> str:
    return "sha256:" + hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()


def errors_of(response: httpx.Response) -> list[str]:
    assert response.headers["Content-Type"].startswith("application/json")
    return [e["code"] for e in response.json()["errors"]]


# -- pulls --------------------------------------------------------------------------------------


def test_skopeo_pulls_every_image_of_an_oci_layout_archive(
    built_archive: Callable[[], Path], skopeo: str, tmp_path: Path
) -> None:
    iso = built_archive()
    catalog = load_catalog(iso)
    config = write_config(tmp_path / "solutions.yaml", [iso])
    with serving(config) as registry:
        for image, tag, digest in catalog.image_refs():
            reference = f"{registry.address}/{catalog.solution_id}/{image}:{tag}"
            pulled = pull_to_dir(skopeo, reference, tmp_path / image)
            assert manifest_digest(pulled) == digest
            manifest = json.loads((pulled / "manifest.json").read_bytes())
            assert manifest["mediaType"] == OCI_MANIFEST
            for layer in manifest["layers"]:
                assert (pulled / layer["digest"].split(":")[1]).stat().st_size == layer["size"]
            inspect = skopeo_run(skopeo, "inspect", "--tls-verify=false", f"docker://{reference}")
            assert inspect.returncode == 0, inspect.stderr
            info = json.loads(inspect.stdout)
            assert info["Digest"] == digest
            assert info["RepoTags"] == [
                tag,
                "sha256-" + digest[7:] + ".sig",
            ]  # and its cosign signature
            assert info["Architecture"] == "amd64"
            # by digest too
            by_digest = f"{registry.address}/{catalog.solution_id}/{image}@{digest}"
            again = pull_to_dir(skopeo, by_digest, tmp_path / f"{image}-by-digest")
            assert manifest_digest(again) == digest


def test_skopeo_pulls_a_metalk8s_layout_archive(skopeo: str, tmp_path: Path) -> None:
    iso = metalk8s_archive(tmp_path)
    catalog = load_catalog(iso)
    config = write_config(tmp_path / "solutions.yaml", [iso])
    with serving(config) as registry:
        for image, tag, digest in catalog.image_refs():
            reference = f"{registry.address}/{catalog.solution_id}/{image}:{tag}"
            pulled = pull_to_dir(skopeo, reference, tmp_path / image)
            assert manifest_digest(pulled) == digest
            head = httpx.head(
                f"{registry.url}/v2/{catalog.solution_id}/{image}/manifests/{tag}",
                headers={"Accept": OCI_MANIFEST},  # served as stored: no conversion
            )
            assert head.headers["Content-Type"] == DOCKER_MANIFEST
            assert head.headers["Docker-Content-Digest"] == digest


# -- the protocol, request by request -----------------------------------------------------------


def test_protocol_details(built_archive: Callable[[], Path], tmp_path: Path) -> None:
    iso = built_archive()
    catalog = load_catalog(iso)
    repo = f"{catalog.solution_id}/base-server"
    other = f"{catalog.solution_id}/example-solution-operator"
    config = write_config(tmp_path / "solutions.yaml", [iso])
    with serving(config) as registry, httpx.Client(base_url=registry.url) as http:
        base = http.get("/v2/")
        assert base.status_code == 200
        assert base.headers["Docker-Distribution-API-Version"] == "registry/2.0"

        # manifests: GET and HEAD agree, digest header matches the body
        get = http.get(f"/v2/{repo}/manifests/1.0.0")
        assert get.status_code == 200
        digest = get.headers["Docker-Content-Digest"]
        assert digest == "sha256:" + hashlib.sha256(get.content).hexdigest()
        assert get.headers["Content-Type"] == OCI_MANIFEST
        head = http.head(f"/v2/{repo}/manifests/1.0.0")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["Content-Length"] == str(len(get.content))
        assert head.headers["Docker-Content-Digest"] == digest
        assert http.get(f"/v2/{repo}/manifests/{digest}").content == get.content

        # unknown tag, unknown digest, a digest of another repository, unknown name
        other_digest = http.head(f"/v2/{other}/manifests/1.0.0").headers["Docker-Content-Digest"]
        for reference in ("9.9.9", "sha256:" + "0" * 64, other_digest):
            missing = http.get(f"/v2/{repo}/manifests/{reference}")
            assert missing.status_code == 404
            assert errors_of(missing) == ["MANIFEST_UNKNOWN"]
        assert http.head(f"/v2/{repo}/manifests/9.9.9").status_code == 404
        unknown = http.get(f"/v2/{catalog.solution_id}/nothing/manifests/1.0.0")
        assert unknown.status_code == 404 and errors_of(unknown) == ["NAME_UNKNOWN"]
        assert http.get(f"/v2/{catalog.solution_id}/nothing/tags/list").status_code == 404
        bad = http.get(f"/v2/{repo}/blobs/sha256:zz")
        assert bad.status_code == 400 and errors_of(bad) == ["DIGEST_INVALID"]
        assert errors_of(http.get("/v2/UPPER/x/tags/list")) == ["NAME_INVALID"]

        # blobs: full, HEAD, ranges, 416, unknown, blob of another repository
        manifest = get.json()
        layer = manifest["layers"][-1]
        full = http.get(f"/v2/{repo}/blobs/{layer['digest']}")
        assert full.status_code == 200
        assert "sha256:" + hashlib.sha256(full.content).hexdigest() == layer["digest"]
        assert full.headers["Docker-Content-Digest"] == layer["digest"]
        assert full.headers["Content-Type"] == "application/octet-stream"
        blob_head = http.head(f"/v2/{repo}/blobs/{layer['digest']}")
        assert blob_head.status_code == 200 and blob_head.content == b""
        assert blob_head.headers["Content-Length"] == str(layer["size"])
        assert blob_head.headers["Accept-Ranges"] == "bytes"
        size = layer["size"]
        for header, start, end in (
            ("bytes=1-2", 1, 2),
            ("bytes=2-", 2, size - 1),
            ("bytes=-3", size - 3, size - 1),
            ("bytes=0-99999", 0, size - 1),
        ):
            part = http.get(f"/v2/{repo}/blobs/{layer['digest']}", headers={"Range": header})
            assert part.status_code == 206, header
            assert part.content == full.content[start : end + 1]
            assert part.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        unsatisfiable = http.get(
            f"/v2/{repo}/blobs/{layer['digest']}", headers={"Range": f"bytes={size}-"}
        )
        assert unsatisfiable.status_code == 416
        assert unsatisfiable.headers["Content-Range"] == f"bytes */{size}"
        blob_missing = http.get(f"/v2/{repo}/blobs/sha256:{'0' * 64}")
        assert blob_missing.status_code == 404 and errors_of(blob_missing) == ["BLOB_UNKNOWN"]
        other_layer = http.get(f"/v2/{other}/manifests/1.0.0").json()["layers"][-1]["digest"]
        assert http.head(f"/v2/{repo}/blobs/{other_layer}").status_code == 404
        assert http.head(f"/v2/{other}/blobs/{other_layer}").status_code == 200

        # read-only
        for method, path in (
            ("PUT", f"/v2/{repo}/manifests/2.0.0"),
            ("DELETE", f"/v2/{repo}/manifests/{digest}"),
            ("DELETE", f"/v2/{repo}/blobs/{layer['digest']}"),
            ("POST", f"/v2/{repo}/blobs/uploads/"),
            ("PATCH", f"/v2/{repo}/blobs/uploads/123"),
        ):
            refused = http.request(method, path, content=b"{}")
            assert refused.status_code == 405, (method, path)
            assert errors_of(refused) == ["UNSUPPORTED"]

        # referrers: nothing refers to our images, and the answer is an empty index
        referrers = http.get(f"/v2/{repo}/referrers/{digest}")
        assert referrers.status_code == 200
        assert referrers.json()["manifests"] == []

        # counters, in the Prometheus text format
        metrics = http.get("/metrics").text
        assert f'solutions_registry_bytes_sent_total{{repository="{repo}"}}' in metrics
        assert f'solutions_registry_requests_total{{repository="{repo}",status="206"}} 4' in metrics
        assert registry.metrics.bytes_sent[repo] >= size


def test_catalog_and_tags_pagination(built_archive: Callable[[], Path], tmp_path: Path) -> None:
    iso = built_archive()
    v2 = build_version(tmp_path, "2.0.0")
    config = write_config(tmp_path / "solutions.yaml", [iso, v2])
    with serving(config) as registry, httpx.Client(base_url=registry.url) as http:
        everything = http.get("/v2/_catalog").json()["repositories"]
        assert everything == sorted(everything) and len(everything) == 4
        seen: list[str] = []
        url = "/v2/_catalog?n=3"
        while url:
            page = http.get(url)
            seen += page.json()["repositories"]
            link = page.headers.get("Link")
            url = link.split(">")[0].lstrip("<") if link else ""
        assert seen == everything
        assert http.get("/v2/_catalog?n=0").json()["repositories"] == []
        assert (
            http.get(f"/v2/_catalog?last={everything[1]}").json()["repositories"]
            == (everything[2:])
        )
        # everything[0] is of the signed archive: its tag, then its cosign signature tag
        tags = http.get(f"/v2/{everything[0]}/tags/list?n=1")
        assert tags.json() == {"name": everything[0], "tags": ["1.0.0"]}
        assert "last=1.0.0" in tags.headers["Link"]
        [signature] = http.get(f"/v2/{everything[0]}/tags/list?last=1.0.0").json()["tags"]
        assert signature.startswith("sha256-") and signature.endswith(".sig")
        last = http.get(f"/v2/{everything[0]}/tags/list?last={signature}&n=1")
        assert last.json()["tags"] == [] and "Link" not in last.headers
        bad = http.get("/v2/_catalog?n=x")
        assert bad.status_code == 400


# -- following the configuration ----------------------------------------------------------------


def test_imports_and_unimports_are_served_without_restart(
    built_archive: Callable[[], Path], tmp_path: Path
) -> None:
    iso = built_archive()
    v2 = build_version(tmp_path, "2.0.0")
    config = write_config(tmp_path / "solutions.yaml", [iso])
    with serving(config) as registry, httpx.Client(base_url=registry.url) as http:

        def status(solution_id: str) -> int:
            return http.head(f"/v2/{solution_id}/base-server/manifests/1.0.0").status_code

        assert status("example-solution-1.0.0") == 200
        assert status("example-solution-2.0.0") == 404
        write_config(config, [iso, v2])
        eventually(lambda: status("example-solution-2.0.0") == 200)
        write_config(config, [v2])
        eventually(lambda: status("example-solution-1.0.0") == 404)
        assert status("example-solution-2.0.0") == 200
        gone = http.get("/v2/example-solution-1.0.0/base-server/tags/list")
        assert errors_of(gone) == ["NAME_UNKNOWN"]
        assert http.get("/v2/_catalog").json()["repositories"] == [
            "example-solution-2.0.0/base-server",
            "example-solution-2.0.0/example-solution-operator",
        ]
        # the imports it picked up, live, in its metrics
        metrics = http.get("/metrics").text
        assert 'solutions_registry_imports_total{solution="example-solution-1.0.0"} 1' in metrics
        assert 'solutions_registry_imports_total{solution="example-solution-2.0.0"} 1' in metrics
        assert "solutions_registry_archive_errors_total 0" in metrics


def test_archive_deleted_after_import(
    built_archive: Callable[[], Path],
    skopeo: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    iso = built_archive()
    v2 = build_version(tmp_path, "2.0.0")
    config = write_config(tmp_path / "solutions.yaml", [iso, v2])
    caplog.set_level(logging.INFO, logger="metalk8s_solutions.registry")
    with serving(config) as registry, httpx.Client(base_url=registry.url) as http:
        url = "/v2/example-solution-1.0.0/base-server/manifests/1.0.0"
        assert http.get(url).status_code == 200
        moved = iso.with_name("moved.iso")
        iso.rename(moved)
        eventually(lambda: http.get(url).status_code == 404)
        answer = http.get(url)
        assert errors_of(answer) == ["NAME_UNKNOWN"]
        message = answer.json()["errors"][0]["message"]
        assert str(iso) in message and "missing" in message and "re-import" in message
        # the other archive is still served, to skopeo too
        pulled = pull_to_dir(
            skopeo,
            f"{registry.address}/example-solution-2.0.0/base-server:1.0.0",
            tmp_path / "pulled",
        )
        assert (pulled / "manifest.json").is_file()
        # skopeo shows the registry's message to the user
        failed = skopeo_run(
            skopeo,
            "inspect",
            "--tls-verify=false",
            f"docker://{registry.address}/example-solution-1.0.0/base-server:1.0.0",
        )
        assert failed.returncode != 0 and str(iso) in failed.stderr
        time.sleep(0.5)  # several more checks: still one line
        lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len([line for line in lines if str(iso) in line]) == 1, lines
        # put back: served again
        moved.rename(iso)
        eventually(lambda: http.get(url).status_code == 200)
        metrics = http.get("/metrics").text
        assert "solutions_registry_archive_errors_total 1" in metrics
        assert 'solutions_registry_imports_total{solution="example-solution-1.0.0"} 2' in metrics
        assert 'solutions_registry_archives{state="served"} 2' in metrics


def test_archive_missing_at_start_is_reported(
    built_archive: Callable[[], Path], tmp_path: Path
) -> None:
    iso = built_archive()
    config = write_config(tmp_path / "solutions.yaml", [iso])
    iso.unlink()
    with serving(config) as registry, httpx.Client(base_url=registry.url) as http:
        # the solution id is guessed from the file name <name>-<version>.iso
        answer = http.get("/v2/example-solution-1.0.0/base-server/tags/list")
        assert answer.status_code == 404
        assert str(iso) in answer.json()["errors"][0]["message"]


# -- the command --------------------------------------------------------------------------------


def test_command_stops_on_signals_and_serves_again_after_restart(
    built_archive: Callable[[], Path], tmp_path: Path
) -> None:
    iso = built_archive()
    config = write_config(tmp_path / "solutions.yaml", [iso])
    for sig in (signal.SIGTERM, signal.SIGINT):
        with serve_command(config, "--listen", "127.0.0.1:0") as (proc, url):
            answer = httpx.get(f"{url}/v2/example-solution-1.0.0/base-server/tags/list")
            assert answer.json()["tags"][0] == "1.0.0"  # then its signature tag
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=10)
            assert proc.returncode == 0, stderr
            assert "Traceback" not in stderr
            assert "tags/list" in stderr  # the access log
            assert "serving 2 repositories of example-solution-1.0.0" in stderr


def test_command_reports_port_in_use_and_bad_tls(tmp_path: Path) -> None:
    config = write_config(tmp_path / "solutions.yaml", [])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [
                SOLUTIONS,
                "--config",
                str(config),
                "registry",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    result = subprocess.run(
        [
            SOLUTIONS,
            "--config",
            str(config),
            "registry",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            str(garbage),
            "--tls-key",
            str(garbage),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot use TLS certificate {garbage}" in result.stderr
    assert "Traceback" not in result.stderr


# -- TLS ----------------------------------------------------------------------------------------


def test_tls_with_a_private_ca(
    built_archive: Callable[[], Path], skopeo: str, tmp_path: Path
) -> None:
    ca = CertificateAuthority.create("registry-test-ca")
    pair = ca.issue("127.0.0.1", ip_addresses=("127.0.0.1",), dns_names=("localhost",), server=True)
    tls = tmp_path / "tls"
    certs = tmp_path / "certs.d"
    tls.mkdir()
    certs.mkdir()
    (tls / "registry.crt").write_bytes(pair.cert_pem)
    (tls / "registry.key").write_bytes(pair.key_pem)
    (certs / "ca.crt").write_bytes(ca.cert_pem)
    iso = built_archive()
    catalog = load_catalog(iso)
    # certificate and key from the configuration's registry settings
    config = write_config(
        tmp_path / "solutions.yaml",
        [iso],
        tlsCert=str(tls / "registry.crt"),
        tlsKey=str(tls / "registry.key"),
    )
    with serving(config) as registry:
        assert registry.url.startswith("https://")
        for image, tag, digest in catalog.image_refs():
            pulled = pull_to_dir(
                skopeo,
                f"{registry.address}/{catalog.solution_id}/{image}:{tag}",
                tmp_path / image,
                f"--src-cert-dir={certs}",
                "--src-tls-verify=true",
            )
            assert manifest_digest(pulled) == digest
        # ranges over TLS go through the chunked path (the kernel cannot encrypt)
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        with httpx.Client(base_url=registry.url, verify=context) as http:
            repo = f"{catalog.solution_id}/base-server"
            layer = http.get(f"/v2/{repo}/manifests/1.0.0").json()["layers"][0]
            full = http.get(f"/v2/{repo}/blobs/{layer['digest']}").content
            assert "sha256:" + hashlib.sha256(full).hexdigest() == layer["digest"]
            part = http.get(f"/v2/{repo}/blobs/{layer['digest']}", headers={"Range": "bytes=5-"})
            assert part.status_code == 206 and part.content == full[5:]
        # and a client that does not trust the CA is refused
        refused = skopeo_run(
            skopeo,
            "inspect",
            "--tls-verify=true",
            f"docker://{registry.address}/{catalog.solution_id}/base-server:1.0.0",
        )
        assert refused.returncode != 0 and "certificate" in refused.stderr


def test_registry_in_thread_releases_its_port(
    built_archive: Callable[[], Path], tmp_path: Path
) -> None:
    iso = built_archive()
    config = write_config(tmp_path / "solutions.yaml", [iso])
    with serving(config) as registry:
        address = registry.address
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))  # free again
    assert os.path.exists(iso)  # noqa: PTH110 - the archive is never touched
