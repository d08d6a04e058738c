"""One claim through its stages, top to bottom; each stage returns a decision or lets it on.

::

    gate (robots.txt)  ->  before hooks  ->  fetch  ->  [sitemap: read it]
      ->  politeness (adaptive throttle, the spider's rate limit)
      ->  [3xx: redirects]  ->  after hooks  ->  retry policy (429, 5xx...)
      ->  [not 2xx: failed]  ->  [render: the page in a browser]  ->  scraper
      ->  gate again (its links that robots.txt, known by now, disallows: refused)

The result is an :data:`~.outcome.Outcome` (done, again later, failed) that the engine
applies. Nothing here settles a claim or touches the engine.
"""

from __future__ import annotations

import dataclasses
import time

import trio

from .._exceptions import FailureKind
from .._http import FetchResult
from .._retry import RetryPolicy
from .._settings import Settings
from .._spider import Drop, Page, Request, Spider
from .._stats import Counters
from .._store import Claim
from .exchange import Exchange
from .gate import RobotsGate, Sitemaps, is_sitemap
from .outcome import Again, Done, Failed, Outcome
from .politeness import Politeness
from .redirects import Redirects
from .render import Renderer
from .scraper import Scraper

#: The redirects that are followed, as browsers follow them (a 300 or a 304 is an answer).
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Pipeline:
    """The stages of one crawl, in order; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        spider: Spider,
        counters: Counters,
        *,
        gate: RobotsGate,
        exchange: Exchange,
        sitemaps: Sitemaps,
        politeness: Politeness,
        redirects: Redirects,
        scraper: Scraper,
        renderer: Renderer,
    ) -> None:
        self._spider = spider
        self._counters = counters
        self._retry = RetryPolicy.from_settings(settings)
        self._gate = gate
        self._exchange = exchange
        self._sitemaps = sitemaps
        self._politeness = politeness
        self._redirects = redirects
        self._scraper = scraper
        self._renderer = renderer

    async def run(self, claim: Claim) -> Outcome:
        """Take ``claim`` through the stages; what to do with it."""
        decision = await self._gate.check(claim)
        if decision is not None:
            return decision
        request = await self._exchange.before(claim.request)
        if isinstance(request, Drop):
            await self._politeness.unspent(claim.host)  # nothing was sent: no turn spent
            return Done()
        started = trio.current_time()
        result = await self._exchange.fetch(request, self._politeness.pacer(claim.host))
        if not isinstance(result, FetchResult):
            if isinstance(result, Failed):  # the record's fetch_time: how long it took to fail
                result = dataclasses.replace(result, elapsed=trio.current_time() - started)
            return result
        redirect = result.status in _REDIRECTS and "location" in result.headers
        if is_sitemap(request) and not redirect:
            return await self._sitemaps.read(result)
        page = self._scraper.page(request, result)
        decision = await self._paced(claim, page)
        if decision is not None:
            return decision
        if redirect:
            return await self._redirects.follow(request, result)
        decision = await self._exchange.after(page)
        if decision is None:
            decision = await self._by_status(claim, request, result)
        if decision is not None:
            return decision
        if self._renderer.wanted(page):
            rendered = await self._renderer.render(claim, page, result)
            if not isinstance(rendered, Page):
                return rendered
            page = rendered
        return self._gate.sort_out(await self._scraper.scrape(page))

    async def failed(
        self, request: Request, failed: Failed, exception: BaseException | None = None
    ) -> list[object]:
        """The items ``Spider.failed`` yields for a request that ended as ``failed``."""
        return await self._scraper.failed(request, failed, exception)

    async def _paced(self, claim: Claim, page: Page) -> Outcome | None:
        """The host's pace after an answer: the adaptive throttle, the spider's rate limit."""
        await self._politeness.observe(claim.host, page.elapsed, page.status)
        pause = self._spider.rate_limit_delay(page)
        return await self._politeness.rate_limited(claim, page, pause)

    async def _by_status(
        self, claim: Claim, request: Request, result: FetchResult
    ) -> Outcome | None:
        """The retry policy on the status (429, 5xx...), then: anything but a 2xx fails."""
        status = result.status
        c = self._counters
        verdict = self._retry.for_status(
            status, result.headers, attempt=request.retries, now_wall=time.time()
        )
        if verdict is not None:
            if verdict.host_delay:
                await self._politeness.hold(claim.host, verdict.host_delay)
            if verdict.retry:
                c.retries += 1
                return Again(_retried(request), verdict.delay)
            c.status_classes[f"{status // 100}xx"] += 1
            kind = verdict.give_up or FailureKind.HTTP_STATUS
            return Failed(kind, verdict.reason or f"HTTP {status}", status, result.elapsed)
        c.status_classes[f"{status // 100}xx"] += 1
        if not 200 <= status < 300:
            return Failed(FailureKind.HTTP_STATUS, f"HTTP {status}", status, result.elapsed)
        return None


def _retried(request: Request) -> Request:
    return dataclasses.replace(request, retries=request.retries + 1)
