"""Crawl state stores: the frontier, the seen set, per-host state and progress counters.

:class:`CrawlStore` is the one interface the engine talks to; :class:`MemoryStore` keeps
everything in this process; :class:`SqliteStore` keeps it in one SQLite file, so a crawl
survives a stop or a crash and resumes; :class:`RedisStore` keeps it in Redis, shared by
any number of worker processes. All implement the one interface: the engine never changes.
"""

from ._base import Claim, CrawlStore, NewRequest
from ._memory import MemoryStore
from ._redis import RedisStore
from ._sqlite import SqliteStore

__all__ = ["Claim", "CrawlStore", "MemoryStore", "NewRequest", "RedisStore", "SqliteStore"]
