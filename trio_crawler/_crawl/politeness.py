"""Politeness: the one owner of each host's pace. Every other module asks it.

A host here is a *politeness key*: the request's origin (``scheme://host:port``), or with
``politeness_key="ip"`` the address it resolves to (shared hosting puts many names on one
machine). For each key:

* its **delay** between request starts: ``per_host_delay``, raised by a robots.txt
  Crawl-delay (capped at ``max_crawl_delay``), moved by the adaptive throttle
  (``adaptive_throttle``: the delay follows the host's latency and backs off on 429/503);
* its **pauses**: a robots.txt fetch holds the host for its Crawl-delay; a 429/503 or a
  ``Retry-After`` (the retry policy's ``host_delay``) and a spider's ``rate_limit_delay``
  push its next start back. A page the spider's rate limit sends back waits the whole time
  asked (``Request.rate_limited`` counts the waits), at most ``max_rate_limit_waits`` times
  and never longer than ``max_retry_after``; then it fails as ``rate_limited`` or
  ``retry_after_too_long``;
* its **concurrency**: ``per_host_concurrency``.

The store keeps the state (so a host's pace holds across the processes and workers of one
crawl, and across a resume) and hands out requests by it (its frontier: ``claim``); this
module decides what the state is, through the store's ``set_host_delay`` and ``pause_host``.

**At send time.** The store spaces the *claims* of a host's requests; a request then goes
through the gate and the fetcher, and reaches the host when its connection is ready: a new
connection (DNS, TCP, TLS) sends later than a reused one, so two requests claimed a delay
apart could reach the host closer than that. :meth:`Politeness.pacer` gives each request a
``pace`` the HTTP layer awaits right before it writes the request: it waits until the host's
delay has passed since the last request this process sent it, counted from when that
request's write returned (a TLS write may yield to other tasks before its bytes leave: a
busy crawl held them up to 40 ms, and the server saw two requests 210 ms apart). Across the
processes and workers of one crawl, requests stay spaced by their claims.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import trio

from .._exceptions import FailureKind, FetchError
from .._http import Pace, Resolver
from .._retry import AdaptiveDelay
from .._settings import Settings
from .._spider import Page
from .._store import Claim, CrawlStore, NewRequest
from .outcome import Again, Failed, Outcome

log = logging.getLogger("trio_crawler.politeness")

#: Politeness keys remembered per crawl (``politeness_key="ip"``) before the map is emptied.
_MAX_IP_KEYS = 100_000
#: Hosts whose last send time is kept before old ones are forgotten (at most once a second).
_MAX_SENT = 10_000


class _Pace:
    """One request's pace (see :meth:`Politeness.pacer`). The wait records its end as the
    host's last send at once, so that a second request to the host waiting meanwhile is
    spaced from it; ``sent()`` moves that to when the write returned."""

    __slots__ = ("_key", "_paced", "_politeness")

    def __init__(self, politeness: Politeness, key: str) -> None:
        self._politeness = politeness
        self._key = key
        self._paced = False

    async def __call__(self) -> None:
        if self._paced:
            return  # the same request sent again (a stale keep-alive connection)
        self._paced = True
        await self.ready()
        self._politeness._mark_sent(self._key, trio.current_time())

    async def ready(self) -> None:
        """Return once the host's delay has passed since its last send (the turn not taken)."""
        politeness, key = self._politeness, self._key
        # read _last_sent after every wait: a prune meanwhile replaces the map, and a request
        # of the host sent meanwhile moves its time
        while True:
            ready = politeness._last_sent.get(key, -math.inf) + politeness._current_delay(key)
            if trio.current_time() >= ready:
                return
            await trio.sleep_until(ready)

    def sent(self) -> None:
        self._politeness._mark_sent(self._key, trio.current_time())


class Politeness:
    """The pace of every host of one crawl; see the module docstring."""

    def __init__(self, settings: Settings, store: CrawlStore, resolver: Resolver) -> None:
        self._settings = settings
        self._store = store
        self._resolver = resolver
        self._base_delay: dict[str, float] = {}
        self._throttles: dict[str, AdaptiveDelay] = {}
        self._ip_keys: dict[str, str] = {}
        self._last_sent: dict[str, float] = {}
        self._next_prune = -math.inf

    def delay_of(self, key: str) -> float:
        """The host's delay between request starts (the setting, or its Crawl-delay)."""
        return self._base_delay.get(key, self._settings.per_host_delay)

    def _current_delay(self, key: str) -> float:
        throttle = self._throttles.get(key)
        return throttle.delay if throttle is not None else self.delay_of(key)

    def pacer(self, key: str) -> Pace:
        """The :class:`~trio_crawler._http.Pace` of one request to ``key``: awaited right
        before the request is written, it returns when the host's delay has passed since this
        process last sent it one; ``sent()`` then records when the write returned."""
        return _Pace(self, key)

    def _mark_sent(self, key: str, now: float) -> None:
        last = self._last_sent
        if now > last.get(key, -math.inf):
            last[key] = now
        if len(last) > _MAX_SENT and now >= self._next_prune:
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Forget hosts whose last request is older than any delay (the map stays small)."""
        horizon = now - max(self._settings.max_crawl_delay, self._settings.per_host_delay)
        self._last_sent = {k: t for k, t in self._last_sent.items() if t >= horizon}
        self._next_prune = now + 1.0

    async def crawl_delay(self, key: str, delay: float | None, *, fetched_at: float | None) -> None:
        """A robots.txt ``Crawl-delay`` for ``key`` (capped). ``fetched_at``: the robots.txt
        request just went out at this time, so the host is held for the delay after it."""
        if delay is None:
            return
        capped = min(delay, self._settings.max_crawl_delay)
        if capped <= self._settings.per_host_delay:
            return
        self._base_delay[key] = capped
        await self._store.set_host_delay(key, capped)
        if fetched_at is not None:
            await self._store.pause_host(key, fetched_at + capped)

    async def observe(self, key: str, latency: float, status: int | None) -> None:
        """The adaptive throttle (when on): the delay follows the host's latency and backs
        off on 429/503."""
        s = self._settings
        if not s.adaptive_throttle:
            return
        throttle = self._throttles.get(key)
        if throttle is None:
            base = self.delay_of(key)
            throttle = self._throttles[key] = AdaptiveDelay(
                start=max(base, 0.0),
                minimum=base,
                maximum=max(base, s.max_crawl_delay),
                target_concurrency=float(s.per_host_concurrency),
            )
        before = throttle.delay
        after = throttle.observe(latency, status)
        if after != before:
            await self._store.set_host_delay(key, after)

    async def unspent(self, key: str) -> None:
        """A claim of ``key`` sent nothing: it costs the host no turn (its pace, kept where
        requests are sent, is untouched)."""
        await self._store.give_back_turn(key)

    async def hold(self, key: str, seconds: float) -> None:
        """No request to ``key`` starts for ``seconds`` (429/503, ``Retry-After``)."""
        await self._store.pause_host(key, trio.current_time() + seconds)

    async def rate_limited(self, claim: Claim, page: Page, pause: float | None) -> Outcome | None:
        """The spider's ``rate_limit_delay`` said to wait ``pause`` seconds: the host waits
        (at most ``max_retry_after``). A page that is not a 2xx is asked for again after the
        whole wait, at most ``max_rate_limit_waits`` times; a wait longer than
        ``max_retry_after`` is not waited (asking again early can get a client banned)."""
        if pause is None or pause <= 0:
            return None
        s = self._settings
        await self._store.pause_host(
            claim.host, trio.current_time() + min(pause, s.max_retry_after)
        )
        if 200 <= page.status < 300:
            return None
        request, status = claim.request, page.status
        if pause > s.max_retry_after:
            message = f"rate limited: asked to wait {pause:.0f}s, over max_retry_after"
            return Failed(FailureKind.RETRY_AFTER_TOO_LONG, message, status)
        if request.rate_limited >= s.max_rate_limit_waits:
            message = f"still rate limited after {request.rate_limited} waits (HTTP {status})"
            return Failed(FailureKind.RATE_LIMITED, message, status)
        log.info("rate limited on %s: waiting %.1fs", page.url, pause)
        waited = dataclasses.replace(request, rate_limited=request.rate_limited + 1)
        return Again(waited, pause)

    async def keyed(self, new: list[NewRequest]) -> list[NewRequest]:
        """Give each new request its politeness key: its origin, or its IP with
        ``politeness_key="ip"``."""
        if self._settings.politeness_key != "ip" or not new:
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
        key = site
        try:
            ips = await self._resolver(host.strip("[]"), int(port))
            key = f"ip:{ips[0]}"
        except FetchError:
            key = site  # the fetch will fail with its own DNS error
        if len(self._ip_keys) > _MAX_IP_KEYS:
            self._ip_keys.clear()
        self._ip_keys[site] = key
        return key
