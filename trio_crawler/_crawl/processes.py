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

A new interpreter takes 0.3-0.4 s to import the crawler, and the hosts of its share wait that
long (with ``--split hosts`` half the seeds of a two-process crawl started 0.41 s after the
others, on ``scripts/bench_broad``). So the command line forks its workers before its event
loop starts (:meth:`Crawler.fork_workers <trio_crawler.Crawler.fork_workers>`, Linux): a fork
has every module imported already and waits, in a session of its own, for the store's path on
a pipe; it joins the moment the store listens. A fork whose parent is gone reads the end of
the pipe and exits.

What crosses to a worker: the spider's class (``module:Class``, or the file of a spider
loaded from ``path/file.py:Class``) and its arguments, the settings (pickled, so hooks given
in settings are refused), the seeds, the log level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn, Protocol

import trio

from .._exceptions import SettingsError
from .._export.text import flush_standard_streams
from .._settings import Settings
from .._spider import Request, Spider
from .._store import CrawlStore, MemoryStore, SqliteStore
from .._store.remote import MAX_PROCESSES, WORKER_KILL_SECONDS
from .._store.shared import SharedStore
from .._store.split import SPLITS

__all__ = [
    "MAX_PROCESSES",
    "PARENT_SHARE",
    "ForkedWorker",
    "WorkerMain",
    "fork_workers",
    "parent_concurrency",
    "run_workers",
    "share",
]

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


class _Worker(Protocol):
    """What :func:`_run_worker` needs of a worker process: a new one (``trio.Process``) or a
    fork (:class:`ForkedWorker`)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def kill(self) -> None: ...


class ForkedWorker:
    """A worker process forked before the event loop started (:func:`fork_workers`), waiting
    for the store's path on a pipe."""

    def __init__(self, pid: int, path_fd: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._path_fd: int | None = path_fd
        self._pidfd: int | None = None

    def give(self, path: str) -> None:
        """Send the store's path: the worker joins."""
        fd, self._path_fd = self._path_fd, None
        if fd is not None:
            try:
                # far below the pipe's buffer: one write; a worker already gone (EPIPE):
                # waiting for it says how it ended
                with contextlib.suppress(OSError):
                    os.write(fd, path.encode())
            finally:
                os.close(fd)

    def discard(self) -> None:
        """No path will come (the crawl did not start): the worker reads the end and exits."""
        fd, self._path_fd = self._path_fd, None
        if fd is not None:
            os.close(fd)

    async def wait(self) -> int:
        if self.returncode is None:
            if self._pidfd is None:
                self._pidfd = os.pidfd_open(self.pid)
            await trio.lowlevel.wait_readable(self._pidfd)  # readable: the process exited
            _, status = os.waitpid(self.pid, 0)  # noqa: ASYNC222  (exited: no wait)
            self.returncode = os.waitstatus_to_exitcode(status)
            os.close(self._pidfd)
            self._pidfd = None
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:  # not reaped: the PID is still this process'
            os.kill(self.pid, signal.SIGKILL)


def can_fork() -> bool:
    """Whether worker processes can be forked here and now: Linux (``fork`` and
    ``pidfd_open``), outside any event loop, with no other thread running."""
    if not hasattr(os, "fork") or not hasattr(os, "pidfd_open"):
        return False
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return threading.active_count() == 1
    return False  # inside trio.run


#: A worker's entry point: ``trio_crawler._worker.worker_main`` (the layer above this one),
#: called with ``["--connect", PATH]``.
WorkerMain = Callable[[Sequence[str]], int]


def fork_workers(count: int, worker_main: WorkerMain) -> list[ForkedWorker]:
    """``count`` worker processes forked now (none when :func:`can_fork` says no): each waits
    for the store's path (:meth:`ForkedWorker.give`), then runs ``worker_main`` as ``python -m
    trio_crawler _worker --connect PATH`` would."""
    if count <= 0 or not can_fork():
        return []
    flush_standard_streams()  # nothing buffered here is written twice
    forked: list[ForkedWorker] = []
    for _ in range(count):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(write_fd)
            for sibling in forked:
                sibling.discard()  # this process' copies of the others' pipes
            _forked_worker(read_fd, worker_main)
        os.close(read_fd)
        forked.append(ForkedWorker(pid, write_fd))
    return forked


def _forked_worker(read_fd: int, worker_main: WorkerMain) -> NoReturn:
    """The forked process: wait for the store's path, run the worker, end (as :func:`cli
    <trio_crawler._cli.commands.cli>` does: without the interpreter's teardown)."""
    code = 1
    try:
        os.setsid()  # Ctrl-C at the terminal reaches the parent only, which stops the workers
        chunks: list[bytes] = []
        while chunk := os.read(read_fd, 4096):
            chunks.append(chunk)
        os.close(read_fd)
        path = b"".join(chunks).decode()
        if not path:
            code = 0  # the crawl did not start, or its process is gone
        else:
            own = logging.getLogger("trio_crawler")
            for handler in list(own.handlers):  # the parent's: the worker sets up its own
                own.removeHandler(handler)
            code = worker_main(["--connect", path])
    except Exception:  # printed as a new interpreter would; anything else ends it too
        traceback.print_exc()
    finally:
        flush_standard_streams()
        os._exit(code)


async def run_workers(store: SharedStore, count: int, forked: Sequence[ForkedWorker] = ()) -> None:
    """Start ``count`` worker processes once ``store`` listens (the ``forked`` ones first:
    they are given the path); wait for them. Cancelled, it gives each a moment to exit, then
    kills it (its own children only, by PID). A fork never given the path (cancelled first)
    is let go by the crawl when it ends (:meth:`ForkedWorker.discard`)."""
    path = await store.wait_listening()
    async with trio.open_nursery() as nursery:
        for index in range(count):
            child = forked[index] if index < len(forked) else None
            nursery.start_soon(
                _run_worker, store, path, index, child, name=f"trio_crawler.proc-{index}"
            )


async def _run_worker(
    store: SharedStore, path: str, index: int, forked: ForkedWorker | None
) -> None:
    process: _Worker
    if forked is not None:
        process = forked
        store.worker_pids.append(forked.pid)
        forked.give(path)
    else:
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
