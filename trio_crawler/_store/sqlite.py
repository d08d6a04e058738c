"""The durable store: one SQLite file (WAL) holds the frontier, the seen set, per-host state,
the items, the output offsets and the statistics of one crawl, so a crawl survives a stop, a
crash or ``kill -9`` and resumes where it was.

Theory of operation
-------------------
*What lives where.* The database is the truth; memory holds a bounded working set:

* the frontier table is also the seen set (its key is the URL fingerprint, stored as a signed
  64-bit int). Each row is ``queued`` (waiting in the database), ``inflight`` (leased by the
  running process: in its in-memory window, waiting for a retry, or being fetched), ``done``, or
  ``seen`` (a fingerprint recorded by :meth:`SqliteStore.mark_seen`, nothing to fetch);
* per host, at most ``window`` queued requests sit in an in-memory
  :class:`~trio_crawler._frontier.Frontier` (per-host queues, concurrency, delay: the one
  politeness rule). When a host's window runs low it is refilled from the database through an
  index on ``(host, state, priority, seq)``, so one big host cannot starve the others and memory
  is ``window x hosts`` whatever the number of URLs discovered;
* seen lookups go through, in order: the fingerprints pending since the last commit, a bounded
  cache of recent fingerprints (two generations of sets), and a scalable Bloom filter of every
  fingerprint in the file. Only a Bloom hit that no set answers goes to the database, once per
  page for all its links, on a second (read-only) connection in a worker thread.

*Writes.* Nothing is written when a request is claimed. :meth:`SqliteStore.complete` records
the page done, its new frontier rows, its items, its host updates and (``link_graph``) what
it adds to the link graph (:mod:`.sqlite_graph`) in an in-memory batch and
returns; a committer task hands the batch to one writer thread (``trio.to_thread``) every
``batch_interval`` seconds or ``batch_pages`` pages, whichever comes first, so many pages share
one transaction. In that transaction the writer also writes the batch's items to the output
files, flushes them and records each file's byte offset, and stores the statistics: a page is
done, its links are queued, its items are in the table and in the files, all or nothing.
A window refill rides on the same thread call.

*Counting.* ``outstanding()`` is exact: in-window + in flight + waiting for a retry + the
queued rows of the database and of the pending batch (a per-host backlog count).

*Resume.* On open, ``inflight`` rows go back to ``queued`` (in-flight pages are fetched again),
the output files are truncated to the committed offsets by the engine, the statistics are
loaded into the engine's counters, and the stored crawl identity (seeds, scope, URL rules,
spider) must equal the new one or :class:`~trio_crawler.StateMismatch` names the field.

*Guarantees.* Every page is recorded done exactly once with its items: a page fetched before a
crash but not committed is fetched again. Side effects of ``Spider.process`` are at least
once. A request with ``dont_filter`` is given its own row (a key derived from its fingerprint
and a sequence number); a ``dont_filter`` start request is queued again on each resume.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from .._exceptions import SettingsError, StoreError
from .._frontier import Frontier
from .._spider import Request
from .base import Claim, CrawlStore, NewRequest
from .codec import decode_request, dump_counters, load_counters, signed, unsigned
from .local import LocalQueue
from .sqlite_db import (
    INFLIGHT,
    QUEUED,
    Batch,
    Bloom,
    Loaded,
    Writer,
    connect,
    read_graph,
    row_key,
    translate,
)
from .sqlite_graph import SqliteCrawlGraph

if TYPE_CHECKING:
    from .._graph import PageGraph
    from .._settings import Settings
    from .._stats import Counters

#: Longest the final commit of a crawl that ends normally may take (seconds).
_FINAL_COMMIT_SECONDS = 60.0


# --------------------------------------------------------------------------- the store
class SqliteStore(LocalQueue, CrawlStore):
    """A crawl's state in one SQLite file; ``":memory:"`` is not supported (use MemoryStore).

    ``window``: queued requests per host held in memory; ``batch_pages`` and
    ``batch_interval``: a commit happens every that many pages or seconds, whichever first.
    """

    durable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        per_host_concurrency: int = 2,
        per_host_delay: float = 0.25,
        max_pages_per_host: int | None = None,
        depth_first: bool = False,
        window: int = 128,
        batch_pages: int = 200,
        batch_interval: float = 0.1,
        cache_size: int = 1 << 16,
        link_graph: bool = False,
    ) -> None:
        super().__init__()
        self.path = os.fspath(path)
        if self.path == ":memory:" or not self.path:
            raise SettingsError("the state store needs a file name")
        self._frontier: Frontier[Claim] = Frontier(
            per_host_concurrency=per_host_concurrency,
            per_host_delay=per_host_delay,
            depth_first=depth_first,
        )
        self._writer = Writer(self.path, window, depth_first, link_graph=link_graph)
        self._reader: sqlite3.Connection | None = None
        self._read_lock = trio.Lock()
        self._commit_lock = trio.Lock()
        self._window = window
        self._low_water = max(1, window // 2)
        self._batch_pages = batch_pages
        self._max_pending = batch_pages * 4
        self._batch_interval = batch_interval
        self._cache_size = cache_size
        self._max_per_host = max_pages_per_host
        self._over_budget = 0
        # seen set
        self._bloom = Bloom()
        self._hot: set[int] = set()
        self._warm: set[int] = set()
        self._pending_fps: set[int] = set()
        self._writing_fps: set[int] = set()
        self._committed: list[tuple[int, set[int]]] = []  # (generation, fps) kept for lookups
        self._lookups: dict[object, int] = {}  # lookup token -> generation at its start
        self._generation = 0
        # frontier bookkeeping
        self._init_queue()
        self._row_seq = itertools.count(1)
        self._backlog: dict[str, int] = {}
        self._backlog_total = 0
        self._refill: set[str] = set()
        self._admitted: dict[str, int] = {}
        self._host_wall: dict[str, float] = {}
        # batching
        self._batch = Batch()
        self._batch_pages_now = 0
        self._batch_started = math.inf
        self._urgent = False
        self._kick = trio.Event()
        self._committed_event = trio.Event()
        self._counters: Counters | None = None
        self._offsets: dict[str, int] = {}
        self._open = False
        self._stop_reason: str | None = None
        self._hosts_count = 0
        self._hosts_counted_at = -math.inf
        self._failed: BaseException | None = None
        self.commits = 0

    @classmethod
    def from_settings(
        cls, path: str | os.PathLike[str], settings: Settings, **options: Any
    ) -> SqliteStore:
        return cls(
            path,
            per_host_concurrency=settings.per_host_concurrency,
            per_host_delay=settings.per_host_delay,
            max_pages_per_host=settings.max_pages_per_host,
            depth_first=settings.order == "depth",
            link_graph=settings.link_graph,
            **options,
        )

    # ------------------------------------------------------------ lifecycle
    @asynccontextmanager
    async def open(self, meta: Mapping[str, Any], counters: Counters) -> AsyncIterator[bool]:
        loaded = await trio.to_thread.run_sync(self._writer.open, meta)
        try:
            self._reader = await trio.to_thread.run_sync(
                functools.partial(connect, self.path, readonly=True)
            )
        except sqlite3.Error as exc:
            self._writer.close()
            raise translate(self.path, exc) from None
        self._install(loaded, counters)
        self._open = True
        finished = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._committer, name="trio_crawler.store.committer")
                try:
                    yield loaded.resumed
                finally:
                    nursery.cancel_scope.cancel()
            finished = True
        finally:
            self._open = False
            # A crawl that ends commits everything; one cancelled or failing gets 0.5 s, and
            # what is left is fetched again on resume (each page commits whole or not at all).
            error: BaseException | None = None
            with trio.move_on_after(_FINAL_COMMIT_SECONDS if finished else 0.5, shield=True):
                if self._failed is None:
                    try:
                        await self._commit()
                    except Exception as exc:  # closed below first, then raised
                        error = exc
            with trio.move_on_after(5, shield=True):
                await trio.to_thread.run_sync(self._close_connections)
            if error is not None:
                raise error

    def _close_connections(self) -> None:
        if self._failed is None:
            self._writer.release()
            if self._stop_reason is not None:
                self._writer.end(self._stop_reason)
        self._writer.close()
        if self._reader is not None:
            with contextlib.suppress(sqlite3.Error):
                self._reader.close()
            self._reader = None

    def _install(self, loaded: Loaded, counters: Counters) -> None:
        self._counters = counters
        load_counters(counters, loaded.stats)
        self._offsets = loaded.offsets
        self._bloom = loaded.bloom
        self._row_seq = itertools.count(loaded.next_seq)
        now = trio.current_time()
        wall = time.time()
        for host, next_allowed, delay, admitted in loaded.hosts:
            if delay is not None:
                self._frontier.set_delay(host, delay)
            if next_allowed and next_allowed > wall:
                self._frontier.pause(host, now + (next_allowed - wall))
                self._host_wall[host] = next_allowed
            if admitted:
                self._admitted[host] = admitted
        for url in loaded.scope:
            self._heard_scope(url)
        self._backlog = dict(loaded.backlog)
        self._backlog_total = sum(self._backlog.values())
        for host, rows in loaded.windows.items():
            claims = [
                (Claim(decode_request(text), key, host), nb - wall if nb > wall else 0.0)
                for key, text, nb in rows
            ]
            self._take_refill(host, claims)

    def attach_outputs(self, exporters: Sequence[Any]) -> None:
        self._outputs = list(exporters)

    def output_offsets(self) -> dict[str, int]:
        return dict(self._offsets)

    async def flush(self) -> None:
        await self._commit()

    async def end(self, stop_reason: str) -> None:
        self._stop_reason = stop_reason

    async def close(self) -> None:
        await self._commit()

    # ------------------------------------------------------------ committing
    async def _committer(self) -> None:
        while True:
            deadline = self._batch_started + self._batch_interval
            if not (self._urgent or self._batch_pages_now >= self._batch_pages):
                with trio.move_on_at(deadline):
                    await self._kick.wait()
            self._kick = trio.Event()
            if (
                self._urgent
                or self._batch_pages_now >= self._batch_pages
                or trio.current_time() >= deadline
            ):
                await self._commit()

    def _poke(self) -> None:
        self._kick.set()

    async def _commit(self) -> None:
        """Hand the pending batch (and the window refills) to the writer thread; apply the
        refilled rows. Shielded: a commit in progress is never abandoned halfway."""
        async with self._commit_lock:
            if self._failed is not None:
                raise StoreError(f"the state store {self.path} failed earlier")
            refill = []
            for host in self._refill:
                state = self._frontier.host(host)
                want = self._window - len(state.queue)
                if want > 0 and self._backlog.get(host, 0) > 0:
                    refill.append((host, want))
            self._refill.clear()
            self._urgent = False
            batch, self._batch = self._batch, Batch()
            if not batch and not refill:
                self._batch_started = math.inf
                self._batch_pages_now = 0
                return
            self._writing_fps, self._pending_fps = self._pending_fps, set()
            self._batch_pages_now = 0
            self._batch_started = math.inf
            assert self._counters is not None
            stats = dump_counters(self._counters)
            with trio.CancelScope(shield=True):
                try:
                    refilled = await trio.to_thread.run_sync(
                        self._writer.commit, batch, refill, stats, self._outputs
                    )
                except BaseException as exc:
                    self._failed = exc
                    raise
                self.commits += 1
                self._generation += 1
                if self._lookups:
                    self._committed.append((self._generation, self._writing_fps))
                else:
                    self._committed.clear()
                self._writing_fps = set()
                for host, claims in refilled.items():
                    self._take_refill(host, claims)
                    # rows still pending in the next batch: ask again after it
                    if self._backlog.get(host, 0) and not claims:
                        self._refill.add(host)
                self._committed_event.set()
                self._committed_event = trio.Event()
                self._notify()

    def _take_refill(self, host: str, claims: Sequence[tuple[Claim, float]]) -> None:
        if not claims:
            return
        left = self._backlog.get(host, 0) - len(claims)
        self._backlog_total -= len(claims)
        if left > 0:
            self._backlog[host] = left
        else:
            self._backlog.pop(host, None)
        now = trio.current_time()
        for claim, wait in claims:
            if wait > 0:
                self._delay(claim, now + wait)
            else:
                self._frontier.push(host, claim, claim.request.priority)

    def _after_batch_change(self, pages: int = 0) -> None:
        if self._batch_started == math.inf:
            self._batch_started = trio.current_time()
            self._poke()
        self._batch_pages_now += pages
        if self._batch_pages_now >= self._batch_pages:
            self._poke()

    def _check(self) -> None:
        if not self._open:
            if self._failed is not None:
                raise StoreError(f"the state store {self.path} failed earlier")
            raise RuntimeError("the store is not open (use `async with store.open(...)`)")

    # ------------------------------------------------------------ seen set
    def seen_hint(self, fingerprint: int) -> bool:
        return self._known(fingerprint) if self._open else False

    def _known(self, fp: int) -> bool:
        return (
            fp in self._hot
            or fp in self._warm
            or fp in self._pending_fps
            or fp in self._writing_fps
        )

    def _remember(self, fp: int) -> None:
        hot = self._hot
        hot.add(fp)
        if len(hot) >= self._cache_size:
            self._warm = hot
            self._hot = set()

    async def _lookup(self, fps: list[int]) -> set[int]:
        """Which of ``fps`` the database holds: one thread call for a page's links."""
        async with self._read_lock:
            return await trio.to_thread.run_sync(self._lookup_sync, fps)

    def _lookup_sync(self, fps: list[int]) -> set[int]:
        reader = self._reader
        assert reader is not None
        found: set[int] = set()
        try:
            for i in range(0, len(fps), 500):
                chunk = [signed(fp) for fp in fps[i : i + 500]]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT fp FROM frontier WHERE fp IN ({marks})"
                found.update(unsigned(fp) for (fp,) in reader.execute(query, chunk))
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from None
        return found

    async def _fresh(self, new: Sequence[NewRequest]) -> list[NewRequest]:
        """The requests whose fingerprint was never seen, registered as seen now."""
        # seen before: known now (the recent cache may rotate below), or the database says so
        found: set[int] = set()
        candidates: list[int] = []
        for item in new:
            fp = item.fingerprint
            if item.request.dont_filter:
                continue
            if self._known(fp):
                found.add(fp)
            elif fp in self._bloom:
                candidates.append(fp)
        start = self._generation
        if candidates:
            token = object()
            self._lookups[token] = start
            try:
                found |= await self._lookup(candidates)
            finally:
                del self._lookups[token]
        # from here on, no checkpoint: the checks and the registration are one step
        late: set[int] = set()
        if candidates:
            for generation, fps in self._committed:
                if generation > start:
                    late |= fps
            oldest = min(self._lookups.values(), default=self._generation)
            self._committed = [(g, s) for g, s in self._committed if g > oldest]
        out: list[NewRequest] = []
        for item in new:
            fp = item.fingerprint
            if item.request.dont_filter:
                out.append(item)
                continue
            if fp in found:
                self._remember(fp)
                continue
            if self._known(fp) or fp in late:
                continue
            self._pending_fps.add(fp)
            self._remember(fp)
            self._bloom.add(fp)
            out.append(item)
        return out

    # ------------------------------------------------------------ queueing
    def _queue(self, fresh: Sequence[NewRequest]) -> int:
        frontier = self._frontier
        budget = self._max_per_host
        count = 0
        batch = self._batch
        for item in fresh:
            host = item.host
            if budget is not None:
                n = self._admitted.get(host, 0)
                if n >= budget:
                    self._over_budget += 1
                    continue
                self._admitted[host] = n + 1
                self._dirty_host(host)
            request = item.request
            seq = next(self._row_seq)
            key = row_key(item.fingerprint, seq) if request.dont_filter else item.fingerprint
            backlog = self._backlog.get(host, 0)
            if backlog == 0 and len(frontier.host(host).queue) < self._window:
                frontier.push(host, Claim(request, key, host), request.priority)
                state = INFLIGHT
            else:
                self._backlog[host] = backlog + 1
                self._backlog_total += 1
                self._want_refill(host)
                state = QUEUED
            batch.rows.append((key, request.url, host, request, state, request.priority, seq))
            count += 1
        return count

    def _want_refill(self, host: str) -> None:
        state = self._frontier.host(host)
        if len(state.queue) <= self._low_water:
            self._refill.add(host)
            if not state.queue:
                self._urgent = True
                self._poke()

    def _dirty_host(self, host: str) -> None:
        state = self._frontier.host(host)
        self._batch.hosts.append(
            (host, self._host_wall.get(host, 0.0), state.delay, self._admitted.get(host, 0))
        )
        self._after_batch_change()

    async def _backpressure(self) -> None:
        while self._batch_pages_now >= self._max_pending and self._failed is None:
            self._poke()
            await self._committed_event.wait()

    # ------------------------------------------------------------ interface
    async def add(self, requests: Sequence[NewRequest]) -> int:
        self._check()
        fresh = await self._fresh(requests)
        count = self._queue(fresh)
        if count:
            self._after_batch_change()
            self._notify()
        return count

    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        self._check()
        items = [NewRequest(Request(url=""), fp, "") for fp in fingerprints]
        fresh = {item.fingerprint for item in await self._fresh(items)}
        out = []
        for fp in fingerprints:
            new = fp in fresh
            if new:
                fresh.discard(fp)
                self._batch.seen.append(fp)
            out.append(new)
        if self._batch.seen:
            self._after_batch_change()
        return out

    async def claim(
        self, now: float, limit: int, part: int = 0, *, steal: bool = True
    ) -> list[Claim]:
        if self._delayed:
            self._promote(now)
        out = []
        for host, claim in self._frontier.claim(now, limit, part, steal=steal):
            out.append(claim)
            if self._backlog.get(host):
                self._want_refill(host)
        return out

    async def complete(
        self,
        claim: Claim,
        new: Sequence[NewRequest],
        items: Sequence[Any] = (),
        *,
        graph: PageGraph | None = None,
    ) -> int:
        self._check()
        await self._backpressure()
        fresh = await self._fresh(new) if new else []
        count = self._queue(fresh)
        batch = self._batch
        batch.done.append(claim.fingerprint)
        if items:
            batch.items.append((claim.fingerprint, list(items)))
        if graph is not None:
            batch.graph.append(graph)
        self._frontier.release(claim.host)
        self._after_batch_change(1)
        self._notify()
        return count

    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        self._check()
        self._frontier.release(claim.host)
        self._delay(Claim(request, claim.fingerprint, claim.host), not_before)
        wall = time.time() + max(0.0, not_before - trio.current_time())
        self._batch.retries.append((request, wall, claim.fingerprint))
        self._after_batch_change()
        self._notify()

    async def pause_host(self, host: str, until: float) -> None:
        self._frontier.pause(host, until)
        wall = time.time() + max(0.0, until - trio.current_time())
        if wall > self._host_wall.get(host, 0.0):
            self._host_wall[host] = wall
        self._dirty_host(host)
        self._notify()

    async def give_back_turn(self, host: str) -> None:
        self._frontier.give_back(host)

    async def set_host_delay(self, host: str, delay: float) -> None:
        self._frontier.set_delay(host, delay)
        self._dirty_host(host)

    def link_graph(self) -> SqliteCrawlGraph | None:
        """The link graph committed to the file so far (read from the file)."""
        return read_graph(self.path)

    def budget_refusals(self) -> int:
        return self._over_budget

    def outstanding(self) -> int:
        f = self._frontier
        return len(f) + f.in_flight + len(self._delayed) + self._backlog_total

    def queued(self) -> int:
        return len(self._frontier) + len(self._delayed) + self._backlog_total

    def in_flight(self) -> int:
        return self._frontier.in_flight

    def active_hosts(self) -> int:
        """Hosts with work in memory or in the file: counted at most every half second (a
        figure for the statistics; counting looks at every host with a backlog)."""
        now = trio.current_time()
        if now - self._hosts_counted_at >= 0.5:
            frontier = self._frontier
            idle_with_backlog = sum(
                1
                for host in self._backlog
                if not (state := frontier.host(host)).queue and not state.in_flight
            )
            self._hosts_count = frontier.active_hosts() + idle_with_backlog
            self._hosts_counted_at = now
        return self._hosts_count

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        def read() -> tuple[int, bytes, float] | None:
            assert self._reader is not None
            row = self._reader.execute(
                "SELECT robots_status, robots_body, robots_fetched_at FROM hosts WHERE host = ?",
                (host,),
            ).fetchone()
            if row is None or row[0] is None:
                return None
            return int(row[0]), bytes(row[1] or b""), float(row[2] or 0.0)

        self._check()
        async with self._read_lock:
            try:
                return await trio.to_thread.run_sync(read)
            except sqlite3.Error as exc:
                raise translate(self.path, exc) from None

    async def add_scope(self, url: str) -> None:
        if self._heard_scope(url):
            self._batch.scope = self.scope_additions()
            self._after_batch_change()

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:
        self._check()
        self._batch.robots.append((host, status, body, fetched_at))
        self._after_batch_change()

    # ------------------------------------------------------------ introspection
    def statistics(self) -> dict[str, int]:
        """Memory-side figures (for benchmarks and tests)."""
        return {
            "window": len(self._frontier),
            "delayed": len(self._delayed),
            "backlog": self._backlog_total,
            "hot": len(self._hot) + len(self._warm),
            "bloom_bytes": self._bloom.nbytes(),
            "commits": self.commits,
        }
