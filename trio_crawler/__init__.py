"""trio-crawler: a polite, hostile-site-safe, durable web crawler on Trio's structured concurrency.

The public API is what this module exports; everything in underscore modules is private.
``trio_crawler.testing`` (a loopback site server for your spiders' tests) is public too.
"""

from ._crawl import Crawler as Crawler
from ._crawl import crawl as crawl
from ._crawl import open_crawler as open_crawler
from ._crawl import start_crawler as start_crawler
from ._exceptions import CrawlerError as CrawlerError
from ._exceptions import FailureKind as FailureKind
from ._exceptions import FetchError as FetchError
from ._exceptions import SettingsError as SettingsError
from ._exceptions import SpiderNotFound as SpiderNotFound
from ._exceptions import StateMismatch as StateMismatch
from ._exceptions import StoreError as StoreError
from ._registry import load_spider as load_spider
from ._settings import Settings as Settings
from ._settings import __version__ as __version__
from ._spider import Drop as Drop
from ._spider import Failure as Failure
from ._spider import Follow as Follow
from ._spider import Headers as Headers
from ._spider import Page as Page
from ._spider import Rendering as Rendering
from ._spider import Request as Request
from ._spider import Retry as Retry
from ._spider import Spider as Spider
from ._spider import register as register
from ._stats import CrawlStats as CrawlStats
from ._stats import SpiderError as SpiderError

__all__ = [
    "CrawlStats",
    "Crawler",
    "CrawlerError",
    "Drop",
    "Failure",
    "FailureKind",
    "FetchError",
    "Follow",
    "Headers",
    "Page",
    "Rendering",
    "Request",
    "Retry",
    "Settings",
    "SettingsError",
    "Spider",
    "SpiderError",
    "SpiderNotFound",
    "StateMismatch",
    "StoreError",
    "__version__",
    "crawl",
    "load_spider",
    "open_crawler",
    "register",
    "start_crawler",
]
