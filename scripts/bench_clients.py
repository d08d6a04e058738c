"""One shared connection pool against one per fetch task: CPU per page of a real crawl.

Crawls a site you serve (e.g. the benchmark's nginx: ``scripts/bench`` leaves the generated
site under /tmp/trio-crawler-bench) with ``clients`` pools and prints pages/s and CPU per page.
Direct requests no longer use pools (``trio_crawler/_connections.py``): ``clients`` now sets
only the number of proxy pools, so on a direct crawl the figures should be the same; this
script measured the per-task pools that the fetcher's docstring cites::

    .venv/bin/python scripts/bench_clients.py http://127.0.0.1:18765/ --clients 1 16 --pages 4000
"""

from __future__ import annotations

import argparse
import resource
import time

import trio

from trio_crawler import Crawler, Settings
from trio_crawler.spiders.generic import GenericSpider


async def run(url: str, clients: int, concurrency: int, pages: int) -> str:
    settings = Settings(
        per_host_delay=0,
        per_host_concurrency=concurrency,
        concurrency=concurrency,
        allow_private=True,
        max_pages=pages,
    )
    crawler = Crawler(GenericSpider(start_urls=(url,)), settings, clients=clients)
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    await crawler.run()
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    stats = crawler.statistics()
    n = stats.pages_ok + stats.pages_failed
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    rate = n / (t1 - t0)
    return f"clients={clients:<3} {n} pages  {rate:6.0f} pages/s  {cpu / n * 1e3:.3f} ms CPU/page"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pages", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for clients in args.clients:
            print(trio.run(run, args.url, clients, args.concurrency, args.pages), flush=True)


if __name__ == "__main__":
    main()
