"""``python -m trio_crawler _worker --connect PATH``: one worker process of a crawl run with
several processes (:mod:`trio_crawler._crawl.processes` starts it). It joins the shared
store, re-creates the spider and runs a whole engine on the shared crawl until it ends."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import trio

from ._crawl import Crawler
from ._exceptions import CrawlerError, find_crawler_error
from ._registry import load_spider
from ._store.remote import RemoteStore, connect_worker
from ._store.split import SplitStore


def worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="trio-crawler _worker")
    parser.add_argument("--connect", required=True, metavar="PATH")
    args = parser.parse_args(argv)
    try:
        return trio.run(_worker, args.connect)
    except (CrawlerError, BaseExceptionGroup) as exc:
        # one line, as the command gives: the parent gone (killed), a spider that fails
        # to load here; raised in a task of a nursery, it comes wrapped in a group
        error = find_crawler_error(exc)
        if error is None:
            raise
        print(f"trio-crawler worker: error: {error}", file=sys.stderr)
        return 1


async def _worker(path: str) -> int:
    async with connect_worker(path) as joined:
        if joined is None:
            return 0  # the crawl ended before this worker joined it
        framed, status, setup = joined
        store: RemoteStore
        if setup.get("split") == "hosts":
            store = SplitStore(framed, status, setup)
        else:
            store = RemoteStore(framed, status, resumed=setup.get("resumed", False))
        _log_like_the_parent(setup["log_level"])
        spider = load_spider(setup["spider"])(**setup["arguments"])
        crawler = Crawler(spider, setup["settings"], start_urls=setup["start_urls"], store=store)
        store.on_stop = crawler.stop
        store.stop_reason = lambda: crawler.statistics().stop_reason
        if not store.stopped:
            await crawler.run()
    return 0


def _log_like_the_parent(level: int) -> None:
    root = logging.getLogger("trio_crawler")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s[worker]: %(message)s"))
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level)
