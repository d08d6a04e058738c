"""One keep-alive HTTP/1.1 connection for the direct requests: llhttp's parser over a stream.

Theory of operation
-------------------
The response is parsed by llhttp (Node.js's HTTP parser, through ``httptools``): the status
line, the header fields, the body's framing (``Content-Length``, chunked, or to the close)
and whether the connection may carry another request. The request, a GET without a body, is
written here; its target and header fields are checked first, so nothing a page or a spider
supplies can split it. Errors are httpcore's (``RemoteProtocolError``, ``ReadError``,
``ReadTimeout``, ...), so the fetcher translates them as it does the proxy pools'.

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
* Lines may end with a bare LF (h11 and browsers accept them; llhttp wants CRLF unless told).
* ``1xx`` answers are skipped; a ``101`` is a protocol error (the crawler never asks for an
  ``Upgrade``). A response head over 100 KiB is a protocol error (httpcore's limit).
* ``has_expired()``: the keep-alive time is over, or the idle socket is readable (which
  can only be the server hanging up).
"""

from __future__ import annotations

import contextlib
import re
import time

import httpcore
import httptools

_NEW, _ACTIVE, _IDLE, _CLOSED = range(4)

#: Bytes asked of the stream per read.
READ_SIZE = 64 * 1024
#: The largest response head accepted.
MAX_HEAD = 100 * 1024

# RFC 9110: a field name is a token; a value is visible ASCII, obs-text, spaces and tabs (no
# CR, LF or NUL), without leading or trailing whitespace. A request target: visible ASCII.
_NAME_OK = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_VALUE_OK = re.compile(
    rb"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
).fullmatch
_TARGET_OK = re.compile(rb"[\x21-\x7e]+").fullmatch


class PeerClosed(httpcore.RemoteProtocolError):
    """The server closed (or reset) the connection before the response was complete:
    failure kind ``reset``."""


class StaleConnection(PeerClosed):
    """A reused keep-alive connection was closed by the server before any answer."""


def request_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The bytes of a request head; ``httpcore.LocalProtocolError`` for a target or a header
    field that could change the request's meaning (a CR, LF or space where it may not be)."""
    if not _TARGET_OK(target):
        raise httpcore.LocalProtocolError(f"illegal request target {target!r}")
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not _NAME_OK(name) or not _VALUE_OK(value):
            raise httpcore.LocalProtocolError(f"illegal header field {name!r}: {value!r}")
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class _Exchange:
    """The parser's callbacks for one response (the interim 1xx ones are passed over)."""

    __slots__ = (
        "body",
        "complete",
        "extra",
        "head_done",
        "headers",
        "keep_alive",
        "parser",
        "reason",
        "status",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        # lines ended by a bare LF, as h11 and browsers read them (some servers send them)
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.status = 0
        self.head_done = False  # the final (non-1xx) response's head
        self.complete = False  # ... and its body
        self.extra = False  # bytes after the response: the connection cannot be reused
        self.keep_alive = False  # the server keeps the connection open after it
        self.body: list[bytes] = []

    # Once the response is complete, whatever follows it (llhttp reads it as another
    # message) only marks the connection as spoilt: it is never part of this response.

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True
            return
        self.headers = []
        self.reason = b""

    def on_status(self, reason: bytes) -> None:
        if not self.complete:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.head_done:  # after the head: trailer fields (or what follows), not kept
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self.head_done:
            status = self.parser.get_status_code()
            if status >= 200:  # a 1xx is passed over: its fields were only its own
                self.status = status
                self.head_done = True

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.head_done and not self.complete:
            self.complete = True
            # asked here: llhttp resets its flags once the message is over
            self.keep_alive = self.parser.should_keep_alive()

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise httpcore.RemoteProtocolError("switching protocols was never asked for") from None
        except httptools.HttpParserError as exc:
            if self.complete:  # something after the response: it stands, the connection not
                self.extra = True
                return
            raise httpcore.RemoteProtocolError(str(exc) or type(exc).__name__) from exc

    def framed_by_close(self) -> bool:
        """True when the body ends with the connection (no length, not chunked)."""
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length":
                return False
            if lowered == b"transfer-encoding" and value.lower().rstrip().endswith(b"chunked"):
                return False
        return True


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
        # a failed write is not the end: the server may have answered already, and hung up
        with contextlib.suppress(httpcore.WriteError):
            await self._stream.write(data, timeouts.get("write"))
        read_timeout = timeouts.get("read")
        exchange = _Exchange()
        received = 0
        while not exchange.head_done:
            try:
                data = await self._stream.read(READ_SIZE, read_timeout)
            except httpcore.ReadError as exc:
                if reused and not received:
                    raise StaleConnection(str(exc)) from exc
                raise
            if not data:
                if received:
                    raise PeerClosed(
                        "peer closed connection without sending a complete response head"
                    )
                if reused:
                    raise StaleConnection("Server disconnected without sending a response.")
                raise PeerClosed("Server disconnected without sending a response.")
            received += len(data)
            exchange.feed(data)
            if not exchange.head_done and received > MAX_HEAD:
                raise httpcore.RemoteProtocolError(f"response head over {MAX_HEAD} bytes")
        version = exchange.parser.get_http_version()
        return httpcore.Response(
            status=exchange.status,
            headers=exchange.headers,
            content=_Body(self, exchange, read_timeout),
            extensions={
                "http_version": b"HTTP/" + version.encode("ascii"),
                "reason_phrase": exchange.reason,
                "network_stream": self._stream,
            },
        )

    async def _response_closed(self, exchange: _Exchange) -> None:
        if (
            self._state == _ACTIVE
            and exchange.complete
            and exchange.keep_alive
            and not exchange.extra
        ):
            self._state = _IDLE
            self._expire_at = time.monotonic() + self._expiry
        elif self._state != _CLOSED:
            await self.aclose()

    async def aclose(self) -> None:
        self._state = _CLOSED
        await self._stream.aclose()

    def is_idle(self) -> bool:
        return self._state == _IDLE

    def is_closed(self) -> bool:
        return self._state == _CLOSED

    def has_expired(self) -> bool:
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        return self._state == _IDLE and bool(self._stream.get_extra_info("is_readable"))


class _Body:
    """A response body: an async iterator of chunks (no generator); ``aclose`` settles
    the connection."""

    __slots__ = ("_closed", "_conn", "_exchange", "_timeout")

    def __init__(
        self,
        conn: Http11Connection,
        exchange: _Exchange,
        timeout: float | None,
    ) -> None:
        self._conn = conn
        self._exchange = exchange
        self._timeout = timeout
        self._closed = False

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        exchange = self._exchange
        while True:
            body = exchange.body
            if body:
                exchange.body = []
                return body[0] if len(body) == 1 else b"".join(body)
            if exchange.complete:
                raise StopAsyncIteration
            data = await self._conn._stream.read(READ_SIZE, self._timeout)
            if not data:
                if exchange.framed_by_close():
                    exchange.complete = True  # keep_alive stays False: nothing to reuse
                    raise StopAsyncIteration
                raise PeerClosed("peer closed connection without sending complete message body")
            exchange.feed(data)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._conn._response_closed(self._exchange)
