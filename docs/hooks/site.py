"""MkDocs hook of the documentation site (``hooks:`` in mkdocs.yml); no plugin needed.

- adds the generated reference pages (:mod:`docgen`): ``reference/cli.md``,
  ``reference/errors.md``, ``reference/http-api.md`` (+ ``openapi.json``) and the JSON Schemas
  under ``reference/schemas/``; nothing is written into ``docs/``;
- publishes the product's own dashboard and alert rules (``deploy/monitoring/``) under
  ``operations/monitoring/``, so the docs link the very files the repository ships;
- drops from the navigation the pages that other work in progress will add (``PENDING``) while
  their file does not exist yet, and reports links to them as info rather than warnings; any
  other missing page or broken link stays an error of the strict build.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).parent))

import docgen

log = logging.getLogger("mkdocs.hooks.site")

#: Pages announced by other issues; listed in the navigation, dropped while absent.
PENDING = {
    "operations/registry.md",
    "operations/push-mode.md",
    "operations/environments.md",
    "operations/deploying.md",
    "operations/upgrading.md",
    "operations/scaling-and-configuring.md",
    "operations/deleting.md",
    "operations/ui.md",
    "developer/example-solution.md",
}


def _prune(nav: list[Any], docs_dir: Path) -> list[Any]:
    kept: list[Any] = []
    for item in nav:
        if isinstance(item, dict):
            (title, value), *_ = item.items()
            if isinstance(value, list):
                kept.append({title: _prune(value, docs_dir)})
                continue
            path = value
        else:
            path = item
        if isinstance(path, str) and path in PENDING and not (docs_dir / path).exists():
            log.info("navigation: %s does not exist yet, left out", path)
            continue
        kept.append(item)
    return kept


class _PendingLinks(logging.Filter):
    """Links to a PENDING page that does not exist yet: info, not a warning (strict mode)."""

    def __init__(self, docs_dir: Path) -> None:
        super().__init__()
        self.docs_dir = docs_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            message = record.getMessage()
            for page in PENDING:
                missing = f"the target '{page}' is not found" in message
                if missing and not (self.docs_dir / page).exists():
                    record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    pages_log = logging.getLogger("mkdocs.structure.pages")
    for old in [f for f in pages_log.filters if isinstance(f, _PendingLinks)]:
        pages_log.removeFilter(old)
    pages_log.addFilter(_PendingLinks(Path(config.docs_dir)))
    if config.nav:
        config.nav = _prune(config.nav, Path(config.docs_dir))
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    try:
        cli = docgen.cli_reference()
    except docgen.CommandLoadError as err:
        raise PluginError(f"the CLI reference cannot be generated: {err}") from err
    generated: dict[str, str] = {
        "reference/cli.md": cli,
        "reference/errors.md": docgen.error_reference(),
    }
    page, openapi = docgen.http_api_reference()
    generated["reference/http-api.md"] = page
    if openapi is not None:
        generated["reference/openapi.json"] = openapi
    for name, schema in docgen.schemas().items():
        generated[f"reference/schemas/{name}"] = docgen.schema_json(schema)
    deploy = Path(config.config_file_path).parent / "deploy" / "monitoring"
    for shipped in sorted(deploy.glob("*")):
        generated[f"operations/monitoring/{shipped.name}"] = shipped.read_text()
    for uri, content in generated.items():
        if files.get_file_from_path(uri) is not None:
            raise PluginError(f"{uri} is generated; remove the file of that name from docs/")
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: MkDocsConfig, files: Files) -> str:
    """The benchmarks page gets its table from ``bench/results.json`` (``make bench``); the
    architecture page its module map from the code; the registry page containerd's hosts.toml
    from the function the real nodes use."""
    if docgen.BENCH_MARKER in markdown:
        markdown = markdown.replace(docgen.BENCH_MARKER, docgen.benchmark_table())
    if docgen.MODULE_MARKER in markdown:
        markdown = markdown.replace(docgen.MODULE_MARKER, docgen.module_map())
    if docgen.HOSTS_TOML_MARKER in markdown:
        markdown = docgen.containerd_hosts_examples(markdown)
    return markdown
