"""The pin of an imported archive: what it held when it was verified at import.

``digest`` is the SHA-256 of the exact bytes of the archive's ``SHA256SUMS`` (which lists the hash
of every other file, and which its signatures sign); a MetalK8s-layout archive without
``SHA256SUMS`` is pinned by the SHA-256 of the whole ISO file instead (``whole_file``).  ``signer``
is the key id of the trusted signature verified at import, or ``unsigned``.  Every later reader of
the archive (the registry, converge, activation, environments, the UI) checks what it reads
against the pin and refuses a file that changed.

The pin is kept in SolutionsConfiguration (``pins: {<archive path>: <pin>}``) and in the entry of
the cluster record, as ``{"id", "sha256sums" | "file", "signer"}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UNSIGNED = "unsigned"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Pin:
    id: str  # the solution id (<name>-<version>) the archive held at import
    digest: str  # sha256:<hex> of SHA256SUMS, or of the whole file when ``whole_file``
    signer: str = UNSIGNED  # key id of the verified trusted signature, or "unsigned"
    whole_file: bool = False

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            ("file" if self.whole_file else "sha256sums"): self.digest,
            "signer": self.signer,
        }

    @classmethod
    def from_json(cls, data: object) -> Pin | None:
        """The pin in ``data``, or None when it is not a well-formed pin."""
        if not isinstance(data, Mapping):
            return None
        values: Mapping[str, Any] = data
        whole = "file" in values
        digest = values.get("file" if whole else "sha256sums")
        sid, signer = values.get("id"), values.get("signer", UNSIGNED)
        if not (isinstance(digest, str) and _DIGEST.match(digest)):
            return None
        if not (isinstance(sid, str) and sid and isinstance(signer, str) and signer):
            return None
        return cls(sid, digest, signer, whole)

    def describe(self) -> str:
        what = "the whole file" if self.whole_file else "SHA256SUMS"
        return f"{self.id}, {what} {self.digest[:19]}…, signer {self.signer}"
