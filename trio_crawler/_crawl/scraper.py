"""The scraper: the spider's code on a page (``scrape``) or on a failure (``failed``).

A 2xx answer becomes a :class:`~trio_crawler.Page`; if the spider accepts its kind (HTML,
JSON or any), ``scrape`` yields items, :class:`~trio_crawler.Request` objects and
:class:`~trio_crawler.Follow` batches. Requests are admitted (:mod:`.admission`) and become
the page's children; items go on to the processor and the store. An exception in spider code
is recorded with the URL and never leaves a claim unsettled.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from .._exceptions import FailureKind
from .._extract import robots_directives
from .._graph import PageGraph, directives_text
from .._http import FetchResult
from .._robots import user_agent_token
from .._settings import Settings
from .._spider import Failure, Follow, Page, Request, Spider, iterate_result
from .._stats import Counters, ErrorLog
from .admission import Admission
from .outcome import Done, Failed
from .politeness import Politeness

log = logging.getLogger("trio_crawler.engine")

#: Body digests kept for ``dedupe_content`` before the set is emptied.
_MAX_CONTENT_HASHES = 1_000_000


class Scraper:
    """Runs ``scrape`` and ``failed`` for one crawl; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        spider: Spider,
        counters: Counters,
        admission: Admission,
        politeness: Politeness,
        errors: ErrorLog,
    ) -> None:
        self._errors = errors
        self._settings = settings
        self._spider = spider
        self._counters = counters
        self._admission = admission
        self._politeness = politeness
        self._ua = user_agent_token(settings.user_agent)
        self._content_hashes: set[int] = set()
        self._has_failed = type(spider).failed is not Spider.failed

    def page(self, request: Request, result: FetchResult) -> Page:
        s = self._settings
        header_robots: frozenset[str] = frozenset()
        tags = result.headers.get_list("x-robots-tag")
        if tags and s.obey_meta_robots:
            header_robots = robots_directives(tags, self._ua)
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
            link_text=s.link_graph,
        )

    async def scrape(self, page: Page) -> Done:
        """A good (2xx) page, scraped if the spider accepts its kind. It counts as a page,
        or as failed (``scrape_error``) when ``scrape`` raised: its items and links found
        before the exception are kept, and the exception goes with the outcome."""
        c = self._counters
        c.bytes += len(page.body)
        if page.truncated:
            c.truncated += 1
        if not self._accepts(page):
            c.pages_ok += 1
            return Done()
        duplicate = self._settings.dedupe_content and self._seen_content(page)
        found: list[Request] = []
        follows: list[Follow] = []
        produced: list[Any] = []
        error: BaseException | None = None
        try:
            async for value in iterate_result(self._spider.scrape(page)):
                if isinstance(value, Request):
                    found.append(value)
                elif isinstance(value, Follow):
                    follows.append(value)
                else:
                    produced.append(value)
        except Exception as exc:
            error = exc
            c.spider_errors += 1
            c.failures[FailureKind.SCRAPE_ERROR] += 1
            c.pages_failed += 1
            self._errors.record(page.url, "scrape", exc)
            log.error("scrape failed on %s: %s: %s", page.url, type(exc).__name__, exc)
        else:
            c.pages_ok += 1
        # the link graph's facts read the parse tree: before it is released
        s = self._settings
        graph = _PageFacts(page, s.obey_meta_robots, self._admission) if s.link_graph else None
        page._release()  # the parse tree need not wait for the store with this task
        self._count_extraction(page)
        if duplicate and (found or follows):
            c.dropped["duplicate_content"] += len(found) + sum(len(f.urls) for f in follows)
            found, follows = [], []
        refused = graph.out_of_scope if graph is not None else None
        children = self._admission.children(page, found, refused)
        for follow in follows:
            children += self._admission.follow_all(page, follow, refused)
        new = await self._politeness.keyed(children)
        return Done(new, produced, error=error, graph=None if graph is None else graph.done())

    async def failed(
        self, request: Request, failed: Failed, exception: BaseException | None = None
    ) -> list[Any]:
        """``Spider.failed`` for a request that ended without a page (or whose ``scrape``
        raised ``exception``): the items it yields."""
        if not self._has_failed:
            return []
        failure = Failure(
            request=request,
            kind=failed.kind,
            message=failed.message,
            status=failed.status,
            url=request.url,
            elapsed=failed.elapsed,
            exception=exception,
        )
        produced: list[Any] = []
        try:
            async for value in iterate_result(self._spider.failed(failure)):
                if not isinstance(value, Request):
                    produced.append(value)
        except Exception as exc:
            self._counters.spider_errors += 1
            self._errors.record(request.url, "failed", exc)
            log.error("failed() raised on %s: %s: %s", request.url, type(exc).__name__, exc)
        return produced

    def _count_extraction(self, page: Page) -> None:
        extracted = page.extracted_if_done()
        if extracted is None:
            return
        dropped = self._counters.dropped
        if extracted.skipped_schemes:
            dropped["bad_scheme"] += extracted.skipped_schemes
        if extracted.skipped_invalid:
            dropped["invalid_href"] += extracted.skipped_invalid
        if extracted.links_truncated:
            dropped["links_over_page_cap"] += 1

    def _accepts(self, page: Page) -> bool:
        accept = self._spider.accept
        if accept == "any":
            return True
        if accept == "json":
            return page.is_json or page.body[:1].strip() in (b"{", b"[")
        return page.is_html

    def _seen_content(self, page: Page) -> bool:
        """Content dedupe: True when an identical body was seen before (links not followed)."""
        digest = int.from_bytes(hashlib.blake2b(page.body, digest_size=8).digest(), "big")
        if digest in self._content_hashes:
            return True
        if len(self._content_hashes) >= _MAX_CONTENT_HASHES:
            self._content_hashes.clear()
        self._content_hashes.add(digest)
        return False


class _PageFacts:
    """What a scraped page adds to the link graph (``Settings.link_graph``): its links to URLs
    the crawl's rules let in (only those can have a page, and be broken) with their anchor
    text, and its noindex, read now; the out-of-scope links admission refuses on it, gathered
    in :attr:`out_of_scope` (URL -> times met)."""

    __slots__ = ("links", "noindex", "out_of_scope", "source")

    def __init__(self, page: Page, obey_meta_robots: bool, admission: Admission) -> None:
        self.source = page.url
        self.links: tuple[tuple[str, str], ...] = ()
        if page.is_html:
            follows = admission.may_follow
            links = page.extracted().links
            self.links = tuple([(link.url, link.text) for link in links if follows(link.url)])
        robots = page.robots
        kept_out = obey_meta_robots and "noindex" in robots
        self.noindex = directives_text(robots) if kept_out else None
        self.out_of_scope: dict[str, int] = {}

    def done(self) -> PageGraph:
        return PageGraph(self.source, self.links, tuple(self.out_of_scope.items()), self.noindex)
