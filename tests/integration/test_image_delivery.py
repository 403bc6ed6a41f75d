"""Imported images reach a client, both ways: served by the built-in registry straight from the
imported ISO, and pushed into another registry (push mode) by ``solutions import``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import SolutionsCli
from metalk8s_solutions.engine.registry import ServeOptions, registry_in_thread
from metalk8s_solutions.images.catalog import load_catalog
from metalk8s_solutions.testing.registry import LocalRegistry

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


def skopeo_digest(skopeo: str, ref: str) -> str:
    result = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["Digest"])


def test_builtin_registry_serves_what_import_recorded(
    cli: SolutionsCli, built_archive: Callable[[], Path], skopeo: str
) -> None:
    iso = built_archive()
    catalog = load_catalog(iso)
    cli.config.parent.mkdir(parents=True, exist_ok=True)
    with registry_in_thread(
        ServeOptions(config=cli.config, listen="127.0.0.1:0", interval=0.2)
    ) as reg:
        cli.ok("import", str(iso))
        for image, tag, digest in catalog.image_refs():
            ref = f"{reg.address}/{catalog.solution_id}/{image}:{tag}"
            deadline = time.monotonic() + 10  # the registry notices the new config within ~1 s
            while True:
                try:
                    assert skopeo_digest(skopeo, ref) == digest
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        cli.ok("unimport", catalog.solution_id)
        ref = f"docker://{reg.address}/{catalog.solution_id}/base-server:1.0.0"
        deadline = time.monotonic() + 10  # the registry notices the new config within ~1 s
        while True:
            gone = subprocess.run(
                [skopeo, "inspect", "--tls-verify=false", ref],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            if gone.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert gone.returncode != 0, "the unimported images are still served"


def test_push_mode_import_pushes_the_images(
    cli: SolutionsCli,
    built_archive: Callable[[], Path],
    local_registry: LocalRegistry,
    skopeo: str,
) -> None:
    iso = built_archive()
    catalog = load_catalog(iso)
    cli.config.parent.mkdir(parents=True, exist_ok=True)
    cli.config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
                "kind": "SolutionsConfiguration",
                "archives": [],
                "active": {},
                "registry": {
                    "mode": "push",
                    "pushUrl": local_registry.url,
                    "pushPrefix": "delivery",
                    "insecure": True,
                    "endpoint": f"{local_registry.address}/delivery",
                },
            }
        )
    )
    plan = cli.ok("import", str(iso), "--dry-run")
    assert f"would images {catalog.solution_id}: pushed to {local_registry.url}" in plan
    result = cli("import", str(iso))
    assert result.returncode == 0, result.stderr
    assert f"pushing {catalog.solution_id}:" in result.stderr  # progress, with bytes
    for image, tag, digest in catalog.image_refs():
        ref = f"{local_registry.address}/delivery/{catalog.solution_id}/{image}:{tag}"
        assert skopeo_digest(skopeo, ref) == digest
    # Re-import is a no-op; unimport leaves the pushed images (registries may forbid deletes).
    assert "nothing to do" in cli.ok("import", str(iso))
    cli.ok("unimport", str(iso))
