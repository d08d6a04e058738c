"""HTTP/1.1 response framing, read as browsers read it (pure, synchronous).

llhttp (:mod:`.http11`) parses each response head; what it refuses and browsers and curl
accept is handled here, around it, and the body's framing is read here, not by llhttp:

* :func:`head_end` finds the blank line that ends a head (CRLF or bare LF line ends), so
  llhttp is given exactly one head and never a body byte.
* :func:`normalized_head` rewrites a head llhttp refused, the way browsers read it: obs-fold
  continuation lines unfolded (RFC 9112 section 5.2: each fold becomes a space), and a
  ``Content-Length`` repeated with one value (``Content-Length: 5`` twice, or
  ``Content-Length: 5, 5``) made one field (RFC 9110 section 8.6). Conflicting lengths stay
  an error.
* :class:`ChunkedBody` reads the chunked coding (RFC 9112 section 7.1): lines may end with a
  bare LF, chunk extensions are ignored, and the trailer section is read and dropped (a
  ``Content-Length`` in it changes nothing). Like the head, a chunk-size line (extensions
  included) and the trailer section are each bounded by :data:`MAX_HEAD` bytes: between two
  bytes of payload no more than that can be read (an endless extension or trailer field once
  read 149 MB in 15 s).

Every refusal raises :class:`FramingError`; :mod:`.http11` turns it into a protocol error.
"""

from __future__ import annotations

import re

#: The largest response head accepted (httpcore's limit); also the bound of one chunk-size
#: line and of a trailer section.
MAX_HEAD = 100 * 1024

_HEX = re.compile(rb"[0-9A-Fa-f]+").fullmatch
# a plain size line, whole: what nearly every server sends (anything else: the careful path)
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:;[^\r\n]*)?\r?\n").match
_BLANK_LINES = (b"\r\n", b"\n")
# a chunk size of 16 hex digits or more is over 2**60 bytes: nothing real
_MAX_SIZE_DIGITS = 15

_SIZE, _DATA, _DATA_END, _DATA_CR, _TRAILER, _DONE = range(6)


class FramingError(Exception):
    """The bytes cannot be the framing of an HTTP/1.1 response."""


def head_end(buf: bytes | bytearray, searched: int = 0) -> int:
    """The index just past the blank line that ends the head at the start of ``buf``, or -1.

    Lines end with CRLF or a bare LF, so the blank line is the first ``\\n\\r\\n`` or
    ``\\n\\n``. ``searched``: how much of ``buf`` an earlier call has searched already (the
    blank line may straddle that point).
    """
    begin = max(0, searched - 2)
    crlf = buf.find(b"\n\r\n", begin)
    # a bare "\n\n" can only come first if it starts before the "\n\r\n"
    lf = buf.find(b"\n\n", begin, crlf + 1 if crlf >= 0 else len(buf))
    if lf >= 0:
        return lf + 2
    return crlf + 3 if crlf >= 0 else -1


def normalized_head(head: bytes) -> bytes | None:
    """``head`` (one whole response head) with its obs-fold lines unfolded and a repeated
    ``Content-Length`` of one value made one field; None when there is nothing of the kind
    to change (then llhttp's refusal stands)."""
    lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
    out: list[bytes] = []
    changed = False
    for line in lines:
        if not line:
            if out:
                break  # the blank line that ends the head
            continue
        if line[0] in b" \t" and len(out) > 1:
            # obs-fold: the line continues the previous field's value
            out[-1] = out[-1].rstrip(b" \t") + b" " + line.strip(b" \t")
            changed = True
        else:
            out.append(line)
    lengths = [i for i, line in enumerate(out) if i and _name(line) == b"content-length"]
    if lengths:
        values = {
            value.strip(b" \t") for i in lengths for value in out[i].partition(b":")[2].split(b",")
        }
        if len(values) == 1 and (len(lengths) > 1 or b"," in out[lengths[0]]):
            (value,) = values
            out[lengths[0]] = b"Content-Length: " + value
            for i in reversed(lengths[1:]):
                del out[i]
            changed = True
    if not changed:
        return None
    return b"\r\n".join(out) + b"\r\n\r\n"


def _name(line: bytes) -> bytes:
    return line.partition(b":")[0].lower()


class ChunkedBody:
    """The chunked transfer coding, incrementally: :meth:`feed` returns the payload.

    ``done`` turns true after the last chunk and its trailer section; ``extra`` when bytes
    came after that (the connection cannot carry another response).
    """

    __slots__ = ("_line", "_line_size", "_remaining", "_state", "_trailer", "done", "extra")

    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0
        self._line: list[bytes] = []  # a line not ended yet, in pieces (no quadratic joins)
        self._line_size = 0
        self._trailer = 0  # bytes of the trailer section so far
        self.done = False
        self.extra = False

    def feed(self, data: bytes) -> bytes:
        """The payload in ``data``; raises :class:`FramingError`."""
        out: list[bytes] = []
        pos = 0
        end = len(data)
        state = self._state  # kept in locals in the loop: this is on every chunked response
        while pos < end:
            if state == _DATA:
                remaining = self._remaining
                take = remaining if remaining < end - pos else end - pos
                out.append(data if take == end else data[pos : pos + take])
                pos += take
                self._remaining = remaining = remaining - take
                if not remaining:
                    # the line end after the data, when it is here (the common case)
                    if data.startswith(b"\r\n", pos):
                        pos += 2
                        state = _SIZE
                    elif data.startswith(b"\n", pos):
                        pos += 1
                        state = _SIZE
                    else:
                        state = _DATA_END
            elif state == _SIZE:
                # the common case: a whole, plain size line (extensions allowed) in one piece
                match = None if self._line else _SIZE_LINE(data, pos)
                if match is not None and match.end() - pos <= MAX_HEAD:
                    pos = match.end()
                    self._remaining = size = int(match[1], 16)
                    state = _DATA if size else _TRAILER
                    continue
                line, pos = self._read_line(data, pos)
                if line is None:
                    if self._line_size > MAX_HEAD:
                        raise FramingError(f"a chunk-size line over {MAX_HEAD} bytes")
                    break
                self._remaining = size = _chunk_size(line)
                state = _DATA if size else _TRAILER
            elif state in (_DATA_END, _DATA_CR):
                byte = data[pos]
                pos += 1
                if byte == 0x0A:  # LF, after CR or bare
                    state = _SIZE
                elif byte == 0x0D and state == _DATA_END:
                    state = _DATA_CR
                else:
                    raise FramingError("chunk data not followed by a line end")
            elif state == _TRAILER:
                if not self._line and data.startswith(_BLANK_LINES, pos):
                    # no trailer, or its end (the common case)
                    pos += 2 if data[pos] == 0x0D else 1
                    state = _DONE
                    self.done = True
                    continue
                line, pos = self._read_line(data, pos)
                if line is None:
                    if self._trailer + self._line_size > MAX_HEAD:
                        raise FramingError(f"a trailer section over {MAX_HEAD} bytes")
                    break
                self._trailer += len(line) + 1
                if self._trailer > MAX_HEAD:
                    raise FramingError(f"a trailer section over {MAX_HEAD} bytes")
                if not line or line == b"\r":
                    state = _DONE
                    self.done = True
            else:  # _DONE: whatever follows is not part of this response
                self.extra = True
                break
        self._state = state
        if len(out) == 1:
            return out[0]
        return b"".join(out)

    def _read_line(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        """The line from ``pos`` (CR kept, LF dropped) and the position after it; or None
        and the end of ``data`` when the line goes on."""
        lf = data.find(b"\n", pos)
        if lf < 0:
            self._line.append(data[pos:])
            self._line_size += len(data) - pos
            return None, len(data)
        line = data[pos:lf]
        if self._line:
            line = b"".join(self._line) + line
            self._line = []
            self._line_size = 0
        return line, lf + 1


def _chunk_size(line: bytes) -> int:
    """The size on a chunk-size line (CR kept), extensions and whitespace around it ignored."""
    if len(line) > MAX_HEAD:
        raise FramingError(f"a chunk-size line over {MAX_HEAD} bytes")
    size = line.partition(b";")[0].strip(b" \t\r")
    if not _HEX(size):
        shown = line[:40].rstrip(b"\r")
        raise FramingError(f"invalid chunk size {shown!r}")
    if len(size.lstrip(b"0")) > _MAX_SIZE_DIGITS:
        raise FramingError("chunk size overflow")
    return int(size, 16)
