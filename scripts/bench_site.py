"""The crawl benchmark (issue 8): a generated static site served by nginx, crawled end to end.

Run it through ``scripts/bench`` (which makes sure the project venv exists)::

    scripts/bench                       # 20,000 pages, 3 runs of trio-crawler, medians
    scripts/bench --vs scrapy           # interleaved with Scrapy's stock spider, and the ratio
    scripts/bench --vs naive-httpx --vs naive-h11   # and the issue's yardstick crawlers
    scripts/bench --pages 5000 --runs 1 --crawler-args '--max-retries 0'
    scripts/bench --profile             # one crawl under cProfile, the top 25 by tottime
    scripts/bench --render --runs 1     # rendered: 2,000 pages whose links a script makes
    scripts/bench --render --vs crawlee-browser   # and Crawlee's PlaywrightCrawler on them

What it does:

1. generates the site (``bench_gen``: deterministic, cached in ``--bench-dir``) and the set of
   pages a correct crawl fetches;
2. serves it with nginx on 127.0.0.1 (one worker, access log off, a child of this process,
   stopped by its PID whatever happens);
3. runs ``trio-crawler crawl`` with the documented flags that lift the per-host limits for one's
   own server (``-c N --per-host-concurrency N --delay 0``; robots.txt obeyed), on both cores
   (``--processes 2``) with the durable store on (a fresh ``--state`` file per run), and with
   ``--vs scrapy`` Scrapy's stock CrawlSpider (``bench_scrapy_spider.py``) from a throwaway
   venv, runs interleaved; with ``--vs naive-httpx`` / ``--vs naive-h11`` the issue's naive
   yardstick crawler (``bench_naive.py``: what this machine does compared with the issue's);
4. measures each run from outside: wall time, CPU (user+sys from ``wait4``), ``ru_maxrss`` and
   the sampled RSS of the whole process tree; requests from the crawler's own statistics and
   from nginx's counter;
5. checks the set of status-200 URLs in the output against the expected set: each expected page
   exactly once, nothing else (no /private/ page: robots.txt), no failures.

``--render``: the scripted variant of the site (``bench_gen``: no link in the HTML, a small
script makes them), crawled with ``--render`` in one process (Chromium takes the other core)
with ``--render-concurrency 4``, 2,000 pages by default. CPU and memory are the crawler's plus
its Chromium's (``bench_procs.TreeCpu``: Chromium is killed, not reaped, so ``wait4`` alone
would miss it); the notes give the tree's PSS early, midway and late in the run (flat or
not). ``--vs crawlee-browser``: Crawlee for Python's ``PlaywrightCrawler``
(``bench_crawlee_browser.py``, a throwaway venv) on the same pages, same Chromium binary,
same number of pages at once.

It prints figures and never judges speed. Exit status: 0, or 1 when a correctness check failed,
or 2 when setup failed (one line on stderr saying why).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import io
import json
import os
import pstats
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from site import getsitepackages
from urllib.parse import urlsplit

import bench_gen
import bench_procs
from bench_procs import Measured, SetupError

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
DEFAULT_PORT = 18765
EXIT_CHECK_FAILED = 1
EXIT_SETUP_FAILED = 2


# --------------------------------------------------------------------------- the check


@dataclasses.dataclass(frozen=True)
class Check:
    """How a crawl's output compares with the expected page set."""

    pages: int  # expected pages found with status 200 (each counted once)
    missing: list[str]
    extra: list[str]
    duplicates: list[str]
    other_status: collections.Counter[str]  # non-200 records by status / error kind
    examples_other: list[str]
    bad_lines: int
    robots_skipped: int  # records of URLs robots.txt disallowed, not fetched (not a failure)
    tolerated: list[str]  # duplicates the caller expects (Scrapy's start URL)

    @property
    def ok(self) -> bool:
        return not (
            self.missing or self.extra or self.duplicates or self.other_status or self.bad_lines
        )

    def summary(self) -> str:
        if self.ok:
            return "OK"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        if self.extra:
            parts.append(f"{len(self.extra)} extra")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicated")
        if self.other_status:
            parts.append(f"{sum(self.other_status.values())} non-200")
        if self.bad_lines:
            parts.append(f"{self.bad_lines} unreadable lines")
        return "FAIL: " + ", ".join(parts)

    def details(self, first: int = 5) -> list[str]:
        lines = []
        for name, urls in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("duplicated", self.duplicates),
        ):
            if urls:
                lines.append(f"  {name} ({len(urls)}): " + ", ".join(sorted(urls)[:first]))
        if self.other_status:
            counts = ", ".join(f"{k}: {v}" for k, v in self.other_status.most_common())
            lines.append(f"  non-200 records ({counts}): " + ", ".join(self.examples_other[:first]))
        return lines


def check_output(
    out: Path,
    expected: set[str],
    origin: str,
    url_key: str,
    *,
    error_key: str | None = None,
    tolerate_duplicates: frozenset[str] = frozenset(),
) -> Check:
    """Compare the status-200 records of a JSONL output (``url_key``: the fetched URL) with
    the expected paths. The fragment is ignored (it is never sent); any query is kept.

    A non-200 record is a failure, except a record of a URL the crawler did not fetch because
    robots.txt disallows it (``error_key`` says ``robots``) when that URL is not an expected
    page: trio-crawler's generic spider records every URL it tried, fetched or not. A path in
    ``tolerate_duplicates`` may be fetched twice.
    """
    netloc = urlsplit(origin).netloc
    seen: collections.Counter[str] = collections.Counter()
    other: collections.Counter[str] = collections.Counter()
    examples: list[str] = []
    bad = 0
    robots_skipped = 0
    try:
        lines = out.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            record = json.loads(line)
            url = record[url_key]
            status = record.get("status")
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        parts = urlsplit(url)
        key = parts.path + (f"?{parts.query}" if parts.query else "")
        key = key if parts.netloc == netloc else url
        if status != 200:
            if error_key and record.get(error_key) == "robots" and key not in expected:
                robots_skipped += 1
                continue
            kind = str(status) if status is not None else "error"
            if error_key and record.get(error_key):
                kind += f"/{record[error_key]}"
            other[kind] += 1
            if len(examples) < 20:
                examples.append(f"{url} [{kind}]")
            continue
        seen[key] += 1
    found = set(seen)
    duplicates = sorted(k for k, v in seen.items() if v > 1)
    tolerated = [k for k in duplicates if k in tolerate_duplicates and seen[k] == 2]
    return Check(
        pages=len(found & expected),
        missing=sorted(expected - found),
        extra=sorted(found - expected),
        duplicates=[k for k in duplicates if k not in tolerated],
        other_status=other,
        examples_other=examples,
        bad_lines=bad,
        robots_skipped=robots_skipped,
        tolerated=tolerated,
    )


# --------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class Run:
    crawler: str
    index: int
    measured: Measured
    check: Check
    requests: int | None  # as the crawler counts them
    nginx_requests: int | None  # as nginx counts them
    nginx_cpu: float  # CPU seconds nginx used over the run
    other_cpu: float  # CPU seconds the rest of the machine used over the run (noise)
    note: str = ""  # why a run failed outside the check (exit status, timeout)

    @property
    def ok(self) -> bool:
        return self.check.ok and not self.note

    @property
    def pages_per_s(self) -> float:
        return self.check.pages / self.measured.wall if self.measured.wall else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return self.measured.cpu / self.check.pages * 1000 if self.check.pages else float("nan")


@dataclasses.dataclass(frozen=True)
class Context:
    args: argparse.Namespace
    site: Path
    origin: str
    expected: set[str]
    nginx: bench_procs.Nginx
    runs_dir: Path


def _fresh_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.is_file():
            child.unlink()
    return path


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _exit_note(m: Measured, stderr: Path) -> str:
    if m.timed_out:
        return f"timed out after {m.wall:.0f} s"
    if m.returncode != 0:
        return f"exit status {m.returncode}: {bench_procs.tail(stderr)}"
    return ""


def trio_command(ctx: Context, out: Path, stats: Path) -> list[str]:
    n = str(ctx.args.concurrency)
    # the durable store on, as the issue asks: a fresh state file beside each run's output
    state = [] if ctx.args.no_state else ["--state", str(out.parent / "state.db")]
    return [
        str(ROOT / ".venv" / "bin" / "trio-crawler"),
        "crawl",
        ctx.origin + "/",
        "-o",
        str(out),
        "--quiet",
        "--stats-json",
        str(stats),
        "-c",
        n,
        "--per-host-concurrency",
        n,
        "--delay",
        "0",
        "--obey-robots",
        "--processes",
        str(ctx.args.processes),
        *state,
        *(
            ["--render", "--render-concurrency", str(ctx.args.render_concurrency)]
            if ctx.args.render
            else []
        ),
        *shlex.split(ctx.args.crawler_args),
    ]


@dataclasses.dataclass(frozen=True)
class Around:
    """What the server and the rest of the machine did while one crawl ran."""

    nginx_requests: int | None
    nginx_cpu: float
    other_cpu: float
    nginx_errors: list[str]  # what nginx logged at level error or worse: the run is invalid


def _nginx_errors(log: Path, offset: int) -> list[str]:
    try:
        with open(log, errors="replace") as f:
            f.seek(offset)
            text = f.read()
    except OSError:
        return []
    levels = ("[error]", "[crit]", "[alert]", "[emerg]")
    return [line for line in text.splitlines() if any(level in line for level in levels)]


def measure_around(ctx: Context, run: Callable[[], Measured]) -> tuple[Measured, Around]:
    nginx_pid = ctx.nginx.process.pid
    log = ctx.nginx.run_dir / "error.log"
    log_offset = log.stat().st_size
    requests0 = ctx.nginx.requests_served()
    busy0 = bench_procs.machine_busy_seconds()
    nginx0 = bench_procs.tree_cpu_seconds(nginx_pid)
    self0 = sum(os.times()[:2])
    m = run()
    self1 = sum(os.times()[:2])
    nginx1 = bench_procs.tree_cpu_seconds(nginx_pid)
    busy1 = bench_procs.machine_busy_seconds()
    requests1 = ctx.nginx.requests_served()
    # nginx's counter counts both status requests themselves: the one before and this one.
    requests = requests1 - requests0 - 1 if requests0 is not None and requests1 else None
    if requests is None:
        print(f"bench: nginx's counter unavailable: {ctx.nginx.last_error}", file=sys.stderr)
    other = (busy1 - busy0) - m.cpu - (nginx1 - nginx0) - (self1 - self0)
    errors = _nginx_errors(log, log_offset)
    return m, Around(requests, nginx1 - nginx0, max(0.0, other), errors)


def _run(
    ctx: Context,
    crawler: str,
    index: int,
    cmd: list[str],
    check: Callable[[Path], Check],
    requests_key: str,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """One measured crawl; its output is ``out.jsonl`` and its statistics ``stats.json`` in
    its own directory under ``runs/`` (kept for inspection until the next run)."""
    d = ctx.runs_dir / f"{crawler}-{index}"
    m, around = measure_around(
        ctx,
        lambda: bench_procs.run_measured(
            cmd,
            timeout=ctx.args.timeout,
            stdout=d / "stdout.log",
            stderr=d / "stderr.log",
            cwd=cwd or d,
            env=env,
            pss=ctx.args.render,
        ),
    )
    requests = _read_json(d / "stats.json").get(requests_key)
    return Run(
        crawler=crawler,
        index=index,
        measured=m,
        check=check(d / "out.jsonl"),
        requests=requests if isinstance(requests, int) else None,
        nginx_requests=around.nginx_requests,
        nginx_cpu=around.nginx_cpu,
        other_cpu=around.other_cpu,
        note=_exit_note(m, d / "stderr.log")
        or (
            f"nginx logged {len(around.nginx_errors)} errors ({around.nginx_errors[0]})"
            if around.nginx_errors
            else ""
        ),
    )


def run_trio(ctx: Context, index: int) -> Run:
    d = _fresh_dir(ctx.runs_dir / f"trio-crawler-{index}")
    return _run(
        ctx,
        "trio-crawler",
        index,
        trio_command(ctx, d / "out.jsonl", d / "stats.json"),
        lambda out: check_output(
            out, ctx.expected, ctx.origin, "final_url", error_key="error_kind"
        ),
        "requests",
        cwd=ROOT,
    )


def _venv_env() -> dict[str, str]:
    """The environment of a tool run from a venv of its own: none of ours leaks in."""
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}


def run_scrapy(ctx: Context, index: int) -> Run:
    d = _fresh_dir(ctx.runs_dir / f"scrapy-{index}")
    venv = Path(ctx.args.bench_dir) / "scrapy-venv"
    cmd = [
        str(venv / "bin" / "scrapy"),
        "runspider",
        str(SCRIPTS / "bench_scrapy_spider.py"),
        "-a",
        f"start_url={ctx.origin}/",
        "-a",
        f"stats_file={d / 'stats.json'}",
        "-O",
        str(d / "out.jsonl"),
    ]
    # Scrapy's start requests are dont_filter=True: its stock spider fetches the start URL a
    # second time when a page links to it. Known behaviour, one request: tolerated, reported.
    # cwd: the run's directory, without a scrapy.cfg, so no project settings leak in.
    return _run(
        ctx,
        "scrapy",
        index,
        cmd,
        lambda out: check_output(
            out, ctx.expected, ctx.origin, "url", tolerate_duplicates=frozenset({"/"})
        ),
        "downloader/request_count",
        env=_venv_env(),
    )


def run_crawlee_browser(ctx: Context, index: int) -> Run:
    d = _fresh_dir(ctx.runs_dir / f"crawlee-browser-{index}")
    venv = Path(ctx.args.bench_dir) / "crawlee-venv"
    cmd = [
        str(venv / "bin" / "python"),
        str(SCRIPTS / "bench_crawlee_browser.py"),
        f"{ctx.origin}/",
        str(d / "out.jsonl"),
        str(d / "stats.json"),
        "--chromium",
        ctx.args.chromium,
        "-c",
        str(ctx.args.render_concurrency),
    ]
    return _run(
        ctx,
        "crawlee-browser",
        index,
        cmd,
        lambda out: check_output(out, ctx.expected, ctx.origin, "url"),
        "requests",
        env=_venv_env(),
    )


def _naive_runner(name: str) -> Callable[[Context, int], Run]:
    client = name.removeprefix("naive-")

    def run_naive(ctx: Context, index: int) -> Run:
        d = _fresh_dir(ctx.runs_dir / f"{name}-{index}")
        cmd = [
            str(ROOT / ".venv" / "bin" / "python"),
            str(SCRIPTS / "bench_naive.py"),
            f"{ctx.origin}/",
            str(d / "out.jsonl"),
            str(d / "stats.json"),
            "--client",
            client,
        ]
        return _run(
            ctx,
            name,
            index,
            cmd,
            lambda out: check_output(out, ctx.expected, ctx.origin, "url"),
            "requests",
        )

    return run_naive


# --------------------------------------------------------------------------- reporting

Number = float | int | None


@dataclasses.dataclass(frozen=True)
class Column:
    title: str
    width: int
    get: Callable[[Run], Number]
    spec: str


COLUMNS = (
    Column("wall s", 7, lambda r: r.measured.wall, ".2f"),
    Column("pages/s", 7, lambda r: r.pages_per_s, ".0f"),
    Column("CPU s/1k", 8, lambda r: r.cpu_per_1k, ".2f"),
    Column("peak RSS MB", 11, lambda r: r.measured.maxrss_mb, ".0f"),
    Column("tree RSS MB", 11, lambda r: r.measured.tree_rss_mb, ".0f"),
    Column("requests", 8, lambda r: r.requests, ".0f"),
    Column("nginx req", 9, lambda r: r.nginx_requests, ".0f"),
    Column("nginx CPU s", 11, lambda r: r.nginx_cpu, ".2f"),
    Column("other CPU s", 11, lambda r: r.other_cpu, ".2f"),
    Column("pages", 6, lambda r: r.check.pages, ".0f"),
)


def _fmt(value: Number, spec: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec)


def _line(crawler: str, run: str, cells: Sequence[str], check: str) -> str:
    numbers = "  ".join(f"{v:>{c.width}}" for v, c in zip(cells, COLUMNS, strict=True))
    return f"{crawler:<12}  {run:<6}  {numbers}  {check}"


def header() -> str:
    return _line("crawler", "run", [c.title for c in COLUMNS], "check")


def run_row(run: Run) -> str:
    cells = [_fmt(c.get(run), c.spec) for c in COLUMNS]
    return _line(
        run.crawler, str(run.index), cells, "OK" if run.ok else run.note or run.check.summary()
    )


def _median(runs: Sequence[Run], get: Callable[[Run], Number]) -> float | None:
    values = [v for v in map(get, runs) if v is not None and v == v]
    return statistics.median(values) if values else None


def median_row(runs: Sequence[Run]) -> str:
    failed = sum(not r.ok for r in runs)
    cells = [_fmt(_median(runs, c.get), c.spec) for c in COLUMNS]
    check = "OK" if not failed else f"FAIL ({failed}/{len(runs)} runs)"
    return _line(runs[0].crawler, "median", cells, check)


def print_table(by_crawler: dict[str, list[Run]]) -> None:
    top = header()
    print()
    print(top)
    print("-" * len(top))
    for runs in by_crawler.values():
        for run in runs:
            print(run_row(run))
    print("-" * len(top))
    for runs in by_crawler.values():
        print(median_row(runs))
    trio = by_crawler.get("trio-crawler")
    for name, others in by_crawler.items():
        if trio and others and name != "trio-crawler":
            print_ratios(trio, name, others)
    print(
        "\npeak RSS: ru_maxrss of the crawler (largest single process); tree RSS: sampled sum "
        "over its process tree.\nrequests: the crawler's own count (robots.txt included); "
        "nginx req: nginx's counter over the run.\nother CPU s: "
        "what the rest of the machine used meanwhile (noise: keep it near 0)."
    )


def print_ratios(trio: Sequence[Run], name: str, others: Sequence[Run]) -> None:
    t_speed = _median(trio, lambda r: r.pages_per_s)
    o_speed = _median(others, lambda r: r.pages_per_s)
    t_cpu = _median(trio, lambda r: r.cpu_per_1k)
    o_cpu = _median(others, lambda r: r.cpu_per_1k)
    if t_speed and o_speed:
        print(f"\ntrio-crawler / {name}, pages/s (medians): {t_speed / o_speed:.2f}x")
        # runs i of both ran back to back: their ratio shows how much the machine drifted
        pairs = [
            f"{t.pages_per_s / o.pages_per_s:.2f}x"
            for t, o in zip(trio, others, strict=False)
            if t.pages_per_s and o.pages_per_s
        ]
        if len(pairs) > 1:
            print(f"the same, run by run (interleaved pairs): {', '.join(pairs)}")
    if t_cpu and o_cpu:
        print(f"{name} / trio-crawler, CPU s per 1k pages (medians): {o_cpu / t_cpu:.2f}x")


def print_notes(runs: Sequence[Run]) -> None:
    """What each run did besides the expected pages; the details of any failure."""
    print()
    for run in runs:
        c = run.check
        notes = []
        if c.robots_skipped:
            notes.append(
                f"{c.robots_skipped} URLs recorded as disallowed by robots.txt, not fetched"
            )
        if run.other_cpu > 0.1 * run.measured.wall:
            notes.append(
                f"the machine was busy with other work ({run.other_cpu:.1f} CPU s over "
                f"{run.measured.wall:.1f} s): its figures are pessimistic"
            )
        if c.tolerated:
            notes.append(f"fetched twice (tolerated): {', '.join(c.tolerated)}")
        if run.measured.tree_pss_mb:
            m = run.measured
            at = [m.memory_at(f) for f in (0.1, 0.5, 0.9)]
            notes.append(
                "tree PSS at 10/50/90 % of the run: "
                + " / ".join(f"{pss:.0f}" for _, pss in at)
                + f" MB (RSS {' / '.join(f'{rss:.0f}' for rss, _ in at)}), "
                f"peak PSS {m.tree_pss_mb:.0f} MB"
            )
        status = "OK" if run.ok else (run.note or c.summary())
        print(
            f"{run.crawler} run {run.index}: {status}" + (f"; {'; '.join(notes)}" if notes else "")
        )
        if not run.ok:
            for line in c.details():
                print(line)


# --------------------------------------------------------------------------- profile


def profile(ctx: Context) -> int:
    d = _fresh_dir(ctx.runs_dir / "profile")
    out, stats, prof = d / "out.jsonl", d / "stats.json", d / "crawl.prof"
    cmd = trio_command(ctx, out, stats)
    cmd = [
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "cProfile",
        "-o",
        str(prof),
        "-m",
        "trio_crawler",
        *cmd[1:],
    ]
    print("profiling:", shlex.join(cmd), flush=True)
    m = bench_procs.run_measured(
        cmd,
        timeout=ctx.args.timeout * 3,
        stdout=d / "stdout.log",
        stderr=d / "stderr.log",
        cwd=ROOT,
    )
    check = check_output(out, ctx.expected, ctx.origin, "final_url", error_key="error_kind")
    note = _exit_note(m, d / "stderr.log")
    print(
        f"\nunder cProfile: {check.pages} pages in {m.wall:.2f} s ({check.pages / m.wall:.0f} "
        f"pages/s), CPU {m.cpu:.2f} s; check: {note or check.summary()}"
    )
    for line in check.details():
        print(line)
    if check.robots_skipped:
        print(f"{check.robots_skipped} URLs recorded as disallowed by robots.txt, not fetched")
    if prof.exists():
        print(f"\nprofile: {prof} (top {ctx.args.profile_top} by {ctx.args.profile_sort})\n")
        text = io.StringIO()
        pstats.Stats(str(prof), stream=text).sort_stats(ctx.args.profile_sort).print_stats(
            ctx.args.profile_top
        )
        # Shorter file names: the project's, site-packages' and the stdlib's prefixes go.
        prefixes = {str(ROOT), sysconfig.get_paths()["stdlib"], *getsitepackages()}
        for prefix in sorted(prefixes, key=len, reverse=True):
            text = io.StringIO(text.getvalue().replace(prefix.rstrip("/") + "/", ""))
        print(text.getvalue().strip("\n"))
    else:
        print("no profile written", file=sys.stderr)
    return 0 if check.ok and not note else EXIT_CHECK_FAILED


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--pages", type=int, help="site size (public pages; 20,000, with --render 2,000)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per crawler; medians reported")
    parser.add_argument(
        "-c",
        "--concurrency",
        type=int,
        help="trio-crawler's -c and --per-host-concurrency (128; with --render 16)",
    )
    parser.add_argument(
        "--processes", type=int, help="trio-crawler's --processes (2: both cores; --render: 1)"
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="the scripted site (links made by a script), crawled with --render",
    )
    parser.add_argument(
        "--render-concurrency", type=int, default=4, help="pages rendering at once (--render)"
    )
    parser.add_argument(
        "--chromium",
        default=shutil.which("chromium-headless-shell") or "chromium-headless-shell",
        help="the Chromium binary --vs crawlee-browser is pointed at",
    )
    parser.add_argument(
        "--no-state",
        action="store_true",
        help="without the durable store (by default each run writes a fresh --state file)",
    )
    parser.add_argument(
        "--crawler-args", default="", help="extra trio-crawler crawl flags (one shell string)"
    )
    parser.add_argument(
        "--vs",
        action="append",
        default=[],
        choices=["scrapy", "naive-httpx", "naive-h11", "crawlee-browser"],
        help="also crawl with this, interleaved (repeatable); naive-*: the issue's yardstick, "
        "scripts/bench_naive.py",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one trio-crawler crawl under cProfile instead of the benchmark",
    )
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--profile-sort", default="tottime")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="nginx port (a free one is picked when it is busy; the site is per port)",
    )
    parser.add_argument("--bench-dir", default="/tmp/trio-crawler-bench")
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds per crawl run; unset: 120 + pages/20 (--render: pages/2)",
    )
    parser.add_argument("--scrapy-spec", default="scrapy", help="what pip installs for --vs")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.pages is None:
        args.pages = 2000 if args.render else 20_000
    if args.concurrency is None:
        args.concurrency = 16 if args.render else 128
    if args.processes is None:
        args.processes = 1 if args.render else 2
    if "crawlee-browser" in args.vs and not args.render:
        print("bench: --vs crawlee-browser needs --render", file=sys.stderr)
        return EXIT_SETUP_FAILED
    if args.pages < 1 or args.runs < 1 or args.concurrency < 1:
        print("bench: --pages, --runs and -c must be at least 1", file=sys.stderr)
        return EXIT_SETUP_FAILED
    if args.timeout is None:
        args.timeout = 120 + args.pages / (2 if args.render else 20)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    try:
        return _main(args)
    except SetupError as exc:
        print(f"bench: setup failed: {exc}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    bench_procs.compile_package(ROOT / "trio_crawler")  # no run pays for compiling it
    bench_dir = Path(args.bench_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(bench_dir, 0o755)  # nginx's worker (user nobody) reads the site
    nginx_bin = bench_procs.ensure_nginx()
    scrapy_version = None
    if "scrapy" in args.vs:
        scrapy_version = bench_procs.ensure_scrapy(bench_dir / "scrapy-venv", args.scrapy_spec)
    if "crawlee-browser" in args.vs:
        bench_procs.ensure_venv(
            bench_dir / "crawlee-venv", ["crawlee[playwright]"], ["crawlee", "playwright"]
        )
    port = args.port if bench_procs.port_is_free(args.port) else bench_procs.free_port()
    scripted = args.render
    cached = bench_gen.is_generated(bench_dir, args.pages, port, scripted=scripted)
    if not cached:
        print(f"generating the site ({args.pages} pages)...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    site = bench_gen.generate(bench_dir, args.pages, port, scripted=scripted)
    gen_time = time.perf_counter() - t0
    meta = json.loads((site / "meta.json").read_text())
    expected = bench_gen.expected_paths(site)
    origin = f"http://127.0.0.1:{port}"
    nginx_version = subprocess.run(
        [nginx_bin, "-v"], capture_output=True, text=True, timeout=30
    ).stderr.strip()
    print(
        f"site: {site} ({meta['pages']} pages + {meta['private_pages']} under /private/, "
        f"{meta['bytes'] / 2**20:.0f} MB, {meta['links'] / meta['pages']:.1f} links/page; "
        f"{'cached' if cached else f'generated in {gen_time:.1f} s'})\n"
        f"expected: {len(expected)} pages with status 200\n"
        f"server: {nginx_version} on {origin} (1 worker)\n"
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
        + (f", {scrapy_version}" if scrapy_version else ""),
        flush=True,
    )
    with bench_procs.run_nginx(nginx_bin, site / "www", port, bench_dir / "nginx") as nginx:
        ctx = Context(args, site, origin, expected, nginx, bench_dir / "runs")
        if args.profile:
            return profile(ctx)
        print("trio-crawler:", shlex.join(trio_command(ctx, Path("OUT"), Path("STATS"))))
        if "scrapy" in args.vs:
            print("scrapy: runspider scripts/bench_scrapy_spider.py (CrawlSpider, 16 concurrent)")
        if "crawlee-browser" in args.vs:
            print(
                f"crawlee-browser: scripts/bench_crawlee_browser.py (PlaywrightCrawler, "
                f"{args.render_concurrency} at once, {args.chromium})"
            )
        by_crawler: dict[str, list[Run]] = {"trio-crawler": []}
        runners: list[Callable[[Context, int], Run]] = [run_trio]
        others = {"scrapy": run_scrapy, "crawlee-browser": run_crawlee_browser}
        for other in dict.fromkeys(args.vs):
            by_crawler[other] = []
            runners.append(others.get(other) or _naive_runner(other))
        print("\n" + header(), flush=True)
        for index in range(1, args.runs + 1):
            for runner in runners:
                run = runner(ctx, index)
                by_crawler[run.crawler].append(run)
                print(run_row(run), flush=True)
    print_table(by_crawler)
    all_runs = [r for runs in by_crawler.values() for r in runs]
    print_notes(all_runs)
    return 0 if all(r.ok for r in all_runs) else EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())
