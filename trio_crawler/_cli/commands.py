"""The commands: each turns its arguments into a crawl (or a reading of a stored one), checks
everything it was given before it opens anything (:mod:`.checks`), and runs it
(:mod:`.running`)."""

from __future__ import annotations

import argparse
import atexit
import functools
import gc
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

import trio

from .._crawl import Crawler
from .._exceptions import CrawlerError, SettingsError, find_crawler_error
from .._export.text import flush_standard_streams
from .._progress import Display, JsonFormatter
from .._registry import load_spider, spider_names
from .._settings import Settings
from .._spider import Request, Spider
from .._store import CrawlStore
from .._worker import worker_main
from .checks import check_outputs, check_seeds, check_url
from .parser import build_parser, settings_from
from .running import EXIT_OK, EXIT_USAGE, guarded, run_crawl

#: The ``trio-crawler`` process's collector threshold for its youngest generation. On
#: ``scripts/bench_broad --crawler-args='--processes 2 --split hosts'`` each process spent
#: 0.40-0.50 s of its 5.5-6.6 s of CPU in garbage collections at CPython's 700 (some 480 of
#: them), 0.02 s at this (2). What a failed fetch leaves in reference cycles (about 25
#: objects, a few KB: measured for timeouts and corrupt bodies) waits a little longer.
GC_YOUNG_THRESHOLD = 50_000


def cli() -> NoReturn:
    """The ``trio-crawler`` command and ``python -m trio_crawler``: :func:`main`, then the
    process ends at once.

    When :func:`main` returns, every output is closed and flushed and every worker process
    has exited. What the interpreter would still do is free the crawl's objects one at a
    time: 0.2-0.3 s after a crawl of 2,000 hosts (``scripts/bench_broad``: "exit ... ms
    after the last answer"). The exit handlers still run (logging's flush, temporary
    directories), then the standard streams are flushed. A thread that is not a daemon,
    should one still run, gets the usual exit that waits for it; so does an exception.
    """
    # What exists now (the modules) lives as long as the process: garbage collections no
    # longer scan it (a full one is some 50 ms in a broad crawl), and forked workers share its
    # memory pages instead of copying those a collection writes to (CPython's advice for fork
    # without exec). Not in main(): a program that calls it keeps its own collector as it is.
    gc.freeze()
    # The youngest generation is collected after GC_YOUNG_THRESHOLD more container objects
    # than were freed, not CPython's 700: a page's objects are nearly all freed by reference
    # counting before that, so collections become rare instead of one every few pages.
    gc.set_threshold(GC_YOUNG_THRESHOLD)
    code = main()
    atexit._run_exitfuncs()
    flush_standard_streams()
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """``trio-crawler``: parse, dispatch, and turn every expected error into an exit code."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list[:1] == ["_worker"]:  # a process of a --processes crawl (a new interpreter)
        return worker_main(args_list[1:])
    try:
        return _dispatch(args_list)
    except BrokenPipeError:
        # the reader of our output went away (`status ... | head -1`): like `yes | head`
        from .._export.text import silence

        silence(sys.stdout)
        silence(sys.stderr)
        return EXIT_OK


def _dispatch(argv: list[str]) -> int:
    parser = build_parser(_spider_to_describe(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "spiders":
        for name, cls in spider_names().items():
            print(f"{name:<12} {cls.description}")
        return EXIT_OK
    if args.command == "report":
        from .._report import report_main

        return report_main(args)
    if args.command in ("status", "export"):
        command = _cmd_status if args.command == "status" else _cmd_export
        return _stored(lambda: command(args))
    args.argv = argv
    display = Display(json_lines=args.log_json)
    _configure_logging(args)
    commands = {"crawl": _cmd_crawl, "run": _cmd_run, "demo": _cmd_demo, "worker": _cmd_worker}
    return guarded(lambda: commands[args.command](args, display), display)


def _spider_to_describe(argv: list[str]) -> type[Spider] | None:
    """For ``run SPIDER --help``: the spider, so that the help lists its arguments and items."""
    if argv[:1] != ["run"] or not {"-h", "--help"} & set(argv):
        return None
    ref = next((a for a in argv[1:] if not a.startswith("-")), None)
    if ref is None:
        return None
    try:
        return load_spider(ref)
    except CrawlerError:
        return None  # the help says what it can; running it says what is wrong


def _stored(run: Any) -> int:
    """``status`` and ``export``: every error reading the stored crawl is bad input (2)."""
    try:
        code: int = run()
    except (CrawlerError, BaseExceptionGroup) as exc:
        error = find_crawler_error(exc)
        if error is None:
            raise
        Display().error(str(error))
        return EXIT_USAGE
    return code


# ------------------------------------------------------------------------------ crawling
def _cmd_crawl(args: argparse.Namespace, display: Display) -> int:
    from ..spiders.generic import GenericSpider

    for url in args.urls:
        check_url(url)
    spider = GenericSpider(start_urls=tuple(args.urls))
    default_stdout = not args.store
    return _crawl(args, display, spider, None, default_stdout=default_stdout)


def _cmd_run(args: argparse.Namespace, display: Display) -> int:
    cls = load_spider(args.spider)
    spider = cls(**_spider_args(args.arg))
    for url in args.start_urls or ():
        check_url(url)
    return _crawl(args, display, spider, args.start_urls, default_stdout=False)


def _crawl(
    args: argparse.Namespace,
    display: Display,
    spider: Spider,
    start_urls: Sequence[str] | None,
    *,
    default_stdout: bool,
    stored: dict[str, Any] | None = None,
) -> int:
    """Settings, checks, the crawler, then the crawl: nothing is opened before all is checked."""
    settings = settings_from(args, spider, stored)
    outputs = args.output or (["-"] if default_stdout else [])
    start: Sequence[Request | str] = (
        list(start_urls) if start_urls is not None else list(spider.start_requests())
    )
    check_seeds(settings, spider, start)
    check_outputs(outputs, format=args.format, stats_json=args.stats_json, state=args.state)
    crawler = Crawler(
        spider,
        settings,
        start_urls=start_urls,
        outputs=outputs,
        output_format=args.format,
        store=_state_store(args, settings),
        processes=args.processes,
        split=args.split,
    )
    crawler.fork_workers(worker_main)  # before the event loop: workers that join at once
    return trio.run(run_crawl, crawler, args, display)


def _cmd_worker(args: argparse.Namespace, display: Display) -> int:
    """Join a crawl kept in Redis: its spider, seeds and identity (scope, URL rules:
    :attr:`Settings.IDENTITY`) and its shared settings come from the store; this worker's own
    flags (concurrency, outputs...) apply on top."""
    from .._store.redis_conn import SHARED_SETTINGS, read_crawl

    if not args.store or not args.crawl_id:
        raise SettingsError("worker needs --store redis://HOST:PORT/DB and --crawl-id NAME")
    if args.state:
        raise SettingsError("--state and --store do not go together: choose one")
    found = trio.run(read_crawl, args.store, args.crawl_id)
    crawl, shared = found["crawl"], found["settings"]
    ref = args.spider
    if ref is None:
        module, _, cls_name = str(crawl.get("spider", "")).rpartition(".")
        if module.startswith("_trio_crawler_user_"):
            raise SettingsError(
                f"the crawl's spider {cls_name} was loaded from a file: pass "
                "--spider path/to/file.py:" + cls_name
            )
        ref = f"{module}:{cls_name}"
    spider = load_spider(ref)(
        **{str(k): str(v) for k, v in (crawl.get("spider_args") or {}).items()}
    )
    stored = {name: crawl[name] for name in Settings.IDENTITY if crawl.get(name) is not None}
    stored |= {name: shared[name] for name in SHARED_SETTINGS if shared.get(name) is not None}
    seeds = [str(s) for s in crawl.get("seeds") or []]
    return _crawl(args, display, spider, seeds, default_stdout=False, stored=stored)


def _cmd_demo(args: argparse.Namespace, display: Display) -> int:
    from .._demo import demo_site
    from ..spiders.generic import GenericSpider
    from ..testing import serve_site

    site = demo_site(args.pages)
    for name, value in (("per_host_delay", 0.0), ("per_host_concurrency", 16)):
        if getattr(args, name, None) is None:
            setattr(args, name, value)  # politeness lifted: the demo server is our own
    settings = settings_from(args, GenericSpider())
    outputs = args.output or []
    check_outputs(outputs, format=args.format, stats_json=args.stats_json, state=args.state)

    async def run() -> int:
        async with trio.open_nursery() as nursery:
            port = _demo_port(args.state)
            server = await nursery.start(functools.partial(serve_site, site, port=port))
            display.say(f"demo site: {server.url('/')} ({args.pages} pages)")
            spider = GenericSpider(start_urls=(server.url("/"),))
            crawler = Crawler(
                spider,
                settings,
                outputs=outputs,
                output_format=args.format,
                store=_state_store(args, settings),
                processes=args.processes,
                split=args.split,
            )
            code = await run_crawl(crawler, args, display)
            nursery.cancel_scope.cancel()
        for target in outputs:
            display.say(f"records written to {target}")
        if args.stats_json:
            display.say(f"statistics written to {args.stats_json}")
        return code

    return trio.run(run)


def _demo_port(state: str | None) -> int:
    """The port of a demo crawl stored in ``state`` (its seeds name it), else 0 (any)."""
    if not state or not os.path.exists(state):
        return 0
    from .._store import read_status

    for seed in trio.run(read_status, state).crawl.get("seeds") or ():
        port = urlsplit(str(seed)).port
        if port:
            return port
    return 0


def _state_store(args: argparse.Namespace, settings: Settings) -> CrawlStore | None:
    """The SQLite store of ``--state FILE``, the Redis store of ``--store URL``, or None (an
    in-memory crawl)."""
    from .._store import open_store

    if args.store or args.crawl_id:
        if args.state:
            raise SettingsError("--state and --store do not go together: choose one")
        if not args.store or not args.crawl_id:
            raise SettingsError("--store URL and --crawl-id NAME go together")
        extra = {"lease": args.lease} if args.lease is not None else {}
        return open_store(args.store, settings, crawl_id=args.crawl_id, **extra)
    if not args.state:
        return None
    return open_store(args.state, settings)


def _spider_args(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SettingsError(f"--arg takes NAME=VALUE, not {pair!r}")
        out[name] = value
    return out


def _configure_logging(args: argparse.Namespace) -> None:
    """``-q``: errors only; default: warnings; ``-v``: what the crawl decides (INFO); ``-vv``
    or ``--log-level DEBUG``: every request too."""
    if args.log_level:
        level = getattr(logging, args.log_level)
    elif args.quiet:
        level = logging.ERROR
    else:
        level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    if args.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("trio_crawler")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


# ------------------------------------------------------------------------------ stored crawls
def _cmd_status(args: argparse.Namespace) -> int:
    from .._store import read_status

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
    from .._store import export_items

    check_outputs([args.output], format=args.format, state=args.state)
    count = trio.run(
        functools.partial(
            export_items, args.state, args.output, crawl_id=args.crawl_id, format=args.format
        )
    )
    if args.output != "-":
        print(f"{count:,} items written to {args.output}", file=sys.stderr)
    return EXIT_OK
