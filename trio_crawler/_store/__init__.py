"""Crawl state stores: the frontier, the seen set, per-host state and progress counters.

:class:`CrawlStore` is the one interface the engine talks to; :class:`MemoryStore` keeps
everything in this process. Durable (SQLite) and shared (Redis) stores implement the same
interface, so the engine never changes for them.
"""

from ._base import Claim, CrawlStore, NewRequest
from ._memory import MemoryStore

__all__ = ["Claim", "CrawlStore", "MemoryStore", "NewRequest"]
