"""What a person sees while a crawl runs and when it ends: live progress and the summary.

On a terminal, a live line on stderr (rich), refreshed a few times a second; it never touches
stdout, so ``-o -`` output stays clean. Not a terminal: a plain log line every ``interval``
seconds. ``--quiet``: nothing until the summary (which ``--quiet`` also hides).
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

import trio

from ._crawl import Crawler
from ._stats import CrawlStats


def _line(stats: CrawlStats) -> str:
    failed = stats.pages_failed
    return (
        f"{stats.pages_ok + failed:,} pages ({failed:,} failed) | {stats.queued:,} queued | "
        f"{stats.in_flight} in flight | {stats.pages_per_second:,.0f} pages/s | "
        f"{_size(stats.bytes)} | {stats.active_hosts} hosts | {stats.items:,} items | "
        f"{stats.elapsed:,.0f}s"
    )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


async def show_progress(
    crawler: Crawler,
    *,
    live: bool,
    interval: float = 10.0,
    stream: TextIO | None = None,
) -> None:
    """Show progress until cancelled (the caller cancels it when the crawl ends)."""
    out = stream or sys.stderr
    if live:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        console = Console(file=out)
        with Live(console=console, refresh_per_second=4, transient=True) as display:
            while True:
                display.update(Text(_line(crawler.statistics())))
                await trio.sleep(0.25)
    else:
        while True:
            await trio.sleep(interval)
            print(f"progress: {_line(crawler.statistics())}", file=out, flush=True)


def print_summary(stats: CrawlStats, *, stream: TextIO | None = None) -> None:
    """The end-of-crawl table: pages by status class, failures by kind, totals, stop reason."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream or sys.stderr)
    table = Table(title="crawl summary", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("stop reason", str(stats.stop_reason))
    table.add_row("pages", f"{stats.pages_ok + stats.pages_failed:,}")
    table.add_row("  ok (2xx)", f"{stats.pages_ok:,}")
    table.add_row("  failed", f"{stats.pages_failed:,}")
    for cls, n in stats.status_classes.items():
        table.add_row(f"  status {cls}", f"{n:,}")
    for kind, n in stats.failures.items():
        table.add_row(f"  failure: {kind}", f"{n:,}")
    table.add_row("requests", f"{stats.requests:,}")
    table.add_row("  retries", f"{stats.retries:,}")
    table.add_row("  redirects", f"{stats.redirects:,}")
    table.add_row("  robots.txt", f"{stats.robots_fetches:,}")
    table.add_row("items", f"{stats.items:,}")
    table.add_row("bytes", _size(stats.bytes))
    table.add_row("links found / queued", f"{stats.links_found:,} / {stats.links_queued:,}")
    for reason, n in stats.dropped.items():
        table.add_row(f"  dropped: {reason}", f"{n:,}")
    if stats.queued:
        table.add_row("left in queue", f"{stats.queued:,}")
    table.add_row("duration", f"{stats.elapsed:,.2f}s")
    table.add_row("pages/s", f"{stats.pages_per_second:,.1f}")
    console.print(table)


def write_stats_json(stats: CrawlStats, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(stats.as_dict(), fh, indent=2, sort_keys=True)
        fh.write("\n")
