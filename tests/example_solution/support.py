"""Helpers for the example Solution's tests: its build, its images, its operator as a process.

The build script lives with the example (``examples/example-solution/build.py``, not part of the
package); it is loaded from there so that the tests build exactly what ``make examples`` builds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import yaml

from metalk8s_solutions.archive.iso import IsoReader

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "example-solution"
VERSIONS = ("1.0.0", "1.1.0", "2.0.0")
GROUP = "example-solution.metalk8s.scality.com"
CRD_NAME = f"versionservers.{GROUP}"
REF_NAME = "org.opencontainers.image.ref.name"


def example_build() -> ModuleType:
    """``examples/example-solution/build.py``, imported once."""
    name = "example_solution_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / "build.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def crd_document(version: str) -> dict[str, Any]:
    path = EXAMPLE / "versions" / version / "operator" / "deploy" / "crds" / "versionservers.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def role_document(version: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (EXAMPLE / "versions" / version / "operator" / "deploy" / "role.yaml").read_text()
    )
    return document


def operator_config(
    repositories: dict[str, list[str]], digests: dict[str, str] | None = None
) -> str:
    """An OperatorConfig listing ``{version: [endpoint, ...]}`` with the example's two images;
    ``digests`` gives the base-server digest of some versions (``{version: "sha256:..."}``)."""
    digests = digests or {}
    document = {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "OperatorConfig",
        "repositories": {
            version: [
                {
                    "endpoint": endpoint,
                    "images": [
                        f"base-server:{version}"
                        + (f"@{digests[version]}" if version in digests else ""),
                        f"example-solution-operator:{version}",
                    ],
                }
                for endpoint in endpoints
            ]
            for version, endpoints in repositories.items()
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


# --- images -----------------------------------------------------------------------------------


def image_blobs(iso: Path, ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest, config) of image ``ref`` (``name:tag``) in the archive."""
    with IsoReader(iso) as reader:
        index = json.loads(reader.read_bytes("images/index.json"))
        descriptor = next(m for m in index["manifests"] if m["annotations"][REF_NAME] == ref)
        manifest = json.loads(reader.read_bytes(_blob(descriptor["digest"])))
        config = json.loads(reader.read_bytes(_blob(manifest["config"]["digest"])))
    return manifest, config


def _blob(digest: str) -> str:
    return f"images/blobs/sha256/{digest.removeprefix('sha256:')}"


def unpack_image(iso: Path, ref: str, target: Path) -> dict[str, Any]:
    """Extract the layers of ``ref`` from the archive into ``target``, as a container runtime
    would (in order, owners kept), and add the few device nodes a runtime provides.  Returns the
    image's runtime config (Entrypoint, Cmd, Env, User)."""
    manifest, config = image_blobs(iso, ref)
    target.mkdir(parents=True)
    with IsoReader(iso) as reader:
        for layer in manifest["layers"]:
            with (
                reader.open(_blob(layer["digest"])) as stream,
                subprocess.Popen(
                    ["tar", "-xz", "--numeric-owner", "-C", str(target)], stdin=subprocess.PIPE
                ) as tar,
            ):
                assert tar.stdin is not None
                while chunk := stream.read(1 << 20):
                    tar.stdin.write(chunk)
                tar.stdin.close()
                assert tar.wait() == 0, f"tar failed on layer {layer['digest']}"
    assert not list(target.rglob(".wh.*")), "whiteouts are not expected in these images"
    for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("random", 1, 8), ("urandom", 1, 9)):
        node = target / "dev" / name
        node.parent.mkdir(exist_ok=True)
        if not node.exists():
            os.mknod(node, 0o20666, os.makedev(major, minor))
            node.chmod(0o666)
    runtime: dict[str, Any] = config["config"]
    return runtime


def chroot_command(
    rootfs: Path, runtime: dict[str, Any], args: list[str] | None = None
) -> list[str]:
    """The command a runtime would run for this image: Entrypoint + (args or Cmd), with the
    image's Env only, as the image's User, inside ``rootfs``."""
    command = [*runtime.get("Entrypoint", []), *(runtime.get("Cmd", []) if args is None else args)]
    user = runtime.get("User") or "0:0"
    return [
        "chroot",
        f"--userspec={user}",
        str(rootfs),
        "/usr/bin/env",
        "-i",
        *runtime.get("Env", []),
        *command,
    ]


# --- processes and waiting --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], Any], what: str, timeout: float = 60, interval: float = 0.2
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as err:
            last_error = err
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


@contextlib.contextmanager
def background(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` for the duration of the block; its output goes to ``log``."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the Kubernetes API, as plain HTTP (every status code and header visible) ---------------


class Api:
    """A thin JSON client over the admin HTTP client of the local control plane."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise ApiFailure(response)
        result: dict[str, Any] = response.json()
        return result

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.http.get(path)
        return None if response.status_code == 404 else self._check(response)

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._check(self.http.post(path, json=body))

    def merge(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/merge-patch+json"}
        return self._check(self.http.patch(path, json=patch, headers=headers))

    def apply(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (the way the product applies CRDs)."""
        headers = {"Content-Type": "application/apply-patch+yaml"}
        params = {"fieldManager": "tests", "force": "true"}
        return self._check(
            self.http.patch(path, content=json.dumps(body), headers=headers, params=params)
        )

    def delete(self, path: str) -> None:
        response = self.http.delete(path)
        if response.status_code != 404:
            self._check(response)


class ApiFailure(AssertionError):
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.body = response.text
        super().__init__(
            f"{response.request.method} {response.request.url}: {self.status} {self.body}"
        )


def crd_path(name: str = CRD_NAME) -> str:
    return f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"


def vs_path(namespace: str, version: str = "v1alpha1", name: str = "") -> str:
    path = f"/apis/{GROUP}/{version}/namespaces/{namespace}/versionservers"
    return f"{path}/{name}" if name else path


def install_crd(api: Api, version: str) -> dict[str, Any]:
    """Apply the CRD of Solution ``version`` and wait until it is served."""
    api.apply(crd_path(), crd_document(version))

    def established() -> bool:
        crd = api.get(crd_path())
        conditions = (crd or {}).get("status", {}).get("conditions", [])
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_until(established, f"the CRD of {version} to be established", timeout=30)
    served = [v["name"] for v in crd_document(version)["spec"]["versions"] if v["served"]]
    for api_version in served:
        wait_until(
            lambda v=api_version: api.http.get(f"/apis/{GROUP}/{v}").status_code == 200,
            f"{GROUP}/{api_version} in discovery",
            timeout=30,
        )
    crd = api.get(crd_path())
    assert crd is not None
    return crd


def remove_crd(api: Api) -> None:
    """Delete the example's CRD (and so every VersionServer) and wait until it is gone."""
    api.delete(crd_path())
    wait_until(lambda: api.get(crd_path()) is None, "the CRD to be deleted", timeout=60)


def ensure_crd(api: Api, version: str) -> dict[str, Any]:
    """The CRD of Solution ``version``, applied over the current one when the API server allows
    it (its stored versions stay served), else installed afresh.  Recreating it is avoided: the
    garbage collector takes up to 30 s to watch a new resource type again."""
    current = api.get(crd_path())
    if current is not None:
        stored = set(current.get("status", {}).get("storedVersions", []))
        served = {v["name"] for v in crd_document(version)["spec"]["versions"] if v["served"]}
        if not stored <= served:
            remove_crd(api)
    return install_crd(api, version)
