"""Timing checks for tests over real sockets, where the server records when requests *arrive*.

The crawler spaces the *claims* of a host's requests; the server sees their arrivals. A request
whose trip from claim to arrival is held up (a busy event loop, a crawler process descheduled on
a loaded two-core machine) arrives late, so the gap before it looks long and the gap after it
short by as much. Two allowances follow:

- in one process, :class:`LoopLag` measures the event loop's worst wake-up lag during the test;
  the slack is a small tolerance plus three times that lag (a trip takes several wake-ups);
- across processes, another process's lag cannot be seen from here, so the slack is half the
  delay, whatever the measured lag.

A full garbage collection of the test process can stall the loop for longer than that slack
allows: in the whole suite, the process holds some 155,000 objects by the politeness tests, and
one collection took 0.11-0.13 s (a host's two requests were once seen 22 ms apart, 0.1 s
expected). :func:`watch_lag` collects once and freezes what exists before the measured crawl,
so that collections during it only scan the crawl's own objects.

Either way the slack never exceeds half the delay, so requests sent with no spacing still fail,
and :func:`assert_spaced` also checks the whole run's span, which lateness cannot shrink by more
than the first request's own lateness: a crawler that spaces requests by half the delay fails.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

#: Tolerance on top of the measured loop lag, for timing checks within one process.
TOL = 0.01


class LoopLag:
    """The worst wake-up lag of this process's event loop while it runs."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            before = trio.current_time()
            await trio.sleep(0.005)
            self.worst = max(self.worst, trio.current_time() - before - 0.005)

    def slack(self, delay: float) -> float:
        """Slack for a check of ``delay`` when the requests come from this process."""
        return min(delay / 2, TOL + 3 * self.worst)


def cross_process_slack(delay: float) -> float:
    """Slack for a check of ``delay`` when the requests come from other processes."""
    return delay / 2


@asynccontextmanager
async def watch_lag() -> AsyncIterator[LoopLag]:
    gc.collect()
    gc.freeze()
    lag = LoopLag()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lag.run)
            yield lag
            nursery.cancel_scope.cancel()
    finally:
        gc.unfreeze()


def gaps(times: Iterable[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in itertools.pairwise(ordered)]


def assert_spaced(times: Iterable[float], delay: float, slack: float) -> None:
    """Request arrivals ``times`` are at least ``delay`` apart, give or take ``slack``."""
    ordered = sorted(times)
    assert len(ordered) >= 2, ordered
    between = gaps(ordered)
    assert min(between) >= delay - slack, (sorted(between)[:5], slack)
    span = ordered[-1] - ordered[0]
    assert span >= (len(ordered) - 1) * delay - slack, (span, len(ordered), slack)
