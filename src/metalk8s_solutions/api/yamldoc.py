"""Loading untrusted YAML with bounds: size, no aliases, no custom tags, no deep nesting.

Archive files come from outside; a "billion laughs" alias bomb or a megabyte of nested brackets
must end in a clear error, not in exhausted memory or a RecursionError traceback.
"""

from __future__ import annotations

import functools
from typing import Any

from metalk8s_solutions.api import block_yaml
from metalk8s_solutions.errors import ManifestError

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_DOCUMENTS = 1000


@functools.cache
def _bounded_loader() -> Any:
    """SafeLoader that refuses aliases: archive YAML never needs them and they can explode."""
    import yaml  # noqa: PLC0415 - PyYAML's import alone costs a listing ~15 ms
    from yaml.events import AliasEvent  # noqa: PLC0415

    class BoundedLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(AliasEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases are not allowed", event.start_mark
                )
            return super().compose_node(parent, index)

    return BoundedLoader


def _plain_block(text: str) -> list[Any] | None:
    """The document of ``text`` when it is in :mod:`.block_yaml`'s style (what PyYAML would
    read, without its cost); None when PyYAML must decide."""
    try:
        doc = block_yaml.load(text)
    except (block_yaml.Unsupported, RecursionError):
        return None
    return [] if doc is None else [doc]


def load_yaml_documents(
    data: bytes, source: str, *, max_bytes: int = MAX_YAML_BYTES, rule: str = "SOL010"
) -> list[Any]:
    """All documents of a YAML stream (empty ones dropped), or ManifestError naming ``source``."""
    if len(data) > max_bytes:
        raise ManifestError(
            f"{rule} {source}: {len(data)} bytes is larger than the limit of {max_bytes} bytes"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(f"{rule} {source}: not UTF-8 text ({err.reason})") from err
    plain = _plain_block(text)
    if plain is not None:
        return plain
    import yaml  # noqa: PLC0415

    try:
        docs: list[Any] = []
        for doc in yaml.load_all(text, Loader=_bounded_loader()):
            if doc is not None:
                docs.append(doc)
            if len(docs) > MAX_DOCUMENTS:
                raise ManifestError(f"{rule} {source}: more than {MAX_DOCUMENTS} documents")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ManifestError(f"{rule} {source}: invalid YAML{where}: {problem}") from err
    except RecursionError as err:
        raise ManifestError(f"{rule} {source}: YAML nested too deeply") from err
    return docs


def load_yaml_document(data: bytes, source: str, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Exactly one YAML document."""
    docs = load_yaml_documents(data, source, max_bytes=max_bytes)
    if len(docs) != 1:
        raise ManifestError(f"SOL010 {source}: expected one YAML document, found {len(docs)}")
    return docs[0]
