"""The lean client's HTTP/1.1 answers: lengths, chunks, trailers, and what it refuses."""

from __future__ import annotations

import io

import pytest

from metalk8s_solutions.cluster.lean import MAX_HEADERS, _chunks, _exactly, _read_head


def test_head_status_and_headers() -> None:
    reader = io.BytesIO(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX-A:  b \r\n\r\n{}")
    assert _read_head(reader) == (404, {"content-length": "2", "x-a": "b"})
    assert _exactly(reader, 2) == b"{}"


def test_a_closed_connection_reads_as_none() -> None:
    assert _read_head(io.BytesIO(b"")) is None


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b",  # cut in the head
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * (MAX_HEADERS + 1) + b"\r\n",
    ],
)
def test_malformed_heads_are_refused(answer: bytes) -> None:
    with pytest.raises(ValueError):
        _read_head(io.BytesIO(answer))


def test_chunks_with_extensions_and_trailers() -> None:
    body = b'4;ext=1\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\nTrailer: x\r\n\r\nNEXT'
    reader = io.BytesIO(body)
    assert _chunks(reader) == b'{"a": 1}'
    assert reader.read() == b"NEXT"  # the connection is left at the next answer


@pytest.mark.parametrize(
    "body",
    [b"4\r\nab", b"2\r\nabXY", b"zz\r\n", b"2\r\nab\r\n0\r\nTrailer: x\r\n", b""],
)
def test_truncated_or_malformed_chunks_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        _chunks(io.BytesIO(body))


def test_exact_lengths() -> None:
    with pytest.raises(ValueError):
        _exactly(io.BytesIO(b"abc"), 4)
    with pytest.raises(ValueError):
        _exactly(io.BytesIO(b"abc"), -1)
