"""``--processes N --split hosts``: each process keeps the frontier of its own hosts.

Theory of operation
-------------------
With the default split (``shared``) every claim and every commit of a worker is a round trip
to the parent, which keeps the one frontier (:mod:`.remote`). On a broad crawl that costs
about as much CPU as fetching the page: three frames each way per page, and the parent's loop
in every one. With ``--split hosts`` the hosts are divided among the processes by a hash of
their key (:func:`part_of`; the parent, which also writes every output, takes a little
less than a worker: :data:`PARENT_WEIGHT`); each process keeps the queue, dedupe, politeness
and robots.txt answers of its own hosts in a :class:`~.memory.MemoryStore` of its own, and
claims from it without asking anyone. What crosses:

* a link to another process's host goes to that process (a worker sends it to the parent,
  which keeps it when the host is its own and pushes it on otherwise, request id
  :data:`~.remote.PUSH`); each process sends a URL at most once (its seen hints), its owner
  dedupes it;
* a page's items and link graph go to the parent, which writes every output;
* each worker reports, in order with the rest, how much work it holds (queued, in flight) and
  how many pushed links it has taken in. The parent knows what it pushed, so the work left in
  the whole crawl is its own, plus each worker's last report, plus what it pushed that was not
  taken in yet. Frames are delivered in order, so a worker's links reach the parent before the
  report that no longer counts them. When that sum is 0 the crawl is over (no process holds
  work, none is on its way) and the parent tells every worker with its next status.

Nothing waits on a reply on the way of a page: the sends are batched by the worker's writer.

What it gives up, against ``shared``: a host belongs to one process, so a crawl of one host is
fetched by one process (use ``shared``, with ``--delay 0``, to spread one host's pages); the
frontier lives in memory only (no ``--state``); ``--max-pages`` is not counted across
processes (refused). A worker that dies takes the work it held with it: the parent adopts its
hosts, takes back the links it had pushed that were not taken in, and reports the loss.
"""

from __future__ import annotations

import bisect
import collections
import functools
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from .._graph import PageGraph
from .._spider import Request
from .base import Claim, NewRequest
from .memory import MemoryStore
from .remote import Framed, RemoteStore, Status, graph_wire

if TYPE_CHECKING:
    from .._stats import Counters

__all__ = ["BATCH_SECONDS", "PARENT_WEIGHT", "SPLITS", "HostParts", "SplitStore", "part_of"]

#: The ways ``--processes`` divides a crawl's work: one frontier in the parent (``shared``),
#: or each process its own hosts (``hosts``).
SPLITS = ("shared", "hosts")


#: How long a process collects what it sends another before it sends it (see SplitStore).
BATCH_SECONDS = 0.005


#: The parent's share of the hosts against each worker's 1. The parent also writes every
#: process' output and routes the links that cross: with an even split, its hosts finished
#: last in 15 of 16 runs of ``scripts/bench_broad`` (2 processes), up to 1.5 s after the
#: worker's, which idled. With 0.9 (47 % of the hosts for the parent) the wall time's median
#: ratio was 0.978 over 38 interleaved pairs (24 faster); 0.95 and 0.8 gained nothing (11-12
#: pairs each). Measured with 2 processes only.
PARENT_WEIGHT = 0.9


def part_of(host: str, parts: int) -> int:
    """The process (0: the parent) that owns host key ``host`` among ``parts``: a 16-bit hash
    of the key, cut into ranges (:data:`PARENT_WEIGHT` for the parent, 1 for each worker).
    CRC-32 alone is linear: keys that differ in their last characters (ports in a row) fall
    in runs of one process; multiplied by the golden ratio and read from its top bits, they
    spread."""
    if parts <= 1:
        return 0
    mixed = ((zlib.crc32(host.encode()) * 0x9E3779B1) & 0xFFFFFFFF) >> 16
    return bisect.bisect_right(_ranges(parts), mixed)


@functools.cache
def _ranges(parts: int) -> tuple[int, ...]:
    """Where each process' range of the hash ends (all but the last's)."""
    total = PARENT_WEIGHT + parts - 1
    return tuple(round((PARENT_WEIGHT + i) / total * 65536) for i in range(parts - 1))


class _Part:
    """What the parent knows of one worker's share of the hosts."""

    __slots__ = ("acked", "adopted", "event", "outbox", "pushed", "reported", "unacked")

    def __init__(self) -> None:
        self.outbox: list[NewRequest] = []  # links to push at the next send
        self.unacked: collections.deque[tuple[int, list[NewRequest]]] = collections.deque()
        self.pushed = 0  # links pushed (or waiting in the outbox) so far
        self.acked = 0  # of them, taken in by the worker (its last report)
        self.reported = 0  # the work the worker holds (its last report)
        self.adopted = False  # its worker is gone: the parent keeps its hosts
        self.event = trio.Event()  # set: something to send to the worker


class HostParts:
    """The parent's side of ``--split hosts`` (see the module docstring): which process owns a
    link, what is on its way to each worker, and the work each holds."""

    def __init__(self, parts: int) -> None:
        self.parts = parts
        self._parts = [_Part() for _ in range(parts)]  # index 0 (the parent) unused

    def route(self, new: Sequence[NewRequest]) -> list[NewRequest]:
        """The parent's own links; the others are put in their worker's outbox."""
        own: list[NewRequest] = []
        parts, count = self._parts, self.parts
        for item in new:
            index = part_of(item.host, count)
            part = parts[index]
            if index == 0 or part.adopted:
                own.append(item)
            else:
                part.outbox.append(item)
                part.pushed += 1
                part.event.set()
        return own

    def held(self) -> int:
        """The work the workers hold or have on their way (0: none)."""
        return sum(p.reported + p.pushed - p.acked for p in self._parts[1:] if not p.adopted)

    def report(self, index: int, outstanding: int, received: int) -> None:
        part = self._parts[index]
        part.reported, part.acked = outstanding, received
        while part.unacked and part.unacked[0][0] <= received:
            part.unacked.popleft()

    def take_outbox(self, index: int) -> list[NewRequest]:
        """The links to push to worker ``index`` now (kept until it has taken them in)."""
        part = self._parts[index]
        out, part.outbox = part.outbox, []
        if out:
            part.unacked.append((part.pushed, out))
        return out

    def event(self, index: int) -> trio.Event:
        """Set when worker ``index`` has something to be sent; call :meth:`sent` after."""
        return self._parts[index].event

    def sent(self, index: int) -> None:
        part = self._parts[index]
        if part.event.is_set():
            part.event = trio.Event()

    def wake_all(self) -> None:
        """A status every worker should hear (the crawl ended or stopped, the scope grew)."""
        for part in self._parts[1:]:
            part.event.set()

    def adopt(self, index: int) -> tuple[list[NewRequest], int]:
        """Worker ``index`` is gone: its hosts are the parent's from now on. The links pushed
        to it that it had not taken in (for the parent to queue), and the work it held that
        is lost."""
        part = self._parts[index]
        if part.adopted:
            return [], 0
        back = [item for _, links in part.unacked for item in links]
        back += part.outbox
        lost = part.reported
        part.adopted = True
        part.outbox, part.unacked = [], collections.deque()
        part.pushed = part.acked = part.reported = 0
        part.event.set()
        return back, lost


class SplitStore(RemoteStore):
    """A worker's store with ``--split hosts``: its own hosts' frontier here, the rest at the
    parent (see the module docstring)."""

    #: Nothing on a page's way waits for an answer, so a frame every few milliseconds carries
    #: the calls of many pages: fewer frames and wake-ups of the parent (on scripts/bench_broad
    #: this did not change pages/s measurably).
    batch_seconds = BATCH_SECONDS

    #: Its seen set is its own hosts' (``local``), and robots.txt is known only of those.
    seen_in_memory = True

    def __init__(self, framed: Framed, status: Status, setup: Mapping[str, Any]) -> None:
        self.local = MemoryStore.from_settings(setup["settings"])
        super().__init__(framed, status)
        self._part: int = setup["part"]
        self._parts: int = setup["parts"]
        self._received = 0  # links pushed to this worker so far
        self._counters: Counters | None = None
        self._reported: tuple[int, int] | None = None

    # ------------------------------------------------------------ routing
    def _route(self, new: Sequence[NewRequest]) -> tuple[list[NewRequest], list[NewRequest]]:
        """This process' own links, and those for the parent to route (each sent at most
        once)."""
        own: list[NewRequest] = []
        foreign: list[NewRequest] = []
        part, parts = self._part, self._parts
        seen, seen_old = self._seen, self._seen_old
        for item in new:
            if part_of(item.host, parts) == part:
                own.append(item)
            elif item.request.dont_filter or not (
                item.fingerprint in seen or item.fingerprint in seen_old
            ):
                foreign.append(item)
                if not item.request.dont_filter:
                    seen.add(item.fingerprint)
        if foreign:
            self._rotate()
        return own, foreign

    def _report(self) -> None:
        """Tell the parent how much work this worker holds (when it changed)."""
        figures = (self.local.outstanding(), self._received)
        if figures != self._reported:
            self._reported = figures
            self._cast("report", *figures)

    def _pushed(self, value: Any) -> None:
        new: list[NewRequest] = value
        self._received += len(new)
        queued = self.local.add_now(new)  # wakes the scheduler when it queued any
        if self._counters is not None:
            self._counters.links_queued += queued
        self._report()

    def _apply_status(self, status: Status) -> None:
        super()._apply_status(status)
        self.local.wake()  # the crawl ended or stopped, or the scope grew: look again

    # ------------------------------------------------------------ interface
    async def add(self, requests: Sequence[NewRequest]) -> int:
        if not self._seeding_done:
            self._seeding_done = True  # the parent routed the seeds
            return 0
        own, foreign = self._route(requests)
        if foreign:
            self._cast("route", foreign, [], None)
        count = await self.local.add(own)
        self._report()
        return count

    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        return await self.local.mark_seen(fingerprints)

    def seen_hint(self, fingerprint: int) -> bool:
        return (
            self.local.seen_hint(fingerprint)
            or fingerprint in self._seen
            or fingerprint in self._seen_old
        )

    async def claim(self, now: float, limit: int) -> list[Claim]:
        self._seeding_done = True
        if self._stopped:
            return []
        return await self.local.claim(now, limit)

    def next_ready_time(self) -> float | None:
        return self.local.next_ready_time()

    async def wait_changed(self, until: float | None) -> None:
        if self.outstanding() == 0 or self._stopped:
            return
        await self.local.wait_changed(until)

    async def complete(
        self,
        claim: Claim,
        new: Sequence[NewRequest],
        items: Sequence[Any] = (),
        *,
        graph: PageGraph | None = None,
    ) -> int:
        own, foreign = self._route(new) if new else ([], [])
        if foreign or items or graph is not None:
            self._cast("route", foreign, list(items), graph_wire(graph))
        count = await self.local.complete(claim, own)
        self._report()
        return count

    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        await self.local.retry(claim, request, not_before)

    async def pause_host(self, host: str, until: float) -> None:
        await self.local.pause_host(host, until)

    async def give_back_turn(self, host: str) -> None:
        await self.local.give_back_turn(host)

    async def set_host_delay(self, host: str, delay: float) -> None:
        await self.local.set_host_delay(host, delay)

    def outstanding(self) -> int:
        # the parent's figure is the whole crawl's: 0 only when no process holds any work
        local = self.local.outstanding()
        return local if self._outstanding == 0 else max(local, self._outstanding)

    def queued(self) -> int:
        return self.local.queued()

    def in_flight(self) -> int:
        return self.local.in_flight()

    def active_hosts(self) -> int:
        return self.local.active_hosts()

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        return await self.local.load_robots(host)

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:
        await self.local.save_robots(host, status, body, fetched_at)

    @asynccontextmanager
    async def open(self, meta: Mapping[str, Any], counters: Counters) -> AsyncIterator[bool]:
        self._counters = counters
        async with super().open(meta, counters) as resumed:
            yield resumed
