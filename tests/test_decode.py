"""The bounded Content-Encoding decoders (pure: no sockets)."""

from __future__ import annotations

import gzip
import random
import zlib

import brotli
import pytest
import zstandard
from hostile import MiB, bomb_chunks, content_encoding

from trio_crawler._http.decode import FREE_WINDOW, DecodeError, Decoder, make_decoder

TEXT = b"<p>" + b"".join(b"line %d of a page\n" % i for i in range(20_000)) + b"</p>"


def encode(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    if encoding == "deflate-raw":
        co = zlib.compressobj(6, zlib.DEFLATED, -15)
        return co.compress(data) + co.flush()
    if encoding == "br":
        return brotli.compress(data, lgwin=18)
    if encoding == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def decode_all(decoder: Decoder, pieces: list[bytes], limit: int, step: int = 65536) -> bytes:
    """Drive a decoder as the fetcher does: bounded steps, admission when it waits."""
    out: list[bytes] = []
    size = 0
    for piece in pieces:
        got = decoder.feed(piece, min(step, limit - size))
        if decoder.waiting:
            decoder.admit()
            got = decoder.feed(b"", min(step, limit - size))
        while got:
            assert len(got) <= min(step, limit - size)
            out.append(got)
            size += len(got)
            if size >= limit:
                return b"".join(out)
            got = decoder.feed(b"", min(step, limit - size))
    while size < limit and (tail := decoder.flush(min(step, limit - size))):
        out.append(tail)
        size += len(tail)
    return b"".join(out)


def split(data: bytes, rng: random.Random, *, max_piece: int = 5000) -> list[bytes]:
    pieces = []
    i = 0
    while i < len(data):
        n = rng.randint(1, max_piece)
        pieces.append(data[i : i + n])
        i += n
    return pieces


ENCODINGS = ["identity", "gzip", "deflate", "deflate-raw", "br", "zstd"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_round_trip_in_any_chunking(encoding: str) -> None:
    body = encode(TEXT, encoding)
    rng = random.Random(encoding)
    header = content_encoding(encoding)
    for max_piece in (1, 7, 5000, len(body)):
        pieces = split(body, rng, max_piece=max_piece) if max_piece < 50 else split(body, rng)
        if max_piece == 1:
            pieces = [*pieces[:3], b"".join(pieces[3:])]  # one-byte start, rest at once
        assert decode_all(make_decoder(header), pieces, 100 * MiB) == TEXT


@pytest.mark.parametrize(
    "encoding", ["gzip", "deflate", "deflate-raw", "br", "zstd", "zstd-frames"]
)
@pytest.mark.parametrize("limit", [1, 1000, 3 * MiB + 17])
def test_bomb_output_never_exceeds_the_budget(encoding: str, limit: int) -> None:
    stream = bomb_chunks(encoding, batch=8)
    decoder = make_decoder(content_encoding(encoding))
    out = decode_all(decoder, [next(stream) for _ in range(3)], limit)
    assert len(out) == limit and out == bytes(limit)


def test_gzip_members_are_all_decoded_and_trailing_garbage_ignored() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decode_all(make_decoder("gzip"), [body], MiB) == b"first second"
    # the second member's magic split across two chunks
    assert decode_all(make_decoder("gzip"), [body[:-26], body[-26:-25], body[-25:]], MiB) == (
        b"first second"
    )
    decoder = make_decoder("gzip")
    assert decode_all(decoder, [gzip.compress(b"page") + b"\r\n<garbage>"], MiB) == b"page"
    assert decoder.finished
    assert decoder.feed(b"more garbage" * 1000, MiB) == b""  # nothing kept, nothing raised


def test_deflate_raw_or_zlib_decided_on_two_bytes() -> None:
    for encoding in ("deflate", "deflate-raw"):
        body = encode(b"hello deflate", encoding)
        pieces = [body[:1], body[1:2], body[2:]]
        assert decode_all(make_decoder("deflate"), pieces, MiB) == b"hello deflate"


def test_zstd_multi_frame_and_window_limit() -> None:
    frames = encode(b"one ", "zstd") + encode(b"two", "zstd")
    assert decode_all(make_decoder("zstd"), [frames], MiB) == b"one two"
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=24)
    big = zstandard.ZstdCompressor(compression_params=params).compressobj()
    stream = big.compress(bytes(MiB)) + big.flush()
    with pytest.raises(DecodeError, match="window"):
        decode_all(make_decoder("zstd"), [stream], MiB)


def test_large_windows_wait_for_admission() -> None:
    decoder = make_decoder("br")
    stream = bomb_chunks("br")
    assert decoder.feed(next(stream), MiB) == b""
    assert decoder.waiting and decoder.memory == 1 << 24 > FREE_WINDOW
    decoder.admit()
    assert len(decoder.feed(b"", MiB)) == MiB
    small = make_decoder("br")
    assert small.feed(brotli.compress(b"x", lgwin=18), 10) == b"x"
    assert not small.waiting


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"<html>not gzip at all</html>"),
        ("gzip", gzip.compress(TEXT)[:40] + b"\xff" * 64),
        ("deflate", b"\x78\x9c" + b"\xff" * 64),
        ("br", b"\xff" * 64),
        ("zstd", b"\x28\xb5\x2f\xfd" + b"\xff" * 64),
        ("zstd", b"garbage garbage garbage"),
    ],
)
def test_corrupt_bodies_raise_decode_error(encoding: str, body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_all(make_decoder(encoding), [body], MiB)


@pytest.mark.parametrize("value", ["gzip, br", "compress", "x-foo", "gzip, gzip", "br;q=1"])
def test_unknown_or_stacked_encodings_are_refused(value: str) -> None:
    with pytest.raises(DecodeError, match="unsupported"):
        make_decoder(value)


def test_truncated_stream_keeps_what_was_decoded() -> None:
    body = gzip.compress(TEXT)
    out = decode_all(make_decoder("gzip"), [body[: len(body) // 2]], 100 * MiB)
    assert 0 < len(out) < len(TEXT) and TEXT.startswith(out)


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        ("gzip, identity", "gzip"),
        ("identity, gzip", "gzip"),
        ("identity,br", "br"),
        ("identity, identity", "identity"),
        (" , GZIP ,", "gzip"),
    ],
)
def test_identity_in_a_list_changes_nothing(value: str, encoding: str) -> None:
    body = encode(TEXT, encoding)
    assert decode_all(make_decoder(value), [body], 100 * MiB) == TEXT


@pytest.mark.parametrize("value", ["gzip, identity, br", "identity, x-foo"])
def test_identity_does_not_make_a_stack_or_an_unknown_coding_acceptable(value: str) -> None:
    with pytest.raises(DecodeError, match="unsupported"):
        make_decoder(value)
