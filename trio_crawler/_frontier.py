"""The host-aware frontier (pure, synchronous): which URL may be fetched next, and when.

Theory of operation
-------------------
Every host key (an origin ``scheme://host:port``) has its own queue, ordered by priority
(higher first) then by arrival (breadth-first) or reverse arrival (depth-first). A host is
*ready* when its queue is not empty, fewer than its concurrency limit of requests are in
flight, and its next allowed start time has come. Ready hosts sit in one heap keyed by the
time they become ready, so:

* a host that must wait never holds up the others (it is simply not at the top of the heap);
* hosts are served in turn (a host goes back into the heap after each claim, behind the
  others already ready), so a large host never starves small ones;
* claiming costs O(log hosts), whatever the number of queued URLs.

``claim`` marks a request in flight and moves the host's next allowed time forward by its
delay: this is the one place the politeness rule lives. ``release`` ends the flight.
``pause`` pushes a host's next allowed time (429/503, Retry-After, rate-limit headers).

The heap may hold stale entries (a host rescheduled); each host carries a version number and
stale entries are skipped when popped.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(slots=True)
class HostState(Generic[T]):
    key: str
    delay: float
    concurrency: int
    queue: list[tuple[int, int, T]] = dataclasses.field(default_factory=list)
    in_flight: int = 0
    next_allowed: float = 0.0
    version: int = 0
    scheduled: bool = False
    claimed: int = 0  # requests started so far (for per-host page budgets and statistics)


class Frontier(Generic[T]):
    """Per-host queues with per-host concurrency and delay. ``T`` is the queued entry type."""

    def __init__(
        self,
        *,
        per_host_concurrency: int,
        per_host_delay: float,
        depth_first: bool = False,
    ) -> None:
        self.per_host_concurrency = per_host_concurrency
        self.per_host_delay = per_host_delay
        self._sign = -1 if depth_first else 1
        self._hosts: dict[str, HostState[T]] = {}
        self._ready: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._queued = 0
        self._in_flight = 0
        self._active = 0  # hosts with something queued or in flight (kept, not counted)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        """Queued entries (not counting those in flight)."""
        return self._queued

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def host(self, key: str) -> HostState[T]:
        state = self._hosts.get(key)
        if state is None:
            state = self._hosts[key] = HostState(
                key=key, delay=self.per_host_delay, concurrency=self.per_host_concurrency
            )
        return state

    def hosts(self) -> Iterator[HostState[T]]:
        return iter(self._hosts.values())

    def active_hosts(self) -> int:
        """Hosts with something queued or in flight (kept up to date: O(1))."""
        return self._active

    def next_ready_time(self) -> float | None:
        """When the earliest host becomes ready, or None when no host has claimable work."""
        while self._ready:
            when, _, key, version = self._ready[0]
            if self._hosts[key].version == version:
                return when
            heapq.heappop(self._ready)
        return None

    # ------------------------------------------------------------------ changes
    def push(self, key: str, entry: T, priority: int = 0) -> None:
        state = self.host(key)
        if not state.queue and not state.in_flight:
            self._active += 1
        heapq.heappush(state.queue, (-priority, self._sign * next(self._seq), entry))
        self._queued += 1
        self._schedule(state)

    def claim(self, now: float, limit: int) -> list[tuple[str, T]]:
        """Up to ``limit`` entries whose hosts are ready at ``now``, marked in flight."""
        out: list[tuple[str, T]] = []
        ready = self._ready
        hosts = self._hosts
        while ready and len(out) < limit:
            when, _, key, version = ready[0]
            state = hosts[key]
            if state.version != version:
                heapq.heappop(ready)
                continue
            if when > now:
                break
            heapq.heappop(ready)
            state.scheduled = False
            _, _, entry = heapq.heappop(state.queue)
            self._queued -= 1
            state.in_flight += 1
            state.claimed += 1
            self._in_flight += 1
            state.next_allowed = max(state.next_allowed, now) + state.delay
            out.append((key, entry))  # still active: in flight
            self._schedule(state)
        return out

    def release(self, key: str) -> None:
        """A request of host ``key`` finished (successfully or not)."""
        state = self._hosts[key]
        state.in_flight -= 1
        self._in_flight -= 1
        if not state.queue and not state.in_flight:
            self._active -= 1
        self._schedule(state)

    def pause(self, key: str, until: float) -> None:
        """No new request to host ``key`` starts before ``until``."""
        state = self.host(key)
        if until > state.next_allowed:
            state.next_allowed = until
            state.scheduled = False
            self._schedule(state)

    def set_delay(self, key: str, delay: float) -> None:
        self.host(key).delay = delay

    def set_concurrency(self, key: str, concurrency: int) -> None:
        state = self.host(key)
        state.concurrency = concurrency
        self._schedule(state)

    def drain(self) -> Iterator[tuple[str, T]]:
        """Remove and yield every queued entry (for shutting down or spilling)."""
        for state in self._hosts.values():
            if state.queue and not state.in_flight:
                self._active -= 1
            while state.queue:
                _, _, entry = heapq.heappop(state.queue)
                self._queued -= 1
                yield state.key, entry
            state.version += 1
            state.scheduled = False
        self._ready.clear()

    def _schedule(self, state: HostState[T]) -> None:
        if state.scheduled or not state.queue or state.in_flight >= state.concurrency:
            return
        state.version += 1
        state.scheduled = True
        heapq.heappush(self._ready, (state.next_allowed, next(self._seq), state.key, state.version))
