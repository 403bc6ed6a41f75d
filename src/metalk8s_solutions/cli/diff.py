"""``solutions diff A B``: what going from archive A to archive B changes (parsing and output).

The work is in :mod:`metalk8s_solutions.engine.diff`; :func:`diff_text` is the human report,
also printed by ``env upgrade --dry-run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from metalk8s_solutions.cli.common import key_option
from metalk8s_solutions.cli.output import emit, output_option
from metalk8s_solutions.cli.progress import human_size


def _short(digest: str) -> str:
    return digest[:19]


def _tag(ref: str) -> str:
    return ref.rsplit(":", 1)[-1] if ":" in ref.rsplit("/", 1)[-1] else ref


def _side(side: dict[str, Any]) -> str:
    signature = f", signature: {side['signature']}" if side.get("signature") else ""
    return f"{side['id']} ({side['archive']}{signature})"


def _manifest_lines(changes: list[dict[str, Any]]) -> list[str]:
    lines = []
    for change in changes:
        if change["from"] is None:
            lines.append(f"  + {change['field']}: {change['to']}")
        elif change["to"] is None:
            lines.append(f"  - {change['field']}: {change['from']}")
        else:
            lines.append(f"  ~ {change['field']}: {change['from']} -> {change['to']}")
    return lines or ["  no change"]


def _image_lines(images: dict[str, Any], blobs: dict[str, Any]) -> list[str]:
    lines = [
        f"Images: {human_size(blobs['bytesToPull'])} to pull in {len(blobs['added'])} new "
        f"blob(s), {blobs['shared']} blob(s) shared, {len(blobs['removed'])} blob(s) "
        f"({human_size(blobs['bytesRemoved'])}) no longer used"
    ]
    for change in images["changed"]:
        a, b = change["from"], change["to"]
        tags = (
            f"{_tag(a['image'])} -> {_tag(b['image'])}"
            if a["image"] != b["image"]
            else _tag(a["image"])
        )
        lines.append(
            f"  ~ {change['name']} {tags}: {_short(a['digest'])} -> {_short(b['digest'])}, "
            f"{human_size(b['newBytes'])} new of {human_size(b['size'])}"
        )
    for image in images["added"]:
        lines.append(
            f"  + {image['image']}: {_short(image['digest'])}, "
            f"{human_size(image['newBytes'])} new of {human_size(image['size'])}"
        )
    for image in images["removed"]:
        lines.append(
            f"  - {image['image']}: {_short(image['digest'])}, {human_size(image['size'])}"
        )
    lines += [f"  = {image['image']}" for image in images["unchanged"]]
    return lines


def _package_lines(packages: dict[str, Any]) -> list[str]:
    if not packages["images"]:
        return [f"  {packages['note'] or 'no change'}"]
    lines: list[str] = []
    for image in packages["images"]:
        refs = (
            f"{image['from']} -> {image['to']}"
            if image["from"] and image["to"]
            else f"{image['to']}, new image"
            if image["to"]
            else f"{image['from']}, removed image"
        )
        if not image["known"]:
            lines.append(f"  {image['image']} ({refs}): {image['note']}")
            continue
        if image["from"] is None or image["to"] is None:
            count = len(image["added"] or image["removed"])
            lines.append(f"  {image['image']} ({refs}): {count} package(s), -o json lists them")
            continue
        total = len(image["changed"]) + len(image["added"]) + len(image["removed"])
        said = f"{total} package change(s)" if total else "same packages"
        lines.append(f"  {image['image']} ({refs}): {said}")
        lines += [
            f"    ~ {p['type']} {p['name']} {p['from']} -> {p['to']} ({p['change']})"
            for p in image["changed"]
        ]
        lines += [f"    + {p['type']} {p['name']} {p['version']}" for p in image["added"]]
        lines += [f"    - {p['type']} {p['name']} {p['version']}" for p in image["removed"]]
    return lines


def _crd_change(change: dict[str, Any]) -> str:
    version, kind = change.get("version"), change["change"]
    where = f"{version} {change['path']}" if "path" in change else f"{version}"
    if kind == "scope":
        return f"~ scope: {change['from']} -> {change['to']}"
    if kind == "version-added":
        line = f"+ version {version} ({change['to']})"
        if "against" in change:
            fields = change["fields"]
            line += f"; fields against {change['against']}: " + (
                "the same" if not fields else f"{len(fields)} change(s)"
            )
            line += "".join(f"\n          {_crd_change({**c, 'version': version})}" for c in fields)
        return line
    if kind == "version-removed":
        return f"- version {version} (was {change['from']})"
    if kind in ("served", "storage", "deprecated"):
        return f"~ {version}: {kind} {str(change['from']).lower()} -> {str(change['to']).lower()}"
    if kind == "field-added":
        return f"+ {where} ({change['to']}{', required' if change.get('required') else ''})"
    if kind == "field-removed":
        return f"- {where} ({change['from']})"
    if kind == "field-type":
        return f"~ {where}: type {change['from']} -> {change['to']}"
    if kind == "field-required":
        return f"! {where}: now required"
    return f"~ {where}: no longer required"


def _crd_lines(crds: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for crd in crds:
        versions = ", ".join(f"{v['version']} ({v['flags']})" for v in crd["versions"])
        if crd["change"] == "added":
            lines.append(f"  + {crd['crd']} ({crd['kind']}): {versions}")
        elif crd["change"] == "removed":
            lines.append(
                f"  - {crd['crd']} ({crd['kind']}): {versions}; removing a CRD deletes its "
                "objects in every environment"
            )
        else:
            lines.append(f"  ~ {crd['crd']} ({crd['kind']})")
            lines += [f"      {_crd_change(c)}" for c in crd["changes"]]
    return lines or ["  no change"]


def _grant(grant: dict[str, str]) -> str:
    if "nonResourceURL" in grant:
        return f"{grant['role']}: {grant['verb']} {grant['nonResourceURL']}"
    group = grant["apiGroup"] or "core"
    name = f" named {grant['resourceName']}" if "resourceName" in grant else ""
    return f"{grant['role']}: {grant['verb']} {grant['resource']} ({group}){name}"


def _rbac_lines(rbac: dict[str, Any]) -> list[str]:
    lines = [f"  + {_grant(g)}" for g in rbac["granted"]]
    lines += [f"  - {_grant(g)}" for g in rbac["dropped"]]
    lines += [f"  + {d}" for d in rbac["derived"]["granted"]]
    lines += [f"  - {d}" for d in rbac["derived"]["dropped"]]
    return lines or ["  no change"]


def diff_text(data: dict[str, Any]) -> str:
    """The report in sections, one change a line: ``+`` added, ``-`` removed, ``~`` changed,
    ``!`` a field made required (objects without it no longer validate)."""
    lines = [
        f"From: {_side(data['from'])}",
        f"To:   {_side(data['to'])}",
        "",
        "Manifest:",
        *_manifest_lines(data["manifest"]),
        "",
        *_image_lines(data["images"], data["blobs"]),
        "",
        "Packages:",
        *_package_lines(data["packages"]),
        "",
        "CRDs:",
        *_crd_lines(data["crds"]),
        "",
        "RBAC (the operator's rights):",
        *_rbac_lines(data["rbac"]),
    ]
    return "\n".join(lines)


@click.command("diff")
@click.argument("before", type=click.Path(exists=True, path_type=Path))
@click.argument("after", type=click.Path(exists=True, path_type=Path))
@key_option("Trusted public key (PEM) to check both signatures with; repeatable.")
@output_option
def diff_command(before: Path, after: Path, keys: tuple[Path, ...], output: str) -> None:
    """Show what going from archive BEFORE to archive AFTER changes: images, packages, CRDs, RBAC.

    Both are read in place (no mount, no extraction), as inspect reads them.
    """
    from metalk8s_solutions.engine.diff import DiffOptions, diff_archives  # noqa: PLC0415

    emit(diff_archives(DiffOptions(before, after, keys)), output, diff_text)
