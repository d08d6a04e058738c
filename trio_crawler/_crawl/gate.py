"""The gate of a host: its robots.txt, and its sitemaps (``--sitemaps``).

robots.txt is fetched once per origin: concurrent requests to a new origin wait for the one
fetch; a policy the store kept (an earlier run, another worker) is reused while fresh. Its
redirects are followed here (at most :data:`ROBOTS_REDIRECTS`, http(s) only). 4xx allows
all; 429, 5xx and an unreachable host disallow all for ``robots_error_ttl``, and requests
to that host fail with the reason the host was unreachable. A Crawl-delay goes to
:mod:`.politeness`. A request whose turn was spent on robots.txt (it fetched it, or waited
for it) goes back to the frontier, so the host keeps its spacing.

Sitemaps are queued as requests of their own (marked in ``Request.meta``, see
:func:`is_sitemap`) when a host's robots.txt is first fetched, so they obey politeness like
pages; a fetched sitemap yields its page URLs and child sitemaps, within a crawl-wide budget.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

import trio

from .._exceptions import FailureKind, FetchError
from .._http import FetchResult
from .._robots import ROBOTS_MAX_BYTES, RobotsCache, RobotsPolicy, robots_url, user_agent_token
from .._settings import Settings
from .._sitemaps import SitemapBudget, parse_sitemap, sitemap_url
from .._spider import Request
from .._stats import Counters
from .._store import Claim, CrawlStore, NewRequest
from .._urls import UrlRules, resolve
from .admission import Admission
from .exchange import Exchange
from .outcome import Again, Done, Failed, Outcome
from .politeness import Politeness

log = logging.getLogger("trio_crawler.engine")

#: Redirects of a robots.txt request followed before the host counts as unreachable.
ROBOTS_REDIRECTS = 5

#: Parsed robots.txt policies kept (a host's policy that left is parsed again from what the
#: store kept of its answer, not fetched again).
ROBOTS_CACHE_SIZE = 10_000

#: What a request robots.txt disallows ends as: refused at the gate (:meth:`RobotsGate.check`),
#: or when the page that found it is done (:meth:`RobotsGate.sort_out`).
DISALLOWED = Failed(FailureKind.ROBOTS, "disallowed by robots.txt")

#: ``Request.meta`` key marking a sitemap request (read by :class:`Sitemaps`, never scraped).
SITEMAP = "trio_crawler.sitemap"


def is_sitemap(request: Request) -> bool:
    return bool(request.meta) and bool(request.meta.get(SITEMAP))


class Sitemaps:
    """``--sitemaps``: each origin's sitemaps, queued and read within one crawl-wide budget."""

    def __init__(
        self, counters: Counters, admission: Admission, store: CrawlStore, politeness: Politeness
    ) -> None:
        self._counters = counters
        self._admission = admission
        self._store = store
        self._politeness = politeness
        self._budget = SitemapBudget()

    async def queue(self, host: str, policy: RobotsPolicy) -> None:
        """Queue the origin's sitemaps: robots.txt's ``Sitemap:`` lines and ``/sitemap.xml``."""
        found = [
            Request(url=url, meta={SITEMAP: True}, priority=1)
            for url in (*policy.sitemaps, sitemap_url(host))
            if self._budget.admit_sitemap(url)
        ]
        new = self._admission.admit_all(found)
        if new:
            queued = await self._store.add(await self._politeness.keyed(new))
            self._counters.links_queued += queued

    async def read(self, result: FetchResult) -> Outcome:
        """A fetched sitemap: its page URLs and its child sitemaps (within budget)."""
        if not 200 <= result.status < 300:
            log.info("sitemap %s: HTTP %s", result.url, result.status)
            return Done()
        found = parse_sitemap(result.body, base_url=result.url)
        self._counters.sitemap_urls += len(found.urls)
        pages = [
            Request(url=url, depth=1, referrer=result.url)
            for url in self._budget.take_urls(found.urls)
        ]
        children = [
            Request(url=url, meta={SITEMAP: True}, priority=1, referrer=result.url)
            for url in found.sitemaps
            if self._budget.admit_sitemap(url)
        ]
        new = self._admission.admit_all([*pages, *children])
        return Done(await self._politeness.keyed(new))


class RobotsGate:
    """robots.txt for every origin of one crawl; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        rules: UrlRules,
        counters: Counters,
        store: CrawlStore,
        exchange: Exchange,
        politeness: Politeness,
        sitemaps: Sitemaps,
    ) -> None:
        self._settings = settings
        self._rules = rules
        self._counters = counters
        self._store = store
        self._exchange = exchange
        self._politeness = politeness
        self._sitemaps = sitemaps
        self._ua = user_agent_token(settings.user_agent)
        self._cache = RobotsCache(ROBOTS_CACHE_SIZE)
        self._pending: dict[str, trio.Event] = {}
        self._errors: dict[str, FetchError] = {}

    async def check(self, claim: Claim) -> Outcome | None:
        """None when the claim may be fetched now; else what to do with it."""
        if not self._settings.obey_robots:
            return None
        request = claim.request
        site = self._rules.origin(request.url)
        policy, turn_spent = await self._policy(site, claim.host)
        if turn_spent and self._politeness.delay_of(claim.host) > 0:
            return Again(request, 0.0)  # robots.txt took this turn: back behind the delay
        if policy.allowed(request.url, self._ua):
            return None
        if policy.kind == "rules":
            # the site's robots.txt disallows it: nothing is sent, so it costs the host no
            # turn (a host whose robots.txt failed keeps its pace: its verdict expires)
            await self._politeness.unspent(claim.host)
            return DISALLOWED
        error = self._errors.get(site)
        if error is not None and policy.kind == "disallow_all":
            # the host itself is unreachable: say how, not just "robots"
            return Failed(error.kind, f"robots.txt: {error}")
        return DISALLOWED

    def sort_out(self, done: Done) -> Done:
        """A page's links (``done.new``), less those the site's own robots.txt rules, in the
        cache and fresh, disallow: they move to ``done.refused``, and the engine records them
        when the page is done, as :meth:`check` would. They no longer wait in the queue for a
        turn of their host only to be refused then (with a host's last pages, that wait was
        the end of the crawl: the host's delay). Left to :meth:`check`: a host not looked at
        yet, or whose robots.txt failed or expired; ``dont_filter`` requests; and everything
        when the store's seen set is not in this process' memory (``seen_in_memory``: a
        crash between the mark and the page's commit would lose the records)."""
        new = done.new
        if not new or not self._settings.obey_robots or not self._store.seen_in_memory:
            return done
        now = trio.current_time()
        cache, ua, origin = self._cache, self._ua, self._rules.origin
        by_ip = self._settings.politeness_key == "ip"
        keep: list[NewRequest] = []
        refused: list[NewRequest] = []
        for item in new:
            request = item.request
            policy = None
            if not request.dont_filter:
                policy = cache.peek(origin(request.url) if by_ip else item.host, now)
            if policy is None or policy.kind != "rules" or policy.allowed(request.url, ua):
                keep.append(item)
            else:
                refused.append(item)
        return dataclasses.replace(done, new=keep, refused=refused) if refused else done

    async def _policy(self, site: str, key: str) -> tuple[RobotsPolicy, bool]:
        """The robots policy of origin ``site``, and whether this request's turn was spent on
        it (it fetched robots.txt, or waited for another task's fetch). A Crawl-delay raises
        the delay of politeness key ``key``."""
        waited = False
        while True:
            policy = self._cache.get(site, trio.current_time())
            if policy is not None:
                return policy, waited
            pending = self._pending.get(site)
            if pending is None:
                break
            waited = True
            await pending.wait()
        event = self._pending[site] = trio.Event()
        try:
            return await self._load(site, key)
        finally:
            del self._pending[site]
            event.set()

    async def _load(self, site: str, key: str) -> tuple[RobotsPolicy, bool]:
        self._errors.pop(site, None)
        started = trio.current_time()
        policy = await self._stored(site)
        fetched = policy is None
        if policy is None:
            policy = await self._fetch(site, key)
        self._cache.put(site, policy)
        delay = policy.crawl_delay(self._ua)
        await self._politeness.crawl_delay(key, delay, fetched_at=started if fetched else None)
        if fetched and self._settings.sitemaps:
            await self._sitemaps.queue(site, policy)
        return policy, fetched

    async def _stored(self, site: str) -> RobotsPolicy | None:
        stored = await self._store.load_robots(site)
        if stored is None:
            return None
        status, body, fetched_at = stored
        now = trio.current_time()
        age = max(0.0, time.time() - fetched_at)
        policy = RobotsPolicy.from_response(
            status, body, now=now - age, error_ttl=self._settings.robots_error_ttl
        )
        return None if policy.is_expired(now) else policy

    async def _fetch(self, site: str, key: str) -> RobotsPolicy:
        ttl = self._settings.robots_error_ttl
        url = robots_url(site)
        for _ in range(ROBOTS_REDIRECTS + 1):
            self._counters.robots_fetches += 1
            try:
                pace = self._politeness.pacer(key)
                result = await self._exchange.fetch_plain(url, max_body=ROBOTS_MAX_BYTES, pace=pace)
            except FetchError as exc:
                log.info("robots.txt of %s unreachable (%s): disallowing for now", site, exc)
                self._errors[site] = exc
                return RobotsPolicy.unreachable(now=trio.current_time(), error_ttl=ttl)
            location = _location(result)
            if location is not None:
                try:
                    url = resolve(location, url)
                except ValueError:
                    break
                if not url.startswith(("http://", "https://")):
                    break
                continue
            policy = RobotsPolicy.from_response(
                result.status, result.body, now=trio.current_time(), error_ttl=ttl
            )
            if policy.kind != "disallow_all" or 200 <= result.status < 300:
                # an error answer (429, 5xx) holds for robots_error_ttl only: not kept, so
                # the next look after it asks the host again
                await self._store.save_robots(site, result.status, result.body, time.time())
            return policy
        return RobotsPolicy.unreachable(now=trio.current_time(), error_ttl=ttl)


def _location(result: FetchResult) -> str | None:
    """The redirect target of a 3xx answer, if it has one."""
    headers: Mapping[str, Any] = result.headers
    location = headers.get("location")
    if 300 <= result.status < 400 and location:
        return str(location).strip()
    return None
