"""Semantic versions, parsed, with SemVer 2.0.0 precedence.

MetalK8s ordered Solution versions by string compare in its UI and by RPM compare elsewhere, so
``1.10.0`` sorted before ``1.9.0`` on one screen and after it on another.  Every ordering of
versions in this product goes through :func:`metalk8s_solutions.api.versions.compare_versions`,
which uses the total order of :class:`Version` when both sides are semantic versions (build
metadata is kept but ignored for precedence, then used as a last, stable tie-break).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from metalk8s_solutions.errors import InvalidInput

# From semver.org, anchored, without the leading "v".
_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
MAX_VERSION_LENGTH = 128


@total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version; ``str(v)`` gives back the exact text it was parsed from."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def _key(self) -> tuple[object, ...]:
        # A release ranks above its pre-releases; numeric identifiers rank below alphanumeric.
        pre: tuple[tuple[int, int, str], ...] = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, not self.prerelease, pre, self.build)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)


def parse_version(text: object) -> Version:
    """Parse a semantic version (``1.2.3``, ``1.0.0-rc.1+build.5``) or raise InvalidInput."""
    if not isinstance(text, str) or len(text) > MAX_VERSION_LENGTH:
        raise InvalidInput(f"{text!r} is not a semantic version", hint="use MAJOR.MINOR.PATCH")
    match = _SEMVER.match(text)
    if match is None:
        raise InvalidInput(
            f"{text!r} is not a semantic version",
            hint="use MAJOR.MINOR.PATCH, optionally -PRERELEASE and +BUILD (semver.org)",
        )
    pre = match.group("pre")
    build = match.group("build")
    return Version(
        int(match.group("major")),
        int(match.group("minor")),
        int(match.group("patch")),
        tuple(pre.split(".")) if pre else (),
        tuple(build.split(".")) if build else (),
    )
