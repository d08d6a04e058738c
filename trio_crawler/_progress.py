"""What a person sees while a crawl runs and when it ends: live progress, messages, the summary.

On a terminal, a live line on stderr (rich), refreshed a few times a second; it never touches
stdout, so ``-o -`` output stays clean. Not a terminal: a plain log line every ``interval``
seconds. ``--quiet``: nothing until the summary (which ``--quiet`` also hides).

With ``--log-json`` standard error is a stream of JSON objects, one per line, and nothing else:
log records (:class:`JsonFormatter`), progress, messages and the summary
(:class:`Display`) all have the same shape (``time``, ``level``, ``logger``, ``message``, and
``stats`` for the progress and the summary).

A resumed crawl's figures are the whole crawl's (the store keeps them); its rate (pages/s) is
this run's: the pages done since it started over its own duration (``since``, the figures at
the start of the run).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

import trio

from ._crawl import Crawler
from ._export.text import silence
from ._stats import CrawlStats


def _line(stats: CrawlStats, since: CrawlStats | None = None) -> str:
    failed = stats.pages_failed
    return (
        f"{stats.pages_ok + failed:,} pages ({failed:,} failed) | {stats.queued:,} queued | "
        f"{stats.in_flight} in flight | {pages_per_second(stats, since):,.0f} pages/s | "
        f"{_size(stats.bytes)} | {stats.active_hosts} hosts | {stats.items:,} items | "
        f"{stats.elapsed:,.0f}s"
    )


def pages_per_second(stats: CrawlStats, since: CrawlStats | None = None) -> float:
    """This run's rate: pages done since ``since`` (a resumed crawl's figures at its start)
    over the run's duration."""
    done = stats.pages_ok + stats.pages_failed
    if since is not None:
        done -= since.pages_ok + since.pages_failed
    return done / stats.elapsed if stats.elapsed > 0 else 0.0


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def _json_line(level: str, logger: str, message: str, created: float, **fields: Any) -> str:
    return json.dumps(
        {"time": created, "level": level, "logger": logger, "message": message, **fields},
        default=str,
    )


class JsonFormatter(logging.Formatter):
    """``--log-json``: a log record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return _json_line(
            record.levelname, record.name, record.getMessage(), record.created, **fields
        )


class Display:
    """Where the command line's own words go: plain text on standard error, or JSON objects
    with ``json_lines`` (``--log-json``), so that standard error stays one JSON stream."""

    def __init__(self, *, json_lines: bool = False, stream: TextIO | None = None) -> None:
        self.json_lines = json_lines
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def say(self, message: str, *, level: str = "INFO", **fields: Any) -> None:
        """One line for the person running the crawl."""
        if self.json_lines:
            message = _json_line(level, "trio_crawler.cli", message, time.time(), **fields)
        try:
            print(message, file=self.stream, flush=True)
        except BrokenPipeError:  # `2>&1 | head`: the reader left; the crawl goes on unheard
            silence(self.stream)

    def error(self, message: str) -> None:
        """A one-line error: ``trio-crawler: error: ...``."""
        if self.json_lines:
            self.say(message, level="ERROR")
        else:
            self.say(f"trio-crawler: error: {message}")

    def progress(self, stats: CrawlStats, since: CrawlStats | None = None) -> None:
        if self.json_lines:
            self.say("progress", stats=_stats_fields(stats, since))
        else:
            self.say(f"progress: {_line(stats, since)}")

    def summary(self, stats: CrawlStats, *, since: CrawlStats | None, resumed: bool) -> None:
        """The end-of-crawl summary (a table, or one JSON object)."""
        if self.json_lines:
            fields = _stats_fields(stats, since)
            self.say("crawl summary", resumed=resumed, stats=fields)
        else:
            print_summary(stats, stream=self.stream, since=since, resumed=resumed)


def _stats_fields(stats: CrawlStats, since: CrawlStats | None) -> dict[str, Any]:
    fields = stats.as_dict()
    fields["pages_per_second"] = round(pages_per_second(stats, since), 2)
    return fields


async def show_progress(
    crawler: Crawler,
    *,
    live: bool,
    interval: float = 10.0,
    stream: TextIO | None = None,
    since: CrawlStats | None = None,
    display: Display | None = None,
) -> None:
    """Show progress until cancelled (the caller cancels it when the crawl ends). ``since``:
    the figures when this run started (a resumed crawl), for this run's rate."""
    out = stream or sys.stderr
    if live:
        from rich.live import Live
        from rich.text import Text

        console = _console(out)
        with Live(console=console, refresh_per_second=4, transient=True) as screen:
            while True:
                screen.update(Text(_line(crawler.statistics(), since)))
                await trio.sleep(0.25)
    else:
        display = display or Display(stream=out)
        while True:
            await trio.sleep(interval)
            display.progress(crawler.statistics(), since)


def print_summary(
    stats: CrawlStats,
    *,
    stream: TextIO | None = None,
    since: CrawlStats | None = None,
    resumed: bool = False,
) -> None:
    """The end-of-crawl table: pages by status class, failures by kind, totals, stop reason.
    A resumed crawl says so first; its figures are the whole crawl's, its pages/s this run's."""
    from rich.table import Table

    console = _console(stream or sys.stderr)
    title = "crawl summary (resumed: figures of the whole crawl)" if resumed else "crawl summary"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    if resumed:
        done_before = since.pages_ok + since.pages_failed if since is not None else 0
        table.add_row("resumed", f"after {done_before:,} pages")
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
    if stats.rendered or stats.subrequests or stats.browser_crashes:
        table.add_row("rendered", f"{stats.rendered:,}")
        table.add_row("  cut at the timeout", f"{stats.rendered_cut:,}")
        asked = f"{stats.subrequests:,} / {stats.subrequests_refused:,}"
        table.add_row("  its requests / refused", asked)
        table.add_row("  browser crashes", f"{stats.browser_crashes:,}")
    table.add_row("items", f"{stats.items:,}")
    table.add_row("bytes", _size(stats.bytes))
    table.add_row("links found / queued", f"{stats.links_found:,} / {stats.links_queued:,}")
    for reason, n in stats.dropped.items():
        table.add_row(f"  dropped: {reason}", f"{n:,}")
    if stats.queued:
        table.add_row("left in queue", f"{stats.queued:,}")
    table.add_row("duration" + (" (this run)" if resumed else ""), f"{stats.elapsed:,.2f}s")
    table.add_row(
        "pages/s" + (" (this run)" if resumed else ""), f"{pages_per_second(stats, since):,.1f}"
    )
    console.print(table)


def _console(stream: TextIO) -> Any:
    """A rich console on ``stream`` that, when the reader of ``stream`` goes away, goes quiet
    (the stream pointed at /dev/null) instead of rich's default: exit(1)."""
    from rich.console import Console

    class QuietOnBrokenPipe(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            silence(self.file)

    return QuietOnBrokenPipe(file=stream)


def every_page_failed(stats: CrawlStats) -> str | None:
    """One line when the crawl fetched nothing: every page it tried failed (the start URLs
    first: a failed page has no links to follow). None otherwise."""
    if stats.pages_ok or not stats.pages_failed:
        return None
    kinds = ", ".join(f"{kind}: {n:,}" for kind, n in stats.failures.items())
    return f"every start URL failed ({kinds}): nothing was crawled"


def write_stats_json(stats: CrawlStats, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(stats.as_dict(), fh, indent=2, sort_keys=True)
        fh.write("\n")
