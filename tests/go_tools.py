"""Test tools built from pinned Go modules under ``tests/<module>/``, cached outside the clone.

Each tool is built once with the machine's Go toolchain into
``${XDG_CACHE_HOME:-~/.cache}/metalk8s-solutions/bin/<name>-<version>-<hash>/<name>``; the hash
covers the module's pins and sources, so changing them rebuilds it.  Nothing is downloaded but
Go modules from the module proxy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def go_tool(module: str, package: str, name: str, version: str) -> Path:
    """Build ``package`` of the module in ``tests/<module>/`` as ``name`` (once); its path."""
    source = TESTS / module
    files = sorted(p for p in source.iterdir() if p.suffix in (".go", ".mod", ".sum"))
    recipe = hashlib.sha256()
    for path in files:
        recipe.update(path.read_bytes())
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(cache) / "metalk8s-solutions" / "bin"
    target = folder / f"{name}-{version}-{recipe.hexdigest()[:10]}" / name
    if target.is_file():
        return target
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"the Go toolchain is needed once to build {name}: install Go")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        work = Path(tmp) / "src"
        work.mkdir()
        for path in files:
            shutil.copyfile(path, work / path.name)
        out = Path(tmp) / "out"
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")
        result = subprocess.run(
            [go, "build", "-trimpath", "-o", str(out / name), package],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"building {name} failed: {result.stderr}"
        if not target.parent.exists():
            out.rename(target.parent)
    return target
