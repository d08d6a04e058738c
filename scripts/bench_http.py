"""CPU per request of the HTTP layers, against a server you run (the benchmark's nginx).

Fetches the same pages with 16 tasks (one connection pool or connection each) five ways, in
rounds, and prints microseconds of CPU per request:

* ``fetcher``: trio-crawler's :class:`Fetcher` (its keep-alive connections, which parse
  responses with llhttp, the guard, bounded decoding);
* ``httpx``: ``httpx.AsyncClient.get`` per task, the body streamed (what the fetcher cost when
  it went through httpx's request and response models);
* ``httpcore``: httpcore's pool alone, no guard, no decoding;
* ``connection``: one httpcore ``AsyncHTTPConnection`` per task, no pool (h11 inside
  httpcore's connection, what the fetcher held before it parsed with llhttp);
* ``h11``: the naive crawler's keep-alive loop on h11 and a Trio socket
  (``bench_naive.H11Connection``: what h11 alone costs, not a client).

Measured on nginx (16 tasks, 4,000 requests, 2 rounds, interleaved with the previous
fetcher): ``fetcher`` 123-124 µs per request, where the fetcher over h11 took 234-342 and
``h11`` took 132-140.

    scripts/bench                      # once, to generate the site; then serve it, e.g.
    nginx -c /tmp/trio-crawler-bench/nginx/nginx.conf &
    .venv/bin/python scripts/bench_http.py http://127.0.0.1:18765/ --requests 4000 --rounds 3
"""

from __future__ import annotations

import argparse
import re
import resource
import urllib.request
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpcore
import httpx
import trio
from bench_naive import H11Connection

from trio_crawler import Settings
from trio_crawler._http import Fetcher

TASKS = 16


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def page_urls(start: str) -> list[str]:
    with urllib.request.urlopen(start, timeout=10) as response:
        html = response.read().decode("utf-8", "replace")
    parts = urlsplit(start)
    origin = f"{parts.scheme}://{parts.netloc}"
    links = re.findall(r'href="(/[^"#?]+\.html)"', html)[:20]
    return [origin + link for link in links] or [start]


async def in_tasks(n: int, one: Callable[[int, int], Awaitable[None]]) -> None:
    async with trio.open_nursery() as nursery:
        for i in range(TASKS):
            nursery.start_soon(_loop, i, n // TASKS, one)


async def _loop(i: int, count: int, one: Callable[[int, int], Awaitable[None]]) -> None:
    for j in range(count):
        await one(i, j)


async def with_fetcher(urls: list[str], n: int) -> None:
    async with Fetcher(Settings(concurrency=TASKS, allow_private=True)) as fetcher:

        async def one(i: int, j: int) -> None:
            await fetcher.fetch(urls[(i + j) % len(urls)])

        await in_tasks(n, one)


async def with_httpx(urls: list[str], n: int) -> None:
    clients = [httpx.AsyncClient() for _ in range(TASKS)]

    async def one(i: int, j: int) -> None:
        async with clients[i].stream("GET", urls[(i + j) % len(urls)]) as response:
            async for _ in response.aiter_raw():
                pass

    await in_tasks(n, one)
    for client in clients:
        await client.aclose()


async def with_httpcore(urls: list[str], n: int) -> None:
    pools = [httpcore.AsyncConnectionPool() for _ in range(TASKS)]

    async def one(i: int, j: int) -> None:
        async with pools[i].stream("GET", urls[(i + j) % len(urls)]) as response:
            async for _ in response.aiter_stream():
                pass

    await in_tasks(n, one)
    for pool in pools:
        await pool.aclose()


async def with_connection(urls: list[str], n: int) -> None:
    parts = urlsplit(urls[0])
    origin = httpcore.Origin(b"http", (parts.hostname or "").encode(), parts.port or 80)
    host = [(b"Host", parts.netloc.encode())]
    backend = httpcore.TrioBackend()
    conns = [
        httpcore.AsyncHTTPConnection(origin, keepalive_expiry=30, network_backend=backend)
        for _ in range(TASKS)
    ]

    async def one(i: int, j: int) -> None:
        request = httpcore.Request("GET", urls[(i + j) % len(urls)], headers=host)
        response = await conns[i].handle_async_request(request)
        async for _ in response.aiter_stream():
            pass
        await response.aclose()

    await in_tasks(n, one)
    for conn in conns:
        await conn.aclose()


async def with_h11(urls: list[str], n: int) -> None:
    parts = urlsplit(urls[0])
    conns = [H11Connection(parts.hostname or "", parts.port or 80) for _ in range(TASKS)]

    async def one(i: int, j: int) -> None:
        await conns[i].fetch(urls[(i + j) % len(urls)])

    await in_tasks(n, one)
    for conn in conns:
        if conn.stream is not None:
            await conn.stream.aclose()


WAYS: dict[str, Callable[[list[str], int], Awaitable[None]]] = {
    "fetcher": with_fetcher,
    "httpx": with_httpx,
    "httpcore": with_httpcore,
    "connection": with_connection,
    "h11": with_h11,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    urls = page_urls(args.url)
    results: dict[str, list[float]] = {name: [] for name in WAYS}
    for _ in range(args.rounds):
        for name, way in WAYS.items():
            before = cpu()
            trio.run(way, urls, args.requests)
            results[name].append((cpu() - before) / args.requests * 1e6)
    print(f"{TASKS} tasks, {args.requests} requests per round, us of CPU per request:")
    for name, values in results.items():
        runs = " ".join(f"{v:5.0f}" for v in values)
        print(f"  {name:<10} {runs}   min {min(values):5.0f}")


if __name__ == "__main__":
    main()
