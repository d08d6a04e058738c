"""The engine: one nursery, its channels, the outstanding-work count, the stop rule, and the
one place where decisions about claims are applied.

Theory of operation
-------------------
``Crawler.run`` opens the crawl's store, its outputs and its
:class:`~trio_crawler._http.Fetcher` (the HTTP transport, owned by the crawl), builds the
stages (:class:`~.pipeline.Pipeline`) and then one nursery that owns every task:

``scheduler`` (1)
    Owner of the frontier (through the store). It borrows a token of the *crawl limiter* on
    behalf of the next request, claims a request whose host is ready, and sends it to the
    fetchers over a zero-buffer channel (a documented handoff: the fetcher returns the token).
    With nothing ready it waits for the store to change or for the next host to become
    ready: an event with a deadline, never a polling loop.
``fetcher`` (``concurrency`` tasks)
    Each receives a claim, takes it through the pipeline and applies the pipeline's decision
    (:meth:`Crawler._apply`): complete it with its new links and items, put it back for
    later, or record it as failed. It returns the limiter token in ``finally``.
``processor`` (1, plus one short task per ``process`` call under the *processing limiter*)
    Receives items and hands them to ``crawler.items()`` and ``spider.process``
    (:mod:`.processor`); the store writes them to the outputs when it commits their page.
``workers`` (with ``processes > 1``)
    Starts and waits for the worker processes that share this crawl (:mod:`.processes`).

Channels and who closes them:

* requests: scheduler -> fetchers, buffer 0. The scheduler owns and closes the send end;
  each fetcher closes its clone of the receive end.
* items: fetchers -> processor, buffer ``items_buffer``. Each fetcher closes its clone of the
  send end; the processor closes the receive end. No channel goes back to the scheduler: new
  links enter the store with a call that never blocks, so there is no cycle of bounded
  channels and no deadlock, whatever the number of seeds or links per page.

The stop rule, in one place (:meth:`Crawler._should_stop_claiming`): the store's
``outstanding()`` count is raised when a request is queued and lowered only after the page's
new links were queued and its items handed on; at zero, ``work_done`` fires, the scheduler
closes the request channel, fetchers finish, the item channel closes, the processor drains its
tasks and the nursery ends; ``drained`` fires and ``wait()`` returns. A stop request
(``max_pages``, ``max_duration``, Ctrl-C, ``--fail-fast``) makes the scheduler stop claiming:
in-flight pages finish and the same chain of closes follows.

Every claim is settled (completed or put back) exactly once, in ``finally`` if need be: an
exception in spider or engine code is recorded with the URL and cannot leave the count raised.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import trio

from .._browser import Browser, open_browser
from .._exceptions import FailureKind, SettingsError
from .._export import Exporter, open_exporter
from .._graph import PageGraph
from .._http import AddressGuard, Fetcher, Resolver, allow_seed_hosts
from .._settings import Settings
from .._spider import Request, Spider
from .._stats import Counters, CrawlStats, ErrorLog
from .._store import Claim, CrawlStore, NewRequest, open_store
from .._store.shared import SharedStore
from .._urls import UrlRules
from .admission import Admission
from .exchange import Archive, Exchange
from .gate import DISALLOWED, RobotsGate, Sitemaps, is_sitemap
from .outcome import Again, Done, Failed, Outcome
from .pipeline import Pipeline
from .politeness import Politeness
from .processes import (
    ForkedWorker,
    WorkerMain,
    fork_workers,
    parent_concurrency,
    run_workers,
    share,
)
from .processor import Processor
from .redirects import Redirects
from .render import Renderer, check_renderer
from .render_policy import browser_options, render_share
from .scraper import Scraper

log = logging.getLogger("trio_crawler.engine")

#: Seconds between two hand-overs of buffered output records to the OS, at most.
OUTPUT_FLUSH_INTERVAL = 1.0

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
    """One crawl: a spider, settings, a store, outputs. Run it with :func:`open_crawler`,
    :func:`start_crawler` or :func:`crawl`.

    ``state``: where the crawl is kept (a SQLite file's path for a crawl that survives a stop
    or a crash and resumes; ``redis://...`` with ``crawl_id`` for one shared by workers;
    default in memory), or give a ``store`` of your own. ``processes``: fetch processes
    sharing the crawl (this one and ``processes - 1`` workers); ``split``: how they share it,
    one frontier in this process (``"shared"``) or each process its own hosts (``"hosts"``,
    for broad crawls; in memory only). ``outputs``: files the items are written to
    (``.jsonl``, ``.csv``, ``.db``; ``-`` for stdout).
    """

    #: worker processes forked before the event loop (:meth:`fork_workers`)
    _forked: tuple[ForkedWorker, ...] = ()

    def __init__(
        self,
        spider: Spider,
        settings: Settings | None = None,
        *,
        start_urls: Sequence[str] | None = None,
        store: CrawlStore | None = None,
        state: str | None = None,
        crawl_id: str | None = None,
        processes: int = 1,
        split: str = "shared",
        exporters: Sequence[Exporter] = (),
        outputs: Sequence[str] = (),
        output_format: str | None = None,
        resolver: Resolver | None = None,
        transport: Any = None,
    ) -> None:
        self.spider = spider
        # with workers, each process renders its share of render_concurrency
        self.settings = s = render_share(
            effective_settings(settings or Settings(), spider), processes
        )
        self._start: list[Request | str] = (
            list(start_urls) if start_urls is not None else list(spider.start_requests())
        )
        seed_urls = [r.url if isinstance(r, Request) else r for r in self._start]
        self.rules = UrlRules(s, seed_urls)
        self._crawl_limiter = trio.CapacityLimiter(s.concurrency)
        self._workers = processes - 1
        self._split = split
        self.store = self._choose_store(store, state, crawl_id)
        self.store.watch_scope(self._scope_added)
        self.exporters = list(exporters)
        self.output_targets = [t if t == "-" else os.path.abspath(t) for t in outputs]
        self._output_format = output_format
        self.resumed = False
        self._guard = AddressGuard(allow_private=s.allow_private, allowed=s.allowed_addresses)
        allow_seed_hosts(self._guard, seed_urls)
        self._resolver = resolver or Resolver()
        self._transport = transport
        self._counters = Counters()
        self._errors = ErrorLog()
        self._budget_base = 0
        self._stop_reason: str | None = None
        self._pages = _PageBudget(s.max_pages)
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._work_done = trio.Event()
        self._drained = trio.Event()
        self._wait_scope: trio.CancelScope | None = None
        self._processor = Processor(s, spider, self._counters, on_error=self._spider_error)
        self._politeness = Politeness(s, self.store, self._resolver)
        self._admission = Admission(
            s,
            self.rules,
            self._counters,
            seen_hint=self.store.seen_hint,
            spider_headers=spider.headers,
        )
        self._pipeline: Pipeline | None = None

    def _choose_store(
        self, store: CrawlStore | None, state: str | None, crawl_id: str | None
    ) -> CrawlStore:
        """The crawl's store: given, or opened by location; shared with the worker
        processes when there are any (the parent then fetches with a share of ``-c``)."""
        if store is not None and state is not None:
            raise SettingsError("give a store or a state location, not both")
        if store is None:
            store = open_store(state or "memory:", self.settings, crawl_id=crawl_id)
        self._shared: SharedStore | None = None
        if self._workers > 0:
            store = self._shared = share(
                store,
                self.settings,
                self.spider,
                self._start,
                processes=self._workers + 1,
                on_stop=self.stop,
                stopping=self._stopping,
                split=self._split,
            )
            self._crawl_limiter.total_tokens = parent_concurrency(self.settings, self._split)
        return store

    def _scope_added(self, url: str) -> None:
        """A seed of the crawl redirected to ``url`` (here or in another process)."""
        with suppress(SettingsError):
            self.rules.add_seed(url)

    # ------------------------------------------------------------------ public
    def items(self) -> trio.MemoryReceiveChannel[Any]:
        """Items as they are produced (opt-in): a channel to ``async for`` over.

        Call it before the crawl produces its first item, e.g. right after ``open_crawler``
        returns (a resumed crawl too). Bounded (``items_buffer``): a slow reader slows the
        crawl, it does not lose items. A reader that stops early closes the channel
        (``async with crawler.items() as items:``, or leave the ``open_crawler`` block): the
        crawl goes on without it. Items arrive at least once (a page fetched again after a
        crash delivers them again).
        """
        return self._processor.items()

    def fork_workers(self, worker_main: WorkerMain) -> int:
        """Fork this crawl's worker processes now, before the event loop starts; how many.
        ``worker_main`` is what each runs: ``trio_crawler._worker.worker_main``.

        The command line does this. A new interpreter takes 0.3-0.4 s to import the crawler,
        and the hosts of its share wait that long; a fork has it all imported and joins the
        moment the crawl's store listens (see :mod:`trio_crawler._crawl.processes`). Call it
        outside ``trio.run`` with no other thread running, then run the crawl. Where that
        does not hold, or the platform has no ``fork`` and ``pidfd_open`` (Linux has), it
        forks nothing (0) and the workers start as new processes, as they do without it.
        """
        if not self._forked and self._shared is not None:
            self._forked = tuple(fork_workers(self._workers, worker_main))
        return len(self._forked)

    def stop(self, reason: str = "interrupted") -> None:
        """Stop taking new requests; in-flight pages finish. Safe to call more than once."""
        if self._stop_reason is None:
            self._stop_reason = reason
            log.info("stopping: %s", reason)
        if self._wait_scope is not None:
            self._wait_scope.cancel()
        if self._shared is not None:
            self._shared.halt()  # the worker processes stop too

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def _stopping(self) -> bool:
        return self._stop_reason is not None

    async def wait(self) -> CrawlStats:
        """Wait until every processor has drained; return the final statistics."""
        await self._drained.wait()
        return self.statistics()

    def statistics(self) -> CrawlStats:
        refused = self._budget_base + self.store.budget_refusals()
        if refused:
            self._counters.dropped["host_budget"] = refused
        now = self._ended_at or (trio.current_time() if self._started_at is not None else 0.0)
        elapsed = now - self._started_at if self._started_at is not None else 0.0
        return self._counters.snapshot(
            stop_reason=self._final_reason() if self._drained.is_set() else self._stop_reason,
            elapsed=elapsed,
            queued=self.store.queued(),
            in_flight=self.store.in_flight(),
            active_hosts=self.store.active_hosts(),
            errors=tuple(self._errors.errors),
        )

    def _final_reason(self) -> str:
        return self._stop_reason or "finished"

    def crawl_meta(self) -> dict[str, Any]:
        """What identifies this crawl: a stored crawl resumes only with the same values."""
        s = self.settings
        seeds = sorted({r.url if isinstance(r, Request) else r for r in self._start})
        return {
            "spider": f"{type(self.spider).__module__}.{type(self.spider).__qualname__}",
            "spider_args": dict(sorted(self.spider.arguments.items())),
            "seeds": seeds,
            **{name: _jsonable(getattr(s, name)) for name in Settings.IDENTITY},
        }

    # ------------------------------------------------------------------ run
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the whole crawl in a nursery of its own; return when it is over."""
        self._started_at = trio.current_time()
        archive = Archive(self.settings)
        try:
            check_renderer(self.settings, self.spider, self._start)
            async with self.store.open(self.crawl_meta(), self._counters) as resumed:
                self.resumed = resumed
                self._budget_base = self._counters.dropped.get("host_budget", 0)
                try:
                    async with (
                        Fetcher(
                            self.settings,
                            guard=self._guard,
                            resolver=self._resolver,
                            transport=self._transport,
                        ) as fetcher,
                        open_browser(browser_options(self.settings)) as browser,
                    ):
                        archive.open()
                        self._open_outputs()  # last: what fails first leaves them untouched
                        self._pipeline = self._build_pipeline(fetcher, archive, browser)
                        async with trio.open_nursery() as nursery:
                            await self._start_tasks(nursery, fetcher)
                            task_status.started()
                finally:
                    with trio.move_on_after(0.5, shield=True):
                        await self.store.end(self._final_reason())
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
            self._close_exporters()
            archive.close()
            for child in self._forked:
                child.discard()  # given no path (the crawl did not get that far): it exits
            self._drained.set()
            self._work_done.set()

    def _build_pipeline(self, fetcher: Fetcher, archive: Archive, browser: Browser) -> Pipeline:
        s, spider, counters = self.settings, self.spider, self._counters
        politeness, admission = self._politeness, self._admission
        exchange = Exchange(s, spider, counters, fetcher, archive)
        sitemaps = Sitemaps(counters, admission, self.store, politeness)
        gate = RobotsGate(s, self.rules, counters, self.store, exchange, politeness, sitemaps)
        redirects = Redirects(s, self.rules, counters, self.store, politeness)
        renderer = Renderer(
            s,
            spider,
            counters,
            browser=browser,
            exchange=exchange,
            gate=gate,
            politeness=politeness,
            rules=self.rules,
            redirects=redirects,
        )
        return Pipeline(
            s,
            spider,
            counters,
            gate=gate,
            exchange=exchange,
            sitemaps=sitemaps,
            politeness=politeness,
            redirects=redirects,
            scraper=Scraper(s, spider, counters, admission, politeness, self._errors),
            renderer=renderer,
        )

    async def _start_tasks(self, nursery: trio.Nursery, fetcher: Fetcher) -> None:
        """Start the processor, the fetchers and the scheduler; seed the frontier."""
        s = self.settings
        req_send, req_recv = trio.open_memory_channel[tuple[object, Claim]](0)
        item_send, item_recv = trio.open_memory_channel[Any](s.items_buffer)
        nursery.start_soon(self._process, item_recv, fetcher, name="trio_crawler.processor")
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
        if self._shared is not None:
            nursery.start_soon(
                run_workers, self._shared, self._workers, self._forked, name="trio_crawler.procs"
            )
        if self.exporters:
            nursery.start_soon(self._flush_outputs, name="trio_crawler.outputs")

    def _open_outputs(self) -> None:
        """Open the output files at the offsets the store committed (resume), attach them."""
        offsets = self.store.output_offsets()
        token = trio.lowlevel.current_trio_token()

        def stdout_closed() -> None:  # the reader of stdout left (| head): from any thread
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(self.stop, "output_closed")

        opened: list[Exporter] = []
        try:
            for target in self.output_targets:
                opened.append(
                    open_exporter(
                        target,
                        format=self._output_format,
                        resume_offset=offsets.get(target),
                        on_closed=stdout_closed,
                    )
                )
        except BaseException:
            for exporter in opened:
                exporter.close()
            raise
        self.exporters.extend(opened)
        self.store.attach_outputs(self.exporters)

    async def _seed(self) -> None:
        new = self._admission.seeds(self._start)
        self._counters.links_queued += await self.store.add(await self._politeness.keyed(new))
        if not new:
            log.warning("no start URL was admitted: nothing to crawl")

    async def _flush_outputs(self) -> None:
        """Outputs reach the OS at least once a second, however slow the crawl (``tail -f``);
        between, a fast crawl still writes them in large batches."""
        while not self._work_done.is_set():
            with trio.move_on_after(OUTPUT_FLUSH_INTERVAL):
                await self._work_done.wait()
            await self.store.flush()

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
            limiter = self._crawl_limiter
            while not self._should_stop_claiming():
                token = object()
                # a free slot and a fetcher waiting are taken without yielding (two task
                # switches a request fewer); the loop still waits when the slots are taken or
                # nothing is ready
                try:
                    limiter.acquire_on_behalf_of_nowait(token)
                except trio.WouldBlock:
                    await limiter.acquire_on_behalf_of(token)
                try:
                    claim = await self._next_claim()
                    if claim is None:
                        limiter.release_on_behalf_of(token)
                        break
                    try:
                        send.send_nowait((token, claim))
                    except trio.WouldBlock:
                        await send.send((token, claim))
                except BaseException:
                    if token in limiter.statistics().borrowers:
                        limiter.release_on_behalf_of(token)
                    raise
        self._work_done.set()

    async def _next_claim(self) -> Claim | None:
        store = self.store
        while not self._should_stop_claiming():
            if self._pages.full():
                # max_pages: the pages in flight may yet be the last ones (or go back)
                with trio.CancelScope() as self._wait_scope:
                    await self._pages.changed()
                self._wait_scope = None
                continue
            claims = await store.claim(trio.current_time(), 1)
            if claims:
                self._pages.claimed()
                return claims[0]
            with trio.CancelScope() as self._wait_scope:
                await store.wait_changed(store.next_ready_time())
            self._wait_scope = None
        return None

    async def _process(self, items: trio.MemoryReceiveChannel[Any], fetcher: Fetcher) -> None:
        await self._processor.run(items)
        # every fetcher task is done: close the connections now, while worker processes
        # (which this nursery waits for) finish, not after them (20 ms with 1,000 hosts)
        await fetcher.aclose()

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
        """Take one claim through the pipeline and apply the decision: exactly one of
        ``complete()`` or ``retry()`` reaches the store."""
        assert self._pipeline is not None
        settle = _Settlement(self, claim)
        final = True  # the page is done for good (not back in the frontier, not a hop)
        try:
            outcome = await self._pipeline.run(claim)
            final = isinstance(outcome, Failed) or (isinstance(outcome, Done) and not outcome.hop)
            await self._apply(settle, outcome, items)
        except trio.Cancelled:
            final = False
            settle.settled = True  # abandoned: a durable store hands it out again on resume
            raise
        except Exception as exc:  # an engine or spider bug must not leave the count raised
            log.exception("internal error on %s", claim.request.url)
            self._counters.failures[FailureKind.OTHER] += 1
            self._counters.pages_failed += 1
            self._spider_error(exc, claim.request.url, "engine")
        finally:
            if self._pages.settled(final=final):
                self.stop("max_pages")
            if not settle.settled:
                with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                    await settle.complete()

    async def _apply(
        self, settle: _Settlement, outcome: Outcome, items: trio.MemorySendChannel[Any]
    ) -> None:
        """The one place a decision about a claim takes effect."""
        if isinstance(outcome, Again):
            await settle.retry(outcome.request, outcome.delay)
        elif isinstance(outcome, Failed):
            produced = await self._failed(settle.claim.request, outcome)
            await self._processor.hand_on(produced, items)
            await settle.complete((), produced)
        else:
            produced = list(outcome.items)
            if outcome.error is not None:
                produced += await self._scrape_failed(settle.claim, outcome.error)
            if outcome.refused:
                produced += await self._refused(outcome.refused)
            await self._processor.hand_on(produced, items)
            queued = await settle.complete(outcome.new, produced, outcome.graph)
            if outcome.hop and queued == 0:
                self._counters.dropped["redirect_to_seen"] += 1

    async def _refused(self, refused: Sequence[NewRequest]) -> list[Any]:
        """A page's links that robots.txt disallows (``Done.refused``): each one new to the
        seen set recorded as a refused claim is; the items ``Spider.failed`` yields."""
        fresh = await self.store.mark_seen([item.fingerprint for item in refused])
        produced: list[Any] = []
        for item, is_new in zip(refused, fresh, strict=True):
            if is_new:
                produced += await self._failed(item.request, DISALLOWED)
        return produced

    async def _failed(self, request: Request, failed: Failed) -> list[Any]:
        """Record a failure; the items ``Spider.failed`` yields for it."""
        c = self._counters
        if is_sitemap(request):
            c.dropped["sitemap_failed"] += 1
            log.info("sitemap %s failed: %s", request.url, failed.message)
            return []
        c.pages_failed += 1
        c.failures[str(failed.kind)] += 1
        level = logging.INFO if failed.kind in _QUIET_KINDS else logging.WARNING
        log.log(level, "%s failed: %s", request.original_url, failed.message)
        assert self._pipeline is not None
        return list(await self._pipeline.failed(request, failed))

    async def _scrape_failed(self, claim: Claim, exc: BaseException) -> list[Any]:
        """``scrape`` raised (the page was counted as failed): ``fail_fast`` stops the crawl;
        ``Spider.failed`` sees the failure with the exception; the items it yields."""
        if self.settings.fail_fast:
            self.stop("fail_fast")
        assert self._pipeline is not None
        failed = Failed(FailureKind.SCRAPE_ERROR, f"{type(exc).__name__}: {exc}")
        return list(await self._pipeline.failed(claim.request, failed, exc))

    def _spider_error(self, exc: BaseException, url: str, where: str) -> None:
        """Code raised outside a page's pipeline (``process``, or a bug of ours): recorded;
        with ``fail_fast`` the crawl stops."""
        self._errors.record(url, where, exc)
        if self.settings.fail_fast:
            self.stop("fail_fast")

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


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class _PageBudget:
    """``max_pages``: pages done for good plus claims in flight never exceed the limit, so a
    claim that goes back to the frontier (a retry, robots.txt's turn) is taken again rather
    than replaced, and the crawl stops once the limit is done (a redirect hop is part of its
    page)."""

    __slots__ = ("_changed", "done", "in_flight", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.done = 0
        self.in_flight = 0
        self._changed = trio.Event()

    def full(self) -> bool:
        return self.limit is not None and self.done + self.in_flight >= self.limit

    def claimed(self) -> None:
        self.in_flight += 1

    def settled(self, *, final: bool) -> bool:
        """A claim was settled; True when that spent the budget."""
        self.in_flight -= 1
        if final:
            self.done += 1
        self._changed.set()
        self._changed = trio.Event()
        return self.limit is not None and self.done >= self.limit

    async def changed(self) -> None:
        await self._changed.wait()


class _Settlement:
    """Settles one claim exactly once: completed (with its new links) or put back to retry."""

    __slots__ = ("claim", "crawler", "settled")

    def __init__(self, crawler: Crawler, claim: Claim) -> None:
        self.crawler = crawler
        self.claim = claim
        self.settled = False

    async def complete(
        self, new: Sequence[Any] = (), items: Sequence[Any] = (), graph: PageGraph | None = None
    ) -> int:
        assert not self.settled, "claim settled twice"
        self.settled = True
        crawler = self.crawler
        queued = await crawler.store.complete(self.claim, new, items, graph=graph)
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
    committed in a shielded scope of at most 0.5 s. Keyword arguments are :class:`Crawler`'s
    (``state="crawl.db"`` for a durable crawl).
    """
    crawler = Crawler(spider, settings, **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(crawler.run)
        try:
            yield crawler
        finally:
            crawler._processor.close_reader()


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
