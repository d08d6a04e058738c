"""Running one crawl for the command line: signals, progress, the summary and the exit code.

Exit codes: 0 the crawl ran to its end, to a limit it was given, or until the reader of its
standard output went away (``| head``); 1 it failed while running (``--fail-fast`` tripped,
the store failed, every start URL failed); 2 bad input, which includes everything that stops
a crawl before it starts (a state file that is not a crawl or holds another one, an output or
a CA file that cannot be used); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).

The first Ctrl-C (or SIGTERM) stops taking new URLs and lets in-flight pages finish, for at most
:data:`STOP_GRACE_SECONDS`; a second signal aborts at once. Either way the outputs are flushed,
the statistics written and the summary printed.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable

import trio

from .._crawl import Crawler
from .._exceptions import CrawlerError, SettingsError, SpiderNotFound, find_crawler_error
from .._progress import Display, every_page_failed, show_progress, write_stats_json
from .._stats import CrawlStats

#: After the first Ctrl-C, in-flight pages get this long to finish before they are abandoned.
STOP_GRACE_SECONDS = 10.0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class StartFailed(Exception):
    """The crawl could not start (its store, outputs, fetcher): bad input, exit code 2."""

    def __init__(self, error: CrawlerError) -> None:
        super().__init__(str(error))
        self.error = error


async def run_crawl(
    crawler: Crawler, args: argparse.Namespace, display: Display, *, resume_hint: bool = True
) -> int:
    """Run ``crawler`` to its end under the command line's signals and display; the exit code.
    Raises :class:`StartFailed` when it cannot start."""
    report = None
    if getattr(args, "report", None):  # the report's modules load only for --report (20 ms)
        from .._report import open_crawl_report

        report = open_crawl_report(crawler, args)
    signals_seen: list[int] = []
    started = False
    since: CrawlStats | None = None
    live = sys.stderr.isatty() and not args.quiet and not display.json_lines
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:

                async def watch_signals() -> None:
                    async for signum in signals:
                        signals_seen.append(signum)
                        if len(signals_seen) > 1:
                            nursery.cancel_scope.cancel()
                            return
                        if signum == signal.SIGTERM:
                            display.say(
                                "terminated (SIGTERM): finishing in-flight pages "
                                f"(at most {STOP_GRACE_SECONDS:g} s)"
                            )
                            crawler.stop("terminated")
                        else:
                            display.say(
                                ("" if display.json_lines else "\n")  # past the terminal's ^C
                                + "interrupted: finishing in-flight pages (Ctrl-C again to abort)"
                            )
                            crawler.stop("interrupted")
                        nursery.start_soon(abort_after_grace)

                async def abort_after_grace() -> None:
                    # in-flight pages get a bounded time to finish (a hung server cannot hold
                    # the stop for a whole request timeout); what is left goes back to the
                    # frontier
                    await trio.sleep(STOP_GRACE_SECONDS)
                    display.say("stopped: in-flight pages abandoned")
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch_signals)
                await nursery.start(crawler.run)  # its errors until then: it could not start
                started = True
                if crawler.resumed:
                    since = crawler.statistics()
                if not args.quiet:
                    nursery.start_soon(
                        lambda: show_progress(
                            crawler,
                            live=live,
                            interval=args.progress_interval,
                            since=since,
                            display=display,
                        )
                    )
                await crawler.wait()
                nursery.cancel_scope.cancel()  # the progress, the signals, the grace timer
        except (CrawlerError, BaseExceptionGroup) as exc:
            error = find_crawler_error(exc)
            if error is None or started:
                raise
            raise StartFailed(error) from None
    stats = crawler.statistics()
    code = EXIT_OK
    if args.stats_json:
        try:
            write_stats_json(stats, args.stats_json)
        except OSError as exc:
            display.error(f"cannot write {args.stats_json}: {exc.strerror or exc}")
            code = EXIT_FAILED
    if not args.quiet:
        display.summary(stats, since=since, resumed=crawler.resumed)
    if resume_hint:
        _resume_hint(crawler, args, display, stats.stop_reason)
    if report is not None and not await report.write(stats):
        code = EXIT_FAILED
    if signals_seen:
        return EXIT_TERMINATED if signals_seen[0] == signal.SIGTERM else EXIT_INTERRUPTED
    if stats.stop_reason in ("fail_fast", "error"):
        return EXIT_FAILED
    if stats.stop_reason != "output_closed":
        nothing = every_page_failed(stats)
        if nothing is not None:
            display.error(nothing)
            return EXIT_FAILED
    return code


def _resume_hint(
    crawler: Crawler, args: argparse.Namespace, display: Display, stop_reason: str | None
) -> None:
    import shlex

    state = getattr(args, "state", None)
    if not state or args.quiet:
        return
    if crawler.resumed:
        display.say(f"resumed the crawl stored in {state}")
    if stop_reason != "finished":
        argv = getattr(args, "argv", None) or sys.argv[1:]
        command = shlex.join(["trio-crawler", *argv])
        display.say(f"crawl state saved in {state}; to resume, run: {command}")


def guarded(run: Callable[[], int], display: Display | None = None) -> int:
    """``run()``; a :class:`CrawlerError` is one line on stderr, not a traceback: exit code 2
    for bad input (a setting, a spider, a crawl that could not start), 1 otherwise."""
    display = display or Display()
    try:
        return run()
    except StartFailed as exc:
        display.error(str(exc.error))
        return EXIT_USAGE
    except (CrawlerError, BaseExceptionGroup) as exc:
        error = find_crawler_error(exc)
        if error is None:
            raise
        display.error(str(error))
        return EXIT_USAGE if isinstance(error, SettingsError | SpiderNotFound) else EXIT_FAILED
