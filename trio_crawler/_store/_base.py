"""The store interface: small and batch-oriented, so remote and durable stores stay cheap.

Outputs: the store owns the crawl's exporters (:meth:`CrawlStore.attach_outputs`) because
what reaches an output file must be what the store committed. A durable store writes a
batch's items to the exporters, flushes them, and records each file's byte offset in the same
transaction as the pages, links and items; on resume the files are truncated back to the
recorded offsets (:meth:`CrawlStore.output_offsets`), so a file never holds an uncommitted
or half-written record.

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
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from .._spider import Request

if TYPE_CHECKING:
    from .._export import Exporter
    from .._stats import Counters


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


class CrawlStore(abc.ABC):
    """Frontier, seen set, per-host politeness state and counters of one crawl."""

    def __init__(self) -> None:
        self._outputs: list[Exporter] = []

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
        self, claim: Claim, new: Sequence[NewRequest], items: Sequence[Any] = ()
    ) -> int:
        """Finish ``claim``: record its items, queue its new requests (deduped), release its
        host, lower the count, all as one unit. Returns how many new requests were queued."""

    @abc.abstractmethod
    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        """Put ``request`` (the claim's, updated) back, not to start before ``not_before``."""

    @abc.abstractmethod
    async def pause_host(self, host: str, until: float) -> None:
        """No request to ``host`` starts before ``until`` (429/503, rate limits)."""

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

    # ------------------------------------------------------------ crawl lifecycle
    @asynccontextmanager
    async def open(self, meta: Mapping[str, Any], counters: Counters) -> AsyncIterator[bool]:
        """Hold the store open for one crawl; yields True when resuming a stored crawl.

        A durable store compares ``meta`` (seeds, scope, spider...) with what it stored and
        raises :class:`~trio_crawler.StateMismatch` naming what may not change; on resume it
        loads the stored figures into ``counters`` and reads them again at each commit. A store
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
        """Items of completed pages go to these exporters (after :meth:`output_offsets`)."""
        self._outputs = list(exporters)

    def output_offsets(self) -> dict[str, int]:
        """Committed byte offset of each output file of a resumed crawl (path -> offset)."""
        return {}

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        """A robots.txt answer stored for ``host``: (status, body, wall-clock time fetched)."""
        return None

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:  # noqa: B027
        """Keep a robots.txt answer so other workers and a resumed crawl reuse it."""

    async def flush(self) -> None:  # noqa: B027  (optional hook)
        """Commit what is pending now (the engine calls it when the crawl ends)."""

    async def close(self) -> None:  # noqa: B027  (optional hook)
        """Commit what is pending and release resources. Called shielded, bounded."""
