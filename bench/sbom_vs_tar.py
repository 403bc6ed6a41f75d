"""The SBOM pass of ``build`` on real tar+gzip layers vs ``tar -tzf`` of the same layers.

``build`` reads each image layer a second time to make its SBOM (``images/sbom.py``): the
layer is decompressed and walked as a tar stream, the package databases read, the executables
scanned for Go build information.  ``tar -tzf`` (GNU tar reading gzip through a pipe) does the
least any layer reader does: decompress and walk the headers.  The layers here are made to look
like an image's: a dpkg database, Python distributions, many small files, ELF executables (the
Go toolchain's own when present), and large incompressible files.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from _results import record
from _synthetic import MIB, interleaved, timed

RUNS = 3
TARGET = 2.0
SCRIPT = """
import sys
from metalk8s_solutions.images.sbom import scan_layers
paths = sys.argv[1:]
scan = scan_layers([(p, lambda p=p: open(p, "rb")) for p in paths])
print(len(scan.packages))
"""


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def make_layer(path: Path, *, files: int, big_mb: int, executables: list[Path]) -> None:
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    with gzip.open(path, "wb", compresslevel=1) as raw, tarfile.open(fileobj=raw, mode="w|") as tar:
        status = b"".join(
            b"Package: pkg%d\nStatus: install ok installed\nArchitecture: amd64\n"
            b"Maintainer: Someone <someone@example.org>\nVersion: 1.%d-1\n"
            b"Description: a package\n multi-line\n\n" % (i, i)
            for i in range(400)
        )
        _add(tar, "var/lib/dpkg/status", status)
        for i in range(150):
            meta = b"Metadata-Version: 2.1\nName: dist%d\nVersion: 0.%d\nLicense: MIT\n\n" % (i, i)
            _add(tar, f"usr/lib/python3/dist-packages/dist{i}-0.{i}.dist-info/METADATA", meta)
        for i in range(files):
            _add(tar, f"usr/share/data/{i // 1000}/file{i}.txt", words * (20 + i % 200))
        for i, exe in enumerate(executables):
            _add(tar, f"usr/bin/tool{i}", exe.read_bytes(), mode=0o755)
        for i in range(big_mb // 64):
            _add(tar, f"opt/blob{i}.bin", os.urandom(64 * MIB))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-sbom-"))
    try:
        executables = [Path(sys.executable).resolve()]
        go = shutil.which("go")
        if go is not None:
            root = subprocess.run(
                [go, "env", "GOROOT"], capture_output=True, text=True, check=True
            ).stdout
            executables += sorted((Path(root.strip()) / "bin").glob("*"))
        layers = [work / "base.tar.gz", work / "app.tar.gz"]
        make_layer(layers[0], files=20000, big_mb=256, executables=executables)
        make_layer(layers[1], files=2000, big_mb=128, executables=executables[:1])
        size = sum(p.stat().st_size for p in layers)
        script = work / "sbom.py"
        script.write_text(SCRIPT)
        ours, reference = interleaved(
            RUNS,
            lambda: timed([sys.executable, str(script), *map(str, layers)]),
            lambda: sum(timed(["tar", "-tzf", str(p)]) for p in layers),
        )
        print(f"layers: {size / 1e6:.0f} MB compressed, {os.cpu_count()} cores, median of {RUNS}")
        print(f"SBOM of the layers: {ours:.2f} s")
        print(f"tar -tzf:           {reference:.2f} s")
        print(f"ratio: {ours / reference:.2f}x (target <= {TARGET}x)")
        record(
            "sbom",
            f"SBOM of {size / 1e6:.0f} MB of tar+gzip layers vs tar -tzf",
            ours=ours,
            unit="s",
            reference=reference,
            reference_name="tar -tzf",
            ratio=ours / reference,
            target=TARGET,
            runs=RUNS,
            note="the second read of the layers that build makes for the SBOMs",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
