"""Solution versions: which texts are accepted, and the one order used everywhere.

A version names things in the cluster and the registry (``<name>-<version>/<image>``
repositories, the ``app.kubernetes.io/version`` label, RoleBinding and ClusterRole names, the
keys of the operator's configuration), so it must be safe there: :func:`version_problem` says
why a text is not.

Order (:func:`compare_versions`, used by ``latest``, every listing and the upgrade/downgrade
wording): semantic-version precedence when both sides are semantic versions; otherwise the
order MetalK8s used, Salt's ``pkg.version_cmp`` on its RPM-based nodes (rpm's ``labelCompare``):

- the text is cut at its first ``-`` into a version and a release, compared in that order;
- each is compared by segments: runs of digits or of ASCII letters, anything else separates;
  digits compare as numbers and rank above letters; ``~`` ranks below everything, even the end
  of the text (``1.0~rc1 < 1.0``); the side with segments left over is the higher one;
- where ``pkg.version_cmp`` would call two texts equal, a total order is kept: a text without a
  release ranks above the same version with one (``1.1.2-dev < 1.1.2``, as MetalK8s's upgrade
  orchestration treats a ``-dev`` node), then the plain texts are compared.

The rule is chosen per pair, so a semver pair that rpm orders the other way (``1.0.0-1`` <
``1.0.0-alpha``) and a non-semver version of the same release can rank in a circle; listings
sort by text first, so they come out the same every time.

Salt's non-RPM fallback (``LooseVersion`` compared as strings) is deliberately not followed: it
ranks ``1.10`` below ``1.9`` and never ran on a MetalK8s node.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from metalk8s_solutions.api.semver import MAX_VERSION_LENGTH, Version, parse_version
from metalk8s_solutions.errors import InvalidInput

T = TypeVar("T")

#: The longest version: the ``app.kubernetes.io/version`` label value holds it unchanged.
MAX_SAFE_VERSION_LENGTH = 63
#: One component of an OCI repository name (``<name>-<version>`` is one) that is also a valid
#: label value: lowercase letters and digits, with ``.``, ``_``, ``__`` or dashes between them.
SAFE_VERSION = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_SEGMENT = re.compile(r"~|[0-9]+|[A-Za-z]+")


def semantic(text: str) -> Version | None:
    """``text`` parsed as a semantic version, or None when it is not one."""
    try:
        return parse_version(text)
    except InvalidInput:
        return None


def version_problem(text: object) -> str | None:
    """Why ``text`` cannot be a Solution version (None when it can)."""
    if not isinstance(text, str):
        if isinstance(text, int | float) and not isinstance(text, bool):
            return f'{text!r} is a number, not a string: quote it (version: "{text}")'
        return f"{text!r} is not a string"
    if len(text) > MAX_SAFE_VERSION_LENGTH:
        return f"{text[:20]!r}... is longer than {MAX_SAFE_VERSION_LENGTH} characters"
    if not SAFE_VERSION.match(text):
        return (
            f"{text!r} cannot name the registry repository <name>-<version> and label values: "
            "use lowercase letters and digits, with '.', '_' or '-' between them"
        )
    return None


def is_valid_version(text: object) -> bool:
    """Whether ``text`` can be a Solution version (semantic or not)."""
    return version_problem(text) is None


def is_semantic(text: str) -> bool:
    return semantic(text) is not None


def _segments(text: str) -> list[str]:
    return _SEGMENT.findall(text)


def rpm_compare(left: str, right: str) -> int:
    """-1, 0 or 1: rpm's segment comparison (``rpmvercmp``) of two version strings."""
    a, b = _segments(left), _segments(right)
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if x == "~" or y == "~":
            return -1 if x == "~" else 1
        if x.isdigit() != y.isdigit():
            return 1 if x.isdigit() else -1
        if x.isdigit():
            xi, yi = int(x), int(y)
            if xi != yi:
                return (xi > yi) - (xi < yi)
            continue
        return (x > y) - (x < y)
    rest_a, rest_b = a[len(b) :], b[len(a) :]
    if rest_a:
        return -1 if rest_a[0] == "~" else 1
    if rest_b:
        return 1 if rest_b[0] == "~" else -1
    return 0


def metalk8s_compare(left: str, right: str) -> int:
    """-1, 0 or 1: the order of MetalK8s's ``pkg.version_cmp``, made total (module doc)."""
    lv, _, lr = left.partition("-")
    rv, _, rr = right.partition("-")
    found = rpm_compare(lv, rv)
    if found:
        return found
    if ("-" in left) != ("-" in right):
        return -1 if "-" in left else 1
    found = rpm_compare(lr, rr)
    if found:
        return found
    return (left > right) - (left < right)


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as ``left`` sorts before, with, or after ``right``: the one order."""
    a, b = semantic(left), semantic(right)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    return metalk8s_compare(left, right)


@functools.total_ordering
class VersionKey:
    """A version string ordered by :func:`compare_versions` (a sort key)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, VersionKey):
            return NotImplemented
        return compare_versions(self.text, other.text) < 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionKey):
            return NotImplemented
        return self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


def version_key(text: str) -> VersionKey:
    """The sort key of a version string: ``sorted(versions, key=version_key)``."""
    return VersionKey(text)


def sort_versions(versions: Iterable[str], reverse: bool = False) -> list[str]:
    """``versions`` in the one order (lowest first, unless ``reverse``)."""
    # Sorted as text first: the result never depends on the order the versions came in.
    return sorted(sorted(versions), key=version_key, reverse=reverse)


def sort_by_version(items: Iterable[T], version: Callable[[T], str]) -> list[T]:
    """``items`` in the one order of their ``version``, lowest first."""
    return sorted(sorted(items, key=version), key=lambda item: version_key(version(item)))


def latest(versions: Iterable[str]) -> str:
    """The highest of ``versions`` (what ``latest`` resolves to)."""
    ordered = sort_versions(versions)
    if not ordered:
        raise InvalidInput("no version to choose from")
    return ordered[-1]


__all__ = [
    "MAX_SAFE_VERSION_LENGTH",
    "MAX_VERSION_LENGTH",
    "SAFE_VERSION",
    "VersionKey",
    "compare_versions",
    "is_semantic",
    "is_valid_version",
    "latest",
    "metalk8s_compare",
    "rpm_compare",
    "semantic",
    "sort_by_version",
    "sort_versions",
    "version_key",
    "version_problem",
]
