"""The processor: a page's items on their way to ``Spider.process`` and ``crawler.items()``.

One task receives the items the fetch tasks hand on (a channel of ``items_buffer``), in
batches: each goes to the ``items()`` reader when there is one (backpressure: a slow reader
slows the crawl; one that leaves closes its end and the crawl goes on without it), then to
``Spider.process`` in a short task of its own under the processing limiter. Items reach both
at least once. (The output files are written by the store when it commits the page.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from .._exceptions import FailureKind
from .._settings import Settings
from .._spider import Spider
from .._stats import Counters

log = logging.getLogger("trio_crawler.engine")

#: Items taken from the channel at once.
_BATCH = 256


class Processor:
    """``Spider.process`` and ``crawler.items()`` for one crawl; see the module docstring.

    ``on_error(exc, url, where)`` is called when ``process`` raises (the engine records it;
    with ``fail_fast`` it stops the crawl).
    """

    def __init__(
        self,
        settings: Settings,
        spider: Spider,
        counters: Counters,
        *,
        on_error: Callable[[BaseException, str, str], None],
    ) -> None:
        self._settings = settings
        self._spider = spider
        self._counters = counters
        self._on_error = on_error
        self._limiter = trio.CapacityLimiter(settings.processing_concurrency)
        self._has_process = type(spider).process is not Spider.process
        self._user_send: trio.MemorySendChannel[Any] | None = None
        self.user_recv: trio.MemoryReceiveChannel[Any] | None = None
        self._handed_on = 0

    @property
    def wants_items(self) -> bool:
        """Whether items must be handed on at all (``process`` or an ``items()`` reader)."""
        return self._has_process or self._user_send is not None

    def items(self) -> trio.MemoryReceiveChannel[Any]:
        """The ``items()`` channel (made on the first call; see :meth:`Crawler.items`)."""
        if self.user_recv is None:
            if self._handed_on:
                raise RuntimeError("items() must be called before the crawl produces items")
            self._user_send, self.user_recv = trio.open_memory_channel[Any](
                self._settings.items_buffer
            )
        return self.user_recv

    async def hand_on(self, produced: list[Any], items: trio.MemorySendChannel[Any]) -> None:
        """Give a page's items to the processor task: at least once."""
        if not produced:
            return
        self._counters.items += len(produced)
        self._handed_on += len(produced)
        if self.wants_items:
            for value in produced:
                await items.send(value)

    async def run(self, recv: trio.MemoryReceiveChannel[Any]) -> None:
        try:
            async with recv, trio.open_nursery() as workers:
                async for first in recv:
                    batch = [first]
                    while len(batch) < _BATCH:
                        try:
                            batch.append(recv.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    await self._to_reader(batch)
                    if self._has_process:
                        for item in batch:
                            token = object()
                            await self._limiter.acquire_on_behalf_of(token)
                            workers.start_soon(self._process_one, item, token)
        finally:
            if self._user_send is not None:
                self._user_send.close()
                self._user_send = None

    async def _to_reader(self, batch: list[Any]) -> None:
        if self._user_send is None:
            return
        for item in batch:
            try:
                await self._user_send.send(item)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._user_send = None
                return

    async def _process_one(self, item: Any, token: object) -> None:
        try:
            await self._spider.process(item)
        except Exception as exc:
            self._counters.process_errors += 1
            self._counters.failures[FailureKind.PROCESS_ERROR] += 1
            log.error("process failed: %s: %s", type(exc).__name__, exc)
            self._on_error(exc, "", "process")
        finally:
            self._limiter.release_on_behalf_of(token)

    def close_reader(self) -> None:
        """The host left the ``open_crawler`` block: its ``items()`` channel closes."""
        if self.user_recv is not None:
            self.user_recv.close()
