"""A real Dex (the OpenID Connect provider of MetalK8s) on loopback, for tests.

Dex is built from its Go module like the control plane (:mod:`.binaries`): the pins are in
``gomod/dex/`` and the binary is cached in
``${XDG_CACHE_HOME:-~/.cache}/metalk8s-solutions/bin/dex-<version>-<recipe hash>/dex``.

One wrinkle: Dex's ``cmd/dex`` imports its gRPC management API from the nested module
``github.com/dexidp/dex/api/v2``, which upstream replaces with a local directory and does not
publish at the matching commit, so ``go build github.com/dexidp/dex/cmd/dex`` from another module
fails.  The build therefore copies ``cmd/dex`` from the module cache into a temporary directory
and drops the single line that registers that gRPC API (unused here: nothing configures
``grpc:``); everything else, including the whole ``server`` package, is the pinned upstream code.

Dex keeps its state in an etcd of its own (the control plane's etcd binary): its ``memory``
storage deadlocks on refresh-token rotation at this pin (``memStorage.UpdateRefreshToken`` calls
``GetOfflineSessions`` under the same lock), and SQLite needs cgo.

Users come from Dex's password database (``staticPasswords``), which at this pin carries a
``groups`` list per user that Dex puts in the ``groups`` claim: no mock connector is needed, and
several users with different groups log in through the ordinary login form.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from metalk8s_solutions.errors import EnvironmentFailure
from metalk8s_solutions.testing.binaries import (
    ASSETS_ENV,
    BinaryGroup,
    _go,
    ensure,
    go_build,
    group_dir,
)
from metalk8s_solutions.testing.pki import CertificateAuthority
from metalk8s_solutions.testing.processes import ProcessRecord, free_port, spawn, wait_until

DEX_MODULE = "github.com/dexidp/dex"
DEX_VERSION = "v0.0.0-20260806151424-ab64ed778070"
#: What the build drops from cmd/dex/serve.go (see the module docstring).
_PATCH = (
    '\t"github.com/dexidp/dex/api/v2"\n',
    '\t"github.com/dexidp/dex/server/apiserver"\n',
    "api.RegisterDexServer(",
)
_SOURCES = ("config.go", "excluding_handler.go", "logger.go", "main.go", "serve.go", "version.go")

DEX = BinaryGroup(
    name="dex",
    version=DEX_VERSION,
    packages={"dex": "./cmd/dex"},
    ldflags=f"-s -w -X main.version={DEX_VERSION}",
)


def _module_dir(go: str, work: Path, env: dict[str, str]) -> Path:
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{DEX_MODULE}@{DEX_VERSION}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise EnvironmentFailure(
            f"downloading {DEX_MODULE}@{DEX_VERSION} failed: {result.stderr.strip()[-300:]}",
            hint="check that the Go module proxy is reachable (GOPROXY)",
        )
    return Path(json.loads(result.stdout)["Dir"])


def _patch(source: str) -> str:
    for imported in _PATCH[:2]:
        if imported not in source:
            raise EnvironmentFailure(f"dex {DEX_VERSION}: cmd/dex/serve.go changed; update _PATCH")
        source = source.replace(imported, "")
    return "".join(line for line in source.splitlines(True) if _PATCH[2] not in line)


def build_dex(*, verbose: bool = True) -> Path:
    """Build Dex into its cache folder (atomic), and return the folder."""
    go = _go()
    target = group_dir(DEX)
    target.parent.mkdir(parents=True, exist_ok=True)
    log_path = target.parent / f"build-dex-{DEX_VERSION}.log"
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")
    started = time.monotonic()
    if verbose:
        print(
            f"building dex {DEX_VERSION} from Go modules (once; cached in {target})",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="build-dex-", dir=target.parent) as tmp:
        work, out = Path(tmp) / "src", Path(tmp) / "out"
        (work / "cmd" / "dex").mkdir(parents=True)
        out.mkdir()
        for name in ("go.mod", "go.sum"):
            shutil.copyfile(DEX.module_dir / name, work / name)
        upstream = _module_dir(go, work, env) / "cmd" / "dex"
        for name in _SOURCES:
            text = (upstream / name).read_text()
            (work / "cmd" / "dex" / name).write_text(_patch(text) if name == "serve.go" else text)
        cmd = [go, "build", "-trimpath", "-ldflags", DEX.ldflags]
        cmd += ["-o", str(out / "dex"), "./cmd/dex"]
        go_build(cmd, work, env, log_path, f"dex {DEX_VERSION}")
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    if verbose:
        print(f"  built dex in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return target


def ensure_dex() -> Path:
    """The Dex binary: ``$SOLUTIONS_TEST_ASSETS/dex``, the cache, or a fresh build."""
    override = os.environ.get(ASSETS_ENV)
    if override:
        candidate = Path(override) / "dex"
        if not candidate.is_file():
            raise EnvironmentFailure(
                f"{ASSETS_ENV}={override} has no 'dex'", hint="put dex there, or unset it"
            )
        return candidate
    binary = group_dir(DEX) / "dex"
    if not binary.is_file():
        build_dex()
    return binary


@dataclass(frozen=True)
class DexUser:
    """A user of Dex's password database; ``groups`` land in the ID token's ``groups`` claim."""

    email: str
    password: str
    groups: tuple[str, ...] = ()

    @property
    def username(self) -> str:
        return self.email.split("@", 1)[0]


@dataclass(frozen=True)
class DexClient:
    """A static OAuth2 client: confidential when ``secret`` is set, otherwise public (PKCE)."""

    id: str
    redirect_uris: tuple[str, ...]
    secret: str | None = None


@dataclass
class LocalDex:
    """Dex serving HTTPS on a loopback port, its certificate issued by ``ca``."""

    state_dir: Path
    ca: CertificateAuthority
    users: tuple[DexUser, ...]
    clients: tuple[DexClient, ...]
    id_token_ttl: str = "10m"  # noqa: S105 - a duration
    port: int = 0
    record: ProcessRecord | None = field(default=None, init=False)
    etcd: ProcessRecord | None = field(default=None, init=False)
    etcd_url: str = field(default="", init=False)

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}/dex"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def config(self) -> dict[str, object]:
        import bcrypt  # noqa: PLC0415 - a dev dependency, only needed to start Dex

        return {
            "issuer": self.issuer,
            "storage": {
                "type": "etcd",
                "config": {"endpoints": [self.etcd_url], "namespace": "dex/"},
            },
            "web": {
                "https": f"127.0.0.1:{self.port}",
                "tlsCert": str(self.state_dir / "tls.crt"),
                "tlsKey": str(self.state_dir / "tls.key"),
            },
            "logger": {"level": "info"},
            "expiry": {"idTokens": self.id_token_ttl},
            "oauth2": {"skipApprovalScreen": True, "responseTypes": ["code"]},
            "enablePasswordDB": True,
            "staticPasswords": [
                {
                    "email": u.email,
                    "hash": bcrypt.hashpw(u.password.encode(), bcrypt.gensalt(10)).decode(),
                    "username": u.username,
                    "userID": f"id-{u.username}",
                    "groups": list(u.groups),
                }
                for u in self.users
            ],
            "staticClients": [
                {
                    "id": c.id,
                    "name": c.id,
                    "redirectURIs": list(c.redirect_uris),
                    **({"secret": c.secret} if c.secret else {"public": True}),
                }
                for c in self.clients
            ],
        }

    def start(self, timeout: float = 30.0) -> LocalDex:
        binary = ensure_dex()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._start_etcd(timeout)
        self.port = self.port or free_port()
        pair = self.ca.issue(
            "dex", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True
        )
        self.ca_file.write_bytes(self.ca.cert_pem)
        (self.state_dir / "tls.crt").write_bytes(pair.cert_pem)
        (self.state_dir / "tls.key").write_bytes(pair.key_pem)
        (self.state_dir / "tls.key").chmod(0o600)
        config = self.state_dir / "config.json"  # JSON is YAML: Dex reads it as is
        config.write_text(json.dumps(self.config(), indent=2))
        self.record = spawn(
            "dex",
            [str(binary), "serve", str(config)],
            self.state_dir / "dex.log",
            bind_to_parent=True,
        )
        discovery = f"{self.issuer}/.well-known/openid-configuration"

        def ready() -> bool:
            return httpx.get(discovery, verify=self.ssl_context(), timeout=2).status_code == 200

        wait_until(self.record, ready, timeout=timeout, what="serve its discovery document")
        return self

    def _start_etcd(self, timeout: float) -> None:
        etcd = ensure(["etcd"])["etcd"]
        port, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{port}"
        self.etcd = spawn(
            "dex-etcd",
            [
                str(etcd),
                "--name=dex",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=dex=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            self.state_dir / "etcd.log",
            bind_to_parent=True,
        )

        def ready() -> bool:
            health = httpx.get(self.etcd_url + "/health", timeout=2).json()
            return bool(health.get("health") == "true")

        wait_until(self.etcd, ready, timeout=timeout, what="answer /health")

    def stop(self) -> None:
        for record in (self.record, self.etcd):
            if record is not None:
                record.stop()
        self.record = self.etcd = None
