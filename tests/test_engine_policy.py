"""Engine policies timed on Trio's autojump clock over an in-memory transport (no sockets)."""

from __future__ import annotations

import itertools
from collections import defaultdict

import httpx
import trio
import trio.testing

from trio_crawler import Settings, crawl
from trio_crawler._http import Resolver
from trio_crawler.spiders.generic import GenericSpider


def site_handler(
    hits: list[tuple[float, str, str]], *, pages: int = 10, latency: float = 0.1
) -> httpx.MockTransport:
    async def handler(request: httpx.Request) -> httpx.Response:
        hits.append((trio.current_time(), request.url.host, request.url.path))
        await trio.sleep(latency)
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        if request.url.path == "/":
            links = "".join(f'<a href="/p{i}">p</a>' for i in range(pages))
            return httpx.Response(200, html=links)
        return httpx.Response(200, html="leaf")

    return httpx.MockTransport(handler)


def gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in itertools.pairwise(ordered)]


async def test_politeness_by_ip_spaces_names_sharing_a_machine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two names on one IP share one politeness slot with politeness_key="ip"."""
    hits: list[tuple[float, str, str]] = []

    async def resolve(host: str, port: int) -> list[str]:
        return ["203.0.113.7"]

    settings = Settings(
        per_host_delay=1.0, per_host_concurrency=1, politeness_key="ip", obey_robots=False
    )
    spider = GenericSpider(start_urls=("http://a.test/", "http://b.test/"))
    with trio.fail_after(200):
        stats = await crawl(
            spider,
            settings,
            transport=site_handler(hits, pages=5),
            resolver=Resolver(resolve),
        )
    assert stats.pages_ok == 12
    assert min(gaps([t for t, _, _ in hits])) >= 1.0 - 1e-9


async def test_politeness_by_origin_keeps_names_apart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hits: list[tuple[float, str, str]] = []
    settings = Settings(per_host_delay=1.0, per_host_concurrency=1, obey_robots=False)
    spider = GenericSpider(start_urls=("http://a.test/", "http://b.test/"))
    with trio.fail_after(200):
        await crawl(spider, settings, transport=site_handler(hits, pages=5))
    by_host: dict[str, list[float]] = defaultdict(list)
    for t, host, _ in hits:
        by_host[host].append(t)
    assert all(min(gaps(times)) >= 1.0 - 1e-9 for times in by_host.values())
    # the two hosts crawl side by side: some starts of different hosts are closer than 1 s
    assert min(gaps([t for t, _, _ in hits])) < 1.0


async def test_adaptive_throttle_follows_latency_and_backs_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hits: list[float] = []
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        hits.append(trio.current_time())
        await trio.sleep(2.0)  # a slow server
        if request.url.path == "/":
            return httpx.Response(200, html="".join(f'<a href="/p{i}">p</a>' for i in range(8)))
        if calls in (4, 5):
            return httpx.Response(503)
        return httpx.Response(200, html="leaf")

    settings = Settings(
        per_host_delay=0.0,
        per_host_concurrency=1,
        adaptive_throttle=True,
        obey_robots=False,
        retry_backoff=0.0,
        max_crawl_delay=10.0,
    )
    with trio.fail_after(500):
        stats = await crawl(
            GenericSpider(start_urls=("http://slow.test/",)),
            settings,
            transport=httpx.MockTransport(handler),
        )
    assert stats.pages_ok == 9
    starts = sorted(hits)
    # with no fixed delay, the throttle still spaces requests once latency is seen:
    # later gaps exceed the 2 s service time (the delay moved toward the latency)
    assert max(gaps(starts)[-4:]) > 2.0


async def test_retry_after_pushes_back_the_whole_host(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hits: list[tuple[float, str]] = []
    limited = {"n": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        hits.append((trio.current_time(), request.url.path))
        if request.url.path == "/":
            return httpx.Response(200, html="".join(f'<a href="/p{i}">p</a>' for i in range(5)))
        if request.url.path == "/p0" and limited["n"] == 0:
            limited["n"] += 1
            return httpx.Response(429, headers={"retry-after": "30"})
        return httpx.Response(200, html="leaf")

    settings = Settings(per_host_delay=0.0, per_host_concurrency=1, obey_robots=False)
    with trio.fail_after(500):
        stats = await crawl(
            GenericSpider(start_urls=("http://busy.test/",)),
            settings,
            transport=httpx.MockTransport(handler),
        )
    assert stats.pages_ok == 6 and stats.retries == 1
    limited_at = next(t for t, p in hits if p == "/p0")
    after = [t for t, p in hits if t > limited_at]
    assert after and min(after) >= limited_at + 30 - 1e-9


async def test_hooks_sign_drop_and_retry_in_order() -> None:
    from trio_crawler import Drop, Page, Request, Retry, Spider
    from trio_crawler.testing import html_page, loopback_settings, open_site_server, site_from_links

    order: list[str] = []
    site = site_from_links({"/": ["/a", "/secret", "/flaky"], "/a": [], "/secret": []})
    flaky = {"n": 0}

    def flaky_page(_: object) -> object:
        flaky["n"] += 1
        return html_page("ok") if flaky["n"] > 1 else html_page("not yet", status=200)

    site.add("/flaky", flaky_page)  # type: ignore[arg-type]

    async def sign(request: Request) -> Request | Drop | None:
        order.append("settings-before")
        if request.url.endswith("/secret"):
            return Drop("no secrets")
        return Request(url=request.url, headers={**request.headers, "x-signature": "s1"})

    async def check(page: Page) -> Retry | Drop | None:
        order.append("settings-after")
        if page.url.endswith("/flaky") and b"not yet" in page.body:
            return Retry(delay=0.0, reason="not ready")
        return None

    class Hooked(Spider):
        name = "hooked"

        async def before_request(self, request: Request) -> Request | Drop | None:
            order.append("spider-before")
            assert request.headers.get("x-signature") == "s1"
            return None

        async def scrape(self, page: Page):  # type: ignore[no-untyped-def]
            yield {"url": page.url}
            for link in page.links():
                yield Request(url=link)

    async with open_site_server(site) as server:
        settings = loopback_settings(
            server, before_request=(sign,), after_response=(check,), obey_robots=False
        )
        with trio.fail_after(20):
            stats = await crawl(Hooked(), settings, start_urls=[server.url("/")])
    assert stats.pages_ok == 3  # /, /a, /flaky (after one retry)
    assert stats.dropped["hook"] == 1 and stats.retries == 1
    assert all(r.header("x-signature") == "s1" for r in server.requests)
    assert "/secret" not in server.paths()
    assert order[:3] == ["settings-before", "spider-before", "settings-after"]


async def test_priority_then_depth_first_order() -> None:
    from trio_crawler import Page, Request, Spider
    from trio_crawler.testing import Site, html_page, loopback_settings, open_site_server

    site = Site(default=html_page("leaf"))

    class Prioritised(Spider):
        name = "prioritised"

        async def scrape(self, page: Page):  # type: ignore[no-untyped-def]
            if page.url.endswith("/"):
                for i in range(6):
                    yield Request(url=page.url + f"p{i}", priority=10 if i == 4 else 0)

    async with open_site_server(site) as server:
        for order, expected in (
            ("breadth", ["/p4", "/p0", "/p1", "/p2", "/p3", "/p5"]),
            ("depth", ["/p4", "/p5", "/p3", "/p2", "/p1", "/p0"]),
        ):
            server.requests.clear()
            settings = loopback_settings(
                server, per_host_concurrency=1, concurrency=1, obey_robots=False, order=order
            )
            with trio.fail_after(20):
                await crawl(Prioritised(), settings, start_urls=[server.url("/")])
            assert server.paths()[1:] == expected, order


async def test_dedupe_content_skips_links_of_mirrored_pages() -> None:
    from trio_crawler.testing import Site, html_page, loopback_settings, open_site_server

    mirror = html_page('<a href="/x">x</a>')
    site = Site({"/": html_page('<a href="/m1">1</a><a href="/m2">2</a>'), "/m1": mirror})
    site.add("/m2", mirror)
    site.add("/x", html_page("x"))
    async with open_site_server(site) as server:
        settings = loopback_settings(server, dedupe_content=True, concurrency=1, obey_robots=False)
        with trio.fail_after(20):
            stats = await crawl(GenericSpider(start_urls=(server.url("/"),)), settings)
    assert stats.pages_ok == 4
    assert stats.dropped["duplicate_content"] == 1


async def test_session_ids_in_paths_stay_finite_with_default_guards() -> None:
    import secrets

    from trio_crawler.testing import (
        RecordedRequest,
        Response,
        Site,
        html_page,
        loopback_settings,
        open_site_server,
    )

    def session_page(_: RecordedRequest) -> Response:
        # an id segment for certain (16+ letters and digits, 4 digits, a letter): a bare
        # token_hex(12) is all digits once in about 80,000, and not an id then (one page more)
        token = "a1b2c3d4" + secrets.token_hex(8)
        return html_page(f'<a href="/s/{token}/page">next</a><a href="/about">about</a>')

    site = Site({"/about": html_page("about")}, default=session_page)
    async with open_site_server(site) as server:
        settings = loopback_settings(server, obey_robots=False)
        with trio.fail_after(60):
            stats = await crawl(GenericSpider(start_urls=(server.url("/"),)), settings)
    assert stats.stop_reason == "finished"
    assert stats.dropped["trap_path_ids"] >= 1
    assert stats.pages_ok <= Settings().max_query_variants + 2


async def test_a_name_that_does_not_resolve_fails_fast_as_dns() -> None:
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        raise OSError("Name or service not known")

    spider = GenericSpider(start_urls=("http://nowhere.invalid/", "http://nowhere.invalid/b"))
    items = []
    with trio.fail_after(10):
        from trio_crawler import open_crawler

        async with open_crawler(
            spider, Settings(per_host_delay=0), resolver=Resolver(resolve)
        ) as crawler:
            items = [item async for item in crawler.items()]
    stats = crawler.statistics()
    assert {item.error_kind for item in items} == {"dns"}
    assert stats.retries == 0 and stats.failures == {"dns": 2}
    assert calls == ["nowhere.invalid"]  # one query: the failure is cached
