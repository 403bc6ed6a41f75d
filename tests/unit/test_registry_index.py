"""The built-in registry's pure parts: routing, Range, pagination, the index and its errors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.images.catalog import load_catalog
from metalk8s_solutions.images.registry_index import (
    UNSATISFIABLE,
    ArchiveFile,
    RegistryMetrics,
    RegistryProblem,
    Repository,
    Route,
    Unavailable,
    build_index,
    check_digest,
    check_name,
    paginate,
    parse_range,
    route,
)
from metalk8s_solutions.images.registry_server import parse_listen

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/", Route("base")),
        ("/v2", Route("base")),
        ("/v2/_catalog", Route("catalog")),
        ("/metrics", Route("metrics")),
        ("/v2/a-1.0.0/img/manifests/1.0.0", Route("manifest", "a-1.0.0/img", "1.0.0")),
        (f"/v2/a/b/c/manifests/{DIGEST}", Route("manifest", "a/b/c", DIGEST)),
        (f"/v2/a/img/blobs/{DIGEST}", Route("blob", "a/img", DIGEST)),
        ("/v2/a/img/tags/list", Route("tags", "a/img")),
        (f"/v2/a/img/referrers/{DIGEST}", Route("referrers", "a/img", DIGEST)),
        ("/v2/a/img/blobs/uploads/", Route("upload", "a/img")),
        ("/v2/a/img/blobs/uploads/1234", Route("upload", "a/img")),
        # a repository may be called "manifests": the last endpoint segment wins
        ("/v2/x/manifests/manifests/t", Route("manifest", "x/manifests", "t")),
        ("/v2/a/img/manifests/", Route("unknown")),
        ("/elsewhere", Route("unknown")),
    ],
)
def test_route(path: str, expected: Route) -> None:
    assert route(path) == expected


def test_names_and_digests() -> None:
    assert check_name("example-solution-1.0.0/base-server") is None
    assert check_name("a__b/c.d") is None
    for bad in ("UPPER/x", "-a/b", "a//b", "a/b/", "a" * 256):
        problem = check_name(bad)
        assert problem is not None and problem.code == "NAME_INVALID"
        assert problem.status == 400
    assert check_digest(DIGEST) is None
    assert check_digest("sha512:" + "b" * 128) is None  # valid syntax, even if we never hold it
    for bad in ("sha256:", "sha256:zz", "sha256:" + "A" * 64, "nocolon", "sha512:" + "b" * 64):
        bad_digest = check_digest(bad)
        assert bad_digest is not None and bad_digest.code == "DIGEST_INVALID"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-3", 10, (0, 3)),
        ("bytes=4-", 10, (4, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=5-100", 10, (5, 9)),
        ("bytes=9-9", 10, (9, 9)),
        ("bytes=10-", 10, UNSATISFIABLE),
        ("bytes=10-20", 10, UNSATISFIABLE),
        ("bytes=-0", 10, UNSATISFIABLE),
        ("bytes=0-", 0, UNSATISFIABLE),
        ("bytes=0-1,3-4", 10, None),  # several ranges: send the whole blob
        ("items=0-1", 10, None),
        ("bytes=5-2", 10, None),
        ("bytes=a-b", 10, None),
        ("bytes=-", 10, None),
        ("bytes 0-1", 10, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


def test_paginate() -> None:
    items = ["a", "b", "c", "d"]
    assert paginate(items, None, None) == (items, None)
    assert paginate(items, "2", None) == (["a", "b"], "b")
    assert paginate(items, "2", "b") == (["c", "d"], None)
    assert paginate(items, "10", "a") == (["b", "c", "d"], None)
    assert paginate(items, "0", None) == ([], None)
    assert paginate(items, None, "d") == ([], None)
    assert paginate(items, None, "bb") == (["c", "d"], None)  # last need not exist
    problem = paginate(items, "-1", None)
    assert isinstance(problem, RegistryProblem) and problem.status == 400


def test_problem_body_is_the_spec_shape() -> None:
    problem = RegistryProblem(404, "BLOB_UNKNOWN", "blob x is not in repository y")
    assert json.loads(problem.body()) == {
        "errors": [{"code": "BLOB_UNKNOWN", "message": "blob x is not in repository y"}]
    }


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert parse_listen(":5000") == ("", 5000)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("localhost", "host:port", "h:70000"):
        with pytest.raises(InvalidInput, match="HOST:PORT"):
            parse_listen(bad)


def _file(tmp_path: Path) -> ArchiveFile:
    path = tmp_path / "f.iso"
    path.write_bytes(b"x")
    return ArchiveFile(path, path.open("rb"), (0,))


def test_index_limits_each_repository_to_its_own_blobs(
    built_archive: Callable[[], Path], tmp_path: Path
) -> None:
    iso = built_archive()
    catalog = load_catalog(iso)
    index = build_index([(catalog, _file(tmp_path))])
    assert index.names() == catalog.repositories()
    base = index.lookup("example-solution-1.0.0/base-server")
    operator = index.lookup("example-solution-1.0.0/example-solution-operator")
    assert isinstance(base, Repository) and isinstance(operator, Repository)
    base_manifest = base.manifest("1.0.0")
    assert base_manifest is not None
    assert base.manifest(base_manifest.digest) == base_manifest
    # the operator's manifest is not served under base-server, though both are in the archive
    operator_manifest = operator.manifest("1.0.0")
    assert operator_manifest is not None
    assert base.manifest(operator_manifest.digest) is None
    assert set(base.blobs) < set(catalog.blobs)
    assert set(base.blobs) & set(operator.blobs)  # the shared layer


def test_lookup_explains_unavailable_archives(tmp_path: Path) -> None:
    index = build_index(
        [],
        [
            Unavailable("/isos/a-1.0.0.iso", "is missing; re-import it", "a-1.0.0"),
            Unavailable("/isos/renamed.iso", "is missing; re-import it"),
        ],
    )
    known = index.lookup("a-1.0.0/img")
    assert isinstance(known, RegistryProblem)
    assert (known.status, known.code) == (404, "NAME_UNKNOWN")
    assert "/isos/a-1.0.0.iso is missing" in known.message
    other = index.lookup("b-1.0.0/img")
    assert isinstance(other, RegistryProblem) and "/isos/renamed.iso" in other.message
    assert "/isos/a-1.0.0.iso" not in other.message
    plain = build_index([]).lookup("b-1.0.0/img")
    assert isinstance(plain, RegistryProblem)
    assert plain.message == "repository b-1.0.0/img is not known"


def test_archive_file_closes_after_last_user(tmp_path: Path) -> None:
    archive = _file(tmp_path)
    archive.acquire()
    archive.retire()
    assert not archive.closed  # a transfer is still running
    archive.release()
    assert archive.closed
    with pytest.raises(ValueError, match="no longer served"):
        archive.acquire()
    idle = ArchiveFile(tmp_path / "g", io.BytesIO(b""), (0,))  # type: ignore[arg-type]
    idle.retire()
    assert idle.closed


def test_metrics_render() -> None:
    metrics = RegistryMetrics()
    metrics.record("a/b", 200, 100)
    metrics.record("a/b", 200, 50)
    metrics.record("-", 404, 0)
    metrics.archives_served = 1
    text = metrics.render()
    assert 'solutions_registry_requests_total{repository="a/b",status="200"} 2' in text
    assert 'solutions_registry_requests_total{repository="-",status="404"} 1' in text
    assert 'solutions_registry_bytes_sent_total{repository="a/b"} 150' in text
    assert 'solutions_registry_archives{state="served"} 1' in text
    assert text.endswith("\n")
