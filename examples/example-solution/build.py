#!/usr/bin/env python3
"""Build the example Solution: its OCI images, then one signed ISO archive per version.

    python examples/example-solution/build.py [--out DIR] [--version V ...]   (or: make examples)

Everything comes from package registries, nothing from a container engine:

1. a minimal Debian root filesystem with Python, made by ``mmdebstrap`` from deb.debian.org;
2. the operator's Python dependencies, installed from PyPI wheels pinned with their hashes in
   the repository's ``uv.lock`` (``uv export`` then ``uv pip install --target``);
3. the code of base-server, of the operator and of the UI (``ui/``: its server and static
   files), with the version stamped in.

Each becomes a deterministic layer (entries in a fixed order, dates set to ``EPOCH``, numeric
owners, gzip without name or date), so the same inputs give the same digests: the Debian layer
is shared by every image of every version, the dependency layer by the operator images of every
version.  A version gets the images its ``manifest.yaml`` lists in ``spec.images`` (the UI image
only from 2.0.0 on).  Layers are cached by the digest of their inputs under
``${XDG_CACHE_HOME:-~/.cache}/metalk8s-solutions/examples/``, so a rebuild only redoes the
small code layers and the ISOs.  Each version's source tree (``versions/<v>/``, plus the images
as OCI layouts) is then packed by ``solutions build`` and signed with ``out/vendor.key``,
generated on the first build and never committed.  ``out/build-info.json`` records the digests,
sizes, the resolved Debian package versions and the timings.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VERSIONS = ("1.0.0", "1.1.0", "2.0.0")
SOLUTION = "example-solution"
OPERATOR = "example-solution-operator"
APP = "base-server"
UI = "example-solution-ui"
UI_STATIC = f"usr/share/{UI}"

# Every date in layers, image configs and ISOs.  Fixed rather than the commit date, so that a new
# commit that does not touch an image does not change its digest.
EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
RECIPE = "1"  # bump when the way layers are made changes, to invalidate the caches


@dataclass(frozen=True)
class DebianBase:
    """What goes into the Debian layer; its digest is the cache key of the root filesystem."""

    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    variant: str = "essential"
    packages: tuple[str, ...] = ("python3",)
    # Merged /usr without the usrmerge package (which would pull Perl in).
    hooks: tuple[str, ...] = ("merged-usr",)
    excluded: tuple[str, ...] = (
        "/usr/share/doc/*",
        "/usr/share/man/*",
        "/usr/share/info/*",
        "/usr/share/locale/*",
        "/usr/share/lintian/*",
    )


DEBIAN = DebianBase()
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = "65534:65534"


class BuildError(Exception):
    """A step of the build failed; the message says which and what to do."""


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "metalk8s-solutions" / "examples"


def _digest_of(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# --- deterministic layers ------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    digest: str  # sha256:<hex> of the gzip blob
    size: int
    diff_id: str  # sha256:<hex> of the uncompressed tar
    comment: str

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": OCI_LAYER_GZIP, "digest": self.digest, "size": self.size}


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


class _Hashing:
    """A write-only stream that hashes and counts what goes through it."""

    def __init__(self, sink: _Sink | None) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()


class BlobStore:
    """Content-addressed blobs (``blobs/sha256/<hex>``), written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def put_bytes(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if not target.exists():
            temporary = target.with_name(f".{target.name}.{os.getpid()}")
            temporary.write_bytes(data)
            temporary.replace(target)
        return digest

    def write_layer(
        self, comment: str, fill: Callable[[tarfile.TarFile], None], level: int = 6
    ) -> Layer:
        """A gzip'd tar layer written by ``fill``; returns its digests."""
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".layer-")
        temporary = Path(name)
        try:
            with os.fdopen(fd, "wb") as raw:
                compressed = _Hashing(raw)
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=level
                ) as zipped:
                    plain = _Hashing(zipped)
                    with tarfile.open(  # type: ignore[call-overload]
                        fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT
                    ) as tar:
                        fill(tar)
            digest = "sha256:" + compressed.sha.hexdigest()
            temporary.replace(self.path(digest))
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return Layer(digest, compressed.size, "sha256:" + plain.sha.hexdigest(), comment)


def _entry(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def add_tree(tar: tarfile.TarFile, source: Path, prefix: str) -> None:
    """Add ``source`` as ``prefix`` (its parents included): sorted, root-owned, dated EPOCH."""
    parts = prefix.strip("/").split("/")
    for depth in range(1, len(parts)):
        tar.addfile(_entry("/".join(parts[:depth]), tarfile.DIRTYPE, 0o755))

    def walk(path: Path, name: str) -> None:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            tar.addfile(_entry(name, tarfile.SYMTYPE, 0o777, link=str(path.readlink())))
        elif stat.S_ISDIR(mode):
            tar.addfile(_entry(name, tarfile.DIRTYPE, 0o755))
            for child in sorted(path.iterdir(), key=lambda p: p.name):
                walk(child, f"{name}/{child.name}")
        elif stat.S_ISREG(mode):
            executable = 0o755 if mode & 0o111 else 0o644
            with path.open("rb") as stream:
                info = _entry(name, tarfile.REGTYPE, executable, path.stat().st_size)
                tar.addfile(info, stream)
        else:
            raise BuildError(f"{path}: not a regular file, directory or symlink")

    walk(source, "/".join(parts))


def add_files(tar: tarfile.TarFile, files: dict[str, tuple[bytes, int]]) -> None:
    """Add in-memory files ``{path: (content, mode)}`` and their parent directories."""
    directories = {str(Path(p).parents[i]) for p in files for i in range(len(Path(p).parts) - 1)}
    entries: list[tuple[str, bytes | None, int]] = [(d, None, 0o755) for d in directories]
    entries += [(path, data, mode) for path, (data, mode) in files.items()]
    for name, data, mode in sorted(entries, key=lambda e: e[0].split("/")):
        if data is None:
            tar.addfile(_entry(name, tarfile.DIRTYPE, mode))
        else:
            tar.addfile(_entry(name, tarfile.REGTYPE, mode, len(data)), _BytesReader(data))


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.offset + size
        chunk = self.data[self.offset : end]
        self.offset += len(chunk)
        return chunk


# --- cached steps ----------------------------------------------------------------------------


@dataclass
class Context:
    cache: Path
    store: BlobStore
    log: Callable[[str], None]
    timings: dict[str, float] = field(default_factory=dict)
    hits: dict[str, bool] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.timings[name] = round(time.monotonic() - started, 2)

    def cached_layer(self, key: str, make: Callable[[], Layer]) -> Layer:
        record = self.cache / "layers" / f"{key}.json"
        if record.exists():
            layer = Layer(**json.loads(record.read_text()))
            if self.store.path(layer.digest).exists():
                self.hits[layer.comment] = True
                return layer
        layer = make()
        self.hits[layer.comment] = False
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(asdict(layer), indent=2))
        return layer


def _run(command: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)
    except FileNotFoundError as err:
        raise BuildError(f"{what}: {command[0]} is not installed") from err
    except subprocess.CalledProcessError as err:
        tail = "\n".join((err.stderr or err.stdout or "").strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {err.returncode}):\n{tail}") from err


def ensure_mmdebstrap(log: Callable[[str], None]) -> str:
    found = shutil.which("mmdebstrap")
    if found:
        return found
    if os.geteuid() != 0:
        raise BuildError(
            "mmdebstrap is not installed; install it with 'sudo apt-get install mmdebstrap' "
            "(scripts/bootstrap.sh does)"
        )
    log("installing mmdebstrap (apt-get)")
    _run(["apt-get", "update", "-qq"], "apt-get update")
    _run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mmdebstrap"],
        "apt-get install mmdebstrap",
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("mmdebstrap") or "mmdebstrap"


def debian_rootfs(ctx: Context) -> tuple[Path, dict[str, str]]:
    """The Debian root filesystem as mmdebstrap's tarball, and its packages' versions."""
    mmdebstrap = ensure_mmdebstrap(ctx.log)
    version = _run([mmdebstrap, "--version"], "mmdebstrap --version").stdout.strip()
    key = _digest_of({"debian": asdict(DEBIAN), "mmdebstrap": version, "epoch": EPOCH})[:16]
    tarball = ctx.cache / "rootfs" / f"{DEBIAN.suite}-{key}.tar"
    packages = tarball.with_suffix(".packages.json")
    if tarball.exists() and packages.exists():
        ctx.hits["debian rootfs"] = True
        return tarball, json.loads(packages.read_text())
    ctx.hits["debian rootfs"] = False
    ctx.log(f"mmdebstrap {DEBIAN.suite} ({DEBIAN.variant} + {', '.join(DEBIAN.packages)})")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(f".{tarball.name}.{os.getpid()}")
    command = [
        mmdebstrap,
        f"--variant={DEBIAN.variant}",
        f"--include={','.join(DEBIAN.packages)}",
        *(f"--hook-dir=/usr/share/mmdebstrap/hooks/{hook}" for hook in DEBIAN.hooks),
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in DEBIAN.excluded),
        "--format=tar",
        DEBIAN.suite,
        str(partial),
        DEBIAN.mirror,
    ]
    try:
        _run(
            command,
            "mmdebstrap (needs root and the Debian mirror)",
            env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)},
        )
        versions = _dpkg_versions(partial)
        packages.write_text(json.dumps(versions, indent=2, sort_keys=True))
        partial.replace(tarball)
    finally:
        partial.unlink(missing_ok=True)
    return tarball, versions


def _dpkg_versions(tarball: Path) -> dict[str, str]:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("./var/lib/dpkg/status")
        if member is None:
            raise BuildError(f"{tarball}: no /var/lib/dpkg/status")
        status = member.read().decode()
    versions: dict[str, str] = {}
    for paragraph in status.split("\n\n"):
        fields = dict(re.findall(r"^(Package|Version): (.+)$", paragraph, re.MULTILINE))
        if "Package" in fields:
            versions[fields["Package"]] = fields["Version"]
    return versions


def base_layer(ctx: Context, rootfs: Path) -> Layer:
    """The Debian root filesystem as a layer: no device nodes (the runtime provides /dev)."""
    with rootfs.open("rb") as stream:
        rootfs_digest = hashlib.file_digest(stream, "sha256").hexdigest()
    key = _digest_of({"base": rootfs_digest, "recipe": RECIPE, "epoch": EPOCH})

    def fill(tar: tarfile.TarFile) -> None:
        with tarfile.open(rootfs, mode="r|") as source:
            for member in source:
                name = member.name.removeprefix("./").rstrip("/")
                if not name or member.isdev():
                    continue
                member.name = name
                if member.islnk():
                    member.linkname = member.linkname.removeprefix("./")
                member.mtime = min(int(member.mtime), EPOCH)
                member.uname = member.gname = ""
                member.pax_headers = {
                    k: v for k, v in member.pax_headers.items() if k.startswith("SCHILY.xattr.")
                }
                tar.addfile(member, source.extractfile(member) if member.isreg() else None)

    def make() -> Layer:
        ctx.log("base layer (Debian root filesystem)")
        return ctx.store.write_layer(f"debian {DEBIAN.suite} {DEBIAN.variant} + python3", fill)

    return ctx.cached_layer(key, make)


def operator_requirements() -> str:
    """The operator's dependencies, pinned with hashes, from the repository's uv.lock."""
    uv = shutil.which("uv")
    if uv is None:
        raise BuildError("uv is not on PATH; run scripts/bootstrap.sh (make setup)")
    return _run(
        [
            uv,
            "export",
            "--frozen",
            "--package",
            OPERATOR,
            "--no-emit-workspace",
            "--no-dev",
            "--no-header",
            "--no-annotate",
        ],
        "uv export (the operator's pinned dependencies)",
        cwd=REPO,
    ).stdout


def _wheel_platform(packages: dict[str, str], arch: str) -> tuple[str, str]:
    """(python version, manylinux platform) of the Debian root filesystem."""
    python = re.match(r"(\d+\.\d+)", packages.get("python3", ""))
    glibc = re.match(r"(\d+)\.(\d+)", packages.get("libc6", ""))
    if python is None or glibc is None:
        raise BuildError("the Debian root filesystem has no python3 or libc6 package")
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    return python[1], f"{machine}-manylinux_{glibc[1]}_{glibc[2]}"


def site_packages(python: str) -> str:
    # On Debian, /usr/local/lib/python3.X/dist-packages is on the interpreter's default sys.path.
    return f"usr/local/lib/python{python}/dist-packages"


def deps_layer(ctx: Context, packages: dict[str, str], arch: str) -> tuple[Layer, str]:
    requirements = operator_requirements()
    python, platform = _wheel_platform(packages, arch)
    key = _digest_of({"deps": requirements, "python": python, "platform": platform, "r": RECIPE})

    def make() -> Layer:
        uv = shutil.which("uv") or "uv"
        ctx.log(f"dependency layer (PyPI wheels for Python {python}, {platform})")
        with tempfile.TemporaryDirectory(dir=ctx.cache) as work:
            reqs = Path(work) / "requirements.txt"
            reqs.write_text(requirements)
            target = Path(work) / "root" / site_packages(python)
            _run(
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--target",
                    str(target),
                    "--requirements",
                    str(reqs),
                    "--require-hashes",
                    "--no-deps",
                    "--only-binary",
                    ":all:",
                    "--link-mode",
                    "copy",
                    "--no-compile",
                    "--python-version",
                    python,
                    "--python-platform",
                    platform,
                ],
                "uv pip install (the operator's dependencies, wheels only)",
            )
            # Console scripts point at the build machine's interpreter; the image has its own.
            shutil.rmtree(target / "bin", ignore_errors=True)
            (target / ".lock").unlink(missing_ok=True)
            return ctx.store.write_layer(
                f"{OPERATOR} dependencies", lambda tar: add_tree(tar, target, site_packages(python))
            )

    return ctx.cached_layer(key, make), requirements


def stamp(source: str, pattern: str, replacement: str) -> str:
    stamped, count = re.subn(pattern, replacement, source, flags=re.MULTILINE)
    if count != 1:
        raise BuildError(f"cannot stamp the version: {pattern!r} matched {count} times")
    return stamped


def base_server_layer(ctx: Context, version: str) -> Layer:
    source = (HERE / "base-server" / "base_server.py").read_text()
    source = stamp(source, r"^#!.*$", "#!/usr/bin/python3")
    source = stamp(source, r'^__version__ = ".*"$', f'__version__ = "{version}"')
    files = {"usr/local/bin/base-server": (source.encode(), 0o755)}
    return ctx.store.write_layer(f"{APP} {version}", lambda tar: add_files(tar, files))


def ui_layer(ctx: Context, version: str) -> Layer:
    """The UI's server as ``/usr/local/bin/example-solution-ui``, its page in ``/usr/share``."""
    source = (HERE / "ui" / "ui_server.py").read_text()
    source = stamp(source, r"^#!.*$", "#!/usr/bin/python3")
    source = stamp(source, r'^__version__ = ".*"$', f'__version__ = "{version}"')
    source = stamp(source, r"^STATIC = .*$", f'STATIC = Path("/{UI_STATIC}")')
    files: dict[str, tuple[bytes, int]] = {
        f"{UI_STATIC}/{path.name}": (path.read_bytes(), 0o644)
        for path in sorted((HERE / "ui" / "static").iterdir())
        if path.is_file()
    }
    files[f"usr/local/bin/{UI}"] = (source.encode(), 0o755)
    return ctx.store.write_layer(f"{UI} {version}", lambda tar: add_files(tar, files))


def operator_layer(ctx: Context, version: str, python: str) -> Layer:
    package = HERE / "operator" / "src" / "example_solution_operator"
    target = f"{site_packages(python)}/example_solution_operator"
    files: dict[str, tuple[bytes, int]] = {
        f"{target}/{path.name}": (path.read_bytes(), 0o644)
        for path in sorted(package.glob("*.py"))
        if path.name != "_version.py"
    }
    files[f"{target}/_version.py"] = (
        (
            f'"""The operator\'s version, stamped by the image build."""\n\nVERSION = "{version}"\n'
        ).encode(),
        0o644,
    )
    files[f"usr/local/bin/{OPERATOR}"] = (
        b"#!/usr/bin/python3\nimport sys\n\n"
        b"from example_solution_operator.cli import main\n\nsys.exit(main())\n",
        0o755,
    )
    return ctx.store.write_layer(f"{OPERATOR} {version}", lambda tar: add_files(tar, files))


# --- images and archives -------------------------------------------------------------------


def _created() -> str:
    return datetime.fromtimestamp(EPOCH, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_image(
    ctx: Context,
    layout: Path,
    ref: str,
    layers: list[Layer],
    config: dict[str, Any],
    arch: str,
    annotations: dict[str, str],
) -> str:
    """An OCI image layout holding one image; blobs hard-linked from the store."""
    image_config = {
        "architecture": arch,
        "os": "linux",
        "created": _created(),
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": _created(), "created_by": layer.comment} for layer in layers],
    }
    config_bytes = json.dumps(image_config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = ctx.store.put_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [layer.descriptor() for layer in layers],
        "annotations": annotations,
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = ctx.store.put_bytes(manifest_bytes)
    if layout.exists():
        shutil.rmtree(layout)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for digest in [config_digest, manifest_digest, *(layer.digest for layer in layers)]:
        _link(ctx.store.path(digest), blobs / digest.removeprefix("sha256:"))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "annotations": {REF_NAME: ref},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index, indent=2))
    return manifest_digest


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@dataclass(frozen=True)
class Built:
    """What :func:`build` produced."""

    out: Path
    isos: dict[str, Path]
    public_key: Path
    private_key: Path
    sources: dict[str, Path]
    info: dict[str, Any]


def ensure_key(out: Path) -> tuple[Path, Path]:
    """The signing key pair ``out/vendor.{key,pub}``, made on the first build."""
    private, public = out / "vendor.key", out / "vendor.pub"
    if not (private.exists() and public.exists()):
        _solutions(["keygen", str(out / "vendor"), "--force"], "solutions keygen")
    return private, public


def _solutions(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    return _run([sys.executable, "-m", "metalk8s_solutions.cli", *args], what, env=env)


def _tree_digest(root: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("images/") and "/blobs/sha256/" in relative:
            content = path.name  # named by its digest
        else:
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        sha.update(f"{relative}\0{content}\n".encode())
    return sha.hexdigest()


def _builder_digest() -> str:
    """The code of ``solutions build``: a change to it rebuilds the archives."""
    import metalk8s_solutions  # noqa: PLC0415 (only needed to locate the package)

    package = Path(metalk8s_solutions.__file__).parent
    sha = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        if path.parent.name in {"api", "archive", "engine", "images"}:
            sha.update(path.read_bytes())
    return sha.hexdigest()


def listed_images(source: Path) -> list[str]:
    """The image names of ``spec.images`` in the version's manifest, each tagged its version."""
    manifest = yaml.safe_load((source / "manifest.yaml").read_text())
    version = manifest["spec"]["version"]
    names = []
    for reference in manifest["spec"]["images"]:
        name, _, tag = reference.partition(":")
        if tag != version:
            raise BuildError(f"{source}/manifest.yaml: image {reference} is not tagged {version}")
        names.append(name)
    return names


def version_images(
    ctx: Context, version: str, source: Path, shared: tuple[Layer, Layer], python: str, arch: str
) -> dict[str, Any]:
    """Write the images ``version`` lists into its source tree; returns their description."""
    base, deps = shared
    env = [PATH_ENV, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"]
    recipes: dict[str, Callable[[], tuple[list[Layer], dict[str, Any]]]] = {
        APP: lambda: (
            [base, base_server_layer(ctx, version)],
            {
                "Entrypoint": [APP],
                "Cmd": ["--port=8080"],
                "Env": env,
                "User": NOBODY,
                "WorkingDir": "/",
                "ExposedPorts": {"8080/tcp": {}},
            },
        ),
        OPERATOR: lambda: (
            [base, deps, operator_layer(ctx, version, python)],
            {
                # The product's Deployment runs [example-solution-operator, --config=...].
                "Entrypoint": [OPERATOR],
                "Cmd": ["--config=/etc/config/operator.yaml"],
                "Env": env,
                "User": NOBODY,
                "WorkingDir": "/",
            },
        ),
        UI: lambda: (
            [base, ui_layer(ctx, version)],
            {
                # The product runs the image's own command, with these variables set.
                "Entrypoint": ["/usr/bin/python3", f"/usr/local/bin/{UI}"],
                "Env": [
                    *env,
                    "SOLUTION_UI_CONFIG=/etc/solution-ui/config.json",
                    "SOLUTION_UI_PORT=8080",
                ],
                "User": NOBODY,
                "WorkingDir": "/",
                "ExposedPorts": {"8080/tcp": {}},
            },
        ),
    }
    names = listed_images(source)
    unknown = [name for name in names if name not in recipes]
    if unknown:
        raise BuildError(
            f"versions/{version}/manifest.yaml lists {', '.join(unknown)}: this build makes only "
            f"{', '.join(recipes)}; add a recipe to version_images or remove it from spec.images"
        )
    images = {name: recipes[name]() for name in names}
    described: dict[str, Any] = {}
    for name, (layers, config) in images.items():
        annotations = {
            "org.opencontainers.image.created": _created(),
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.vendor": "Example Solution",
        }
        layout = source / "images" / name / version
        digest = write_image(ctx, layout, version, layers, config, arch, annotations)
        described[name] = {
            "manifest": digest,
            "layers": [
                {"comment": layer.comment, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
        }
    return described


def version_iso(
    ctx: Context, version: str, source: Path, out: Path, keys: tuple[Path, Path], builder: str
) -> Path:
    """``solutions build`` of the source tree, skipped when its inputs did not change."""
    private, public = keys
    iso = out / f"{SOLUTION}-{version}.iso"
    stamp_file = out / f".{iso.name}.inputs"
    inputs = _digest_of(
        {"tree": _tree_digest(source), "key": public.read_text(), "builder": builder}
    )
    if iso.exists() and stamp_file.exists() and stamp_file.read_text() == inputs:
        ctx.hits[f"iso {version}"] = True
        return iso
    ctx.hits[f"iso {version}"] = False
    ctx.log(f"solutions build {iso.name}")
    stamp_file.unlink(missing_ok=True)
    _solutions(
        ["build", str(source), "-o", str(iso), "--key", str(private), "-q"],
        f"solutions build {iso.name}",
    )
    stamp_file.write_text(inputs)
    return iso


def build(
    out: Path,
    versions: tuple[str, ...] = VERSIONS,
    cache: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Built:
    """Build the images and the signed ISO of each of ``versions`` into ``out``."""
    started = time.monotonic()
    cache = cache or default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(cache, BlobStore(cache / "store"), log)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time per cache
        arch = _run(["dpkg", "--print-architecture"], "dpkg").stdout.strip()
        with ctx.step("debian rootfs"):
            rootfs, packages = debian_rootfs(ctx)
        with ctx.step("base layer"):
            base = base_layer(ctx, rootfs)
        with ctx.step("dependency layer"):
            deps, requirements = deps_layer(ctx, packages, arch)
        python, _ = _wheel_platform(packages, arch)
        keys = ensure_key(out)
        builder = _builder_digest()
        info: dict[str, Any] = {"epoch": EPOCH, "arch": arch, "versions": {}}
        isos: dict[str, Path] = {}
        sources: dict[str, Path] = {}
        for version in versions:
            source = out / "src" / version
            with ctx.step(f"images {version}"):
                if source.exists():
                    shutil.rmtree(source)
                shutil.copytree(HERE / "versions" / version, source)
                described = version_images(ctx, version, source, (base, deps), python, arch)
            with ctx.step(f"iso {version}"):
                iso = version_iso(ctx, version, source, out, keys, builder)
            with iso.open("rb") as stream:
                iso_digest = hashlib.file_digest(stream, "sha256").hexdigest()
            info["versions"][version] = {
                "iso": str(iso),
                "sha256": iso_digest,
                "size": iso.stat().st_size,
                "images": described,
            }
            isos[version], sources[version] = iso, source
        info["debian"] = {**asdict(DEBIAN), "packages": packages}
        info["operator_requirements"] = [
            line.split(" ")[0] for line in requirements.splitlines() if "==" in line
        ]
        info["cache"] = {"dir": str(cache), "hits": ctx.hits}
        info["seconds"] = {**ctx.timings, "total": round(time.monotonic() - started, 2)}
        (out / "build-info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return Built(out, isos, keys[1], keys[0], sources, info)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "out", help="output directory")
    parser.add_argument("--cache", type=Path, default=None, help="cache directory")
    parser.add_argument(
        "--version", dest="versions", action="append", choices=VERSIONS, help="(repeatable)"
    )
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"==> {message}", file=sys.stderr, flush=True)

    try:
        built = build(args.out, tuple(args.versions or VERSIONS), args.cache, log)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for version, iso in built.isos.items():
        size = built.info["versions"][version]["size"]
        print(f"{iso}\t{size / 1e6:.1f} MB")
    print(f"{built.public_key}\t(public key: solutions validate --key {built.public_key} ISO)")
    print(f"built in {built.info['seconds']['total']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
