"""The Redis store (issue 9): many worker processes on one crawl, each page committed exactly
once, politeness held across workers, a worker killed with SIGKILL, Redis restarted mid-crawl,
one-line errors.

These tests start their own ``redis-server`` (on a free loopback port, in a temporary
directory, with a password) and stop it by its PID. Without the binary they are skipped,
unless ``TRIO_CRAWLER_REQUIRE_REDIS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio
from redis_server import PASSWORD, RedisServer, free_port
from timing import assert_spaced, cross_process_slack

from trio_crawler import Settings, StoreError
from trio_crawler._spider import Request
from trio_crawler._stats import Counters
from trio_crawler._store import NewRequest, RedisStore
from trio_crawler._store.redis_conn import read_status
from trio_crawler.testing import RecordedRequest, Response, Site, html_page
from trio_crawler.testing import open_site_server as open_server


# --------------------------------------------------------------------------- sites
def tree_site(pages: int, *, delay: float = 0.0) -> Site:
    """Page i links to 2i+1 and 2i+2 (and back to the root): ``pages`` pages in all, each
    answered ``delay`` seconds late."""

    def handler(request: RecordedRequest) -> Response:
        i = int(request.path.rsplit("/", 1)[1] or 0)
        links = [f"/p/{j}" for j in (2 * i + 1, 2 * i + 2) if j < pages] + ["/p/0"]
        page = html_page("".join(f'<a href="{href}">x</a>' for href in links))
        return dataclasses.replace(page, delay=delay)

    site = Site({"/robots.txt": Response(status=404)})
    site.default = handler
    return site


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trio_crawler", *args]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout)


async def start(args: list[str]) -> trio.Process:
    return await trio.lowlevel.open_process(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def finish(procs: list[trio.Process], seconds: float) -> list[int]:
    """Wait for every process to end by itself (bounded); kill only our own on a timeout."""
    try:
        with trio.fail_after(seconds):
            for proc in procs:
                await proc.wait()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
    codes = []
    for proc in procs:
        if proc.returncode != 0 and proc.stderr is not None:
            err = await proc.stderr.receive_some(100000)
            print(err.decode(errors="replace"))
        codes.append(proc.returncode)
    return codes


def exported(redis: RedisServer, crawl_id: str, out: Path) -> list[str]:
    result = run_cli("export", redis.url, "--crawl-id", crawl_id, "-o", str(out))
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["url"] for line in out.read_text().splitlines()]


def crawl_flags(redis: RedisServer, crawl_id: str, *extra: str) -> list[str]:
    return ["--store", redis.url, "--crawl-id", crawl_id, "-q", "-c", "4", *extra]


async def wait_for_items(
    redis: RedisServer, crawl_id: str, n: int, seconds: float, workers: int = 1
) -> None:
    """Until the crawl exists in Redis with at least ``n`` items and ``workers`` workers."""
    with trio.fail_after(seconds):
        while True:
            try:
                st = await read_status(redis.url, crawl_id)
            except StoreError:
                st = None  # not created yet
            if st is not None and st["items"] >= n and len(st["workers"]) >= workers:
                return
            await trio.sleep(0.05)  # polling other processes' progress through Redis


# --------------------------------------------------------------------------- the cluster
async def test_three_workers_and_a_seeder_every_page_once_and_polite(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # a delay long enough that a worker process descheduled for a while on a loaded 2-core
    # machine cannot make two arrivals look closer than half of it (the cross-process slack)
    delay, pages = 0.3, 20
    async with (
        open_server(tree_site(pages)) as a,
        open_server(tree_site(pages)) as b,
        open_server(tree_site(pages)) as c,
    ):
        servers = (a, b, c)
        flags = crawl_flags(
            redis_server, "three", "--delay", str(delay), "--per-host-concurrency", "2"
        )
        seeder = await start(cli("crawl", *(s.url("/p/0") for s in servers), *flags))
        await wait_for_items(redis_server, "three", 1, 20)
        workers = [await start(cli("worker", *flags)) for _ in range(3)]
        codes = await finish([seeder, *workers], 60)
        starts = {s.port: [r.time for r in s.requests] for s in servers}
        want = {s.url(f"/p/{i}") for s in servers for i in range(pages)}
    assert codes == [0, 0, 0, 0]
    urls = exported(redis_server, "three", tmp_path / "items.jsonl")
    assert len(urls) == len(set(urls)), "a page recorded twice"
    assert set(urls) == want
    st = await read_status(redis_server.url, "three")
    assert st["stop_reason"] == "finished" and st["outstanding"] == 0
    assert st["stats"]["pages_done"] == len(want)
    # starts per host across all workers: never closer than the delay. Claims are spaced in
    # Redis; the server records arrivals from other processes (see the timing module)
    for times in starts.values():
        assert_spaced(times, delay, cross_process_slack(delay))


async def test_a_worker_killed_with_sigkill_loses_nothing(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # Every page takes 20 ms and the host allows 4 requests at once, cluster-wide: the 450
    # pages left when the victim is killed need at least 450 / 4 * 0.02 = 2.25 s more, so
    # the victim is certainly still working (and holding leases) when it is killed.
    pages = 600
    async with open_server(tree_site(pages, delay=0.02)) as server:
        flags = crawl_flags(
            redis_server, "kill", "--delay", "0", "--per-host-concurrency", "4", "--lease", "1.5"
        )
        seeder = await start(cli("crawl", server.url("/p/0"), *flags))
        await wait_for_items(redis_server, "kill", 0, 20)
        victim = await start(cli("worker", *flags))
        other = await start(cli("worker", *flags))
        await wait_for_items(redis_server, "kill", 150, 60, workers=3)
        assert victim.returncode is None, "the victim ended before it could be killed"
        victim.kill()  # SIGKILL: its leases expire and go back to the frontier
        codes = await finish([seeder, other], 90)
        await victim.wait()
        want = {server.url(f"/p/{i}") for i in range(pages)}
    assert victim.returncode == -signal.SIGKILL
    assert codes == [0, 0]
    urls = exported(redis_server, "kill", tmp_path / "items.jsonl")
    assert len(urls) == len(set(urls)), "a page recorded twice"
    assert set(urls) == want


async def test_redis_restarted_mid_crawl(redis_server: RedisServer, tmp_path: Path) -> None:
    pages = 600
    async with open_server(tree_site(pages)) as server:
        flags = crawl_flags(
            redis_server, "restart", "--delay", "0", "--per-host-concurrency", "4", "--lease", "2"
        )
        seeder = await start(cli("crawl", server.url("/p/0"), *flags))
        await wait_for_items(redis_server, "restart", 0, 20)
        worker = await start(cli("worker", *flags))
        await wait_for_items(redis_server, "restart", 150, 30, workers=2)
        redis_server.stop(signal.SIGKILL)  # the last second of the AOF may be lost
        await trio.sleep(1.0)
        redis_server.start()  # same port, same AOF directory
        codes = await finish([seeder, worker], 60)
        want = {server.url(f"/p/{i}") for i in range(pages)}
    assert codes == [0, 0]
    urls = exported(redis_server, "restart", tmp_path / "items.jsonl")
    assert len(urls) == len(set(urls)), "a page recorded twice"
    assert set(urls) == want


# --------------------------------------------------------------------------- bad input
def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode in (1, 2), (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("trio-crawler: error:"), result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_unreachable_redis_is_one_line() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    for args in (
        ("crawl", "http://127.0.0.1:9/", "--store", url, "--crawl-id", "x", "-q"),
        ("worker", "--store", url, "--crawl-id", "x", "-q"),
        ("export", url, "--crawl-id", "x", "-o", "-"),
    ):
        assert_one_line(run_cli(*args), "cannot reach Redis")


async def test_bad_password_other_settings_and_unknown_crawl_are_one_line(
    redis_server: RedisServer,
) -> None:
    site = Site({"/": html_page("<a href='/a'>a</a>"), "/a": html_page("a")})
    async with open_server(site) as server:
        wrong = redis_server.url.replace(PASSWORD, "wrong")
        result = await trio.to_thread.run_sync(
            lambda: run_cli("crawl", server.url("/"), "--store", wrong, "--crawl-id", "x")
        )
        assert_one_line(result, "refused the credentials")
        assert "wrong" not in result.stderr  # the password is not echoed
        flags = ["--store", redis_server.url, "--crawl-id", "same", "-q", "--delay", "0"]
        done = await trio.to_thread.run_sync(lambda: run_cli("crawl", server.url("/"), *flags))
        assert done.returncode == 0, done.stderr
        other = await trio.to_thread.run_sync(lambda: run_cli("crawl", server.url("/a"), *flags))
        assert_one_line(other, "other seeds")
        scope = await trio.to_thread.run_sync(
            lambda: run_cli("crawl", server.url("/"), *flags, "--scope", "domain")
        )
        assert_one_line(scope, "other scope")
        again = await trio.to_thread.run_sync(lambda: run_cli("crawl", server.url("/"), *flags))
        assert again.returncode == 0, again.stderr  # joining a finished crawl: nothing to do
        requests = len(server.requests)
    assert requests == 3  # robots.txt, /, /a
    unknown = await trio.to_thread.run_sync(
        lambda: run_cli("worker", "--store", redis_server.url, "--crawl-id", "nope")
    )
    assert_one_line(unknown, "no crawl 'nope'")
    status = await trio.to_thread.run_sync(
        lambda: run_cli("status", redis_server.url, "--crawl-id", "same")
    )
    assert status.returncode == 0 and "finished" in status.stdout, status.stderr


# --------------------------------------------------------------------------- the store itself
def new_request(url: str, fp: int, host: str = "http://h") -> NewRequest:
    return NewRequest(Request(url=url), fp, host)


async def claim_now(store: RedisStore) -> list[Any]:
    """Ask Redis now (the engine would after wait_changed; this store has not waited)."""
    store._ready_at = -math.inf
    return await store.claim(trio.current_time(), 1)


async def test_seen_set_stays_compact_and_exact(redis_server: RedisServer) -> None:
    import coredis

    store = RedisStore(redis_server.url, "seen", per_host_delay=0)
    n = 20_000
    fps = [int.from_bytes(os.urandom(8), "big") for _ in range(n)]
    with trio.fail_after(30):
        async with store.open({"seeds": []}, Counters()):
            first = await store.mark_seen(fps)
            again = await store.mark_seen(fps[::7])
        async with coredis.Redis.from_url(redis_server.url) as client:
            total = 0
            buckets = 0
            async for key in client.scan_iter(match="tc:{seen}:s:*", count=1000):
                total += await client.memory_usage(key) or 0
                buckets += 1
            size = await client.scard(b"tc:{seen}:s:0")
            encoding = await client.object_encoding(b"tc:{seen}:s:0")
    assert all(first) and not any(again)
    assert buckets > 1 and encoding == b"intset" and size < 512
    assert total / n < 64, total / n  # bytes per URL


async def test_leases_politeness_and_stale_commits(redis_server: RedisServer) -> None:
    # two workers (stores) on one crawl: a host's delay holds across both; a lease that
    # expires goes to the other worker, and the first one's late commit is discarded
    a = RedisStore(redis_server.url, "lease", per_host_delay=0.5, lease=0.3, concurrency=4)
    b = RedisStore(redis_server.url, "lease", per_host_delay=0.5, lease=0.3, concurrency=4)
    counters = Counters()
    with trio.fail_after(20):
        async with a.open({"seeds": []}, counters), b.open({"seeds": []}, Counters()):
            assert await a.add([new_request(f"http://h/{i}", i + 1) for i in range(3)]) == 3
            [first] = await claim_now(a)
            assert await claim_now(b) == []  # the host's delay holds cluster-wide
            a._tokens.clear()  # a stops renewing its lease (as if it were stuck)
            a._tokens[first] = "lost"
            await trio.sleep(0.6)
            got: list[Any] = []
            while not got:
                got = await claim_now(b)
                await trio.sleep(0.05)
            assert got[0].fingerprint == first.fingerprint  # the expired lease, handed again
            # a's commit names a token that no longer holds the page: discarded
            a._tokens[first] = "nonexistent"
            await a.complete(first, [], [{"url": "x"}])
            await a.flush()
            assert a.lost_leases == 1
            await b.complete(got[0], [], [{"url": "y"}])
            await b.flush()
            assert b.lost_leases == 0
            assert b.outstanding() == 2
    st = await read_status(redis_server.url, "lease")
    assert st["items"] == 1


async def test_stored_settings_reach_a_worker(redis_server: RedisServer) -> None:
    settings = Settings(per_host_delay=0.3, per_host_concurrency=3, max_depth=2)
    store = RedisStore.from_settings(redis_server.url, "shared", settings)
    with trio.fail_after(10):
        async with store.open({"seeds": ["http://h/"]}, Counters()):
            pass
        from trio_crawler._store.redis_conn import read_crawl

        stored = await read_crawl(redis_server.url, "shared")
    assert stored["crawl"] == {"seeds": ["http://h/"]}
    assert stored["settings"]["per_host_delay"] == 0.3
    assert stored["settings"]["max_depth"] == 2
