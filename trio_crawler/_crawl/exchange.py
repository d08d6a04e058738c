"""One HTTP exchange for a claim: the hooks around it, the origin's cookies and credentials,
the fetch itself (:class:`~trio_crawler._http.Fetcher`), and the WARC archive.

The ``before_request`` hooks (the settings', then the spider's) may change or drop the
request; the request then gets its origin's cookies and credentials (never another origin's)
and goes to the fetcher. A transport failure becomes a retry (the retry policy decides, with
backoff) or a failure. Every exchange and every failed fetch is archived with ``--warc``.
The ``after_response`` hooks may drop the page or ask for it again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from .._exceptions import FailureKind, FetchError
from .._http import Fetcher, FetchResult, Pace, failure_request, to_exchange
from .._retry import RetryPolicy
from .._session import CookieJar, Credentials
from .._settings import Settings, __version__
from .._spider import Drop, Page, Request, Retry, Spider
from .._stats import Counters
from .._warc import WarcWriter
from .outcome import Again, Done, Failed, Outcome

log = logging.getLogger("trio_crawler.engine")


class Archive:
    """``--warc``: every exchange (redirects, robots.txt, sitemaps) and every failed fetch."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._writer: WarcWriter | None = None

    def open(self) -> None:
        s = self._settings
        if s.warc is not None:
            self._writer = WarcWriter(
                s.warc,
                max_size=s.warc_max_size,
                software=f"trio-crawler/{__version__}",
                info={"http-header-user-agent": s.user_agent},
            )

    def record(self, url: str, outcome: FetchResult | FetchError) -> None:
        if self._writer is None:
            return
        if isinstance(outcome, FetchError):
            sent, started = failure_request(outcome)
            self._writer.write_failure(url, str(outcome.kind), str(outcome), started, sent)
        else:
            self._writer.write_exchange(to_exchange(outcome))

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except OSError as exc:
                log.error("cannot close the WARC file: %s", exc)


class Exchange:
    """Hooks, cookies, credentials, the fetch and the archive, for one crawl."""

    def __init__(
        self,
        settings: Settings,
        spider: Spider,
        counters: Counters,
        fetcher: Fetcher,
        archive: Archive,
    ) -> None:
        self._settings = settings
        self._counters = counters
        self._fetcher = fetcher
        self._archive = archive
        self._retry = RetryPolicy.from_settings(settings)
        self._cookies = CookieJar() if settings.cookies else None
        self._credentials = Credentials(settings.credentials)
        self._before: list[Any] = list(settings.before_request)
        if type(spider).before_request is not Spider.before_request:
            self._before.append(spider.before_request)
        self._after: list[Any] = list(settings.after_response)
        if type(spider).after_response is not Spider.after_response:
            self._after.append(spider.after_response)

    async def before(self, request: Request) -> Request | Drop:
        """Settings' hooks in order, then the spider's: each sees the previous one's request."""
        for hook in self._before:
            answer = await hook(request)
            if isinstance(answer, Drop):
                self._counters.dropped["hook"] += 1
                log.info("%s dropped: %s", request.url, answer.reason)
                return answer
            if isinstance(answer, Request):
                request = answer
        return request

    async def fetch(self, request: Request, pace: Pace | None = None) -> FetchResult | Outcome:
        """GET the request: its result, or what to do after a transport failure. ``pace`` is
        awaited right before the request is sent (politeness at send time)."""
        try:
            return await self.send(request, pace)
        except FetchError as exc:
            decision = self._retry.for_error(exc.kind, attempt=request.retries)
            if decision.retry:
                self._counters.retries += 1
                log.debug("retrying %s in %.2fs after %s", request.url, decision.delay, exc.kind)
                retried = dataclasses.replace(request, retries=request.retries + 1)
                return Again(retried, decision.delay)
            return Failed(exc.kind, f"{exc.kind}: {exc.args[0]}")

    async def send(self, request: Request, pace: Pace | None = None) -> FetchResult:
        """GET the request once, with its origin's cookies and credentials; archived and
        counted, its cookies kept. Raises :class:`~trio_crawler.FetchError` (no retry: a
        rendered page's requests come here directly)."""
        c = self._counters
        url = request.url
        try:
            result = await self._fetcher.fetch(url, self._headers(request), pace=pace)
        except FetchError as exc:
            self._archive.record(url, exc)
            c.requests += 1
            raise
        self._archive.record(url, result)
        log.debug(
            "GET %s: %d, %d bytes in %.0f ms",
            url,
            result.status,
            result.wire_bytes,
            result.elapsed * 1000,
        )
        c.requests += 1
        c.wire_bytes += result.wire_bytes
        if self._cookies is not None and "set-cookie" in result.headers:
            self._cookies.store(url, result.headers.get_list("set-cookie"), now=time.time())
        return result

    async def fetch_plain(
        self, url: str, *, max_body: int, pace: Pace | None = None
    ) -> FetchResult:
        """GET a URL of the crawl's own (robots.txt): no hooks, no cookies, archived.
        Raises :class:`~trio_crawler.FetchError`."""
        self._counters.requests += 1
        try:
            result = await self._fetcher.fetch(url, max_body=max_body, pace=pace)
        except FetchError as exc:
            self._archive.record(url, exc)
            raise
        self._archive.record(url, result)
        return result

    async def after(self, page: Page) -> Outcome | None:
        """Settings' hooks in order, then the spider's; the first Retry or Drop wins."""
        for hook in self._after:
            answer = await hook(page)
            if isinstance(answer, Drop):
                self._counters.dropped["hook"] += 1
                log.info("%s dropped: %s", page.request.url, answer.reason)
                return Done()
            if isinstance(answer, Retry):
                return self._retry_asked(page, answer)
        return None

    def _retry_asked(self, page: Page, answer: Retry) -> Outcome:
        request = page.request
        if request.retries >= self._settings.max_retries:
            return Failed(FailureKind.OTHER, f"{answer.reason}: out of retries", page.status)
        self._counters.retries += 1
        return Again(dataclasses.replace(request, retries=request.retries + 1), answer.delay)

    def _headers(self, request: Request) -> dict[str, str] | None:
        """The request's own headers plus its origin's cookies and credentials, if any."""
        headers = dict(request.headers) if request.headers else None
        if self._cookies is not None:
            cookie = self._cookies.header(request.url, now=time.time())
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
