"""Crawl state stores: the frontier, the seen set, per-host state and progress counters.

:class:`CrawlStore` (:mod:`.base`) is the whole contract the engine talks to;
:class:`MemoryStore` keeps everything in this process; :class:`SqliteStore` keeps it in one
SQLite file, so a crawl survives a stop or a crash and resumes; :class:`RedisStore` keeps it
in Redis, shared by any number of worker processes; :mod:`.remote` lets the processes of one
``--processes`` crawl share one store. All implement the one contract: the engine never
changes. One conformance suite (``tests/test_store_contract.py``) runs over every backend.

A store is named by a *location* (:func:`open_store`): ``memory:``, a SQLite file's path, or
``redis://[:PASSWORD@]HOST:PORT/DB`` with a crawl id. :func:`read_status` and
:func:`export_items` read a stored crawl without running it, whatever keeps it.

Adding a backend (Postgres, say) is one module here implementing :class:`CrawlStore` and its
readers, one branch in :func:`open_store`, :func:`read_status` and :func:`export_items`, and
the backend's fixture in the conformance suite.
"""

from __future__ import annotations

import functools
from typing import Any

import trio

from .._exceptions import SettingsError
from .._settings import Settings
from .base import Claim, CrawlStore, NewRequest, StoreStatus
from .memory import MemoryStore
from .redis import RedisStore
from .redis_conn import is_redis_url, redact
from .sqlite import SqliteStore

__all__ = [
    "Claim",
    "CrawlStore",
    "MemoryStore",
    "NewRequest",
    "RedisStore",
    "SqliteStore",
    "StoreStatus",
    "export_items",
    "is_redis_url",
    "open_store",
    "read_status",
]

#: The location of a store that lives in this process only.
MEMORY = "memory:"


def open_store(
    location: str,
    settings: Settings,
    *,
    crawl_id: str | None = None,
    **options: Any,
) -> CrawlStore:
    """The store at ``location``, set up for a crawl with ``settings`` (not opened yet: the
    engine opens it). ``options`` go to the backend (``lease=`` for Redis, ``window=`` for
    SQLite...). A bad location is a one-line :class:`~trio_crawler.SettingsError`."""
    if location == MEMORY:
        _no_crawl_id(location, crawl_id)
        return MemoryStore.from_settings(settings)
    if is_redis_url(location):
        if not crawl_id:
            raise SettingsError("a Redis store needs a crawl id (--crawl-id NAME)")
        return RedisStore.from_settings(location, crawl_id, settings, **options)
    _no_crawl_id(location, crawl_id)
    return SqliteStore.from_settings(location, settings, **options)


def _no_crawl_id(location: str, crawl_id: str | None) -> None:
    if crawl_id:
        raise SettingsError(f"a crawl id is for a Redis store, not {location!r}")


async def read_status(location: str, *, crawl_id: str | None = None, top: int = 10) -> StoreStatus:
    """Where the crawl stored at ``location`` stands, without changing it."""
    if is_redis_url(location):
        if not crawl_id:
            raise SettingsError("a Redis store needs a crawl id (--crawl-id NAME)")
        from . import redis_conn

        st = await redis_conn.read_status(location, crawl_id)
        stats = st["stats"]
        return StoreStatus(
            location=f"{redact(location)} (crawl {crawl_id})",
            crawl=st["crawl"],
            stop_reason=st["stop_reason"],
            done=int(stats.get("pages_done", 0)),
            queued=st["queued"],
            in_flight=st["leased"],
            items=st["items"],
            stats=stats,
            workers=st["workers"],
        )
    _no_crawl_id(location, crawl_id)
    from . import sqlite_db

    sq = await trio.to_thread.run_sync(functools.partial(sqlite_db.read_status, location, top=top))
    return StoreStatus(
        location=sq.path,
        crawl=sq.crawl,
        stop_reason=sq.stop_reason,
        done=sq.states.get("done", 0),
        queued=sq.states.get("queued", 0),
        in_flight=sq.states.get("inflight", 0),
        items=sq.items,
        stats=sq.stats,
        outputs=sq.outputs,
        hosts=sq.hosts,
    )


async def export_items(
    location: str, target: str, *, crawl_id: str | None = None, format: str | None = None
) -> int:
    """Write the items of the crawl stored at ``location`` to ``target`` (any output format);
    returns how many. The target is opened only once the store is known to hold a crawl."""
    if is_redis_url(location):
        if not crawl_id:
            raise SettingsError("a Redis store needs a crawl id (--crawl-id NAME)")
        from . import redis_conn

        return await redis_conn.export_items(location, crawl_id, target, format=format)
    _no_crawl_id(location, crawl_id)
    from . import sqlite_db

    return await trio.to_thread.run_sync(
        functools.partial(sqlite_db.export_items, location, target, format=format)
    )
