"""Push mode's pure parts: the blob plan, challenges, targets, error messages, progress lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx2 as httpx  # the HTTP stack of metalk8s_solutions.images
import pytest

from metalk8s_solutions.api.config import RegistrySettings
from metalk8s_solutions.cli.progress import ProgressLine, human_size
from metalk8s_solutions.engine.push import read_password, settings_with, target_from_settings
from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.images.client import (
    RegistryClient,
    RegistryTarget,
    RegistryUnavailable,
    join_location,
    parse_challenge,
)
from metalk8s_solutions.images.push import Action, BlobStep, manifest_children, plan_blobs

A, B, C = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
SIZES = {A: 300, B: 20, C: 1}


def test_plan_uploads_each_digest_once_and_mounts_it_elsewhere() -> None:
    needs = {A: ["p/x", "p/y"], B: ["p/x"], C: ["p/y"]}
    steps = plan_blobs(needs, SIZES, present=set(), elsewhere={})
    assert steps == [
        BlobStep(A, 300, "p/x", Action.UPLOAD),
        BlobStep(A, 300, "p/y", Action.MOUNT, "p/x"),
        BlobStep(B, 20, "p/x", Action.UPLOAD),
        BlobStep(C, 1, "p/y", Action.UPLOAD),
    ]


def test_plan_skips_what_is_there_and_mounts_from_it_or_from_related_repositories() -> None:
    needs = {A: ["p/x", "p/y"], B: ["p/x", "p/y"], C: ["p/y"]}
    present = {("p/y", A)}
    steps = plan_blobs(needs, SIZES, present, elsewhere={B: "p/old/x", C: "p/old/z"})
    assert steps == [
        BlobStep(A, 300, "p/x", Action.MOUNT, "p/y"),
        BlobStep(A, 300, "p/y", Action.SKIP),
        BlobStep(B, 20, "p/x", Action.MOUNT, "p/old/x"),
        BlobStep(B, 20, "p/y", Action.MOUNT, "p/old/x"),
        BlobStep(C, 1, "p/y", Action.MOUNT, "p/old/z"),
    ]


def test_plan_of_a_complete_push_is_all_skips() -> None:
    needs = {A: ["p/x"], B: ["p/x"]}
    steps = plan_blobs(needs, SIZES, {("p/x", A), ("p/x", B)}, {})
    assert {s.action for s in steps} == {Action.SKIP}


def test_bearer_and_basic_challenges() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push repository:c:pull",
        "error": "insufficient_scope",
    }
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert (
        basic is not None and basic.scheme == "basic" and basic.params["realm"] == "Registry Realm"
    )
    assert parse_challenge("") is None


def test_target_normalises_url_and_prefix() -> None:
    target = RegistryTarget("registry.example:5000/", prefix="/team/apps/")
    assert target.url == "https://registry.example:5000"
    assert target.host == "registry.example:5000"
    assert target.repository("example-solution-1.0.0", "base") == (
        "team/apps/example-solution-1.0.0/base"
    )
    assert RegistryTarget("10.0.0.1:5000", insecure=True).url == "http://10.0.0.1:5000"
    assert RegistryTarget("http://r").repository("s-1.0.0", "i") == "s-1.0.0/i"


@pytest.mark.parametrize(
    ("url", "prefix", "message"),
    [
        ("ftp://r", "", "not valid"),
        ("https://r/path", "", "must not have a path"),
        ("https://bad host", "", "not valid"),
        ("https://r", "Upper", "prefix"),
        ("https://r", "a//b", "prefix"),
    ],
)
def test_target_rejects_bad_urls_and_prefixes(url: str, prefix: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        RegistryTarget(url, prefix=prefix)


def test_target_needs_both_credentials() -> None:
    with pytest.raises(InvalidInput, match="both"):
        RegistryTarget("https://r", username="u")


def test_manifest_children_of_an_index() -> None:
    index = json.dumps(
        {"manifests": [{"digest": A}, {"digest": B}, {"digest": A}, {"digest": "sha256:x"}]}
    ).encode()
    assert manifest_children(index, {A, B}) == [A, B]
    assert manifest_children(b'{"layers": []}', {A}) == []
    assert manifest_children(b"not json", {A}) == []


def test_upload_location_keeps_its_state_and_gets_the_digest() -> None:
    url = join_location("http://r:5000", "/v2/x/blobs/uploads/u?_state=s", {"digest": A})
    assert str(url) == f"http://r:5000/v2/x/blobs/uploads/u?_state=s&digest={A.replace(':', '%3A')}"
    absolute = join_location("http://r:5000", "https://cdn/u", None)
    assert str(absolute) == "https://cdn/u"


def _response(
    status: int, errors: list[dict[str, str]] | None = None, **headers: str
) -> httpx.Response:
    body = json.dumps({"errors": errors}).encode() if errors is not None else b""
    return httpx.Response(status, content=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "errors", "username", "expected", "hint"),
    [
        (401, None, None, "requires authentication", "registry.passwordFile"),
        (401, None, "bob", "credentials of user 'bob' were rejected", "passwordFile"),
        (403, None, "bob", "access denied to user 'bob'", "grant push permission"),
        (
            400,
            [{"code": "DIGEST_INVALID", "message": "provided digest did not match"}],
            None,
            "does not match its digest",
            "solutions validate",
        ),
        (507, None, None, "no space left", "free space"),
        (500, [{"code": "UNKNOWN", "message": "disk quota"}], None, "failed (HTTP 500)", "log"),
        (
            404,
            [{"code": "NAME_UNKNOWN", "message": "repository name not known"}],
            None,
            "does not accept this repository",
            "create the project",
        ),
        (413, None, None, "too large", "body size"),
    ],
)
def test_errors_say_what_to_do(
    status: int, errors: list[dict[str, str]] | None, username: str | None, expected: str, hint: str
) -> None:
    target = RegistryTarget(
        "https://registry.example", username=username, password="p" if username else None
    )
    client = RegistryClient(target)
    error = client.status_error(_response(status, errors), "uploading blob x", "p/app")
    text = str(error)
    assert text.startswith("registry https://registry.example, repository p/app: uploading blob x")
    assert expected in text and hint in error.hint if error.hint else False
    assert isinstance(error, RegistryUnavailable) == (status >= 500 and status != 507)


def test_insufficient_scope_is_access_denied() -> None:
    client = RegistryClient(RegistryTarget("https://r", username="u", password="p"))
    resp = _response(
        401,
        WWW_Authenticate='Bearer realm="x",scope="repository:a:push",error="insufficient_scope"',
    )
    resp.headers["WWW-Authenticate"] = resp.headers.pop("WWW_Authenticate")
    assert "access denied to user 'u'" in str(client.status_error(resp, "pushing", "a"))


def test_settings_become_a_target_with_the_password_file(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("s3cret\n")
    settings = RegistrySettings(
        push_url="https://r:5000",
        push_prefix="apps",
        ca_file=str(tmp_path / "ca.pem"),
        username="bob",
        password_file=str(tmp_path / "password"),
    )
    target = target_from_settings(settings)
    assert (target.url, target.prefix, target.username, target.password) == (
        "https://r:5000",
        "apps",
        "bob",
        "s3cret",
    )
    assert target.ca_file == tmp_path / "ca.pem"
    assert "s3cret" not in repr(target)
    overridden = settings_with(settings, push_prefix="other", insecure=None)
    assert overridden.push_prefix == "other" and overridden.insecure is False


def test_settings_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no registry to push to"):
        target_from_settings(RegistrySettings())
    with pytest.raises(InvalidInput, match=r"without registry\.passwordFile"):
        target_from_settings(RegistrySettings(push_url="https://r", username="bob"))
    with pytest.raises(InvalidInput, match="cannot read the registry password file"):
        read_password(tmp_path / "absent")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InvalidInput, match="is empty"):
        read_password(tmp_path / "empty")


def test_progress_line_in_a_log() -> None:
    stream = io.StringIO()
    line = ProgressLine(stream=stream, log_interval=0)
    line.update("upload", 512 * 1024, 2 * 1024 * 1024, "blobs 1/4")
    line.finish("pushed", 2 * 1024 * 1024, 2 * 1024 * 1024, "blobs 4/4")
    first, last = stream.getvalue().splitlines()
    assert first.startswith("upload: 512.0 KiB / 2.0 MiB  ") and first.endswith("blobs 1/4")
    assert last.startswith("pushed: 2.0 MiB / 2.0 MiB")
    assert (
        ProgressLine.render("up", 300 * 1024**2, 1024**3, 2.0)
        == "up: 300.0 MiB / 1.0 GiB  150.0 MiB/s"
    )
    assert ProgressLine.render("x", 0, 10, 0.0) == "x: 0 B / 10 B"
    assert human_size(3 * 1024**3) == "3.0 GiB"
    quiet = io.StringIO()
    ProgressLine(stream=quiet, quiet=True).finish("pushed", 1, 1)
    assert quiet.getvalue() == ""
