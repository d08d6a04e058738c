"""Crawl statistics: mutable counters inside the engine, one frozen snapshot outside."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

#: Why a crawl ended. ``finished``: no work left. The rest name the limit or event that stopped it
#: (``interrupted``: Ctrl-C; ``terminated``: SIGTERM; ``output_closed``: the reader of standard
#: output went away, as with ``| head``).
STOP_REASONS = (
    "finished",
    "max_pages",
    "max_duration",
    "interrupted",
    "terminated",
    "output_closed",
    "cancelled",
    "fail_fast",
    "error",
)


#: Spider exceptions kept for the statistics (the first ones; the rest are counted only).
MAX_ERRORS = 100


@dataclasses.dataclass(frozen=True, slots=True)
class SpiderError:
    """An exception raised by spider code: where (``scrape``, ``failed``, ``process``, or
    ``engine`` for a bug of ours), on which URL (``""`` for ``process``: an item has none)."""

    url: str
    where: str
    exception: BaseException

    def describe(self) -> str:
        return f"{type(self.exception).__name__}: {self.exception}"


class ErrorLog:
    """The first :data:`MAX_ERRORS` spider exceptions of a crawl (the stages record them)."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[SpiderError] = []

    def record(self, url: str, where: str, exception: BaseException) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(SpiderError(url, where, exception))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CrawlStats:
    """A snapshot of one crawl's figures (``crawler.statistics()``; ``--stats-json``)."""

    stop_reason: str | None
    elapsed: float
    pages_ok: int
    pages_failed: int
    requests: int
    retries: int
    redirects: int
    items: int
    bytes: int
    wire_bytes: int
    truncated: int
    queued: int
    in_flight: int
    active_hosts: int
    links_found: int
    links_queued: int
    status_classes: Mapping[str, int]
    failures: Mapping[str, int]
    dropped: Mapping[str, int]
    robots_fetches: int
    sitemap_urls: int
    spider_errors: int
    process_errors: int
    #: Rendering (``render``): pages rendered in Chromium (``rendered_cut`` of them cut at
    #: the render timeout, still scraped), requests the browser made for them (answered by
    #: the crawler, or refused: ``subrequests_refused``), browsers that crashed or hung.
    rendered: int = 0
    rendered_cut: int = 0
    subrequests: int = 0
    subrequests_refused: int = 0
    browser_crashes: int = 0
    #: The first exceptions spider code raised, with their URLs (``spider_errors`` and
    #: ``process_errors`` count them all).
    errors: tuple[SpiderError, ...] = ()

    @property
    def pages_per_second(self) -> float:
        return (self.pages_ok + self.pages_failed) / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "errors":
                value = [{"url": e.url, "where": e.where, "error": e.describe()} for e in value]
            out[field.name] = dict(value) if isinstance(value, Mapping) else value
        out["pages_per_second"] = round(self.pages_per_second, 2)
        return out


@dataclasses.dataclass(slots=True)
class Counters:
    """The engine's live counters. Only the engine writes them."""

    pages_ok: int = 0
    pages_failed: int = 0
    requests: int = 0
    retries: int = 0
    redirects: int = 0
    items: int = 0
    bytes: int = 0
    wire_bytes: int = 0
    truncated: int = 0
    links_found: int = 0
    links_queued: int = 0
    robots_fetches: int = 0
    sitemap_urls: int = 0
    spider_errors: int = 0
    process_errors: int = 0
    rendered: int = 0
    rendered_cut: int = 0
    subrequests: int = 0
    subrequests_refused: int = 0
    browser_crashes: int = 0
    status_classes: Counter[str] = dataclasses.field(default_factory=Counter)
    failures: Counter[str] = dataclasses.field(default_factory=Counter)
    dropped: Counter[str] = dataclasses.field(default_factory=Counter)

    def merge(self, other: Counters) -> None:
        """Add ``other``'s figures to these (a worker process' counters at the end of a crawl
        run with ``--processes``)."""
        for field in dataclasses.fields(self):
            mine = getattr(self, field.name)
            if isinstance(mine, Counter):
                mine.update(getattr(other, field.name))
            else:
                setattr(self, field.name, mine + getattr(other, field.name))

    def snapshot(
        self,
        *,
        stop_reason: str | None,
        elapsed: float,
        queued: int,
        in_flight: int,
        active_hosts: int,
        errors: tuple[SpiderError, ...] = (),
    ) -> CrawlStats:
        return CrawlStats(
            stop_reason=stop_reason,
            elapsed=elapsed,
            pages_ok=self.pages_ok,
            pages_failed=self.pages_failed,
            requests=self.requests,
            retries=self.retries,
            redirects=self.redirects,
            items=self.items,
            bytes=self.bytes,
            wire_bytes=self.wire_bytes,
            truncated=self.truncated,
            queued=queued,
            in_flight=in_flight,
            active_hosts=active_hosts,
            links_found=self.links_found,
            links_queued=self.links_queued,
            status_classes=MappingProxyType(dict(sorted(self.status_classes.items()))),
            failures=MappingProxyType(dict(sorted(self.failures.items()))),
            dropped=MappingProxyType(dict(sorted(self.dropped.items()))),
            robots_fetches=self.robots_fetches,
            sitemap_urls=self.sitemap_urls,
            spider_errors=self.spider_errors,
            process_errors=self.process_errors,
            rendered=self.rendered,
            rendered_cut=self.rendered_cut,
            subrequests=self.subrequests,
            subrequests_refused=self.subrequests_refused,
            browser_crashes=self.browser_crashes,
            errors=errors,
        )
