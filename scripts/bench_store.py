"""Micro-benchmarks of the frontier and the stores: what one page costs them.

Prints, for the pure :class:`~trio_crawler._frontier.Frontier`, the in-memory store and the
SQLite store (batched writes in a thread), the cost per page of the engine's cycle: queue a
page's new links (30 links, ~1 of them new), claim it, complete it. With ``--graph`` each
completion also brings the page's link graph (``link_graph``: its 30 links with their text,
two out-of-scope links), and the stores are measured with and without it. Run::

    .venv/bin/python scripts/bench_store.py [--pages 20000] [--hosts 1] [--graph]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import trio

from trio_crawler._frontier import Frontier
from trio_crawler._graph import PageGraph
from trio_crawler._spider import Request
from trio_crawler._stats import Counters
from trio_crawler._store import CrawlStore, MemoryStore, NewRequest, SqliteStore


def bench_frontier(pages: int, hosts: int) -> float:
    frontier: Frontier[int] = Frontier(per_host_concurrency=32, per_host_delay=0.0)
    start = time.perf_counter()
    for i in range(pages):
        frontier.push(f"http://h{i % hosts}:80", i)
        ((key, _),) = frontier.claim(float(i), 1)
        frontier.release(key)
    return (time.perf_counter() - start) / pages * 1e6


def page_links(i: int, hosts: int) -> list[NewRequest]:
    # 30 links: one new page, 29 already seen (the common case on a real site)
    host = f"http://h{i % hosts}:80"
    out = [NewRequest(Request(url=f"{host}/p{i + 1}"), i + 1, host)]
    out += [NewRequest(Request(url=f"{host}/p{j}"), j, host) for j in range(max(0, i - 29), i)]
    return out


def page_graph(i: int, links: list[NewRequest]) -> PageGraph:
    """What page i adds to the link graph: its 30 links with a text, 2 out-of-scope links."""
    return PageGraph(
        f"http://h0:80/p{i}",
        tuple((link.request.url, f"link text {j}") for j, link in enumerate(links)),
        (("https://elsewhere.example/", 1), (f"https://elsewhere.example/{i % 100}", 1)),
    )


async def bench_store(store: CrawlStore, pages: int, hosts: int, graph: bool = False) -> float:
    meta = {"seeds": ["http://h0:80/"]}
    async with store.open(meta, Counters()):
        await store.add([NewRequest(Request(url="http://h0:80/p0"), 0, "http://h0:80")])
        links = [page_links(i, hosts) for i in range(pages)]  # built outside the timing
        graphs = [page_graph(i, links[i]) if graph else None for i in range(pages)]
        start = time.perf_counter()
        for i in range(pages):
            claims = await store.claim(trio.current_time(), 1)
            while not claims:
                await store.wait_changed(trio.current_time() + 0.01)
                claims = await store.claim(trio.current_time(), 1)
            await store.complete(claims[0], links[i], [{"page": i}], graph=graphs[i])
        await store.flush()  # the last commits, the graph's included
        elapsed = time.perf_counter() - start
    return elapsed / pages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--graph", action="store_true", help="also with the link graph")
    args = parser.parse_args()
    print(f"{args.pages:,} pages, {args.hosts} host(s), 30 links a page (1 new)")
    print(f"frontier push+claim+release: {bench_frontier(args.pages, args.hosts):7.1f} µs/page")
    for graph in (False, True) if args.graph else (False,):
        label = " with the link graph" if graph else ""
        memory = MemoryStore(per_host_concurrency=32, per_host_delay=0.0, link_graph=graph)
        us = trio.run(bench_store, memory, args.pages, args.hosts, graph)
        print(f"memory store add+claim+complete{label}: {us:7.1f} µs/page")
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = SqliteStore(
                str(Path(tmp) / "bench.db"),
                per_host_concurrency=32,
                per_host_delay=0.0,
                link_graph=graph,
            )
            us = trio.run(bench_store, sqlite, args.pages, args.hosts, graph)
            print(f"sqlite store add+claim+complete{label}: {us:7.1f} µs/page (batched commits)")


if __name__ == "__main__":
    main()
