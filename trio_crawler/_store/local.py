"""What the in-process stores (memory, SQLite) share: the frontier of claims, the heap of
retries waiting for their time, and the Event that wakes the scheduler when anything changes."""

from __future__ import annotations

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

    def next_ready_time(self) -> float | None:
        ready = self._frontier.next_ready_time()
        if self._delayed:
            waiting = self._delayed[0][0]
            ready = waiting if ready is None else min(ready, waiting)
        return ready

    async def wait_changed(self, until: float | None) -> None:
        with trio.move_on_at(math.inf if until is None else until):
            await self._changed.wait()
