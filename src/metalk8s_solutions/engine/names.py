"""Did you mean: the closest existing name to one that does not exist."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (a typo away), or None when none is close enough."""
    names = sorted({c for c in candidates if c and c != name})
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if not found:
        lowered = {c.lower(): c for c in names}
        found = [lowered[name.lower()]] if name.lower() in lowered else []
    return found[0] if found else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``" (did you mean X?)"``, or an empty string when no candidate is close."""
    found = closest(name, candidates)
    return f" (did you mean {found}?)" if found else ""
