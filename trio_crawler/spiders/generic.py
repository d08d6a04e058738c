"""The generic spider behind ``trio-crawler crawl URL...``: one record per page, follow links."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

from .._records import quick_pickle
from .._spider import Failure, Follow, Page, Spider, register


@quick_pickle
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PageRecord:
    """What the generic spider records for every URL it tried."""

    url: str
    final_url: str
    status: int | None
    depth: int
    referrer: str | None
    content_type: str | None
    size: int
    title: str | None
    links: int
    fetch_time: float
    truncated: bool = False
    redirects: tuple[str, ...] = ()
    error: str | None = None
    error_kind: str | None = None
    #: The page was rendered in headless Chromium (``--render``): the title and links are
    #: the rendered DOM's. ``render_cut``: it was cut at the render timeout, still waiting
    #: for ``load``, ``network`` (its requests) or ``wait_for``. ``screenshot``: its PNG.
    rendered: bool = False
    render_cut: str | None = None
    screenshot: str | None = None
    #: Wall-clock time (epoch seconds, millisecond precision) the record was made: right after
    #: the response was read, or when the failure was known. The report's "pages over time".
    fetched_at: float | None = None


@register
class GenericSpider(Spider):
    """Crawl from the given URLs, record every page, follow every in-scope link."""

    name = "generic"
    description = "record every page (status, type, size, title, links) and follow links"
    item_types = (PageRecord,)
    accept = "any"

    def __init__(self, start_urls: tuple[str, ...] = (), **kwargs: str) -> None:
        super().__init__(**kwargs)
        self._start = tuple(start_urls)

    def start_requests(self) -> tuple[str, ...]:
        return self._start

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        title: str | None = None
        links: list[str] = []
        if page.is_html:
            extracted = page.extracted()
            title = extracted.title
            links = page.links()
        noindex = page._obey_meta and "noindex" in page.robots
        if not noindex:
            request = page.request
            rendering = page.rendering
            yield PageRecord(
                url=request.original_url,
                final_url=page.url,
                status=page.status,
                depth=request.depth,
                referrer=request.referrer,
                content_type=page.content_type or None,
                size=len(page.body),
                title=title,
                links=len(links),
                fetch_time=round(page.elapsed, 6),
                truncated=page.truncated,
                redirects=request.redirects,
                fetched_at=round(time.time(), 3),
                rendered=rendering is not None,
                render_cut=None if rendering is None else rendering.cut_reason,
                screenshot=None if rendering is None else rendering.screenshot,
            )
        if links:
            yield Follow(links)

    async def failed(self, failure: Failure) -> AsyncIterator[Any]:
        request = failure.request
        yield PageRecord(
            url=request.original_url,
            final_url=failure.url or request.url,
            status=failure.status,
            depth=request.depth,
            referrer=request.referrer,
            content_type=None,
            size=0,
            title=None,
            links=0,
            fetch_time=round(failure.elapsed, 6),
            redirects=request.redirects,
            error=failure.message,
            error_kind=str(failure.kind),
            fetched_at=round(time.time(), 3),
        )
