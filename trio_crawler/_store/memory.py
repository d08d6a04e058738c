"""The in-process store: a :class:`~trio_crawler._frontier.Frontier`, a set of 64-bit
fingerprints, a heap of requests waiting for a retry time, and (``link_graph``) a
:class:`~trio_crawler._graph.MemoryCrawlGraph`. Nothing here blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._frontier import Frontier
from .._graph import MemoryCrawlGraph, PageGraph
from .._spider import Request
from .base import Claim, CrawlStore, NewRequest
from .local import LocalQueue, RobotsAnswers

if TYPE_CHECKING:
    from .._settings import Settings


class MemoryStore(LocalQueue, CrawlStore):
    """Everything in memory. Fingerprints are 64-bit ints (not URL strings)."""

    seen_in_memory = True

    def __init__(
        self,
        *,
        per_host_concurrency: int = 2,
        per_host_delay: float = 0.25,
        max_pages_per_host: int | None = None,
        depth_first: bool = False,
        link_graph: bool = False,
    ) -> None:
        super().__init__()
        self._frontier: Frontier[Claim] = Frontier(
            per_host_concurrency=per_host_concurrency,
            per_host_delay=per_host_delay,
            depth_first=depth_first,
        )
        self._init_queue()
        self._seen: set[int] = set()
        self._max_per_host = max_pages_per_host
        self._host_admitted: dict[str, int] = {}
        self._robots = RobotsAnswers()
        self._over_budget = 0
        self._graph = MemoryCrawlGraph() if link_graph else None

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryStore:
        return cls(
            per_host_concurrency=settings.per_host_concurrency,
            per_host_delay=settings.per_host_delay,
            max_pages_per_host=settings.max_pages_per_host,
            depth_first=settings.order == "depth",
            link_graph=settings.link_graph,
        )

    # -------------------------------------------------------------- internals
    def _queue(self, new: Sequence[NewRequest]) -> int:
        seen = self._seen
        frontier = self._frontier
        budget = self._max_per_host
        admitted = self._host_admitted
        count = 0
        for item in new:
            fp = item.fingerprint
            if not item.request.dont_filter:
                if fp in seen:
                    continue
                seen.add(fp)
            if budget is not None:
                n = admitted.get(item.host, 0)
                if n >= budget:
                    self._over_budget += 1
                    continue
                admitted[item.host] = n + 1
            frontier.push(item.host, Claim(item.request, fp, item.host), item.request.priority)
            count += 1
        return count

    # -------------------------------------------------------------- interface
    async def add(self, requests: Sequence[NewRequest]) -> int:
        return self.add_now(requests)

    def add_now(self, requests: Sequence[NewRequest]) -> int:
        """:meth:`add`, which never waits here, called without awaiting (``--split hosts``
        routes links from synchronous code)."""
        count = self._queue(requests)
        if count:
            self._notify()
        return count

    def wake(self) -> None:
        """Wake whoever waits in :meth:`wait_changed`: news from another process."""
        self._notify()

    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        out = []
        for fp in fingerprints:
            new = fp not in self._seen
            self._seen.add(fp)
            out.append(new)
        return out

    def seen_hint(self, fingerprint: int) -> bool:
        return fingerprint in self._seen

    async def claim(
        self, now: float, limit: int, part: int = 0, *, steal: bool = True
    ) -> list[Claim]:
        if self._delayed:
            self._promote(now)
        return [claim for _, claim in self._frontier.claim(now, limit, part, steal=steal)]

    async def complete(
        self,
        claim: Claim,
        new: Sequence[NewRequest],
        items: Sequence[Any] = (),
        *,
        graph: PageGraph | None = None,
    ) -> int:
        self.export(items, graph)
        count = self._queue(new) if new else 0
        self._frontier.release(claim.host)
        self._notify()
        return count

    def export(self, items: Sequence[Any], graph: PageGraph | None) -> None:
        """Items and a page's link graph committed in another process (``--split hosts``)."""
        if graph is not None:
            if self._graph is None:
                self._graph = MemoryCrawlGraph()
            self._graph.add_page(graph)
        if items:
            for exporter in self._outputs:
                exporter.write_many(items)

    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        self._frontier.release(claim.host)
        self._delay(Claim(request, claim.fingerprint, claim.host), not_before)
        self._notify()

    async def pause_host(self, host: str, until: float) -> None:
        self._frontier.pause(host, until)
        self._notify()

    async def give_back_turn(self, host: str) -> None:
        self._frontier.give_back(host)

    async def set_host_delay(self, host: str, delay: float) -> None:
        self._frontier.set_delay(host, delay)

    def link_graph(self) -> MemoryCrawlGraph | None:
        return self._graph

    def budget_refusals(self) -> int:
        return self._over_budget

    def outstanding(self) -> int:
        return len(self._frontier) + self._frontier.in_flight + len(self._delayed)

    def queued(self) -> int:
        return len(self._frontier) + len(self._delayed)

    def in_flight(self) -> int:
        return self._frontier.in_flight

    def active_hosts(self) -> int:
        return self._frontier.active_hosts()

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        return self._robots.get(host)

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:
        self._robots.put(host, status, body, fetched_at)

    async def flush(self) -> None:
        for exporter in self._outputs:
            exporter.flush()

    async def close(self) -> None:
        await self.flush()

    def seen_count(self) -> int:
        return len(self._seen)
