"""HTTP/1.1 framing as browsers read it (``_http/framing.py``): pure, without sockets."""

from __future__ import annotations

import pytest

from trio_crawler._http.framing import (
    MAX_HEAD,
    ChunkedBody,
    FramingError,
    head_end,
    normalized_head,
)

# ------------------------------------------------------------------ where a head ends


@pytest.mark.parametrize(
    ("head", "rest"),
    [
        (b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", b"body"),
        (b"HTTP/1.1 200 OK\nA: b\n\n", b"body"),
        (b"HTTP/1.1 200 OK\r\nA: b\n\r\n", b"body"),
        (b"HTTP/1.1 200 OK\nA: b\r\n\n", b"body"),
        (b"HTTP/1.1 200 OK\r\n\r\n", b""),
        # the first blank line ends the head, whichever line ends come first
        (b"HTTP/1.1 100 Continue\n\n", b"HTTP/1.1 200 OK\r\n\r\n"),
        (b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\n\n"),
    ],
)
def test_head_end(head: bytes, rest: bytes) -> None:
    assert head_end(head + rest) == len(head)


@pytest.mark.parametrize(
    "partial", [b"HTTP/1.1 200 OK\r\nA: b\r\n", b"HTTP/1.1 200 OK\r\nA: b\r\n\r", b""]
)
def test_no_head_end_yet(partial: bytes) -> None:
    assert head_end(partial) == -1


def test_head_end_across_reads() -> None:
    head = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"
    for split in range(1, len(head)):
        searched = 0
        buf = b""
        for piece in (head[:split], head[split:] + b"rest"):
            buf += piece
            end = head_end(buf, searched)
            if end >= 0:
                break
            searched = len(buf)
        assert end == len(head), split


# ------------------------------------------------------------------ heads llhttp refuses


def test_obs_fold_is_unfolded() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\n\tthree \r\nContent-Length: 5\r\n\r\n"
    assert normalized_head(head) == (
        b"HTTP/1.1 200 OK\r\nX-A: one two three\r\nContent-Length: 5\r\n\r\n"
    )


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: 5\r\ncontent-length: 5\r\n",
        b"Content-Length: 5, 5\r\n",
        b"Content-Length: 5,5\r\nContent-Length: 5\r\n",
    ],
)
def test_one_length_repeated_is_made_one_field(lengths: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nA: b\r\n" + lengths + b"C: d\r\n\r\n"
    assert normalized_head(head) == b"HTTP/1.1 200 OK\r\nA: b\r\nContent-Length: 5\r\nC: d\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded-into-the-status-line\r\n\r\n",
    ],
)
def test_nothing_to_normalize_or_conflicting_lengths(head: bytes) -> None:
    assert normalized_head(head) is None


# ------------------------------------------------------------------ the chunked coding


def chunked(*pieces: bytes, trailer: bytes = b"", eol: bytes = b"\r\n") -> bytes:
    body = b"".join(b"%x%s%s%s" % (len(p), eol, p, eol) for p in pieces)
    return body + b"0" + eol + trailer + eol


def read_all(data: bytes, step: int) -> tuple[bytes, ChunkedBody]:
    decoder = ChunkedBody()
    out = b""
    for i in range(0, len(data), step):
        out += decoder.feed(data[i : i + step])
    return out, decoder


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_chunked_in_any_split_and_with_bare_lf(step: int, eol: bytes) -> None:
    data = chunked(b"hello ", b"world" * 100, eol=eol)
    out, decoder = read_all(data, step)
    assert out == b"hello " + b"world" * 100
    assert decoder.done and not decoder.extra


def test_extensions_and_trailers_are_dropped() -> None:
    data = (
        b'5;name=value;x\r\nhello\r\n6 ; q="a;b"\r\n world\r\n0;last\r\n'
        b"Content-Length: 99\r\nX-Trailer: t\r\n\r\n"
    )
    out, decoder = read_all(data, 4)
    assert out == b"hello world" and decoder.done and not decoder.extra


def test_bytes_after_the_end_are_extra() -> None:
    decoder = ChunkedBody()
    assert decoder.feed(chunked(b"abc") + b"HTTP/1.1 200 OK\r\n") == b"abc"
    assert decoder.done and decoder.extra


def test_a_whole_chunk_in_one_read_is_not_copied() -> None:
    decoder = ChunkedBody()
    payload = b"x" * 1000
    assert decoder.feed(b"3e8\r\n") == b""
    assert decoder.feed(payload) is payload


@pytest.mark.parametrize(
    "data",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\rX0\r\n\r\n",
        b"1" * 16 + b"\r\n",
    ],
)
def test_bad_chunked_framing(data: bytes) -> None:
    with pytest.raises(FramingError):
        ChunkedBody().feed(data)


@pytest.mark.parametrize(
    ("prefix", "piece"),
    [
        (b"5;ext=", b"a" * 1000),  # an endless chunk extension
        (b"", b"0"),  # an endless run of leading zeros
        (b"5\r\nhello\r\n0\r\nX-Long: ", b"v" * 1000),  # an endless trailer value
        (b"5\r\nhello\r\n0\r\n", b"X-Field: v\r\n"),  # endless trailer fields
    ],
)
def test_chunk_lines_and_trailers_are_bounded_like_the_head(prefix: bytes, piece: bytes) -> None:
    decoder = ChunkedBody()
    fed = len(prefix)
    decoder.feed(prefix)
    with pytest.raises(FramingError, match="over"):
        while fed < 10 * MAX_HEAD:
            decoder.feed(piece)
            fed += len(piece)
    assert fed <= MAX_HEAD + 1000 + len(prefix)


def test_a_line_just_under_the_bound_is_fine() -> None:
    line = b"5;" + b"e" * (MAX_HEAD - 10) + b"\r\n"
    trailer = b"".join(b"X-F: %05d\r\n" % i for i in range(MAX_HEAD // 12))
    out, decoder = read_all(line + b"hello\r\n0\r\n" + trailer + b"\r\n", 999)
    assert out == b"hello" and decoder.done
