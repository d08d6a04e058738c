"""Redirects, followed by the crawler: each hop checked like a link.

A 301, 302, 303, 307 or 308 with a ``Location`` becomes the request's next hop (the field's
bytes read as UTF-8 when they are, as browsers do, and resolved by the URL Standard), queued
as a request of its own (so it obeys politeness, robots.txt and the seen set) and carrying the
chain so far. Differing ``Location`` fields are a protocol failure. A hop is refused when its
scheme is not http(s), the chain is longer than ``max_redirects``, it loops back into the
chain, its URL cannot be parsed, or the crawl's rules keep it out. Credentials and cookies a
spider put on the request stay with their origin. A seed that redirects (http to https,
``example.com`` to ``www.example.com``) takes its target's site into the scope of the whole
crawl (:meth:`~trio_crawler._store.CrawlStore.add_scope`).
"""

from __future__ import annotations

import dataclasses

from .._exceptions import FailureKind
from .._http import FetchResult, decode_location
from .._session import strip_sensitive
from .._settings import Settings
from .._spider import Request
from .._stats import Counters
from .._store import CrawlStore, NewRequest
from .._urls import DropReason, UrlRules, resolve
from .outcome import Done, Failed, Outcome
from .politeness import Politeness


class Redirects:
    """Turns a 3xx answer into its next hop, or a failure; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        rules: UrlRules,
        counters: Counters,
        store: CrawlStore,
        politeness: Politeness,
    ) -> None:
        self._settings = settings
        self._rules = rules
        self._counters = counters
        self._store = store
        self._politeness = politeness

    async def follow(self, request: Request, result: FetchResult) -> Outcome:
        self._counters.status_classes[f"{result.status // 100}xx"] += 1
        locations = {decode_location(v).strip() for v in result.headers.get_list("location")}
        if len(locations) != 1:  # browsers refuse differing Location fields
            message = f"{len(locations)} different Location fields"
            return Failed(FailureKind.PROTOCOL, message, result.status)
        (location,) = locations
        try:
            target = resolve(location, result.url)
        except ValueError:
            message = f"bad redirect target {location[:200]!r}"
            return Failed(FailureKind.BAD_URL, message, result.status)
        return await self.hop(request, target, result.status)

    async def hop(
        self, request: Request, target: str, status: int, *, widen_scope: bool = True
    ) -> Outcome:
        """The hop from ``request`` to the absolute URL ``target``, checked; ``status`` is
        the answer's. A rendered page's navigation comes here too (``widen_scope=False``:
        a script does not take its target into the scope as a seed's redirect does)."""
        chain = (*request.redirects, request.url)
        refused = self._refusal(target, chain, status)
        if refused is not None:
            return refused
        if widen_scope and request.depth == 0 and self._settings.scope != "any":
            # a seed that redirects takes its target's site into scope, as if the user had
            # named it, for the whole crawl
            await self._store.add_scope(target)
        reason = self._rules.check(target)
        if reason is not None:
            kind = (
                FailureKind.BAD_URL
                if reason in (DropReason.UNPARSABLE, DropReason.TOO_LONG)
                else FailureKind.OUT_OF_SCOPE
            )
            return Failed(kind, f"redirect to {target} refused: {reason}", status)
        self._counters.redirects += 1
        hop = dataclasses.replace(request, url=target, redirects=chain, retries=0, rate_limited=0)
        if request.headers and self._rules.origin(target) != self._rules.origin(request.url):
            hop = dataclasses.replace(hop, headers=strip_sensitive(request.headers))
        new = NewRequest(hop, self._rules.fingerprint(target), self._rules.origin(target))
        return Done(await self._politeness.keyed([new]), hop=True)

    def _refusal(self, target: str, chain: tuple[str, ...], status: int) -> Failed | None:
        """Why the hop to ``target`` may not be taken at all, or None."""
        scheme = target.partition(":")[0]
        if scheme not in ("http", "https"):
            return Failed(FailureKind.BAD_SCHEME, f"redirect to {scheme}: refused", status)
        max_redirects = self._settings.max_redirects
        if len(chain) > max_redirects:
            return Failed(
                FailureKind.TOO_MANY_REDIRECTS, f"more than {max_redirects} redirects", status
            )
        try:
            target_fp = self._rules.fingerprint(target)
            seen_in_chain = {self._rules.fingerprint(u) for u in chain}
        except ValueError:
            return Failed(FailureKind.BAD_URL, f"bad redirect target {target[:200]!r}", status)
        if target_fp in seen_in_chain:
            return Failed(FailureKind.REDIRECT_LOOP, f"redirect loop back to {target}", status)
        return None
