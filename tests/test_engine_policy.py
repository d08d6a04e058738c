"""Engine policies timed on Trio's autojump clock over an in-memory transport (no sockets)."""

from __future__ import annotations

import itertools
from collections import defaultdict

import httpx
import trio
import trio.testing

from trio_crawler import Settings, crawl
from trio_crawler._fetcher import Resolver
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
