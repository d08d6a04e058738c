"""Scrapy with its documented broad-crawl settings, for ``scripts/bench_broad --vs scrapy``.

Run by the throwaway Scrapy venv (Scrapy is never a dependency of trio-crawler)::

    scrapy runspider scripts/bench_broad_scrapy_spider.py -a seeds=URL,URL,... \
        -a stats_file=stats.json -s CONCURRENT_REQUESTS=256 -O out.jsonl

The spider follows every link of every page to any host (no ``allowed_domains``), and records
each page as an item ``{url, status}``. The seeds are requested like any other URL (filtered
as duplicates), so a link back to a seed does not fetch it twice.

The settings are those of Scrapy's "Broad Crawls" page (docs/topics/broad-crawls): the
DownloaderAwarePriorityQueue, a larger thread pool for DNS, log level INFO, no cookies, no
retries, a 15 s download timeout, no redirects, the AJAX-crawlable-pages middleware, and
breadth-first order (DEPTH_PRIORITY 1 with FIFO queues); plus the benchmark's politeness, the
same as trio-crawler's defaults: 2 requests in flight per host and 0.25 s between two requests
to a host (without random variation: Scrapy's default would draw each delay from 0.125 to
0.375 s), robots.txt obeyed. CONCURRENT_REQUESTS comes from the command line (the benchmark's
``-c``). ``closed()`` writes Scrapy's statistics to ``stats_file``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import scrapy
from scrapy.linkextractors import LinkExtractor
from scrapy.settings import default_settings


class BroadSpider(scrapy.Spider):
    name = "broad"
    custom_settings = {
        # Scrapy's "Broad Crawls" page
        "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
        "CONCURRENT_REQUESTS": 256,
        "REACTOR_THREADPOOL_MAXSIZE": 20,
        "LOG_LEVEL": "INFO",
        "COOKIES_ENABLED": False,
        "RETRY_ENABLED": False,
        "DOWNLOAD_TIMEOUT": 15,
        "REDIRECT_ENABLED": False,
        "AJAXCRAWL_ENABLED": True,
        "DEPTH_PRIORITY": 1,
        "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
        "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
        # the benchmark's politeness (trio-crawler's defaults)
        "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
        "DOWNLOAD_DELAY": 0.25,
        # no random variation of the delay: DOWNLOAD_DELAY_JITTER where Scrapy has it (the
        # newer name), RANDOMIZE_DOWNLOAD_DELAY before
        **(
            {"DOWNLOAD_DELAY_JITTER": 0}
            if hasattr(default_settings, "DOWNLOAD_DELAY_JITTER")
            else {"RANDOMIZE_DOWNLOAD_DELAY": False}
        ),
        "ROBOTSTXT_OBEY": True,
        "AUTOTHROTTLE_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
    }

    def __init__(self, seeds: str, stats_file: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seeds = [s for s in seeds.split(",") if s]
        self.stats_file = stats_file
        self.links = LinkExtractor()

    def start_requests(self) -> Iterator[scrapy.Request]:
        for url in self.seeds:
            yield scrapy.Request(url, dont_filter=False)

    async def start(self) -> Any:  # Scrapy 2.13+; start_requests above for older ones
        for request in self.start_requests():
            yield request

    def parse(self, response: Any) -> Any:
        yield {"url": response.url, "status": response.status}
        for link in self.links.extract_links(response):
            yield scrapy.Request(link.url, callback=self.parse)

    def closed(self, reason: str) -> None:
        if self.stats_file:
            stats = self.crawler.stats.get_stats()
            with open(self.stats_file, "w") as f:
                json.dump({"reason": reason, **stats}, f, default=str, indent=2)
