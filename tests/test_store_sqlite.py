"""The SQLite store on its own: dedupe, windows and refills, counting, files it must refuse."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_crawler import Request, StateMismatch, StoreError, crawl
from trio_crawler._stats import Counters
from trio_crawler._store import CrawlStore, MemoryStore, NewRequest, SqliteStore
from trio_crawler._store.sqlite_db import Bloom as _Bloom
from trio_crawler._store.sqlite_db import read_status
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import loopback_settings, open_site_server, site_from_links

META = {"spider": "x.Spider", "seeds": ["http://a.test/"], "scope": "host"}


def req(host: str, i: int, priority: int = 0) -> NewRequest:
    url = f"{host}/p{i}"
    return NewRequest(Request(url=url, priority=priority), hash(url) % (1 << 64), host)


@asynccontextmanager
async def opened(
    store: CrawlStore, meta: dict[str, Any] | None = None, counters: Counters | None = None
) -> AsyncIterator[bool]:
    with trio.fail_after(10):
        async with store.open(meta or META, counters or Counters()) as resumed:
            yield resumed


def sqlite_store(tmp_path: Path, **kwargs: Any) -> SqliteStore:
    return SqliteStore(tmp_path / "crawl.db", per_host_delay=0.0, **kwargs)


STORES: dict[str, Callable[[Path], CrawlStore]] = {
    "memory": lambda _: MemoryStore(per_host_delay=0.0),
    "sqlite": lambda tmp: sqlite_store(tmp),
}


@pytest.mark.parametrize("kind", sorted(STORES))
async def test_dedupe_and_exact_counts(kind: str, tmp_path: Path) -> None:
    store = STORES[kind](tmp_path)
    async with opened(store):
        a = [req("http://a.test", i) for i in range(5)]
        assert await store.add(a) == 5
        assert await store.add(a[:3]) == 0
        assert store.outstanding() == 5
        claims = await store.claim(trio.current_time(), 10)
        assert len(claims) == 2  # per-host concurrency 2
        assert store.outstanding() == 5 and store.in_flight() == 2
        queued = await store.complete(claims[0], [a[4], req("http://a.test", 9)])
        assert queued == 1
        assert store.outstanding() == 5
        await store.retry(claims[1], claims[1].request, trio.current_time() + 0.05)
        assert store.outstanding() == 5
        done = 1
        with trio.fail_after(5):
            while store.outstanding():
                for claim in await store.claim(trio.current_time(), 10):
                    await store.complete(claim, [])
                    done += 1
                if store.outstanding():
                    await store.wait_changed(store.next_ready_time())
        assert done == 6


@pytest.mark.parametrize("kind", sorted(STORES))
async def test_small_host_not_starved_by_big_one(kind: str, tmp_path: Path) -> None:
    store = (
        sqlite_store(tmp_path, window=4, per_host_concurrency=1)
        if kind == "sqlite"
        else MemoryStore(per_host_delay=0.0, per_host_concurrency=1)
    )
    async with opened(store):
        await store.add([req("http://big.test", i) for i in range(200)])
        await store.add([req("http://small.test", i) for i in range(3)])
        order: list[str] = []
        with trio.fail_after(5):
            while store.outstanding():
                claims = await store.claim(trio.current_time(), 10)
                for claim in claims:
                    order.append(claim.host)
                    await store.complete(claim, [])
                if not claims:
                    await store.wait_changed(store.next_ready_time())
        assert len(order) == 203
        assert order[:8].count("http://small.test") == 3


async def test_window_is_bounded_and_refilled_in_priority_order(tmp_path: Path) -> None:
    store = sqlite_store(tmp_path, window=8, per_host_concurrency=1)
    async with opened(store):
        await store.add([req("http://a.test", i, priority=i % 3) for i in range(100)])
        await store.flush()
        assert store.statistics()["window"] <= 8
        assert store.outstanding() == 100
        seen: list[int] = []
        with trio.fail_after(5):
            while store.outstanding():
                claims = await store.claim(trio.current_time(), 100)
                assert store.statistics()["window"] <= 8
                for claim in claims:
                    seen.append(claim.request.priority)
                    await store.complete(claim, [])
                if not claims:
                    await store.wait_changed(store.next_ready_time())
        assert len(seen) == 100
        # past the first window (taken in arrival order), refills come highest priority first
        rest = seen[8:]
        assert max(i for i, p in enumerate(rest) if p == 2) < min(
            i for i, p in enumerate(rest) if p == 0
        )


async def test_seen_set_survives_reopen_and_in_flight_goes_back(tmp_path: Path) -> None:
    counters = Counters(pages_ok=3)
    store = sqlite_store(tmp_path)
    reqs = [req("http://a.test", i) for i in range(10)]
    async with opened(store, counters=counters) as resumed:
        assert not resumed
        await store.add(reqs)
        claims = await store.claim(trio.current_time(), 2)
        await store.complete(claims[0], [], [{"url": claims[0].request.url}])
        counters.status_classes["2xx"] += 1
    # claims[1] was in flight at the stop: fetched again on resume
    store = sqlite_store(tmp_path)
    counters = Counters()
    async with opened(store, counters=counters) as resumed:
        assert resumed
        assert counters.pages_ok == 3 and counters.status_classes == {"2xx": 1}
        assert store.outstanding() == 9
        assert await store.add(reqs) == 0  # everything already seen
        assert await store.mark_seen([reqs[0].fingerprint, 12345]) == [False, True]
    status = read_status(str(tmp_path / "crawl.db"))
    assert status.states == {"done": 1, "queued": 9, "seen": 1} and status.items == 1


async def test_many_links_dedupe_across_commits(tmp_path: Path) -> None:
    """The Bloom filter and the database answer for fingerprints that left the recent cache."""
    store = sqlite_store(tmp_path, cache_size=64, batch_pages=5)
    async with opened(store):
        first = [req("http://a.test", i) for i in range(2000)]
        assert await store.add(first) == 2000
        await store.flush()
        mixed = [req("http://a.test", i) for i in range(1500, 2500)]
        assert await store.add(mixed) == 500
        assert store.outstanding() == 2500


def test_bloom_has_no_false_negatives() -> None:
    bloom = _Bloom(1000)
    # fingerprints made the same way in every process (hash() of a str is salted per process,
    # so the false positives below would change from run to run)
    values = [_fp(f"v{i}") for i in range(5000)]  # grows past its capacity
    for v in values:
        bloom.add(v)
    assert all(v in bloom for v in values)
    others = [_fp(f"w{i}") for i in range(5000)]
    assert sum(v in bloom for v in others) < 100


def _fp(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


async def test_changed_identity_is_refused_changed_limits_are_not(tmp_path: Path) -> None:
    async with opened(sqlite_store(tmp_path)):
        pass
    with pytest.raises(StateMismatch, match="other seeds"):
        async with opened(sqlite_store(tmp_path), {**META, "seeds": ["http://b.test/"]}):
            pass
    with pytest.raises(StateMismatch, match="other scope"):
        async with opened(sqlite_store(tmp_path), {**META, "scope": "domain"}):
            pass
    store = SqliteStore(tmp_path / "crawl.db", per_host_concurrency=7, per_host_delay=3.0)
    async with opened(store) as resumed:
        assert resumed


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("hello, not a database\n" * 10), "not a SQLite database"),
        (lambda p: _other_sqlite(p), "another kind of SQLite file"),
        (lambda p: _newer_format(p), "newer trio-crawler"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000), "not a trio-crawler"),
    ],
)
async def test_foreign_files_are_refused_clearly(
    tmp_path: Path, make: Callable[[Path], Any], message: str
) -> None:
    make(tmp_path / "crawl.db")
    with pytest.raises(StoreError, match=message) as info:
        async with opened(sqlite_store(tmp_path)):
            pass
    assert "\n" not in str(info.value)


def _other_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    conn.close()


def _newer_format(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        for table in ("meta", "frontier", "hosts", "items", "outputs"):
            conn.execute(f"CREATE TABLE {table} (key TEXT, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('format', '99')")
    conn.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
async def test_read_only_file_is_a_clear_error(tmp_path: Path) -> None:
    async with opened(sqlite_store(tmp_path)):
        pass
    for name in os.listdir(tmp_path):
        os.chmod(tmp_path / name, 0o444)
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(StoreError, match=r"read-only|cannot open"):
            async with opened(sqlite_store(tmp_path)):
                pass
    finally:
        os.chmod(tmp_path, 0o755)


async def test_full_disk_stops_the_crawl_and_keeps_what_was_committed(tmp_path: Path) -> None:
    """A full disk (SQLite's max_page_count stands in for it) is one StoreError; what was
    committed before stays readable and resumable."""
    pages = {f"/p{i}": [f"/p{i}/{j}" for j in range(30)] for i in range(40)}
    site = site_from_links({"/": list(pages), **pages})
    site.default = site_from_links({"/x": []}).routes["/x"]
    path = tmp_path / "crawl.db"
    async with open_site_server(site) as server:
        store = SqliteStore(path, per_host_delay=0.0, per_host_concurrency=8, batch_pages=20)
        spider = GenericSpider(start_urls=(server.url("/"),))
        settings = loopback_settings(server, concurrency=8, per_host_concurrency=8)
        original = store._writer.commit

        def commit_then_fill_up(*args: Any, **kwargs: Any) -> Any:
            # the disk fills right after the first commit that holds an item (a page done):
            # what it holds is certainly kept, and the rest of the crawl (about 200 pages of
            # SQLite) certainly does not fit in 20 more
            result = original(*args, **kwargs)
            conn = store._writer.conn
            assert conn is not None
            if (
                conn.execute("PRAGMA max_page_count").fetchone()[0] > 1 << 20
                and conn.execute("SELECT count(*) FROM items").fetchone()[0]
            ):
                used = conn.execute("PRAGMA page_count").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count = {used + 20}")
            return result

        store._writer.commit = commit_then_fill_up  # type: ignore[method-assign]
        with trio.fail_after(20), pytest.raises(BaseExceptionGroup) as info:
            await crawl(spider, settings, store=store)
    errors = info.value.split(StoreError)[0]
    assert errors is not None
    assert "disk is full" in str(errors.exceptions[0])
    status = read_status(str(path))
    assert status.states.get("done", 0) >= 1
    assert status.items == status.states["done"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT data FROM items").fetchall()
    conn.close()
    urls = [json.loads(data)["url"] for (data,) in rows]
    assert len(urls) == len(set(urls))
