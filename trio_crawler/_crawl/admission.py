"""Admission: which requests may enter the frontier (pure, synchronous).

A request is admitted when it is not too deep, its URL passes the crawl's rules (scheme,
length, scope, include/exclude patterns, path traps: :class:`~trio_crawler._urls.UrlRules`)
and the trap guards for query-string and path-id variants. An admitted request leaves as a
:class:`~trio_crawler._store.NewRequest` with its fingerprint and origin; a dropped one is
counted under its reason. The children of a page get their depth, referrer and the spider's
headers here too.

Hot path: every link of every page. A link whose fingerprint the store surely saw already
(``seen_hint``) is skipped before any object is built for it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .._settings import Settings
from .._spider import Follow, Page, Request
from .._stats import Counters
from .._store import NewRequest
from .._urls import DropReason, QueryVariantGuard, UrlRules


class Admission:
    """Depth, URL rules and trap guards for every request of one crawl."""

    def __init__(
        self,
        settings: Settings,
        rules: UrlRules,
        counters: Counters,
        *,
        seen_hint: Callable[[int], bool],
        spider_headers: Mapping[str, str],
    ) -> None:
        self._settings = settings
        self._rules = rules
        self._counters = counters
        self._seen = seen_hint
        self._headers = spider_headers
        self._query_guard = QueryVariantGuard(settings.max_query_variants)
        self._path_id_guard = PathIdGuard(settings.max_query_variants)

    def admit(self, request: Request, refused: dict[str, int] | None = None) -> NewRequest | None:
        """Apply depth, URL rules and trap guards to one request; None when dropped.
        ``refused``: where an out-of-scope URL is counted (the page's link graph)."""
        s = self._settings
        rules = self._rules
        reason: str | None = None
        if s.max_depth is not None and request.depth > s.max_depth:
            reason = DropReason.TOO_DEEP
        elif len(request.url) > s.max_url_length:
            reason = DropReason.TOO_LONG
        else:
            reason = rules.check(request.url)
            if reason is None:
                # what is sent, fingerprinted, logged and recorded: one string, normalised
                url = rules.normalized(request.url)
                if url != request.url:
                    request = dataclasses.replace(request, url=url)
            if (
                reason is None
                and "?" in request.url
                and not self._query_guard.admit(rules.canonical(request.url))
            ):
                reason = DropReason.TRAP_QUERY_VARIANTS
            elif reason is None and not self._path_id_guard.admit(request.url):
                reason = "trap_path_ids"
        if reason is not None:
            self._counters.dropped[str(reason)] += 1
            if refused is not None and reason is DropReason.OUT_OF_SCOPE:
                refused[request.url] = refused.get(request.url, 0) + 1
            return None
        try:
            fp = rules.fingerprint(request.url)
            host = rules.origin(request.url)
        except ValueError:
            self._counters.dropped[str(DropReason.UNPARSABLE)] += 1
            return None
        return NewRequest(request, fp, host)

    def may_follow(self, url: str) -> bool:
        """Whether the crawl's URL rules (scope, patterns, path traps: stateless) let ``url``
        in: only such a URL can get a page of its own (the link graph keeps links to these)."""
        return self._rules.check(url) is None

    def admit_all(self, requests: Iterable[Request]) -> list[NewRequest]:
        return [new for request in requests if (new := self.admit(request)) is not None]

    def seeds(self, start: Sequence[Request | str]) -> list[NewRequest]:
        """The start requests, with the spider's headers, admitted."""
        out = []
        for entry in start:
            request = entry if isinstance(entry, Request) else Request(url=entry)
            if self._headers:
                request = dataclasses.replace(request, headers={**self._headers, **request.headers})
            admitted = self.admit(request)
            if admitted is not None:
                out.append(admitted)
        return out

    def _child_depth(self, page: Page, count: int) -> int | None:
        """Count ``count`` links found on ``page``; their depth, or None when too deep."""
        c = self._counters
        c.links_found += count
        depth = page.request.depth + 1
        max_depth = self._settings.max_depth
        if max_depth is not None and depth > max_depth:
            if count:
                c.dropped[str(DropReason.TOO_DEEP)] += count
            return None
        return depth

    def _unseen(self, url: str) -> bool:
        try:
            return not self._seen(self._rules.fingerprint(url))
        except ValueError:
            return True  # admit() counts it

    def children(
        self, page: Page, found: Sequence[Request], refused: dict[str, int] | None = None
    ) -> list[NewRequest]:
        """The page's requests, filled in (depth, referrer, headers) and admitted; the
        out-of-scope ones counted in ``refused`` when given."""
        depth = self._child_depth(page, len(found))
        if depth is None:
            return []
        out: list[NewRequest] = []
        base = self._headers
        for request in found:
            if not request.dont_filter and not self._unseen(request.url):
                continue
            child = Request(
                url=request.url,
                headers={**base, **request.headers} if base else request.headers,
                priority=request.priority,
                meta=request.meta,
                dont_filter=request.dont_filter,
                depth=depth,
                referrer=page.url,
                render=request.render,
                wait_for=request.wait_for,
            )
            admitted = self.admit(child, refused)
            if admitted is not None:
                out.append(admitted)
        return out

    def follow_all(
        self, page: Page, follow: Follow, refused: dict[str, int] | None = None
    ) -> list[NewRequest]:
        """A :class:`Follow` batch: like :meth:`children`, with no object per seen URL."""
        urls = follow.urls
        depth = self._child_depth(page, len(urls))
        if depth is None:
            return []
        base = self._headers
        headers: Mapping[str, Any] = {**base, **follow.headers} if base else follow.headers
        out: list[NewRequest] = []
        for url in urls:
            if not self._unseen(url):
                continue
            admitted = self.admit(
                Request(
                    url=url,
                    headers=headers,
                    priority=follow.priority,
                    meta=follow.meta,
                    depth=depth,
                    referrer=page.url,
                ),
                refused,
            )
            if admitted is not None:
                out.append(admitted)
        return out


class PathIdGuard:
    """Trap guard for ids in paths (``/s/9f8e7d6c5b4a39281706/page``: session ids, calendars
    keyed by token): at most ``limit`` distinct id values per path shape, where an id is a
    segment of 16 or more letters and digits with at least 4 digits and a letter, or a UUID.

    Ordinary paths (``/product/12345``, ``/blog/my-article-2024``) have no id segment and
    cost one regular-expression search.
    """

    _ID = re.compile(
        r"/(?:(?=[A-Za-z0-9]{16,}(?:[/?;]|$))(?=(?:[^/?;\d]*\d){4})(?=[^/?;]*[A-Za-z])"
        r"[A-Za-z0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
        r"(?=[/?;]|$)"
    )

    def __init__(self, limit: int) -> None:
        self._guard = QueryVariantGuard(limit)

    def admit(self, url: str) -> bool:
        path_end = url.find("?")
        head = url if path_end < 0 else url[:path_end]
        ids = self._ID.findall(head)
        if not ids:
            return True
        shape = self._ID.sub("/{id}", head)
        return self._guard.admit(f"{shape}?{'&'.join(f'i={v[1:]}' for v in ids)}")
