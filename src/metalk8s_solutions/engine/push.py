"""``push``: copy the images of Solution archives into the registry that push mode points at.

The verb behind ``solutions push`` and the image step of ``solutions import`` in push mode.  It
turns the ``registry`` settings of SolutionsConfiguration into a push target (reading the
password file), picks the related repositories whose blobs can be mounted instead of uploaded
(the other versions of the same solution), and runs :func:`~metalk8s_solutions.images.push.
push_images` for each archive in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from metalk8s_solutions.api.config import RegistrySettings
from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.archive.pinning import PinnedIso
from metalk8s_solutions.errors import ArchiveError, InvalidInput, SolutionsError
from metalk8s_solutions.images.catalog import SolutionImages, load_catalog
from metalk8s_solutions.images.client import RegistryTarget
from metalk8s_solutions.images.push import (
    DEFAULT_CONCURRENCY,
    ProgressCallback,
    PushProgress,
    PushResult,
    push_images,
)

#: (solution id, progress) for each archive of a multi-archive push.
ArchiveProgress = Callable[[str, PushProgress], None]
MAX_PASSWORD_BYTES = 64 * 1024


def read_password(path: Path) -> str:
    """The password in ``path``, without its trailing newline."""
    try:
        data = path.read_bytes()[: MAX_PASSWORD_BYTES + 1]
    except OSError as err:
        raise InvalidInput(
            f"cannot read the registry password file {path}: {err.strerror}",
            hint="set registry.passwordFile (or --password-file) to a readable file",
        ) from err
    if len(data) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"the registry password file {path} is too large")
    text = data.decode("utf-8", errors="replace").rstrip("\r\n")
    if not text:
        raise InvalidInput(f"the registry password file {path} is empty")
    return text


def target_from_settings(settings: RegistrySettings) -> RegistryTarget:
    """The push target that ``settings`` (the ``registry`` key) describes."""
    if not settings.push_url:
        raise InvalidInput(
            "no registry to push to",
            hint="set registry.pushUrl in SolutionsConfiguration, or pass --registry",
        )
    if settings.password_file and not settings.username:
        raise InvalidInput(
            "registry.passwordFile is set without registry.username", hint="set both, or neither"
        )
    if settings.username and not settings.password_file:
        raise InvalidInput(
            "registry.username is set without registry.passwordFile", hint="set both, or neither"
        )
    password = read_password(Path(settings.password_file)) if settings.password_file else None
    return RegistryTarget(
        url=settings.push_url,
        prefix=settings.push_prefix,
        ca_file=Path(settings.ca_file) if settings.ca_file else None,
        insecure=settings.insecure,
        username=settings.username,
        password=password,
    )


async def push_archive(
    catalog: SolutionImages,
    settings: RegistrySettings,
    *,
    related: Sequence[str] = (),
    dry_run: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: ProgressCallback | None = None,
) -> PushResult:
    """Push the images of one archive (its catalog) as ``settings`` say.

    ``related``: ids of other solution versions already pushed under the same prefix (blobs
    they share with this one are mounted, not uploaded).
    """
    return await push_images(
        catalog,
        target_from_settings(settings),
        related=related,
        concurrency=concurrency,
        progress=progress,
        dry_run=dry_run,
    )


@dataclass(frozen=True)
class PushOptions:
    """``solutions push``: archives, and the registry settings (config file, then flags)."""

    archives: tuple[Path, ...]
    registry: RegistrySettings
    #: other archives (e.g. the imported ones) whose versions may share blobs with these
    known_archives: tuple[Path, ...] = ()
    dry_run: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    chunk_size: int | None = None
    progress: ArchiveProgress | None = None
    #: archive path -> its pin: what is pushed is checked against it (imports pass them)
    pins: Mapping[str, Pin] = field(default_factory=dict)


def _load(path: Path, pin: Pin | None = None) -> SolutionImages:
    try:
        if pin is None:
            return load_catalog(path)
        # The index and manifests are read through the pin; blobs need no second full read:
        # the destination registry checks each uploaded blob against its digest.
        with PinnedIso(path, pin) as iso:
            return load_catalog(path, iso)
    except FileNotFoundError as err:
        raise ArchiveError(f"archive {path} does not exist") from err
    except OSError as err:
        raise ArchiveError(f"archive {path}: cannot read it ({err.strerror})") from err


def _known_ids(paths: Sequence[Path]) -> dict[str, str]:
    """solution id -> solution name of the known archives that can still be read."""
    ids: dict[str, str] = {}
    for path in paths:
        try:
            catalog = load_catalog(path)
        except (SolutionsError, OSError):
            continue  # an unreadable known archive is only a missed mount source
        ids[catalog.solution_id] = catalog.manifest.name
    return ids


async def push_archives(options: PushOptions) -> list[PushResult]:
    """Push each archive in turn; versions of one solution mount each other's blobs."""
    if options.concurrency < 1:
        raise InvalidInput("concurrency must be at least 1")
    target = target_from_settings(options.registry)
    catalogs = await asyncio.gather(  # pins are checked off the event loop (the UI runs here)
        *(asyncio.to_thread(_load, p, options.pins.get(str(p))) for p in options.archives)
    )
    known = await asyncio.to_thread(_known_ids, options.known_archives)
    results: list[PushResult] = []
    pushed: dict[str, str] = {}
    for catalog in catalogs:
        name = catalog.manifest.name
        related = [i for i, n in pushed.items() if n == name]
        related += [i for i, n in known.items() if n == name and i not in related]

        def report(event: PushProgress, solution_id: str = catalog.solution_id) -> None:
            if options.progress is not None:
                options.progress(solution_id, event)

        results.append(
            await push_images(
                catalog,
                target,
                related=related,
                concurrency=options.concurrency,
                chunk_size=options.chunk_size,
                progress=report,
                dry_run=options.dry_run,
            )
        )
        pushed[catalog.solution_id] = name
    return results


def push(options: PushOptions) -> list[PushResult]:
    """Synchronous entry of :func:`push_archives` (for the command line)."""
    return asyncio.run(push_archives(options))


def settings_with(settings: RegistrySettings, **overrides: object) -> RegistrySettings:
    """``settings`` with the flags the user gave (``None`` means not given)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return replace(settings, **given)  # type: ignore[arg-type]
