"""The engine end to end over real HTTP on loopback: termination, dedupe, errors, embedding."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import trio
import trio.testing

from trio_crawler import Page, Request, Settings, Spider, crawl, open_crawler, start_crawler
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import (
    Response,
    Site,
    html_page,
    loopback_settings,
    open_site_server,
    site_from_links,
)


def generic(*urls: str) -> GenericSpider:
    return GenericSpider(start_urls=urls)


async def run_generic(site: Site, *paths: str, **overrides: Any) -> tuple[list[Any], Any, Any]:
    async with open_site_server(site) as server:
        spider = generic(*(server.url(p) for p in (paths or ("/",))))
        with trio.fail_after(30):
            async with open_crawler(spider, loopback_settings(server, **overrides)) as crawler:
                items = [item async for item in crawler.items()]
        return items, crawler.statistics(), server


async def test_every_page_once_with_cycles_and_self_links() -> None:
    graph = {
        "/": ["/", "/a", "a", "./b", "/c#top", "/a#x", "HTTP://127.0.0.1:{port}/a"],
        "/a": ["/", "/a", "/b"],
        "/b": ["/c", "/b?", "/a"],
        "/c": ["/", "/d"],
        "/d": ["/c", "/d"],
    }
    site = site_from_links({k: [h for h in v if "{port}" not in h] for k, v in graph.items()})
    items, stats, server = await run_generic(site)
    urls = sorted(r.final_url.rsplit("/", 1)[1] for r in items)
    assert urls == ["", "a", "b", "c", "d"]
    targets = [p for p in server.paths() if p != "/robots.txt"]
    assert sorted(targets) == ["/", "/a", "/b", "/c", "/d"]
    assert stats.stop_reason == "finished"
    assert stats.pages_ok == 5 and stats.queued == 0 and stats.in_flight == 0


async def test_ten_thousand_seeds_terminate() -> None:
    site = Site(default=html_page("leaf"))
    async with open_site_server(site) as server:
        seeds = tuple(server.url(f"/seed/{i}") for i in range(10_000))
        settings = loopback_settings(server, concurrency=32, per_host_concurrency=32)
        with trio.fail_after(90):
            stats = await crawl(generic(*seeds), settings)
    assert stats.pages_ok == 10_000
    assert stats.stop_reason == "finished"


async def test_pages_with_a_thousand_links_terminate() -> None:
    site = Site()
    for page in range(5):
        body = "".join(f'<a href="/p{page}/{i}">x</a>' for i in range(1000))
        site.add(
            f"/hub{page}", html_page(body + "".join(f'<a href="/hub{j}">h</a>' for j in range(5)))
        )
    site.default = html_page("leaf")
    async with open_site_server(site) as server:
        settings = loopback_settings(
            server, concurrency=32, per_host_concurrency=32, items_buffer=4
        )
        with trio.fail_after(90):
            stats = await crawl(generic(server.url("/hub0")), settings)
    assert stats.pages_ok == 5 + 5000
    assert stats.links_queued == 5005


class Exploding(Spider):
    name = "exploding"

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start
        self.processed: list[Any] = []

    def start_requests(self) -> list[str]:
        return [self.start]

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        if page.url.endswith("/boom"):
            raise RuntimeError("spider bug")
        yield {"url": page.url}
        for link in page.links():
            yield Request(url=link)

    async def process(self, item: Any) -> None:
        if item["url"].endswith("/bad-item"):
            raise ValueError("process bug")
        self.processed.append(item)


async def test_spider_exceptions_are_recorded_and_crawl_goes_on() -> None:
    site = site_from_links(
        {"/": ["/boom", "/bad-item", "/ok"], "/boom": [], "/bad-item": [], "/ok": []}
    )
    async with open_site_server(site) as server:
        spider = Exploding(server.url("/"))
        with trio.fail_after(20):
            stats = await crawl(spider, loopback_settings(server))
    assert stats.spider_errors == 1
    assert stats.process_errors == 1
    assert stats.failures == {"process_error": 1, "scrape_error": 1}
    assert sorted(i["url"].rsplit("/", 1)[1] for i in spider.processed) == ["", "ok"]
    assert stats.stop_reason == "finished"


async def test_fail_fast_stops_at_first_spider_error() -> None:
    site = site_from_links({"/": ["/boom"] + [f"/x{i}" for i in range(50)], "/boom": []})
    site.default = html_page("x")
    async with open_site_server(site) as server:
        spider = Exploding(server.url("/"))
        settings = loopback_settings(server, fail_fast=True, concurrency=1, per_host_concurrency=1)
        with trio.fail_after(20):
            stats = await crawl(spider, settings)
    assert stats.stop_reason == "fail_fast"
    assert stats.pages_ok < 52


async def test_cancellation_from_outside_leaves_nothing_running() -> None:
    async def slow(_: Any) -> Response:
        await trio.sleep(30)
        return html_page("late")

    site = site_from_links({"/": [f"/s{i}" for i in range(20)]})
    site.default = slow
    async with open_site_server(site) as server:
        settings = loopback_settings(server)
        with trio.move_on_after(0.5) as outer:
            async with open_crawler(generic(server.url("/")), settings) as crawler:
                await trio.sleep(5)
        assert outer.cancelled_caught
        before = trio.current_time()
        # the block above returned: every crawler task is gone; nothing named trio_crawler runs
        root = trio.lowlevel.current_root_task()

        def names(task: trio.lowlevel.Task) -> list[str]:
            out = [task.name]
            for nursery in task.child_nurseries:
                for child in nursery.child_tasks:
                    out.extend(names(child))
            return out

        leftover = [n for n in names(root) if n.startswith("trio_crawler.")]
        assert not [n for n in leftover if not n.startswith("trio_crawler.testing")]
        assert trio.current_time() - before < 1
        assert crawler.statistics().stop_reason == "cancelled"


async def test_stop_lets_in_flight_pages_finish() -> None:
    site = site_from_links({"/": [f"/p{i}" for i in range(200)]})
    site.default = Response(body=b"<p>x</p>", delay=0.01)
    async with open_site_server(site) as server:
        settings = loopback_settings(server, concurrency=4, per_host_concurrency=4)
        with trio.fail_after(20):
            async with open_crawler(generic(server.url("/")), settings) as crawler:
                received = []
                async for item in crawler.items():
                    received.append(item)
                    if len(received) == 10:
                        crawler.stop()
    stats = crawler.statistics()
    assert stats.stop_reason == "interrupted"
    assert stats.in_flight == 0
    assert 10 <= stats.pages_ok < 200
    assert stats.queued > 0


async def test_items_backpressure_loses_nothing() -> None:
    site = site_from_links({"/": [f"/p{i}" for i in range(100)]})
    site.default = html_page("x")
    async with open_site_server(site) as server:
        settings = loopback_settings(server, items_buffer=1)
        with trio.fail_after(30):
            async with open_crawler(generic(server.url("/")), settings) as crawler:
                seen = []
                async for item in crawler.items():
                    seen.append(item)
                    await trio.sleep(0.001)  # a slow consumer
    assert len(seen) == 101
    assert crawler.statistics().items == 101


async def test_leaving_items_loop_early_does_not_hang() -> None:
    site = site_from_links({"/": [f"/p{i}" for i in range(50)]})
    site.default = html_page("x")
    async with open_site_server(site) as server:
        with trio.fail_after(20):
            async with open_crawler(generic(server.url("/")), loopback_settings(server)) as crawler:
                async for _ in crawler.items():
                    break
    assert crawler.statistics().pages_ok == 51


async def test_start_crawler_in_callers_nursery_and_wait() -> None:
    site = site_from_links({"/": ["/a"], "/a": []})
    async with open_site_server(site) as server, trio.open_nursery() as nursery:
        crawler = await start_crawler(nursery, generic(server.url("/")), loopback_settings(server))
        with trio.fail_after(10):
            stats = await crawler.wait()
    assert stats.pages_ok == 2


async def test_max_pages_and_max_depth() -> None:
    site = site_from_links({"/": ["/1"], "/1": ["/2"], "/2": ["/3"], "/3": ["/4"], "/4": []})
    items, stats, _ = await run_generic(site, max_depth=2)
    assert sorted(r.depth for r in items) == [0, 1, 2]
    assert stats.dropped.get("too_deep") == 1
    items, stats, _ = await run_generic(site, max_pages=2, concurrency=1, per_host_concurrency=1)
    assert stats.stop_reason == "max_pages"
    assert stats.pages_ok == 2


async def test_non_2xx_and_unreachable_become_records() -> None:
    site = site_from_links({"/": ["/missing", "/gone", "http://127.0.0.1:1/refused"]})
    site.add("/gone", Response(status=410, body=b"gone"))
    items, stats, _ = await run_generic(site, scope="any", max_retries=0)
    by_url = {r.url.rsplit("/", 1)[1]: r for r in items}
    assert by_url["missing"].status == 404 and by_url["missing"].error_kind == "http_status"
    assert by_url["gone"].status == 410
    # port 1 on loopback is not the seed's port: the address guard refuses it
    assert by_url["refused"].error_kind == "forbidden_address"
    assert stats.pages_failed == 3


async def test_redirect_chain_recorded_and_target_fetched_once() -> None:
    site = site_from_links({"/": ["/old", "/new"], "/new": []})
    site.add("/old", Response(status=301, headers=(("location", "/new"),)))
    items, stats, server = await run_generic(site)
    assert server.count("/new") == 1
    assert stats.redirects == 1
    assert stats.dropped.get("redirect_to_seen", 0) + len(items) >= 2


@dataclasses.dataclass(frozen=True)
class Hit:
    time: float
    path: str


async def test_politeness_delay_with_autojump_clock(autojump_clock: trio.testing.MockClock) -> None:
    """Per-host delay and concurrency, timed on the virtual clock over an in-memory transport."""
    hits: list[Hit] = []
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        path = request.url.path
        hits.append(Hit(trio.current_time(), f"{request.url.host}{path}"))
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await trio.sleep(0.1)
        finally:
            in_flight -= 1
        if path == "/robots.txt":
            return httpx.Response(404)
        if path == "/":
            links = "".join(f'<a href="/p{i}">p</a>' for i in range(10))
            return httpx.Response(200, html=links)
        return httpx.Response(200, html="leaf")

    settings = Settings(per_host_delay=1.0, per_host_concurrency=2, allow_private=True)
    spider = generic("http://site.test/")
    with trio.fail_after(100):
        stats = await crawl(spider, settings, transport=httpx.MockTransport(handler))
    assert stats.pages_ok == 11
    starts = sorted(h.time for h in hits)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 1.0 - 1e-9
    assert peak <= 2


class KeepsPages(Spider):
    """Yields each page itself as an item, and reads its HTML again in ``process``."""

    name = "keeps-pages"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.start = url
        self.titles: list[str] = []

    def start_requests(self) -> list[str]:
        return [self.start]

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        yield page
        for url in page.links():
            yield Request(url=url)

    async def process(self, item: Any) -> None:
        # the engine has dropped the parse tree by now: asking again parses again
        node = item.html.css_first("title")
        self.titles.append(node.text() if node is not None else "")


async def test_a_page_kept_by_the_spider_still_parses_after_the_engine_releases_it() -> None:
    site = Site(
        {
            "/": html_page('<a href="/a">a</a>', title="home"),
            "/a": html_page("nothing", title="page a"),
        }
    )
    async with open_site_server(site) as server:
        spider = KeepsPages(server.url("/"))
        with trio.fail_after(20):
            stats = await crawl(spider, loopback_settings(server))
    assert stats.pages_ok == 2
    assert sorted(spider.titles) == ["home", "page a"]
