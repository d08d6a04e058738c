"""Keep-alive HTTP/1.1 connections by origin, for the fetcher's direct requests.

Theory of operation
-------------------
This is what httpcore's ``AsyncConnectionPool`` did for the crawler, without the part the
crawler does not need. The engine already bounds how many requests are in flight (its
limiters), so nothing here waits for a free slot: a request takes an idle connection to its
origin if there is one, or opens a new one. The pool instead queues every request and, on
every request and every response close, scans its connections to assign them
(encode/httpcore#1035). That bookkeeping was about a third of httpcore's CPU per request:
``scripts/bench_http.py`` (nginx, 16 tasks, 4,000 requests) measured the pool at 536-633 µs
of CPU per request and a bare ``AsyncHTTPConnection`` at 387-449.

The connections are httpcore's own public ``AsyncHTTPConnection`` objects: connecting
(through the fetcher's guarded backend), TLS with ALPN ``http/1.1``, the HTTP/1.1 exchange
with h11, keep-alive expiry and the check that the server has not closed an idle connection
(``has_expired``) are all httpcore's, exactly as inside its pool.

* A connection is *busy* from the request until its response is closed, then goes back to
  its origin's idle set if it can serve another request (``is_idle``), else it is dropped
  (httpcore has closed it: a ``Connection: close`` answer, a body left unread, an error).
* Taking an idle connection checks ``has_expired()`` (keep-alive expiry, or the server hung
  up): an expired one is closed and the next is tried. The most recently used goes first.
* At most ``max_idle`` idle connections are kept crawl-wide; past that the least recently
  used is closed. Each take also closes the oldest idle connection once its keep-alive time
  is over, so connections to hosts the crawl has left do not hold descriptors for long.
* ``aclose()`` closes every connection, idle or busy.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import trio

#: An origin as httpcore spells it: scheme, host, port.
_Key = tuple[bytes, bytes, int]


class Connections:
    """Idle keep-alive connections by origin; see the module docstring."""

    def __init__(
        self,
        backend: httpcore.AsyncNetworkBackend,
        *,
        ssl_context: ssl.SSLContext,
        max_idle: int,
        keepalive_expiry: float,
    ) -> None:
        self._backend = backend
        self._ssl_context = ssl_context
        self._max_idle = max(1, max_idle)
        self._expiry = keepalive_expiry
        # per origin, an ordered set (dict) of idle connections; and all idle ones, oldest first
        self._idle: dict[_Key, dict[httpcore.AsyncHTTPConnection, None]] = {}
        self._lru: dict[httpcore.AsyncHTTPConnection, tuple[_Key, float]] = {}
        self._busy: set[httpcore.AsyncHTTPConnection] = set()
        self._closed = False

    def idle_count(self) -> int:
        return len(self._lru)

    def busy_count(self) -> int:
        return len(self._busy)

    async def exchange(self, request: httpcore.Request) -> httpcore.Response:
        """Send ``request`` on a connection to its origin; the response's close releases it."""
        if self._closed:
            raise RuntimeError("connections are closed")
        url = request.url
        key: _Key = (url.scheme, url.host, url.port or (443 if url.scheme == b"https" else 80))
        conn = await self._take(key)
        if conn is None:
            conn = httpcore.AsyncHTTPConnection(
                httpcore.Origin(*key),
                ssl_context=self._ssl_context,
                keepalive_expiry=self._expiry,
                network_backend=self._backend,
            )
        self._busy.add(conn)
        try:
            response = await conn.handle_async_request(request)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._release(key, conn)
            raise
        response.stream = _Releasing(response.stream, self, key, conn)
        return response

    async def _take(self, key: _Key) -> httpcore.AsyncHTTPConnection | None:
        lru = self._lru
        if lru:
            # the oldest idle connection goes once its keep-alive time is over (O(1))
            oldest = next(iter(lru))
            if time.monotonic() - lru[oldest][1] > self._expiry:
                await self._drop(oldest)
        idle = self._idle.get(key)
        while idle:
            conn, _ = idle.popitem()  # the most recently used
            del lru[conn]
            if not idle:
                del self._idle[key]
            if conn.has_expired():
                await _close(conn)
                idle = self._idle.get(key)
                continue
            return conn
        return None

    async def _drop(self, conn: httpcore.AsyncHTTPConnection) -> None:
        key = self._lru.pop(conn)[0]
        idle = self._idle[key]
        del idle[conn]
        if not idle:
            del self._idle[key]
        await _close(conn)

    async def _release(self, key: _Key, conn: httpcore.AsyncHTTPConnection) -> None:
        self._busy.discard(conn)
        if conn.is_closed():
            return
        if self._closed or not conn.is_idle():
            await _close(conn)
            return
        self._idle.setdefault(key, {})[conn] = None
        self._lru[conn] = (key, time.monotonic())
        if len(self._lru) > self._max_idle:
            await self._drop(next(iter(self._lru)))

    async def aclose(self) -> None:
        self._closed = True
        conns = [*self._lru, *self._busy]
        self._idle.clear()
        self._lru.clear()
        self._busy.clear()
        for conn in conns:
            await _close(conn)


async def _close(conn: httpcore.AsyncHTTPConnection) -> None:
    """Close a connection; one that is already broken changes nothing."""
    with contextlib.suppress(httpcore.NetworkError, httpcore.ProtocolError, OSError):
        await conn.aclose()


class _Releasing:
    """A response body that gives its connection back when the response is closed."""

    __slots__ = ("_conn", "_key", "_owner", "_released", "_stream")

    def __init__(
        self, stream: Any, owner: Connections, key: _Key, conn: httpcore.AsyncHTTPConnection
    ) -> None:
        self._stream = stream
        self._owner = owner
        self._key = key
        self._conn = conn
        self._released = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        it: AsyncIterator[bytes] = self._stream.__aiter__()
        return it

    async def aclose(self) -> None:
        try:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()
        finally:
            if not self._released:
                self._released = True
                with trio.CancelScope(shield=True):
                    await self._owner._release(self._key, self._conn)
