"""The store contract (``trio_crawler._store.base``), one suite over every backend: memory,
SQLite and Redis. A new backend joins by adding its name to ``BACKENDS`` and a branch to
:func:`location`.

Times: the memory and SQLite stores schedule on Trio's clock (the ``now`` given to
``claim``); Redis on its own clock. So delays here are long (seconds) and only ever checked
from below: a request is *not* handed out before its host may start one.

Commits: a store may commit a completed page later (Redis sends completions in groups); what
the contract promises holds once :meth:`~CrawlStore.flush` returns, so the tests flush before
they look.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_crawler import Settings, StateMismatch
from trio_crawler._export import open_exporter
from trio_crawler._graph import REFERRERS_KEPT, MemoryCrawlGraph, PageGraph
from trio_crawler._spider import Request
from trio_crawler._stats import Counters
from trio_crawler._store import (
    CrawlStore,
    NewRequest,
    export_items,
    open_store,
    read_status,
)
from trio_crawler._store.sqlite_db import read_graph

BACKENDS = ["memory", "sqlite", "redis"]
LIMIT = 20  # seconds, around every test
META = {"spider": "tests.Contract", "seeds": ["http://a.test/"], "scope": "host"}


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(location, crawl id) of a fresh store of each backend."""
    if request.param == "memory":
        return "memory:", None
    if request.param == "sqlite":
        return str(tmp_path / "crawl.db"), None
    server = request.getfixturevalue("redis_server")
    return server.url, f"contract-{request.node.name.replace('[', '-').rstrip(']')}"


def new(url: str, fp: int, host: str = "http://a.test:80", **kw: Any) -> NewRequest:
    return NewRequest(Request(url=url, **kw), fp, host)


@asynccontextmanager
async def opened(
    where: tuple[str, str | None],
    settings: Settings | None = None,
    *,
    meta: dict[str, Any] | None = None,
    counters: Counters | None = None,
    scope: list[str] | None = None,
) -> AsyncIterator[tuple[CrawlStore, bool]]:
    store = open_store(where[0], settings or Settings(), crawl_id=where[1])
    if scope is not None:
        store.watch_scope(scope.append)
    async with store.open(meta or META, counters or Counters()) as resumed:
        yield store, resumed


async def test_add_dedupes_and_counts(location: tuple[str, str | None]) -> None:
    with trio.fail_after(LIMIT):
        async with opened(location) as (store, resumed):
            assert not resumed
            assert await store.add([new("http://a.test/1", 1), new("http://a.test/2", 2)]) == 2
            assert await store.add([new("http://a.test/1", 1), new("http://a.test/3", 3)]) == 1
            # dont_filter: queued whatever the seen set says
            assert await store.add([new("http://a.test/1", 1, dont_filter=True)]) == 1
            assert store.outstanding() == 4 and store.queued() == 4
            assert await store.mark_seen([2, 99]) == [False, True]
            assert await store.add([new("http://a.test/99", 99)]) == 0


async def test_claim_holds_per_host_concurrency(location: tuple[str, str | None]) -> None:
    settings = Settings(per_host_concurrency=2, per_host_delay=0)
    with trio.fail_after(LIMIT):
        async with opened(location, settings) as (store, _):
            await store.add([new(f"http://a.test/{i}", i) for i in range(5)])
            await store.add([new("http://b.test/0", 100, host="http://b.test:80")])
            claims = await store.claim(trio.current_time(), 10)
            hosts = sorted(c.host for c in claims)
            assert hosts == ["http://a.test:80", "http://a.test:80", "http://b.test:80"]
            assert store.in_flight() == 3
            assert await store.claim(trio.current_time(), 10) == []  # a.test is full
            first = next(c for c in claims if c.host == "http://a.test:80")
            await store.complete(first, [], [])
            await store.flush()
            more = await store.claim(trio.current_time(), 10)
            assert [c.host for c in more] == ["http://a.test:80"]
            assert store.outstanding() == 5  # 6 queued, 1 completed


async def test_claim_holds_per_host_delay_and_pauses(location: tuple[str, str | None]) -> None:
    settings = Settings(per_host_concurrency=4, per_host_delay=30)
    with trio.fail_after(LIMIT):
        async with opened(location, settings) as (store, _):
            await store.add([new(f"http://a.test/{i}", i) for i in range(3)])
            await store.add([new("http://b.test/0", 10, host="http://b.test:80")])
            first = await store.claim(trio.current_time(), 10)
            assert sorted(c.host for c in first) == ["http://a.test:80", "http://b.test:80"]
            assert await store.claim(trio.current_time(), 10) == []  # a.test waits 30 s
            ready = store.next_ready_time()
            assert ready is not None and ready > trio.current_time() + 20
            # a host's delay can be changed (Crawl-delay, the adaptive throttle)...
            await store.set_host_delay("http://a.test:80", 0)
            for claim in first:
                await store.complete(claim, [], [])
            await store.flush()
            await store.add([new("http://b.test/1", 11, host="http://b.test:80")])
            # ... and a host can be paused (429, Retry-After): b.test must wait 30 s while a
            # new host goes ahead
            await store.pause_host("http://b.test:80", trio.current_time() + 30)
            await store.add([new("http://c.test/0", 20, host="http://c.test:80")])
            claims = await store.claim(trio.current_time(), 10)
            assert [c.host for c in claims] == ["http://c.test:80"]


async def test_a_started_host_goes_ahead_of_new_ones(location: tuple[str, str | None]) -> None:
    """A broad crawl finishes hosts while their connections are open: a host already started
    is served before new hosts that became ready meanwhile (for up to a few minutes)."""
    settings = Settings(per_host_concurrency=1, per_host_delay=0)
    with trio.fail_after(LIMIT):
        async with opened(location, settings) as (store, _):
            await store.add([new(f"http://a.test/{i}", i) for i in range(3)])
            [first] = await store.claim(trio.current_time(), 1)
            assert first.host == "http://a.test:80"
            hosts = [f"http://n{i}.test:80" for i in range(5)]
            await store.add([new(f"{h[:-3]}/", 100 + i, host=h) for i, h in enumerate(hosts)])
            await store.complete(first, [], [])
            await store.flush()
            claims = await store.claim(trio.current_time(), 1)
            assert [c.host for c in claims] == ["http://a.test:80"]


async def test_retry_waits_and_keeps_the_count(location: tuple[str, str | None]) -> None:
    settings = Settings(per_host_delay=0)
    with trio.fail_after(LIMIT):
        async with opened(location, settings) as (store, _):
            await store.add([new("http://a.test/1", 1)])
            (claim,) = await store.claim(trio.current_time(), 1)
            again = Request(url="http://a.test/1", retries=1)
            await store.retry(claim, again, trio.current_time() + 60)
            await store.flush()
            assert store.outstanding() == 1 and store.in_flight() == 0
            assert await store.claim(trio.current_time(), 1) == []


async def test_complete_commits_items_to_the_outputs(
    location: tuple[str, str | None], tmp_path: Path
) -> None:
    """The store is the outputs' commit sink: a completed page's items reach the files by the
    time the store has flushed."""
    out = tmp_path / "items.jsonl"
    with trio.fail_after(LIMIT):
        async with opened(location, Settings(per_host_delay=0)) as (store, _):
            exporter = open_exporter(str(out))
            store.attach_outputs([exporter])
            await store.add([new("http://a.test/1", 1)])
            (claim,) = await store.claim(trio.current_time(), 1)
            links = [new("http://a.test/2", 2, depth=1, referrer="http://a.test/1")]
            await store.complete(claim, links, [{"url": "http://a.test/1"}])
            await store.flush()
            assert [json.loads(x) for x in out.read_text().splitlines()] == [
                {"url": "http://a.test/1"}
            ]
            assert store.outstanding() == 1
        exporter.close()


async def test_scope_additions_reach_the_listener(location: tuple[str, str | None]) -> None:
    heard: list[str] = []
    with trio.fail_after(LIMIT):
        async with opened(location, scope=heard) as (store, _):
            await store.add_scope("https://www.a.test/")
            await store.add_scope("https://www.a.test/")  # once
            assert heard == ["https://www.a.test/"]
            assert store.scope_additions() == ["https://www.a.test/"]


async def test_page_budget_per_host(location: tuple[str, str | None]) -> None:
    settings = Settings(max_pages_per_host=2)
    with trio.fail_after(LIMIT):
        async with opened(location, settings) as (store, _):
            added = await store.add([new(f"http://a.test/{i}", i) for i in range(3)])
            assert added == 2 and store.budget_refusals() == 1


# ----------------------------------------------------------------------- durable stores
@pytest.fixture
def durable(location: tuple[str, str | None]) -> tuple[str, str | None]:
    if location[0] == "memory:":
        pytest.skip("the memory store does not outlive its process")
    return location


async def test_resume_keeps_the_frontier_counts_and_scope(
    durable: tuple[str, str | None],
) -> None:
    settings = Settings(per_host_delay=0)
    with trio.fail_after(LIMIT):
        counters = Counters()
        async with opened(durable, settings, counters=counters) as (store, _):
            await store.add([new(f"http://a.test/{i}", i) for i in range(3)])
            claims = await store.claim(trio.current_time(), 2)
            counters.pages_ok += 1
            await store.complete(claims[0], [], [{"n": 1}])
            await store.add_scope("https://www.a.test/")
            # claims[1] is in flight when the crawl stops: it is fetched again on resume
        counters = Counters()
        heard: list[str] = []
        async with opened(durable, settings, counters=counters, scope=heard) as (store, resumed):
            assert resumed
            assert heard == ["https://www.a.test/"]
            if durable[1] is None:
                # one process' crawl: its figures go on; a Redis crawl's live in Redis, and
                # each worker's counters are its own
                assert counters.pages_ok == 1
            assert store.outstanding() == 2
            assert await store.add([new("http://a.test/0", 0)]) == 0  # done, still seen
            # the lease of a worker that stopped may take its time to return (Redis)
            while len(got := await store.claim(trio.current_time(), 5)) < 1:
                await store.wait_changed(trio.current_time() + 0.05)
            assert {c.fingerprint for c in got} <= {1, 2}


async def test_resume_with_another_crawl_is_refused(durable: tuple[str, str | None]) -> None:
    with trio.fail_after(LIMIT):
        async with opened(durable) as (store, _):
            await store.add([new("http://a.test/1", 1)])
        with pytest.raises(StateMismatch):
            async with opened(durable, meta={**META, "seeds": ["http://other.test/"]}):
                pass


async def test_status_and_export_by_location(
    durable: tuple[str, str | None], tmp_path: Path
) -> None:
    where, crawl_id = durable
    with trio.fail_after(LIMIT):
        async with opened(durable, Settings(per_host_delay=0)) as (store, _):
            await store.add([new("http://a.test/1", 1), new("http://a.test/2", 2)])
            (claim, *_) = await store.claim(trio.current_time(), 1)
            await store.complete(claim, [], [{"url": claim.request.url}])
            await store.end("max_pages")
        status = await read_status(where, crawl_id=crawl_id)
        assert status.crawl["seeds"] == META["seeds"]
        assert (status.done, status.items) == (1, 1)
        assert status.queued + status.in_flight == 1
        if crawl_id is None:  # Redis keeps "finished" for the crawl, not a worker's stop
            assert status.stop_reason == "max_pages"
        out = tmp_path / "out.jsonl"
        assert await export_items(where, str(out), crawl_id=crawl_id) == 1
        assert json.loads(out.read_text())["url"] in ("http://a.test/1", "http://a.test/2")


# ----------------------------------------------------------------------- the link graph
BROKEN = "http://a.test/broken"


def page_graph(i: int) -> PageGraph:
    """Page i: links to BROKEN (its own text), to the home page, and once to page i + 1;
    meets other.test twice and b.test once; page 3 says noindex."""
    return PageGraph(
        source=f"http://a.test/p{i}",
        links=(
            (BROKEN, f"broken from p{i}"),
            ("http://a.test/", ""),
            (f"http://a.test/p{i + 1}", "next"),
        ),
        out_of_scope=(("http://other.test/", 2), (f"http://b.test/{i % 3}", 1)),
        noindex="noindex, nofollow" if i == 3 else None,
    )


async def answers(
    where: tuple[str, str | None], store: CrawlStore, urls: list[str]
) -> tuple[Any, Any, Any] | None:
    """The backend's link graph answers (referrers of ``urls``, out of scope, meta robots),
    read as the report reads them; None when it keeps no graph."""
    location, crawl_id = where
    if crawl_id is not None:
        from trio_crawler._store import redis_conn

        if (await redis_conn.read_status(location, crawl_id))["link_graph"] is None:
            return None
        return (
            await redis_conn.read_referrers(location, crawl_id, urls),
            await redis_conn.read_out_of_scope(location, crawl_id, 10),
            await redis_conn.read_meta_robots(location, crawl_id, 10),
        )
    graph = store.link_graph()
    if graph is None:
        return None
    return graph.referrers(urls), graph.out_of_scope(10), graph.meta_robots(10)


async def test_link_graph_commits_with_the_page_bounded(location: tuple[str, str | None]) -> None:
    """Each page's graph facts commit with it: the first 20 referrers of a URL with their
    text and every page counted, out-of-scope URLs with the times met, noindex pages; the
    answers are those of the reference (MemoryCrawlGraph) fed the same pages."""
    pages = 25
    reference = MemoryCrawlGraph()
    settings = Settings(per_host_delay=0, per_host_concurrency=pages, link_graph=True)
    with trio.fail_after(LIMIT):
        async with opened(location, settings) as (store, _):
            await store.add([new(f"http://a.test/p{i}", 100 + i) for i in range(pages)])
            claims: list[Any] = []
            while len(claims) < pages:
                claims += await store.claim(trio.current_time(), pages)
            for claim in sorted(claims, key=lambda c: c.fingerprint):
                graph = page_graph(claim.fingerprint - 100)
                await store.complete(claim, [], [], graph=graph)
                reference.add_page(graph)
            await store.flush()
            urls = [BROKEN, "http://a.test/", "http://a.test/p5", "http://a.test/never"]
            found = await answers(location, store, urls)
    assert found is not None
    referrers, out_of_scope, meta_robots = found
    assert referrers == reference.referrers(urls)
    broken = referrers[BROKEN]
    assert broken.total == pages and len(broken.links) == REFERRERS_KEPT
    assert broken.links[0] == ("http://a.test/p0", "broken from p0")
    assert broken.links[-1] == ("http://a.test/p19", "broken from p19")
    assert referrers["http://a.test/p5"].links == (("http://a.test/p4", "next"),)
    assert "http://a.test/never" not in referrers
    assert out_of_scope == reference.out_of_scope(10)
    assert out_of_scope.top[0] == ("http://other.test/", 2 * pages)
    assert (out_of_scope.distinct, out_of_scope.total) == (4, 3 * pages)
    assert meta_robots == reference.meta_robots(10)
    assert meta_robots.pages == (("http://a.test/p3", "noindex, nofollow"),)


async def test_no_link_graph_without_the_setting(location: tuple[str, str | None]) -> None:
    with trio.fail_after(LIMIT):
        async with opened(location, Settings(per_host_delay=0)) as (store, _):
            await store.add([new("http://a.test/1", 1)])
            (claim,) = await store.claim(trio.current_time(), 1)
            await store.complete(claim, [], [])
            await store.flush()
            assert await answers(location, store, [BROKEN]) is None


async def graph_state(where: tuple[str, str | None]) -> str | None:
    """``all`` / ``partial`` / None: how much of the crawl the stored graph covers."""
    location, crawl_id = where
    if crawl_id is not None:
        from trio_crawler._store import redis_conn

        mark: str | None = (await redis_conn.read_status(location, crawl_id))["link_graph"]
        return mark
    graph = read_graph(location)
    return None if graph is None else ("partial" if graph.partial else "all")


async def test_a_graph_kept_by_some_runs_only_says_so(durable: tuple[str, str | None]) -> None:
    """A crawl resumed with the link graph after pages were done without it keeps a partial
    graph (its report says so); one run with the graph throughout keeps all of it."""
    with trio.fail_after(LIMIT):
        counters = Counters()
        async with opened(durable, Settings(per_host_delay=0), counters=counters) as (store, _):
            await store.add([new(f"http://a.test/{i}", i) for i in range(3)])
            (claim, *_) = await store.claim(trio.current_time(), 1)
            counters.pages_ok += 1
            await store.complete(claim, [], [])
        assert await graph_state(durable) is None
        settings = Settings(per_host_delay=0, link_graph=True)
        async with opened(durable, settings, counters=Counters()) as (store, resumed):
            assert resumed
        assert await graph_state(durable) == "partial"


async def test_a_run_without_the_graph_makes_it_partial(durable: tuple[str, str | None]) -> None:
    with trio.fail_after(LIMIT):
        settings = Settings(per_host_delay=0, link_graph=True)
        async with opened(durable, settings) as (store, _):
            await store.add([new(f"http://a.test/{i}", i) for i in range(3)])
        assert await graph_state(durable) == "all"
        async with opened(durable, Settings(per_host_delay=0)) as (store, _):
            while not (claims := await store.claim(trio.current_time(), 1)):
                await store.wait_changed(trio.current_time() + 0.05)
            await store.complete(claims[0], [], [])
            await store.flush()
        assert await graph_state(durable) == "partial"
