"""The engine: one nursery, its channels, the outstanding-work count and the stop rule.

Theory of operation
-------------------
``Crawler.run`` opens the crawl's :class:`~trio_crawler._fetcher.Fetcher` (the HTTP client
setup, owned by the crawl) and then one nursery that owns every task:

``scheduler`` (1)
    Owner of the frontier (through the store). It borrows a token of the *crawl limiter* on
    behalf of the next request, claims a request whose host is ready, and sends it to the
    fetchers over a zero-buffer channel. With nothing ready it waits for the store to change
    or for the next host to become ready: an event with a deadline, never a polling loop.
``fetcher`` (``concurrency`` tasks)
    Each receives a claim, checks robots.txt, fetches, follows the crawl's redirect rules,
    runs ``spider.scrape``, hands the items to the processor and completes the claim in the
    store together with its new links. It returns the limiter token in ``finally``.
``processor`` (1, plus one short task per ``process`` call under the *processing limiter*)
    Receives items, writes them to the exporters in batches, forwards them to
    ``crawler.items()`` when someone reads it, and runs ``spider.process``.

Channels and who closes them:

* requests: scheduler -> fetchers, buffer 0. The scheduler owns and closes the send end;
  each fetcher closes its clone of the receive end.
* items: fetchers -> processor, buffer ``items_buffer``. Each fetcher closes its clone of the
  send end; the processor closes the receive end. No channel goes back to the scheduler: new
  links enter the store with a call that never blocks, so there is no cycle of bounded
  channels and no deadlock, whatever the number of seeds or links per page.
* user items: processor -> ``crawler.items()``, buffer ``items_buffer``; opt-in. A reader
  that stops reading slows the crawl (backpressure); one that leaves closes it.

The stop rule, in one place (:meth:`Crawler._should_stop_claiming`): the store's
``outstanding()`` count is raised when a request is queued and lowered only after the page's
new links were queued and its items handed on; at zero, ``work_done`` fires, the scheduler
closes the request channel, fetchers finish, the item channel closes, the processor drains its
tasks and fires ``drained``. That Event is the barrier ``wait()`` waits on. A stop request
(``max_pages``, ``max_duration``, Ctrl-C, ``--fail-fast``) makes the scheduler stop claiming:
in-flight pages finish and the same chain of closes follows.

Every claim is completed or retried exactly once, in ``finally`` if need be: an exception in
spider code is recorded with the URL and cannot leave the count raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import trio

from . import _extract
from ._exceptions import FailureKind, FetchError, SettingsError
from ._export import Exporter, open_exporter
from ._fetcher import (
    AddressGuard,
    Fetcher,
    FetchResult,
    Resolver,
    allow_seed_hosts,
    failure_request,
    to_exchange,
)
from ._retry import AdaptiveDelay, RetryPolicy
from ._robots import ROBOTS_MAX_BYTES, RobotsCache, RobotsPolicy, robots_url, user_agent_token
from ._session import CookieJar, Credentials, strip_sensitive
from ._settings import Settings, __version__
from ._sitemaps import SitemapBudget, parse_sitemap, sitemap_url
from ._spider import Drop, Failure, Follow, Page, Request, Retry, Spider, iterate_result
from ._stats import Counters, CrawlStats
from ._store import Claim, CrawlStore, MemoryStore, NewRequest
from ._urls import DropReason, QueryVariantGuard, UrlRules, resolve
from ._warc import WarcWriter

log = logging.getLogger("trio_crawler.engine")

_ROBOTS_REDIRECTS = 5

#: ``Request.meta`` key marking a sitemap request (the engine reads it; no scrape).
_SITEMAP = "trio_crawler.sitemap"

#: Failures that are an ordinary part of crawling: logged at INFO, not WARNING.
_QUIET_KINDS = frozenset({FailureKind.ROBOTS, FailureKind.HTTP_STATUS, FailureKind.OUT_OF_SCOPE})


def effective_settings(settings: Settings, spider: Spider) -> Settings:
    """Apply ``spider.custom_settings`` to the fields the user left at their defaults."""
    if not spider.custom_settings:
        return settings
    defaults = Settings()
    changes: dict[str, Any] = {}
    for name, value in spider.custom_settings.items():
        if name not in Settings.field_names():
            raise SettingsError(f"spider {spider.name!r} sets unknown setting {name!r}")
        if getattr(settings, name) == getattr(defaults, name):
            changes[name] = value
    return settings.replace(**changes) if changes else settings


class Crawler:
    """One crawl: a spider, settings, a store, exporters. Run it with :func:`open_crawler`,
    :func:`start_crawler` or :func:`crawl`."""

    def __init__(
        self,
        spider: Spider,
        settings: Settings | None = None,
        *,
        start_urls: Sequence[str] | None = None,
        store: CrawlStore | None = None,
        exporters: Sequence[Exporter] = (),
        outputs: Sequence[str] = (),
        output_format: str | None = None,
        resolver: Resolver | None = None,
        transport: Any = None,
        clients: int | None = None,
    ) -> None:
        self.spider = spider
        self.settings = effective_settings(settings or Settings(), spider)
        s = self.settings
        self._start: list[Request | str] = (
            list(start_urls) if start_urls is not None else list(spider.start_requests())
        )
        seed_urls = [r.url if isinstance(r, Request) else r for r in self._start]
        self.rules = UrlRules(s, seed_urls)
        self.store: CrawlStore = store or MemoryStore(
            per_host_concurrency=s.per_host_concurrency,
            per_host_delay=s.per_host_delay,
            max_pages_per_host=s.max_pages_per_host,
            depth_first=s.order == "depth",
        )
        self.exporters = list(exporters)
        self._output_targets = [t if t == "-" else os.path.abspath(t) for t in outputs]
        self._output_format = output_format
        self.resumed = False
        self._guard = AddressGuard(allow_private=s.allow_private, allowed=s.allowed_addresses)
        allow_seed_hosts(self._guard, seed_urls)
        self._resolver = resolver
        self._transport = transport
        self._clients = clients
        self._retry = RetryPolicy.from_settings(s)
        self._query_guard = QueryVariantGuard(s.max_query_variants)
        self._path_id_guard = PathIdGuard(s.max_query_variants)
        self._robots = RobotsCache()
        self._robots_pending: dict[str, trio.Event] = {}
        self._robots_errors: dict[str, FetchError] = {}
        self._throttles: dict[str, AdaptiveDelay] = {}
        self._base_delay: dict[str, float] = {}
        self._ip_keys: dict[str, str] = {}
        self._content_hashes: set[int] = set()
        self._sitemap_budget = SitemapBudget()
        self._warc: WarcWriter | None = None
        self._cookies = CookieJar() if s.cookies else None
        self._credentials = Credentials(s.credentials)
        self._before_hooks: list[Any] = list(s.before_request)
        if type(spider).before_request is not Spider.before_request:
            self._before_hooks.append(spider.before_request)
        self._after_hooks: list[Any] = list(s.after_response)
        if type(spider).after_response is not Spider.after_response:
            self._after_hooks.append(spider.after_response)
        self._ua_token = user_agent_token(s.user_agent)
        self._crawl_limiter = trio.CapacityLimiter(s.concurrency)
        self._process_limiter = trio.CapacityLimiter(s.processing_concurrency)
        self._counters = Counters()
        self._stop_reason: str | None = None
        self._pages_started: set[int] = set()
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._work_done = trio.Event()
        self._drained = trio.Event()
        self._wait_scope: trio.CancelScope | None = None
        self._fetcher: Fetcher | None = None
        self._user_send: trio.MemorySendChannel[Any] | None = None
        self._user_recv: trio.MemoryReceiveChannel[Any] | None = None
        self._has_process = type(spider).process is not Spider.process
        self._has_failed = type(spider).failed is not Spider.failed
        self._fatal: BaseException | None = None

    # ------------------------------------------------------------------ public
    def items(self) -> trio.MemoryReceiveChannel[Any]:
        """Items as they are produced (opt-in): a channel to ``async for`` over.

        Call it before the crawl produces its first item, e.g. right after ``open_crawler``
        returns. Bounded (``items_buffer``): a slow reader slows the crawl, it does not lose
        items. A reader that stops early closes the channel (``async with crawler.items() as
        items:``, or leave the ``open_crawler`` block): the crawl goes on without it.
        Items arrive at least once (a page fetched again after a crash delivers them again).
        """
        if self._user_recv is None:
            if self._counters.items:
                raise RuntimeError("items() must be called before the crawl produces items")
            self._user_send, self._user_recv = trio.open_memory_channel[Any](
                self.settings.items_buffer
            )
        return self._user_recv

    def stop(self, reason: str = "interrupted") -> None:
        """Stop taking new requests; in-flight pages finish. Safe to call more than once."""
        if self._stop_reason is None:
            self._stop_reason = reason
            log.info("stopping: %s", reason)
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def _limit_fetches(self, n: int) -> None:
        """Fetch at most ``n`` pages at once in this process (``--processes``: the parent,
        whose event loop also answers the workers' store calls, keeps a share of ``-c``)."""
        self._crawl_limiter.total_tokens = max(1, n)

    async def wait(self) -> CrawlStats:
        """Wait until every processor has drained; return the final statistics."""
        await self._drained.wait()
        return self.statistics()

    def statistics(self) -> CrawlStats:
        over_budget = getattr(self.store, "over_budget", 0)
        if over_budget:
            self._counters.dropped["host_budget"] = over_budget
        now = self._ended_at or (trio.current_time() if self._started_at is not None else 0.0)
        elapsed = now - self._started_at if self._started_at is not None else 0.0
        return self._counters.snapshot(
            stop_reason=self._final_reason() if self._drained.is_set() else self._stop_reason,
            elapsed=elapsed,
            queued=self.store.queued(),
            in_flight=self.store.in_flight(),
            active_hosts=self.store.active_hosts(),
        )

    def _final_reason(self) -> str:
        return self._stop_reason or "finished"

    # ------------------------------------------------------------------ run
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the whole crawl in a nursery of its own; return when it is over."""
        s = self.settings
        self._started_at = trio.current_time()
        try:
            async with self.store.open(self.crawl_meta(), self._counters) as resumed:
                self.resumed = resumed
                self._open_outputs()
                if s.warc is not None:
                    self._warc = WarcWriter(
                        s.warc,
                        max_size=s.warc_max_size,
                        software=f"trio-crawler/{__version__}",
                        info={"http-header-user-agent": s.user_agent},
                    )
                async with Fetcher(
                    s,
                    guard=self._guard,
                    resolver=self._resolver,
                    transport=self._transport,
                    clients=self._clients,
                ) as fetcher:
                    self._fetcher = fetcher
                    async with trio.open_nursery() as nursery:
                        await self._start_tasks(nursery)
                        task_status.started()
        except BaseException as exc:
            if self._stop_reason is None:
                self._stop_reason = "cancelled" if _only_cancelled(exc) else "error"
            raise
        finally:
            self._ended_at = trio.current_time()
            log.info(
                "crawl ended (%s): %d pages, %d failed, %d items",
                self._final_reason(),
                self._counters.pages_ok + self._counters.pages_failed,
                self._counters.pages_failed,
                self._counters.items,
            )
            self._fetcher = None
            self._close_exporters()
            if self._warc is not None:
                try:
                    self._warc.close()
                except OSError as exc:
                    log.error("cannot close the WARC file: %s", exc)
                self._warc = None
            self._drained.set()
            self._work_done.set()

    async def _start_tasks(self, nursery: trio.Nursery) -> None:
        """Start the processor, the fetchers and the scheduler; seed the frontier."""
        s = self.settings
        req_send, req_recv = trio.open_memory_channel[tuple[object, Claim]](0)
        item_send, item_recv = trio.open_memory_channel[Any](s.items_buffer)
        nursery.start_soon(self._processor, item_recv, name="trio_crawler.processor")
        async with req_recv, item_send:
            for i in range(s.concurrency):
                nursery.start_soon(
                    self._fetch_worker,
                    req_recv.clone(),
                    item_send.clone(),
                    name=f"trio_crawler.fetcher-{i}",
                )
        await self._seed()
        nursery.start_soon(self._scheduler, req_send, name="trio_crawler.scheduler")
        if s.max_duration is not None:
            nursery.start_soon(self._deadline, s.max_duration, name="trio_crawler.deadline")

    def crawl_meta(self) -> dict[str, Any]:
        """What identifies this crawl: a stored crawl resumes only with the same values."""
        s = self.settings
        seeds = sorted({r.url if isinstance(r, Request) else r for r in self._start})
        return {
            "spider": f"{type(self.spider).__module__}.{type(self.spider).__qualname__}",
            "spider_args": dict(sorted(self.spider.arguments.items())),
            "seeds": seeds,
            "scope": s.scope,
            "allowed_domains": list(s.allowed_domains),
            "denied_domains": list(s.denied_domains),
            "include_patterns": list(s.include_patterns),
            "exclude_patterns": list(s.exclude_patterns),
            "strip_params": list(s.strip_params),
            "sort_query": s.sort_query,
        }

    def _open_outputs(self) -> None:
        """Open the output files at the offsets the store committed (resume), attach them."""
        offsets = self.store.output_offsets()
        opened: list[Exporter] = []
        try:
            for target in self._output_targets:
                opened.append(
                    open_exporter(
                        target, format=self._output_format, resume_offset=offsets.get(target)
                    )
                )
        except BaseException:
            for exporter in opened:
                exporter.close()
            raise
        self.exporters.extend(opened)
        self.store.attach_outputs(self.exporters)

    async def _seed(self) -> None:
        new: list[NewRequest] = []
        for entry in self._start:
            request = entry if isinstance(entry, Request) else Request(url=entry)
            if self.spider.headers:
                request = dataclasses.replace(
                    request, headers={**self.spider.headers, **request.headers}
                )
            admitted = self._admit(request)
            if admitted is not None:
                new.append(admitted)
        self._counters.links_queued += await self.store.add(await self._keyed(new))
        if not new:
            log.warning("no start URL was admitted: nothing to crawl")

    async def _deadline(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            await self._work_done.wait()
            return
        self.stop("max_duration")

    # ------------------------------------------------------------------ scheduler
    def _should_stop_claiming(self) -> bool:
        """The stop rule: no work outstanding anywhere, or a stop was asked for."""
        if self._stop_reason is not None:
            return True
        if self.store.outstanding() == 0:
            self._work_done.set()
            return True
        return False

    async def _scheduler(self, send: trio.MemorySendChannel[tuple[object, Claim]]) -> None:
        async with send:
            while not self._should_stop_claiming():
                token = object()
                await self._crawl_limiter.acquire_on_behalf_of(token)
                try:
                    claim = await self._next_claim()
                    if claim is None:
                        self._crawl_limiter.release_on_behalf_of(token)
                        break
                    await send.send((token, claim))
                except BaseException:
                    if token in self._crawl_limiter.statistics().borrowers:
                        self._crawl_limiter.release_on_behalf_of(token)
                    raise
        self._work_done.set()

    async def _next_claim(self) -> Claim | None:
        store = self.store
        while not self._should_stop_claiming():
            claims = await store.claim(trio.current_time(), 1)
            if claims:
                claim = claims[0]
                limit = self.settings.max_pages
                if limit is not None and not claim.request.redirects:
                    # a page counts once, however often it goes back (retry, robots.txt turn)
                    self._pages_started.add(claim.fingerprint)
                    if len(self._pages_started) >= limit:
                        self.stop("max_pages")
                return claim
            with trio.CancelScope() as self._wait_scope:
                await store.wait_changed(store.next_ready_time())
            self._wait_scope = None
        return None

    # ------------------------------------------------------------------ links
    def _admit(self, request: Request) -> NewRequest | None:
        """Apply depth, URL rules and trap guards to one request; None when dropped."""
        s = self.settings
        reason: str | None = None
        if s.max_depth is not None and request.depth > s.max_depth:
            reason = DropReason.TOO_DEEP
        elif len(request.url) > s.max_url_length:
            reason = DropReason.TOO_LONG
        else:
            reason = self.rules.check(request.url)
            if reason is None:
                # what is sent, fingerprinted, logged and recorded: one string, normalised
                url = self.rules.normalized(request.url)
                if url != request.url:
                    request = dataclasses.replace(request, url=url)
            if (
                reason is None
                and "?" in request.url
                and not self._query_guard.admit(self.rules.canonical(request.url))
            ):
                reason = DropReason.TRAP_QUERY_VARIANTS
            elif reason is None and not self._path_id_guard.admit(request.url):
                reason = "trap_path_ids"
        if reason is not None:
            self._counters.dropped[str(reason)] += 1
            return None
        try:
            fp = self.rules.fingerprint(request.url)
            host = self.rules.origin(request.url)
        except ValueError:
            self._counters.dropped[str(DropReason.UNPARSABLE)] += 1
            return None
        return NewRequest(request, fp, host)

    def _child_depth(self, page: Page, count: int) -> int | None:
        """Count ``count`` links found on ``page``; their depth, or None when too deep."""
        c = self._counters
        c.links_found += count
        depth = page.request.depth + 1
        max_depth = self.settings.max_depth
        if max_depth is not None and depth > max_depth:
            if count:
                c.dropped[str(DropReason.TOO_DEEP)] += count
            return None
        return depth

    def _children(self, page: Page, found: list[Request]) -> list[NewRequest]:
        """The page's requests, filled in (depth, referrer, headers) and admitted.

        Hot path (every link of every page): a link whose fingerprint the store surely saw
        already is skipped before any object is built for it.
        """
        depth = self._child_depth(page, len(found))
        if depth is None:
            return []
        out: list[NewRequest] = []
        referrer = page.url
        base_headers = self.spider.headers
        fingerprint = self.rules.fingerprint
        seen = self.store.seen_hint
        for request in found:
            if not request.dont_filter:
                try:
                    if seen(fingerprint(request.url)):
                        continue
                except ValueError:
                    pass  # _admit counts it
            child = Request(
                url=request.url,
                headers={**base_headers, **request.headers} if base_headers else request.headers,
                priority=request.priority,
                meta=request.meta,
                dont_filter=request.dont_filter,
                depth=depth,
                referrer=referrer,
            )
            admitted = self._admit(child)
            if admitted is not None:
                out.append(admitted)
        return out

    def _follow_all(self, page: Page, follow: Follow) -> list[NewRequest]:
        """A :class:`Follow` batch: like :meth:`_children`, with no object per seen URL."""
        urls = follow.urls
        depth = self._child_depth(page, len(urls))
        if depth is None:
            return []
        out: list[NewRequest] = []
        referrer = page.url
        base_headers = self.spider.headers
        headers = {**base_headers, **follow.headers} if base_headers else follow.headers
        fingerprint = self.rules.fingerprint
        seen = self.store.seen_hint
        for url in urls:
            try:
                if seen(fingerprint(url)):
                    continue
            except ValueError:
                pass  # _admit counts it
            admitted = self._admit(
                Request(
                    url=url,
                    headers=headers,
                    priority=follow.priority,
                    meta=follow.meta,
                    depth=depth,
                    referrer=referrer,
                )
            )
            if admitted is not None:
                out.append(admitted)
        return out

    # ------------------------------------------------------------------ fetchers
    async def _fetch_worker(
        self,
        recv: trio.MemoryReceiveChannel[tuple[object, Claim]],
        items: trio.MemorySendChannel[Any],
    ) -> None:
        async with recv, items:
            async for token, claim in recv:
                try:
                    await self._handle(claim, items)
                finally:
                    self._crawl_limiter.release_on_behalf_of(token)

    async def _handle(self, claim: Claim, items: trio.MemorySendChannel[Any]) -> None:
        """Fetch one claim and settle it: exactly one of complete() or retry() is called."""
        settle = _Settlement(self, claim)
        try:
            await self._process_claim(claim, items, settle)
        except trio.Cancelled:
            settle.settled = True  # abandoned: a durable store hands it out again on resume
            raise
        except Exception as exc:  # an engine or spider bug must not leave the count raised
            log.exception("internal error on %s", claim.request.url)
            self._counters.failures[FailureKind.OTHER] += 1
            self._counters.pages_failed += 1
            if self.settings.fail_fast:
                self._fatal = exc
                self.stop("fail_fast")
        finally:
            if not settle.settled:
                with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                    await settle.complete()

    async def _robots_for(self, host: str, key: str) -> tuple[RobotsPolicy, bool]:
        """The robots policy of origin ``host``; the flag says whether this request's turn
        was spent on it (it fetched robots.txt, or waited for another task's fetch), so the
        caller goes back to the frontier and keeps the host's spacing.

        Concurrent callers for one origin wait for a single fetch. A policy the store kept
        (an earlier run, another worker) is reused while fresh. A Crawl-delay raises the
        delay of politeness key ``key`` (the origin, or its IP address) and holds the host
        for that long after the robots.txt request.
        """
        waited = False
        while True:
            now = trio.current_time()
            policy = self._robots.get(host, now)
            if policy is not None:
                return policy, waited
            pending = self._robots_pending.get(host)
            if pending is None:
                break
            waited = True
            await pending.wait()
        event = self._robots_pending[host] = trio.Event()
        try:
            self._robots_errors.pop(host, None)
            fetched = False
            started = trio.current_time()
            policy = await self._stored_robots(host)
            if policy is None:
                policy = await self._fetch_robots(host)
                fetched = True
            self._robots.put(host, policy)
            delay = policy.crawl_delay(self._ua_token)
            if delay is not None:
                capped = min(delay, self.settings.max_crawl_delay)
                if capped > self.settings.per_host_delay:
                    self._base_delay[key] = capped
                    await self.store.set_host_delay(key, capped)
                    if fetched:
                        await self.store.pause_host(key, started + capped)
            if fetched and self.settings.sitemaps:
                await self._queue_sitemaps(host, policy)
            return policy, fetched
        finally:
            del self._robots_pending[host]
            event.set()

    async def _queue_sitemaps(self, host: str, policy: RobotsPolicy) -> None:
        """``--sitemaps``: queue the origin's sitemaps (robots.txt ``Sitemap:`` lines and
        ``/sitemap.xml``) as requests of their own, so they obey politeness like pages."""
        new: list[NewRequest] = []
        for url in (*policy.sitemaps, sitemap_url(host)):
            if not self._sitemap_budget.admit_sitemap(url):
                continue
            admitted = self._admit(Request(url=url, meta={_SITEMAP: True}, priority=1))
            if admitted is not None:
                new.append(admitted)
        if new:
            self._counters.links_queued += await self.store.add(await self._keyed(new))

    async def _read_sitemap(self, claim: Claim, settle: _Settlement, result: FetchResult) -> None:
        """A fetched sitemap: queue its page URLs and its child sitemaps (within budget)."""
        request = claim.request
        new: list[NewRequest] = []
        if 200 <= result.status < 300:
            found = parse_sitemap(result.body, base_url=result.url)
            self._counters.sitemap_urls += len(found.urls)
            for url in self._sitemap_budget.take_urls(found.urls):
                admitted = self._admit(Request(url=url, depth=1, referrer=result.url))
                if admitted is not None:
                    new.append(admitted)
            for url in found.sitemaps:
                if self._sitemap_budget.admit_sitemap(url):
                    child = Request(url=url, meta={_SITEMAP: True}, priority=1, referrer=result.url)
                    admitted = self._admit(child)
                    if admitted is not None:
                        new.append(admitted)
        else:
            log.info("sitemap %s: HTTP %s", request.url, result.status)
        await settle.complete(await self._keyed(new))

    async def _stored_robots(self, host: str) -> RobotsPolicy | None:
        stored = await self.store.load_robots(host)
        if stored is None:
            return None
        status, body, fetched_at = stored
        age = max(0.0, _wall() - fetched_at)
        policy = RobotsPolicy.from_response(
            status,
            body,
            now=trio.current_time() - age,
            error_ttl=self.settings.robots_error_ttl,
        )
        return None if policy.is_expired(trio.current_time()) else policy

    async def _fetch_robots(self, host: str) -> RobotsPolicy:
        assert self._fetcher is not None
        s = self.settings
        url = robots_url(host)
        for _ in range(_ROBOTS_REDIRECTS + 1):
            self._counters.robots_fetches += 1
            self._counters.requests += 1
            try:
                result = await self._fetcher.fetch(url, max_body=ROBOTS_MAX_BYTES)
            except FetchError as exc:
                self._archive(url, exc)
                log.info("robots.txt of %s unreachable (%s): disallowing for now", host, exc)
                self._robots_errors[host] = exc
                return RobotsPolicy.unreachable(
                    now=trio.current_time(), error_ttl=s.robots_error_ttl
                )
            self._archive(url, result)
            location = result.headers.get("location")
            if 300 <= result.status < 400 and location:
                try:
                    url = resolve(location, url)
                except ValueError:
                    break
                if not url.startswith(("http://", "https://")):
                    break
                continue
            await self.store.save_robots(host, result.status, result.body, _wall())
            return RobotsPolicy.from_response(
                result.status, result.body, now=trio.current_time(), error_ttl=s.robots_error_ttl
            )
        return RobotsPolicy.unreachable(now=trio.current_time(), error_ttl=s.robots_error_ttl)

    async def _process_claim(
        self,
        claim: Claim,
        items: trio.MemorySendChannel[Any],
        settle: _Settlement,
    ) -> None:
        assert self._fetcher is not None
        s = self.settings
        request = claim.request
        url = request.url
        c = self._counters

        if s.obey_robots:
            site = self.rules.origin(url)
            policy, turn_spent = await self._robots_for(site, claim.host)
            if turn_spent and self._base_delay.get(claim.host, s.per_host_delay) > 0:
                # robots.txt took this request's turn: go back behind the host's delay
                await settle.retry(request, 0.0)
                return
            if not policy.allowed(url, self._ua_token):
                error = self._robots_errors.get(site)
                if error is not None and policy.kind == "disallow_all":
                    # the host itself is unreachable: say how, not just "robots"
                    await self._fail(claim, items, settle, error.kind, f"robots.txt: {error}")
                else:
                    await self._fail(
                        claim, items, settle, FailureKind.ROBOTS, "disallowed by robots.txt"
                    )
                return

        if self._before_hooks:
            changed = await self._run_before_hooks(request)
            if isinstance(changed, Drop):
                c.dropped["hook"] += 1
                log.info("%s dropped: %s", url, changed.reason)
                await settle.complete()
                return
            request, url = changed, changed.url
        headers = self._request_headers(request)
        try:
            result = await self._fetcher.fetch(url, headers)
        except FetchError as exc:
            self._archive(url, exc)
            c.requests += 1
            decision = self._retry.for_error(exc.kind, attempt=request.retries)
            if decision.retry:
                c.retries += 1
                log.debug("retrying %s in %.2fs after %s", url, decision.delay, exc.kind)
                await settle.retry(
                    dataclasses.replace(request, retries=request.retries + 1), decision.delay
                )
                return
            await self._fail(claim, items, settle, exc.kind, f"{exc.kind}: {exc.args[0]}")
            return

        self._archive(url, result)
        c.requests += 1
        c.wire_bytes += result.wire_bytes
        status = result.status
        if self._cookies is not None and "set-cookie" in result.headers:
            self._cookies.store(url, result.headers.get_list("set-cookie"), now=_wall())
        if request.meta and request.meta.get(_SITEMAP) and not 300 <= status < 400:
            await self._read_sitemap(claim, settle, result)
            return
        page = self._make_page(request, result)
        if s.adaptive_throttle:
            await self._adapt(claim.host, result.elapsed, status)

        pause = self.spider.rate_limit_delay(page)
        if pause is not None and pause > 0:
            wait = min(pause, s.max_retry_after)
            await self.store.pause_host(claim.host, trio.current_time() + wait)
            if not 200 <= status < 300:
                log.info("rate limited on %s: waiting %.1fs", url, wait)
                await settle.retry(request, wait)
                return

        if 300 <= status < 400 and "location" in result.headers:
            await self._redirect(claim, items, settle, result)
            return

        if self._after_hooks:
            verdict_of_hooks = await self._run_after_hooks(page)
            if isinstance(verdict_of_hooks, Drop):
                c.dropped["hook"] += 1
                log.info("%s dropped: %s", url, verdict_of_hooks.reason)
                await settle.complete()
                return
            if isinstance(verdict_of_hooks, Retry):
                if request.retries >= s.max_retries:
                    await self._fail(
                        claim,
                        items,
                        settle,
                        FailureKind.OTHER,
                        f"{verdict_of_hooks.reason}: out of retries",
                        status=status,
                    )
                    return
                c.retries += 1
                await settle.retry(
                    dataclasses.replace(request, retries=request.retries + 1),
                    verdict_of_hooks.delay,
                )
                return

        verdict = self._retry.for_status(
            status, result.headers, attempt=request.retries, now_wall=_wall()
        )
        if verdict is not None:
            decision = verdict
            if decision.host_delay:
                await self.store.pause_host(claim.host, trio.current_time() + decision.host_delay)
            if decision.retry:
                c.retries += 1
                await settle.retry(
                    dataclasses.replace(request, retries=request.retries + 1), decision.delay
                )
                return
            c.status_classes[f"{status // 100}xx"] += 1
            kind = decision.give_up or FailureKind.HTTP_STATUS
            await self._fail(
                claim, items, settle, kind, decision.reason or f"HTTP {status}", status=status
            )
            return

        c.status_classes[f"{status // 100}xx"] += 1
        if not 200 <= status < 300:
            await self._fail(
                claim, items, settle, FailureKind.HTTP_STATUS, f"HTTP {status}", status=status
            )
            return

        c.pages_ok += 1
        c.bytes += len(result.body)
        if result.truncated:
            c.truncated += 1
        if not self._accepts(page):
            await settle.complete()
            return
        duplicate = s.dedupe_content and self._seen_content(page)
        found: list[Request] = []
        follows: list[Follow] = []
        produced: list[Any] = []
        try:
            async for value in iterate_result(self.spider.scrape(page)):
                if isinstance(value, Request):
                    found.append(value)
                elif isinstance(value, Follow):
                    follows.append(value)
                else:
                    produced.append(value)
        except Exception as exc:
            c.spider_errors += 1
            c.failures[FailureKind.SCRAPE_ERROR] += 1
            log.error("scrape failed on %s: %s: %s", url, type(exc).__name__, exc)
            if s.fail_fast:
                self._fatal = exc
                self.stop("fail_fast")
        page._release()  # the parse tree need not wait for the store with this task
        extracted = page.extracted_if_done()
        if extracted is not None:
            if extracted.skipped_schemes:
                c.dropped["bad_scheme"] += extracted.skipped_schemes
            if extracted.skipped_invalid:
                c.dropped["invalid_href"] += extracted.skipped_invalid
            if extracted.links_truncated:
                c.dropped["links_over_page_cap"] += 1
        if duplicate and (found or follows):
            c.dropped["duplicate_content"] += len(found) + sum(len(f.urls) for f in follows)
            found, follows = [], []
        children = self._children(page, found)
        for follow in follows:
            children += self._follow_all(page, follow)
        await self._hand_on(produced, items)
        await settle.complete(await self._keyed(children), produced)

    def _archive(self, url: str, outcome: FetchResult | FetchError) -> None:
        """``--warc``: every exchange (redirects, robots.txt, sitemaps) and every failed fetch."""
        if self._warc is None:
            return
        if isinstance(outcome, FetchError):
            sent, started = failure_request(outcome)
            self._warc.write_failure(url, str(outcome.kind), str(outcome), started, sent)
        else:
            self._warc.write_exchange(to_exchange(outcome))

    def _request_headers(self, request: Request) -> dict[str, str] | None:
        """The request's own headers plus its origin's cookies and credentials, if any."""
        headers = dict(request.headers) if request.headers else None
        if self._cookies is not None:
            cookie = self._cookies.header(request.url, now=_wall())
            if cookie is not None:
                headers = headers or {}
                headers.setdefault("cookie", cookie)
        if self._credentials:
            auth = self._credentials.header(request.url)
            if auth is not None:
                headers = headers or {}
                if not any(k.lower() == "authorization" for k in headers):
                    headers["authorization"] = auth
        return headers

    async def _run_before_hooks(self, request: Request) -> Request | Drop:
        """Settings' hooks in order, then the spider's: each sees the previous one's request."""
        for hook in self._before_hooks:
            answer = await hook(request)
            if isinstance(answer, Drop):
                return answer
            if isinstance(answer, Request):
                request = answer
        return request

    async def _run_after_hooks(self, page: Page) -> Retry | Drop | None:
        """Settings' hooks in order, then the spider's; the first Retry or Drop wins."""
        for hook in self._after_hooks:
            answer = await hook(page)
            if isinstance(answer, (Retry, Drop)):
                return answer
        return None

    def _seen_content(self, page: Page) -> bool:
        """Content dedupe: True when an identical body was seen before (links not followed)."""
        digest = int.from_bytes(hashlib.blake2b(page.body, digest_size=8).digest(), "big")
        if digest in self._content_hashes:
            return True
        if len(self._content_hashes) >= 1_000_000:
            self._content_hashes.clear()
        self._content_hashes.add(digest)
        return False

    async def _adapt(self, key: str, latency: float, status: int | None) -> None:
        """Adaptive throttle: the host's delay follows its latency, backs off on 429/503."""
        throttle = self._throttles.get(key)
        if throttle is None:
            s = self.settings
            base = self._base_delay.get(key, s.per_host_delay)
            throttle = self._throttles[key] = AdaptiveDelay(
                start=max(base, 0.0),
                minimum=base,
                maximum=max(base, s.max_crawl_delay),
                target_concurrency=float(s.per_host_concurrency),
            )
        before = throttle.delay
        after = throttle.observe(latency, status)
        if after != before:
            await self.store.set_host_delay(key, after)

    async def _keyed(self, new: list[NewRequest]) -> list[NewRequest]:
        """Give each new request its politeness key: its origin, or its IP with
        ``politeness_key="ip"`` (shared hosting puts many names on one machine)."""
        if self.settings.politeness_key != "ip" or not new:
            return new
        out = []
        for item in new:
            key = self._ip_keys.get(item.host)
            if key is None:
                key = await self._ip_key(item.host)
            out.append(dataclasses.replace(item, host=key) if key != item.host else item)
        return out

    async def _ip_key(self, site: str) -> str:
        _scheme, _, hostport = site.partition("://")
        host, _, port = hostport.rpartition(":")
        resolver = self._fetcher.resolver if self._fetcher is not None else None
        key = site
        if resolver is not None:
            try:
                ips = await resolver(host.strip("[]"), int(port))
                key = f"ip:{ips[0]}"
            except FetchError:
                key = site  # the fetch will fail with its own DNS error
        if len(self._ip_keys) > 100_000:
            self._ip_keys.clear()
        self._ip_keys[site] = key
        return key

    def _accepts(self, page: Page) -> bool:
        accept = self.spider.accept
        if accept == "any":
            return True
        if accept == "json":
            return page.is_json or page.body[:1].strip() in (b"{", b"[")
        return page.is_html

    def _make_page(self, request: Request, result: FetchResult) -> Page:
        s = self.settings
        header_robots: frozenset[str] = frozenset()
        tags = result.headers.get_list("x-robots-tag")
        if tags and s.obey_meta_robots:
            header_robots = _extract.robots_directives(tags, self._ua_token)
        return Page(
            request=request,
            url=result.url,
            status=result.status,
            headers=result.headers,
            body=result.body,
            truncated=result.truncated,
            elapsed=result.elapsed,
            header_robots=header_robots,
            obey_meta_robots=s.obey_meta_robots,
            obey_nofollow=s.obey_nofollow,
            max_links=s.max_links_per_page,
        )

    async def _redirect(
        self,
        claim: Claim,
        items: trio.MemorySendChannel[Any],
        settle: _Settlement,
        result: FetchResult,
    ) -> None:
        request = claim.request
        c = self._counters
        c.status_classes[f"{result.status // 100}xx"] += 1
        location = result.headers["location"].strip()
        try:
            target = resolve(location, result.url)
            scheme = target.partition(":")[0]
        except ValueError:
            target, scheme = location, "http"  # not a URL: refused as a bad URL below
        chain = (*request.redirects, request.url)
        if scheme not in ("http", "https"):
            await self._fail(
                claim,
                items,
                settle,
                FailureKind.BAD_SCHEME,
                f"redirect to {scheme}: refused",
                status=result.status,
            )
            return
        if len(chain) > self.settings.max_redirects:
            await self._fail(
                claim,
                items,
                settle,
                FailureKind.TOO_MANY_REDIRECTS,
                f"more than {self.settings.max_redirects} redirects",
                status=result.status,
            )
            return
        try:
            target_fp = self.rules.fingerprint(target)
            seen_in_chain = {self.rules.fingerprint(u) for u in chain}
        except ValueError:
            await self._fail(
                claim,
                items,
                settle,
                FailureKind.BAD_URL,
                f"bad redirect target {target[:200]!r}",
                status=result.status,
            )
            return
        if target_fp in seen_in_chain:
            await self._fail(
                claim,
                items,
                settle,
                FailureKind.REDIRECT_LOOP,
                f"redirect loop back to {target}",
                status=result.status,
            )
            return
        if request.depth == 0 and self.settings.scope != "any":
            # a seed that redirects (http -> https, example.com -> www.example.com) takes its
            # target's site into scope, as if the user had named it
            with suppress(SettingsError):
                self.rules.add_seed(target)
        reason = self.rules.check(target)
        if reason is not None:
            kind = (
                FailureKind.BAD_URL
                if reason in (DropReason.UNPARSABLE, DropReason.TOO_LONG)
                else FailureKind.OUT_OF_SCOPE
            )
            await self._fail(
                claim,
                items,
                settle,
                kind,
                f"redirect to {target} refused: {reason}",
                status=result.status,
            )
            return
        c.redirects += 1
        follow = dataclasses.replace(request, url=target, redirects=chain, retries=0)
        if request.headers and self.rules.origin(target) != self.rules.origin(request.url):
            # credentials and cookies a spider put on the request stay with their origin
            follow = dataclasses.replace(follow, headers=strip_sensitive(request.headers))
        hop = await self._keyed([NewRequest(follow, target_fp, self.rules.origin(target))])
        queued = await settle.complete(hop)
        if queued == 0:
            c.dropped["redirect_to_seen"] += 1

    async def _fail(
        self,
        claim: Claim,
        items: trio.MemorySendChannel[Any],
        settle: _Settlement,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
    ) -> None:
        c = self._counters
        request = claim.request
        if request.meta and request.meta.get(_SITEMAP):
            c.dropped["sitemap_failed"] += 1
            log.info("sitemap %s failed: %s", request.url, message)
            await settle.complete()
            return
        c.pages_failed += 1
        c.failures[str(kind)] += 1
        level = logging.INFO if kind in _QUIET_KINDS else logging.WARNING
        log.log(level, "%s failed: %s", request.original_url, message)
        produced: list[Any] = []
        if self._has_failed:
            failure = Failure(
                request=request, kind=kind, message=message, status=status, url=request.url
            )
            try:
                async for value in iterate_result(self.spider.failed(failure)):
                    if not isinstance(value, Request):
                        produced.append(value)
            except Exception as exc:
                c.spider_errors += 1
                log.error("failed() raised on %s: %s: %s", request.url, type(exc).__name__, exc)
        await self._hand_on(produced, items)
        await settle.complete((), produced)

    async def _hand_on(self, produced: list[Any], items: trio.MemorySendChannel[Any]) -> None:
        """Give a page's items to the processor (``process``, ``items()``): at least once."""
        if not produced:
            return
        self._counters.items += len(produced)
        if self._has_process or self._user_send is not None:
            for value in produced:
                await items.send(value)

    # ------------------------------------------------------------------ processor
    async def _processor(self, recv: trio.MemoryReceiveChannel[Any]) -> None:
        try:
            async with recv, trio.open_nursery() as workers:
                async for first in recv:
                    batch = [first]
                    while len(batch) < 256:
                        try:
                            batch.append(recv.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    if self._user_send is not None:
                        for item in batch:
                            try:
                                await self._user_send.send(item)
                            except (trio.BrokenResourceError, trio.ClosedResourceError):
                                self._user_send = None
                                break
                    if self._has_process:
                        for item in batch:
                            token = object()
                            await self._process_limiter.acquire_on_behalf_of(token)
                            workers.start_soon(self._process_one, item, token)
        finally:
            if self._user_send is not None:
                self._user_send.close()
                self._user_send = None

    async def _process_one(self, item: Any, token: object) -> None:
        try:
            await self.spider.process(item)
        except Exception as exc:
            self._counters.process_errors += 1
            self._counters.failures[FailureKind.PROCESS_ERROR] += 1
            log.error("process failed: %s: %s", type(exc).__name__, exc)
            if self.settings.fail_fast:
                self._fatal = exc
                self.stop("fail_fast")
        finally:
            self._process_limiter.release_on_behalf_of(token)

    def _close_exporters(self) -> None:
        for exporter in self.exporters:
            try:
                exporter.close()
            except Exception as exc:
                log.error("cannot close %s: %s", exporter.path, exc)


def _only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


def _wall() -> float:
    import time

    return time.time()


class PathIdGuard:
    """Trap guard for ids in paths (``/s/9f8e7d6c5b4a39281706/page``: session ids, calendars
    keyed by token): at most ``limit`` distinct id values per path shape, where an id is a
    segment of 16 or more letters and digits with at least 4 digits and a letter, or a UUID.

    Ordinary paths (``/product/12345``, ``/blog/my-article-2024``) have no id segment and
    cost one regular-expression search.
    """

    _ID = re.compile(
        r"/(?:(?=[A-Za-z0-9]{16,}(?:[/?;]|$))(?=(?:[^/?;\d]*\d){4})(?=[^/?;]*[A-Za-z])"
        r"[A-Za-z0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
        r"(?=[/?;]|$)"
    )

    def __init__(self, limit: int) -> None:
        self._guard = QueryVariantGuard(limit)

    def admit(self, url: str) -> bool:
        path_end = url.find("?")
        head = url if path_end < 0 else url[:path_end]
        ids = self._ID.findall(head)
        if not ids:
            return True
        shape = self._ID.sub("/{id}", head)
        return self._guard.admit(f"{shape}?{'&'.join(f'i={v[1:]}' for v in ids)}")


class _Settlement:
    """Settles one claim exactly once: completed (with its new links) or put back to retry."""

    __slots__ = ("claim", "crawler", "settled")

    def __init__(self, crawler: Crawler, claim: Claim) -> None:
        self.crawler = crawler
        self.claim = claim
        self.settled = False

    async def complete(self, new: Sequence[NewRequest] = (), items: Sequence[Any] = ()) -> int:
        assert not self.settled, "claim settled twice"
        self.settled = True
        crawler = self.crawler
        queued = await crawler.store.complete(self.claim, new, items)
        crawler._counters.links_queued += queued
        if crawler.store.outstanding() == 0:
            crawler._work_done.set()
        return queued

    async def retry(self, request: Request, delay: float) -> None:
        assert not self.settled, "claim settled twice"
        self.settled = True
        await self.crawler.store.retry(self.claim, request, trio.current_time() + delay)


@asynccontextmanager
async def open_crawler(
    spider: Spider,
    settings: Settings | None = None,
    **kwargs: Any,
) -> AsyncIterator[Crawler]:
    """Run a crawl inside the caller's Trio program::

        async with open_crawler(MySpider(), Settings(max_pages=100)) as crawler:
            async for item in crawler.items():
                ...
        print(crawler.statistics())

    The crawl starts on entry and owns its nursery; leaving the block waits for the crawl to
    end. Cancelling the surrounding scope stops every crawler task within a second: in-flight
    pages are abandoned (they go back to the frontier of a durable store) and what is done is
    committed in a shielded scope of at most 0.5 s.
    """
    crawler = Crawler(spider, settings, **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(crawler.run)
        try:
            yield crawler
        finally:
            if crawler._user_recv is not None:
                crawler._user_recv.close()


async def start_crawler(
    nursery: trio.Nursery, spider: Spider, settings: Settings | None = None, **kwargs: Any
) -> Crawler:
    """Start a crawl in the caller's nursery (the lower-level form of :func:`open_crawler`)."""
    crawler = Crawler(spider, settings, **kwargs)
    await nursery.start(crawler.run)
    return crawler


async def crawl(spider: Spider, settings: Settings | None = None, **kwargs: Any) -> CrawlStats:
    """Run a crawl to its end and return its statistics."""
    crawler = Crawler(spider, settings, **kwargs)
    await crawler.run()
    return crawler.statistics()
