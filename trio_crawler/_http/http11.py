"""One keep-alive HTTP/1.1 connection for the direct requests: llhttp's parser over a stream.

Theory of operation
-------------------
Each response head is cut from the stream at its blank line (:func:`.framing.head_end`) and
parsed by llhttp (Node.js's HTTP parser, through ``httptools``): the status line, the header
fields, and whether the connection may carry another request. llhttp is given exactly one
head and never a body byte: the body's framing (``Content-Length``, chunked, or to the
close) is read here and in :mod:`.framing`, where llhttp cannot read what browsers and curl
read. The request, a GET without a body, is written here; its target and header fields are
checked first, so nothing a page or a spider supplies can split it. Errors are httpcore's
(``RemoteProtocolError``, ``ReadError``, ``ReadTimeout``, ...), so the fetcher translates
them as it does the proxy pools'.

Why not h11, which httpcore uses: in pure Python it costs about 85 µs of CPU per exchange of
an 18 KB page (a request and a response, parsed whole), llhttp about 5, and at 1,000 pages a
second that difference is a tenth of the crawler's CPU. Why not httpcore's connection around
h11: it adds a Trio lock per request, trace hooks and an async generator per body.

States: ``NEW`` until the first request, ``ACTIVE`` from a request until its response is
closed, then ``IDLE`` if the response was read to its end, the server keeps the connection
alive (``should_keep_alive``: HTTP/1.1 without ``Connection: close``, or HTTP/1.0 with
``keep-alive``) and sent nothing after it; else ``CLOSED``: a body left unread, an error, a
cancellation.

* The request is written in one piece. A write error is not fatal yet: a server may answer
  (and hang up) before it reads the request, so the answer is read anyway.
* A server that closes before any answer raises :class:`PeerClosed` (a
  ``RemoteProtocolError``: "Server disconnected without sending a response.", as httpcore
  says). On a reused connection, a close or a
  reset before the first byte of the answer raises :class:`StaleConnection` (a subclass):
  the server closed the idle connection as the request went out (keep-alive races are
  part of HTTP/1.1), so the request, a GET, can be sent again on a new connection.
* A close before the end of the head or of a framed body is a :class:`PeerClosed` (a reset
  for the fetcher); a body framed by the close ends there. Any other error in the answer
  is a plain ``RemoteProtocolError`` (a protocol failure).

What is accepted, as browsers and curl accept it:

* Lines may end with a bare LF, in the head and in the chunked framing (llhttp wants CRLF
  unless told, and cannot be told for chunk-size lines). CR and LF before a status line are
  skipped.
* A head llhttp refuses is read once more as :func:`.framing.normalized_head` rewrites it:
  obs-fold lines unfolded; ``Content-Length`` repeated with one value (twice, or ``5, 5``)
  made one field. Conflicting lengths, or a length with ``Transfer-Encoding``, stay errors.
* Chunk extensions and trailer fields are read and dropped (a ``Content-Length`` trailer
  too); each chunk-size line and the trailer section are bounded like the head.
* ``1xx`` answers are skipped; they have no body (RFC 9110, section 15.2): what follows
  their head is the next head, so no byte of theirs can reach the final response. A ``101``
  is a protocol error (the crawler never asks for an ``Upgrade``), and so is a status below
  100 (llhttp reads any three digits). A response head over 100 KiB is a protocol error
  (httpcore's limit), interim heads included; so is anything that does not start with
  ``HTTP/``.
* ``has_expired()``: the keep-alive time is over, or the idle socket is readable (which
  can only be the server hanging up).

Every byte read for a response, head and framing included, is counted in the response's
``extensions[RECEIVED].received``: the fetcher bounds what it reads off the wire by it.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any, Protocol

import httpcore
import httptools

from .framing import MAX_HEAD, ChunkedBody, FramingError, head_end, normalized_head

_NEW, _ACTIVE, _IDLE, _CLOSED = range(4)

#: Bytes asked of the stream per read.
READ_SIZE = 64 * 1024
#: The extension of a response that counts the bytes read for it (``.received``).
RECEIVED = "trio_crawler.received"

# how a body ends
_EMPTY, _LENGTH, _CHUNKED, _CLOSE = range(4)
_LINE_ENDS = (b"\r", b"\n")

# RFC 9110: a field name is a token; a value is visible ASCII, obs-text, spaces and tabs (no
# CR, LF or NUL), without leading or trailing whitespace. A request target: visible ASCII.
_NAME_OK = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_VALUE_OK = re.compile(
    rb"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
).fullmatch
_TARGET_OK = re.compile(rb"[\x21-\x7e]+").fullmatch

#: A request extension, a :class:`Pace`: the crawl's politeness at send time, whatever the
#: connection.
PACE = "trio_crawler.pace"


class Pace(Protocol):
    """A request's turn at its host. Awaited once per request right before it is written;
    :meth:`sent` is called once the write returned. Between the two the write may yield to
    other tasks (a TLS stream takes a lock), so a host's next request is spaced from
    ``sent``, the moment the request is certainly on the wire, not from the end of the wait.
    A request sent again (a stale keep-alive connection) does not wait twice.

    :meth:`ready` waits for the turn without taking it: a request that would otherwise open
    a second connection to a busy host waits there first (see :mod:`.connections`), and
    still takes its turn right before the write, once its connection is ready (a handshake
    can take longer than a delay, and another request of the host may go first)."""

    async def __call__(self) -> None: ...

    async def ready(self) -> None: ...

    def sent(self) -> None: ...


class PeerClosed(httpcore.RemoteProtocolError):
    """The server closed (or reset) the connection before the response was complete:
    failure kind ``reset``."""


class StaleConnection(PeerClosed):
    """A reused keep-alive connection was closed by the server before any answer."""


#: Header fields that passed the check (a crawl sends the same few again and again), so each
#: is checked once; cleared when full.
_CHECKED: set[tuple[bytes, bytes]] = set()
_CHECKED_MAX = 4096


def request_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The bytes of a request head; ``httpcore.LocalProtocolError`` for a target or a header
    field that could change the request's meaning (a CR, LF or space where it may not be)."""
    if not _TARGET_OK(target):
        raise httpcore.LocalProtocolError(f"illegal request target {target!r}")
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    checked = _CHECKED
    for field in headers:
        name, value = field
        if field not in checked:
            if not _NAME_OK(name) or not _VALUE_OK(value):
                raise httpcore.LocalProtocolError(f"illegal header field {name!r}: {value!r}")
            if len(checked) >= _CHECKED_MAX:
                checked.clear()
            checked.add(field)
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class ParsedResponse(httpcore.Response):
    """An ``httpcore.Response`` of a head this module parsed, whose fields are bytes already:
    httpcore's own constructor checks every field again (2.6 us of each request)."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        stream: Any,
        extensions: dict[str, Any],
    ) -> None:
        self.status = status
        self.headers = headers
        self.stream = stream
        self.extensions = extensions
        self._stream_consumed = False


class _Head:
    """llhttp's callbacks for one response head (interim or final)."""

    __slots__ = (
        "complete",
        "headers",
        "keep_alive",
        "length",
        "parser",
        "reason",
        "status",
        "transfer_encoding",
        "version",
    )

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.status = 0
        self.version = ""
        self.complete = False  # llhttp reached the end of the head
        self.keep_alive = False  # the server keeps the connection open after the response
        self.length: bytes | None = None  # the Content-Length value
        self.transfer_encoding: bytes | None = None  # the last Transfer-Encoding value
        self.parser = httptools.HttpResponseParser(self)
        # lines ended by a bare LF, as h11 and browsers read them (some servers send them)
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self.length = value
        elif size == 17 and name.lower() == b"transfer-encoding":
            self.transfer_encoding = value

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.status = parser.get_status_code()
        self.version = parser.get_http_version()
        # asked here: llhttp resets its flags once the message is over (a 204 is, here)
        self.keep_alive = parser.should_keep_alive()
        self.complete = True

    def framing(self) -> int:
        """How the body ends: nothing, a length, the chunked coding, or the close."""
        if self.status == 204 or self.status == 304:
            return _EMPTY
        coding = self.transfer_encoding
        if coding is not None:  # llhttp refused it with a Content-Length
            last = coding.rpartition(b",")[2].strip(b" \t").lower()
            return _CHUNKED if last == b"chunked" else _CLOSE
        return _CLOSE if self.length is None else _LENGTH


def _parsed(head: bytes) -> _Head:
    result = _Head()
    try:
        result.parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        pass  # a 101: refused below
    except httptools.HttpParserError:
        if result.status != 101:  # llhttp pauses after a 101's head: refused below
            raise
    finally:
        del result.parser  # a reference cycle (the parser holds the callbacks) no more
    return result


def parse_head(head: bytes) -> _Head:
    """One whole response head (status line to blank line) by llhttp; a head llhttp refuses
    is read as :func:`.framing.normalized_head` rewrites it, if that changes anything.
    Raises ``httpcore.RemoteProtocolError``."""
    try:
        result = _parsed(head)
    except httptools.HttpParserError as exc:
        result = _reparsed(head, exc)
    if not result.complete:
        raise httpcore.RemoteProtocolError("incomplete response head")
    status = result.status
    if status < 100:
        raise httpcore.RemoteProtocolError(f"invalid status code {status:03d}")
    if status == 101:
        raise httpcore.RemoteProtocolError("switching protocols was never asked for")
    return result


def _reparsed(head: bytes, error: httptools.HttpParserError) -> _Head:
    fixed = normalized_head(head)
    if fixed is not None:
        with contextlib.suppress(httptools.HttpParserError):
            return _parsed(fixed)
    raise httpcore.RemoteProtocolError(str(error) or type(error).__name__) from None


def _refuse_partial_head(buf: bytes) -> None:
    """The stream closed within a head: llhttp's complaint about it, if it has one."""
    try:
        _parsed(buf)
    except httptools.HttpParserError as exc:
        raise httpcore.RemoteProtocolError(str(exc) or type(exc).__name__) from None


class Http11Connection:
    """A client HTTP/1.1 connection; see the module docstring."""

    __slots__ = ("_expire_at", "_expiry", "_state", "_stream")

    def __init__(self, stream: httpcore.AsyncNetworkStream, keepalive_expiry: float) -> None:
        self._stream = stream
        self._expiry = keepalive_expiry
        self._expire_at: float | None = None
        self._state = _NEW

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send ``request`` (no body) and read the response head; the body is read from
        the response's stream, and closing it settles the connection."""
        if self._state != _NEW and self._state != _IDLE:
            raise RuntimeError(f"the connection is not available (state {self._state})")
        reused = self._state == _IDLE
        self._state = _ACTIVE
        self._expire_at = None
        timeouts = request.extensions.get("timeout", {})
        data = request_head(request.method, request.url.target, request.headers)
        pace = request.extensions.get(PACE)
        if pace is not None:
            await pace()  # politeness at send time: the host's delay since its last request
        try:
            # a failed write is not the end: the server may have answered already, and hung up
            with contextlib.suppress(httpcore.WriteError):
                await self._stream.write(data, timeouts.get("write"))
        finally:
            if pace is not None:
                pace.sent()
        read_timeout = timeouts.get("read")
        # the head being read, and what came after it: the read itself when one read holds
        # it (the common case), else a bytearray (a dripped head costs no quadratic copying)
        buf: bytes | bytearray = b""
        received = 0
        heads = 0  # bytes of the heads passed over (interim answers, blank lines)
        searched = 0  # how much of buf was searched for the end of the head
        head = None
        while head is None:
            try:
                data = await self._stream.read(READ_SIZE, read_timeout)
            except httpcore.ReadError as exc:
                if reused and not received:
                    raise StaleConnection(str(exc)) from exc
                raise
            if not data:
                if received:
                    _refuse_partial_head(bytes(buf))
                    raise PeerClosed(
                        "peer closed connection without sending a complete response head"
                    )
                if reused:
                    raise StaleConnection("Server disconnected without sending a response.")
                raise PeerClosed("Server disconnected without sending a response.")
            received += len(data)
            if buf:
                buf += data
            else:
                buf = data
            while True:
                if not searched and buf[:1] in _LINE_ENDS:
                    # CR and LF before a status line are skipped (after a 100, some send one)
                    stripped = buf.lstrip(b"\r\n")
                    heads += len(buf) - len(stripped)
                    buf = stripped
                if not buf.startswith(b"HTTP/") and not b"HTTP/".startswith(buf[:5]):
                    raise httpcore.RemoteProtocolError("the answer is not an HTTP/1.x response")
                end = head_end(buf, searched)
                if heads + (len(buf) if end < 0 else end) > MAX_HEAD:
                    raise httpcore.RemoteProtocolError(f"response head over {MAX_HEAD} bytes")
                if end < 0:
                    searched = len(buf)
                    if isinstance(buf, bytes):
                        buf = bytearray(buf)
                    break
                parsed = parse_head(bytes(buf[:end]))
                buf = buf[end:]
                searched = 0
                if parsed.status >= 200:
                    head = parsed
                    break
                heads += end  # an interim answer (1xx), passed over with its fields
        body = _Body(self, head, bytes(buf), received, read_timeout)
        return ParsedResponse(
            head.status,
            head.headers,
            body,
            {
                "http_version": b"HTTP/" + head.version.encode("ascii"),
                "reason_phrase": head.reason,
                "network_stream": self._stream,
                RECEIVED: body,
            },
        )

    def _reusable_after(self, body: _Body) -> bool:
        return self._state == _ACTIVE and body.complete and body.keep_alive and not body.extra

    def _now_idle(self) -> None:
        self._state = _IDLE
        self._expire_at = time.monotonic() + self._expiry

    async def _response_closed(self, body: _Body) -> None:
        if self._reusable_after(body):
            self._now_idle()
        elif self._state != _CLOSED:
            await self.aclose()

    async def aclose(self) -> None:
        self._state = _CLOSED
        await self._stream.aclose()

    def close_now(self) -> bool:
        """Close an idle connection without awaiting, when its stream can (a plain one:
        :meth:`~.backend.PlainStream.close_now`); False when :meth:`aclose` must run."""
        close = getattr(self._stream, "close_now", None)
        if self._state != _IDLE or close is None or not close():
            return False
        self._state = _CLOSED
        return True

    def is_idle(self) -> bool:
        return self._state == _IDLE

    def is_closed(self) -> bool:
        return self._state == _CLOSED

    def has_expired(self) -> bool:
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        return self._state == _IDLE and bool(self._stream.get_extra_info("is_readable"))


class _Body:
    """A response body: an async iterator of payload chunks (no generator), framed by a
    length, the chunked coding or the close; ``aclose`` settles the connection.

    ``received``: every byte read for this response so far, head and framing included.
    """

    __slots__ = (
        "_chunked",
        "_closed",
        "_conn",
        "_framing",
        "_pending",
        "_remaining",
        "_timeout",
        "complete",
        "extra",
        "keep_alive",
        "received",
    )

    def __init__(
        self,
        conn: Http11Connection,
        head: _Head,
        pending: bytes,
        received: int,
        timeout: float | None,
    ) -> None:
        self._conn = conn
        self._timeout = timeout
        self._closed = False
        self._pending = pending  # bytes read with the head: the body's first
        self.received = received
        self.keep_alive = head.keep_alive
        self.complete = False
        self.extra = False  # bytes after the response: the connection cannot be reused
        self._framing = framing = head.framing()
        self._chunked = ChunkedBody() if framing == _CHUNKED else None
        self._remaining = 0
        if framing == _LENGTH:
            assert head.length is not None  # llhttp has checked it is a number
            self._remaining = int(head.length)
        if framing == _EMPTY or (framing == _LENGTH and not self._remaining):
            self.complete = True
            self.extra = bool(pending)
            self._pending = b""

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        while True:
            data = self._pending
            if data:
                self._pending = b""
            elif self.complete:
                raise StopAsyncIteration
            else:
                data = await self._conn._stream.read(READ_SIZE, self._timeout)
                if not data:
                    if self._framing == _CLOSE:
                        self.complete = True  # keep_alive is False: nothing to reuse
                        raise StopAsyncIteration
                    raise PeerClosed("peer closed connection without sending complete message body")
                self.received += len(data)
            payload = self._payload(data)
            if payload:
                return payload

    def _payload(self, data: bytes) -> bytes:
        framing = self._framing
        if framing == _LENGTH:
            remaining = self._remaining
            if len(data) < remaining:
                self._remaining = remaining - len(data)
                return data
            self._remaining = 0
            self.complete = True
            if len(data) > remaining:
                self.extra = True
                return data[:remaining]
            return data
        if framing == _CLOSE:
            return data
        chunked = self._chunked
        assert chunked is not None
        try:
            payload = chunked.feed(data)
        except FramingError as exc:
            raise httpcore.RemoteProtocolError(str(exc)) from None
        if chunked.done:
            self.complete = True
            self.extra = chunked.extra
        return payload

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._conn._response_closed(self)

    def close_nowait(self) -> bool:
        """Close a body read to its end on a connection that stays open, without awaiting
        (the common case: no cancel scope, no checkpoint); False when closing must await."""
        if self._closed:
            return True
        if self._conn._reusable_after(self):
            self._closed = True
            self._conn._now_idle()
            return True
        return False
