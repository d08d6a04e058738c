"""Several fetch processes sharing one crawl (``processes=N``, ``--processes N``).

The crawl's own process keeps the store and serves it to ``N - 1`` worker processes over a
Unix socket (:class:`~trio_crawler._store.shared.SharedStore`: the frontier, politeness,
dedupe, the outstanding count and the outputs stay in one place; with ``split="hosts"``
each process keeps its own hosts' frontier instead, :mod:`trio_crawler._store.split`).
Each worker is a whole engine of its own whose store is the shared one
(:mod:`trio_crawler._worker`), started here as ``python -m trio_crawler _worker --connect
PATH`` once the store listens, in a new session each (Ctrl-C at the terminal reaches the
parent only, which stops them), waited for, and on cancellation given a moment to exit and
then killed, by PID.

What crosses to a worker: the spider's class (``module:Class``, or the file of a spider
loaded from ``path/file.py:Class``) and its arguments, the settings (pickled, so hooks given
in settings are refused), the seeds, the log level.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

import trio

from .._exceptions import SettingsError
from .._settings import Settings
from .._spider import Request, Spider
from .._store import CrawlStore, MemoryStore, SqliteStore
from .._store.remote import MAX_PROCESSES, WORKER_KILL_SECONDS
from .._store.shared import SharedStore
from .._store.split import SPLITS

__all__ = ["MAX_PROCESSES", "PARENT_SHARE", "parent_concurrency", "run_workers", "share"]

log = logging.getLogger("trio_crawler.processes")

#: The parent process fetches with ``concurrency`` divided by this (at least 1); each worker
#: uses all of it. The parent's loop answers every worker's store calls: fetching at full
#: ``-c`` there delays those answers and so every worker (measured: 2 processes at -c 128
#: went from about 630 to 700-740 pages/s with the parent at a quarter; an eighth, once the
#: fetcher went to httpcore directly, was 3 % faster again over four interleaved pairs (-2 to
#: +6 %), a sixteenth no better than an eighth).
PARENT_SHARE = 8


def parent_concurrency(settings: Settings, split: str = "shared") -> int:
    """Requests in flight in the parent process of a crawl with workers: with ``split="hosts"``
    all of ``-c`` (it answers no call on a page's way, and fetches its share of the hosts)."""
    if split == "hosts":
        return settings.concurrency
    return max(1, settings.concurrency // PARENT_SHARE)


def spider_reference(spider: Spider) -> str:
    """``module:Class`` for the spider's class, or ``path/file.py:Class`` for one loaded
    from a file (the worker loads it the same way, under the same module name)."""
    cls = type(spider)
    module = sys.modules.get(cls.__module__)
    if cls.__module__.startswith("_trio_crawler_user_") and module is not None:
        path = getattr(module, "__file__", None)
        if path:
            return f"{path}:{cls.__qualname__}"
    if "<" in cls.__qualname__ or cls.__module__ == "__main__":
        raise SettingsError(
            f"--processes: spider {cls.__qualname__} cannot be re-created in a worker process "
            "(give it as module:Class or path/to/file.py:Class)"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


def share(
    store: CrawlStore,
    settings: Settings,
    spider: Spider,
    start: Sequence[Request | str],
    *,
    processes: int,
    on_stop: Callable[[str], None],
    stopping: Callable[[], bool],
    split: str = "shared",
) -> SharedStore:
    """``store`` wrapped to be shared with worker processes (a one-line
    :class:`~trio_crawler.SettingsError` when this crawl cannot have workers)."""
    if settings.before_request or settings.after_response:
        raise SettingsError(
            "--processes: settings hooks (before_request, after_response) cannot cross to "
            "worker processes; put them on the spider class instead"
        )
    if settings.warc is not None:
        raise SettingsError("--processes and --warc do not go together (one archive writer)")
    if not isinstance(store, (MemoryStore, SqliteStore)):
        raise SettingsError(
            "--processes works with the in-memory store and --state; with --store, start "
            "more `worker` processes instead"
        )
    if split not in SPLITS:
        raise SettingsError(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
    if split == "hosts" and not isinstance(store, MemoryStore):
        raise SettingsError(
            "--split hosts keeps each process' hosts in its memory: it does not go with "
            "--state (use --split shared)"
        )
    if split == "hosts" and settings.max_pages is not None:
        raise SettingsError(
            "--split hosts does not count --max-pages across processes (use --split shared)"
        )
    setup = {
        "spider": spider_reference(spider),
        "arguments": dict(spider.arguments),
        "settings": settings.replace(max_pages=None),
        "start_urls": [r.url if isinstance(r, Request) else r for r in start],
        "log_level": logging.getLogger("trio_crawler").getEffectiveLevel(),
    }
    return SharedStore(
        store,
        processes=processes,
        setup=setup,
        max_pages=settings.max_pages,
        on_stop=on_stop,
        stopping=stopping,
        split=split,
    )


async def run_workers(store: SharedStore, count: int) -> None:
    """Start ``count`` worker processes once ``store`` listens; wait for them. Cancelled, it
    gives each a moment to exit, then kills it (its own children only, by PID)."""
    path = await store.wait_listening()
    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(_run_worker, store, path, index, name=f"trio_crawler.proc-{index}")


async def _run_worker(store: SharedStore, path: str, index: int) -> None:
    command = [sys.executable, "-m", "trio_crawler", "_worker", "--connect", path]
    process = await trio.lowlevel.open_process(command, start_new_session=True)
    store.worker_pids.append(process.pid)
    log.info("worker process %d started (pid %d)", index + 1, process.pid)
    try:
        code = await process.wait()
        if code != 0:
            log.warning("worker process %d (pid %d) exited with %d", index + 1, process.pid, code)
        store.process_ended(process.pid)
    finally:
        if process.returncode is None:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(WORKER_KILL_SECONDS):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
