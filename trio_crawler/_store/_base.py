"""The store interface: small and batch-oriented, so remote and durable stores stay cheap.

Counting rule (the termination rule reads it): ``outstanding()`` is the number of requests
queued, waiting for a retry, or in flight. :meth:`CrawlStore.add` raises it by the number of
new requests *before* they can be claimed; :meth:`CrawlStore.complete` lowers it by one *after*
the page's new links were added (they are passed in the same call), and :meth:`CrawlStore.retry`
leaves it unchanged. So ``outstanding() == 0`` means no work exists anywhere and none can
appear: the crawl is over.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

from .._spider import Request


@dataclasses.dataclass(frozen=True, slots=True)
class NewRequest:
    """A request on its way into the frontier, with its dedupe fingerprint and host key."""

    request: Request
    fingerprint: int
    host: str


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Claim:
    """A request handed out for fetching. Identity matters: it is the lease of one fetch."""

    request: Request
    fingerprint: int
    host: str


class CrawlStore(abc.ABC):
    """Frontier, seen set, per-host politeness state and counters of one crawl."""

    @abc.abstractmethod
    async def add(self, requests: Sequence[NewRequest]) -> int:
        """Queue the requests whose fingerprint is new (all with ``dont_filter``); mark them seen.
        Returns how many were queued."""

    @abc.abstractmethod
    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        """Add fingerprints to the seen set without queueing; True for each one that was new
        (a redirect target, for example)."""

    @abc.abstractmethod
    async def claim(self, now: float, limit: int) -> list[Claim]:
        """Up to ``limit`` requests whose host is ready at ``now`` (politeness included)."""

    @abc.abstractmethod
    def next_ready_time(self) -> float | None:
        """When :meth:`claim` may next return something (None: nothing is queued)."""

    @abc.abstractmethod
    async def wait_changed(self, until: float | None) -> None:
        """Return when the frontier changed (added, released, requeued) or at ``until``."""

    @abc.abstractmethod
    async def complete(self, claim: Claim, new: Sequence[NewRequest]) -> int:
        """Finish ``claim``: queue its new requests (deduped), release its host, lower the count.
        Returns how many new requests were queued."""

    @abc.abstractmethod
    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        """Put ``request`` (the claim's, updated) back, not to start before ``not_before``."""

    @abc.abstractmethod
    async def pause_host(self, host: str, until: float) -> None:
        """No request to ``host`` starts before ``until`` (429/503, rate limits)."""

    @abc.abstractmethod
    async def set_host_delay(self, host: str, delay: float) -> None:
        """The minimum gap between request starts on ``host`` (Crawl-delay, adaptive throttle)."""

    @abc.abstractmethod
    def outstanding(self) -> int:
        """Requests queued, delayed or in flight."""

    @abc.abstractmethod
    def queued(self) -> int: ...

    @abc.abstractmethod
    def in_flight(self) -> int: ...

    @abc.abstractmethod
    def active_hosts(self) -> int: ...

    async def close(self) -> None:  # noqa: B027  (optional hook)
        """Commit what is pending and release resources. Called shielded, bounded."""
