"""The shared store: one crawl in Redis, worked on by any number of crawler processes.

Theory of operation
-------------------
*What lives where.* Redis is the truth: the frontier (per-host queues), the seen set, each
host's politeness state (next allowed start, requests in flight, delay, robots.txt), the
leases, the items and the statistics (the key layout is drawn in :mod:`._lua`). Every change
is one Lua script, so it is atomic: a page's lease check, its items, its new links, its host
slot and the statistics deltas are committed together or not at all, and an AOF-restored
Redis holds a clean prefix of them.

*Politeness across the cluster.* The claim script hands out a request only when its host's
next allowed start (Redis clock) has come and fewer than the per-host limit are leased; it
moves the host's next start forward by its delay in the same step. Whatever the number of
workers, a host sees what one worker would give it.

*Leases.* A claimed request is leased under a token until an expiry that this worker renews
(a background task) while it holds the request. A worker that dies stops renewing: the claim
and idle-poll scripts return expired leases to the frontier and release their host slots. A
commit names the token; when the lease is gone (it expired and someone else has the page),
the result is discarded: every page is committed exactly once, though it may be fetched twice.

*Round trips.* One claim call leases as many requests as this worker has free fetchers
(politeness permitting); the rest wait in a small local buffer. Completions, retries and host
updates queue up and a committer task sends them as one script call whenever the previous one
returned (group commit): the busier the worker, the more pages per round trip.

*Counting and the end.* ``P.count`` is the cluster's outstanding work (queued + waiting for a
retry + leased); :meth:`RedisStore.outstanding` is the last value a reply brought. Work can
only be created by a worker holding a lease, so once a reply says 0 the crawl is over
everywhere. A worker with nothing to claim blocks on the change stream (XREAD with a timeout)
and polls at most every ``poll_interval`` seconds (which also sweeps expired leases), so every
worker learns of the end within about a second and none waits forever. The script that brings
the count to 0 stores the stop reason ``finished``.

*Failures.* Connection errors are retried with backoff for up to ``retry_for`` seconds (Redis
restarting); a claim or commit carries a request id and its reply is kept in Redis, so a call
retried after a lost reply is not applied twice. A commit lost with Redis's last second of AOF
is redone through the lease, which expires. Wrong password, unreachable server, a crawl id
that exists with other settings: :class:`~trio_crawler.StoreError` with a one-line message.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import logging
import math
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .._exceptions import SettingsError, StoreError
from .._spider import Request
from .base import Claim, CrawlStore, NewRequest
from .codec import check_same_crawl, encode_request, jsonable, signed
from .redis_conn import (
    FORMAT_VERSION,
    SHARED_SETTINGS,
    Op,
    Scripts,
    as_list,
    as_text,
    call_retrying,
    check_crawl_id,
    claim_of,
    completion,
    flatten,
    from_json,
    key_prefix,
    link_args,
    only_redis,
    parse_url,
    ping,
    redis_client,
    translate,
)

if TYPE_CHECKING:
    import coredis

    from .._graph import PageGraph
    from .._settings import Settings
    from .._stats import Counters

__all__ = ["RedisStore"]

_T = TypeVar("_T")

log = logging.getLogger("trio_crawler.store.redis")


class RedisStore(CrawlStore):
    """A crawl's state in Redis, shared by every worker that opens the same ``crawl_id``.

    ``url``: ``redis://[:PASSWORD@]HOST:PORT/DB``. ``lease``: seconds a claimed request stays
    leased without renewal (stored with the crawl: the first worker's value holds).
    ``concurrency``: this worker's fetchers (the most requests one claim leases).
    ``poll_interval``: the longest an idle worker waits before looking again.
    ``retry_for``: how long Redis may stay unreachable before the worker gives up.
    ``linger``: how long completions gather before they are sent (fewer round trips).
    """

    durable = True

    def __init__(
        self,
        url: str,
        crawl_id: str,
        *,
        per_host_concurrency: int = 2,
        per_host_delay: float = 0.25,
        max_pages_per_host: int | None = None,
        depth_first: bool = False,
        concurrency: int = 16,
        lease: float = 30.0,
        poll_interval: float = 1.0,
        retry_for: float = 120.0,
        linger: float = 0.005,
        shared_settings: Mapping[str, Any] | None = None,
        link_graph: bool = False,
    ) -> None:
        super().__init__()
        parse_url(url)
        check_crawl_id(crawl_id)
        if lease <= 0 or poll_interval <= 0:
            raise SettingsError("the lease and the poll interval must be positive")
        self.url = url
        self.crawl_id = crawl_id
        self._prefix = key_prefix(crawl_id)
        self._keys = [self._prefix]
        self._cfg = {
            "delay": per_host_delay,
            "conc": per_host_concurrency,
            "budget": max_pages_per_host or 0,
            "dfs": 1 if depth_first else 0,
            "lease": lease,
        }
        self._shared = dict(shared_settings or {})
        self._link_graph = link_graph
        self._mark_partial = False  # no graph here, one in the crawl: the first commit says so
        self._concurrency = max(1, concurrency)
        self._lease = lease
        self._poll = poll_interval
        self._retry_for = retry_for
        self._started_wall = time.time()
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._client_obj: coredis.Redis[bytes] | None = None
        self._scripts: Scripts | None = None
        self._counters: Counters | None = None
        self._sent: dict[str, int] = {}
        self._token_seq = itertools.count(1)
        self._rid_seq = itertools.count(1)
        # what the last reply said (Redis clock, seconds since the crawl's t0)
        self._seen_at = -math.inf
        self._fresh_at = -math.inf
        self._count = 0
        self._queued = 0
        self._hosts = 0
        self._ready_at = -math.inf  # local time before which a claim is pointless
        self._scope_count = 0  # scope additions in Redis, as the last reply counted them
        self._over_budget = 0  # this worker's requests refused for their host's budget
        self._offset = 0.0  # Redis time - trio time
        self._event_id = "$"
        # leases held by this worker
        self._buffer: collections.deque[Claim] = collections.deque()
        self._tokens: dict[Claim, str] = {}
        self._in_hand = 0
        # committing
        self._ops: list[Op] = []
        self._unacked: tuple[str, list[Op], dict[str, int], str] | None = None
        self._kick = trio.Event()
        self._changed = trio.Event()
        self._listen = trio.Event()
        self._sync_lock = trio.Lock()
        self._urgent = False
        self._room = trio.Event()
        self._linger = linger
        self._batch_target = max(1, self._concurrency // 2)
        self._max_pending = 4 * self._concurrency
        self._prefetch = max(1, self._concurrency // 2)
        self._claiming = False
        self._open = False
        self._failed: BaseException | None = None
        self.round_trips = 0
        self.calls: Counter[str] = Counter()
        self.lost_leases = 0

    @classmethod
    def from_settings(
        cls, url: str, crawl_id: str, settings: Settings, **kwargs: Any
    ) -> RedisStore:
        shared = {name: getattr(settings, name) for name in SHARED_SETTINGS}
        return cls(
            url,
            crawl_id,
            per_host_concurrency=settings.per_host_concurrency,
            per_host_delay=settings.per_host_delay,
            max_pages_per_host=settings.max_pages_per_host,
            depth_first=settings.order == "depth",
            concurrency=settings.concurrency,
            shared_settings=jsonable(shared),
            link_graph=settings.link_graph,
            **kwargs,
        )

    # ------------------------------------------------------------ plumbing
    @property
    def _client(self) -> coredis.Redis[bytes]:
        if self._client_obj is None:
            raise RuntimeError("the store is not open (use `async with store.open(...)`)")
        return self._client_obj

    @property
    def _s(self) -> Scripts:
        assert self._scripts is not None
        return self._scripts

    async def _call(self, what: str, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Run one Redis call, retrying connection errors with backoff (Redis restarting)."""
        result = await call_retrying(self.url, what, fn, retry_for=self._retry_for)
        self.round_trips += 1
        self.calls[what] += 1
        return result

    def _absorb(self, reply: Mapping[str, Any]) -> None:
        """Take the cluster's figures from a reply (unless a newer one came first)."""
        self._over_budget += int(reply.get("over", 0))  # this call's own, never stale
        now = float(reply.get("now", -math.inf))
        local = trio.current_time()
        self._offset = now - local
        if now < self._seen_at:
            return
        self._seen_at = now
        self._fresh_at = local
        if "count" in reply:
            self._count = int(reply["count"])
            self._queued = int(reply.get("queued", 0))
            self._hosts = int(reply.get("hosts", 0))
            ready = float(reply.get("ready", -1))
            self._ready_at = math.inf if ready < 0 else ready - self._offset
        self._scope_count = max(self._scope_count, int(reply.get("scope", 0)))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _check(self) -> None:
        if self._failed is not None:
            raise StoreError(f"the Redis store failed earlier ({self._failed})")
        if not self._open:
            raise RuntimeError("the store is not open (use `async with store.open(...)`)")

    # ------------------------------------------------------------ lifecycle
    @asynccontextmanager
    async def open(self, meta: Mapping[str, Any], counters: Counters) -> AsyncIterator[bool]:
        self._counters = counters
        self._sent = flatten(counters)
        try:
            async with redis_client(self.url) as client:
                self._client_obj = client
                self._scripts = Scripts(client)
                resumed = await self._open_crawl(meta)
                self._open = True
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._committer, name="trio_crawler.redis.committer")
                        nursery.start_soon(self._listener, name="trio_crawler.redis.listener")
                        nursery.start_soon(self._renewer, name="trio_crawler.redis.renewer")
                        try:
                            yield resumed
                        finally:
                            nursery.cancel_scope.cancel()
                finally:
                    self._open = False
                    with trio.move_on_after(2) as cleanup:
                        cleanup.shield = True
                        await self._shutdown()
                    self._client_obj = None
        except BaseExceptionGroup as group:
            log.debug("the Redis client failed", exc_info=group)
            # the client's own nursery wraps what crosses it: give back a StoreError as such
            error = translate(self.url, group) if only_redis(group) else None
            if error is not None:
                raise error from None
            raise

    async def _open_crawl(self, meta: Mapping[str, Any]) -> bool:
        await ping(self._client, self.url)
        crawl = json.dumps(jsonable(dict(meta)), sort_keys=True)
        cfg = self._cfg
        reply = from_json(
            await self._call(
                "open",
                lambda: self._s.open(
                    self._keys,
                    [
                        self.worker_id,
                        crawl,
                        json.dumps(self._shared, sort_keys=True),
                        FORMAT_VERSION,
                        cfg["delay"],
                        cfg["conc"],
                        cfg["budget"],
                        cfg["dfs"],
                        cfg["lease"],
                        json.dumps(self._worker_info()),
                        "1" if self._link_graph else "0",
                    ],
                ),
            )
        )
        if not reply["new"]:
            try:
                version = int(reply.get("format") or 0)
            except ValueError:
                version = 0
            if version > FORMAT_VERSION:
                raise StoreError(
                    f"crawl {self.crawl_id!r} was written by a newer trio-crawler (format "
                    f"{version}, this one reads {FORMAT_VERSION})"
                )
            stored = json.loads(reply.get("crawl") or "{}")
            check_same_crawl(
                stored,
                meta,
                holder=f"Redis crawl {self.crawl_id!r}",
                instead="another --crawl-id",
            )
            self._mark_partial = not self._link_graph and bool(reply.get("graph"))
            stored_cfg = reply.get("cfg") or []
            if isinstance(stored_cfg, list) and len(stored_cfg) >= 5:
                lease = stored_cfg[4]
                if lease:
                    self._lease = float(lease)
        await self._peek()
        await self._catch_up_scope()
        return not reply["new"]

    def _worker_info(self, **more: Any) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self._started_wall,
            **more,
        }

    async def _shutdown(self) -> None:
        """Commit what is pending, give back the leases still held, record this worker."""
        if self._failed is None:
            try:
                await self._flush_ops()
                tokens = list(self._tokens.values())
                self._buffer.clear()
                self._tokens.clear()
                if tokens:
                    reply = await self._call(
                        "release",
                        lambda: self._s.release(self._keys, [self.worker_id, *tokens]),
                    )
                    self._absorb(from_json(reply))
                info = self._worker_info(
                    ended=time.time(), outstanding=self._count, lost_leases=self.lost_leases
                )
                await self._call(
                    "leave",
                    lambda: self._client.hset(
                        self._prefix + "workers", {self.worker_id: json.dumps(info)}
                    ),
                )
            except StoreError as exc:
                log.warning("could not finish cleanly with Redis: %s", exc)
        for exporter in self._outputs:
            try:
                exporter.flush()
            except OSError as exc:
                log.error("cannot flush %s: %s", exporter.path, exc)

    async def flush(self) -> None:
        await self._flush_ops()
        for exporter in self._outputs:
            exporter.flush()

    async def close(self) -> None:
        await self.flush()

    # ------------------------------------------------------------ background tasks
    async def _committer(self) -> None:
        """Send pending ops: at once when a caller waits for them, else after gathering for
        up to ``linger`` seconds (or half this worker's fetchers' worth)."""
        while True:
            await self._kick.wait()
            self._kick = trio.Event()
            deadline = trio.current_time() + self._linger
            with trio.move_on_at(deadline):
                while not self._urgent and len(self._ops) < self._batch_target:
                    await self._kick.wait()
                    self._kick = trio.Event()
            try:
                await self._flush_ops()
            except StoreError as exc:
                self._failed = exc
                for op in self._ops:
                    op.result = -1
                    op.done.set()
                self._ops.clear()
                self._notify()
                raise

    async def _flush_ops(self) -> None:
        while self._ops or self._unacked is not None:
            # a commit also tops up the buffer while the engine is claiming
            await self._sync(0, self._prefetch if self._open and self._claiming else 0)

    async def _sync(self, want: int, extra: int = 0) -> None:
        """One script call: the pending ops (completions, retries, host updates, statistics)
        and, with ``want``, a claim of up to that many requests (they go to the buffer).

        A call whose reply was lost (cancelled, connection dropped) is sent again with the
        same request id: Redis answers from the reply it kept instead of applying it twice."""
        async with self._sync_lock:
            if self._unacked is None:
                if want == 0 and not self._ops:
                    return
                extra = max(0, min(extra, self._prefetch - len(self._buffer)))
                ops, self._ops = self._ops[:500], self._ops[500:]
                self._urgent = False
                assert self._counters is not None
                snapshot = flatten(self._counters)
                deltas = {k: v - self._sent.get(k, 0) for k, v in snapshot.items()}
                first = next(self._token_seq)
                for _ in range(want + extra - 1):
                    next(self._token_seq)
                body = {
                    "s": {k: v for k, v in deltas.items() if v},
                    "o": [op.payload for op in ops],
                    "w": want,
                    "x": extra,
                    "q": first,
                }
                if self._mark_partial and any(op.payload["k"] == "c" for op in ops):
                    body["ng"] = 1
                    self._mark_partial = False
                payload = json.dumps(body, separators=(",", ":"))
                self._unacked = (f"{next(self._rid_seq)}", ops, snapshot, payload)
            rid, ops, snapshot, text = self._unacked
            reply = from_json(
                await self._call(
                    "sync", lambda: self._s.sync(self._keys, [self.worker_id, rid, text])
                )
            )
            self._unacked = None
            self._sent = snapshot
            self._absorb(reply)
            for token, host, entry in as_list(reply.get("claims")):
                claim = claim_of(as_text(host), as_text(entry))
                self._tokens[claim] = as_text(token)
                self._buffer.append(claim)
            results = as_list(reply.get("r"))
            counters = self._counters
            for i, op in enumerate(ops):
                op.result = int(results[i]) if i < len(results) else 0
                if op.claim is not None:
                    self._tokens.pop(op.claim, None)
                    if op.result < 0:
                        self.lost_leases += 1
                        log.info(
                            "lease on %s lost (it expired and went to another worker): "
                            "this result is discarded",
                            op.claim.request.url,
                        )
                    elif op.items:
                        for exporter in self._outputs:
                            exporter.write_many(op.items)
                if not op.waited and op.result > 0 and counters is not None:
                    counters.links_queued += op.result  # the engine got 0 back
                op.done.set()
            if len(self._ops) < self._max_pending:
                self._room.set()
            self._notify()

    async def _submit(self, op: Op) -> None:
        self._check()
        while len(self._ops) >= self._max_pending and self._failed is None:
            self._room = trio.Event()
            self._urgent = True
            self._kick.set()
            await self._room.wait()
        self._check()
        self._ops.append(op)
        if op.waited:
            self._urgent = True
        self._kick.set()

    async def _listener(self) -> None:
        """While the engine waits, block on the change stream; poll when nothing comes."""
        while True:
            await self._listen.wait()
            self._listen = trio.Event()
            reply = await self._call(
                "wait",
                functools.partial(
                    self._client.xread,
                    {self._prefix + "events": self._event_id},
                    count=50,
                    block=max(1, int(self._poll * 1000)),
                ),
            )
            entries: Sequence[Any] = ()
            if reply:
                for stream_entries in reply.values():
                    entries = stream_entries
            if entries:
                last = entries[-1]
                self._event_id = as_text(last.identifier)
                fields = {as_text(k): as_text(v) for k, v in last.field_values.items()}
                self._absorb(
                    {
                        "now": float(fields.get("t", -math.inf)),
                        "count": int(fields.get("c", self._count)),
                        "queued": self._queued,
                        "hosts": self._hosts,
                        "ready": 0.0,  # something changed: look again
                    }
                )
                self._ready_at = -math.inf
            else:
                await self._peek()
            self._notify()

    async def _peek(self) -> None:
        reply = from_json(
            await self._call("poll", lambda: self._s.peek(self._keys, [self.worker_id]))
        )
        self._absorb(reply)
        if self._event_id == "$":
            self._event_id = as_text(reply.get("event", "0-0"))

    async def _renewer(self) -> None:
        while True:
            await trio.sleep(self._lease / 3)
            tokens = list(self._tokens.values())
            if not tokens:
                continue
            args = [self.worker_id, *tokens]
            lost = await self._call("renew", functools.partial(self._s.renew, self._keys, args))
            if lost:
                log.debug("%s leases of this worker expired before renewal", lost)

    # ------------------------------------------------------------ interface
    async def add(self, requests: Sequence[NewRequest]) -> int:
        self._check()
        if not requests:
            return 0
        total = 0
        for i in range(0, len(requests), 1000):
            args = [self.worker_id, json.dumps([link_args(r) for r in requests[i : i + 1000]])]
            reply = from_json(
                await self._call("add", functools.partial(self._s.add, self._keys, args))
            )
            self._absorb(reply)
            total += int(reply.get("n", 0))
        if total:
            self._ready_at = -math.inf
            self._notify()
        return total

    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        self._check()
        if not fingerprints:
            return []
        payload = json.dumps([[str(signed(fp)), fp & 0xFFFFFFFF] for fp in fingerprints])
        reply = from_json(
            await self._call(
                "mark_seen", lambda: self._s.mark_seen(self._keys, [self.worker_id, payload])
            )
        )
        return [bool(x) for x in as_list(reply.get("r"))]

    async def claim(self, now: float, limit: int) -> list[Claim]:
        self._check()
        stale = trio.current_time() - self._fresh_at >= self._poll
        if not self._buffer and (now >= self._ready_at or stale):
            # lease enough for every free fetcher; pending completions ride along
            self._claiming = True
            await self._sync(max(limit, self._concurrency - self._in_hand), self._prefetch)
        out: list[Claim] = []
        while self._buffer and len(out) < limit:
            out.append(self._buffer.popleft())
        self._in_hand += len(out)
        if out:
            await self._catch_up_scope()  # before a page of a new site is fetched here
        return out

    def next_ready_time(self) -> float | None:
        if self._buffer:
            return trio.current_time()
        return None if self._ready_at == math.inf else self._ready_at

    async def wait_changed(self, until: float | None) -> None:
        if self._buffer:
            return
        deadline = min(math.inf if until is None else until, trio.current_time() + self._poll)
        self._listen.set()
        with trio.move_on_at(deadline) as scope:
            await self._changed.wait()
        if scope.cancelled_caught:
            self._ready_at = -math.inf  # look again: time passed

    async def complete(
        self,
        claim: Claim,
        new: Sequence[NewRequest],
        items: Sequence[Any] = (),
        *,
        graph: PageGraph | None = None,
    ) -> int:
        """Queue the page's commit. Returns at once with 0 (the links queued are counted in
        the statistics when the commit returns), except for a redirect hop, whose caller needs
        to know whether the target was new: then it waits for the commit."""
        token = self._tokens.get(claim)
        self._in_hand = max(0, self._in_hand - 1)
        if token is None:
            return 0
        waited = any(r.request.redirects for r in new)
        payload = completion(token, claim, new, items, graph)
        op = Op(payload, claim=claim, items=items, waited=waited)
        await self._submit(op)
        if not waited:
            return 0
        await op.done.wait()
        if op.result < 0 and self._failed is not None:
            raise StoreError(f"the Redis store failed ({self._failed})")
        return max(0, op.result)

    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        token = self._tokens.get(claim)
        self._in_hand = max(0, self._in_hand - 1)
        if token is None:
            return
        entry = f"{claim.fingerprint:016x} {encode_request(request)}"
        wait = max(0.0, not_before - trio.current_time())
        fp = f"{claim.fingerprint:016x}"
        await self._submit(Op({"k": "r", "t": token, "f": fp, "e": entry, "w": wait}, claim=claim))

    async def pause_host(self, host: str, until: float) -> None:
        wait = max(0.0, until - trio.current_time())
        await self._submit(Op({"k": "p", "h": host, "w": wait}))

    async def set_host_delay(self, host: str, delay: float) -> None:
        await self._submit(Op({"k": "d", "h": host, "d": delay}))

    def budget_refusals(self) -> int:
        return self._over_budget

    def outstanding(self) -> int:
        return self._count

    def queued(self) -> int:
        return self._queued

    def in_flight(self) -> int:
        return self._in_hand

    def active_hosts(self) -> int:
        return self._hosts

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        self._check()
        key = f"{self._prefix}robots:{host}"
        values = await self._call(
            "load_robots", lambda: self._client.hmget(key, ["status", "body", "at"])
        )
        status, body, at = [*values, None, None, None][:3]
        if status is None:
            return None
        return int(status), bytes(body or b""), float(at or 0.0)

    async def add_scope(self, url: str) -> None:
        self._check()
        self._heard_scope(url)
        reply = await self._call(
            "add_scope", lambda: self._s.add_scope(self._keys, [self.worker_id, url])
        )
        self._absorb(from_json(reply))

    async def _catch_up_scope(self) -> None:
        """Hear of the scope additions other workers made (the last reply counted them)."""
        known = len(self._scope)
        if self._scope_count <= known:
            return
        key = self._keys[0] + "scope"
        urls = await self._call("scope", lambda: self._client.lrange(key, known, -1))
        for url in urls:
            self._heard_scope(as_text(url))

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:
        self._check()
        await self._call(
            "save_robots",
            lambda: self._s.save_robots(
                self._keys, [self.worker_id, host, status, body, repr(fetched_at)]
            ),
        )

    # ------------------------------------------------------------ introspection
    def statistics(self) -> dict[str, int]:
        """This worker's figures (for benchmarks and tests)."""
        return {
            "round_trips": self.round_trips,
            **{f"calls.{k}": v for k, v in sorted(self.calls.items())},
            "lost_leases": self.lost_leases,
            "buffered": len(self._buffer),
            "held": len(self._tokens),
        }
