"""Shared helpers of the registry's adversarial tests: a real built-in registry on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import yaml

from metalk8s_solutions.engine.registry import RunningRegistry, ServeOptions, registry_in_thread


def write_config(path: Path, archives: list[Path], **registry: object) -> Path:
    doc: dict[str, object] = {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "SolutionsConfiguration",
        "archives": [str(a) for a in archives],
    }
    if registry:
        doc["registry"] = registry
    path.write_text(yaml.safe_dump(doc))
    return path


@contextlib.contextmanager
def serving(config: Path, **options: object) -> Iterator[RunningRegistry]:
    """The registry in a thread of the test process, on a free loopback port."""
    opts = ServeOptions(config, listen="127.0.0.1:0", interval=0.1, **options)  # type: ignore[arg-type]
    with registry_in_thread(opts) as registry:
        yield registry
