"""The host-aware frontier (pure, synchronous): which URL may be fetched next, and when.

Theory of operation
-------------------
Every host key (an origin ``scheme://host:port``) has its own queue, ordered by priority
(higher first) then by arrival (breadth-first) or reverse arrival (depth-first). A host is
*ready* when its queue is not empty, fewer than its concurrency limit of requests are in
flight, and its next allowed start time has come. Hosts wait in one heap keyed by the time
they become ready; a claim moves those whose time has come to a second heap, the ready ones,
in the order they are served:

* a host that must wait never holds up the others (it is simply not ready yet);
* hosts are served in turn (a host goes back behind the others after each claim), so a
  large host never starves small ones;
* a host the crawl has started goes ahead of a new one that became ready up to
  ``warm_lead`` seconds (300) after it. A broad crawl finds hosts faster than it can serve
  them; served strictly in turn, a started host waits behind every new host found meanwhile
  (a minute and more with 20,000 hosts), and its keep-alive connection is long closed by
  then: 1.04 requests per connection (``scripts/bench_broad --hosts 20000 --pages 5``), and
  1.65 with a lead of 30 s; 6.00, one connection per host, with 300 s. So hosts are
  finished while their connections are open and few hosts are active at once; a new host
  still gets every slot the started ones cannot use, and waits at most ``warm_lead`` more;
* claiming costs O(log hosts), whatever the number of queued URLs.

``claim`` marks a request in flight and moves the host's next allowed time forward by its
delay: the in-process stores space a host's claims here, by the delay and pauses that
:mod:`trio_crawler._crawl.politeness` decides. ``release`` ends the flight; ``give_back``
first, when the claim sent nothing (robots.txt disallowed it), so that it costs the host no
turn.
``pause`` pushes a host's next allowed time (429/503, Retry-After, rate-limit headers).

The heaps may hold stale entries (a host rescheduled); each host carries a version number and
stale entries are skipped when popped.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import zlib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

#: Seconds a started host goes ahead of a new one (see the module docstring).
WARM_LEAD = 300.0


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
    part: int = 0  # the partition (process) the host belongs to (see Frontier.set_partitions)
    # the last claim's turn: next_allowed before and after it (see Frontier.give_back)
    turn_from: float = 0.0
    turn_to: float = -1.0


class Frontier(Generic[T]):
    """Per-host queues with per-host concurrency and delay. ``T`` is the queued entry type."""

    def __init__(
        self,
        *,
        per_host_concurrency: int,
        per_host_delay: float,
        depth_first: bool = False,
        warm_lead: float = WARM_LEAD,
    ) -> None:
        self.per_host_concurrency = per_host_concurrency
        self.per_host_delay = per_host_delay
        self._sign = -1 if depth_first else 1
        self._warm_lead = warm_lead
        self._hosts: dict[str, HostState[T]] = {}
        # per partition (one unless set_partitions): the hosts waiting for their time, by
        # (time, seq, key, version); the ready ones, by (rank, seq, key, version, time)
        self._waiting: list[list[tuple[float, int, str, int]]] = [[]]
        self._ready: list[list[tuple[float, int, str, int, float]]] = [[]]
        self._live = {0}  # partitions whose process is there to serve them
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
                key=key,
                delay=self.per_host_delay,
                concurrency=self.per_host_concurrency,
                part=self._part_of(key),
            )
        return state

    def _part_of(self, key: str) -> int:
        parts = len(self._waiting)
        return 0 if parts == 1 else zlib.crc32(key.encode()) % parts

    def set_partitions(self, parts: int) -> None:
        """Split the hosts into ``parts`` partitions (one per process sharing the frontier),
        by a hash of their key; partition 0 is live, the others once :meth:`set_live` says
        their process is there. See :meth:`claim`."""
        self._waiting = [[] for _ in range(max(1, parts))]
        self._ready = [[] for _ in range(max(1, parts))]
        self._live = {0}
        for state in self._hosts.values():
            state.part = self._part_of(state.key)
            if state.scheduled:
                state.scheduled = False
                self._schedule(state)

    def hosts(self) -> Iterator[HostState[T]]:
        return iter(self._hosts.values())

    def active_hosts(self) -> int:
        """Hosts with something queued or in flight (kept up to date: O(1))."""
        return self._active

    def next_ready_time(self) -> float | None:
        """When the earliest host becomes ready, or None when no host has claimable work."""
        best: float | None = None
        hosts = self._hosts
        for ready, waiting in zip(self._ready, self._waiting, strict=True):
            while ready:
                _, _, key, version, when = ready[0]
                if hosts[key].version == version:
                    return when  # already due
                heapq.heappop(ready)
            while waiting:
                when, _, key, version = waiting[0]
                if hosts[key].version == version:
                    if best is None or when < best:
                        best = when
                    break
                heapq.heappop(waiting)
        return best

    # ------------------------------------------------------------------ changes
    def push(self, key: str, entry: T, priority: int = 0) -> None:
        state = self.host(key)
        if not state.queue and not state.in_flight:
            self._active += 1
        heapq.heappush(state.queue, (-priority, self._sign * next(self._seq), entry))
        self._queued += 1
        self._schedule(state)

    def set_live(self, part: int, live: bool) -> None:
        """Partition ``part``'s process came (or went: its hosts are anyone's until another
        process takes the partition)."""
        if live:
            self._live.add(part)
        elif part:
            self._live.discard(part)

    def claim(
        self, now: float, limit: int, part: int = 0, *, steal: bool = True
    ) -> list[tuple[str, T]]:
        """Up to ``limit`` entries whose hosts are ready at ``now``, marked in flight: from the
        hosts of partition ``part`` first; then, with ``steal``, from other partitions: any
        host of a partition no process serves, and hosts without a delay of the others. So a
        host with a delay is served by one process (its requests are spaced where they are
        sent), and no process idles while hosts without a delay wait."""
        out: list[tuple[str, T]] = []
        self._claim_from(part, now, limit, out, undelayed_only=False)
        if steal and len(out) < limit and len(self._waiting) > 1:
            for other in range(len(self._waiting)):
                if other != part and len(out) < limit:
                    self._claim_from(other, now, limit, out, undelayed_only=other in self._live)
        return out

    def _due(self, part: int, now: float) -> list[tuple[float, int, str, int, float]]:
        """Partition ``part``'s ready heap, with the hosts whose time has come moved in: a
        started host ranked by its time, a new one ``warm_lead`` seconds later than now."""
        hosts = self._hosts
        waiting, ready = self._waiting[part], self._ready[part]
        while waiting and waiting[0][0] <= now:
            when, seq, key, version = heapq.heappop(waiting)
            state = hosts[key]
            if state.version == version:
                heapq.heappush(ready, (self._rank(state, when, now), seq, key, version, when))
        return ready

    def _rank(self, state: HostState[T], when: float, now: float) -> float:
        """A ready host's place in line: a started host by its time, a new one ``warm_lead``
        seconds after ``now`` (the claim that found it ready)."""
        return when if state.claimed else now + self._warm_lead

    def _claim_from(
        self,
        part: int,
        now: float,
        limit: int,
        out: list[tuple[str, T]],
        *,
        undelayed_only: bool,
    ) -> None:
        hosts = self._hosts
        heap = self._due(part, now)
        busy: list[tuple[float, int, str, int, float]] = []
        while heap and len(out) < limit:
            key, version = heap[0][2], heap[0][3]
            state = hosts[key]
            if state.version != version:
                heapq.heappop(heap)
                continue
            if undelayed_only and state.delay > 0:
                busy.append(heapq.heappop(heap))  # left to the process that owns the host
                continue
            heapq.heappop(heap)
            state.scheduled = False
            _, _, entry = heapq.heappop(state.queue)
            self._queued -= 1
            state.in_flight += 1
            state.claimed += 1
            self._in_flight += 1
            state.turn_from = max(state.next_allowed, now)
            state.next_allowed = state.turn_to = state.turn_from + state.delay
            out.append((key, entry))  # still active: in flight
            self._schedule(state, now)
        for parked in busy:
            heapq.heappush(heap, parked)

    def release(self, key: str) -> None:
        """A request of host ``key`` finished (successfully or not)."""
        state = self._hosts[key]
        state.in_flight -= 1
        self._in_flight -= 1
        if not state.queue and not state.in_flight:
            self._active -= 1
        self._schedule(state)

    def give_back(self, key: str) -> None:
        """A claim of host ``key`` sent nothing (robots.txt disallowed it; the gate knows at
        once, before the host is claimed again): the host may be claimed as if its last
        claim had not been. Once; not when a pause moved its next allowed time since.
        Politeness still holds where requests are sent
        (:class:`~trio_crawler._crawl.politeness.Pace`)."""
        state = self._hosts.get(key)
        if state is None or state.next_allowed != state.turn_to:
            return
        state.next_allowed = state.turn_from
        state.turn_to = -1.0
        if state.scheduled:  # its place in line was for the later time
            state.scheduled = False
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
        for heaps in (self._waiting, self._ready):
            for heap in heaps:
                heap.clear()

    def _schedule(self, state: HostState[T], now: float | None = None) -> None:
        """Put ``state`` in line if it has claimable work: with the waiting hosts, or, when
        ``now`` (a claim's) has reached its time, straight with the ready ones."""
        if state.scheduled or not state.queue or state.in_flight >= state.concurrency:
            return
        state.version += 1
        state.scheduled = True
        when = state.next_allowed
        if now is not None and when <= now:
            entry = (self._rank(state, when, now), next(self._seq), state.key, state.version, when)
            heapq.heappush(self._ready[state.part], entry)
        else:
            heapq.heappush(
                self._waiting[state.part], (when, next(self._seq), state.key, state.version)
            )
