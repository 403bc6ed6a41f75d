"""``diff``: what going from one archive of a Solution to another changes.

Read straight from both archives (as ``inspect`` does: no mount, no extraction, no hashing; the
signatures over SHA256SUMS are checked and reported, no more), then compared by pure functions,
each testable on plain documents:

- :func:`diff_manifest`: version, display name, operator image, metrics, UI;
- :func:`diff_images` and :func:`diff_blobs`: images added, removed or changed (name:tag and
  digest) and the blobs (layers, configs, manifests) a registry does not hold yet: the bytes to
  pull;
- :func:`diff_packages`: packages upgraded, added or removed per image, from the SBOMs the
  archives carry at ``sboms/sha256-<hex>.spdx.json`` (hex of the image's manifest digest; SPDX
  2.x or CycloneDX JSON; any file under ``sboms/`` whose path holds one such digest); an archive
  without them says so, nothing is guessed;
- :func:`diff_crds`: CRD versions added or removed, served/storage/deprecated changes, and the
  fields of each version's schema added, removed, made required or optional, or retyped;
- :func:`diff_rbac`: the operator's rules (``operator/deploy/role.yaml``, expanded to single
  grants) granted or dropped, and the rights the engine derives from the archive (metrics
  authentication, privileged rules that need an approval).

:func:`diff_archives` returns a plain dict with a stable schema (``-o json``); the CLI, the dry
run of ``env upgrade`` and the web's upgrade plan all show it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.manifest import SolutionManifest
from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.api.streams import FileSource, read_limited
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.checksums import SUMS_PATH
from metalk8s_solutions.archive.layout import crd_files
from metalk8s_solutions.archive.pinning import open_archive
from metalk8s_solutions.archive.product import operator_roles
from metalk8s_solutions.archive.signing import MAX_SIGNATURE_BYTES, PublicKey, check_signatures
from metalk8s_solutions.engine.crds import convert_v1beta1, crd_info, is_v1beta1_crd
from metalk8s_solutions.engine.desired import VersionContent, privileged_rules
from metalk8s_solutions.engine.validate import check_source, open_source
from metalk8s_solutions.errors import ArchiveError, ManifestError, SolutionsError, command
from metalk8s_solutions.images.oci import ImageInfo
from metalk8s_solutions.images.sbom import MAX_SBOM_BYTES, SBOM_DIR

MAX_SCHEMA_DEPTH = 64
_HEX = re.compile(r"^[0-9a-f]{64}$")
_HEX_IN = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
#: purl types whose namespace is the distribution (pkg:deb/debian/libc6): keyed by name alone
_DISTRO_TYPES = frozenset({"deb", "apk", "rpm", "alpm"})
#: purl types that name the image itself, not a package in it
_IMAGE_TYPES = frozenset({"oci", "docker"})
NO_SBOM = "not known (archive has no SBOM)"


# -- packages (SPDX 2.3 JSON) --------------------------------------------------------------------


def purl_key(purl: str) -> tuple[str, str] | None:
    """(type, name) of a package URL; the name keeps its namespace except for distribution
    packages (``pkg:deb/debian/libc6@2.36`` -> ``("deb", "libc6")``,
    ``pkg:golang/golang.org/x/net@v0.1.0`` -> ``("golang", "golang.org/x/net")``)."""
    if not purl.startswith("pkg:"):
        return None
    rest = purl[4:].split("#", 1)[0].split("?", 1)[0].strip("/")
    if "/" not in rest:
        return None
    kind, path = rest.split("/", 1)
    segments = path.split("/")
    segments[-1] = segments[-1].rsplit("@", 1)[0] if "@" in segments[-1] else segments[-1]
    segments = [unquote(s) for s in segments if s]
    if not segments:
        return None
    kind = kind.lower()
    name = segments[-1] if kind in _DISTRO_TYPES else "/".join(segments)
    return kind, name


def _key_of(name: object, purl: object) -> tuple[str, str] | None:
    key = purl_key(purl) if isinstance(purl, str) else None
    if key is None and isinstance(name, str) and name:
        key = ("other", name)
    return None if key is None or key[0] in _IMAGE_TYPES else key


def _version_of(version: object) -> str:
    return str(version) if version not in (None, "") else "-"


def cyclonedx_packages(doc: Mapping[str, Any], where: str) -> dict[tuple[str, str], str]:
    """The components of a CycloneDX JSON document, as :func:`spdx_packages` gives them (the
    image itself, ``metadata.component``, is not one of them)."""
    components = doc.get("components", [])
    if not isinstance(components, list):
        raise ArchiveError(f"{where}: components must be a list")
    found: dict[tuple[str, str], set[str]] = {}
    stack = list(components)
    while stack:
        component = stack.pop()
        if not isinstance(component, dict):
            continue
        key = _key_of(component.get("name"), component.get("purl"))
        if key is not None:
            found.setdefault(key, set()).add(_version_of(component.get("version")))
        nested = component.get("components")
        if isinstance(nested, list) and len(stack) < 1_000_000:
            stack += nested
    return {key: ", ".join(sorted(versions)) for key, versions in found.items()}


def sbom_packages(doc: Any, where: str) -> dict[tuple[str, str], str]:
    """The packages of an SBOM, SPDX 2.x or CycloneDX JSON; ArchiveError when it is neither."""
    if isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX":
        return cyclonedx_packages(doc, where)
    return spdx_packages(doc, where)


def spdx_packages(doc: Any, where: str) -> dict[tuple[str, str], str]:
    """The packages of an SPDX 2.x JSON document: (purl type, name) -> version (several versions
    of one package joined by ", ").  The package(s) the document describes (the image itself)
    and image purls are left out.  ArchiveError when ``doc`` is not an SPDX document."""
    if not isinstance(doc, dict) or not str(doc.get("spdxVersion", "")).startswith("SPDX-"):
        raise ArchiveError(f"{where} is neither an SPDX nor a CycloneDX JSON document")
    packages = doc.get("packages", [])
    if not isinstance(packages, list):
        raise ArchiveError(f"{where}: packages must be a list")
    described = {str(d) for d in doc.get("documentDescribes") or [] if isinstance(d, str)}
    for rel in doc.get("relationships") or []:
        if (
            isinstance(rel, dict)
            and rel.get("relationshipType") == "DESCRIBES"
            and rel.get("spdxElementId") == "SPDXRef-DOCUMENT"
        ):
            described.add(str(rel.get("relatedSpdxElement")))
    found: dict[tuple[str, str], set[str]] = {}
    for package in packages:
        if not isinstance(package, dict) or package.get("SPDXID") in described:
            continue
        purls = [
            ref.get("referenceLocator")
            for ref in package.get("externalRefs") or []
            if isinstance(ref, dict) and str(ref.get("referenceLocator", "")).startswith("pkg:")
        ]
        key = _key_of(package.get("name"), purls[0] if purls else None)
        if key is not None:
            found.setdefault(key, set()).add(_version_of(package.get("versionInfo")))
    return {key: ", ".join(sorted(versions)) for key, versions in found.items()}


def _natural(version: str) -> list[tuple[int, int | str]]:
    return [
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", version)
        if part
    ]


def compare_package_versions(a: str, b: str) -> int:
    """-1, 0 or 1: numbers compared as numbers, the rest as text (``2.36-9`` < ``2.36-10``)."""
    left, right = _natural(a), _natural(b)
    try:
        return (left > right) - (left < right)
    except TypeError:  # pragma: no cover - (0, int) and (1, str) never compare elementwise
        return (a > b) - (a < b)


def diff_packages(
    before: Mapping[tuple[str, str], str], after: Mapping[tuple[str, str], str]
) -> dict[str, list[dict[str, str]]]:
    """Packages upgraded (or downgraded, or changed), added and removed between two images."""
    changed: list[dict[str, str]] = []
    for key in sorted(before.keys() & after.keys()):
        old, new = before[key], after[key]
        if old == new:
            continue
        way = compare_package_versions(old, new)
        change = "upgraded" if way < 0 else "downgraded" if way > 0 else "changed"
        changed.append({"type": key[0], "name": key[1], "from": old, "to": new, "change": change})
    return {
        "changed": changed,
        "added": [
            {"type": k[0], "name": k[1], "version": after[k]}
            for k in sorted(after.keys() - before.keys())
        ],
        "removed": [
            {"type": k[0], "name": k[1], "version": before[k]}
            for k in sorted(before.keys() - after.keys())
        ],
    }


# -- CRD schemas -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldInfo:
    type: str
    required: bool


def _type_of(node: Mapping[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    kind = node.get("type")
    if isinstance(kind, str) and kind:
        return kind
    return "any" if node.get("x-kubernetes-preserve-unknown-fields") else "-"


def schema_fields(schema: Any) -> dict[str, FieldInfo]:
    """Every field of an openAPIV3Schema by path (``spec.replicas``, ``status.conditions[].type``,
    ``spec.labels.*`` for additionalProperties), with its type and whether it is required."""
    found: dict[str, FieldInfo] = {}

    def walk(node: Any, prefix: str, depth: int) -> None:
        if not isinstance(node, dict) or depth > MAX_SCHEMA_DEPTH:
            return
        properties = node.get("properties")
        required = _strings(node.get("required"))
        if isinstance(properties, dict):
            for name, child in properties.items():
                path = f"{prefix}.{name}" if prefix else str(name)
                if isinstance(child, dict):
                    found[path] = FieldInfo(_type_of(child), name in required)
                    walk(child, path, depth + 1)
        items = node.get("items")
        if isinstance(items, dict):
            walk(items, f"{prefix}[]", depth + 1)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            path = f"{prefix}.*" if prefix else "*"
            found[path] = FieldInfo(_type_of(extra), False)
            walk(extra, path, depth + 1)

    walk(schema, "", 0)
    return found


def diff_schema(before: Any, after: Any) -> list[dict[str, Any]]:
    """Fields added, removed, made required or optional, or of another type."""
    old, new = schema_fields(before), schema_fields(after)
    changes: list[dict[str, Any]] = []
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path), new.get(path)
        if a is None and b is not None:
            entry = {"change": "field-added", "path": path, "to": b.type}
            changes.append({**entry, "required": True} if b.required else entry)
        elif b is None and a is not None:
            changes.append({"change": "field-removed", "path": path, "from": a.type})
        elif a is not None and b is not None:
            if a.type != b.type:
                changes.append({"change": "field-type", "path": path, "from": a.type, "to": b.type})
            if a.required != b.required:
                changes.append(
                    {"change": "field-required" if b.required else "field-optional", "path": path}
                )
    return changes


def _crd_docs(docs: Iterable[Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            applied = convert_v1beta1(doc) if is_v1beta1_crd(doc) else doc
            name = str((applied.get("metadata") or {}).get("name", ""))
            found[name] = applied
    return found


def _version_flags(served: bool, storage: bool, deprecated: bool) -> str:
    flags = ["served" if served else "not served"]
    if storage:
        flags.append("storage")
    if deprecated:
        flags.append("deprecated")
    return ", ".join(flags)


def diff_crds(before: Iterable[Any], after: Iterable[Any]) -> list[dict[str, Any]]:
    """Per CRD (by name): added, removed, or the changes of its scope, versions and fields."""
    old, new = _crd_docs(before), _crd_docs(after)
    result: list[dict[str, Any]] = []
    for name in sorted(old.keys() | new.keys()):
        a = crd_info(old[name]) if name in old else None
        b = crd_info(new[name]) if name in new else None
        info = b or a
        assert info is not None  # noqa: S101 - name comes from one of them
        entry: dict[str, Any] = {"crd": name, "group": info.group, "kind": info.kind}
        if a is None or b is None:
            present = b or a
            assert present is not None  # noqa: S101
            entry["change"] = "added" if a is None else "removed"
            entry["versions"] = [
                {"version": v.name, "flags": _version_flags(v.served, v.storage, v.deprecated)}
                for v in present.versions.values()
            ]
            entry["changes"] = []
            result.append(entry)
            continue
        changes: list[dict[str, Any]] = []
        if a.scope != b.scope:
            changes.append({"change": "scope", "from": a.scope, "to": b.scope})
        for version in [*a.versions, *(v for v in b.versions if v not in a.versions)]:
            va, vb = a.versions.get(version), b.versions.get(version)
            if va is None and vb is not None:
                added: dict[str, Any] = {
                    "change": "version-added",
                    "version": version,
                    "to": _version_flags(vb.served, vb.storage, vb.deprecated),
                }
                base = a.versions.get(a.storage_version)
                if base is not None:  # its fields, against the storage version it follows
                    added["against"] = base.name
                    added["fields"] = diff_schema(base.schema, vb.schema)
                changes.append(added)
                continue
            if vb is None and va is not None:
                changes.append(
                    {
                        "change": "version-removed",
                        "version": version,
                        "from": _version_flags(va.served, va.storage, va.deprecated),
                    }
                )
                continue
            assert va is not None and vb is not None  # noqa: S101
            for flag in ("served", "storage", "deprecated"):
                if getattr(va, flag) != getattr(vb, flag):
                    changes.append(
                        {
                            "change": flag,
                            "version": version,
                            "from": getattr(va, flag),
                            "to": getattr(vb, flag),
                        }
                    )
            changes += [{**c, "version": version} for c in diff_schema(va.schema, vb.schema)]
        if changes:
            result.append({**entry, "change": "changed", "versions": [], "changes": changes})
    return result


# -- RBAC --------------------------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def role_grants(roles: Iterable[Any]) -> set[tuple[str, str, str, str, str, str]]:
    """Each (role kind, apiGroup, resource, resourceName, nonResourceURL, verb) that the Role and
    ClusterRole documents grant, one per combination of a rule's lists."""
    grants: set[tuple[str, str, str, str, str, str]] = set()
    for doc in roles:
        if not isinstance(doc, dict) or doc.get("kind") not in ("Role", "ClusterRole"):
            continue
        kind = str(doc["kind"])
        for rule in doc.get("rules") or []:
            if not isinstance(rule, dict):
                continue
            verbs = _strings(rule.get("verbs"))
            for url in _strings(rule.get("nonResourceURLs")):
                grants.update((kind, "", "", "", url, verb) for verb in verbs)
            names = _strings(rule.get("resourceNames")) or [""]
            for group in _strings(rule.get("apiGroups")):
                for resource in _strings(rule.get("resources")):
                    grants.update(
                        (kind, group, resource, name, "", verb) for name in names for verb in verbs
                    )
    return grants


def _grant_dict(grant: tuple[str, str, str, str, str, str]) -> dict[str, str]:
    kind, group, resource, name, url, verb = grant
    if url:
        return {"role": kind, "nonResourceURL": url, "verb": verb}
    entry = {"role": kind, "apiGroup": group, "resource": resource, "verb": verb}
    return {**entry, "resourceName": name} if name else entry


def derived_rights(manifest: SolutionManifest, roles: Sequence[Any]) -> set[str]:
    """Rights the engine gives the operator because of what else the archive says: the
    ``system:auth-delegator`` binding of https metrics, and each privileged rule that an
    administrator must approve (``--allow-privileged-role``)."""
    found: set[str] = set()
    metrics = manifest.operator_metrics
    if metrics is not None and metrics.enabled and metrics.scheme == "https":
        found.add(
            "ClusterRoleBinding to system:auth-delegator (tokenreviews, subjectaccessreviews: "
            "https metrics)"
        )
    content = VersionContent(manifest, roles=tuple(r for r in roles if isinstance(r, dict)))
    found.update(f"needs approval: {rule}" for rule in privileged_rules(content))
    return found


def diff_rbac(
    before_roles: Sequence[Any],
    after_roles: Sequence[Any],
    before_derived: Iterable[str] = (),
    after_derived: Iterable[str] = (),
) -> dict[str, Any]:
    """Rules granted and dropped (single grants), and derived rights granted and dropped."""
    old, new = role_grants(before_roles), role_grants(after_roles)
    old_derived, new_derived = set(before_derived), set(after_derived)
    return {
        "granted": [_grant_dict(g) for g in sorted(new - old)],
        "dropped": [_grant_dict(g) for g in sorted(old - new)],
        "derived": {
            "granted": sorted(new_derived - old_derived),
            "dropped": sorted(old_derived - new_derived),
        },
    }


# -- manifest --------------------------------------------------------------------------------


def _manifest_fields(manifest: SolutionManifest) -> dict[str, str | None]:
    metrics = manifest.operator_metrics
    return {
        "name": manifest.name,
        "version": manifest.version,
        "displayName": manifest.display_name,
        "operatorImage": str(manifest.operator_image),
        "operatorMetrics": (
            f"{metrics.scheme}://:{metrics.port}{metrics.path}"
            if metrics is not None and metrics.enabled
            else None
        ),
        "ui": f"{manifest.ui.image} port {manifest.ui.port}" if manifest.ui is not None else None,
    }


def diff_manifest(before: SolutionManifest, after: SolutionManifest) -> list[dict[str, Any]]:
    """The manifest fields that differ (images are compared by :func:`diff_images`)."""
    old, new = _manifest_fields(before), _manifest_fields(after)
    return [{"field": k, "from": old[k], "to": new[k]} for k in old if old[k] != new[k]]


# -- images and blobs ------------------------------------------------------------------------


def _image_name(ref: str) -> str:
    return ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref


def _image(info: ImageInfo, new_bytes: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"image": info.ref, "digest": info.digest, "size": info.size}
    return {**entry, "newBytes": new_bytes} if new_bytes is not None else entry


def diff_images(
    before: Mapping[str, ImageInfo], after: Mapping[str, ImageInfo], sizes: Mapping[str, int]
) -> dict[str, list[dict[str, Any]]]:
    """Images added, removed, changed (the same image name with another tag, or the same
    name:tag with another digest) and unchanged; ``newBytes`` of an image of ``after``: the
    sizes (``sizes``: blob hex -> bytes) of its blobs that no image of ``before`` holds."""
    held = {blob for info in before.values() for blob in info.blobs}

    def fresh(info: ImageInfo) -> int:
        return sum(sizes.get(b, 0) for b in info.blobs if b not in held)

    same = [r for r in sorted(before.keys() & after.keys()) if before[r].digest == after[r].digest]
    old = {r: i for r, i in before.items() if r not in same}
    new = {r: i for r, i in after.items() if r not in same}
    pairs: list[tuple[str, ImageInfo, ImageInfo]] = [
        (_image_name(r), old.pop(r), new.pop(r)) for r in sorted(old.keys() & new.keys())
    ]
    names_old: dict[str, list[str]] = {}
    names_new: dict[str, list[str]] = {}
    for ref in old:
        names_old.setdefault(_image_name(ref), []).append(ref)
    for ref in new:
        names_new.setdefault(_image_name(ref), []).append(ref)
    for name in sorted(names_old.keys() & names_new.keys()):
        if len(names_old[name]) == 1 and len(names_new[name]) == 1:  # one tag each: a new tag
            pairs.append((name, old.pop(names_old[name][0]), new.pop(names_new[name][0])))
    return {
        "added": [_image(new[r], fresh(new[r])) for r in sorted(new)],
        "removed": [_image(old[r]) for r in sorted(old)],
        "changed": [
            {"name": name, "from": _image(a), "to": _image(b, fresh(b))}
            for name, a, b in sorted(pairs, key=lambda p: p[0])
        ],
        "unchanged": [_image(after[r]) for r in same],
    }


def diff_blobs(
    before: Mapping[str, ImageInfo],
    after: Mapping[str, ImageInfo],
    sizes_before: Mapping[str, int],
    sizes_after: Mapping[str, int],
) -> dict[str, Any]:
    """Blobs (layers, configs, manifests) added and removed, and the bytes to pull: the sizes
    of the blobs of ``after`` that ``before`` does not hold, each counted once."""
    old = {b for info in before.values() for b in info.blobs}
    new = {b for info in after.values() for b in info.blobs}
    added: list[dict[str, Any]] = [
        {"digest": f"sha256:{b}", "size": sizes_after.get(b, 0)} for b in sorted(new - old)
    ]
    removed: list[dict[str, Any]] = [
        {"digest": f"sha256:{b}", "size": sizes_before.get(b, 0)} for b in sorted(old - new)
    ]
    added.sort(key=lambda e: (-int(e["size"]), str(e["digest"])))
    removed.sort(key=lambda e: (-int(e["size"]), str(e["digest"])))
    return {
        "added": added,
        "removed": removed,
        "shared": len(old & new),
        "bytesToPull": sum(int(e["size"]) for e in added),
        "bytesRemoved": sum(int(e["size"]) for e in removed),
    }


# -- reading an archive ----------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveContent:
    """What :func:`diff_archives` compares of one archive."""

    path: str
    manifest: SolutionManifest
    images: Mapping[str, ImageInfo]
    #: the cosign signature images (``<name>:sha256-<hex>.sig``): blobs a registry pulls too
    signatures: Mapping[str, ImageInfo]
    sizes: Mapping[str, int]  # blob hex -> bytes
    crds: tuple[Any, ...]
    roles: tuple[Any, ...]
    #: manifest digest hex -> its SBOM's packages, or why they cannot be read
    packages: Mapping[str, dict[tuple[str, str], str] | str]
    signature: str | None  # as inspect says it; None: not checked


def _blob_sizes(source: FileSource) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path, info in source.files().items():
        if path.startswith("images/"):
            name = path.rsplit("/", 1)[-1].removesuffix(".tar")
            if _HEX.match(name):
                sizes[name] = info.size
    return sizes


def _sbom_digest(path: str) -> str | None:
    """The manifest digest (hex) an SBOM file is named after: ``sboms/sha256-<hex>.spdx.json``
    (or any file under ``sboms/`` whose path holds one sha256 hex digest)."""
    if not path.startswith(SBOM_DIR):
        return None
    found = _HEX_IN.findall(path[len(SBOM_DIR) :])
    return found[0] if len(found) == 1 else None


def _sboms(source: FileSource, label: str) -> dict[str, dict[tuple[str, str], str] | str]:
    found: dict[str, dict[tuple[str, str], str] | str] = {}
    for path in sorted(source.files()):
        hexdigest = _sbom_digest(path)
        if hexdigest is None:
            continue
        if isinstance(found.get(hexdigest), dict):
            continue  # one readable SBOM of the image is enough (e.g. SPDX beside CycloneDX)
        try:
            doc = json.loads(read_limited(source, path, MAX_SBOM_BYTES))
            found[hexdigest] = sbom_packages(doc, f"{label}:{path}")
        except (ValueError, RecursionError):
            found[hexdigest] = f"{label}:{path} is not valid JSON"
        except ArchiveError as err:
            found[hexdigest] = str(err)
    return found


def read_archive(
    path: Path, trusted: Mapping[str, PublicKey] | None = None, pin: Pin | None = None
) -> ArchiveContent:
    """The manifest, images, CRDs, roles and SBOM index of an archive, read in place.

    ``trusted``: check the signatures over SHA256SUMS as ``inspect`` does (None: not checked,
    e.g. for imported archives, verified at import).  ``pin``: an imported archive's pin, every
    file read is checked against it (ArchiveChanged).  ArchiveError when it is not a Solution
    archive one can compare."""
    source: FileSource = open_archive(path, pin) if pin is not None else open_source(path)[0]
    try:
        report = check_source(
            source, trusted=trusted or {}, policy=Policy.DISABLED, verify_content=False
        )
        manifest = report.manifest
        if manifest is None:
            errors = [str(f) for f in report.findings]
            raise ArchiveError(
                f"{path}: not a Solution archive one can compare"
                + (f" ({errors[0]})" if errors else ""),
                hint=f"see {command('validate', str(path))}",
            )
        files = source.files()
        crds: list[Any] = []
        for crd_path in crd_files(files):
            try:
                crds += load_yaml_documents(read_limited(source, crd_path, 4 << 20), crd_path)
            except ManifestError as err:
                raise ArchiveError(
                    f"{path}: {crd_path} is not valid YAML ({err})",
                    hint=f"see {command('validate', str(path))}",
                ) from None
        roles = operator_roles(source, str(path))
        signature: str | None = None
        if trusted is not None:
            sums = read_limited(source, SUMS_PATH, 32 << 20) if SUMS_PATH in files else None
            signatures = {
                p: read_limited(source, p, MAX_SIGNATURE_BYTES)
                for p in sorted(files)
                if p.startswith("signatures/")
            }
            signature = check_signatures(sums, signatures, trusted, Policy.IF_SIGNED).status
        return ArchiveContent(
            path=str(path),
            manifest=manifest,
            images=dict(report.images.images),
            signatures=dict(report.images.signatures),
            sizes=_blob_sizes(source),
            crds=tuple(crds),
            roles=tuple(roles),
            packages=_sboms(source, manifest.id),
            signature=signature,
        )
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def _image_packages(
    archive: ArchiveContent, info: ImageInfo
) -> tuple[dict[tuple[str, str], str] | None, str | None]:
    """(packages, None), or (None, why they are not known)."""
    if not archive.packages:
        return None, f"{archive.manifest.id} has no SBOM"
    found = archive.packages.get(info.digest.removeprefix("sha256:"))
    if found is None:
        return None, f"{archive.manifest.id} has no SBOM for {info.ref}"
    if isinstance(found, str):
        return None, found
    return found, None


def _packages_section(
    old: ArchiveContent, new: ArchiveContent, images: Mapping[str, Any]
) -> dict[str, Any]:
    if not old.packages and not new.packages:
        return {"known": False, "note": NO_SBOM, "images": []}
    pairs: list[tuple[str, ImageInfo | None, ImageInfo | None]] = [
        (c["name"], old.images[c["from"]["image"]], new.images[c["to"]["image"]])
        for c in images["changed"]
    ]
    pairs += [(_image_name(i["image"]), None, new.images[i["image"]]) for i in images["added"]]
    pairs += [(_image_name(i["image"]), old.images[i["image"]], None) for i in images["removed"]]
    result: list[dict[str, Any]] = []
    for name, a, b in sorted(pairs, key=lambda p: p[0]):
        before, why_a = _image_packages(old, a) if a is not None else ({}, None)
        after, why_b = _image_packages(new, b) if b is not None else ({}, None)
        entry: dict[str, Any] = {
            "image": name,
            "from": a.ref if a is not None else None,
            "to": b.ref if b is not None else None,
        }
        if before is None or after is None:
            why = "; ".join(w for w in (why_a, why_b) if w)
            result.append({**entry, "known": False, "note": f"not known ({why})"})
            continue
        result.append({**entry, "known": True, "note": None, **diff_packages(before, after)})
    known = all(e["known"] for e in result)
    return {
        "known": known,
        "note": None if known else "not known for every image",
        "images": result,
    }


def _side(archive: ArchiveContent) -> dict[str, Any]:
    return {
        "archive": archive.path,
        "id": archive.manifest.id,
        "name": archive.manifest.name,
        "version": archive.manifest.version,
        "signature": archive.signature,
        "sboms": len(archive.packages),
    }


def compare(old: ArchiveContent, new: ArchiveContent) -> dict[str, Any]:
    """The diff of two read archives (see the module's docstring for each part)."""
    images = diff_images(old.images, new.images, new.sizes)
    return {
        "from": _side(old),
        "to": _side(new),
        "manifest": diff_manifest(old.manifest, new.manifest),
        "images": images,
        "blobs": diff_blobs(
            {**old.images, **old.signatures}, {**new.images, **new.signatures}, old.sizes, new.sizes
        ),
        "packages": _packages_section(old, new, images),
        "crds": diff_crds(old.crds, new.crds),
        "rbac": diff_rbac(
            old.roles,
            new.roles,
            derived_rights(old.manifest, old.roles),
            derived_rights(new.manifest, new.roles),
        ),
    }


@dataclass(frozen=True)
class DiffOptions:
    before: Path
    after: Path
    keys: tuple[Path, ...] = ()
    trusted_pems: tuple[str, ...] = ()


def diff_archives(options: DiffOptions) -> dict[str, Any]:
    """What going from archive ``before`` to archive ``after`` changes; the signatures of both
    are checked against the trusted keys and reported, as ``inspect`` does."""
    from metalk8s_solutions.archive.signing import trusted_keys  # noqa: PLC0415

    trusted = trusted_keys(options.keys, options.trusted_pems)
    return compare(read_archive(options.before, trusted), read_archive(options.after, trusted))


def diff_imported(
    before: Path, after: Path, pins: Mapping[str, Pin | None] | None = None
) -> dict[str, Any]:
    """The diff of two imported archives, read against their pins (``pins``: archive path ->
    pin); their signatures were verified at import and are not checked again."""
    pins = pins or {}
    return compare(
        read_archive(before, pin=pins.get(str(before))),
        read_archive(after, pin=pins.get(str(after))),
    )


def upgrade_diffs(
    deployed: Mapping[str, str | None],
    version: str,
    archive: str,
    pins: Mapping[str, Pin | None] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """For a dry-run upgrade to ``version`` (imported from ``archive``): the diff from each
    deployed version's archive (``deployed``: version -> its imported archive; ``pins``: archive
    -> its pin), and a note for each that cannot be read (the plan is still shown)."""
    diffs: list[dict[str, Any]] = []
    notes: list[str] = []
    for current, path in deployed.items():
        if current == version:
            continue
        if path is None:
            notes.append(f"what changes from {current} is not known: its archive is not imported")
            continue
        try:
            diffs.append(diff_imported(Path(path), Path(archive), pins))
        except SolutionsError as err:
            notes.append(f"what changes from {current} to {version} is not known: {err}")
        except OSError as err:
            why = f"{err.strerror or err}: {err.filename or path}"
            notes.append(f"what changes from {current} to {version} is not known: {why}")
    return diffs, notes
