"""The command line: arguments -> Settings -> trio.run. No crawl logic of its own.

Exit codes: 0 the crawl ran to its end (or to a limit it was given); 1 the crawl failed
(``--fail-fast`` tripped, the store failed); 2 bad input (flag, URL, spider, output);
130 interrupted with Ctrl-C (output flushed, statistics printed).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

import trio

from ._crawl import Crawler
from ._exceptions import CrawlerError, SettingsError
from ._progress import print_summary, show_progress, write_stats_json
from ._registry import load_spider, spider_names
from ._settings import Settings, __version__
from ._spider import Spider

#: After the first Ctrl-C, in-flight pages get this long to finish before they are abandoned.
STOP_GRACE_SECONDS = 10.0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger("trio_crawler")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"trio-crawler: error: {message}\n")


def _add_crawl_flags(p: argparse.ArgumentParser) -> None:
    out = p.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        action="append",
        metavar="FILE",
        help="write items to FILE (.jsonl, .csv, .db; '-' for stdout); repeatable",
    )
    out.add_argument(
        "--format",
        choices=["jsonl", "csv", "sqlite"],
        help="output format when the extension does not say",
    )
    out.add_argument("--stats-json", metavar="FILE", help="write the final statistics as JSON")
    out.add_argument(
        "--report",
        metavar="FILE",
        help="write the crawl's HTML report to FILE when it ends (also after Ctrl-C)",
    )
    out.add_argument(
        "--state",
        metavar="FILE",
        help="keep the crawl's state in this SQLite file; the same command resumes it",
    )
    _add_store_flags(out)
    g = p.add_argument_group("limits")
    g.add_argument("--max-depth", type=int, help="links deeper than this are not followed")
    g.add_argument("--max-pages", type=int, help="stop after this many pages")
    g.add_argument("--max-duration", type=float, metavar="SECONDS", help="stop after this long")
    g.add_argument("--max-pages-per-host", type=int, help="page budget of one host")
    g.add_argument("--max-body-size", type=int, metavar="BYTES", help="cut bodies above this")
    g = p.add_argument_group("concurrency and politeness")
    g.add_argument("-c", "--concurrency", type=int, help="requests in flight over all hosts (16)")
    g.add_argument(
        "--processes",
        type=_process_count,
        default=1,
        metavar="N",
        help="fetch processes sharing the crawl (1): each worker has -c requests in flight, "
        "the first process (which also keeps the crawl's state) an eighth of that",
    )
    g.add_argument("--processing-concurrency", type=int, help="spider.process calls at once (64)")
    g.add_argument(
        "--per-host-concurrency",
        type=int,
        help="requests in flight to one host (2); raise it for your own server",
    )
    g.add_argument(
        "--delay",
        type=float,
        dest="per_host_delay",
        metavar="SECONDS",
        help="minimum gap between requests to one host (0.25); 0 for your own server",
    )
    g.add_argument(
        "--max-crawl-delay",
        type=float,
        metavar="SECONDS",
        help="cap on a robots.txt Crawl-delay (30)",
    )
    g.add_argument(
        "--adaptive-throttle",
        action="store_true",
        default=None,
        help="follow each host's latency and back off on 429/503",
    )
    g.add_argument(
        "--no-cookies",
        action="store_false",
        dest="cookies",
        default=None,
        help="do not keep cookies (by default each origin gets back only its own)",
    )
    g.add_argument(
        "--auth",
        action="append",
        dest="credentials",
        metavar="HOST=USER:PASSWORD",
        help="credentials for HOST only (HOST=bearer:TOKEN for a bearer token); repeatable",
    )
    g.add_argument(
        "--politeness-key",
        choices=["origin", "ip"],
        help="politeness per origin (default) or per IP address (shared hosting)",
    )
    g.add_argument(
        "--order",
        choices=["breadth", "depth"],
        help="within a host: breadth-first (default) or depth-first, after priority",
    )
    g.add_argument(
        "--dedupe-content",
        action="store_true",
        default=None,
        help="do not follow links of a page whose body was already seen",
    )
    g.add_argument(
        "--obey-robots",
        action="store_true",
        dest="obey_robots",
        default=None,
        help="obey robots.txt even where the spider turns it off",
    )
    g.add_argument(
        "--sitemaps",
        action="store_true",
        default=None,
        help="also crawl the URLs of each site's sitemaps (robots.txt Sitemap:, /sitemap.xml)",
    )
    g.add_argument(
        "--ignore-robots",
        action="store_false",
        dest="obey_robots",
        default=None,
        help="do not fetch or obey robots.txt",
    )
    g.add_argument(
        "--ignore-meta-robots",
        action="store_false",
        dest="obey_meta_robots",
        default=None,
        help="ignore <meta name=robots> and X-Robots-Tag",
    )
    g.add_argument(
        "--ignore-nofollow",
        action="store_false",
        dest="obey_nofollow",
        default=None,
        help="follow rel=nofollow links",
    )
    g.add_argument("-A", "--user-agent", help="User-Agent header")
    g.add_argument(
        "-H",
        "--header",
        action="append",
        metavar="'NAME: VALUE'",
        help="extra request header; repeatable",
    )
    g = p.add_argument_group("scope")
    g.add_argument(
        "--scope",
        choices=["host", "domain", "any"],
        help="host: the seeds' origins (default); domain: their registrable domains",
    )
    g.add_argument("--allow-domain", action="append", dest="allowed_domains", metavar="DOMAIN")
    g.add_argument("--deny-domain", action="append", dest="denied_domains", metavar="DOMAIN")
    g.add_argument(
        "--include",
        action="append",
        dest="include_patterns",
        metavar="REGEX",
        help="follow only URLs matching one of these",
    )
    g.add_argument(
        "--exclude",
        action="append",
        dest="exclude_patterns",
        metavar="REGEX",
        help="never follow URLs matching one of these",
    )
    g = p.add_argument_group("retries, timeouts and safety")
    g.add_argument("--max-retries", type=int, help="retries after the first try (2)")
    g.add_argument(
        "--timeout",
        type=float,
        dest="request_timeout",
        metavar="SECONDS",
        help="whole-request deadline (60)",
    )
    g.add_argument("--connect-timeout", type=float, metavar="SECONDS")
    g.add_argument("--read-timeout", type=float, metavar="SECONDS")
    g.add_argument("--max-redirects", type=int)
    g.add_argument(
        "--allow-private",
        action="store_true",
        default=None,
        help="allow loopback/private/link-local targets beyond the seeds' own",
    )
    g.add_argument(
        "--allow-address",
        action="append",
        dest="allowed_addresses",
        metavar="ADDR:PORT",
        help="let the address guard through this pair",
    )
    g.add_argument(
        "--fail-fast",
        action="store_true",
        default=None,
        help="stop at the first exception from spider code",
    )
    g = p.add_argument_group("proxies, TLS and archiving")
    g.add_argument("--proxy", metavar="URL", help="http://, https:// or socks5:// proxy for all")
    g.add_argument(
        "--proxy-rule",
        action="append",
        dest="proxy_rules",
        metavar="HOST=URL",
        help="proxy (or 'direct') for HOST or *.DOMAIN, before --proxy; repeatable",
    )
    g.add_argument(
        "--trust-env",
        action="store_true",
        default=None,
        help="honour HTTP_PROXY/HTTPS_PROXY/NO_PROXY and SSL_CERT_FILE",
    )
    g.add_argument(
        "-k",
        "--insecure",
        action="store_false",
        dest="verify_tls",
        default=None,
        help="do not verify TLS certificates (intercepting proxy, lab target)",
    )
    g.add_argument("--ca-bundle", metavar="PEM", help="also trust the CAs in this file")
    g.add_argument("--client-cert", metavar="PEM", help="present this client certificate")
    g.add_argument("--client-key", metavar="PEM", help="the client certificate's key")
    g.add_argument("--warc", metavar="FILE", help="archive every request and response (WARC 1.1)")
    g.add_argument("--warc-max-size", type=int, metavar="BYTES", help="rotate WARC files (1 GiB)")
    g = p.add_argument_group("display")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    g.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    g.add_argument("--log-json", action="store_true", help="log lines as JSON objects")
    g.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal",
    )


def _process_count(text: str) -> int:
    from ._crawl.processes import MAX_PROCESSES

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PROCESSES:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PROCESSES}")
    return value


def _add_store_flags(g: Any) -> None:
    """``--store redis://...`` and ``--crawl-id``: a crawl shared by many workers."""
    g.add_argument(
        "--store",
        metavar="URL",
        help="keep the crawl in Redis (redis://[:PASSWORD@]HOST:PORT/DB), shared by workers",
    )
    g.add_argument("--crawl-id", metavar="NAME", help="the crawl's name in --store")
    g.add_argument(
        "--lease",
        type=float,
        metavar="SECONDS",
        help="a claimed URL returns to the frontier when its worker is silent this long (30)",
    )


_SETTING_FLAGS = [
    "max_depth",
    "max_pages",
    "max_duration",
    "max_pages_per_host",
    "max_body_size",
    "concurrency",
    "processing_concurrency",
    "per_host_concurrency",
    "per_host_delay",
    "max_crawl_delay",
    "adaptive_throttle",
    "obey_robots",
    "obey_meta_robots",
    "obey_nofollow",
    "user_agent",
    "scope",
    "allowed_domains",
    "denied_domains",
    "include_patterns",
    "exclude_patterns",
    "max_retries",
    "request_timeout",
    "connect_timeout",
    "read_timeout",
    "max_redirects",
    "allow_private",
    "allowed_addresses",
    "fail_fast",
    "politeness_key",
    "order",
    "dedupe_content",
    "sitemaps",
    "cookies",
    "proxy",
    "trust_env",
    "verify_tls",
    "ca_bundle",
    "client_cert",
    "client_key",
    "warc",
    "warc_max_size",
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trio-crawler",
        description="A polite, safe, fast web crawler built on Trio.",
        epilog="exit codes: 0 done, 1 crawl failed, 2 bad input, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"trio-crawler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser(
        "crawl",
        help="crawl from URLs, one record per page",
        description="Crawl from the given URLs with the generic spider: one "
        "record per page (url, status, type, size, title, links...).",
    )
    p.add_argument("urls", nargs="+", metavar="URL")
    _add_crawl_flags(p)
    p = sub.add_parser(
        "run",
        help="run a spider by name or path/to/file.py:Class",
        description="Run a registered spider, or one from your own module.",
    )
    p.add_argument("spider", metavar="SPIDER", help="NAME, path/to/file.py:Class or module:Class")
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="spider argument; repeatable",
    )
    p.add_argument(
        "--start-url",
        action="append",
        dest="start_urls",
        metavar="URL",
        help="override the spider's start URLs",
    )
    _add_crawl_flags(p)
    sub.add_parser("spiders", help="list the built-in spiders")
    p = sub.add_parser(
        "demo",
        help="serve a demo site on loopback and crawl it",
        description="Serve the package's demo site on 127.0.0.1 and crawl it "
        "with politeness lifted for this local server.",
    )
    p.add_argument("--pages", type=int, default=2000, help="pages in the demo site (2000)")
    _add_crawl_flags(p)
    p = sub.add_parser(
        "worker",
        help="join a crawl kept in Redis (--store, --crawl-id) and work on it to its end",
        description="Join a crawl started with `crawl URL --store redis://... --crawl-id "
        "NAME`: its seeds, scope and spider come from the store.",
    )
    p.add_argument(
        "--spider",
        metavar="REF",
        help="where to load the crawl's spider from when it came from a file (path.py:Class)",
    )
    _add_crawl_flags(p)
    _add_state_commands(sub)
    from ._report import add_report_parser

    add_report_parser(sub)
    return parser


def _add_state_commands(sub: Any) -> None:
    """``status`` and ``export``: read a state file written with ``--state``."""
    p = sub.add_parser(
        "status",
        help="show where a crawl stored with --state stands",
        description="Print a stored crawl's pages done and queued, its items and top hosts.",
    )
    p.add_argument("state", metavar="STATE_FILE")
    p.add_argument("--top", type=int, default=10, help="hosts to list (10)")
    p.add_argument("--crawl-id", metavar="NAME", help="the crawl's name when STATE is redis://")
    p = sub.add_parser(
        "export",
        help="write the items of a crawl stored with --state",
        description="Write the items stored in a state file to JSON Lines, CSV or SQLite.",
    )
    p.add_argument("state", metavar="STATE_FILE")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="'-' for stdout")
    p.add_argument("--format", choices=["jsonl", "csv", "sqlite"])
    p.add_argument("--crawl-id", metavar="NAME", help="the crawl's name when STATE is redis://")


def _cmd_status(args: argparse.Namespace) -> int:
    from ._store import read_status

    st = trio.run(functools.partial(read_status, args.state, crawl_id=args.crawl_id, top=args.top))
    seeds = st.crawl.get("seeds") or []
    more = f" (+{len(seeds) - 1} more)" if len(seeds) > 1 else ""
    stats = st.stats
    print(f"crawl:      {st.location}")
    print(f"spider:     {st.crawl.get('spider', '?')}; seeds: {seeds[0] if seeds else '-'}{more}")
    if st.stop_reason == "finished":
        state = "finished"
    elif st.stop_reason:
        state = f"stopped ({st.stop_reason}); the same command resumes it"
    else:
        state = "not finished (running, or killed: the same command resumes it)"
    print(f"state:      {state}")
    print(
        f"pages:      {st.done:,} done, {st.queued:,} queued, "
        f"{st.in_flight:,} in flight (fetched again on resume)"
    )
    print(
        f"results:    {stats.get('pages_ok', 0):,} ok, {stats.get('pages_failed', 0):,} failed, "
        f"{st.items:,} items, {stats.get('requests', 0):,} requests"
    )
    for path, offset in st.outputs.items():
        print(f"output:     {path} ({offset:,} committed)")
    if st.hosts:
        print("hosts:      done       left  host")
        for host, done, left in st.hosts:
            print(f"            {done:<10,} {left:<5,} {host}")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from ._store import export_items

    count = trio.run(
        functools.partial(
            export_items, args.state, args.output, crawl_id=args.crawl_id, format=args.format
        )
    )
    if args.output != "-":
        print(f"{count:,} items written to {args.output}", file=sys.stderr)
    return EXIT_OK


def _state_store(args: argparse.Namespace, settings: Settings) -> Any:
    """The SQLite store of ``--state FILE``, the Redis store of ``--store URL``, or None (an
    in-memory crawl)."""
    from ._store import open_store

    if getattr(args, "store", None) or getattr(args, "crawl_id", None):
        if getattr(args, "state", None):
            raise SettingsError("--state and --store do not go together: choose one")
        if not args.store or not args.crawl_id:
            raise SettingsError("--store URL and --crawl-id NAME go together")
        extra = {"lease": args.lease} if args.lease is not None else {}
        return open_store(args.store, settings, crawl_id=args.crawl_id, **extra)
    if not getattr(args, "state", None):
        return None
    return open_store(args.state, settings)


def _resume_hint(crawler: Crawler, args: argparse.Namespace, stop_reason: str | None) -> None:
    state = getattr(args, "state", None)
    if not state or args.quiet:
        return
    if crawler.resumed:
        print(f"resumed the crawl stored in {state}", file=sys.stderr)
    if stop_reason != "finished":
        argv = getattr(args, "argv", None) or sys.argv[1:]
        command = shlex.join(["trio-crawler", *argv])
        print(f"crawl state saved in {state}; to resume, run: {command}", file=sys.stderr)


def _demo_port(state: str | None) -> int:
    """The port of a demo crawl stored in ``state`` (its seeds name it), else 0 (any)."""
    if not state or not os.path.exists(state):
        return 0
    from ._store import read_status

    for seed in trio.run(read_status, state).crawl.get("seeds") or ():
        port = urlsplit(str(seed)).port
        if port:
            return port
    return 0


def _settings_from(args: argparse.Namespace, spider: Spider) -> Settings:
    values: dict[str, Any] = dict(spider.custom_settings)
    for name in _SETTING_FLAGS:
        value = getattr(args, name, None)
        if value is None:
            continue
        values[name] = tuple(value) if isinstance(value, list) else value
    if getattr(args, "report", None):
        values["link_graph"] = True  # the report lists every page that links to a broken URL
    if args.header:
        headers: dict[str, str] = {}
        for raw in args.header:
            name, sep, value = raw.partition(":")
            if not sep or not name.strip():
                raise SettingsError(f"header must be 'NAME: VALUE', not {raw!r}")
            headers[name.strip()] = value.strip()
        values["headers"] = headers
    for entry in getattr(args, "proxy_rules", None) or ():
        host, sep, target = entry.partition("=")
        if not sep or not host:
            raise SettingsError(f"--proxy-rule takes HOST=URL or HOST=direct, not {entry!r}")
        values["proxy_rules"] = (*values.get("proxy_rules", ()), (host, target))
    for entry in getattr(args, "credentials", None) or ():
        host, sep, secret = entry.partition("=")
        if not sep:
            raise SettingsError(
                f"--auth takes HOST=USER:PASSWORD or HOST=bearer:TOKEN, not {entry!r}"
            )
        values["credentials"] = (*values.get("credentials", ()), (host, secret))
    try:
        return Settings(**values)
    except TypeError as exc:
        raise SettingsError(str(exc)) from None


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise SettingsError(f"malformed URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"malformed URL {url!r}: need http:// or https:// and a host")


def _configure_logging(args: argparse.Namespace) -> None:
    if args.log_level:
        level = getattr(logging, args.log_level)
    elif args.quiet:
        level = logging.ERROR
    else:
        level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    if args.log_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("trio_crawler")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json

        return json.dumps(
            {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def _output_targets(args: argparse.Namespace, default_stdout: bool) -> list[str]:
    targets: list[str] = args.output or (["-"] if default_stdout else [])
    return targets


async def _run_crawl(crawler: Crawler, args: argparse.Namespace) -> int:
    from ._report import open_crawl_report

    report = open_crawl_report(crawler, args)  # None without --report
    interrupted = 0
    live = sys.stderr.isatty() and not args.quiet
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                nonlocal interrupted
                async for _ in signals:
                    interrupted += 1
                    if interrupted == 1:
                        print(
                            "\ninterrupted: finishing in-flight pages (Ctrl-C again to abort)",
                            file=sys.stderr,
                            flush=True,
                        )
                        crawler.stop("interrupted")
                        nursery.start_soon(abort_after_grace)
                    else:
                        nursery.cancel_scope.cancel()
                        return

            async def abort_after_grace() -> None:
                # in-flight pages get a bounded time to finish (a hung server cannot hold
                # the stop for a whole request timeout); what is left goes back to the frontier
                await trio.sleep(STOP_GRACE_SECONDS)
                print("interrupted: in-flight pages abandoned", file=sys.stderr, flush=True)
                nursery.cancel_scope.cancel()

            async def run_and_finish() -> None:
                try:
                    await crawler.run()
                finally:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(watch_signals)
            if not args.quiet:
                nursery.start_soon(
                    lambda: show_progress(crawler, live=live, interval=args.progress_interval)
                )
            nursery.start_soon(run_and_finish)
    stats = crawler.statistics()
    if args.stats_json:
        try:
            write_stats_json(stats, args.stats_json)
        except OSError as exc:
            print(f"trio-crawler: cannot write {args.stats_json}: {exc}", file=sys.stderr)
    if not args.quiet:
        print_summary(stats)
    _resume_hint(crawler, args, stats.stop_reason)
    report_failed = report is not None and not await report.write(stats)
    if interrupted:
        return EXIT_INTERRUPTED
    if stats.stop_reason in ("fail_fast", "error"):
        return EXIT_FAILED
    return EXIT_FAILED if report_failed else EXIT_OK


def _cmd_spiders() -> int:
    for name, cls in spider_names().items():
        print(f"{name:<12} {cls.description}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import demo_site
    from .spiders.generic import GenericSpider
    from .testing import serve_site

    if args.pages < 1:
        print("trio-crawler: error: --pages must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    site = demo_site(args.pages)

    for name, value in (("per_host_delay", 0.0), ("per_host_concurrency", 16)):
        if getattr(args, name, None) is None:
            setattr(args, name, value)  # politeness lifted: the demo server is our own
    try:
        settings = _settings_from(args, GenericSpider())
    except CrawlerError as exc:
        print(f"trio-crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def run() -> int:
        async with trio.open_nursery() as nursery:
            port = _demo_port(args.state)
            server = await nursery.start(functools.partial(serve_site, site, port=port))
            print(f"demo site: {server.url('/')} ({args.pages} pages)", file=sys.stderr)
            spider = GenericSpider(start_urls=(server.url("/"),))
            crawler = Crawler(
                spider,
                settings,
                outputs=_output_targets(args, default_stdout=False),
                output_format=args.format,
                store=_state_store(args, settings),
                processes=args.processes,
            )
            code = await _run_crawl(crawler, args)
            nursery.cancel_scope.cancel()
        for target in args.output or ():
            print(f"records written to {target}", file=sys.stderr)
        if args.stats_json:
            print(f"statistics written to {args.stats_json}", file=sys.stderr)
        return code

    return _guarded(lambda: trio.run(run))


def _parse_spider_args(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SettingsError(f"--arg takes NAME=VALUE, not {pair!r}")
        out[name] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else list(argv))[:1] == ["_worker"]:
        from ._worker import worker_main  # a process of a --processes crawl

        return worker_main((sys.argv[1:] if argv is None else list(argv))[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "spiders":
        return _cmd_spiders()
    if args.command == "report":
        from ._report import report_main

        return report_main(args)
    if args.command in ("status", "export"):
        command = _cmd_status if args.command == "status" else _cmd_export
        return _guarded(lambda: command(args))
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    _configure_logging(args)
    if args.command == "demo":
        return _cmd_demo(args)
    if args.command == "worker":
        return _guarded(lambda: _cmd_worker(args))
    try:
        if args.command == "crawl":
            from .spiders.generic import GenericSpider

            for url in args.urls:
                _check_url(url)
            spider: Spider = GenericSpider(start_urls=tuple(args.urls))
            start_urls = None
        else:
            cls = load_spider(args.spider)
            spider = cls(**_parse_spider_args(args.arg))
            start_urls = args.start_urls
            for url in start_urls or ():
                _check_url(url)
        settings = _settings_from(args, spider)
        crawler = Crawler(
            spider,
            settings,
            start_urls=start_urls,
            outputs=_output_targets(
                args, default_stdout=args.command == "crawl" and not args.store
            ),
            output_format=args.format,
            store=_state_store(args, settings),
            processes=args.processes,
        )
    except CrawlerError as exc:
        print(f"trio-crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(crawler, args)


def _cmd_worker(args: argparse.Namespace) -> int:
    """Join a crawl kept in Redis: its spider, seeds, scope and shared settings come from the
    store; this worker's own flags (concurrency, outputs...) apply on top."""
    from ._store.redis_conn import SHARED_SETTINGS, read_crawl

    if not args.store or not args.crawl_id:
        raise SettingsError("worker needs --store redis://HOST:PORT/DB and --crawl-id NAME")
    if args.state:
        raise SettingsError("--state and --store do not go together: choose one")
    stored = trio.run(read_crawl, args.store, args.crawl_id)
    crawl, shared = stored["crawl"], stored["settings"]
    ref = args.spider
    name = str(crawl.get("spider", ""))
    if ref is None:
        module, _, cls_name = name.rpartition(".")
        if module.startswith("_trio_crawler_user_"):
            raise SettingsError(
                f"the crawl's spider {cls_name} was loaded from a file: pass "
                "--spider path/to/file.py:" + cls_name
            )
        ref = f"{module}:{cls_name}"
    cls = load_spider(ref)
    spider = cls(**{str(k): str(v) for k, v in (crawl.get("spider_args") or {}).items()})
    for name in ("scope", "sort_query"):
        if getattr(args, name, None) is None and name in crawl:
            setattr(args, name, crawl[name])
    for name, flag in (
        ("allowed_domains", "allowed_domains"),
        ("denied_domains", "denied_domains"),
        ("include_patterns", "include_patterns"),
        ("exclude_patterns", "exclude_patterns"),
    ):
        if not getattr(args, flag, None) and crawl.get(name):
            setattr(args, flag, list(crawl[name]))
    for name in SHARED_SETTINGS:
        if getattr(args, name, None) is None and shared.get(name) is not None:
            value = shared[name]
            setattr(args, name, list(value) if isinstance(value, list) else value)
    settings = _settings_from(args, spider)
    extra: dict[str, Any] = {}
    if crawl.get("strip_params") is not None:
        extra["strip_params"] = tuple(crawl["strip_params"])
    if crawl.get("sort_query") is not None:
        extra["sort_query"] = crawl["sort_query"]
    if extra:
        settings = settings.replace(**extra)
    crawler = Crawler(
        spider,
        settings,
        start_urls=[str(s) for s in crawl.get("seeds") or []],
        outputs=_output_targets(args, default_stdout=False),
        output_format=args.format,
        store=_state_store(args, settings),
        processes=args.processes,
    )
    return _run(crawler, args)


def _run(crawler: Crawler, args: argparse.Namespace) -> int:
    """trio.run the crawl; a CrawlerError (bad output, store) is one line, not a traceback."""
    return _guarded(lambda: trio.run(_run_crawl, crawler, args))


def _guarded(run: Any) -> int:
    try:
        code: int = run()
    except (CrawlerError, BaseExceptionGroup) as exc:
        error = _find_crawler_error(exc)
        if error is None:
            raise
        print(f"trio-crawler: error: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, SettingsError) else EXIT_FAILED
    return code


def _find_crawler_error(exc: BaseException) -> CrawlerError | None:
    if isinstance(exc, CrawlerError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_crawler_error(inner)
            if found is not None:
                return found
    return None


def entry() -> NoReturn:
    sys.exit(main())
