"""One keep-alive HTTP/1.1 connection: h11 over a network stream, for the direct requests.

Theory of operation
-------------------
h11 is the protocol: it writes the request, parses the response head, frames the body
(``Content-Length``, chunked, or to the close) and says whether the connection can carry
another request. This module only moves bytes between h11 and the stream, as httpcore's
``AsyncHTTP11Connection`` does, with the same errors (``httpcore.RemoteProtocolError``,
``ReadError``, ``ReadTimeout``, ...) so the fetcher translates both alike. What it leaves
out is what the crawler never uses there, and costs on every request: a Trio lock around
each state change (the engine gives a connection to one task at a time), trace hooks,
request bodies, CONNECT and protocol upgrades, and an async generator per body.

States: ``NEW`` until the first request, ``ACTIVE`` from a request until its response is
closed, then ``IDLE`` if both sides finished the exchange cleanly (h11's ``DONE``), or
``CLOSED``: a ``Connection: close`` answer, a body left unread, an error, a cancellation.

* The request is written in one piece. A write error is not fatal yet: a server may answer
  (and hang up) before it reads the request, so the answer is read anyway.
* A server that closes before any answer raises ``RemoteProtocolError("Server disconnected
  without sending a response.")``, as httpcore does. On a reused connection, a close or a
  reset before the first byte of the answer raises :class:`StaleConnection` (a subclass):
  the server closed the idle connection as the request went out (keep-alive races are
  part of HTTP/1.1), so the request, a GET, can be sent again on a new connection.
* ``1xx`` answers are skipped. A ``101`` is a protocol error (h11's: the crawler never
  asks for an ``Upgrade``).
* A response head larger than 100 KiB is a protocol error (httpcore's limit).
* ``has_expired()``: the keep-alive time is over, or the idle socket is readable (which
  can only be the server hanging up).
"""

from __future__ import annotations

import contextlib
import time
from typing import cast

import h11
import httpcore

_NEW, _ACTIVE, _IDLE, _CLOSED = range(4)


class StaleConnection(httpcore.RemoteProtocolError):
    """A reused keep-alive connection was closed by the server before any answer."""


#: Bytes asked of the stream per read.
READ_SIZE = 64 * 1024
#: The largest response head accepted.
MAX_HEAD = 100 * 1024


class Http11Connection:
    """A client HTTP/1.1 connection; see the module docstring."""

    __slots__ = ("_expire_at", "_expiry", "_h11", "_state", "_stream")

    def __init__(self, stream: httpcore.AsyncNetworkStream, keepalive_expiry: float) -> None:
        self._stream = stream
        self._expiry = keepalive_expiry
        self._expire_at: float | None = None
        self._state = _NEW
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send ``request`` (no body) and read the response head; the body is read from
        the response's stream, and closing it settles the connection."""
        if self._state != _NEW and self._state != _IDLE:
            raise RuntimeError(f"the connection is not available (state {self._state})")
        reused = self._state == _IDLE
        self._state = _ACTIVE
        self._expire_at = None
        timeouts = request.extensions.get("timeout", {})
        conn = self._h11
        try:
            head = h11.Request(
                method=request.method, target=request.url.target, headers=request.headers
            )
            data = (conn.send(head) or b"") + (conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from exc
        # a failed write is not the end: the server may have answered already, and hung up
        with contextlib.suppress(httpcore.WriteError):
            await self._stream.write(data, timeouts.get("write"))
        read_timeout = timeouts.get("read")
        try:
            event = await self._next_event(read_timeout)
        except (httpcore.ReadError, httpcore.RemoteProtocolError) as exc:
            if reused and not conn.trailing_data[0] and conn.their_state is h11.SEND_RESPONSE:
                raise StaleConnection(str(exc)) from exc
            raise
        while type(event) is not h11.Response:  # 1xx: h11 refuses a 101 never asked for
            event = await self._next_event(read_timeout)
        return httpcore.Response(
            status=event.status_code,
            headers=event.headers.raw_items(),
            content=_Body(self, read_timeout),
            extensions={
                "http_version": b"HTTP/" + event.http_version,
                "reason_phrase": event.reason,
                "network_stream": self._stream,
            },
        )

    async def _next_event(
        self,
        timeout: float | None,  # noqa: ASYNC109  (per read, as httpcore's streams take it)
    ) -> h11.Event | type[h11.PAUSED]:
        conn = self._h11
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpcore.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return cast("h11.Event | type[h11.PAUSED]", event)  # mypy: not NEED_DATA
            data = await self._stream.read(READ_SIZE, timeout)
            if not data and conn.their_state is h11.SEND_RESPONSE:
                raise httpcore.RemoteProtocolError(
                    "Server disconnected without sending a response."
                )
            conn.receive_data(data)

    async def _response_closed(self) -> None:
        conn = self._h11
        if self._state == _ACTIVE and conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
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

    __slots__ = ("_closed", "_conn", "_done", "_timeout")

    def __init__(self, conn: Http11Connection, timeout: float | None) -> None:
        self._conn = conn
        self._timeout = timeout
        self._done = False
        self._closed = False

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        conn = self._conn
        while True:
            event = await conn._next_event(self._timeout)
            if type(event) is h11.Data:
                return bytes(event.data)
            if type(event) is h11.EndOfMessage or event is h11.PAUSED:
                self._done = True
                raise StopAsyncIteration

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._conn._response_closed()
