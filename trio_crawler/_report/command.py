"""The report's faces on the command line: ``trio-crawler report CRAWL -o FILE`` and
``trio-crawler crawl ... --report FILE`` (written when the crawl ends, Ctrl-C included).

Bad input (a missing file, a file that is not a crawl, an unwritable output) is one line on
standard error and exit code 2. The output is written to a temporary file beside it and
renamed over it at the end, so a failed run never empties or truncates an existing report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

import trio

from .._exceptions import CrawlerError
from .._store import RedisStore
from .aggregate import Aggregator, Report
from .model import CrawlInfo, ReportInput, settings_that_matter
from .page import render_html
from .sources import (
    NO_LINK_GRAPH,
    ReportError,
    ReportSink,
    graph_notes,
    open_input,
    redis_input,
    sqlite_input,
)

if TYPE_CHECKING:
    from .._crawl import Crawler
    from .._stats import CrawlStats

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_report_parser(sub: Any) -> None:
    """Add ``report`` to the CLI's subparsers."""
    p = sub.add_parser(
        "report",
        help="write a crawl's HTML report (broken links, redirects, slow pages, titles...)",
        description="Write one self-contained HTML file (no network needed to open it) with "
        "a crawl's summary, charts and tables: broken links and the pages that link to them, "
        "redirect chains, slowest and largest pages, missing and duplicate titles, pages "
        "robots.txt kept out.",
    )
    p.add_argument(
        "crawl",
        metavar="CRAWL",
        help="a --state file, a JSON Lines output of `crawl`, or redis://... with --crawl-id",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="the HTML file ('-': stdout)"
    )
    p.add_argument("--crawl-id", metavar="NAME", help="the crawl's name when CRAWL is redis://")
    p.add_argument(
        "--stats",
        metavar="FILE",
        help="the crawl's --stats-json file: stop reason, duration, dropped links",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def report_main(args: argparse.Namespace) -> int:
    """``trio-crawler report``: 0 written, 2 bad input (one line on stderr)."""
    started = time.perf_counter()
    try:
        check_output(args.output, inputs=(args.crawl,))
        report = build(open_input(args.crawl, crawl_id=args.crawl_id, stats_path=args.stats))
        size = write_report(args.output, render_html(report))
    except (CrawlerError, OSError) as exc:
        print(f"trio-crawler: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if not args.quiet and args.output != "-":
        print(_done_line(args.output, size, report, time.perf_counter() - started), file=sys.stderr)
    return EXIT_OK


def build(source: ReportInput, aggregator: Aggregator | None = None) -> Report:
    """Aggregate a source's records and finish its report. A source with no page record at
    all (only other items) is not a crawl."""
    aggregator = aggregator or Aggregator()
    aggregator.add_many(source.records)
    if not aggregator.records and aggregator.skipped:
        raise ReportError(
            f"{source.info.source} holds no page records of `trio-crawler crawl` (the generic "
            f"spider): {aggregator.skipped:,} other records"
        )
    return aggregator.finish(source.info, source.graph)


def check_output(path: str, *, inputs: tuple[str | None, ...] = ()) -> None:
    """Fail now, before any work, when ``path`` cannot take the report."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise ReportError(f"cannot write the report to {path}: it is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ReportError(f"cannot write the report to {path}: no such directory {directory}")
    if not os.access(directory, os.W_OK):
        raise ReportError(f"cannot write the report to {path}: {directory} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ReportError(f"cannot write the report to {path}: the file is not writable")
    for other in inputs:
        if other and other != "-" and os.path.exists(other) and os.path.exists(path):
            if os.path.samefile(other, path):
                raise ReportError(f"the report {path} would overwrite the crawl's file {other}")
        elif other and os.path.abspath(other) == os.path.abspath(path):
            raise ReportError(f"the report {path} would overwrite the crawl's file {other}")


def write_report(path: str, html: str) -> int:
    """Write ``html`` to ``path`` (``-``: stdout) all at once: a temporary file beside it,
    renamed over it. Returns the bytes written."""
    data = html.encode("utf-8", errors="replace")
    if path == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return len(data)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".html.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(data)


def _done_line(path: str, size: int, report: Report, seconds: float) -> str:
    s = report.summary
    return (
        f"report written to {path} ({size / 1e6:,.2f} MB, {seconds:,.1f} s): {s.records:,} pages, "
        f"{report.broken.total:,} broken links, {report.redirects.total:,} redirects"
    )


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot write the report{where}: {exc.strerror}"
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------- crawl --report
class CrawlReport:
    """``crawl ... --report FILE``. Made before the crawl (it checks the output then, and
    for a crawl kept in memory adds a :class:`ReportSink` to the crawl's exporters);
    :meth:`write` after it, whatever stopped it.

    Where the report comes from: the state file with ``--state``; the whole crawl in Redis
    with ``--store`` (every worker's pages); otherwise the records as this crawl wrote them.
    The link graph (``--report`` turns ``link_graph`` on) is the store's: the state file's,
    Redis', or the memory store's (with ``--processes``, the parent's shared store's)."""

    def __init__(self, path: str, crawler: Crawler, *, state: str | None, quiet: bool) -> None:
        self.path = path
        self.crawler = crawler
        self.state = state
        self.quiet = quiet
        self.started_at = time.time()
        self.sink: ReportSink | None = None
        outputs = [*crawler.output_targets, state]
        check_output(path, inputs=tuple(outputs))
        self.redis: tuple[str, str] | None = None
        store = crawler.store
        if isinstance(store, RedisStore):
            self.redis = (store.url, store.crawl_id)
        elif state is None:
            self.sink = ReportSink(path)
            crawler.exporters.append(self.sink)

    def info(self, stats: CrawlStats, source: str, notes: tuple[str, ...]) -> CrawlInfo:
        meta = self.crawler.crawl_meta()
        return CrawlInfo(
            source=source,
            seeds=tuple(str(s) for s in meta.get("seeds") or ()),
            settings=settings_that_matter(self.crawler.settings),
            stop_reason=stats.stop_reason,
            started_at=self.started_at,
            ended_at=time.time(),
            elapsed=stats.elapsed,
            stats=stats.as_dict(),
            notes=notes,
        )

    def build(self, stats: CrawlStats) -> Report:
        if self.state is not None:
            stored = sqlite_input(self.state)
            info = self.info(stats, self.state, stored.info.notes)
            return build(ReportInput(records=stored.records, info=info, graph=stored.graph))
        if self.redis is not None:
            # the whole crawl, every worker's pages: its figures are Redis', not this process'
            stored = redis_input(*self.redis, {})
            info = dataclasses.replace(
                stored.info, settings=settings_that_matter(self.crawler.settings)
            )
            return build(ReportInput(records=stored.records, info=info, graph=stored.graph))
        assert self.sink is not None
        graph = self.crawler.store.link_graph()
        notes = (NO_LINK_GRAPH,) if graph is None else graph_notes(graph)
        info = self.info(stats, "the records of this crawl as it ran", notes)
        return self.sink.aggregator.finish(info, graph)

    async def write(self, stats: CrawlStats) -> bool:
        """Build and write the report (in a thread: it reads files and takes a few seconds
        on a big crawl); False, with one line on stderr, when it could not be written."""

        def run() -> tuple[int, Report]:
            report = self.build(stats)
            return write_report(self.path, render_html(report)), report

        started = time.perf_counter()
        try:
            size, report = await trio.to_thread.run_sync(run)
        except (CrawlerError, OSError) as exc:
            print(f"trio-crawler: error: no report: {_one_line(exc)}", file=sys.stderr)
            return False
        if not self.quiet and self.path != "-":
            print(
                _done_line(self.path, size, report, time.perf_counter() - started), file=sys.stderr
            )
        return True


def open_crawl_report(crawler: Crawler, args: argparse.Namespace) -> CrawlReport | None:
    """The :class:`CrawlReport` of ``--report FILE``, or None without the flag."""
    path = getattr(args, "report", None)
    if not path:
        return None
    return CrawlReport(
        path,
        crawler,
        state=getattr(args, "state", None),
        quiet=bool(getattr(args, "quiet", False)),
    )


__all__ = [
    "CrawlReport",
    "add_report_parser",
    "build",
    "check_output",
    "open_crawl_report",
    "report_main",
    "write_report",
]
