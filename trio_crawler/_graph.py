"""The crawl's link graph (issue 19): what a page tells beyond its items, and how a store's
answers about it look. Pure values, no I/O: the stores (:mod:`trio_crawler._store`) keep the
facts, the report (:mod:`trio_crawler._report`) asks for them.

Opt-in (``Settings.link_graph``, which ``crawl --report`` turns on). With it, every page the
spider scraped brings a :class:`PageGraph` with its outcome: its outgoing links (target URL
and anchor text), the out-of-scope URLs admission refused on it, and whether meta robots or
X-Robots-Tag kept it out of the results (noindex). The store commits them with the page, in
the same unit, and keeps them bounded whatever the crawl's size:

* per target URL, the first :data:`REFERRERS_KEPT` referrers met (source page, anchor text),
  and how many pages link to it in all (each page once, however many times it links: a
  page's links are one per URL);
* out-of-scope URLs with the times met, at most :data:`OUT_OF_SCOPE_KEPT` distinct ones (a URL
  first met beyond that counts in the total only);
* the first :data:`NOINDEX_KEPT` pages kept out by noindex, and how many there were.

A target is a link's URL as the crawl queues it (the URL Standard's normal form), which is
what a page record's ``url`` holds; a source is the referring page's final URL (after
redirects).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeAlias, runtime_checkable

#: How many referrers a store keeps per target URL (the rest are only counted).
REFERRERS_KEPT = 20
#: How many distinct out-of-scope URLs a store counts one by one.
OUT_OF_SCOPE_KEPT = 100_000
#: How many pages kept out by noindex a store lists (the rest are only counted).
NOINDEX_KEPT = 1_000
#: The longest anchor text kept (characters, after whitespace is collapsed).
ANCHOR_MAX = 200

#: One link to a URL: (the page it was found on, its anchor text; ``""`` when it had none).
Link: TypeAlias = tuple[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class PageGraph:
    """What one scraped page adds to the link graph.

    ``source``: the page's final URL. ``links``: (target URL, anchor text) of each link of the
    page, once per target, in document order. ``out_of_scope``: (URL, times met on this page)
    of the links admission refused as out of scope. ``noindex``: the page's robots directives
    (``"noindex, nofollow"``) when meta robots or X-Robots-Tag kept it out of the results,
    else None.
    """

    source: str
    links: tuple[tuple[str, str], ...] = ()
    out_of_scope: tuple[tuple[str, int], ...] = ()
    noindex: str | None = None


def directives_text(directives: Iterable[str]) -> str:
    """Robots directives as one line: ``noindex`` and ``nofollow`` first, then the others."""
    words = set(directives)
    first = [w for w in ("noindex", "nofollow") if w in words]
    return ", ".join([*first, *sorted(words - set(first))])


@dataclasses.dataclass(frozen=True, slots=True)
class Referrers:
    """The pages that link to one URL: the first ``REFERRERS_KEPT`` links met, in the order
    met, and how many pages link to it in all (``total >= len(links)``)."""

    links: tuple[Link, ...]
    total: int


@dataclasses.dataclass(frozen=True, slots=True)
class OutOfScopeLinks:
    """The out-of-scope URLs the crawl met most often: ``top`` is (URL, times met), most met
    first; ``distinct`` counts the out-of-scope URLs counted one by one (every one, up to
    :data:`OUT_OF_SCOPE_KEPT`), ``total`` every time one was met."""

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
    """A :class:`CrawlGraph` kept in memory: the memory store's, and the reference the other
    stores' graphs follow (the conformance suite holds them to it). Keeps the first ``keep``
    referrers of each target and counts the rest; out-of-scope URLs and noindex pages are
    bounded as the module docstring says."""

    def __init__(
        self,
        keep: int = REFERRERS_KEPT,
        *,
        out_of_scope_kept: int = OUT_OF_SCOPE_KEPT,
        noindex_kept: int = NOINDEX_KEPT,
    ) -> None:
        self.keep = keep
        self._oos_kept = out_of_scope_kept
        self._noindex_kept = noindex_kept
        self._links: dict[str, list[Link]] = {}
        self._totals: dict[str, int] = {}
        self._out_of_scope: dict[str, int] = {}
        self._oos_total = 0
        self._meta_robots: list[tuple[str, str]] = []
        self._meta_total = 0

    def add_page(self, page: PageGraph) -> None:
        """Everything one page tells (what a store's commit of the page records)."""
        source, keep = page.source, self.keep
        totals, links = self._totals, self._links
        for target, anchor in page.links:  # add_link, inlined: every link of every page
            total = totals.get(target, 0)
            if total < keep:
                kept = links.get(target)
                if kept is None:
                    links[target] = [(source, anchor)]
                else:
                    kept.append((source, anchor))
            totals[target] = total + 1
        for url, times in page.out_of_scope:
            self.add_out_of_scope(url, times)
        if page.noindex is not None:
            self.add_meta_robots(source, page.noindex)

    def add_link(self, source: str, target: str, anchor: str = "") -> None:
        total = self._totals.get(target, 0)
        if total < self.keep:
            self._links.setdefault(target, []).append((source, anchor))
        self._totals[target] = total + 1

    def add_out_of_scope(self, url: str, times: int = 1) -> None:
        self._oos_total += times
        counted = self._out_of_scope.get(url)
        if counted is not None:
            self._out_of_scope[url] = counted + times
        elif len(self._out_of_scope) < self._oos_kept:
            self._out_of_scope[url] = times

    def add_meta_robots(self, url: str, directives: str) -> None:
        self._meta_total += 1
        if len(self._meta_robots) < self._noindex_kept:
            self._meta_robots.append((url, directives))

    def referrers(self, urls: Sequence[str]) -> Mapping[str, Referrers]:
        return {
            url: Referrers(tuple(self._links.get(url, ())), self._totals[url])
            for url in urls
            if url in self._totals
        }

    def out_of_scope(self, limit: int) -> OutOfScopeLinks:
        top = top_out_of_scope(self._out_of_scope.items(), limit)
        return OutOfScopeLinks(tuple(top), len(self._out_of_scope), self._oos_total)

    def meta_robots(self, limit: int) -> MetaRobotsPages:
        return MetaRobotsPages(tuple(self._meta_robots[:limit]), self._meta_total)


def top_out_of_scope(counts: Iterable[tuple[str, int]], limit: int) -> list[tuple[str, int]]:
    """The ``limit`` most met of (URL, times) pairs, most met first, then by URL."""
    return heapq.nsmallest(limit, counts, key=lambda kv: (-kv[1], kv[0]))
