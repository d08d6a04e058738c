"""Several fetch processes sharing one crawl (``--processes N``).

Theory of operation
-------------------
The parent process runs the crawl as usual, with its store wrapped in a
:class:`~.shared.SharedStore`: a store that delegates every call to the real store (``inner``:
a :class:`MemoryStore` or a :class:`SqliteStore`) and whose
:meth:`~.shared.SharedStore.open` also listens on a Unix socket in a private temporary
directory. Each worker process is a whole
engine (a :class:`~trio_crawler.Crawler`) whose store is a :class:`RemoteStore`: its calls
become messages to the parent, which applies them to ``inner``. So the frontier, politeness
(per-host delay and concurrency), dedupe, the outstanding count and the outputs stay in one
place: a host's delay holds across processes, each page is committed once, and the parent's
exporters write every item.

Wire format: frames of a 4-byte big-endian length and a pickle (between our own processes on
a socket only we can reach). A worker sends a frame holding a *batch* of calls ``(id, op,
args)``: the calls its tasks make while the previous frame is being written go out together.
The parent applies a batch's calls in order and answers them in one frame that also carries
the store's fresh figures (outstanding, queued, in flight, active hosts, the next ready time
as a delay from now since the two processes' Trio clocks differ, a change counter, the stop
flag and scope additions); the worker's synchronous methods read those cached figures.
``claim()`` uses the parent's clock. ``wait_changed()`` is a call the parent answers when the
store changed since the figures the worker last saw, when nothing is outstanding, when the
crawl stops, or at the deadline.

``seen_hint()`` in a worker knows the fingerprints this worker already sent (exact positives),
so each link crosses from one process at most once. robots.txt answers are kept in the parent
(:meth:`~.shared.SharedStore.save_robots`): a worker reuses the first fetch of an origin. Two
processes that meet a new origin at the same moment may both fetch its robots.txt (harmless,
once).

Termination: ``inner.outstanding()`` is exact and counts the workers' claims. Each engine ends
when it reads 0; a worker blocked in ``wait_changed()`` is answered when the count reaches 0.
A worker sends its final counters on exit and the parent adds them to its own (statistics are
crawl-wide). A stop of the parent (a limit, Ctrl-C) is sent to the workers with the figures:
they claim nothing more and finish what is in flight. The parent waits (bounded) for the
workers to say goodbye before its store closes. A worker that dies (its connection closes
without a goodbye) loses nothing: its claims go back to the frontier.

Load: each worker fetches with ``-c`` requests in flight; the parent with ``-c //``
:data:`PARENT_SHARE`, since its event loop also answers every worker's calls and a busy parent
slows them all.

The processes themselves (starting, waiting, killing) and what crosses to a worker are the
crawl's business: :mod:`trio_crawler._crawl.processes` and :mod:`trio_crawler._worker`. A
worker whose parent is gone sees its socket close and ends.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import pickle
import struct
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from .._exceptions import CrawlerError
from .._spider import Request
from .base import Claim, CrawlStore, NewRequest

if TYPE_CHECKING:
    from .._graph import PageGraph
    from .._stats import Counters

log = logging.getLogger("trio_crawler.store.remote")

#: How long the parent waits for workers to finish and say goodbye after its own crawl ended.
WORKER_EXIT_SECONDS = 15.0
#: After that (or on cancellation), how long a worker process gets to exit before it is killed.
WORKER_KILL_SECONDS = 2.0
#: Extra claims a worker asks for when no host has a delay (one round trip saved each).
#: Measured on the benchmark (2 processes, -c 128, --state), three interleaved pairs: 7 gave
#: 722-751 pages/s, 32 gave 766-776. The parent is the busier process; fewer calls help.
_PREFETCH = 32

#: The most processes one crawl may have.
MAX_PROCESSES = 64

#: Fingerprints a worker keeps per generation (two generations) to skip URLs it sent already.
_SEEN_HINTS = 1 << 16

#: The request id of what the parent sends a worker unasked (``--split hosts``: links of the
#: worker's hosts that another process found).
PUSH = -1

FRAME_HEADER = struct.Struct(">I")
PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL

# The figures every answer carries: outstanding, queued, in flight, active hosts, next ready
# time (seconds from now, or None), change counter, stopping, scope additions.
Status = tuple[int, int, int, int, "float | None", int, bool, list[str]]


class Framed:
    """Length-prefixed pickles over a stream. Sends are serialised by a lock."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buf = bytearray()
        self.lock = trio.Lock()

    async def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, PICKLE_PROTOCOL)
        async with self.lock:
            await self.stream.send_all(FRAME_HEADER.pack(len(data)) + data)

    async def receive(self) -> Any:
        """The next object; EOFError when the peer closed the stream."""
        buf = self._buf
        while True:
            if len(buf) >= 4:
                (size,) = FRAME_HEADER.unpack_from(buf)
                if len(buf) >= 4 + size:
                    obj = pickle.loads(memoryview(buf)[4 : 4 + size])
                    del buf[: 4 + size]
                    return obj
            chunk = await self.stream.receive_some(1 << 18)
            if not chunk:
                raise EOFError
            buf += chunk


def graph_wire(graph: PageGraph | None) -> tuple[Any, ...] | None:
    """A page's link graph as a plain tuple to cross the socket (a dataclass unpickles
    through Python code); ``PageGraph(*wire)`` on the other side."""
    if graph is None:
        return None
    return (graph.source, graph.links, graph.out_of_scope, graph.noindex)


def portable(exc: Exception) -> Exception:
    """An exception that survives pickling (the worker raises it as the store's answer)."""
    try:
        pickle.loads(pickle.dumps(exc, PICKLE_PROTOCOL))
    except Exception:
        return CrawlerError(f"{type(exc).__name__}: {exc}")
    return exc


# ======================================================================== the worker's side
class _Pending:
    __slots__ = ("done", "ok", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = True
        self.value: Any = None


class RemoteStore(CrawlStore):
    """A worker's store: every call goes to the parent's :class:`~.shared.SharedStore` over
    ``stream``.

    Built by :func:`connect_worker` once the parent's first answer (the crawl's setup) has
    arrived. ``on_stop`` is called when the parent stops the crawl. Scope additions made in any
    process reach this store's listener with the parent's answers.
    """

    #: How long the writer waits after a call before it sends the frame that carries it (0:
    #: at once, for the calls a page waits on).
    batch_seconds = 0.0

    def __init__(self, framed: Framed, status: Status, *, resumed: bool = False) -> None:
        super().__init__()
        self._framed = framed
        self._resumed = resumed
        self._pending: dict[int, _Pending] = {}
        self._rids = itertools.count(1)
        self._out_send, self._out_recv = trio.open_memory_channel[tuple[int, str, Any]](math.inf)
        self._claims: dict[Claim, int] = {}
        self._prefetched: collections.deque[Claim] = collections.deque()
        # a hint only (the parent's store decides): two generations of at most _SEEN_HINTS
        # fingerprints each, so a worker's memory stays flat however many URLs it meets
        self._seen: set[int] = set()
        self._seen_old: set[int] = set()
        self._seeding_done = False
        self._outstanding = self._queued = self._in_flight = self._hosts = 0
        self._ready: float | None = None
        self._version = -1
        self._stopped = False
        self._leaving = False
        self.on_stop: Callable[[], None] | None = None
        self.stop_reason: Callable[[], str | None] = lambda: None
        self._apply_status(status)

    # ------------------------------------------------------------ plumbing
    def _apply_status(self, status: Status) -> None:
        (
            self._outstanding,
            self._queued,
            self._in_flight,
            self._hosts,
            ready,
            self._version,
            stopping,
            seeds,
        ) = status
        self._ready = None if ready is None else trio.current_time() + ready
        for url in seeds:
            self._heard_scope(url)
        if stopping and not self._stopped:
            self._stopped = True
            if self.on_stop is not None:
                self.on_stop()

    async def _call(self, op: str, *args: Any) -> Any:
        rid = next(self._rids)
        pending = self._pending[rid] = _Pending()
        try:
            self._out_send.send_nowait((rid, op, args))
            await pending.done.wait()
        finally:
            self._pending.pop(rid, None)
        if not pending.ok:
            raise pending.value
        return pending.value

    def _cast(self, op: str, *args: Any) -> None:
        """A call the parent applies in order and does not answer (request id 0)."""
        self._out_send.send_nowait((0, op, args))

    def _pushed(self, value: Any) -> None:
        """Work the parent pushed to this worker unasked (``--split hosts``: :mod:`.split`)."""
        raise CrawlerError("the parent pushed work to a worker that does not take any")

    async def _writer(self) -> None:
        framed = self._framed
        async for first in self._out_recv:
            if self.batch_seconds:
                await trio.sleep(self.batch_seconds)  # let a few more calls join this frame
            batch = [first]
            while True:
                try:
                    batch.append(self._out_recv.receive_nowait())
                except trio.WouldBlock:
                    break
            await framed.send(batch)

    async def _reader(self) -> None:
        framed = self._framed
        while True:
            try:
                replies, status = await framed.receive()
            except (EOFError, trio.BrokenResourceError, OSError):
                if self._leaving:
                    return  # the parent closes the connection after our goodbye
                raise CrawlerError("the crawl's parent process went away") from None
            for rid, ok, value in replies:
                if rid == PUSH:
                    self._pushed(value)
                    continue
                pending = self._pending.get(rid)
                if pending is not None:
                    pending.ok, pending.value = ok, value
                    pending.done.set()
            self._apply_status(status)

    # ------------------------------------------------------------ interface
    async def add(self, requests: Sequence[NewRequest]) -> int:
        self._remember(requests)
        if not self._seeding_done:
            # the engine's first add() is its seeding: the parent queued the seeds already
            self._seeding_done = True
            return 0
        result: int = await self._call("add", list(requests))
        return result

    def _remember(self, requests: Sequence[NewRequest]) -> None:
        seen = self._seen
        for item in requests:
            if not item.request.dont_filter:
                seen.add(item.fingerprint)
        self._rotate()

    def _rotate(self) -> None:
        if len(self._seen) >= _SEEN_HINTS:
            self._seen_old = self._seen
            self._seen = set()

    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        self._seen.update(fingerprints)
        self._rotate()
        result: list[bool] = await self._call("mark_seen", list(fingerprints))
        return result

    def seen_hint(self, fingerprint: int) -> bool:
        return fingerprint in self._seen or fingerprint in self._seen_old

    async def claim(self, now: float, limit: int) -> list[Claim]:
        self._seeding_done = True
        if self._stopped:
            return []
        prefetched = self._prefetched
        if not prefetched:
            # ask for a few more than needed: the parent grants extra claims only while no
            # host has a delay (each is then bounded by its host's concurrency alone), and
            # they save a round trip each
            for cid, request, fingerprint, host in await self._call("claim", limit, _PREFETCH):
                claim = Claim(request, fingerprint, host)
                self._claims[claim] = cid
                prefetched.append(claim)
        return [prefetched.popleft() for _ in range(min(limit, len(prefetched)))]

    def next_ready_time(self) -> float | None:
        if self._prefetched:
            return trio.current_time()
        return self._ready

    async def wait_changed(self, until: float | None) -> None:
        if self._outstanding == 0 or self._stopped:
            return
        delay = None if until is None else max(0.0, until - trio.current_time())
        await self._call("wait", self._version, delay)

    async def complete(
        self,
        claim: Claim,
        new: Sequence[NewRequest],
        items: Sequence[Any] = (),
        *,
        graph: PageGraph | None = None,
    ) -> int:
        cid = self._claims.pop(claim)
        if new:
            self._remember(new)
        wire = graph_wire(graph)
        result: int = await self._call("complete", cid, list(new), list(items), wire)
        return result

    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        cid = self._claims.pop(claim)
        await self._call("retry", cid, request, max(0.0, not_before - trio.current_time()))

    async def pause_host(self, host: str, until: float) -> None:
        await self._call("pause_host", host, max(0.0, until - trio.current_time()))

    async def set_host_delay(self, host: str, delay: float) -> None:
        await self._call("set_host_delay", host, delay)

    @property
    def stopped(self) -> bool:
        """The parent stopped the crawl: nothing more is handed out."""
        return self._stopped

    def outstanding(self) -> int:
        return self._outstanding

    def queued(self) -> int:
        return self._queued

    def in_flight(self) -> int:
        return self._in_flight

    def active_hosts(self) -> int:
        return self._hosts

    async def add_scope(self, url: str) -> None:
        self._heard_scope(url)
        await self._call("add_scope", url)

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        result: tuple[int, bytes, float] | None = await self._call("load_robots", host)
        return result

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:
        await self._call("save_robots", host, status, body, fetched_at)

    @asynccontextmanager
    async def open(self, meta: Mapping[str, Any], counters: Counters) -> AsyncIterator[bool]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reader, name="trio_crawler.remote.reader")
            nursery.start_soon(self._writer, name="trio_crawler.remote.writer")
            try:
                yield self._resumed
                # goodbye: this worker's figures, and its claims are all settled
                self._leaving = True
                with trio.move_on_after(WORKER_KILL_SECONDS):
                    await self._call("bye", counters, self.stop_reason())
            finally:
                nursery.cancel_scope.cancel()


@asynccontextmanager
async def connect_worker(path: str) -> AsyncIterator[tuple[Framed, Status, dict[str, Any]] | None]:
    """A worker's side of a shared crawl: its connection, the parent's first status and the
    crawl's setup (the first answer), for the worker's store (a :class:`RemoteStore`, or a
    :class:`~.split.SplitStore` when the setup says ``split: hosts``); None when the crawl is
    gone already (it ended before the worker connected, or ends before it is answered)."""
    try:
        stream = await trio.open_unix_socket(path)
    except OSError:
        yield None
        return
    framed = Framed(stream)
    async with stream:
        try:
            replies, status = await framed.receive()
        except (EOFError, trio.BrokenResourceError, OSError):
            yield None
            return
        yield framed, status, replies[0][2]
