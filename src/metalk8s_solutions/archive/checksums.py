"""``SHA256SUMS``: the list of every file of an archive and its SHA-256, in coreutils format.

One line per file, ``<64 hex>  <path>``, sorted by path, so ``sha256sum -c SHA256SUMS`` works on
an extracted copy.  It covers every regular file except itself and the signatures, which sign
its exact bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from metalk8s_solutions.errors import ArchiveError

SUMS_PATH = "SHA256SUMS"
SIGNATURES_DIR = "signatures"
MAX_SUMS_BYTES = 32 * 1024 * 1024
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](\S(?:.*\S)?)$")


def is_covered(path: str) -> bool:
    """Whether ``path`` must be listed in SHA256SUMS."""
    return path != SUMS_PATH and not path.startswith(SIGNATURES_DIR + "/")


def format_sums(digests: Mapping[str, str]) -> bytes:
    """The SHA256SUMS bytes for ``{path: hex digest}``."""
    lines = [f"{digests[path]}  {path}\n" for path in sorted(digests)]
    return "".join(lines).encode("utf-8")


def parse_sums(data: bytes, label: str) -> dict[str, str]:
    """``{path: hex}`` from SHA256SUMS bytes, or ArchiveError (rule SOL070) naming the line."""
    if len(data) > MAX_SUMS_BYTES:
        raise ArchiveError(f"SOL070 {label}: {SUMS_PATH} is larger than {MAX_SUMS_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ArchiveError(f"SOL070 {label}: {SUMS_PATH} is not UTF-8 text") from err
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = _LINE.match(line)
        if match is None:
            raise ArchiveError(f"SOL070 {label}: {SUMS_PATH} line {number} is malformed")
        digest, path = match.groups()
        if path in sums:
            raise ArchiveError(f"SOL070 {label}: {SUMS_PATH} lists {path} twice")
        sums[path] = digest
    return sums
