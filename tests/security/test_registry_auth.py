"""The built-in registry can require a login to read, and refuses to be public without one.

Without authentication anyone who reaches the port pulls every imported image, so
``solutions registry serve`` on a non-loopback address needs ``--auth-htpasswd FILE`` (bcrypt,
as docker-registry) or an explicit ``--insecure-public``.  With a htpasswd file every endpoint,
``/v2/`` and ``/metrics`` included, answers 401 with ``WWW-Authenticate: Basic`` until the client
sends valid credentials; skopeo (the reference client) pulls with ``--creds`` and is refused
without.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import bcrypt
import httpx
import pytest

from metalk8s_solutions.cli.main import main
from metalk8s_solutions.engine.registry import ServeOptions, check_exposure, running_registry
from metalk8s_solutions.errors import InvalidInput, Refused
from metalk8s_solutions.images.registry_server import BasicAuth, is_loopback
from security.registry_support import serving, write_config

pytestmark = pytest.mark.timeout(180)


def htpasswd(path: Path, **users: str) -> Path:
    """Users and bcrypt hashes; every other one with the $2y$ prefix 'htpasswd -B' writes."""
    lines = []
    for number, (user, pw) in enumerate(users.items()):
        hashed = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(5)).decode()
        if number % 2:
            hashed = "$2y$" + hashed.removeprefix("$2b$")
        lines.append(f"{user}:{hashed}")
    path.write_text("\n".join(["# readers of the registry", *lines, ""]))
    return path


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
        assert is_loopback(host), host
    public = ("", "0.0.0.0", "::", "10.1.2.3", "registry.example.net", "127.0.0.1.nip.io")  # noqa: S104
    for host in public:
        assert not is_loopback(host), host


@pytest.mark.parametrize("listen", ["0.0.0.0:0", ":0", "[::]:0"])
async def test_a_public_address_without_auth_is_refused(tmp_path: Path, listen: str) -> None:
    config = write_config(tmp_path / "solutions.yaml", [])
    with pytest.raises(Refused, match="without authentication") as refused:
        async with running_registry(ServeOptions(config, listen=listen)):
            pytest.fail("the registry started")
    assert "--auth-htpasswd" in str(refused.value) and "--insecure-public" in str(refused.value)


def test_the_cli_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "solutions.yaml", [])
    monkeypatch.setenv("SOLUTIONS_CONFIG", str(config))
    code = main(["registry", "serve", "--listen", "0.0.0.0:0"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "fault"),
    [
        ("", "no user"),
        ("alice\n", "line 1"),
        ("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "bcrypt"),
        ("alice:$apr1$x$y\n", "bcrypt"),
        ("alice:$2y$05$short\n", "bcrypt"),
        (":$2y$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBdH\n", "line 1"),
    ],
)
def test_a_bad_htpasswd_file_is_one_clear_error(tmp_path: Path, content: str, fault: str) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=fault) as raised:
        BasicAuth.from_htpasswd(path)
    assert str(path) in str(raised.value)
    with pytest.raises(InvalidInput, match="does not exist"):
        BasicAuth.from_htpasswd(tmp_path / "missing")
    with pytest.raises(InvalidInput, match="directory"):
        BasicAuth.from_htpasswd(tmp_path)


async def test_check_credentials() -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4))
    auth = BasicAuth({"alice": hashed})
    assert await auth.allows(basic("alice", "s3cret")["Authorization"])
    assert await auth.allows(basic("alice", "s3cret")["Authorization"])  # cached
    for header in (
        None,
        "",
        basic("alice", "wrong")["Authorization"],
        basic("bob", "s3cret")["Authorization"],
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
        "Bearer s3cret",
        basic("alice", "s3cret" + "x" * 100)["Authorization"],  # bcrypt refuses > 72 bytes
        basic("alice", "é" * 40)["Authorization"],
        "Basic " + base64.b64encode(b"alice:s3cret").decode() + "\u00e9",
        "basic",
    ):
        assert not await auth.allows(header), header


def test_every_endpoint_needs_the_login(
    built_archive: Callable[[], Path], tmp_path: Path, skopeo: str
) -> None:
    config = write_config(tmp_path / "solutions.yaml", [built_archive()])
    users = htpasswd(tmp_path / "htpasswd", alice="correct horse", bob="battery staple")
    with (
        serving(config, auth_htpasswd=users) as registry,
        httpx.Client(base_url=registry.url) as http,
    ):
        repo = "example-solution-1.0.0/base-server"
        paths = [
            "/v2/",
            "/v2/_catalog",
            f"/v2/{repo}/tags/list",
            f"/v2/{repo}/manifests/1.0.0",
            "/metrics",
        ]
        for path in paths:
            for headers in ({}, basic("alice", "wrong"), basic("mallory", "correct horse")):
                refused = http.get(path, headers=headers)
                assert refused.status_code == 401, (path, headers, refused.status_code)
                assert refused.headers["WWW-Authenticate"].startswith('Basic realm="')
                assert [e["code"] for e in refused.json()["errors"]] == ["UNAUTHORIZED"]
            assert http.head(path).status_code == 401
            assert http.get(path, headers=basic("alice", "correct horse")).status_code == 200, path
        assert http.get("/v2/", headers=basic("bob", "battery staple")).status_code == 200

        reference = f"docker://{registry.address}/{repo}:1.0.0"
        anonymous = subprocess.run(
            [skopeo, "inspect", "--tls-verify=false", "--no-creds", reference],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert anonymous.returncode != 0
        assert (
            "unauthorized" in anonymous.stderr.lower()
            or "authentication required" in anonymous.stderr.lower()
        ), anonymous.stderr
        wrong = subprocess.run(
            [skopeo, "inspect", "--tls-verify=false", "--creds", "alice:nope", reference],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert wrong.returncode != 0
        pulled = subprocess.run(
            [skopeo, "inspect", "--tls-verify=false", "--creds", "alice:correct horse", reference],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert pulled.returncode == 0, pulled.stderr
        assert '"Digest": "sha256:' in pulled.stdout
        copied = subprocess.run(
            [
                skopeo,
                "copy",
                "--src-tls-verify=false",
                "--src-creds",
                "bob:battery staple",
                reference,
                f"dir:{tmp_path / 'pulled'}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert copied.returncode == 0, copied.stderr


def test_a_public_address_is_allowed_with_auth_or_insecure_public(tmp_path: Path) -> None:
    # the check alone (binding every interface in a test would expose the test machine)
    users = htpasswd(tmp_path / "htpasswd", alice="pw")
    check_exposure("::", auth=BasicAuth.from_htpasswd(users), insecure_public=False)
    check_exposure("", auth=None, insecure_public=True)
    check_exposure("127.0.0.1", auth=None, insecure_public=False)
    with pytest.raises(Refused):
        check_exposure("192.0.2.1", auth=None, insecure_public=False)


def test_the_configuration_can_require_the_login(tmp_path: Path) -> None:
    users = htpasswd(tmp_path / "htpasswd", alice="pw")
    config = write_config(tmp_path / "solutions.yaml", [], authHtpasswd=str(users))
    with serving(config) as registry, httpx.Client(base_url=registry.url) as http:
        assert http.get("/v2/").status_code == 401
        assert http.get("/v2/", headers=basic("alice", "pw")).status_code == 200
    public = write_config(tmp_path / "public.yaml", [], listen="0.0.0.0:0")
    with pytest.raises(Refused, match="without authentication"):
        _start(public)
    bad = write_config(tmp_path / "bad.yaml", [], insecurePublic="yes")
    with pytest.raises(InvalidInput, match="insecurePublic"):
        _start(bad)


def _start(config: Path) -> None:
    async def main() -> None:
        async with running_registry(ServeOptions(config)):
            pytest.fail("the registry started")

    asyncio.run(main())
