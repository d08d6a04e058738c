"""Content-Encoding decoders whose output is bounded (pure, synchronous).

httpx's own decoders turn a whole network chunk into output with no limit: 64 KiB of gzip can
become 64 MiB, a few hundred bytes of brotli hundreds of MiB. The fetcher reads the raw stream
and feeds it here; every decoder stops producing once ``budget`` decoded bytes exist, so a
compression bomb costs at most ``budget`` bytes of output plus one bounded step, and input it
could not decode yet is kept for the next call, never dropped.

Only the encodings decoded here are advertised in ``Accept-Encoding``. An unknown encoding,
several stacked encodings (``gzip, br``; ``identity`` in the list does not count), or a
corrupt stream raise :class:`DecodeError`.

What each decoder accepts, and why:

``gzip`` (``x-gzip``)
    Several members one after the other are decoded in turn (RFC 1952 allows it; ``cat a.gz
    b.gz`` makes one). Bytes after the last member that do not open a new one are ignored, as
    browsers do, and :attr:`Decoder.finished` turns true so the fetcher need not read them.
``deflate``
    The RFC says zlib-wrapped; some servers send raw deflate. The zlib header (two bytes whose
    value is a multiple of 31, method 8) decides, once two bytes have arrived: a first chunk of
    one byte does not fix the choice.
``br``
    brotli's ``output_buffer_limit`` is a soft limit (the output grows by blocks and may
    overshoot by a block), and ``process`` returns about 32 KiB a call even when it holds more:
    the decoder asks for small steps, drains with ``process(b"")``, and keeps what overshoots
    the budget for the next call. A stream declares its window (up to 16 MiB) in its first
    byte; large-window streams are refused.
``zstd``
    Every frame of a multi-frame stream is decoded. The window is capped at 8 MiB, the limit of
    RFC 9659 (section 3); a frame that asks for more is a :class:`DecodeError`, so a decoder
    never reserves more than that. zstandard's streaming object has no output limit, so input is
    fed in pieces small enough that even the largest expansion (an RLE block: a few bytes become
    128 KiB) stays within the remaining budget plus one step.
A stream cut short (the body ended before the encoded stream did) is not an error: what was
decoded is kept, as browsers do. The transport reports bodies cut short by the connection.

Memory: a brotli or zstd decoder touches its whole window as soon as it starts (17 MiB for a
16 MiB brotli window, even for 1 MiB of output). A decoder whose window is over
:data:`FREE_WINDOW` therefore holds its input (:attr:`Decoder.waiting`) until the caller has
reserved :attr:`Decoder.memory` and calls :meth:`Decoder.admit`; the fetcher reserves it in a
crawl-wide budget. A zstd stream is judged by its first frame: a later frame that wants a
larger window than was reserved (at least ``FREE_WINDOW``) is a :class:`DecodeError`.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli
import zstandard

#: What the fetcher advertises: each of these is decoded with an output bound.
ACCEPT_ENCODING = "gzip, deflate, br, zstd"

#: RFC 9659: zstd decoders must support, and encoders must not exceed, an 8 MB window.
ZSTD_MAX_WINDOW = 8 * 1024 * 1024
#: A decoder whose window is larger than this waits for :meth:`Decoder.admit` before it
#: decodes: the fetcher first reserves the window in a crawl-wide memory budget.
FREE_WINDOW = 1024 * 1024

# zstd can expand an RLE block of 4 bytes into 128 KiB: feed it in pieces so small that one
# call cannot overshoot the remaining budget by more than this ratio allows.
_ZSTD_MAX_RATIO = 32_768
_ZSTD_MIN_STEP = 16
_STEP = 64 * 1024
# brotli grows its output in blocks past output_buffer_limit: ask for this much at a time.
_BROTLI_STEP = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class DecodeError(Exception):
    """The body cannot be decoded (unknown Content-Encoding, corrupt data)."""


class Decoder(Protocol):
    """A bounded, incremental decoder for one response body."""

    @property
    def finished(self) -> bool:
        """True once the encoded stream has ended: any further input is ignored."""
        ...

    @property
    def memory(self) -> int:
        """Bytes of window this stream declared (0 until known, or when negligible)."""
        ...

    @property
    def waiting(self) -> bool:
        """True while the decoder holds its input until :meth:`admit` is called."""
        ...

    def admit(self) -> None:
        """The caller has reserved :attr:`memory`: decode."""
        ...

    def feed(self, data: bytes, budget: int) -> bytes:
        """Decode ``data``; return at most ``budget`` bytes. Input not yet decoded is kept."""
        ...

    def flush(self, budget: int) -> bytes:
        """At the end of the body: at most ``budget`` bytes still held back."""
        ...


class _NoWindow:
    """Decoders whose memory is small and fixed: nothing to reserve."""

    memory = 0
    waiting = False

    def admit(self) -> None:
        pass


class _Identity(_NoWindow):
    finished = False

    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes, budget: int) -> bytes:
        pending = self._held + data if self._held else data
        if len(pending) > budget:
            self._held = pending[max(budget, 0) :]
            return pending[: max(budget, 0)]
        self._held = b""
        return pending

    def flush(self, budget: int) -> bytes:
        return self.feed(b"", budget) if self._held else b""


def _is_zlib_header(head: bytes) -> bool:
    """RFC 1950: CM is 8 (deflate), CINFO at most 7, and CMF*256+FLG a multiple of 31."""
    cmf, flg = head[0], head[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf * 256 + flg) % 31 == 0


class _Zlib(_NoWindow):
    """gzip (with multiple members) or deflate (zlib-wrapped or raw), bounded (32 KiB window)."""

    def __init__(self, *, gzip: bool) -> None:
        self._gzip = gzip
        self._obj: zlib._Decompress | None = zlib.decompressobj(31) if gzip else None
        self._held = b""  # input not given to zlib yet (over budget, or too short to decide)
        self._between = False  # gzip: a member ended; is another one coming?
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, data: bytes, budget: int) -> bytes:
        if self._finished:
            return b""
        buf = self._held + data if self._held else data
        self._held = b""
        out: list[bytes] = []
        size = 0
        while buf and not self._finished:
            if self._between:
                if len(buf) < 2 and buf == _GZIP_MAGIC[:1]:
                    break  # the next member's magic may be split across chunks
                if buf[:2] != _GZIP_MAGIC:
                    self._finish()
                    buf = b""
                    break
                self._obj = zlib.decompressobj(31)
                self._between = False
            if self._obj is None:
                if len(buf) < 2:
                    break
                self._obj = zlib.decompressobj(15 if _is_zlib_header(buf) else -15)
            if size >= budget:
                break
            try:
                piece = self._obj.decompress(buf, budget - size)
            except zlib.error as exc:
                raise DecodeError(f"corrupt compressed body: {exc}") from None
            if piece:
                out.append(piece)
                size += len(piece)
            if self._obj.eof:
                buf = self._obj.unused_data
                if self._gzip:
                    self._between = True
                else:
                    self._finish()
                    buf = b""
            else:
                buf = self._obj.unconsumed_tail
        self._held = buf
        return b"".join(out)

    def _finish(self) -> None:
        self._finished = True
        self._obj = None
        self._held = b""

    def flush(self, budget: int) -> bytes:
        if self._held and not self._finished:
            return self.feed(b"", budget)
        return b""


def _brotli_window(first: int) -> int:
    """The window a brotli stream declares in its first byte (RFC 7932, section 9.1)."""
    if not first & 1:
        wbits = 16
    elif (first >> 1) & 7:
        wbits = 17 + ((first >> 1) & 7)
    elif (first >> 4) & 7 == 1:
        raise DecodeError("brotli large-window streams are not accepted")
    elif (first >> 4) & 7:
        wbits = 8 + ((first >> 4) & 7)
    else:
        wbits = 17
    return 1 << wbits


class _Brotli:
    def __init__(self) -> None:
        self._obj: brotli.Decompressor | None = None
        self._held = b""  # input not decoded yet (no admission, or output still to drain)
        self._extra = bytearray()  # output past the last budget (at most one step)
        self.memory = 0
        self._admitted = False

    @property
    def finished(self) -> bool:
        return self._obj is not None and bool(self._obj.is_finished()) and not self._extra

    @property
    def waiting(self) -> bool:
        return self.memory > FREE_WINDOW and not self._admitted

    def admit(self) -> None:
        self._admitted = True

    def feed(self, data: bytes, budget: int) -> bytes:
        if data and self.finished:
            return b""  # trailing bytes after the end of the stream are ignored
        pending = self._held + data if self._held else data
        self._held = b""
        if self._obj is None:
            if not pending:
                return b""
            self.memory = _brotli_window(pending[0])
            self._obj = brotli.Decompressor()
        if self.waiting:
            self._held = pending
            return b""
        out, self._extra = self._extra, bytearray()
        try:
            while len(out) < budget and not self._obj.is_finished():
                step = min(_BROTLI_STEP, budget - len(out))
                # process() returns at most ~32 KiB a call even when it has more: the rest
                # comes from process(b"") until that returns nothing
                if pending and self._obj.can_accept_more_data():
                    piece = self._obj.process(pending, output_buffer_limit=step)
                    pending = b""
                else:
                    piece = self._obj.process(b"", output_buffer_limit=step)
                    if not piece:
                        break
                out += piece
        except brotli.error as exc:
            raise DecodeError(f"corrupt brotli body: {exc}") from None
        self._held = pending
        return _cut(out, budget, self._extra)

    def flush(self, budget: int) -> bytes:
        return self.feed(b"", budget)


def _cut(out: bytearray, budget: int, extra: bytearray) -> bytes:
    """``out`` up to ``budget``; what is past it moves to ``extra`` for the next call."""
    budget = max(budget, 0)
    if len(out) > budget:
        extra += out[budget:]
        del out[budget:]
    return bytes(out)


class _Zstd:
    def __init__(self) -> None:
        self._obj: zstandard.ZstdDecompressionObj | None = None
        self._held = b""
        self._extra = bytearray()  # output past the last budget (bounded by one input step)
        self.memory = 0
        self._admitted = False

    finished = False

    @property
    def waiting(self) -> bool:
        return self.memory > FREE_WINDOW and not self._admitted

    def admit(self) -> None:
        self._admitted = True

    def _start(self, pending: bytes) -> bool:
        """Read the first frame's window; False while its header is incomplete."""
        try:
            window = zstandard.get_frame_parameters(pending).window_size
        except zstandard.ZstdError as exc:
            if "not enough data" in str(exc):
                return False
            raise DecodeError(f"corrupt zstd body: {exc}") from None
        if window > ZSTD_MAX_WINDOW:
            raise DecodeError(f"zstd window of {window} bytes is over the 8 MiB limit")
        # a skippable frame first says nothing: assume the largest window
        self.memory = window or ZSTD_MAX_WINDOW
        decompressor = zstandard.ZstdDecompressor(max_window_size=max(self.memory, FREE_WINDOW))
        self._obj = decompressor.decompressobj(read_across_frames=True)
        return True

    def feed(self, data: bytes, budget: int) -> bytes:
        pending = self._held + data if self._held else data
        self._held = b""
        if self._obj is None and (not pending or not self._start(pending)):
            self._held = pending
            return b""
        assert self._obj is not None
        if self.waiting:
            self._held = pending
            return b""
        out, self._extra = self._extra, bytearray()
        pos = 0
        try:
            while pos < len(pending) and len(out) < budget:
                step = max(_ZSTD_MIN_STEP, min(_STEP, (budget - len(out)) // _ZSTD_MAX_RATIO))
                out += self._obj.decompress(pending[pos : pos + step])
                pos += step
        except zstandard.ZstdError as exc:
            raise DecodeError(f"corrupt zstd body: {exc}") from None
        self._held = pending[pos:]
        return _cut(out, budget, self._extra)

    def flush(self, budget: int) -> bytes:
        return self.feed(b"", budget) if self._held or self._extra else b""


def make_decoder(content_encoding: str | None) -> Decoder:
    """A decoder for a Content-Encoding header value (``gzip``, ``br``, ``identity``...).

    ``identity`` in a list changes nothing (``gzip, identity`` is gzip, as browsers and curl
    read it). Several other codings (``gzip, br``) are not supported: nobody sends them and
    each layer would need its own bound. Raises :class:`DecodeError` for anything not
    decoded here.
    """
    coding = (content_encoding or "").strip().lower()
    if "," in coding:
        parts = (part.strip() for part in coding.split(","))
        codings = [c for c in parts if c and c != "identity"]
        if len(codings) > 1:
            raise DecodeError(f"unsupported Content-Encoding {content_encoding!r}")
        coding = codings[0] if codings else ""
    if coding in ("", "identity"):
        return _Identity()
    if coding in ("gzip", "x-gzip"):
        return _Zlib(gzip=True)
    if coding == "deflate":
        return _Zlib(gzip=False)
    if coding == "br":
        return _Brotli()
    if coding == "zstd":
        return _Zstd()
    raise DecodeError(f"unsupported Content-Encoding {content_encoding!r}")
