"""The architecture page's module map is generated from the code and covers every module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "hooks"))

import docgen  # noqa: E402


def test_every_module_is_on_the_map_with_what_it_owns() -> None:
    text = docgen.module_map()
    src = ROOT / "src" / "metalk8s_solutions"
    for package in ("api", "archive", "images", "cluster", "engine", "testing", "cli", "web"):
        for module in sorted((src / package).rglob("*.py")):  # sub-packages' modules too
            if module == src / package / "__init__.py":
                continue
            docstring = ast.get_docstring(ast.parse(module.read_text()))
            assert docstring, f"{module} has no docstring: say what it owns"
            where = module.relative_to(src).as_posix().removesuffix("__init__.py")
            assert f"`{where}`" in text, module


def test_what_a_package_may_import_follows_the_contracts() -> None:
    text = docgen.module_map()
    web = text.split("### `web`", 1)[1].split("###", 1)[0]
    assert "`engine`" in web and "`testing`" not in web and "`cli`" not in web
    api = text.split("### `api`", 1)[1].split("###", 1)[0]
    assert "May import: nothing of the package" in api
