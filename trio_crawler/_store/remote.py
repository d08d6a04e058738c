"""Several fetch processes sharing one crawl (``--processes N``).

Theory of operation
-------------------
The parent process runs the crawl as usual, with its store wrapped in a :class:`SharedStore`:
a :class:`~trio_crawler.CrawlStore` that delegates every call to the real store (``inner``:
a :class:`MemoryStore` or a :class:`SqliteStore`) and whose :meth:`SharedStore.open` also
listens on a Unix socket in a private temporary directory. Each worker process is a whole
engine (a :class:`~trio_crawler.Crawler`) whose store is a :class:`RemoteStore`: its calls
become messages to the parent, which applies them to ``inner``. So the frontier, politeness
(per-host delay and concurrency), dedupe, the outstanding count and the outputs stay in one
place: a host's delay holds across processes, each page is committed once, and the parent's
exporters write every item.

Wire format: frames of a 4-byte big-endian length and a pickle (between our own processes on
a socket only we can reach). A worker sends a frame holding a *batch* of calls ``(id, op,
args)``: the calls its tasks make while the previous frame is being written go out together.
The parent applies a batch's calls in order and answers them in one frame that also carries
the store's fresh figures (outstanding, queued, in flight, active hosts, the next ready time
as a delay from now since the two processes' Trio clocks differ, a change counter, the stop
flag and scope additions); the worker's synchronous methods read those cached figures.
``claim()`` uses the parent's clock. ``wait_changed()`` is a call the parent answers when the
store changed since the figures the worker last saw, when nothing is outstanding, when the
crawl stops, or at the deadline.

``seen_hint()`` in a worker knows the fingerprints this worker already sent (exact positives),
so each link crosses from one process at most once. robots.txt answers are kept in the parent
(:meth:`SharedStore.save_robots`): a worker reuses the first fetch of an origin. Two processes
that meet a new origin at the same moment may both fetch its robots.txt (harmless, once).

Termination: ``inner.outstanding()`` is exact and counts the workers' claims. Each engine ends
when it reads 0; a worker blocked in ``wait_changed()`` is answered when the count reaches 0.
A worker sends its final counters on exit and the parent adds them to its own (statistics are
crawl-wide). A stop of the parent (a limit, Ctrl-C) is sent to the workers with the figures:
they claim nothing more and finish what is in flight. The parent waits (bounded) for the
workers to say goodbye before its store closes. A worker that dies (its connection closes
without a goodbye) loses nothing: its claims go back to the frontier.

Load: each worker fetches with ``-c`` requests in flight; the parent with ``-c //``
:data:`PARENT_SHARE`, since its event loop also answers every worker's calls and a busy parent
slows them all.

The processes themselves (starting, waiting, killing) and what crosses to a worker are the
crawl's business: :mod:`trio_crawler._crawl.processes` and :mod:`trio_crawler._worker`. A
worker whose parent is gone sees its socket close and ends.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import os
import pickle
import shutil
import socket as _stdlib_socket
import struct
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import trio

from .._exceptions import CrawlerError
from .._spider import Request
from .base import Claim, CrawlStore, NewRequest

if TYPE_CHECKING:
    from .._export import Exporter
    from .._stats import Counters

log = logging.getLogger("trio_crawler.store.shared")

#: How long the parent waits for workers to finish and say goodbye after its own crawl ended.
WORKER_EXIT_SECONDS = 15.0
#: After that (or on cancellation), how long a worker process gets to exit before it is killed.
WORKER_KILL_SECONDS = 2.0
#: Extra claims a worker asks for when no host has a delay (one round trip saved each).
#: Measured on the benchmark (2 processes, -c 128, --state), three interleaved pairs: 7 gave
#: 722-751 pages/s, 32 gave 766-776. The parent is the busier process; fewer calls help.
_PREFETCH = 32

#: The most processes one crawl may have.
MAX_PROCESSES = 64

#: Fingerprints a worker keeps per generation (two generations) to skip URLs it sent already.
_SEEN_HINTS = 1 << 16

_HEADER = struct.Struct(">I")
_PICKLE = pickle.HIGHEST_PROTOCOL

# The figures every answer carries: outstanding, queued, in flight, active hosts, next ready
# time (seconds from now, or None), change counter, stopping, scope additions.
_Status = tuple[int, int, int, int, "float | None", int, bool, list[str]]


class _Framed:
    """Length-prefixed pickles over a stream. Sends are serialised by a lock."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buf = bytearray()
        self.lock = trio.Lock()

    async def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, _PICKLE)
        async with self.lock:
            await self.stream.send_all(_HEADER.pack(len(data)) + data)

    async def receive(self) -> Any:
        """The next object; EOFError when the peer closed the stream."""
        buf = self._buf
        while True:
            if len(buf) >= 4:
                (size,) = _HEADER.unpack_from(buf)
                if len(buf) >= 4 + size:
                    obj = pickle.loads(memoryview(buf)[4 : 4 + size])
                    del buf[: 4 + size]
                    return obj
            chunk = await self.stream.receive_some(1 << 18)
            if not chunk:
                raise EOFError
            buf += chunk


def _portable(exc: Exception) -> Exception:
    """An exception that survives pickling (the worker raises it as the store's answer)."""
    try:
        pickle.loads(pickle.dumps(exc, _PICKLE))
    except Exception:
        return CrawlerError(f"{type(exc).__name__}: {exc}")
    return exc


# ======================================================================== the parent's side
class _Conn:
    """One worker's connection: its framed stream and the claims it holds."""

    __slots__ = ("bye", "claims", "framed", "seeds_sent", "version_sent")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.framed = _Framed(stream)
        self.claims: dict[int, Claim] = {}
        self.seeds_sent = 0
        self.version_sent = -1
        self.bye = False


class SharedStore(CrawlStore):
    """The parent's store with ``--processes``: ``inner`` for this process, served to workers.

    ``on_stop(reason)`` is called when the crawl must stop for a reason the parent's engine
    cannot see by itself (``max_pages`` counted over all processes, a worker's ``fail_fast``);
    ``stopping()`` says whether this process' engine was asked to stop. Scope additions
    (:meth:`add_scope`) from any process reach ``inner`` and every process' listener.
    """

    def __init__(
        self,
        inner: CrawlStore,
        *,
        setup: Mapping[str, Any] | None = None,
        max_pages: int | None = None,
        on_stop: Callable[[str], None] | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.inner = inner
        self._parent_stopping = stopping
        self.setup = dict(setup or {})
        self.socket_path: str | None = None
        self.worker_pids: list[int] = []
        self._max_pages = max_pages
        self._pages_started: set[int] = set()
        self._on_stop = on_stop
        self._seeds: list[str] = []  # scope additions, sent on to the workers
        self._robots: dict[str, tuple[int, bytes, float]] = {}
        self._delayed_hosts: set[str] = set()
        self._listening = trio.Event()
        self._seeded = trio.Event()
        self._version = 0
        self._changed = trio.Event()
        self._stopping = False
        self._conns: set[_Conn] = set()
        self._conns_gone = trio.Event()
        self._conns_gone.set()
        self._counters: Counters | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ delegation
    def budget_refusals(self) -> int:
        return self.inner.budget_refusals()

    async def add(self, requests: Sequence[NewRequest]) -> int:
        self._seeded.set()
        return await self.inner.add(requests)

    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        return await self.inner.mark_seen(fingerprints)

    def seen_hint(self, fingerprint: int) -> bool:
        return self.inner.seen_hint(fingerprint)

    async def claim(self, now: float, limit: int) -> list[Claim]:
        if self._stopping:
            return []
        if self._parent_stopping is not None and self._parent_stopping():
            self._halt()  # this process stopped (Ctrl-C, a deadline): so do the workers
            return []
        claims = await self.inner.claim(now, limit)
        if self._max_pages is not None and claims:
            for claim in claims:
                if not claim.request.redirects:
                    self._pages_started.add(claim.fingerprint)
            if len(self._pages_started) >= self._max_pages:
                self.stop("max_pages")
        return claims

    def next_ready_time(self) -> float | None:
        return self.inner.next_ready_time()

    async def wait_changed(self, until: float | None) -> None:
        await self.inner.wait_changed(until)

    async def complete(
        self, claim: Claim, new: Sequence[NewRequest], items: Sequence[Any] = ()
    ) -> int:
        return await self.inner.complete(claim, new, items)

    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        await self.inner.retry(claim, request, not_before)

    async def pause_host(self, host: str, until: float) -> None:
        await self.inner.pause_host(host, until)

    async def set_host_delay(self, host: str, delay: float) -> None:
        if delay > 0:
            self._delayed_hosts.add(host)
        else:
            self._delayed_hosts.discard(host)
        await self.inner.set_host_delay(host, delay)

    def _no_delays(self) -> bool:
        """True while no host has a delay between requests: extra claims are then safe."""
        settings = self.setup.get("settings")
        return (
            settings is not None
            and settings.per_host_delay == 0
            and not settings.adaptive_throttle
            and not self._delayed_hosts
        )

    def outstanding(self) -> int:
        return self.inner.outstanding()

    def queued(self) -> int:
        return self.inner.queued()

    def in_flight(self) -> int:
        return self.inner.in_flight()

    def active_hosts(self) -> int:
        return self.inner.active_hosts()

    def attach_outputs(self, exporters: Sequence[Exporter]) -> None:
        self.inner.attach_outputs(exporters)

    def output_offsets(self) -> dict[str, int]:
        return self.inner.output_offsets()

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        kept = self._robots.get(host)
        return kept if kept is not None else await self.inner.load_robots(host)

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:
        self._robots[host] = (status, body, fetched_at)
        await self.inner.save_robots(host, status, body, fetched_at)

    async def flush(self) -> None:
        await self.inner.flush()

    async def close(self) -> None:
        await self.inner.close()

    # ------------------------------------------------------------ crawl-wide state
    def stop(self, reason: str) -> None:
        """Stop the crawl in every process (this one through ``on_stop``): no claim is handed
        out any more; in-flight pages finish."""
        if not self._stopping:
            self._halt()
            if self._on_stop is not None:
                self._on_stop(reason)

    def _halt(self) -> None:
        self._stopping = True
        self._bump()

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = trio.Event()

    def watch_scope(self, listener: Callable[[str], None]) -> None:
        super().watch_scope(listener)
        self.inner.watch_scope(self._inner_scope)

    def _inner_scope(self, url: str) -> None:
        """``inner`` heard of a scope addition: this process' listener and every worker too."""
        if self._heard_scope(url):
            self._seeds.append(url)
            self._bump()

    async def add_scope(self, url: str) -> None:
        await self.inner.add_scope(url)

    async def end(self, stop_reason: str) -> None:
        await self.inner.end(stop_reason)

    async def wait_listening(self) -> str:
        """The socket path, once the store listens."""
        await self._listening.wait()
        assert self.socket_path is not None
        return self.socket_path

    # ------------------------------------------------------------ lifecycle
    @asynccontextmanager
    async def open(self, meta: Mapping[str, Any], counters: Counters) -> AsyncIterator[bool]:
        self._counters = counters
        tmpdir = tempfile.mkdtemp(prefix="trio-crawler-")
        path = os.path.join(tmpdir, "store.sock")
        try:
            async with self.inner.open(meta, counters) as resumed:
                self.setup["resumed"] = resumed
                sock = trio.socket.socket(_stdlib_socket.AF_UNIX, _stdlib_socket.SOCK_STREAM)
                await sock.bind(path)
                sock.listen(MAX_PROCESSES)
                listener = trio.SocketListener(sock)
                async with listener, trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch, name="trio_crawler.shared.watch")
                    nursery.start_soon(
                        self._serve, listener, nursery, name="trio_crawler.shared.serve"
                    )
                    self.socket_path = path
                    self._listening.set()
                    try:
                        yield resumed
                        # this process is done: the workers finish what they hold, then leave
                        self._halt()
                        with trio.move_on_after(WORKER_EXIT_SECONDS):
                            await self._conns_gone.wait()
                        if self._conns:
                            log.warning("%d worker(s) did not finish in time", len(self._conns))
                    finally:
                        self._halt()
                        nursery.cancel_scope.cancel()
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    async def _watch(self) -> None:
        """Every change of ``inner`` (this process' calls included) bumps the change counter."""
        while True:
            await self.inner.wait_changed(None)
            self._bump()

    async def _serve(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            stream = await listener.accept()
            conn = _Conn(stream)
            self._conns.add(conn)
            self._conns_gone = trio.Event()
            nursery.start_soon(self._connection, conn, nursery, name="trio_crawler.shared.conn")

    def _status(self, conn: _Conn) -> _Status:
        inner = self.inner
        ready = inner.next_ready_time()
        seeds = self._seeds[conn.seeds_sent :]
        conn.seeds_sent = len(self._seeds)
        conn.version_sent = self._version
        return (
            inner.outstanding(),
            inner.queued(),
            inner.in_flight(),
            inner.active_hosts(),
            None if ready is None else ready - trio.current_time(),
            self._version,
            self._stopping,
            seeds,
        )

    async def _answer(self, conn: _Conn, replies: list[tuple[int, bool, Any]]) -> None:
        framed = conn.framed
        async with framed.lock:
            data = pickle.dumps((replies, self._status(conn)), _PICKLE)
            await framed.stream.send_all(_HEADER.pack(len(data)) + data)

    async def _connection(self, conn: _Conn, nursery: trio.Nursery) -> None:
        try:
            await self._seeded.wait()
            await self._answer(conn, [(0, True, self.setup)])
            while True:
                try:
                    batch = await conn.framed.receive()
                except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    break
                replies: list[tuple[int, bool, Any]] = []
                for rid, op, args in batch:
                    if op == "wait":
                        nursery.start_soon(self._wait, conn, rid, *args)
                        continue
                    try:
                        result = await self._apply(conn, op, args)
                    except Exception as exc:
                        replies.append((rid, False, _portable(exc)))
                    else:
                        replies.append((rid, True, result))
                if replies:
                    await self._answer(conn, replies)
                if conn.bye:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                if conn.claims:
                    if not conn.bye:
                        log.warning(
                            "a worker process left: %d claim(s) go back to the frontier",
                            len(conn.claims),
                        )
                    now = trio.current_time()
                    with trio.move_on_after(5):
                        for claim in conn.claims.values():
                            await self.inner.retry(claim, claim.request, now)
                    conn.claims.clear()
                with trio.move_on_after(1):
                    await conn.framed.stream.aclose()
            self._conns.discard(conn)
            if not self._conns:
                self._conns_gone.set()

    async def _wait(self, conn: _Conn, rid: int, version: int, delay: float | None) -> None:
        if version == self._version and not self._stopping and self.inner.outstanding() > 0:
            with trio.move_on_after(math.inf if delay is None else delay):
                await self._changed.wait()
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._answer(conn, [(rid, True, None)])

    async def _apply(self, conn: _Conn, op: str, args: tuple[Any, ...]) -> Any:
        if op == "claim":
            out = []
            limit = args[0]
            if len(args) > 1 and self._no_delays():
                limit += args[1]
            for claim in await self.claim(trio.current_time(), limit):
                cid = next(self._ids)
                conn.claims[cid] = claim
                out.append((cid, claim.request, claim.fingerprint, claim.host))
            return out
        if op == "complete":
            cid, new, items = args
            claim = conn.claims.pop(cid)
            return await self.complete(claim, new, items)
        if op == "retry":
            cid, request, delay = args
            claim = conn.claims.pop(cid)
            await self.inner.retry(claim, request, trio.current_time() + delay)
            return None
        if op == "add":
            return await self.add(args[0])
        if op == "mark_seen":
            return await self.inner.mark_seen(args[0])
        if op == "pause_host":
            host, delay = args
            await self.inner.pause_host(host, trio.current_time() + delay)
            return None
        if op == "set_host_delay":
            await self.inner.set_host_delay(*args)
            return None
        if op == "add_scope":
            await self.add_scope(args[0])
            return None
        if op == "load_robots":
            return await self.load_robots(args[0])
        if op == "save_robots":
            await self.save_robots(*args)
            return None
        if op == "bye":
            counters, reason = args
            conn.bye = True
            if self._counters is not None:
                self._counters.merge(counters)
            if reason in ("fail_fast", "error"):
                self.stop(reason)
            return None
        raise CrawlerError(f"unknown store call {op!r}")


# ======================================================================== the worker's side
class _Pending:
    __slots__ = ("done", "ok", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = True
        self.value: Any = None


class RemoteStore(CrawlStore):
    """A worker's store: every call goes to the parent's :class:`SharedStore` over ``stream``.

    Built by :func:`connect_worker` once the parent's first answer (the crawl's setup) has
    arrived. ``on_stop`` is called when the parent stops the crawl. Scope additions made in any
    process reach this store's listener with the parent's answers.
    """

    def __init__(self, framed: _Framed, status: _Status, *, resumed: bool = False) -> None:
        super().__init__()
        self._framed = framed
        self._resumed = resumed
        self._pending: dict[int, _Pending] = {}
        self._rids = itertools.count(1)
        self._out_send, self._out_recv = trio.open_memory_channel[tuple[int, str, Any]](math.inf)
        self._claims: dict[Claim, int] = {}
        self._prefetched: collections.deque[Claim] = collections.deque()
        # a hint only (the parent's store decides): two generations of at most _SEEN_HINTS
        # fingerprints each, so a worker's memory stays flat however many URLs it meets
        self._seen: set[int] = set()
        self._seen_old: set[int] = set()
        self._seeding_done = False
        self._outstanding = self._queued = self._in_flight = self._hosts = 0
        self._ready: float | None = None
        self._version = -1
        self._stopped = False
        self._leaving = False
        self.on_stop: Callable[[], None] | None = None
        self.stop_reason: Callable[[], str | None] = lambda: None
        self._apply_status(status)

    # ------------------------------------------------------------ plumbing
    def _apply_status(self, status: _Status) -> None:
        (
            self._outstanding,
            self._queued,
            self._in_flight,
            self._hosts,
            ready,
            self._version,
            stopping,
            seeds,
        ) = status
        self._ready = None if ready is None else trio.current_time() + ready
        for url in seeds:
            self._heard_scope(url)
        if stopping and not self._stopped:
            self._stopped = True
            if self.on_stop is not None:
                self.on_stop()

    async def _call(self, op: str, *args: Any) -> Any:
        rid = next(self._rids)
        pending = self._pending[rid] = _Pending()
        try:
            self._out_send.send_nowait((rid, op, args))
            await pending.done.wait()
        finally:
            self._pending.pop(rid, None)
        if not pending.ok:
            raise pending.value
        return pending.value

    async def _writer(self) -> None:
        framed = self._framed
        async for first in self._out_recv:
            batch = [first]
            while True:
                try:
                    batch.append(self._out_recv.receive_nowait())
                except trio.WouldBlock:
                    break
            await framed.send(batch)

    async def _reader(self) -> None:
        framed = self._framed
        while True:
            try:
                replies, status = await framed.receive()
            except (EOFError, trio.BrokenResourceError, OSError):
                if self._leaving:
                    return  # the parent closes the connection after our goodbye
                raise CrawlerError("the crawl's parent process went away") from None
            self._apply_status(status)
            for rid, ok, value in replies:
                pending = self._pending.get(rid)
                if pending is not None:
                    pending.ok, pending.value = ok, value
                    pending.done.set()

    # ------------------------------------------------------------ interface
    async def add(self, requests: Sequence[NewRequest]) -> int:
        self._remember(requests)
        if not self._seeding_done:
            # the engine's first add() is its seeding: the parent queued the seeds already
            self._seeding_done = True
            return 0
        result: int = await self._call("add", list(requests))
        return result

    def _remember(self, requests: Sequence[NewRequest]) -> None:
        seen = self._seen
        for item in requests:
            if not item.request.dont_filter:
                seen.add(item.fingerprint)
        self._rotate()

    def _rotate(self) -> None:
        if len(self._seen) >= _SEEN_HINTS:
            self._seen_old = self._seen
            self._seen = set()

    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        self._seen.update(fingerprints)
        self._rotate()
        result: list[bool] = await self._call("mark_seen", list(fingerprints))
        return result

    def seen_hint(self, fingerprint: int) -> bool:
        return fingerprint in self._seen or fingerprint in self._seen_old

    async def claim(self, now: float, limit: int) -> list[Claim]:
        self._seeding_done = True
        if self._stopped:
            return []
        prefetched = self._prefetched
        if not prefetched:
            # ask for a few more than needed: the parent grants extra claims only while no
            # host has a delay (each is then bounded by its host's concurrency alone), and
            # they save a round trip each
            for cid, request, fingerprint, host in await self._call("claim", limit, _PREFETCH):
                claim = Claim(request, fingerprint, host)
                self._claims[claim] = cid
                prefetched.append(claim)
        return [prefetched.popleft() for _ in range(min(limit, len(prefetched)))]

    def next_ready_time(self) -> float | None:
        if self._prefetched:
            return trio.current_time()
        return self._ready

    async def wait_changed(self, until: float | None) -> None:
        if self._outstanding == 0 or self._stopped:
            return
        delay = None if until is None else max(0.0, until - trio.current_time())
        await self._call("wait", self._version, delay)

    async def complete(
        self, claim: Claim, new: Sequence[NewRequest], items: Sequence[Any] = ()
    ) -> int:
        cid = self._claims.pop(claim)
        if new:
            self._remember(new)
        result: int = await self._call("complete", cid, list(new), list(items))
        return result

    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        cid = self._claims.pop(claim)
        await self._call("retry", cid, request, max(0.0, not_before - trio.current_time()))

    async def pause_host(self, host: str, until: float) -> None:
        await self._call("pause_host", host, max(0.0, until - trio.current_time()))

    async def set_host_delay(self, host: str, delay: float) -> None:
        await self._call("set_host_delay", host, delay)

    @property
    def stopped(self) -> bool:
        """The parent stopped the crawl: nothing more is handed out."""
        return self._stopped

    def outstanding(self) -> int:
        return self._outstanding

    def queued(self) -> int:
        return self._queued

    def in_flight(self) -> int:
        return self._in_flight

    def active_hosts(self) -> int:
        return self._hosts

    async def add_scope(self, url: str) -> None:
        self._heard_scope(url)
        await self._call("add_scope", url)

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        result: tuple[int, bytes, float] | None = await self._call("load_robots", host)
        return result

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:
        await self._call("save_robots", host, status, body, fetched_at)

    @asynccontextmanager
    async def open(self, meta: Mapping[str, Any], counters: Counters) -> AsyncIterator[bool]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reader, name="trio_crawler.remote.reader")
            nursery.start_soon(self._writer, name="trio_crawler.remote.writer")
            try:
                yield self._resumed
                # goodbye: this worker's figures, and its claims are all settled
                self._leaving = True
                with trio.move_on_after(WORKER_KILL_SECONDS):
                    await self._call("bye", counters, self.stop_reason())
            finally:
                nursery.cancel_scope.cancel()


@asynccontextmanager
async def connect_worker(path: str) -> AsyncIterator[tuple[RemoteStore, dict[str, Any]] | None]:
    """A worker's side of a shared crawl: its :class:`RemoteStore` and the crawl's setup (the
    first answer), or None when the crawl is gone already (it ended before the worker
    connected, or ends before it is answered)."""
    try:
        stream = await trio.open_unix_socket(path)
    except OSError:
        yield None
        return
    framed = _Framed(stream)
    async with stream:
        try:
            replies, status = await framed.receive()
        except (EOFError, trio.BrokenResourceError, OSError):
            yield None
            return
        setup = replies[0][2]
        yield RemoteStore(framed, status, resumed=setup.get("resumed", False)), setup
