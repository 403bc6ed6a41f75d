"""The software bill of materials of an image, read from its layers: SPDX 2.3 JSON.

:func:`image_sbom` walks an image's layers in order (gzip, zstd or uncompressed tar, streamed),
applies the whiteouts (``.wh.<name>`` deletes a lower layer's file, ``.wh..wh..opq`` a lower
layer's directory content), so the packages found are those of the merged filesystem, and reads
only the files that describe packages:

- Debian: ``var/lib/dpkg/status`` and ``var/lib/dpkg/status.d/*`` (distroless);
- Alpine: ``lib/apk/db/installed``;
- Python: ``*.dist-info/METADATA`` and ``*.egg-info/PKG-INFO`` anywhere;
- npm: ``node_modules/[@scope/]<name>/package.json`` anywhere;
- Go: the build information every Go (1.18+) executable embeds (:func:`go_buildinfo`, the format
  of Go's ``debug/buildinfo``): main module, dependencies, Go version;
- ``etc/os-release`` (or ``usr/lib/os-release``), for the distribution in Debian/Alpine purls.

Memory is bounded: a layer is read as a stream, once, each metadata file is capped in size, and
executables are scanned in chunks.  The document is deterministic: packages and relationships
sorted, identifiers derived from package URLs, the namespace from the manifest digest and the
creation date given by the caller (the build's ``SOURCE_DATE_EPOCH``).
"""

from __future__ import annotations

import contextlib
import email.parser
import hashlib
import json
import re
import shutil
import struct
import subprocess
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import quote

from metalk8s_solutions.api.streams import FileSource, read_limited
from metalk8s_solutions.errors import ArchiveError
from metalk8s_solutions.images.sources import ImageSource

SBOM_DIR = "sboms/"
SPDX_VERSION = "SPDX-2.3"
NAMESPACE_BASE = "https://metalk8s-solutions.invalid/spdx/"
MAX_DB_BYTES = 64 << 20  # a dpkg status or apk database
MAX_METADATA_BYTES = 4 << 20  # a METADATA, PKG-INFO or package.json
MAX_MODINFO_BYTES = 4 << 20
MAX_SBOM_BYTES = 64 << 20
_CHUNK = 1 << 20
GO_MAGIC = b"\xff Go buildinf:"
COSIGN_TYPES = (
    "application/vnd.dev.cosign.simplesigning.v1+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
)

_DIST_INFO = re.compile(r"(?:^|/)[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO)$")
_NPM = re.compile(r"(?:^|/)node_modules/(?:@[^/]+/)?[^/]+/package\.json$")
_DPKG = re.compile(r"^var/lib/dpkg/(?:status|status\.d/[^/]+)$")
_APK = "lib/apk/db/installed"
_OS_RELEASE = ("etc/os-release", "usr/lib/os-release")

#: License identifiers taken as they are in ``licenseDeclared``; any other text is kept as an
#: extracted license (``LicenseRef-…``) so that the document stays valid SPDX.
KNOWN_LICENSES = frozenset(
    """0BSD AFL-2.1 AGPL-3.0-only AGPL-3.0-or-later Apache-1.1 Apache-2.0 Artistic-1.0
    Artistic-2.0 Beerware BSD-1-Clause BSD-2-Clause BSD-3-Clause BSD-4-Clause BSL-1.0
    bzip2-1.0.6 CC-BY-3.0 CC-BY-4.0 CC-BY-SA-3.0 CC-BY-SA-4.0 CC0-1.0 CDDL-1.0 EPL-1.0 EPL-2.0
    FTL GFDL-1.2-or-later GFDL-1.3-or-later GPL-1.0-or-later GPL-2.0-only GPL-2.0-or-later
    GPL-3.0-only GPL-3.0-or-later HPND ISC LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1-only
    LGPL-2.1-or-later LGPL-3.0-only LGPL-3.0-or-later Libpng MIT MIT-0 MPL-1.1 MPL-2.0 OpenSSL
    PostgreSQL PSF-2.0 Python-2.0 Ruby TCL Unicode-DFS-2016 Unicode-3.0 Unlicense W3C WTFPL
    X11 Zlib ZPL-2.1""".split()  # noqa: SIM905
)
_LICENSE_WORDS = {"AND", "OR", "WITH"}
_EXCEPTIONS = frozenset({"Classpath-exception-2.0", "LLVM-exception", "GCC-exception-3.1"})


@dataclass(frozen=True)
class Package:
    """One package found in an image."""

    type: str  # deb, apk, pypi, golang, npm
    name: str
    version: str
    purl: str
    source: str  # the file it was read from
    supplier: str | None = None  # "Person: …" / "Organization: …"
    license: str | None = None  # as written by the package


@dataclass
class Found:
    """What the merged filesystem of an image holds, by file path."""

    by_path: dict[str, list[Package]] = field(default_factory=dict)
    os_release: dict[str, dict[str, str]] = field(default_factory=dict)

    def packages(self) -> list[Package]:
        seen: dict[str, Package] = {}
        for path in sorted(self.by_path):
            for package in self.by_path[path]:
                seen.setdefault(package.purl, package)
        return sorted(seen.values(), key=lambda p: (p.type, p.name, p.version, p.purl))

    def distro(self) -> str | None:
        """``<ID>`` or ``<ID>-<VERSION_ID>`` of the image's os-release (``debian-12``)."""
        for path in _OS_RELEASE:
            if path in self.os_release:
                name = self.os_release[path].get("ID", "").lower()
                version = self.os_release[path].get("VERSION_ID", "")
                return f"{name}-{version}" if name and version else name or None
        return None


def _namespace(distro: str | None, default: str) -> tuple[str, str]:
    """The purl namespace and ``distro`` qualifier of a ``distro`` as :meth:`Found.distro` says."""
    if not distro:
        return default, ""
    name, _, version = distro.partition("-")
    return name, distro if version else ""


# --- parsers (bytes in, packages out) -----------------------------------------------------------


def _purl(kind: str, namespace: str | None, name: str, version: str, **qualifiers: str) -> str:
    safe = "._-~+"
    path = f"{quote(namespace, safe=safe + '/')}/" if namespace else ""
    purl = f"pkg:{kind}/{path}{quote(name, safe=safe)}"
    if version:
        purl += f"@{quote(version, safe=safe)}"
    pairs = [f"{k}={quote(v, safe=safe + '/')}" for k, v in sorted(qualifiers.items()) if v]
    return purl + ("?" + "&".join(pairs) if pairs else "")


def _person(text: str | None) -> str | None:
    """``Name <email>`` (or a bare name) as an SPDX supplier."""
    if not text:
        return None
    first = text.split(",")[0].strip() if "<" not in text.split(",")[0] else text.split(">")[0]
    match = re.match(r"^\s*([^<]*?)\s*(?:<([^>]*)>?)?\s*$", first)
    if match is None:
        return None
    name = re.sub(r"[()]", "", match.group(1)).strip()
    mail = (match.group(2) or "").strip()
    if not name and mail:
        name = mail.split("@")[0]
    if not name:
        return None
    return f"Person: {name} ({mail})" if mail else f"Person: {name}"


def _paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The stanzas of a deb822 file (dpkg status), continuation lines joined."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
        elif line[0] in " \t":
            if last:
                fields[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            fields[last] = value.strip()
    if fields:
        yield fields


def parse_dpkg_status(data: bytes, source: str, distro: str | None = None) -> list[Package]:
    """The installed packages of a dpkg status file (or a distroless ``status.d`` file)."""
    namespace, qualifier = _namespace(distro, "debian")
    result: list[Package] = []
    for stanza in _paragraphs(data.decode("utf-8", "replace")):
        name, version = stanza.get("Package"), stanza.get("Version")
        status = stanza.get("Status", "install ok installed").split()
        if not name or not version or status[-1:] != ["installed"]:
            continue
        arch = stanza.get("Architecture", "")
        result.append(
            Package(
                "deb",
                name,
                version,
                _purl("deb", namespace, name, version, arch=arch, distro=qualifier),
                source,
                supplier=_person(stanza.get("Maintainer")),
            )
        )
    return result


def parse_apk_installed(data: bytes, source: str, distro: str | None = None) -> list[Package]:
    """The packages of an Alpine ``lib/apk/db/installed`` database."""
    namespace, qualifier = _namespace(distro, "alpine")
    result: list[Package] = []
    fields: dict[str, str] = {}
    for line in [*data.decode("utf-8", "replace").splitlines(), ""]:
        if len(line) > 1 and line[1] == ":":
            fields.setdefault(line[0], line[2:].strip())
            continue
        if not line.strip() and fields:
            name, version = fields.get("P"), fields.get("V")
            if name and version:
                result.append(
                    Package(
                        "apk",
                        name,
                        version,
                        _purl(
                            "apk",
                            namespace,
                            name,
                            version,
                            arch=fields.get("A", ""),
                            distro=qualifier,
                        ),
                        source,
                        supplier=_person(fields.get("m")),
                        license=fields.get("L") or None,
                    )
                )
            fields = {}
    return result


_CLASSIFIER_LICENSES = {
    "MIT License": "MIT",
    "Apache Software License": "Apache-2.0",
    "BSD License": "BSD-3-Clause",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
}


def parse_python_metadata(data: bytes, source: str) -> list[Package]:
    """The distribution a ``METADATA``/``PKG-INFO`` file describes (its headers only)."""
    head = data.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    message = email.parser.HeaderParser().parsestr(head)
    name, version = message.get("Name"), message.get("Version")
    if not name or not version:
        return []
    license_ = message.get("License-Expression") or message.get("License")
    if not license_ or "\n" in license_.strip() or len(license_) > 100:
        license_ = None
        for classifier in message.get_all("Classifier") or []:
            if classifier.startswith("License :: "):
                license_ = _CLASSIFIER_LICENSES.get(classifier.rsplit(" :: ", 1)[-1], license_)
    author = message.get("Author-email") or message.get("Author")
    normalized = re.sub(r"[-_.]+", "-", name).lower()
    return [
        Package(
            "pypi",
            name,
            version,
            _purl("pypi", None, normalized, version),
            source,
            supplier=_person(str(author) if author else None),
            license=license_.strip() if license_ else None,
        )
    ]


def parse_package_json(data: bytes, source: str) -> list[Package]:
    """The npm package a ``node_modules/…/package.json`` describes."""
    try:
        document = json.loads(data)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    name, version = document.get("name"), document.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name:
        return []
    license_ = document.get("license")
    if isinstance(license_, dict):
        license_ = license_.get("type")
    author = document.get("author")
    if isinstance(author, dict):
        mail = author.get("email")
        author = f"{author.get('name', '')} <{mail}>" if mail else author.get("name")
    scope, _, bare = name.rpartition("/")
    return [
        Package(
            "npm",
            name,
            version,
            _purl("npm", scope or None, bare, version).replace("/@", "/%40"),
            source,
            supplier=_person(author) if isinstance(author, str) else None,
            license=license_ if isinstance(license_, str) else None,
        )
    ]


# --- Go build information -----------------------------------------------------------------------


@dataclass(frozen=True)
class GoBuildInfo:
    go_version: str
    path: str  # the main package's path
    main: tuple[str, str] | None  # module path, version
    deps: tuple[tuple[str, str], ...]  # module path, version (replacements applied)


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise ValueError("truncated varint")


def parse_buildinfo_blob(blob: bytes) -> tuple[str, str] | None:
    """The Go version and module information of a build-info blob (Go 1.18+ inline format),
    which starts with the magic; ``None`` if it is not one."""
    if len(blob) < 32 or not blob.startswith(GO_MAGIC):
        return None
    flags = blob[15]
    if flags & 0x2 != 0x2:  # the pointer format of Go < 1.18: not supported
        return None
    try:
        length, pos = _uvarint(blob, 32)
        version = blob[pos : pos + length]
        if len(version) != length:
            return None
        length, pos = _uvarint(blob, pos + length)
        mod = blob[pos : pos + length]
        if len(mod) != length:
            return None
    except ValueError:
        return None
    if not version:
        return None
    mod = mod[16:-16] if len(mod) >= 33 and mod[-17] == ord("\n") else b""
    return version.decode("utf-8", "replace"), mod.decode("utf-8", "replace")


def parse_modinfo(go_version: str, modinfo: str) -> GoBuildInfo:
    """The lines of Go's ``runtime/debug.BuildInfo`` text (``path``, ``mod``, ``dep``, ``=>``)."""
    path = ""
    main: tuple[str, str] | None = None
    deps: list[tuple[str, str]] = []
    for line in modinfo.splitlines():
        parts = line.split("\t")
        if parts[0] == "path" and len(parts) > 1:
            path = parts[1]
        elif parts[0] == "mod" and len(parts) > 2:
            main = (parts[1], parts[2])
        elif parts[0] == "dep" and len(parts) > 2:
            deps.append((parts[1], parts[2]))
        elif parts[0] == "=>" and len(parts) > 2 and deps:
            deps[-1] = (parts[1], parts[2])
    return GoBuildInfo(go_version, path, main, tuple(deps))


def _elf_data_range(head: bytes) -> tuple[int, int] | None:
    """The file range of the first writable, non-executable PT_LOAD segment of an ELF file,
    from its first bytes (Go's search range when no section names it); ``None`` if unknown."""
    if len(head) < 64 or not head.startswith(b"\x7fELF"):
        return None
    wide = head[4] == 2
    order = "<" if head[5] == 1 else ">"
    if wide:
        (phoff,) = struct.unpack_from(order + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
    else:
        (phoff,) = struct.unpack_from(order + "I", head, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
    for index in range(phnum):
        at = phoff + index * phentsize
        if at + phentsize > len(head):
            return None
        if wide:
            ptype, pflags, offset = struct.unpack_from(order + "IIQ", head, at)
            (filesz,) = struct.unpack_from(order + "Q", head, at + 32)
        else:
            ptype, offset = struct.unpack_from(order + "II", head, at)
            (filesz,) = struct.unpack_from(order + "I", head, at + 16)
            (pflags,) = struct.unpack_from(order + "I", head, at + 24)
        if ptype == 1 and pflags & 0x3 == 0x2:  # PT_LOAD, PF_W and not PF_X
            return offset, filesz
    return None


def go_buildinfo(stream: IO[bytes], size: int) -> GoBuildInfo | None:
    """The build information of a Go executable, read in one pass over ``stream`` (an ELF
    file of ``size`` bytes) with bounded memory: the first 16-byte-aligned occurrence of the
    magic in its data segment (or anywhere, if no segment table is at the file's start)."""
    head = stream.read(min(size, 64 << 10))
    if not head.startswith(b"\x7fELF"):
        return None
    start, length = _elf_data_range(head) or (0, size)
    end = min(size, start + length)
    pos = len(head)
    window = head
    base = 0  # file offset of window[0]
    while True:
        found = _aligned_magic(window, base, start, end)
        if found is not None:
            blob = window[found - base :]
            parsed = parse_buildinfo_blob(blob)
            while parsed is None and len(blob) < MAX_MODINFO_BYTES and pos < size:
                more = stream.read(min(_CHUNK, size - pos))
                if not more:
                    break
                pos += len(more)
                blob += more
                parsed = parse_buildinfo_blob(blob)
            return parse_modinfo(*parsed) if parsed else None
        if pos >= end:
            return None
        keep = window[-(len(GO_MAGIC) - 1) :]
        more = stream.read(min(_CHUNK, size - pos))
        if not more:
            return None
        base = pos - len(keep)
        pos += len(more)
        window = keep + more


def _aligned_magic(window: bytes, base: int, start: int, end: int) -> int | None:
    at = window.find(GO_MAGIC)
    while at >= 0:
        offset = base + at
        if start <= offset < end and (offset - start) % 16 == 0:
            return offset
        at = window.find(GO_MAGIC, at + 1)
    return None


def go_packages(info: GoBuildInfo, source: str) -> list[Package]:
    result = [
        Package("golang", "stdlib", info.go_version, _golang("stdlib", info.go_version), source)
    ]
    for path, version in [*([info.main] if info.main else []), *info.deps]:
        result.append(Package("golang", path, version, _golang(path, version), source))
    return result


def _golang(path: str, version: str) -> str:
    namespace, _, name = path.rpartition("/")
    return _purl("golang", namespace or None, name, "" if version == "(devel)" else version)


# --- layers ------------------------------------------------------------------------------------


class _Zstd:
    """A zstd stream, decompressed by the ``zstd`` program."""

    def __init__(self, raw: BinaryIO) -> None:
        program = shutil.which("zstd")
        if program is None:
            raise ArchiveError(
                "a layer is zstd-compressed and the zstd program is missing",
                hint="install zstd (e.g. 'apt-get install zstd') and build again",
            )
        self._raw = raw
        self._process = subprocess.Popen(
            [program, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        stdin, stdout = self._process.stdin, self._process.stdout
        if stdin is None or stdout is None:  # pragma: no cover - both are pipes
            raise ArchiveError("cannot start zstd")
        self._stdin, self._stdout = stdin, stdout
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            while chunk := self._raw.read(_CHUNK):
                self._stdin.write(chunk)
        with contextlib.suppress(BrokenPipeError):
            self._stdin.close()

    def read(self, size: int = -1) -> bytes:
        return self._stdout.read(size)

    def close(self) -> None:
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process.kill()
        self._process.wait()
        self._feeder.join()


class _Gzip:
    """A gzip stream (possibly several members), decompressed in chunks with zlib."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(31)
        self._buffer = bytearray()
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buffer) < size):
            chunk = self._raw.read(_CHUNK)
            if not chunk:
                self._buffer += self._inflate.flush()
                self._eof = True
                break
            while chunk:
                self._buffer += self._inflate.decompress(chunk)
                if self._inflate.eof:
                    chunk = self._inflate.unused_data
                    self._inflate = zlib.decompressobj(31)
                else:
                    chunk = b""
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def close(self) -> None:
        self._raw.close()


class _Peeked:
    """A stream whose first bytes were read to tell its compression."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if self._head:
            data = self._head if size < 0 or size >= len(self._head) else self._head[:size]
            self._head = self._head[len(data) :]
            if size < 0:
                return data + self._raw.read()
            return data
        return self._raw.read(size)

    def close(self) -> None:
        self._raw.close()


def _decompressed(raw: BinaryIO) -> Any:
    head = raw.read(4)
    stream = _Peeked(head, raw)
    if head[:2] == b"\x1f\x8b":
        return _Gzip(stream)  # type: ignore[arg-type]
    if head == b"\x28\xb5\x2f\xfd":
        return _Zstd(stream)  # type: ignore[arg-type]
    return stream


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _wanted(path: str) -> str | None:
    if _DPKG.match(path) and not path.endswith(".md5sums"):
        return "dpkg"
    if path == _APK:
        return "apk"
    if path in _OS_RELEASE:
        return "os-release"
    if _DIST_INFO.search(path):
        return "python"
    if _NPM.search(path):
        return "npm"
    return None


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes | None:
    if member.size > limit:
        return None
    stream = tar.extractfile(member)
    return stream.read() if stream is not None else None


@dataclass
class Layer:
    """What one layer says about the merged filesystem: what it deletes below it, what it adds.

    Read once per layer digest (a base layer shared by several images is read once)."""

    opaque: list[str] = field(default_factory=list)  # directories emptied (prefixes)
    deleted: list[str] = field(default_factory=list)  # paths (and trees) deleted
    replaced: list[str] = field(default_factory=list)  # paths holding another file now
    added: dict[str, list[Package]] = field(default_factory=dict)
    databases: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # parsed once merged
    os_release: dict[str, dict[str, str]] = field(default_factory=dict)

    def apply(self, found: Found) -> None:
        """Merge this layer over ``found`` (the layers below it)."""
        for prefix in self.opaque:
            for lower in [p for p in found.by_path if p.startswith(prefix)]:
                del found.by_path[lower]
        for gone in self.deleted:
            for lower in [p for p in found.by_path if p == gone or p.startswith(gone + "/")]:
                del found.by_path[lower]
            found.os_release.pop(gone, None)
        for path in self.replaced:
            found.by_path.pop(path, None)
        found.os_release.update(self.os_release)
        distro = found.distro()
        found.by_path.update(self.added)
        for path, (kind, data) in self.databases.items():
            parse = parse_dpkg_status if kind == "dpkg" else parse_apk_installed
            found.by_path[path] = parse(data, path, distro)


def read_layer(raw: BinaryIO, label: str) -> Layer:
    """The whiteouts and package files of one layer, in one streamed read of it."""
    stream = _decompressed(raw)
    layer = Layer()
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed below
        for member in tar:
            path = _norm(member.name)
            directory, _, base = path.rpartition("/")
            if base == ".wh..wh..opq":
                layer.opaque.append(f"{directory}/" if directory else "")
                continue
            if base.startswith(".wh."):
                layer.deleted.append(f"{directory}/{base[4:]}" if directory else base[4:])
                continue
            if member.isdir():
                continue
            if not member.isreg():
                layer.replaced.append(path)
                continue
            _read_file(tar, member, path, layer)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise _NotALayer(f"{label}: not a readable layer: {err}") from err
    finally:
        stream.close()
    return layer


def _read_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str, layer: Layer) -> None:
    """What the regular file ``member`` adds to ``layer``."""
    kind = _wanted(path)
    if kind is None:
        if member.mode & 0o111 and member.size > 1024:
            extracted = tar.extractfile(member)
            info = go_buildinfo(extracted, member.size) if extracted else None
            if info is not None:
                layer.added[path] = go_packages(info, path)
                return
        layer.replaced.append(path)
        return
    limit = MAX_DB_BYTES if kind in ("dpkg", "apk") else MAX_METADATA_BYTES
    data = _read_member(tar, member, limit)
    if data is None:
        layer.replaced.append(path)
    elif kind == "os-release":
        layer.os_release[path] = _os_release(data)
    elif kind in ("dpkg", "apk"):
        layer.databases[path] = (kind, data)
    elif kind == "python":
        layer.added[path] = parse_python_metadata(data, path)
    else:
        layer.added[path] = parse_package_json(data, path)


def _os_release(data: bytes) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("\"'")
    return values


@dataclass(frozen=True)
class Scan:
    packages: list[Package]
    unreadable: list[str]  # labels of the layers that are no tar archive


def scan_layers(
    layers: Iterable[tuple[str, Callable[[], BinaryIO]]],
    cache: dict[str, Layer | None] | None = None,
) -> Scan:
    """The packages of the merged filesystem of ``layers`` (label, opener), bottom first.  A
    layer that is no (gzip/zstd) tar archive adds nothing and is listed as unreadable (a
    corrupt layer is the digest check's business, not the SBOM's).  ``cache`` keeps what each
    layer (by label) holds, for the next images sharing it."""
    found = Found()
    unreadable: list[str] = []
    cache = {} if cache is None else cache
    for label, opener in layers:
        if label not in cache:
            try:
                cache[label] = read_layer(opener(), label)
            except _NotALayer:
                cache[label] = None
        layer = cache[label]
        if layer is None:
            unreadable.append(label)
        else:
            layer.apply(found)
    return Scan(found.packages(), unreadable)


class _NotALayer(ArchiveError):
    pass


# --- SPDX ---------------------------------------------------------------------------------------


def _license_expression(text: str) -> str | None:
    """``text`` if it is an expression over known SPDX identifiers, else ``None``."""
    words = re.findall(r"\(|\)|[^\s()]+", text.strip())
    if not words:
        return None
    expect_id = True
    depth = 0
    for word in words:
        if word == "(":
            depth += 1
            if not expect_id:
                return None
        elif word == ")":
            depth -= 1
            if expect_id or depth < 0:
                return None
        elif word.upper() in _LICENSE_WORDS:
            if expect_id:
                return None
            expect_id = True
        elif expect_id and (word in KNOWN_LICENSES or word in _EXCEPTIONS):
            expect_id = False
        else:
            return None
    return (
        " ".join(t.upper() if t.upper() in _LICENSE_WORDS else t for t in words)
        if (not expect_id and depth == 0)
        else None
    )


def _spdx_id(prefix: str, text: str, key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")[:60]
    return f"SPDXRef-{prefix}-{readable}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def sbom_path(manifest_digest: str) -> str:
    """Where the SBOM of the image manifest ``sha256:<hex>`` is in an archive."""
    return f"{SBOM_DIR}{manifest_digest.replace(':', '-')}.spdx.json"


def oci_purl(ref: str, manifest_digest: str) -> str:
    name, _, tag = ref.rpartition(":")
    repository, _, last = name.rpartition("/")
    qualifiers = {"tag": tag}
    if repository:
        qualifiers["repository_url"] = name
    return _purl("oci", None, last.lower(), manifest_digest, **qualifiers)


def spdx_document(
    ref: str,
    manifest_digest: str,
    packages: Iterable[Package],
    *,
    created: int,
    tool: str,
    platform: str | None = None,
    unreadable: Iterable[str] = (),
) -> dict[str, Any]:
    """The SPDX 2.3 document of the image ``ref`` (``name:tag``) whose manifest has
    ``manifest_digest``; ``created`` is a Unix time."""
    hexdigest = manifest_digest.split(":", 1)[1]
    image_id = "SPDXRef-Image"
    image: dict[str, Any] = {
        "SPDXID": image_id,
        "name": ref.rpartition(":")[0],
        "versionInfo": ref.rpartition(":")[2],
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": hexdigest}],
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": oci_purl(ref, manifest_digest),
            }
        ],
        "primaryPackagePurpose": "CONTAINER",
    }
    notes = [f"platform {platform}"] if platform else []
    notes += [f"{label} is no tar archive: no package read from it" for label in unreadable]
    if notes:
        image["comment"] = "; ".join(notes)
    entries: list[dict[str, Any]] = []
    extracted: dict[str, dict[str, str]] = {}
    for package in packages:
        entry: dict[str, Any] = {
            "SPDXID": _spdx_id(package.type, package.name, package.purl),
            "name": package.name,
            "versionInfo": package.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "supplier": package.supplier or "NOASSERTION",
            "sourceInfo": f"from {package.source}",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": package.purl,
                }
            ],
        }
        if package.license:
            expression = _license_expression(package.license)
            if expression is None:
                license_id = (
                    "LicenseRef-" + hashlib.sha256(package.license.encode()).hexdigest()[:16]
                )
                extracted[license_id] = {
                    "licenseId": license_id,
                    "name": package.license[:200],
                    "extractedText": package.license,
                }
                expression = license_id
            entry["licenseDeclared"] = expression
        entries.append(entry)
    entries.sort(key=lambda e: e["SPDXID"])
    relationships = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": image_id,
        },
        *(
            {
                "spdxElementId": image_id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": e["SPDXID"],
            }
            for e in entries
        ),
    ]
    document: dict[str, Any] = {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": ref,
        "documentNamespace": f"{NAMESPACE_BASE}sha256-{hexdigest}",
        "creationInfo": {
            "created": datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": [f"Tool: {tool}"],
        },
        "packages": [image, *entries],
        "relationships": relationships,
    }
    if extracted:
        document["hasExtractedLicensingInfos"] = [extracted[k] for k in sorted(extracted)]
    return document


def encode(document: dict[str, Any]) -> bytes:
    """The bytes stored in the archive: sorted keys, two-space indent, final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def is_cosign(manifest: dict[str, Any], ref: str = "") -> bool:
    """Whether an image manifest is a cosign signature (or attestation), not an image."""
    if ref.endswith((".sig", ".att", ".sbom")):
        return True
    types = [
        str(item.get("mediaType", ""))
        for item in [manifest.get("config") or {}, *(manifest.get("layers") or [])]
        if isinstance(item, dict)
    ]
    return any(t in COSIGN_TYPES or t.startswith("application/vnd.dev.cosign") for t in types)


# --- build ---------------------------------------------------------------------------------------


def _manifests(
    node: dict[str, Any], load: Callable[[str], Any], depth: int = 0
) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """Every single-platform manifest under ``node`` (a descriptor): digest, document, platform."""
    digest = str(node.get("digest", ""))
    document = load(digest)
    if not isinstance(document, dict):
        return
    if "manifests" in document:
        if depth < 2:
            for child in document.get("manifests") or []:
                if isinstance(child, dict):
                    yield from _manifests(child, load, depth + 1)
        return
    platform = node.get("platform")
    text = None
    if isinstance(platform, dict):
        text = "/".join(
            str(platform[k]) for k in ("os", "architecture", "variant") if k in platform
        )
    yield digest, document, text


def _opener(image: ImageSource, digest: str) -> Callable[[], BinaryIO]:
    blob = next((b for b in image.blobs if b.digest == digest.split(":", 1)[-1]), None)
    if blob is None:
        raise ArchiveError(f"{image.ref}: blob {digest} is missing from its source")
    source = blob.source
    return (lambda: source.open("rb")) if isinstance(source, Path) else source


def _loader(image: ImageSource) -> Callable[[str], Any]:
    def load(digest: str) -> Any:
        with _opener(image, digest)() as stream:
            data = stream.read(MAX_METADATA_BYTES + 1)
        if len(data) > MAX_METADATA_BYTES:
            raise ArchiveError(f"{image.ref}: manifest {digest} is too large")
        try:
            return json.loads(data)
        except ValueError as err:
            raise ArchiveError(f"{image.ref}: manifest {digest} is not valid JSON") from err

    return load


def image_sboms(images: Iterable[ImageSource], *, created: int, tool: str) -> dict[str, bytes]:
    """The SBOM file of every image manifest of ``images`` (for an index, of each platform's
    manifest; cosign signatures left out), by archive path."""
    result: dict[str, bytes] = {}
    cache: dict[str, Layer | None] = {}
    for image in images:
        for digest, manifest, platform in _manifests(image.descriptor, _loader(image)):
            path = sbom_path(digest)
            if path in result or is_cosign(manifest, image.ref):
                continue
            layers = [
                (f"layer {item.get('digest')}", _opener(image, str(item.get("digest"))))
                for item in manifest.get("layers") or []
                if isinstance(item, dict)
            ]
            scan = scan_layers(layers, cache)
            document = spdx_document(
                image.ref,
                digest,
                scan.packages,
                created=created,
                tool=tool,
                platform=platform,
                unreadable=scan.unreadable,
            )
            result[path] = encode(document)
    return result


def load_sbom(source: FileSource, manifest_digest: str) -> dict[str, Any] | None:
    """The SBOM of the image manifest ``manifest_digest`` in an archive, ``None`` if it has none
    (an archive built before SBOMs, a MetalK8s archive)."""
    path = sbom_path(manifest_digest)
    if path not in source.files():
        return None
    try:
        document = json.loads(read_limited(source, path, MAX_SBOM_BYTES))
    except ValueError as err:
        raise ArchiveError(f"{source.label}: {path} is not valid JSON") from err
    if not isinstance(document, dict):
        raise ArchiveError(f"{source.label}: {path} is not an SPDX document")
    return document


def package_rows(document: dict[str, Any]) -> list[dict[str, str]]:
    """The packages of an SBOM (the image itself left out), for tables: type, name, version,
    license, purl."""
    rows = []
    for package in document.get("packages") or []:
        if not isinstance(package, dict) or package.get("SPDXID") == "SPDXRef-Image":
            continue
        purl = next(
            (
                str(ref.get("referenceLocator", ""))
                for ref in package.get("externalRefs") or []
                if isinstance(ref, dict) and ref.get("referenceType") == "purl"
            ),
            "",
        )
        rows.append(
            {
                "type": purl[4:].split("/", 1)[0] if purl.startswith("pkg:") else "",
                "name": str(package.get("name", "")),
                "version": str(package.get("versionInfo", "")),
                "license": str(package.get("licenseDeclared", "")),
                "purl": purl,
            }
        )
    return rows
