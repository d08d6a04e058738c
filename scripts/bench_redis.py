"""The Redis store's benchmark (issue 9): memory in Redis, round trips, and pages/s of one
worker on Redis against the same crawl on the local MemoryStore.

    .venv/bin/python scripts/bench_redis.py                  # 6,000 pages on 4 hosts, 2 runs each
    .venv/bin/python scripts/bench_redis.py --pages 20000 --runs 3

What it does: starts its own ``redis-server`` (temporary directory, free loopback port,
no persistence; stopped by its PID), serves a generated site (each host a binary tree of
pages, every page linking to two children and the root) from a *separate process* on 4
loopback ports, then crawls it in this process alternately with ``MemoryStore`` and with
``RedisStore`` under the same settings (concurrency 16, per-host concurrency 8, no delay,
robots.txt obeyed). It prints, per 1,000 URLs discovered, the Redis memory of the seen set
(``MEMORY USAGE`` of its buckets at the end) and of the frontier at its peak (sampled every
0.1 s: queues, ready set, leases, host hashes), Redis round trips per page, and the pages/s
of both stores (medians) with their ratio. It judges nothing; exit 2 when setup failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from trio_crawler import open_crawler
from trio_crawler._store import MemoryStore, RedisStore
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import RecordedRequest, Response, Site, html_page, serve_site

SETTINGS = {"concurrency": 16, "per_host_concurrency": 8, "per_host_delay": 0.0}


# --------------------------------------------------------------------------- the site process
def tree_site(pages: int) -> Site:
    def handler(request: RecordedRequest) -> Response:
        i = int(request.path.rsplit("/", 1)[1] or 0)
        links = [f"/p/{j}" for j in (2 * i + 1, 2 * i + 2) if j < pages] + ["/p/0"]
        return html_page("".join(f'<a href="{href}">page {href}</a> ' for href in links))

    site = Site({"/robots.txt": Response(status=404)})
    site.default = handler
    return site


def serve(pages: int, hosts: int, portfile: str) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ports = []
            for _ in range(hosts):
                server = await nursery.start(serve_site, tree_site(pages))
                ports.append(server.port)
            await trio.Path(portfile).write_text(" ".join(map(str, ports)))

    trio.run(main)


# --------------------------------------------------------------------------- redis-server
NO_DISK = ("--save", "", "--appendonly", "no", "--daemonize", "no")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench_redis: redis-server is not installed (apt install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory, *NO_DISK],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if b"PONG" in s.recv(100):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("bench_redis: redis-server did not start")


# --------------------------------------------------------------------------- measuring
async def key_bytes(client: Any, pattern: str) -> int:
    total = 0
    async for key in client.scan_iter(match=pattern, count=1000):
        total += await client.memory_usage(key, samples=0) or 0
    return total


FRONTIER = ("q:*", "qp:*", "ready", "delayed", "leases", "lease", "h:*")


async def frontier_bytes(client: Any, prefix: str) -> int:
    return sum([await key_bytes(client, prefix + pattern) for pattern in FRONTIER])


async def crawl_once(
    kind: str, url: str, seeds: list[str], crawl_id: str, *, sample: bool = False
) -> dict[str, Any]:
    """One crawl. With ``sample`` (an extra, untimed Redis run), the frontier's memory is
    sampled as it goes: that costs this process CPU, so it is kept out of the timed runs."""
    import coredis

    from trio_crawler import Settings

    settings = Settings(allow_private=True, **SETTINGS)  # type: ignore[arg-type]
    spider = GenericSpider(start_urls=tuple(seeds))
    store: Any = None
    if kind == "redis":
        store = RedisStore.from_settings(url, crawl_id, settings)
    else:
        store = MemoryStore(
            per_host_concurrency=settings.per_host_concurrency,
            per_host_delay=settings.per_host_delay,
        )
    peak = 0
    prefix = f"tc:{{{crawl_id}}}:"
    async with coredis.Redis.from_url(url) as client:
        async with trio.open_nursery() as nursery:
            if sample:

                async def sampler() -> None:
                    nonlocal peak
                    while True:
                        peak = max(peak, await frontier_bytes(client, prefix))
                        await trio.sleep(0.1)

                nursery.start_soon(sampler)
            started = time.perf_counter()
            async with open_crawler(spider, settings, store=store) as crawler:
                pass
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        stats = crawler.statistics()
        out: dict[str, Any] = {"pages": stats.pages_ok, "rate": stats.pages_ok / elapsed}
        if kind == "redis":
            seen = await key_bytes(client, prefix + "s:*")
            discovered = int(await client.hget(prefix + "seen", "N") or 0)
            out.update(
                seen_bytes=seen,
                frontier_peak=peak,
                discovered=discovered,
                round_trips=store.round_trips,
                calls=dict(store.calls),
            )
    return out


async def bench(url: str, seeds: list[str], runs: int) -> None:
    results: dict[str, list[dict[str, Any]]] = {"memory": [], "redis": []}
    for run in range(runs):
        for kind in ("memory", "redis"):
            result = await crawl_once(kind, url, seeds, f"bench-{run}")
            results[kind].append(result)
            pages, rate = result["pages"], result["rate"]
            print(f"run {run + 1} {kind:6}: {pages:,} pages, {rate:.0f} pages/s")
    timed = results["redis"][-1]
    last = await crawl_once("redis", url, seeds, "bench-memory", sample=True)
    per_k = 1000 / max(1, last["discovered"])
    mem = statistics.median(r["rate"] for r in results["memory"])
    red = statistics.median(r["rate"] for r in results["redis"])
    print()
    print(f"URLs discovered:           {last['discovered']:,}")
    print(
        f"seen set in Redis:         {last['seen_bytes'] * per_k / 1024:.1f} KiB per 1,000 URLs "
        f"({last['seen_bytes'] / max(1, last['discovered']):.1f} bytes per URL)"
    )
    print(
        f"frontier in Redis at peak: {last['frontier_peak'] * per_k / 1024:.1f} KiB per 1,000 "
        f"URLs discovered ({last['frontier_peak'] / 1024:.0f} KiB in all)"
    )
    print(
        f"Redis round trips:         {timed['round_trips'] / max(1, timed['pages']):.2f} per page "
        f"({timed['calls']})"
    )
    print(f"pages/s, MemoryStore:      {mem:.0f} (median of {runs})")
    print(f"pages/s, RedisStore:       {red:.0f} (median of {runs}): {red / mem:.0%} of local")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=6000, help="pages in all (6000)")
    parser.add_argument("--hosts", type=int, default=4, help="loopback hosts (4)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each store (2)")
    parser.add_argument("--serve", metavar="PORTFILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    per_host = args.pages // args.hosts
    if args.serve:
        serve(per_host, args.hosts, args.serve)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        redis, url = start_redis(tmp)
        portfile = os.path.join(tmp, "ports")
        site_args = ["--pages", str(args.pages), "--hosts", str(args.hosts)]
        site = subprocess.Popen([sys.executable, __file__, "--serve", portfile, *site_args])
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(portfile) or not Path(portfile).read_text():
                if time.monotonic() > deadline or site.poll() is not None:
                    print("bench_redis: the site server did not start", file=sys.stderr)
                    return 2
                time.sleep(0.05)
            ports = Path(portfile).read_text().split()
            seeds = [f"http://127.0.0.1:{port}/p/0" for port in ports]
            print(
                f"site: {per_host * len(ports):,} pages on {len(ports)} hosts (separate "
                f"process); settings {SETTINGS}"
            )
            trio.run(bench, url, seeds, args.runs)
        finally:
            site.send_signal(signal.SIGTERM)
            redis.send_signal(signal.SIGTERM)
            for proc in (site, redis):
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
