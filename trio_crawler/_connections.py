"""Keep-alive HTTP/1.1 connections by origin, for the fetcher's direct requests.

Theory of operation
-------------------
This is what httpcore's ``AsyncConnectionPool`` did for the crawler, without the part the
crawler does not need. The engine already bounds how many requests are in flight (its
limiters), so nothing here waits for a free slot: a request takes an idle connection to its
origin if there is one, or opens a new one. The pool instead queues every request and, on
every request and every response close, scans its connections to assign them
(encode/httpcore#1035). That bookkeeping is about a fifth of httpcore's CPU per request:
``scripts/bench_http.py`` (nginx, 16 tasks, 4,000 requests, 3 rounds) measured httpcore's
pool alone at 515-645 µs of CPU per request and one bare connection per task at 425-493; the
whole fetcher (guard, decoding, this module) at 413-538, where it was 530-643 through the
pools (interleaved runs of both versions).

The connections are :class:`~trio_crawler._http11.Http11Connection`: llhttp's parser over
the stream, with httpcore's errors and its keep-alive rules (expiry, and the check that the
server has not closed an idle connection, ``has_expired``); why, and the figures: its module
docstring. Opening one is what httpcore's ``AsyncHTTPConnection`` does
(:meth:`Connections._connect`): the fetcher's guarded backend dials, then TLS with ALPN
``http/1.1``.

* A connection is *busy* from the request until its response is closed, then goes back to
  its origin's idle set if it can serve another request (``is_idle``), else it is dropped
  (it has closed itself: a ``Connection: close`` answer, a body left unread, an error).
* A reused connection that the server closes before any answer (it closed the idle
  connection as the request went out: :class:`~trio_crawler._http11.StaleConnection`) is
  dropped and the request sent once more, on a new connection. Only once: a new connection
  closed the same way is the server's answer, and the fetcher's failure.
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

from ._http11 import Http11Connection, StaleConnection
from ._urls import _DEFAULT_PORTS

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
        ssl_context.set_alpn_protocols(["http/1.1"])
        self._ssl_context = ssl_context
        self._max_idle = max(1, max_idle)
        self._expiry = keepalive_expiry
        # per origin, an ordered set (dict) of idle connections; and all idle ones, oldest first
        self._idle: dict[_Key, dict[Http11Connection, None]] = {}
        self._lru: dict[Http11Connection, tuple[_Key, float]] = {}
        self._busy: set[Http11Connection] = set()
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
        key: _Key = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme.decode("ascii")])
        conn = await self._take(key)
        while True:
            if conn is None:
                conn = Http11Connection(await self._connect(key, request), self._expiry)
            self._busy.add(conn)
            try:
                response = await conn.handle_async_request(request)
            except StaleConnection:
                # the server closed this idle connection as the request went out: once
                # more, on a new connection (the request is a GET)
                with trio.CancelScope(shield=True):
                    await _close(conn)
                self._busy.discard(conn)
                conn = None
                continue
            except BaseException:
                doomed = self._settle(key, conn)
                if doomed is not None:
                    with trio.CancelScope(shield=True):
                        await _close(doomed)
                raise
            break
        response.stream = _Releasing(response.stream, self, key, conn)
        return response

    async def _connect(self, key: _Key, request: httpcore.Request) -> httpcore.AsyncNetworkStream:
        """A new connection to ``key``, TLS for https: as httpcore's ``AsyncHTTPConnection``
        connects (the connect timeout for both steps, SNI from the ``sni_hostname``
        extension or the host), HTTP/1.1 only."""
        scheme, host, port = key
        timeout = request.extensions.get("timeout", {}).get("connect")
        name = host.decode("ascii")
        stream = await self._backend.connect_tcp(name, port, timeout=timeout)
        if scheme != b"https":
            return stream
        try:
            sni = request.extensions.get("sni_hostname") or name
            return await stream.start_tls(self._ssl_context, server_hostname=sni, timeout=timeout)
        except BaseException:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise

    async def _take(self, key: _Key) -> Http11Connection | None:
        lru = self._lru
        if lru:
            # the oldest idle connection goes once its keep-alive time is over (O(1))
            oldest = next(iter(lru))
            if time.monotonic() - lru[oldest][1] > self._expiry:
                await _close(self._unlink(oldest))
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

    def _unlink(self, conn: Http11Connection) -> Http11Connection:
        """Take an idle connection out of the idle sets (the caller closes it)."""
        key = self._lru.pop(conn)[0]
        idle = self._idle[key]
        del idle[conn]
        if not idle:
            del self._idle[key]
        return conn

    def _settle(self, key: _Key, conn: Http11Connection) -> Http11Connection | None:
        """A busy connection is done: back to its origin's idle set if it can serve again.
        Returns the connection to close, if any (this one, or the least recently used)."""
        self._busy.discard(conn)
        if conn.is_closed():
            return None
        if self._closed or not conn.is_idle():
            return conn
        self._idle.setdefault(key, {})[conn] = None
        self._lru[conn] = (key, time.monotonic())
        if len(self._lru) > self._max_idle:
            return self._unlink(next(iter(self._lru)))
        return None

    async def aclose(self) -> None:
        self._closed = True
        conns = [*self._lru, *self._busy]
        self._idle.clear()
        self._lru.clear()
        self._busy.clear()
        for conn in conns:
            await _close(conn)


async def _close(conn: Http11Connection) -> None:
    """Close a connection; one that is already broken changes nothing."""
    with contextlib.suppress(httpcore.NetworkError, httpcore.ProtocolError, OSError):
        await conn.aclose()


class _Releasing:
    """A response body that gives its connection back when the response is closed."""

    __slots__ = ("_conn", "_key", "_owner", "_released", "_stream")

    def __init__(self, stream: Any, owner: Connections, key: _Key, conn: Http11Connection) -> None:
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
                # giving the connection back does not await; only a close does (shielded)
                doomed = self._owner._settle(self._key, self._conn)
                if doomed is not None:
                    with trio.CancelScope(shield=True):
                        await _close(doomed)
