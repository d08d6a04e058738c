"""What a report is built from: page records, what is known of the crawl, and the optional
facts a store keeps beyond the records (the link graph, out-of-scope links, meta robots:
:mod:`trio_crawler._graph`, re-exported here).

Nothing here reads a file or a socket: a source (:mod:`trio_crawler._report.sources`) fills
these in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from .._graph import REFERRERS_KEPT as REFERRERS_KEPT
from .._graph import CrawlGraph as CrawlGraph
from .._graph import Link as Link
from .._graph import MemoryCrawlGraph as MemoryCrawlGraph
from .._graph import MetaRobotsPages as MetaRobotsPages
from .._graph import OutOfScopeLinks as OutOfScopeLinks
from .._graph import Referrers as Referrers

#: One record in the generic spider's format (``trio_crawler.spiders.generic.PageRecord`` as a
#: dict: what JSON Lines, the state file's items table and ``to_record`` give).
Record: TypeAlias = Mapping[str, Any]

#: Status classes in display (and stacking) order. ``no response``: a network failure (DNS,
#: connect, timeout...); ``not fetched``: the crawl's own policy stopped it (robots.txt, scope).
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "other", "no response", "not fetched")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CrawlInfo:
    """What is known of the crawl besides its records. Every field may be unknown.

    ``settings`` are the settings that matter to a reader, as (label, value) pairs in display
    order; ``stats`` the figures of ``--stats-json`` (``CrawlStats.as_dict()``) or what a store
    kept of them; ``notes`` say plainly what this source could not give.
    """

    source: str
    seeds: tuple[str, ...] = ()
    settings: tuple[tuple[str, str], ...] = ()
    stop_reason: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    elapsed: float | None = None
    stats: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ReportInput:
    """Everything a report is built from. ``records`` is iterated once, streaming; ``graph`` is
    None when the source has no link graph (the report then names each broken link's first
    referrer from its record, and says so)."""

    records: Iterable[Record]
    info: CrawlInfo
    graph: CrawlGraph | None = None


def settings_that_matter(settings: Any) -> tuple[tuple[str, str], ...]:
    """The (label, value) pairs a report shows of a :class:`~trio_crawler.Settings`."""

    s = settings
    scope = str(s.scope)
    extra = [f"+{d}" for d in s.allowed_domains] + [f"-{d}" for d in s.denied_domains]
    extra += [f"include {p}" for p in s.include_patterns]
    extra += [f"exclude {p}" for p in s.exclude_patterns]
    if extra:
        scope += " (" + ", ".join(extra) + ")"
    return (
        ("scope", scope),
        ("concurrency", f"{s.concurrency} in all, {s.per_host_concurrency} per host"),
        (
            "delay per host",
            f"{s.per_host_delay:g} s" + (", adaptive" if s.adaptive_throttle else ""),
        ),
        ("robots.txt", "obeyed" if s.obey_robots else "ignored"),
        ("meta robots", "obeyed" if s.obey_meta_robots else "ignored"),
        ("nofollow", "obeyed" if s.obey_nofollow else "ignored"),
        ("max depth", _limit(s.max_depth)),
        ("max pages", _limit(s.max_pages)),
        ("max duration", _limit(s.max_duration, " s")),
        ("user agent", str(s.user_agent)),
    )


def settings_from_meta(crawl: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The settings a state file's crawl identity records (scope and URL rules, the spider)."""
    out: list[tuple[str, str]] = []
    scope = crawl.get("scope")
    if isinstance(scope, str):
        extra = [f"+{d}" for d in _strings(crawl.get("allowed_domains"))]
        extra += [f"-{d}" for d in _strings(crawl.get("denied_domains"))]
        extra += [f"include {p}" for p in _strings(crawl.get("include_patterns"))]
        extra += [f"exclude {p}" for p in _strings(crawl.get("exclude_patterns"))]
        out.append(("scope", scope + (" (" + ", ".join(extra) + ")" if extra else "")))
    spider = crawl.get("spider")
    if isinstance(spider, str):
        out.append(("spider", spider))
    return tuple(out)


def _limit(value: object, unit: str = "") -> str:
    if value is None:
        return "none"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
