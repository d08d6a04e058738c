"""The pure core of the report: page records in, one bounded :class:`Report` out.

:class:`Aggregator` takes records one at a time (:meth:`Aggregator.add`) and keeps only
bounded structures, whatever the number of records:

* counters (status classes, failure kinds, content types, depths up to :data:`MAX_DEPTH`);
* :class:`LogHistogram` of response times and page sizes: fixed log-spaced bins (50 per
  decade), so p50/p90/p99 are read from the bins to within about 5%;
* :class:`TimeSeries` of records per status class over time: bins whose width grows (each
  width a multiple of the last) so that a crawl of any length fits in ``max_bins`` bins;
* :class:`TopK` heaps for the slowest, largest and most tangled (redirects) pages;
* the first ``rows`` records of each kind a table lists (broken links, missing titles, pages
  robots.txt kept out), each kind also counted in full;
* two maps that grow with the crawl, each capped: per-host figures (at most ``hosts`` hosts,
  the rest pooled) and titles (to find duplicates: at most ``titles`` distinct titles, each
  with its count and its first ``urls_per_title`` URLs).

:meth:`Aggregator.finish` turns that state into a frozen :class:`Report`, asking the link
graph, once, for the referrers of the broken links it lists.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from .bounded import HistogramView, LogHistogram, TimelineView, TimeSeries, TopK
from .model import (
    REFERRERS_KEPT,
    STATUS_CLASSES,
    CrawlGraph,
    CrawlInfo,
    MetaRobotsPages,
    OutOfScopeLinks,
    Record,
    Referrers,
)

T = TypeVar("T")

_CLASS_INDEX = {name: i for i, name in enumerate(STATUS_CLASSES)}
#: Failure kinds that mean the crawl chose not to fetch the URL.
POLICY_KINDS = frozenset(
    {"robots", "out_of_scope", "forbidden_address", "bad_scheme", "bad_url", "redirect_loop"}
)
#: Failure kinds that make a link broken (besides 404, 410 and 5xx answers).
BROKEN_KINDS = frozenset({"dns", "connect"})
#: Deeper pages are counted together.
MAX_DEPTH = 50
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TARGET_RE = re.compile(r"(?:redirect to|redirect loop back to) (\S+)")


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """How much the report keeps. Every table lists at most ``rows`` rows (``top`` for the
    slowest and largest pages) and says how many there were in all."""

    rows: int = 500
    top: int = 100
    title_groups: int = 200
    urls_per_title: int = 10
    titles: int = 1_000_000
    hosts: int = 100_000
    hosts_shown: int = 15
    time_bins: int = 120
    out_of_scope: int = 100


@dataclasses.dataclass(slots=True)
class _Host:
    pages: int = 0
    failed: int = 0
    bytes: int = 0
    timed: int = 0
    time: float = 0.0


# --------------------------------------------------------------------------- the report
@dataclasses.dataclass(frozen=True, slots=True)
class PageRow:
    url: str
    status: int | None
    size: int
    fetch_time: float
    content_type: str | None
    title: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class BrokenLink:
    """A URL that answered 404, 410 or 5xx, or whose host could not be reached, and the pages
    that link to it (``exact``: from the crawl's link graph; otherwise the record's referrer,
    the first page found linking to it)."""

    url: str
    status: int | None
    kind: str | None
    error: str | None
    referrers: Referrers
    exact: bool


@dataclasses.dataclass(frozen=True, slots=True)
class RedirectRow:
    url: str
    chain: tuple[str, ...]  # every URL in order, the first asked for to the last reached
    flags: tuple[str, ...]
    status: int | None
    error: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class UrlRow:
    url: str
    detail: str  # a status, the referrer, the directives: what the table shows beside it


@dataclasses.dataclass(frozen=True, slots=True)
class TitleGroup:
    title: str
    count: int
    urls: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class HostRow:
    host: str
    pages: int
    failed: int
    bytes: int
    mean_time: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class Table(Generic[T]):
    """The rows a report lists and how many there were in all (``total >= len(rows)``)."""

    rows: tuple[T, ...]
    total: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    records: int
    ok: int
    failed: int
    skipped: int
    bytes: int
    hosts: int
    status_classes: Mapping[str, int]
    statuses: Mapping[int, int]
    failures: Mapping[str, int]
    content_types: Mapping[str, int]
    first_at: float | None
    last_at: float | None
    duration: float | None
    pages_per_second: float | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Everything the HTML shows, bounded whatever the size of the crawl."""

    info: CrawlInfo
    summary: Summary
    timeline: TimelineView | None
    response_times: HistogramView
    sizes: HistogramView
    depths: tuple[tuple[int, int], ...]  # (depth, records); MAX_DEPTH holds the deeper ones
    hosts_by_pages: tuple[HostRow, ...]
    hosts_by_time: tuple[HostRow, ...]
    broken: Table[BrokenLink]
    redirects: Table[RedirectRow]
    redirect_flags: Mapping[str, int]
    slowest: Table[PageRow]
    largest: Table[PageRow]
    missing_titles: Table[UrlRow]
    duplicate_titles: Table[TitleGroup]
    robots_blocked: Table[UrlRow]
    meta_robots: MetaRobotsPages | None
    out_of_scope: OutOfScopeLinks | None
    exact_links: bool


class Aggregator:
    """Feed it records (:meth:`add`), then :meth:`finish`. Not thread-safe; pure."""

    def __init__(self, limits: Limits | None = None) -> None:
        lim = self.limits = limits or Limits()
        self.records = 0
        self.ok = 0
        self.skipped = 0
        self.bytes = 0
        self.status_classes = [0] * len(STATUS_CLASSES)
        self.statuses: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()
        self.content_types: Counter[str] = Counter()
        self.depths = [0] * (MAX_DEPTH + 1)
        self.first_at = math.inf
        self.last_at = -math.inf
        self.timeline = TimeSeries(lim.time_bins)
        self.response_times = LogHistogram(1e-4, 1e3)  # 0.1 ms to 1,000 s
        self.sizes = LogHistogram(1.0, 1e10)  # 1 B to 10 GB
        self.slowest: TopK[PageRow] = TopK(lim.top)
        self.largest: TopK[PageRow] = TopK(lim.top)
        self.redirects: TopK[RedirectRow] = TopK(lim.rows)
        self.redirect_count = 0
        self.redirect_flags: Counter[str] = Counter()
        self.broken: list[tuple[str, int | None, str | None, str | None, str | None]] = []
        self.broken_total = 0
        self.missing_titles: list[UrlRow] = []
        self.missing_total = 0
        self.robots: list[UrlRow] = []
        self.robots_total = 0
        self.titles: dict[str, list[Any]] = {}  # title -> [count, url, url...]
        self.titles_dropped = 0
        self.hosts: dict[str, _Host] = {}
        self.other_hosts = _Host()
        self.seeds: list[str] = []  # the first depth-0 URLs: the seeds, when no one says

    # -- feeding
    def add_many(self, records: Iterable[Record]) -> None:
        add = self.add
        for record in records:
            add(record)

    def add(self, record: Record) -> None:
        """Count one record in the generic spider's format; anything else is skipped."""
        url = record.get("url")
        if type(url) is not str or not url:
            self.skipped += 1
            return
        status = _int(record.get("status"))
        kind = record.get("error_kind")
        if kind is not None:
            kind = str(kind)
        error = record.get("error")
        failed = kind is not None or error is not None
        size = _int(record.get("size")) or 0
        fetch_time = _float(record.get("fetch_time")) or 0.0
        depth = _int(record.get("depth")) or 0
        self.records += 1
        if status is not None:
            self.statuses[status] += 1
            cls = (status // 100 - 2) if 200 <= status < 600 else _CLASS_INDEX["other"]
        else:
            cls = _CLASS_INDEX["not fetched" if kind in POLICY_KINDS else "no response"]
        self.status_classes[cls] += 1
        if failed:
            self.failures[kind or "other"] += 1
        else:
            self.ok += 1
        self.depths[min(max(depth, 0), MAX_DEPTH)] += 1
        if depth == 0 and len(self.seeds) < 10:
            self.seeds.append(url)
        at = _float(record.get("fetched_at"))
        if at is not None and at > 0:
            if at < self.first_at:
                self.first_at = at
            if at > self.last_at:
                self.last_at = at
            self.timeline.add(at, cls)
        if size > 0:
            self.bytes += size
        host = self._host(url)
        host.pages += 1
        if failed:
            host.failed += 1
        final_url = record.get("final_url")
        if type(final_url) is not str or not final_url:
            final_url = url
        redirects = record.get("redirects")
        if redirects or kind in ("redirect_loop", "too_many_redirects", "out_of_scope"):
            self._redirect(url, final_url, redirects, status, kind, error)
        if status is not None and not failed:
            ctype = record.get("content_type")
            ctype = ctype if type(ctype) is str else None
            self.content_types[ctype or "(none)"] += 1
            self.sizes.add(size)
            host.bytes += max(size, 0)
            title = record.get("title")
            title = title if type(title) is str else None
            if fetch_time > 0:
                self.response_times.add(fetch_time)
                host.timed += 1
                host.time += fetch_time
                if self.slowest.wants(fetch_time):
                    self.slowest.add(
                        fetch_time, PageRow(final_url, status, size, fetch_time, ctype, title)
                    )
            if self.largest.wants(size):
                self.largest.add(size, PageRow(final_url, status, size, fetch_time, ctype, title))
            if ctype in _HTML_TYPES and 200 <= status < 300:
                self._title(final_url, title, status)
        elif status is not None and fetch_time > 0:
            self.response_times.add(fetch_time)
        if (status is not None and (status in (404, 410) or status >= 500)) or (
            kind in BROKEN_KINDS
        ):
            self.broken_total += 1
            if len(self.broken) < self.limits.rows:
                referrer = record.get("referrer")
                self.broken.append(
                    (
                        url,
                        status,
                        kind,
                        str(error) if error is not None else None,
                        referrer if type(referrer) is str else None,
                    )
                )
        elif kind == "robots":
            self.robots_total += 1
            if len(self.robots) < self.limits.rows:
                referrer = record.get("referrer")
                self.robots.append(UrlRow(url, referrer if type(referrer) is str else ""))

    def _host(self, url: str) -> _Host:
        name = host_of(url)
        host = self.hosts.get(name)
        if host is None:
            if len(self.hosts) >= self.limits.hosts:
                return self.other_hosts
            host = self.hosts[name] = _Host()
        return host

    def _title(self, url: str, title: str | None, status: int) -> None:
        text = " ".join(title.split()) if title else ""
        if not text:
            self.missing_total += 1
            if len(self.missing_titles) < self.limits.rows:
                self.missing_titles.append(UrlRow(url, str(status)))
            return
        group = self.titles.get(text)
        if group is None:
            if len(self.titles) >= self.limits.titles:
                self.titles_dropped += 1
                return
            self.titles[text] = [1, url]
            return
        group[0] += 1
        if len(group) <= self.limits.urls_per_title:
            group.append(url)

    def _redirect(
        self,
        url: str,
        final_url: str,
        redirects: Any,
        status: int | None,
        kind: str | None,
        error: Any,
    ) -> None:
        hops = [str(u) for u in redirects] if isinstance(redirects, list | tuple) else []
        chain = [*hops, final_url] if hops else [url, final_url]
        if not hops and final_url == url:
            chain = [url]
        flags: list[str] = []
        if kind in ("redirect_loop", "out_of_scope") and error is not None:
            match = _TARGET_RE.search(str(error))
            if match:
                chain.append(match.group(1))
        if kind == "redirect_loop":
            flags.append("loop")
        elif kind == "too_many_redirects":
            flags.append("too many hops")
        elif kind == "out_of_scope":
            flags.append("out of scope")
        if len(chain) - 1 >= 2:
            flags.append("chain")
        for a, b in itertools.pairwise(chain):
            upgrade = a[:7].lower() == "http://" and b[:8].lower() == "https://"
            if upgrade and _hostname(a) == _hostname(b):
                flags.append("http→https")
                break
        if len(chain) > 1 and host_of(chain[0]) != host_of(chain[-1]) and kind != "out_of_scope":
            flags.append("other host")
        self.redirect_count += 1
        for flag in flags:
            self.redirect_flags[flag] += 1
        if not flags:
            self.redirect_flags["single hop"] += 1
        score = (100 if kind else 0) + 10 * len(chain) + len(flags)
        if self.redirects.wants(score):
            self.redirects.add(
                score,
                RedirectRow(url, tuple(chain), tuple(flags), status, str(error) if error else None),
            )

    # -- finishing
    def referrer_targets(self) -> list[str]:
        """The URLs whose referrers the report lists: ask the link graph for these."""
        return [row[0] for row in self.broken]

    def finish(
        self,
        info: CrawlInfo,
        graph: CrawlGraph | None = None,
        *,
        referrers: Mapping[str, Referrers] | None = None,
    ) -> Report:
        """The report. ``graph`` answers the referrers (once, for :meth:`referrer_targets`),
        out-of-scope links and meta robots; an async source that already asked its graph
        passes ``referrers`` instead."""
        lim = self.limits
        if not info.seeds and self.seeds:
            info = dataclasses.replace(info, seeds=tuple(self.seeds))
        if referrers is None and graph is not None:
            referrers = graph.referrers(self.referrer_targets())
        out_of_scope = graph.out_of_scope(lim.out_of_scope) if graph is not None else None
        meta_robots = graph.meta_robots(lim.rows) if graph is not None else None
        exact = referrers is not None
        broken: list[BrokenLink] = []
        for url, status, kind, error, referrer in self.broken:
            found = referrers.get(url) if referrers is not None else None
            if found is None:
                found = Referrers(((referrer, ""),) if referrer else (), 1 if referrer else 0)
            broken.append(BrokenLink(url, status, kind, error, found, exact))
        first = self.first_at if self.first_at != math.inf else None
        last = self.last_at if self.last_at != -math.inf else None
        duration = info.elapsed
        if duration is None and info.started_at is not None and info.ended_at is not None:
            duration = max(0.0, info.ended_at - info.started_at)
        if duration is None and first is not None and last is not None:
            duration = last - first
        hosts = [
            HostRow(name, h.pages, h.failed, h.bytes, h.time / h.timed if h.timed else None)
            for name, h in self.hosts.items()
        ]
        if self.other_hosts.pages:
            h = self.other_hosts
            hosts.append(
                HostRow(
                    "(other hosts)",
                    h.pages,
                    h.failed,
                    h.bytes,
                    h.time / h.timed if h.timed else None,
                )
            )
        by_pages = heapq.nsmallest(lim.hosts_shown, hosts, key=lambda r: (-r.pages, r.host))
        timed = [r for r in hosts if r.mean_time is not None]
        # a host's mean says little on one or two pages: rank those only when nothing else is
        steady = [r for r in timed if r.pages >= 5] or timed
        by_time = heapq.nsmallest(
            lim.hosts_shown, steady, key=lambda r: (-(r.mean_time or 0.0), r.host)
        )
        groups = [
            TitleGroup(title, group[0], tuple(group[1:]))
            for title, group in self.titles.items()
            if group[0] > 1
        ]
        groups.sort(key=lambda g: (-g.count, g.title))
        summary = Summary(
            records=self.records,
            ok=self.ok,
            failed=self.records - self.ok,
            skipped=self.skipped,
            bytes=self.bytes,
            hosts=len(self.hosts) + (1 if self.other_hosts.pages else 0),
            status_classes={
                name: n for name, n in zip(STATUS_CLASSES, self.status_classes, strict=True) if n
            },
            statuses=dict(sorted(self.statuses.items())),
            failures=dict(self.failures.most_common()),
            content_types=dict(self.content_types.most_common(12)),
            first_at=first,
            last_at=last,
            duration=duration,
            pages_per_second=self.records / duration if duration else None,
        )
        return Report(
            info=info,
            summary=summary,
            timeline=self.timeline.view(),
            response_times=self.response_times.view(10),
            sizes=self.sizes.view(10),
            depths=tuple((d, n) for d, n in enumerate(self.depths) if n),
            hosts_by_pages=tuple(by_pages),
            hosts_by_time=tuple(by_time),
            broken=Table(tuple(broken), self.broken_total),
            redirects=Table(tuple(self.redirects.items()), self.redirect_count),
            redirect_flags=dict(self.redirect_flags.most_common()),
            slowest=Table(tuple(self.slowest.items()), self.response_times.n),
            largest=Table(tuple(self.largest.items()), self.sizes.n),
            missing_titles=Table(tuple(self.missing_titles), self.missing_total),
            duplicate_titles=Table(tuple(groups[: lim.title_groups]), len(groups)),
            robots_blocked=Table(tuple(self.robots), self.robots_total),
            meta_robots=meta_robots,
            out_of_scope=out_of_scope,
            exact_links=exact,
        )


def build_report(
    records: Iterable[Record],
    info: CrawlInfo,
    graph: CrawlGraph | None = None,
    *,
    limits: Limits | None = None,
) -> Report:
    """Aggregate ``records`` (streaming, once) into a :class:`Report`."""
    aggregator = Aggregator(limits)
    aggregator.add_many(records)
    return aggregator.finish(info, graph)


# --------------------------------------------------------------------------- small helpers
def host_of(url: str) -> str:
    """``host[:port]`` of an absolute URL, lowercased, without user info; ``""`` if none."""
    _, sep, rest = url.partition("://")
    if not sep:
        return ""
    end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if 0 <= i < end:
            end = i
    netloc = rest[:end]
    return netloc.rpartition("@")[2].lower()


def _hostname(url: str) -> str:
    netloc = host_of(url)
    if netloc.startswith("["):
        return netloc.partition("]")[0] + "]"
    return netloc.rpartition(":")[0] if ":" in netloc else netloc


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int:
        return float(value)
    return None


def referrers_of(links: Sequence[tuple[str, str]], total: int | None = None) -> Referrers:
    """A :class:`Referrers` from (source, anchor) pairs; the first ``REFERRERS_KEPT`` kept."""
    return Referrers(tuple(links[:REFERRERS_KEPT]), len(links) if total is None else total)
