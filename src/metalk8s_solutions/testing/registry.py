"""A real OCI registry for tests: Debian's ``docker-registry`` (CNCF distribution 2.8).

Started on a loopback port with its storage in a temporary folder, plain HTTP.  skopeo is the
reference client that tests use against it (``--tls-verify=false`` for loopback HTTP).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

# lightkube's HTTP client (httpx2 keeps httpx's API): one HTTP stack in the process, not two.
import httpx2 as httpx

from metalk8s_solutions.errors import EnvironmentFailure
from metalk8s_solutions.testing.processes import (
    ProcessRecord,
    check_port_free,
    free_port,
    spawn,
    wait_until,
)

HOST = "127.0.0.1"
STATE_FILE = "registry.json"
INSTALL_HINT = "install it with 'apt-get install docker-registry' (Debian), or run 'make test'"


def find_docker_registry() -> str:
    path = shutil.which("docker-registry") or shutil.which("registry")
    if path is None:
        raise EnvironmentFailure(
            "the OCI registry 'docker-registry' is not installed", hint=INSTALL_HINT
        )
    return path


@dataclass
class LocalRegistry:
    """One docker-registry process serving ``root``; ``address`` is ``host:port``."""

    root: Path
    port: int | None = None
    bind_to_parent: bool = True
    record: ProcessRecord | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 30.0) -> LocalRegistry:
        binary = find_docker_registry()
        if self.port is None:
            self.port = free_port()
        else:
            check_port_free(self.port, HOST, what="the registry")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn, accesslog: {disabled: true}}\n"
            f"storage:\n  filesystem: {{rootdirectory: {self.root / 'data'}}}\n"
            "  delete: {enabled: true}\n"
            f"http:\n  addr: {self.address}\n"
            "  headers: {X-Content-Type-Options: [nosniff]}\n"
        )
        self.record = spawn(
            "docker-registry",
            [binary, "serve", str(config)],
            self.root / "registry.log",
            bind_to_parent=self.bind_to_parent,
        )
        try:
            wait_until(
                self.record,
                lambda: httpx.get(self.url + "/v2/", timeout=2).status_code == 200,
                timeout=timeout,
                what="answer /v2/",
            )
        except BaseException:
            self.stop()
            raise
        (self.root / STATE_FILE).write_text(
            json.dumps({"port": self.port, "process": self.record.to_json()})
        )
        return self

    def stop(self) -> None:
        if self.record is not None:
            self.record.stop()
            self.record = None
        (self.root / STATE_FILE).unlink(missing_ok=True)

    @classmethod
    def attach(cls, root: Path) -> LocalRegistry | None:
        """The registry recorded in ``root`` by an earlier ``start``, if any."""
        try:
            data = json.loads((root / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        record = ProcessRecord.from_json(data["process"])
        return cls(root=root, port=int(data["port"]), bind_to_parent=False, record=record)

    def running(self) -> bool:
        return self.record is not None and self.record.alive()
