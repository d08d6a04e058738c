"""Content-Encoding decoders whose output is bounded (pure, synchronous).

httpx's own decoders turn a whole network chunk into output with no limit: 64 KiB of gzip can
become 64 MiB, a few hundred bytes of brotli hundreds of MiB. The fetcher reads the raw stream
and feeds it here; every decoder stops producing once ``limit`` decoded bytes exist, so a
compression bomb costs at most ``limit`` bytes of memory plus one bounded step.

Only the encodings decoded here are advertised in ``Accept-Encoding``. An unknown encoding,
or a corrupt stream, raises :class:`DecodeError`.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli
import zstandard

#: What the fetcher advertises: each of these is decoded with an output bound.
ACCEPT_ENCODING = "gzip, deflate, br, zstd"

# zstd can expand an RLE block of 4 bytes into 128 KiB: feed it in pieces so small that one
# call cannot overshoot the remaining budget by more than this ratio allows.
_ZSTD_MAX_RATIO = 32_768
_STEP = 64 * 1024


class DecodeError(Exception):
    """The body cannot be decoded (unknown Content-Encoding, corrupt data)."""


class Decoder(Protocol):
    def feed(self, data: bytes, budget: int) -> bytes:
        """Decode ``data``; return at most ``budget`` more bytes (plus one bounded step)."""
        ...

    def flush(self, budget: int) -> bytes: ...


class _Identity:
    def feed(self, data: bytes, budget: int) -> bytes:
        return data[:budget] if len(data) > budget else data

    def flush(self, budget: int) -> bytes:
        return b""


class _Zlib:
    def __init__(self, wbits: int, *, deflate: bool = False) -> None:
        self._obj = zlib.decompressobj(wbits)
        self._deflate = deflate
        self._started = False

    def feed(self, data: bytes, budget: int) -> bytes:
        if budget <= 0:
            return b""
        if self._deflate and not self._started:
            # "deflate" is zlib-wrapped by the RFC but raw deflate in the wild: try both.
            self._started = True
            try:
                probe = zlib.decompressobj(zlib.MAX_WBITS)
                out = probe.decompress(data, budget)
                self._obj = probe
                return out
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            out = self._obj.decompress(data, budget)
        except zlib.error as exc:
            raise DecodeError(f"corrupt compressed body: {exc}") from None
        return out

    def flush(self, budget: int) -> bytes:
        if budget <= 0:
            return b""
        try:
            # unconsumed_tail holds input not yet decoded because of the budget
            return self._obj.decompress(self._obj.unconsumed_tail, budget)
        except zlib.error as exc:
            raise DecodeError(f"corrupt compressed body: {exc}") from None


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes, budget: int) -> bytes:
        if budget <= 0:
            return b""
        try:
            if not self._obj.can_accept_more_data():
                return bytes(self._obj.process(b"", output_buffer_limit=budget))
            return bytes(self._obj.process(data, output_buffer_limit=budget))
        except brotli.error as exc:
            raise DecodeError(f"corrupt brotli body: {exc}") from None

    def flush(self, budget: int) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        self._obj = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes, budget: int) -> bytes:
        out = bytearray()
        pos = 0
        try:
            while pos < len(data) and len(out) < budget:
                step = max(16, min(_STEP, (budget - len(out)) // _ZSTD_MAX_RATIO))
                out += self._obj.decompress(data[pos : pos + step])
                pos += step
        except zstandard.ZstdError as exc:
            raise DecodeError(f"corrupt zstd body: {exc}") from None
        return bytes(out[:budget])

    def flush(self, budget: int) -> bytes:
        return b""


def make_decoder(content_encoding: str | None) -> Decoder:
    """A decoder for a Content-Encoding header value (``gzip``, ``br``, ``identity``...).

    Several codings (``gzip, br``) are not supported: nobody sends them and each layer would
    need its own bound. Raises :class:`DecodeError` for anything not decoded here.
    """
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return _Identity()
    if coding in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Zlib(zlib.MAX_WBITS, deflate=True)
    if coding == "br":
        return _Brotli()
    if coding == "zstd":
        return _Zstd()
    raise DecodeError(f"unsupported Content-Encoding {content_encoding!r}")
