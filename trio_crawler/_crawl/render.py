"""The render stage: a page rendered in headless Chromium before the spider sees it.

Theory of operation
-------------------
**The browser renders; the crawler fetches.** A 2xx HTML page the crawl wants rendered
(:mod:`.render_policy`: ``Request.render``, the ``render`` setting, the spider's
``render``; ``auto`` for pages that look script-built), once the ``after_response`` hooks and
the retry policy have let it through (a page they drop or retry is not rendered), goes to the
crawl's
:class:`~trio_crawler._browser.Browser` with the response already fetched: the browser's
own request for the page is answered from it. Every other request the page makes (scripts,
XHR and fetch, stylesheets, frames; images, media and fonts are refused without a fetch,
``render_refused_types``) comes back here (:meth:`Renderer._subrequest`) and is answered by
the crawl's own :class:`~.exchange.Exchange` or refused: GET only; the render scope
(``render_scope``: the page's site, or any origin); robots.txt (:class:`~.gate.RobotsGate`,
which fetches a new host's robots.txt as for a page); politeness (the host's
:meth:`~.politeness.Politeness.pacer`, so the browser's requests to a host are spaced by
its delay like the crawler's own, and at most ``per_host_concurrency`` of them at once per
host); then the fetch, with the crawler's user agent, cookie jar and credentials (only
``Referer``, ``Accept``, ``Origin`` and ``Content-Type`` of the browser's headers are
sent), the address guard, the proxies, the body limit, and the WARC archive. No retry with
backoff for these: a failed fetch is a refusal. A 3xx goes back to the browser as it is;
each hop comes back here. A script cut at ``max_body_size`` is refused (it would run half).

**No deadlock.** The page keeps its claim (its host's slot in the frontier) while it
renders, so a host's concurrency bounds its pages in a browser too; its subrequests do not
take a frontier slot, only the per-host limiter of this stage (which the page does not
hold) and the host's pace, so they never wait on their own page.

**Its own limiter.** Pages render ``render_concurrency`` at a time (the browser's tabs, a
``trio.CapacityLimiter``); a page waiting for a tab keeps its fetch slot (``-c`` bounds the
pages between fetch and settlement, rendered or not).

**Outcomes.** The spider gets a :class:`~trio_crawler.Page` of the rendered DOM (UTF-8,
``Page.rendering`` says how it went), its URL the browser's ``location.href`` (the base of
its links). A page not done by ``render_timeout`` is cut and still scraped
(``Rendering.settled`` is False; ``rendered_cut`` counts them). A navigation a script
tried (refused by the browser) is taken like a redirect: the page's next hop, checked by
:meth:`~.redirects.Redirects.hop`; a reload of the page itself is ignored, and if every
navigation is refused the page is scraped as rendered. A browser that crashed or hung
(:class:`~trio_crawler._browser.BrowserCrashed`) fails the pages it was rendering; each is
put back once to be rendered by the next browser (``Request.meta``
:data:`RENDER_RETRIED`), then fails as ``render``; any other render error (the page's
renderer crashed, its main thread stuck) fails the page as ``render`` at once.

**Processes.** The browser is opened by the engine in the crawl's nursery, and starts
Chromium at its first render only; with ``--processes N`` each process has its own
(lazily) and renders its share of ``render_concurrency``
(:func:`~.render_policy.render_share`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

import trio

from .._browser import (
    Browser,
    BrowserCrashed,
    BrowserRequest,
    BrowserResponse,
    Refusal,
    Rendered,
    RenderError,
    find_chromium,
)
from .._exceptions import FailureKind, FetchError, SettingsError
from .._http import FetchResult
from .._settings import Settings
from .._spider import Page, Rendering, Request, Spider
from .._stats import Counters
from .._store import Claim, NewRequest
from .._urls import UrlRules
from .exchange import Exchange
from .gate import RobotsGate
from .outcome import Again, Done, Failed, Outcome
from .politeness import Politeness
from .redirects import Redirects
from .render_policy import (
    forwarded_headers,
    may_render,
    render_mode,
    subresource_refusal,
    wants_render,
)

log = logging.getLogger("trio_crawler.render")

#: ``Request.meta`` key: this page was put back once after its browser crashed.
RENDER_RETRIED = "trio_crawler.render_retried"
#: Refusals kept in :attr:`~trio_crawler.Rendering.refused`.
_MAX_REFUSED = 100
#: Navigations of one page tried as its next hop.
_MAX_NAVIGATIONS = 5


def check_renderer(settings: Settings, spider: Spider, start: list[Request | str]) -> None:
    """Before a crawl that may render opens anything: Chromium is there, the screenshot
    directory can be made (one-line errors)."""
    if not may_render(settings, spider, start):
        return
    find_chromium()  # BrowserUnavailable: one line
    if settings.screenshots is not None:
        try:
            os.makedirs(settings.screenshots, exist_ok=True)
        except OSError as exc:
            why = exc.strerror or exc
            raise SettingsError(f"cannot make the screenshot directory: {why}") from None


class Renderer:
    """The render stage of one crawl; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        spider: Spider,
        counters: Counters,
        *,
        browser: Browser,
        exchange: Exchange,
        gate: RobotsGate,
        politeness: Politeness,
        rules: UrlRules,
        redirects: Redirects,
    ) -> None:
        self._settings = settings
        self._spider = spider
        self._counters = counters
        self._browser = browser
        self._exchange = exchange
        self._gate = gate
        self._politeness = politeness
        self._rules = rules
        self._redirects = redirects
        # only denied domains refused: the rules a subrequest meets with render_scope any
        self._anywhere = UrlRules(
            settings.replace(scope="any", include_patterns=(), exclude_patterns=()), ()
        )
        self._hosts: dict[str, trio.CapacityLimiter] = {}
        self._crashes_seen = 0

    def wanted(self, page: Page) -> bool:
        """Whether this fetched 2xx page is rendered before it is scraped."""
        return wants_render(render_mode(page.request, self._settings, self._spider), page)

    async def render(self, claim: Claim, page: Page, result: FetchResult) -> Page | Outcome:
        """Render ``page`` (fetched as ``result``): the rendered page for ``scrape``, or
        what to do instead (a navigation's hop, a retry after a crash, a failure)."""
        request = page.request
        document = BrowserResponse(result.status, result.headers.raw(), result.body)
        try:
            rendered = await self._browser.render(
                page.url,
                document=document,
                fetch=functools.partial(self._subrequest, page.url),
                wait_for=request.wait_for,
                screenshot=self._settings.screenshots is not None,
            )
        except BrowserCrashed as exc:
            self._count_crashes()
            return self._crashed(request, exc, page.status)
        except RenderError as exc:
            self._count_crashes()
            log.warning("%s: render failed: %s", page.url, exc)
            return Failed(FailureKind.RENDER, f"render: {exc}", page.status)
        self._count_crashes()
        rendering = self._count(page, rendered)
        navigated = await self._navigation(request, rendered, page.status)
        if navigated is not None:
            return navigated
        shot = await self._save_screenshot(claim, rendered.screenshot)
        if shot is not None:
            rendering = dataclasses.replace(rendering, screenshot=shot)
        return page.rendered(
            url=self._final_url(page.url, rendered.final_url),
            html=rendered.html,
            truncated=rendered.html_truncated,
            rendering=rendering,
            max_body=self._settings.max_body_size,
        )

    # ------------------------------------------------------------------ the page's requests
    async def _subrequest(
        self, page_url: str, request: BrowserRequest
    ) -> BrowserResponse | Refusal:
        """One request of a rendered page at ``page_url``: answered by the crawl's own
        exchange, or refused (see the module docstring)."""
        url = request.url
        if request.method != "GET":
            return _refuse(page_url, url, f"method {request.method}")
        s = self._settings
        why = subresource_refusal(
            url,
            page_url,
            scope=s.render_scope,
            crawl=self._rules,
            anywhere=self._anywhere,
            max_length=s.max_url_length,
        )
        if why is not None:
            return _refuse(page_url, url, why)
        key = await self._key(url)
        verdict = await self._gate.check(Claim(Request(url=url), 0, key))
        if isinstance(verdict, Failed):
            return _refuse(page_url, url, verdict.message)
        limiter = self._hosts.get(key)
        if limiter is None:
            limiter = self._hosts[key] = trio.CapacityLimiter(s.per_host_concurrency)
        sent = Request(url=url, headers=forwarded_headers(request.headers))
        try:
            async with limiter:
                result = await self._exchange.send(sent, self._politeness.pacer(key))
        except FetchError as exc:
            return _refuse(page_url, url, str(exc))
        finally:
            if limiter.borrowed_tokens == 0 and limiter.statistics().tasks_waiting == 0:
                self._hosts.pop(key, None)
        if result.truncated and request.resource_type == "Script":
            return _refuse(page_url, url, f"script cut at max_body_size ({s.max_body_size})")
        return BrowserResponse(result.status, result.headers.raw(), result.body)

    async def _key(self, url: str) -> str:
        """The politeness key of ``url`` (its origin, or its address)."""
        origin = self._rules.origin(url)
        keyed = await self._politeness.keyed([NewRequest(Request(url=url), 0, origin)])
        return keyed[0].host

    # ------------------------------------------------------------------ outcomes
    def _crashed(self, request: Request, exc: BrowserCrashed, status: int) -> Outcome:
        """The browser crashed (or hung) under this page: once more in a new one, then
        a failure."""
        if request.meta.get(RENDER_RETRIED):
            log.warning("%s: render failed again: %s", request.url, exc)
            return Failed(FailureKind.RENDER, f"render: {exc} (twice: in two browsers)", status)
        log.warning("%s: %s; rendering it again in a new browser", request.url, exc)
        self._counters.retries += 1
        meta = {**request.meta, RENDER_RETRIED: True}
        return Again(dataclasses.replace(request, meta=meta), 0.0)

    def _count_crashes(self) -> None:
        """Browsers that crashed or hung so far (each counted once, however many pages it
        took with it)."""
        crashed = self._browser.statistics().browsers_crashed
        self._counters.browser_crashes += crashed - self._crashes_seen
        self._crashes_seen = crashed

    def _count(self, page: Page, rendered: Rendered) -> Rendering:
        c = self._counters
        refused = [s for s in rendered.subrequests if s.outcome == "refused"]
        c.rendered += 1
        c.subrequests += len(rendered.subrequests) + rendered.subrequests_dropped
        c.subrequests_refused += len(refused)
        if not rendered.settled:
            c.rendered_cut += 1
            log.info(
                "%s: cut at the render timeout (waiting for %s), scraped as it stands",
                page.url,
                rendered.cut_reason,
            )
        return Rendering(
            settled=rendered.settled,
            cut_reason=rendered.cut_reason,
            subrequests=len(rendered.subrequests) - len(refused),
            refused=tuple(f"{s.url}: {s.reason}" for s in refused[:_MAX_REFUSED]),
            navigations=rendered.navigations,
            errors=rendered.errors,
            elapsed=round(rendered.elapsed, 6),
        )

    async def _navigation(
        self, request: Request, rendered: Rendered, status: int
    ) -> Outcome | None:
        """A script tried to take the page elsewhere: the first navigation the checks of a
        redirect let through is the page's next hop (a reload of the page is ignored)."""
        rules = self._rules
        for target in rendered.navigations[:_MAX_NAVIGATIONS]:
            try:
                if rules.fingerprint(target) == rules.fingerprint(request.url):
                    continue
            except ValueError:
                continue
            meta = {k: v for k, v in request.meta.items() if k != RENDER_RETRIED}
            source = dataclasses.replace(request, meta=meta)
            outcome = await self._redirects.hop(source, target, status, widen_scope=False)
            if isinstance(outcome, Done):
                log.info(
                    "%s: a script navigated to %s: followed as a redirect", request.url, target
                )
                return outcome
            self._counters.dropped["navigation_refused"] += 1
            why = outcome.message if isinstance(outcome, Failed) else outcome
            log.info("%s: navigation to %s refused: %s", request.url, target, why)
        return None

    async def _save_screenshot(self, claim: Claim, png: bytes | None) -> str | None:
        directory = self._settings.screenshots
        if png is None or directory is None:
            return None
        path = os.path.join(directory, f"{claim.fingerprint:016x}.png")
        try:
            await trio.Path(path).write_bytes(png)
        except OSError as exc:
            log.error("cannot write the screenshot of %s: %s", claim.request.url, exc)
            return None
        return path

    def _final_url(self, url: str, final: str) -> str:
        """The browser's ``location.href`` without its fragment, when it is an http(s) URL of
        the page's origin (``history.pushState``), else the page's URL."""
        final = final.partition("#")[0]
        try:
            if self._rules.origin(final) == self._rules.origin(url):
                return final
        except ValueError:
            pass
        return url


def _refuse(page_url: str, url: str, why: str) -> Refusal:
    log.info("%s: its request for %s refused: %s", page_url, url, why)
    return Refusal(why)
