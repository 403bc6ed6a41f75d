"""The journey of ``metalk8s_solutions.testing.journey`` on real pods (issue 21, item 4).

A cluster of one real node only (no KWOK node, so no taint: the product's pods run there as it
makes them), the images pulled by containerd through the documented ``hosts.toml`` from
``solutions registry serve`` on a loopback port, or, in push mode, from the test
docker-registry ``import`` pushed them to.  The operator runs in its pod with the RBAC the
engine grants (no local process), base-server and the Solution UI run in pods on the node.
Every command and every fact of the journey is asserted, as in ``test_journey.py`` (a fact
checked right after a command is waited for up to 30 s: real pods take seconds to start where
KWOK's are instant), and at each step every running container's image is the one its pod
names, by digest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from env_support import cli, serve_command, write_config
from metalk8s_solutions.testing import journey as j
from metalk8s_solutions.testing import realnode
from metalk8s_solutions.testing.controlplane import ClusterInfo, LocalControlPlane
from metalk8s_solutions.testing.processes import free_port
from metalk8s_solutions.testing.registry import LocalRegistry

_reason = realnode.host_can_run_real_nodes()
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"no real nodes here: {_reason}")

ENV = "journey"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
SOLUTIONS = str(Path(__import__("sys").executable).with_name("solutions"))


class OnRealPods:
    """Walks the journey as a test; the operator is the product's pod, never started here."""

    def __init__(self, info: ClusterInfo, http: httpx.Client, config: Path) -> None:
        self.info, self.config = info, config
        self.api = j.ApiClient(http)
        self.where = ""
        self.seen: set[str] = set()

    def step(self, title: str) -> None:
        self.pods_run_what_they_name()
        self.where = title

    def pods_run_what_they_name(self) -> None:
        """Every running container of the environment runs, on the real node, the image its
        pod names by digest (containerd's imageID): the bytes of the archive."""
        pods = (self.api.get(f"/api/v1/namespaces/{ENV}/pods") or {}).get("items", [])
        for pod in pods:
            for spec, status in zip(
                pod["spec"]["containers"],
                pod["status"].get("containerStatuses", []),
                strict=False,
            ):
                if "running" not in status.get("state", {}):
                    continue
                assert pod["spec"]["nodeName"] == "real-node-0", pod["metadata"]["name"]
                image = spec["image"]
                digest = image.split("@", 1)[1] if "@" in image else self.resolve(image)
                assert status["imageID"].endswith("@" + digest), (self.where, status)
                self.seen.add(image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0])

    def resolve(self, image: str) -> str:
        """The digest the built-in registry serves for a tagged reference."""
        host, rest = image.split("/", 1)
        repo, tag = rest.rsplit(":", 1)
        answer = httpx.head(
            f"http://{host}/v2/{repo}/manifests/{tag}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            timeout=10,
        )
        assert answer.status_code == 200, (image, answer.status_code)
        return answer.headers["Docker-Content-Digest"]

    def run(self, action: j.Run) -> None:
        done = cli(self.config, self.info.kubeconfig, *action.args, timeout=300)
        wrong = j.verdict(action, done.returncode, done.stdout, done.stderr)
        assert wrong is None, (
            f"{self.where}: solutions {' '.join(action.args)}: {wrong}\n{done.stdout}\n"
            f"{done.stderr}"
        )

    def check(self, action: j.Check) -> None:
        deadline = time.monotonic() + max(action.wait, 30)
        while (wrong := action.test(self.api)) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert wrong is None, f"{self.where}: {action.what}: {wrong}"

    def operator(self, action: j.Operator) -> None:
        """The operator runs in its pod: the Deployment the product made."""


@pytest.fixture(params=["serve", "push"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Path, str, tuple[str, ...]]]:
    """The images' registry, both ways; yields (config, endpoint, what the node must reach).

    serve: ``solutions registry serve`` on a loopback port, straight from the imported ISOs;
    push: ``import`` pushes them to the test docker-registry, which containerd pulls from.
    """
    if request.param == "push":
        registry: LocalRegistry = request.getfixturevalue("local_registry")
        prefix = f"journey-{free_port()}"
        config = tmp_path / "etc" / "solutions.yaml"
        config.parent.mkdir(parents=True)
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
                    "kind": "SolutionsConfiguration",
                    "archives": [],
                    "active": {},
                    "registry": {
                        "mode": "push",
                        "pushUrl": registry.url,
                        "pushPrefix": prefix,
                        "insecure": True,
                        "endpoint": f"{registry.address}/{prefix}",
                    },
                }
            )
        )
        yield config, f"{registry.address}/{prefix}", (registry.address,)
        return
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    config = write_config(tmp_path / "etc" / "solutions.yaml", [], endpoint=endpoint)
    config.write_text(config.read_text() + f"  listen: {endpoint}\n")
    with serve_command(config):
        yield config, endpoint, (endpoint,)


def test_journey_on_real_pods(
    example_archives: Any, served: tuple[Path, str, tuple[str, ...]], tmp_path: Path
) -> None:
    config, endpoint, registries = served
    plane = LocalControlPlane(
        tmp_path / "c", nodes=0, real_nodes=1, bind_to_parent=True, insecure_registries=registries
    )
    try:
        info = plane.up()
        with httpx.Client(
            base_url=info.server, verify=plane.admin_ssl_context(), timeout=10
        ) as http:
            steps = j.journey(
                example_archives.isos, example_archives.public_key, endpoint, config, env=ENV
            )
            driver = OnRealPods(info, http, config)
            j.walk(steps, driver)
        # Every image of the Solution ran in pods: the operator, base-server, the Solution UI.
        assert {"example-solution-operator", "base-server", "example-solution-ui"} <= driver.seen, (
            driver.seen
        )
    finally:
        plane.down()
