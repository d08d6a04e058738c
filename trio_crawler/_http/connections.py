"""Keep-alive HTTP/1.1 connections by route, for every request the fetcher sends.

Theory of operation
-------------------
This is what httpcore's ``AsyncConnectionPool`` did for the crawler, without the part the
crawler does not need. The engine already bounds how many requests are in flight (its
limiters), so nothing here waits for a free slot: a request takes an idle connection on its
*route* if there is one, or opens a new one. A route is where a connection goes: the
target's scheme, host and port, and the proxy it passes through (``""`` for none). How a
route's stream is opened (dialled through the address guard, tunnelled through a proxy, TLS)
is the transport's business: :class:`Connections` is given an ``open_stream`` function.
httpcore's pool instead queues every request and, on every request and every response
close, scans its connections to assign them (encode/httpcore#1035).

The connections are :class:`~.http11.Http11Connection`: llhttp's parser over the stream,
with httpcore's errors and its keep-alive rules (expiry, and the check that the server has
not closed an idle connection, ``has_expired``); why, and the figures: its module docstring.

* A connection is *busy* from the request until its response is closed, then goes back to
  its route's idle set if it can serve another request (``is_idle``), else it is dropped
  (it has closed itself: a ``Connection: close`` answer, a body left unread, an error).
* A reused connection that the server closes before any answer (it closed the idle
  connection as the request went out: :class:`~.http11.StaleConnection`) is dropped and
  the request sent once more, on a new connection. Only once: a new connection closed the
  same way is the server's answer, and the fetcher's failure.
* Taking an idle connection checks ``has_expired()`` (keep-alive expiry, or the server hung
  up): an expired one is closed and the next is tried. The most recently used goes first.
* At most ``max_idle`` idle connections are kept crawl-wide (``keepalive_connections``,
  4,096 by default, within the open-file limit); past that the least recently used is
  closed. A broad crawl comes back to a host every quarter second or more, while thousands
  of other hosts are visited: with one idle connection per host the next request finds it
  (with a bound of the concurrency plus a few, as before, the connection of a host was gone
  before its next request: 1.04 requests per connection over 2,000 hosts). Each take also
  closes the oldest idle connection once its keep-alive time is over, so connections to
  hosts the crawl has left do not hold descriptors for long.
* A request that finds no idle connection while one of its route's connections is busy
  waits until its host's turn comes (``Pace.ready``, see :data:`~.http11.PACE`) *before*
  it opens a new one, then looks for an idle connection again: the busy one is usually back
  by then (the host's delay is longer than its answers take). It takes the turn itself only
  right before its write, as every request does. Without this, a request that went out late
  after its claim kept its connection busy when the host's next request came, and the host
  got a second connection for nothing (2,085-2,185 connections for 2,000 hosts when the
  scheduler handed claims out in bursts).
* ``aclose()`` closes every connection, idle or busy; an idle plain connection (all of them,
  at a crawl's end) is closed without a checkpoint of its own (``close_now``), one checkpoint
  for them all.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import httpcore
import trio

from .http11 import PACE, Http11Connection, StaleConnection


class Route(NamedTuple):
    """Where a connection goes: the target's origin, and the proxy it passes through."""

    scheme: str
    host: str
    port: int
    via: str = ""  # the proxy's key (``ProxyTarget.key``), or "" for a direct connection


#: Opens a route's stream (dialled, tunnelled, TLS done) within a connect timeout.
OpenStream = Callable[[Route, "float | None"], Awaitable[httpcore.AsyncNetworkStream]]
_Key = Route


class Connections:
    """Idle keep-alive connections by route; see the module docstring."""

    def __init__(
        self,
        open_stream: OpenStream,
        *,
        max_idle: int,
        keepalive_expiry: float,
    ) -> None:
        self._open_stream = open_stream
        self._max_idle = max(0, max_idle)
        self._expiry = keepalive_expiry
        # per route, an ordered set (dict) of idle connections; and all idle ones, oldest first
        self._idle: dict[_Key, dict[Http11Connection, None]] = {}
        self._lru: dict[Http11Connection, tuple[_Key, float]] = {}
        # busy connections, with their route; and how many each route has
        self._busy: dict[Http11Connection, _Key] = {}
        self._busy_routes: dict[_Key, int] = {}
        self._closed = False

    def idle_count(self) -> int:
        return len(self._lru)

    def busy_count(self) -> int:
        return len(self._busy)

    async def exchange(self, key: Route, request: httpcore.Request) -> httpcore.Response:
        """Send ``request`` on a connection of route ``key``; the response's close releases
        the connection."""
        if self._closed:
            raise RuntimeError("connections are closed")
        conn = await self._take(key)
        if conn is None and key in self._busy_routes:
            pace = request.extensions.get(PACE)
            if pace is not None:
                # wait for the host's turn: its busy connection may be idle by then (the
                # turn is taken right before the write, on whichever connection)
                await pace.ready()
                conn = await self._take(key)
        while True:
            if conn is None:
                timeout = request.extensions.get("timeout", {}).get("connect")
                conn = Http11Connection(await self._open_stream(key, timeout), self._expiry)
            self._mark_busy(conn, key)
            try:
                response = await conn.handle_async_request(request)
            except StaleConnection:
                # the server closed this idle connection as the request went out: once
                # more, on a new connection (the request is a GET)
                with trio.CancelScope(shield=True):
                    await _close(conn)
                self._unmark_busy(conn)
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

    def _mark_busy(self, conn: Http11Connection, key: _Key) -> None:
        self._busy[conn] = key
        self._busy_routes[key] = self._busy_routes.get(key, 0) + 1

    def _unmark_busy(self, conn: Http11Connection) -> None:
        key = self._busy.pop(conn, None)
        if key is None:
            return
        left = self._busy_routes[key] - 1
        if left:
            self._busy_routes[key] = left
        else:
            del self._busy_routes[key]

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
        self._unmark_busy(conn)
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
        self._busy_routes.clear()
        for conn in conns:
            if not conn.close_now():
                await _close(conn)
        await trio.lowlevel.checkpoint()


async def _close(conn: Http11Connection) -> None:
    """Close a connection; one that is already broken changes nothing."""
    with contextlib.suppress(httpcore.NetworkError, httpcore.ProtocolError, OSError):
        await conn.aclose()


class _Releasing:
    """A response body that gives its connection back when the response is closed."""

    __slots__ = ("_conn", "_doomed", "_key", "_owner", "_released", "_stream")

    def __init__(self, stream: Any, owner: Connections, key: _Key, conn: Http11Connection) -> None:
        self._stream = stream
        self._owner = owner
        self._key = key
        self._conn = conn
        self._released = False
        self._doomed: Http11Connection | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        it: AsyncIterator[bytes] = self._stream.__aiter__()
        return it

    def close_nowait(self) -> bool:
        """Close the response and give the connection back without awaiting, when nothing
        needs closing (see ``_Body.close_nowait``); False when :meth:`aclose` must run."""
        close = getattr(self._stream, "close_nowait", None)
        if self._released or close is None or not close():
            return self._released
        self._released = True
        self._doomed = self._owner._settle(self._key, self._conn)
        return self._doomed is None

    async def aclose(self) -> None:
        try:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()
        finally:
            doomed, self._doomed = self._doomed, None
            if not self._released:
                self._released = True
                # giving the connection back does not await; only a close does (shielded)
                doomed = self._owner._settle(self._key, self._conn)
            if doomed is not None:
                with trio.CancelScope(shield=True):
                    await _close(doomed)
