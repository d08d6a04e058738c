"""Embedding the crawler in a Trio program (issue 16 §4): what a host sees of spider errors,
items from a resumed durable crawl, and a durable crawl asked for through the public API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from trio_crawler import Failure, Page, Request, Settings, Spider, open_crawler
from trio_crawler.testing import Site, html_page, loopback_settings, open_site_server

LIMIT = 20


def links(*paths: str) -> str:
    return "".join(f'<a href="{p}">{p}</a>' for p in paths)


class Breaks(Spider):
    """Yields an item and a link, then raises on ``/b``; records what ``failed`` saw."""

    name = "breaks"

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start_urls = (start,)
        self.failures: list[Failure] = []

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        yield {"url": page.url}
        for link in page.links():
            yield Request(url=link)
        if page.url.endswith("/b"):
            raise ValueError("no price on this page")

    async def failed(self, failure: Failure) -> AsyncIterator[Any]:
        self.failures.append(failure)
        yield {"failed": failure.url, "kind": str(failure.kind)}


def site() -> Site:
    return Site(
        {"/": html_page(links("/a", "/b")), "/b": html_page(links("/c"))}, default=html_page("leaf")
    )


async def test_a_scrape_exception_is_a_failed_page_the_host_can_see() -> None:
    with trio.fail_after(LIMIT):
        async with open_site_server(site()) as server:
            spider = Breaks(server.url("/"))
            async with open_crawler(spider, loopback_settings(server)) as crawler:
                items = [item async for item in crawler.items()]
    stats = crawler.statistics()
    b = server.url("/b")
    assert (stats.pages_ok, stats.pages_failed) == (3, 1)  # /, /a, /c; /b failed
    assert stats.failures == {"scrape_error": 1}
    (error,) = stats.errors
    assert error.url == b and error.where == "scrape"
    assert isinstance(error.exception, ValueError)
    assert stats.as_dict()["errors"] == [
        {"url": b, "where": "scrape", "error": "ValueError: no price on this page"}
    ]
    # Spider.failed saw it, with the exception; what scrape yielded before it is kept
    (failure,) = spider.failures
    assert failure.kind == "scrape_error" and isinstance(failure.exception, ValueError)
    assert {"url": b} in items and {"failed": b, "kind": "scrape_error"} in items
    assert server.count("/c") == 1  # the link found before the exception was followed


async def test_fail_fast_stops_at_the_first_scrape_exception() -> None:
    with trio.fail_after(LIMIT):
        async with open_site_server(site()) as server:
            settings = loopback_settings(server, fail_fast=True, concurrency=1)
            async with open_crawler(Breaks(server.url("/")), settings) as crawler:
                pass
    stats = crawler.statistics()
    assert stats.stop_reason == "fail_fast"
    assert [e.url for e in stats.errors] == [server.url("/b")]


class Broken(Spider):
    name = "broken-process"

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start_urls = (start,)

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        yield {"url": page.url}

    async def process(self, item: Any) -> None:
        raise RuntimeError("the database is gone")


async def test_a_process_exception_is_in_the_statistics() -> None:
    with trio.fail_after(LIMIT):
        async with open_site_server(site()) as server:
            spider = Broken(server.url("/a"))
            async with open_crawler(spider, loopback_settings(server)) as crawler:
                pass
    (error,) = crawler.statistics().errors
    assert error.where == "process" and isinstance(error.exception, RuntimeError)


class Titles(Spider):
    name = "titles"

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start_urls = (start,)

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        yield {"url": page.url}
        for link in page.links():
            yield Request(url=link)


async def test_items_stream_from_a_resumed_durable_crawl(tmp_path: Path) -> None:
    """A durable crawl from the public API (``state=``), stopped and resumed: the resumed
    run's items reach ``crawler.items()`` (it raised RuntimeError on every resumed crawl)."""
    state = str(tmp_path / "crawl.db")
    with trio.fail_after(LIMIT):
        async with open_site_server(site()) as server:
            spider = Titles(server.url("/"))
            first: Settings = loopback_settings(server, max_pages=1)
            async with open_crawler(spider, first, state=state) as crawler:
                before = [item async for item in crawler.items()]
            assert crawler.statistics().stop_reason == "max_pages"
            async with open_crawler(spider, loopback_settings(server), state=state) as crawler:
                assert crawler.resumed
                after = [item async for item in crawler.items()]
    assert [i["url"] for i in before] == [server.url("/")]
    assert sorted(i["url"] for i in after) == sorted(server.url(p) for p in ("/a", "/b", "/c"))
