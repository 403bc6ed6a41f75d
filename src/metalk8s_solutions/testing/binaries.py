"""Build the control-plane binaries from pinned upstream Go modules, and find them again.

No binary is ever committed or downloaded from a release page.  Each component is built with the
machine's Go toolchain from a wrapper module shipped in ``gomod/<group>/`` (``go.mod`` and
``go.sum`` pin every dependency), into a cache outside the source tree keyed by version::

    ${XDG_CACHE_HOME:-~/.cache}/metalk8s-solutions/bin/<group>-<version>-<recipe hash>/<binary>

A build happens only when a binary is missing.  ``SOLUTIONS_TEST_ASSETS`` names a folder of
binaries the user already has (like envtest's ``KUBEBUILDER_ASSETS``) and disables building.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from metalk8s_solutions.errors import EnvironmentFailure

ASSETS_ENV = "SOLUTIONS_TEST_ASSETS"
GOMOD_DIR = Path(__file__).parent / "gomod"

KUBERNETES_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"
COSIGN_VERSION = "v2.6.5"
COREDNS_VERSION = "v1.15.0"


def _kube_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


@dataclass(frozen=True)
class BinaryGroup:
    """Binaries built together from one wrapper module."""

    name: str
    version: str
    #: binary name -> Go package path
    packages: dict[str, str]
    ldflags: str = "-s -w"
    #: the wrapper module's files (a module with its own main package adds ``main.go``)
    sources: tuple[str, ...] = ("go.mod", "go.sum")

    @property
    def module_dir(self) -> Path:
        return GOMOD_DIR / self.name

    @property
    def recipe_hash(self) -> str:
        """Changes whenever the pins or the build flags change, so the cache is rebuilt."""
        digest = hashlib.sha256(self.ldflags.encode())
        for name in self.sources:
            digest.update((self.module_dir / name).read_bytes())
        digest.update(repr(sorted(self.packages.items())).encode())
        return digest.hexdigest()[:10]


GROUPS: tuple[BinaryGroup, ...] = (
    BinaryGroup(
        name="kube",
        version=KUBERNETES_VERSION,
        packages={
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        ldflags=_kube_ldflags(),
    ),
    # The kubelet of the real nodes (dev cluster up --real-nodes): the same pinned
    # k8s.io/kubernetes as the control plane, in its own wrapper module (cmd/kubelet needs more
    # dependencies) and cache folder, so the control plane's cache is kept.
    BinaryGroup(
        name="kubelet",
        version=KUBERNETES_VERSION,
        packages={"kubelet": "k8s.io/kubernetes/cmd/kubelet"},
        ldflags=_kube_ldflags(),
    ),
    # kube-proxy of the real nodes: Service IPs (the API server's `kubernetes` Service among
    # them) reachable from their pods; same pinned k8s.io/kubernetes, its own wrapper module.
    BinaryGroup(
        name="kube-proxy",
        version=KUBERNETES_VERSION,
        packages={"kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy"},
        ldflags=_kube_ldflags(),
    ),
    # The real nodes' cluster DNS: CoreDNS with only the plugins a cluster.local Corefile needs
    # (gomod/coredns/main.go), not CoreDNS's main package, which links every cloud provider.
    BinaryGroup(
        name="coredns",
        version=COREDNS_VERSION,
        packages={"coredns": "."},
        sources=("go.mod", "go.sum", "main.go"),
    ),
    BinaryGroup(
        name="etcd",
        version=ETCD_VERSION,
        packages={"etcd": "go.etcd.io/etcd/server/v3"},
        ldflags=(
            "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=release-" + ETCD_VERSION.lstrip("v")
        ),
    ),
    BinaryGroup(
        name="kwok",
        version=KWOK_VERSION,
        packages={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
    ),
    # cosign, to check that image signatures in the archives verify with the standard tool
    # (tests only; never needed by a cluster).
    BinaryGroup(
        name="cosign",
        version=COSIGN_VERSION,
        packages={"cosign": "github.com/sigstore/cosign/v2/cmd/cosign"},
        ldflags="-s -w -X sigs.k8s.io/release-utils/version.gitVersion=" + COSIGN_VERSION,
    ),
)

#: Tools only some tests use, built on their first use rather than by ``main`` (bootstrap).
TEST_TOOLS: tuple[str, ...] = ("cosign",)
ALL_BINARIES: tuple[str, ...] = tuple(b for g in GROUPS for b in g.packages if b not in TEST_TOOLS)
#: What real nodes need beyond the control plane.
REAL_NODE_BINARIES: tuple[str, ...] = ("kubelet", "kube-proxy", "coredns")
#: What every local cluster needs.
CONTROL_PLANE_BINARIES: tuple[str, ...] = tuple(
    b for b in ALL_BINARIES if b not in REAL_NODE_BINARIES
)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "metalk8s-solutions" / "bin"


def group_dir(group: BinaryGroup) -> Path:
    return cache_root() / f"{group.name}-{group.version}-{group.recipe_hash}"


def _group_of(binary: str) -> BinaryGroup:
    for group in GROUPS:
        if binary in group.packages:
            return group
    raise KeyError(binary)


def find(binary: str) -> Path | None:
    """Where ``binary`` is, if it exists (override folder first, then the cache)."""
    override = os.environ.get(ASSETS_ENV)
    if override:
        candidate = Path(override) / binary
        return candidate if candidate.is_file() else None
    candidate = group_dir(_group_of(binary)) / binary
    return candidate if candidate.is_file() else None


def ensure(binaries: Iterable[str] = ALL_BINARIES, *, log: object = None) -> dict[str, Path]:
    """Return the path of each binary, building the missing ones first."""
    wanted = list(binaries)
    found: dict[str, Path] = {}
    override = os.environ.get(ASSETS_ENV)
    for name in wanted:
        path = find(name)
        if path is not None:
            found[name] = path
        elif override:
            raise EnvironmentFailure(
                f"{ASSETS_ENV}={override} has no {name!r}",
                hint=f"put {name} there, or unset {ASSETS_ENV} to build it from source",
            )
    for group in GROUPS:
        missing = [b for b in group.packages if b in wanted and b not in found]
        if missing:
            build(group)
            for name in missing:
                found[name] = group_dir(group) / name
    return found


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise EnvironmentFailure(
            "the Go toolchain ('go') is not on PATH; it is needed once to build the local "
            "control plane from pinned modules",
            hint=f"install Go >= 1.25, or set {ASSETS_ENV} to a folder holding "
            + ", ".join(ALL_BINARIES),
        )
    return go


def build(group: BinaryGroup, *, verbose: bool = True) -> Path:
    """Build every binary of ``group`` into its cache folder; atomic per folder."""
    go = _go()
    target = group_dir(group)
    target.parent.mkdir(parents=True, exist_ok=True)
    log_path = target.parent / f"build-{group.name}-{group.version}.log"
    with tempfile.TemporaryDirectory(prefix=f"build-{group.name}-", dir=target.parent) as tmp:
        work = Path(tmp) / "src"
        out = Path(tmp) / "out"
        work.mkdir()
        out.mkdir()
        for name in group.sources:
            shutil.copyfile(group.module_dir / name, work / name)
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")
        if verbose:
            print(
                f"building {', '.join(group.packages)} {group.version} from Go modules "
                f"(once; cached in {target}; log {log_path})",
                file=sys.stderr,
                flush=True,
            )
        started = time.monotonic()
        for binary, package in group.packages.items():
            cmd = [go, "build", "-trimpath", "-ldflags", group.ldflags]
            cmd += ["-o", str(out / binary), package]
            go_build(cmd, work, env, log_path, f"{binary} {group.version}")
            if verbose:
                print(
                    f"  built {binary} in {time.monotonic() - started:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    return target


def go_build(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path, what: str) -> None:
    """Run one ``go build`` command, its output appended to ``log_path``; EnvironmentFailure
    naming ``what``, the log's last line and the log when it fails."""
    with log_path.open("a") as log_file:
        log_file.write(f"$ {' '.join(cmd)}\n")
        log_file.flush()
        result = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = _tail(log_path)
        raise EnvironmentFailure(
            f"building {what} failed (go build exit {result.returncode})"
            + (f": {tail}" if tail else ""),
            hint=f"read {log_path}; a module download error means the Go module proxy "
            "is unreachable (check GOPROXY)",
        )


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(text[-lines:]).strip()


def main() -> int:
    """``python -m metalk8s_solutions.testing.binaries``: build what is missing, print paths."""
    try:
        for name, path in ensure().items():
            print(f"{name}\t{path}")
    except EnvironmentFailure as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
