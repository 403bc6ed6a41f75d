"""Request bodies of the web server: credentials first, sizes capped, uploads streamed to disk
(issue #16, findings 5 and 10).

The server is a real ``solutions ui`` process against the local control plane; its memory is read
from ``/proc`` and its upload folder is watched while requests are sent over raw sockets, so that
what the server does *before* the body arrives can be seen.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from metalk8s_solutions.web.uploads import parse_size, show_size
from security.webconc_support import (
    UiProcess,
    multipart_field,
    multipart_head,
    multipart_tail,
    send_headers_only,
    ui_process,
)
from web.conftest import admin_token  # noqa: F401 - a fixture

MiB = 1 << 20
BOUNDARY = "webconc-boundary-7d1e"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
UPLOAD_LIMIT = 8 * MiB

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def ui(
    local_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiProcess]:
    base = tmp_path_factory.mktemp("webconc-bodies")
    with ui_process(
        base / "etc" / "solutions.yaml",
        local_cluster.kubeconfig,
        base / "uploads",
        "--upload-limit",
        "8MiB",
    ) as running:
        yield running


def _leftovers(ui: UiProcess) -> list[str]:
    return sorted(p.name for p in ui.uploads.glob("*")) if ui.uploads.exists() else []


def _wait(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- credentials before the body -------------------------------------------------------------


def test_an_upload_without_credentials_is_refused_before_its_body_is_read(ui: UiProcess) -> None:
    answer = send_headers_only(
        ui.address,
        "POST",
        "/api/solutions/upload",
        {"Content-Type": MULTIPART, "Content-Length": str(1 << 30)},
        body_prefix=multipart_head(BOUNDARY, "archive", "big.iso") + b"\0" * 65536,
    )
    assert answer.status == 401, f"no refusal before the body was sent: {answer}"
    assert answer.seconds < 2.0
    body = json.loads(answer.head.split(b"\r\n\r\n", 1)[1] or b"{}") if b"{" in answer.head else {}
    assert body.get("error", {}).get("kind", "unauthenticated") == "unauthenticated"
    assert _leftovers(ui) == []


def test_a_page_upload_without_a_session_goes_to_login_before_the_body(ui: UiProcess) -> None:
    answer = send_headers_only(
        ui.address,
        "POST",
        "/solutions/upload",
        {"Content-Type": MULTIPART, "Content-Length": str(1 << 30)},
    )
    assert answer.status == 303, answer
    assert b"location: /login" in answer.head.lower()


def test_a_json_body_without_credentials_is_refused_before_it_is_read(ui: UiProcess) -> None:
    answer = send_headers_only(
        ui.address,
        "POST",
        "/api/solutions/import",
        {"Content-Type": "application/json", "Content-Length": str(400 * MiB)},
    )
    assert answer.status == 401, answer


def test_a_login_body_without_credentials_is_capped_small(ui: UiProcess) -> None:
    """Logging in is open, but a caller without credentials may not make the server hold more
    than a login form needs (64 KiB), nor a GET with a body."""
    for method, path in (("POST", "/api/session"), ("POST", "/login"), ("GET", "/api/status")):
        answer = send_headers_only(
            ui.address,
            method,
            path,
            {"Content-Type": "application/json", "Content-Length": str(MiB)},
        )
        assert answer.status == 413, (method, path, answer)


@pytest.mark.parametrize("length", ["\u00b2", "\uff11", "1" * 40, "-1", "1e3"])
def test_a_malformed_content_length_is_400_never_500(ui: UiProcess, length: str) -> None:
    answer = send_headers_only(
        ui.address,
        "POST",
        "/api/session",
        {"Content-Type": "application/json", "Content-Length": length},
    )
    assert answer.status in (400, 413), (length, answer)


# -- size caps -------------------------------------------------------------------------------


def test_an_oversized_json_body_is_413_before_it_is_read(
    ui: UiProcess,
    admin_token: str,  # noqa: F811 - the fixture
) -> None:
    answer = send_headers_only(
        ui.address,
        "POST",
        "/api/solutions/import",
        {
            "Content-Type": "application/json",
            "Content-Length": str(400 * MiB),
            **_bearer(admin_token),
        },
    )
    assert answer.status == 413, answer
    assert b'"kind":"too-large"' in answer.head.replace(b" ", b"")


def _send_chunked(
    address: tuple[str, int], path: str, headers: dict[str, str], chunks: Iterator[bytes]
) -> tuple[int | None, bytes]:
    """Send a chunked body until it ends or the server stops reading; the server's answer."""
    head = [f"POST {path} HTTP/1.1", f"Host: {address[0]}", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for chunk in chunks:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end: what we want
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
        except ConnectionResetError:
            pass
    line = received.split(b"\r\n", 1)[0].split()
    return (int(line[1]) if len(line) > 1 else None), received


def test_a_streamed_json_body_is_capped_and_memory_stays_bounded(
    ui: UiProcess,
    admin_token: str,  # noqa: F811 - the fixture
) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"archives": ["'
        for _ in range(96):
            yield b"a" * MiB

    ui.reset_peak()
    baseline = ui.rss()
    status, head = _send_chunked(
        ui.address,
        "/api/solutions/import",
        {"Content-Type": "application/json", **_bearer(admin_token)},
        body(),
    )
    growth = ui.peak_growth(baseline)
    assert status == 413, head
    assert growth < 32 * MiB, f"the server's memory grew by {growth // MiB} MiB"


def test_an_upload_over_the_limit_is_413_before_its_body_is_read(
    ui: UiProcess,
    admin_token: str,  # noqa: F811 - the fixture
) -> None:
    answer = send_headers_only(
        ui.address,
        "POST",
        "/api/solutions/upload",
        {"Content-Type": MULTIPART, "Content-Length": str(64 * MiB), **_bearer(admin_token)},
    )
    assert answer.status == 413, answer
    assert b"8 MiB" in answer.head
    assert _leftovers(ui) == []


def test_a_streamed_upload_over_the_limit_is_413_and_leaves_no_file(
    ui: UiProcess,
    admin_token: str,  # noqa: F811 - the fixture
) -> None:
    def body() -> Iterator[bytes]:
        yield multipart_head(BOUNDARY, "archive", "too-big.iso")
        for _ in range(16):
            yield b"\1" * MiB
        yield multipart_tail(BOUNDARY)

    status, head = _send_chunked(
        ui.address,
        "/api/solutions/upload",
        {"Content-Type": MULTIPART, **_bearer(admin_token)},
        body(),
    )
    assert status == 413, head
    assert _wait(lambda: _leftovers(ui) == [], 5), _leftovers(ui)


def test_an_interrupted_upload_is_streamed_to_disk_then_removed(
    ui: UiProcess,
    admin_token: str,  # noqa: F811 - the fixture
) -> None:
    head = [
        "POST /api/solutions/upload HTTP/1.1",
        f"Host: {ui.address[0]}",
        f"Content-Type: {MULTIPART}",
        f"Content-Length: {7 * MiB}",
        f"Authorization: Bearer {admin_token}",
    ]
    ui.reset_peak()
    baseline = ui.rss()
    with socket.create_connection(ui.address, timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.sendall(multipart_head(BOUNDARY, "archive", "interrupted.iso"))
        for _ in range(5):
            sock.sendall(b"\2" * MiB)
        # The upload goes to a temporary file of the upload folder as it arrives...
        assert _wait(lambda: any(n.endswith(".part") for n in _leftovers(ui)), 10), (
            f"nothing was written to the upload folder: {_leftovers(ui)}"
        )
    # ...which is removed when the client goes away.
    assert _wait(lambda: _leftovers(ui) == [], 10), _leftovers(ui)
    assert ui.peak_growth(baseline) < 16 * MiB


# -- uploads that succeed, and a name uploaded again (finding 10) ----------------------------


def _upload(
    ui: UiProcess, token: str, name: str, data: bytes, *, dry_run: bool = True
) -> httpx.Response:
    with httpx.Client(base_url=ui.url, timeout=120) as http:
        return http.post(
            "/api/solutions/upload",
            headers=_bearer(token),
            files={"archive": (name, data, "application/octet-stream")},
            data={"dryRun": "true" if dry_run else "false"},
        )


def test_uploading_an_archive_then_the_same_bytes_again(
    ui: UiProcess,
    admin_token: str,  # noqa: F811 - the fixture
    built_archive: Callable[[], Path],
) -> None:
    data = built_archive().read_bytes()
    first = _upload(ui, admin_token, "good-1.0.0.iso", data)
    assert first.status_code == 200, first.text
    assert first.json()["archive"] == str(ui.uploads / "good-1.0.0.iso")
    assert (ui.uploads / "good-1.0.0.iso").read_bytes() == data
    again = _upload(ui, admin_token, "good-1.0.0.iso", data)
    assert again.status_code == 200, again.text
    other = _upload(ui, admin_token, "good-1.0.0.iso", data[:-1] + b"x")
    assert other.status_code == 409, other.text
    assert "already exists with different content" in other.json()["error"]["message"]
    assert sorted(_leftovers(ui)) == ["good-1.0.0.iso"] or ".part" not in "".join(_leftovers(ui))
    (ui.uploads / "good-1.0.0.iso").unlink()


def test_uploading_a_name_again_does_not_load_the_existing_archive(
    ui: UiProcess,
    admin_token: str,  # noqa: F811 - the fixture
) -> None:
    ui.uploads.mkdir(parents=True, exist_ok=True)
    existing = ui.uploads / "large-1.0.0.iso"
    with existing.open("wb") as out:
        out.truncate(400 * MiB)  # sparse: cheap on disk, 400 MiB when read
    try:
        ui.reset_peak()
        baseline = ui.rss()
        answer = _upload(ui, admin_token, existing.name, b"not the same archive")
        growth = ui.peak_growth(baseline)
        assert answer.status_code == 409, answer.text
        assert growth < 64 * MiB, f"the server's memory grew by {growth // MiB} MiB"
        assert sorted(_leftovers(ui)) == [existing.name]
    finally:
        existing.unlink()


# -- browser forms and CSRF ------------------------------------------------------------------


def test_a_page_upload_checks_the_form_csrf_token_before_storing_anything(
    ui: UiProcess,
    admin_token: str,  # noqa: F811 - the fixture
    built_archive: Callable[[], Path],
) -> None:
    with httpx.Client(base_url=ui.url, timeout=60) as http:
        login = http.post("/api/session", json={"token": admin_token})
        assert login.status_code == 200, login.text
        wrong = http.post(
            "/solutions/upload",
            content=multipart_field(BOUNDARY, "csrf", "not-the-token")
            + multipart_head(BOUNDARY, "archive", "forged.iso")
            + b"\3" * MiB
            + multipart_tail(BOUNDARY),
            headers={"Content-Type": MULTIPART},
        )
        assert wrong.status_code == 403, wrong.text
        assert _leftovers(ui) == []
        empty = http.post(
            "/solutions/upload",
            content=multipart_field(BOUNDARY, "csrf", login.json()["csrf"])
            + multipart_tail(BOUNDARY).lstrip(b"\r\n"),
            headers={"Content-Type": MULTIPART},
        )
        assert empty.status_code == 400, empty.text
        assert "choose an archive file to upload" in empty.text
        # The browser's form: the csrf field first, then the file; the answer is the plan.
        planned = http.post(
            "/solutions/upload",
            content=multipart_field(BOUNDARY, "csrf", login.json()["csrf"])
            + multipart_head(BOUNDARY, "archive", "from-browser-1.0.0.iso")
            + built_archive().read_bytes()
            + multipart_tail(BOUNDARY),
            headers={"Content-Type": MULTIPART},
        )
        assert planned.status_code == 200, planned.text
        assert "Import" in planned.text
        assert _leftovers(ui) == ["from-browser-1.0.0.iso"]
        (ui.uploads / "from-browser-1.0.0.iso").unlink()


# -- sizes (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1 << 20), ("8MiB", 8 << 20), ("20G", 20 << 30), ("512 KiB", 512 << 10)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1", "12 apples", "1.5G"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(InvalidInput, match="is not a positive number of bytes"):
        parse_size(text)


def test_show_size() -> None:
    assert [show_size(n) for n in (20 << 30, 8 << 20, 1000)] == ["20 GiB", "8 MiB", "1000 bytes"]
