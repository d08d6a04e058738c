"""Scrapy's stock link-following spider, for ``scripts/bench --vs scrapy``.

Run by the throwaway Scrapy venv (Scrapy is never a dependency of trio-crawler)::

    scrapy runspider scripts/bench_scrapy_spider.py -a start_url=http://127.0.0.1:PORT/ \
        -a stats_file=stats.json -O out.jsonl

The spider is the ``CrawlSpider`` of Scrapy's documentation with one rule,
``Rule(LinkExtractor(), callback=..., follow=True)``: every link in scope followed, every page
recorded as an item ``{url, status}``. The settings are the benchmark's: 16 concurrent requests
(Scrapy's best figure here; more is slower), robots.txt obeyed, no delay, no AutoThrottle, no
telnet console. ``closed()`` writes Scrapy's own statistics (request counts) to ``stats_file``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class BenchSpider(CrawlSpider):
    name = "bench"
    custom_settings = {
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
        "ROBOTSTXT_OBEY": True,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
    }
    rules = (Rule(LinkExtractor(), callback="parse_item", follow=True),)

    def __init__(self, start_url: str, stats_file: str = "", *args: Any, **kwargs: Any) -> None:
        self.start_urls = [start_url]
        self.allowed_domains = [urlsplit(start_url).hostname or ""]
        self.stats_file = stats_file
        super().__init__(*args, **kwargs)

    def parse_start_url(self, response: Any) -> Any:
        return self.parse_item(response)

    def parse_item(self, response: Any) -> Any:
        yield {"url": response.url, "status": response.status}

    def closed(self, reason: str) -> None:
        if self.stats_file:
            stats = self.crawler.stats.get_stats()
            with open(self.stats_file, "w") as f:
                json.dump({"reason": reason, **stats}, f, default=str, indent=2)
