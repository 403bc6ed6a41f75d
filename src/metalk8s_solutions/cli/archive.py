"""The developer's archive commands: ``build``, ``inspect``, ``validate``, ``keygen``.

Argument parsing and rendering only; the work is in :mod:`metalk8s_solutions.engine`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from metalk8s_solutions.cli.common import key_option
from metalk8s_solutions.cli.defaults import ALGORITHMS, POLICIES
from metalk8s_solutions.cli.output import emit, output_option, table
from metalk8s_solutions.cli.progress import ProgressLine, human_size
from metalk8s_solutions.errors import ArchiveInvalid

if TYPE_CHECKING:  # each command imports its engine module when it runs (fast --help)
    from metalk8s_solutions.engine.validate import ProgressEvent


class ProgressPrinter:
    """Bytes done and rate of an engine's progress events, on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.line = ProgressLine(quiet=quiet)

    def __call__(self, event: ProgressEvent) -> None:
        if event.done >= event.total:
            self.line.finish(event.phase, event.done, event.total)
        else:
            self.line.update(event.phase, event.done, event.total)


F = TypeVar("F", bound=Callable[..., Any])


def iso_output(text: str) -> Callable[[F], F]:
    """``-o/--output FILE``: the ISO a command writes."""
    return click.option(
        "-o",
        "--output",
        "output",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help=text,
    )


@click.command("build")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@iso_output("The ISO file to write.")
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Private key (PEM) to sign the archive with.",
)
@click.option(
    "--source-date-epoch",
    type=int,
    default=None,
    help="Timestamp for every date in the image (default: env SOURCE_DATE_EPOCH).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def build_command(
    source: Path, output: Path, key: Path | None, source_date_epoch: int | None, quiet: bool
) -> None:
    """Build the Solution archive OUTPUT from the source tree SOURCE."""
    from metalk8s_solutions.engine.build import BuildOptions, build  # noqa: PLC0415

    result = build(
        BuildOptions(source, output, key, source_date_epoch, progress=ProgressPrinter(quiet))
    )
    for finding in result.warnings:
        click.echo(f"warning: {finding}", err=True)
    signed = f", signed by {result.key_id}" if result.key_id else ", unsigned"
    click.echo(
        f"built {result.output} ({result.id}): {human_size(result.size)}, "
        f"{len(result.images)} images, {result.blobs} blobs{signed}, in {result.seconds:.1f}s"
    )


def _inspect_text(data: dict[str, Any]) -> str:
    lines = [
        f"Archive:    {data['archive']} ({data['layout']} layout)",
        f"Solution:   {data['id']}",
        f"Signature:  {data['integrity']['signature']}"
        + (
            f" ({', '.join(data['integrity']['signedBy'])})"
            if data["integrity"]["signedBy"]
            else ""
        ),
        f"Checksums:  {data['integrity']['checksums']}",
        "",
        table(
            ["image", "digest", "size", "platforms"],
            [
                [i["image"], i["digest"][:19], human_size(i["size"]), ",".join(i["platforms"])]
                for i in data["images"]
            ],
        ),
    ]
    if data["crds"]:
        lines += [
            "",
            table(
                ["crd", "group", "kind", "versions", "storage"],
                [
                    [
                        c["name"],
                        c["group"],
                        c["kind"],
                        ",".join(map(str, c["versions"])),
                        f"{c['storageVersion']} (converted from v1beta1)"
                        if c.get("convertedFrom")
                        else c["storageVersion"],
                    ]
                    for c in data["crds"]
                ],
            ),
        ]
    if data["roles"]:
        lines += [
            "",
            table(
                ["role kind", "name", "rules"],
                [[r["kind"], r["name"], r["rules"]] for r in data["roles"]],
            ),
        ]
    for problem in data["problems"]:
        lines.append(f"problem: {problem['rule']} {problem['path']}: {problem['message']}")
    return "\n".join(lines)


def _sbom_text(data: dict[str, Any]) -> str:
    from metalk8s_solutions.images.sbom import package_rows  # noqa: PLC0415

    blocks = []
    for entry in data["images"]:
        title = f"{entry['image']} ({entry['digest'][:19]})"
        if entry["spdx"] is None:
            blocks.append(f"{title}: no SBOM in this archive")
            continue
        rows = package_rows(entry["spdx"])
        blocks.append(
            f"{title}: {_count(len(rows), 'package')}\n"
            + table(
                ["type", "name", "version", "license"],
                [[r["type"], r["name"], r["version"], r["license"] or "-"] for r in rows],
            )
        )
    return "\n\n".join(blocks) if blocks else "no image"


@click.command("inspect")
@click.argument("archive", type=click.Path(exists=True, path_type=Path))
@key_option()
@click.option(
    "--sbom",
    "sbom",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[IMAGE]",
    help="Show the packages of every image (or of IMAGE, name:tag) from the archive's SBOMs; "
    "-o json|yaml gives the SPDX documents.",
)
@output_option
def inspect_command(archive: Path, keys: tuple[Path, ...], sbom: str | None, output: str) -> None:
    """Show what ARCHIVE holds, read straight from the ISO (no mount, no extraction)."""
    if sbom is not None:
        from metalk8s_solutions.engine.inspect import SbomOptions, sboms  # noqa: PLC0415

        emit(sboms(SbomOptions(archive, sbom or None)), output, _sbom_text)
        return
    from metalk8s_solutions.engine.inspect import InspectOptions, inspect  # noqa: PLC0415

    result = inspect(InspectOptions(archive, keys))
    emit(result.to_dict(), output, _inspect_text)


@click.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@key_option()
@click.option(
    "--policy",
    type=click.Choice(POLICIES),
    default=None,
    help="Signature policy (default: required with --key, otherwise if-signed).",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def validate_command(
    path: Path, keys: tuple[Path, ...], policy: str | None, output: str, quiet: bool
) -> None:
    """Check an archive (ISO or extracted) or a source tree against every rule.

    Exit status: 0 valid (warnings allowed), 1 invalid, 2 could not run.
    """
    from metalk8s_solutions.api.config import Policy  # noqa: PLC0415
    from metalk8s_solutions.engine.validate import ValidateOptions, validate  # noqa: PLC0415

    chosen = Policy(policy) if policy else None
    result = validate(ValidateOptions(path, keys, policy=chosen, progress=ProgressPrinter(quiet)))
    data = result.to_dict()
    if output == "json":
        emit(data, "json", str)
    else:
        for finding in result.findings:
            click.echo(f"{finding.level}: {finding}")
        verdict = "valid" if result.valid else "INVALID"
        click.echo(
            f"{path}: {verdict} ({_count(data['errors'], 'error')}, "
            f"{_count(data['warnings'], 'warning')}; "
            f"policy {data['policy']}, signature {data['signature']})"
        )
    if not result.valid:  # every finding is printed above: exit 1 without repeating one
        raise SystemExit(ArchiveInvalid.exit_code)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@click.command("keygen")
@click.argument("prefix", type=click.Path(dir_okay=False, path_type=Path), default="signing")
@click.option(
    "--algorithm",
    type=click.Choice(ALGORITHMS),
    default="ecdsa-p256",
    show_default=True,
)
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@output_option
def keygen_command(prefix: Path, algorithm: str, force: bool, output: str) -> None:
    """Create a signing key pair PREFIX.key (private, 0600) and PREFIX.pub."""
    from metalk8s_solutions.archive.signing import Algorithm  # noqa: PLC0415
    from metalk8s_solutions.engine.keygen import KeygenOptions, keygen  # noqa: PLC0415

    result = keygen(KeygenOptions(prefix, Algorithm(algorithm), force))
    emit(
        result.to_dict(),
        output,
        lambda d: (
            f"key {d['keyId']} ({d['algorithm']}): private {d['privateKey']}, "
            f"public {d['publicKey']}"
        ),
    )


@click.command("sign")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Private key (PEM) to add a signature with.",
)
@click.option(
    "--trusted-key",
    "trusted",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Public key (PEM) whose valid signature ARCHIVE must carry, e.g. the vendor's "
    "(repeatable; required: an archive not verified is never signed).",
)
@iso_output("The signed ISO to write (may be ARCHIVE itself).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def sign_command(
    archive: Path, key: Path, trusted: tuple[Path, ...], output: Path, quiet: bool
) -> None:
    """Add a signature (e.g. the site's) to ARCHIVE, once verified, keeping the existing ones."""
    from metalk8s_solutions.engine.sign import SignOptions, sign_archive  # noqa: PLC0415

    result = sign_archive(
        SignOptions(archive, key, output, progress=ProgressPrinter(quiet), trusted=trusted)
    )
    click.echo(f"signed {result.output} with {result.key_id}; signatures: {len(result.signatures)}")
