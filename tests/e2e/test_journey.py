"""The seed's test plan, end to end, with the installed ``solutions`` command and the example
Solution: the journey of ``metalk8s_solutions.testing.journey`` (the one ``make demo`` narrates),
every command's outcome and every cluster fact after it asserted.

Import, activate, create an environment, add, create a VersionServer served by the operator (run
as a local process with the ServiceAccount the product created, so its RBAC is what is tested),
scale it, upgrade, downgrade, delete-solution, delete the environment, deactivate, unimport.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from env_support import Api, cli
from metalk8s_solutions.testing import journey as j
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

ENV = "journey"
OPERATOR = str(Path(sys.executable).with_name("example-solution-operator"))
#: Where the fixtures' registry serves the images (the operator's image reference).
ENDPOINT = "127.0.0.1:5000"


class Asserting:
    """Walks the journey as a test: each command's outcome and each fact asserted."""

    def __init__(self, local_cluster: LocalCluster, admin: Api, config: Path, tmp: Path) -> None:
        self.cluster, self.config = local_cluster, config
        self.api = j.ApiClient(admin.http)
        ca = yaml.safe_load(local_cluster.kubeconfig.read_text())["clusters"][0]["cluster"][
            "certificate-authority-data"
        ]
        self.operators: dict[str, j.LocalOperator] = {}
        self.make_operator = lambda env: j.LocalOperator(
            self.api, OPERATOR, local_cluster.server, ca, tmp, env
        )
        self.where = ""

    def step(self, title: str) -> None:
        self.where = title

    def run(self, action: j.Run) -> None:
        done = cli(self.config, self.cluster.kubeconfig, *action.args)
        wrong = j.verdict(action, done.returncode, done.stdout, done.stderr)
        assert wrong is None, (
            f"{self.where}: solutions {' '.join(action.args)}: {wrong}\n{done.stdout}\n"
            f"{done.stderr}\n{self.logs()}"
        )

    def check(self, action: j.Check) -> None:
        deadline = time.monotonic() + action.wait
        while (wrong := action.test(self.api)) is not None and time.monotonic() < deadline:
            time.sleep(0.25)
        assert wrong is None, f"{self.where}: {action.what}: {wrong}\n{self.logs()}"

    def operator(self, action: j.Operator) -> None:
        if action.start:
            running = self.operators.setdefault(action.env, self.make_operator(action.env))
            running.start()
        elif action.env in self.operators:
            self.operators.pop(action.env).stop()

    def logs(self) -> str:
        return "".join(
            f"--- operator {env} log ---\n{op.tail()}\n" for env, op in self.operators.items()
        )

    def close(self) -> None:
        for running in self.operators.values():
            running.stop()


@pytest.fixture
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        yield api
        api.delete(f"/api/v1/namespaces/{ENV}")
        if api.get(j.CRD) is not None:
            api.delete(j.CRD)


def test_journey(
    example_archives: Any, local_cluster: LocalCluster, admin: Api, tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "solutions.yaml"
    driver = Asserting(local_cluster, admin, config, tmp_path)
    steps = j.journey(example_archives.isos, example_archives.public_key, ENDPOINT, config, env=ENV)
    try:
        j.walk(steps, driver)
    finally:
        driver.close()
