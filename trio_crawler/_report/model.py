"""What a report is built from: page records, what is known of the crawl, and the optional
facts a store keeps beyond the records (the link graph, out-of-scope links, meta robots).

Nothing here reads a file or a socket: a source (``_sources.py``) fills these in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

#: One record in the generic spider's format (``trio_crawler.spiders.generic.PageRecord`` as a
#: dict: what JSON Lines, the state file's items table and ``to_record`` give).
Record: TypeAlias = Mapping[str, Any]

#: One link to a URL: (the page it was found on, its anchor text; ``""`` when it had none).
Link: TypeAlias = tuple[str, str]

#: How many referrers a store keeps per target URL (the rest are only counted).
REFERRERS_KEPT = 20


#: Status classes in display (and stacking) order. ``no response``: a network failure (DNS,
#: connect, timeout...); ``not fetched``: the crawl's own policy stopped it (robots.txt, scope).
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "other", "no response", "not fetched")


@dataclasses.dataclass(frozen=True, slots=True)
class Referrers:
    """The pages that link to one URL: the first ``REFERRERS_KEPT`` links met, in the order
    met, and how many links to it the crawl met in all (``total >= len(links)``)."""

    links: tuple[Link, ...]
    total: int


@dataclasses.dataclass(frozen=True, slots=True)
class OutOfScopeLinks:
    """The out-of-scope URLs the crawl met most often: ``top`` is (URL, times met), most met
    first; ``distinct`` counts every out-of-scope URL met, ``total`` every time one was met."""

    top: tuple[tuple[str, int], ...]
    distinct: int
    total: int


@dataclasses.dataclass(frozen=True, slots=True)
class MetaRobotsPages:
    """Pages fetched but kept out of the results by ``<meta name=robots>`` or X-Robots-Tag:
    (URL, the directives, e.g. ``"noindex, nofollow"``), the first ones met; ``total`` counts
    them all."""

    pages: tuple[tuple[str, str], ...]
    total: int


@runtime_checkable
class CrawlGraph(Protocol):
    """What a store knows beyond the page records. Every method is synchronous and bounded;
    each may answer ``None`` when the store does not record that fact.

    ``referrers(urls)``: for each URL of ``urls`` (a record's ``url``, the URL as the crawl
    queued it) that the store has links to, its :class:`Referrers`; URLs it has none for are
    left out. The report asks once, for at most a few hundred URLs (the broken links it lists).
    ``out_of_scope(limit)``: the ``limit`` out-of-scope URLs met most often.
    ``meta_robots(limit)``: the first ``limit`` pages meta robots kept out.
    """

    def referrers(self, urls: Sequence[str]) -> Mapping[str, Referrers] | None: ...

    def out_of_scope(self, limit: int) -> OutOfScopeLinks | None: ...

    def meta_robots(self, limit: int) -> MetaRobotsPages | None: ...


class MemoryCrawlGraph:
    """A :class:`CrawlGraph` kept in memory: the reference the stores' graphs follow (tests use
    it). Keeps the first ``keep`` referrers of each target and counts the rest."""

    def __init__(self, keep: int = REFERRERS_KEPT) -> None:
        self.keep = keep
        self._links: dict[str, list[Link]] = {}
        self._totals: dict[str, int] = {}
        self._out_of_scope: dict[str, int] = {}
        self._meta_robots: list[tuple[str, str]] = []

    def add_link(self, source: str, target: str, anchor: str = "") -> None:
        kept = self._links.setdefault(target, [])
        if len(kept) < self.keep:
            kept.append((source, anchor))
        self._totals[target] = self._totals.get(target, 0) + 1

    def add_out_of_scope(self, url: str, times: int = 1) -> None:
        self._out_of_scope[url] = self._out_of_scope.get(url, 0) + times

    def add_meta_robots(self, url: str, directives: str) -> None:
        self._meta_robots.append((url, directives))

    def referrers(self, urls: Sequence[str]) -> Mapping[str, Referrers]:
        return {
            url: Referrers(tuple(self._links[url]), self._totals[url])
            for url in urls
            if url in self._links
        }

    def out_of_scope(self, limit: int) -> OutOfScopeLinks:
        ranked = sorted(self._out_of_scope.items(), key=lambda kv: (-kv[1], kv[0]))
        return OutOfScopeLinks(tuple(ranked[:limit]), len(ranked), sum(self._out_of_scope.values()))

    def meta_robots(self, limit: int) -> MetaRobotsPages:
        return MetaRobotsPages(tuple(self._meta_robots[:limit]), len(self._meta_robots))


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
