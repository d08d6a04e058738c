"""The parent's side of a crawl shared by several processes: :class:`SharedStore`, the
crawl's own store served to the worker processes over a Unix socket. The theory of
operation, the wire format and the worker's side: :mod:`.remote`."""

from __future__ import annotations

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
from .._graph import PageGraph
from .._spider import Request
from .base import Claim, CrawlStore, NewRequest
from .local import RobotsAnswers
from .memory import MemoryStore
from .remote import (
    FRAME_HEADER,
    MAX_PROCESSES,
    PICKLE_PROTOCOL,
    PUSH,
    WORKER_EXIT_SECONDS,
    Framed,
    Status,
    portable,
)
from .split import BATCH_SECONDS, HostParts
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from .._export import Exporter
    from .._graph import CrawlGraph
    from .._stats import Counters

log = logging.getLogger("trio_crawler.store.shared")


class _Conn:
    """One worker's connection: its framed stream, its partition of the hosts, and the claims
    it holds."""

    __slots__ = ("bye", "claims", "framed", "part", "pid", "seeds_sent", "version_sent")

    def __init__(self, stream: trio.abc.Stream, part: int) -> None:
        self.framed = Framed(stream)
        self.pid = _peer_pid(stream)
        self.part = part
        self.claims: dict[int, Claim] = {}
        self.seeds_sent = 0
        self.version_sent = -1
        self.bye = False


def _peer_pid(stream: trio.abc.Stream) -> int | None:
    """The process at the other end of a Unix socket stream (Linux), or None."""
    sock = getattr(stream, "socket", None)
    option = getattr(_stdlib_socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        pid, _uid, _gid = struct.unpack(
            "3i", sock.getsockopt(_stdlib_socket.SOL_SOCKET, option, 12)
        )
    except (OSError, struct.error):
        return None
    return int(pid)


class SharedStore(CrawlStore):
    """The parent's store with ``--processes``: ``inner`` for this process, served to workers.

    ``on_stop(reason)`` is called when the crawl must stop for a reason the parent's engine
    cannot see by itself (``max_pages`` counted over all processes, a worker's ``fail_fast``);
    ``stopping()`` says whether this process' engine was asked to stop. Scope additions
    (:meth:`add_scope`) from any process reach ``inner`` and every process' listener.

    ``split="hosts"``: each process keeps the frontier of its own hosts (:mod:`.split`);
    ``inner`` holds this process' hosts only, and :meth:`outstanding` counts the whole crawl.
    """

    def __init__(
        self,
        inner: MemoryStore | SqliteStore,
        *,
        processes: int = 2,
        setup: Mapping[str, Any] | None = None,
        max_pages: int | None = None,
        on_stop: Callable[[str], None] | None = None,
        stopping: Callable[[], bool] | None = None,
        split: str = "shared",
    ) -> None:
        super().__init__()
        self.inner = inner
        self.seen_in_memory = inner.seen_in_memory
        self._parts: HostParts | None = None
        self._own_hosts: MemoryStore | None = None  # inner, with split hosts (memory only)
        if split == "hosts":
            if not isinstance(inner, MemoryStore):
                raise CrawlerError("--split hosts keeps each process' hosts in memory")
            self._parts = HostParts(processes)
            self._own_hosts = inner
        else:
            # each process is served its own share of the hosts first (partition 0: this
            # one), so a host's requests go out from one process: its keep-alive connection
            # and its send-time spacing stay in that process
            inner.set_partitions(processes)
        self._free_parts = list(range(processes - 1, 0, -1))
        self._connected_pids: set[int] = set()
        self._parent_stopping = stopping
        self.setup = dict(setup or {})
        self.socket_path: str | None = None
        self.worker_pids: list[int] = []
        self._max_pages = max_pages
        self._pages_started: set[int] = set()
        self._on_stop = on_stop
        self._seeds: list[str] = []  # scope additions, sent on to the workers
        self._robots = RobotsAnswers()
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
        if self._parts is not None:
            requests = self._parts.route(requests)
        return await self.inner.add(requests)

    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        return await self.inner.mark_seen(fingerprints)

    def seen_hint(self, fingerprint: int) -> bool:
        return self.inner.seen_hint(fingerprint)

    async def claim(
        self, now: float, limit: int, part: int = 0, *, steal: bool = True
    ) -> list[Claim]:
        if self._stopping:
            return []
        if self._parent_stopping is not None and self._parent_stopping():
            self._halt()  # this process stopped (Ctrl-C, a deadline): so do the workers
            return []
        claims = await self.inner.claim(now, limit, part, steal=steal)
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
        self,
        claim: Claim,
        new: Sequence[NewRequest],
        items: Sequence[Any] = (),
        *,
        graph: PageGraph | None = None,
    ) -> int:
        if self._parts is None:
            return await self.inner.complete(claim, new, items, graph=graph)
        count = await self.inner.complete(claim, self._parts.route(new), items, graph=graph)
        self._check_done()
        return count

    def link_graph(self) -> CrawlGraph | None:
        return self.inner.link_graph()

    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        await self.inner.retry(claim, request, not_before)

    async def pause_host(self, host: str, until: float) -> None:
        await self.inner.pause_host(host, until)

    async def give_back_turn(self, host: str) -> None:
        await self.inner.give_back_turn(host)

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
        if self._parts is None:
            return self.inner.outstanding()
        return self.inner.outstanding() + self._parts.held()

    def queued(self) -> int:
        if self._parts is None:
            return self.inner.queued()
        return self.inner.queued() + self._parts.held()

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
        self._robots.put(host, status, body, fetched_at)
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

    def halt(self) -> None:
        """This process' crawl stopped: the workers take no more work either (each hears it
        with its next answer, or under ``--split hosts`` at once)."""
        if not self._stopping:
            self._halt()

    def _halt(self) -> None:
        self._stopping = True
        self._bump()

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = trio.Event()
        if self._parts is not None:
            self._parts.wake_all()  # the workers wait for no answer: a status goes to each

    def _check_done(self) -> None:
        """``--split hosts``: when no process holds any work, wake this process' engine (its
        :meth:`outstanding` reads 0) and tell the workers."""
        if self._own_hosts is not None and self.outstanding() == 0:
            self._own_hosts.wake()
            self._bump()

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
                    if self._parts is None:  # with split hosts no worker waits for changes
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
            conn = _Conn(stream, self._free_parts.pop() if self._free_parts else 0)
            if conn.pid is not None:
                self._connected_pids.add(conn.pid)
            if self._parts is not None and not conn.part:
                await stream.aclose()  # more workers than shares of the hosts
                continue
            if conn.part and self._parts is None:
                self.inner.set_live(conn.part, True)
            self._conns.add(conn)
            self._conns_gone = trio.Event()
            nursery.start_soon(self._connection, conn, nursery, name="trio_crawler.shared.conn")

    def _status(self, conn: _Conn) -> Status:
        inner = self.inner
        ready = inner.next_ready_time()
        seeds = self._seeds[conn.seeds_sent :]
        conn.seeds_sent = len(self._seeds)
        conn.version_sent = self._version
        return (
            self.outstanding(),
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
            data = pickle.dumps((replies, self._status(conn)), PICKLE_PROTOCOL)
            await framed.stream.send_all(FRAME_HEADER.pack(len(data)) + data)

    async def _connection(self, conn: _Conn, nursery: trio.Nursery) -> None:
        try:
            await self._seeded.wait()
            setup = self.setup
            if self._parts is not None:
                setup = {**setup, "split": "hosts", "part": conn.part, "parts": self._parts.parts}
            await self._answer(conn, [(0, True, setup)])
            if self._parts is not None:  # pushes only after the setup, the first frame
                nursery.start_soon(self._pusher, conn, name="trio_crawler.shared.push")
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
                        if not rid:  # a call without an answer: nobody else hears of it
                            log.error("a worker's %s failed here: %s", op, exc)
                            continue
                        replies.append((rid, False, portable(exc)))
                    else:
                        if rid:
                            replies.append((rid, True, result))
                if self._parts is not None:
                    self._check_done()
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
            if conn.part and self._parts is not None:
                self._adopt(conn.part, gone=not conn.bye)
            elif conn.part:
                self.inner.set_live(conn.part, False)  # its hosts are anyone's now
                self._free_parts.append(conn.part)  # a worker that comes later takes them
            if not self._conns:
                self._conns_gone.set()

    async def _pusher(self, conn: _Conn) -> None:
        """``--split hosts``: send worker ``conn`` the links of its hosts found elsewhere, and
        the crawl's status when it matters to it (each send takes all that is waiting)."""
        parts = self._parts
        assert parts is not None
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while True:
                await parts.event(conn.part).wait()
                await trio.sleep(BATCH_SECONDS)  # a few more links join this frame
                parts.sent(conn.part)
                links = parts.take_outbox(conn.part)
                await self._answer(conn, [(PUSH, True, links)] if links else [])

    def _adopt(self, part: int, *, gone: bool) -> None:
        """``--split hosts``: worker ``part`` left; this process keeps its hosts from now on."""
        assert self._parts is not None
        back, lost = self._parts.adopt(part)
        if gone and (back or lost):
            log.error(
                "a worker process left without finishing: this process takes over its hosts "
                "(%d links sent to it are queued again; %d pages it held are lost)",
                len(back),
                lost,
            )
        if back and self._own_hosts is not None:
            self._own_hosts.add_now(back)
        self._check_done()

    def process_ended(self, pid: int) -> None:
        """Worker process ``pid`` exited. Under ``--split hosts``, a worker that never
        connected leaves a share of the hosts with no process: this one takes it."""
        if self._parts is not None and pid not in self._connected_pids and self._free_parts:
            self._adopt(self._free_parts.pop(), gone=True)

    async def _wait(self, conn: _Conn, rid: int, version: int, delay: float | None) -> None:
        if version == self._version and not self._stopping and self.inner.outstanding() > 0:
            with trio.move_on_after(math.inf if delay is None else delay):
                await self._changed.wait()
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._answer(conn, [(rid, True, None)])

    async def _apply(self, conn: _Conn, op: str, args: tuple[Any, ...]) -> Any:
        if op == "claim":
            out = []
            now = trio.current_time()
            claims = await self.claim(now, args[0], conn.part)
            if len(args) > 1:
                # a few more, to save round trips: only this worker's own hosts, whose
                # requests it spaces itself when they are sent (or any, when none has a delay)
                extra = await self.claim(now, args[1], conn.part, steal=self._no_delays())
                claims += extra
            for claim in claims:
                cid = next(self._ids)
                conn.claims[cid] = claim
                out.append((cid, claim.request, claim.fingerprint, claim.host))
            return out
        if op == "complete":
            cid, new, items, graph = args
            claim = conn.claims.pop(cid)
            graph = None if graph is None else PageGraph(*graph)
            return await self.complete(claim, new, items, graph=graph)
        if op == "route":  # --split hosts: a worker's links for others, its items and graph
            links, items, graph = args
            assert self._parts is not None
            if links:
                queued = await self.inner.add(self._parts.route(links))
                if self._counters is not None:
                    self._counters.links_queued += queued
            if (items or graph is not None) and self._own_hosts is not None:
                self._own_hosts.export(items, None if graph is None else PageGraph(*graph))
            return None
        if op == "report":  # --split hosts: the work a worker holds
            assert self._parts is not None
            self._parts.report(conn.part, *args)
            return None
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
