"""What the in-process stores (memory, SQLite) share: the frontier of claims, the heap of
retries waiting for their time, and the Event that wakes the scheduler when anything changes;
and the robots.txt answers an in-process store keeps (:class:`RobotsAnswers`)."""

from __future__ import annotations

import collections
import heapq
import itertools
import math

import trio

from .._frontier import Frontier
from .base import Claim


class LocalQueue:
    """Mixed into a :class:`~trio_crawler._store.CrawlStore` that keeps its frontier in this
    process. The store sets ``_frontier`` and calls :meth:`_init_queue` in ``__init__``."""

    _frontier: Frontier[Claim]

    def _init_queue(self) -> None:
        self._delayed: list[tuple[float, int, Claim]] = []
        self._seq = itertools.count()
        self._changed = trio.Event()

    def _notify(self) -> None:
        """Wake whoever waits in :meth:`wait_changed`."""
        self._changed.set()
        self._changed = trio.Event()

    def _delay(self, claim: Claim, not_before: float) -> None:
        """Hold ``claim`` until ``not_before`` (a retry waiting for its time)."""
        heapq.heappush(self._delayed, (not_before, next(self._seq), claim))

    def _promote(self, now: float) -> None:
        """Move the retries whose time has come back into the frontier."""
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, claim = heapq.heappop(delayed)
            self._frontier.push(claim.host, claim, claim.request.priority)

    def set_partitions(self, parts: int) -> None:
        """Serve ``parts`` processes, each its own hosts first (see the frontier's
        ``set_partitions``); the shared store of ``--processes`` sets it."""
        self._frontier.set_partitions(parts)

    def set_live(self, part: int, live: bool) -> None:
        """Partition ``part``'s process joined (or left)."""
        self._frontier.set_live(part, live)

    def next_ready_time(self) -> float | None:
        ready = self._frontier.next_ready_time()
        if self._delayed:
            waiting = self._delayed[0][0]
            ready = waiting if ready is None else min(ready, waiting)
        return ready

    async def wait_changed(self, until: float | None) -> None:
        with trio.move_on_at(math.inf if until is None else until):
            await self._changed.wait()


#: Bytes of robots.txt bodies an in-process store keeps (the least recently used go first).
ROBOTS_BYTES = 64 * 1024 * 1024


class RobotsAnswers:
    """robots.txt answers as received (status, body, wall-clock time fetched) by origin,
    bounded by their bytes (least recently used first out). The engine keeps parsed policies
    for fewer hosts; one that left its cache is parsed again from here, not fetched again,
    so a crawl of many thousands of hosts never asks a host twice for its robots.txt."""

    def __init__(self, max_bytes: int = ROBOTS_BYTES) -> None:
        self._max = max_bytes
        self._bytes = 0
        self._answers: collections.OrderedDict[str, tuple[int, bytes, float]] = (
            collections.OrderedDict()
        )

    def get(self, host: str) -> tuple[int, bytes, float] | None:
        answer = self._answers.get(host)
        if answer is not None:
            self._answers.move_to_end(host)
        return answer

    def put(self, host: str, status: int, body: bytes, fetched_at: float) -> None:
        old = self._answers.pop(host, None)
        if old is not None:
            self._bytes -= len(old[1]) + len(host)
        self._answers[host] = (status, body, fetched_at)
        self._bytes += len(body) + len(host)
        while self._bytes > self._max and len(self._answers) > 1:
            gone, (_, gone_body, _) = self._answers.popitem(last=False)
            self._bytes -= len(gone_body) + len(gone)
