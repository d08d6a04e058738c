"""The store contract, whole: what every backend (memory, SQLite, Redis, a worker's remote
view) does for the engine. Small and batch-oriented, so remote and durable stores stay cheap.

A store holds one crawl's frontier, seen set, per-host politeness state (the delay and
concurrency of each host, pauses), robots.txt answers, scope additions and statistics, and it
is the *commit sink* of the crawl's outputs.

Outputs: the store owns the crawl's exporters (:meth:`CrawlStore.attach_outputs`) because
what reaches an output file must be what the store committed. A durable store writes a
batch's items to the exporters, flushes them, and records each file's byte offset in the same
transaction as the pages, links and items; on resume the files are truncated back to the
recorded offsets (:meth:`CrawlStore.output_offsets`), so a file never holds an uncommitted
or half-written record. The memory store writes the items of a page when it completes.

Scope: a seed that redirects (``http://`` to ``https://``, ``example.com`` to ``www.``) takes
its target's site into the scope. :meth:`CrawlStore.add_scope` records that for the whole
crawl, and every engine working on the crawl (other processes and workers, a resumed run)
hears of it through the listener given to :meth:`CrawlStore.watch_scope` before it is handed
any request that needs it.

Link graph (opt-in, ``Settings.link_graph``): a completed page may bring a
:class:`~trio_crawler._graph.PageGraph` (its links with their anchor text, the out-of-scope
links met on it, its noindex); the store records it in the page's commit, bounded as
:mod:`trio_crawler._graph` says, and answers for it as a
:class:`~trio_crawler._graph.CrawlGraph` (:meth:`CrawlStore.link_graph`, or the backend's
reader of a stored crawl).

Budgets: requests refused because their host's page budget (``max_pages_per_host``) was
spent are counted by the store (:meth:`CrawlStore.budget_refusals`).

Counting rule (the termination rule reads it): ``outstanding()`` is the number of requests
queued, waiting for a retry, or in flight. :meth:`CrawlStore.add` raises it by the number of
new requests *before* they can be claimed; :meth:`CrawlStore.complete` lowers it by one *after*
the page's new links were added (they are passed in the same call), and :meth:`CrawlStore.retry`
leaves it unchanged. So ``outstanding() == 0`` means no work exists anywhere and none can
appear: the crawl is over.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from .._records import quick_pickle
from .._spider import Request

if TYPE_CHECKING:
    from .._export import Exporter
    from .._graph import CrawlGraph, PageGraph
    from .._stats import Counters


@quick_pickle
@dataclasses.dataclass(frozen=True, slots=True)
class NewRequest:
    """A request on its way into the frontier, with its dedupe fingerprint and host key."""

    request: Request
    fingerprint: int
    host: str


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Claim:
    """A request handed out for fetching. Identity matters: it is the lease of one fetch."""

    request: Request
    fingerprint: int
    host: str


@dataclasses.dataclass(frozen=True, slots=True)
class StoreStatus:
    """Where a stored crawl stands (``trio-crawler status``), whatever keeps it."""

    #: The state file, or the Redis URL (password hidden) and crawl id.
    location: str
    #: What identifies the crawl: spider, seeds, scope, URL rules.
    crawl: Mapping[str, Any]
    #: Why it ended (``finished``, a limit, ``interrupted``...), or None: not ended, or unknown.
    stop_reason: str | None
    done: int
    queued: int
    #: In flight at the stop (fetched again on resume), or leased by running workers.
    in_flight: int
    items: int
    #: The crawl's statistics (counters), as stored.
    stats: Mapping[str, Any]
    #: Output files and their committed sizes.
    outputs: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: The busiest hosts: (host, done, left).
    hosts: Sequence[tuple[str, int, int]] = ()
    #: Workers that joined (Redis): id -> what they said of themselves.
    workers: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.stop_reason == "finished"


class CrawlStore(abc.ABC):
    """Frontier, seen set, per-host politeness state and counters of one crawl."""

    #: Whether the crawl survives the process (and :meth:`open` may resume it).
    durable: ClassVar[bool] = False

    #: Whether :meth:`mark_seen` is a call into this process' memory that no crash can
    #: separate from the next :meth:`complete` (nothing is kept after the process). The engine
    #: then refuses a link its host's robots.txt disallows when the page that found it is
    #: done, instead of queueing it for a turn of the host (see ``RobotsGate.sort_out``).
    seen_in_memory: bool = False

    def __init__(self) -> None:
        self._outputs: list[Exporter] = []
        self._scope_listener: Callable[[str], None] | None = None
        self._scope: dict[str, None] = {}

    @abc.abstractmethod
    async def add(self, requests: Sequence[NewRequest]) -> int:
        """Queue the requests whose fingerprint is new (all with ``dont_filter``); mark them seen.
        Returns how many were queued."""

    @abc.abstractmethod
    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        """Add fingerprints to the seen set without queueing; True for each one that was new
        (a redirect target, for example)."""

    def seen_hint(self, fingerprint: int) -> bool:
        """True only when ``fingerprint`` is surely seen already (a fast, local answer; False
        means "ask :meth:`add`"). The engine skips building requests for such links."""
        return False

    @abc.abstractmethod
    async def claim(self, now: float, limit: int) -> list[Claim]:
        """Up to ``limit`` requests whose host is ready at ``now`` (politeness included)."""

    @abc.abstractmethod
    def next_ready_time(self) -> float | None:
        """When :meth:`claim` may next return something (None: nothing is queued)."""

    @abc.abstractmethod
    async def wait_changed(self, until: float | None) -> None:
        """Return when the frontier changed (added, released, requeued) or at ``until``."""

    @abc.abstractmethod
    async def complete(
        self,
        claim: Claim,
        new: Sequence[NewRequest],
        items: Sequence[Any] = (),
        *,
        graph: PageGraph | None = None,
    ) -> int:
        """Finish ``claim``: record its items, queue its new requests (deduped), release its
        host, lower the count, and record what the page adds to the link graph (``graph``,
        with ``Settings.link_graph``), all as one unit. Returns how many new requests were
        queued."""

    def link_graph(self) -> CrawlGraph | None:
        """The link graph this store kept (:mod:`trio_crawler._graph`), readable in this
        process; None when it keeps none (``link_graph`` off) or cannot answer synchronously
        (Redis: the report reads it with :func:`~.redis_conn.read_referrers` and its
        siblings)."""
        return None

    @abc.abstractmethod
    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        """Put ``request`` (the claim's, updated) back, not to start before ``not_before``."""

    @abc.abstractmethod
    async def pause_host(self, host: str, until: float) -> None:
        """No request to ``host`` starts before ``until`` (429/503, rate limits)."""

    async def give_back_turn(self, host: str) -> None:  # noqa: B027  (optional, not abstract)
        """A claim of ``host`` ended before any request was sent (robots.txt disallowed it):
        the host's next claim need not wait its delay for this one. Called before the
        claim's ``complete``. Stores that space claims in memory implement it; by default the
        turn stays spent (the crawl is only slower)."""

    @abc.abstractmethod
    async def set_host_delay(self, host: str, delay: float) -> None:
        """The minimum gap between request starts on ``host`` (Crawl-delay, adaptive throttle)."""

    @abc.abstractmethod
    def outstanding(self) -> int:
        """Requests queued, delayed or in flight."""

    @abc.abstractmethod
    def queued(self) -> int: ...

    @abc.abstractmethod
    def in_flight(self) -> int: ...

    @abc.abstractmethod
    def active_hosts(self) -> int: ...

    def budget_refusals(self) -> int:
        """Requests refused so far because their host's page budget was spent."""
        return 0

    # ------------------------------------------------------------ scope
    def watch_scope(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(url)`` for every URL added to the crawl's scope
        (:meth:`add_scope`), by this engine or any other working on the crawl, and for those
        stored before a resume. Additions already heard are replayed to it now."""
        self._scope_listener = listener
        for url in self._scope:
            listener(url)

    async def add_scope(self, url: str) -> None:
        """A seed redirected to ``url``: its site joins the scope of the whole crawl.
        Default: this process only (the listener hears of it at once)."""
        self._heard_scope(url)

    def _heard_scope(self, url: str) -> bool:
        """Tell the listener about ``url`` once; True when it was new."""
        if url in self._scope:
            return False
        self._scope[url] = None
        if self._scope_listener is not None:
            self._scope_listener(url)
        return True

    def scope_additions(self) -> list[str]:
        """Every URL added to the scope so far, in order."""
        return list(self._scope)

    # ------------------------------------------------------------ crawl lifecycle
    @asynccontextmanager
    async def open(self, meta: Mapping[str, Any], counters: Counters) -> AsyncIterator[bool]:
        """Hold the store open for one crawl; yields True when resuming a stored crawl.

        A durable store compares ``meta`` (seeds, scope, spider...) with what it stored and
        raises :class:`~trio_crawler.StateMismatch` naming what may not change; it reads
        ``counters`` at each commit. On resume a store of one process (SQLite) loads the stored
        figures into ``counters`` first; a store shared by workers (Redis) keeps the
        crawl-wide figures itself, and each worker's counters count what that worker did. A store
        that needs background tasks (a writer thread's feeder, a lease sweeper) runs them in a
        nursery owned by this context manager. On exit, pending work is committed in a shielded
        scope of at most 0.5 s. Default: a new crawl every time, nothing in the background.
        """
        try:
            yield False
        finally:
            with trio.move_on_after(0.5) as cleanup:
                cleanup.shield = True
                await self.close()

    def attach_outputs(self, exporters: Sequence[Exporter]) -> None:
        """The commit sink: items of completed pages go to these exporters, written and
        flushed by the store when it commits them (after :meth:`output_offsets`)."""
        self._outputs = list(exporters)

    def output_offsets(self) -> dict[str, int]:
        """Committed byte offset of each output file of a resumed crawl (path -> offset)."""
        return {}

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        """A robots.txt answer stored for ``host``: (status, body, wall-clock time fetched)."""
        return None

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:  # noqa: B027
        """Keep a robots.txt answer so other workers and a resumed crawl reuse it."""

    async def end(self, stop_reason: str) -> None:  # noqa: B027  (optional hook)
        """The crawl ended in this process for ``stop_reason`` (``finished``, a limit,
        ``interrupted``...): a durable store keeps it for ``status``. Called before
        :meth:`close`, shielded and bounded."""

    async def flush(self) -> None:  # noqa: B027  (optional hook)
        """Commit what is pending now (the engine calls it when the crawl ends)."""

    async def close(self) -> None:  # noqa: B027  (optional hook)
        """Commit what is pending and release resources. Called shielded, bounded."""
