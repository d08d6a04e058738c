"""The broad-crawl benchmark (issue 20): thousands of hosts answering late, default politeness.

Run it through ``scripts/bench_broad`` (which makes sure the project venv exists)::

    scripts/bench_broad                          # 2,000 hosts x 10 pages, 3 runs, medians
    scripts/bench_broad --vs scrapy              # interleaved with Scrapy's broad-crawl settings
    scripts/bench_broad --hosts 20000 --pages 5 --runs 1
    scripts/bench_broad --https                  # every host over TLS (a local CA, --ca-bundle)
    scripts/bench_broad --resolver dns           # names from a local DNS server, not /etc/hosts
    scripts/bench_broad --slow-dns 50            # ... which answers 50 ms late
    scripts/bench_broad --crawler-args '--processes 2 --split hosts'   # both cores, hosts split

What it does:

1. the site (``bench_broad_site``): N hosts x P pages of ~10 KB, deterministic; each host has its
   own name (``h00042.bench.test``) and loopback address (127.1.0.42), a robots.txt with a
   disallowed path that some pages link to, and links to pages of its own host and to other
   hosts, so that hosts are found progressively, breadth-first, from a handful of seeds;
2. the ideal crawler (``bench_broad_sim``): a zero-CPU breadth-first crawl of the same site under
   the same politeness, simulated, and the bound from politeness alone;
3. name resolution: by default a block of ``ADDRESS NAME`` lines in /etc/hosts, between marker
   lines, removed on every way out (``bench_broad_hosts``); with ``--resolver dns`` a local DNS
   server instead (``bench_broad_dns``), seen only by the crawlers, which run in a private mount
   namespace whose /etc/resolv.conf names it (the machine's resolver is never changed);
4. the server (``bench_broad_server``): a few asyncio worker processes on one port (uvloop,
   SO_REUSEPORT), answering each request after its injected latency and logging every arrival
   at the time the kernel received it (SO_TIMESTAMPNS);
5. the runs: ``trio-crawler crawl SEEDS --scope any --allow-private -c N`` with the default
   politeness (2 requests in flight per host, 0.25 s between two starts, robots.txt obeyed) and,
   with ``--vs scrapy``, Scrapy with its documented broad-crawl settings
   (``bench_broad_scrapy_spider.py``), interleaved, each measured from outside (wall time, CPU
   of its process tree, peak RSS) while the server logs what it saw;
6. the report: pages/s, the ratio to the ideal crawler, CPU per page, RSS, requests per
   connection, per-host politeness as the server saw it (gaps between arrivals at one host,
   requests in flight at one host), and the check: every page found once, nothing else,
   nothing robots.txt disallows fetched, no host asked for a page before its robots.txt, no
   host with more requests in flight than allowed. Per run, a note compares the run with the
   same crawl limited only by a CPU that does as many requests a second as the run's busiest
   second (``bench_broad_sim.simulate_cpu``): what the CPU explains, and what is lost
   elsewhere (the ramp, the tail, startup and exit).

It prints figures and never judges speed. Exit status: 0, or 1 when a correctness check failed,
or 2 when setup failed (one line on stderr saying why).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import math
import os
import resource
import select
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import bench_broad_hosts
import bench_procs
from bench_broad_analysis import GAP_LIMIT, ServerView, analyse, merge, problems
from bench_broad_server import read_log
from bench_broad_sim import Ideal, politeness_bound, simulate, simulate_cpu
from bench_broad_site import Site
from bench_procs import Measured, SetupError
from bench_site import Check, check_output

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
EXIT_CHECK_FAILED = 1
EXIT_SETUP_FAILED = 2
DEFAULT_PORT = 18480
DNS_ADDRESS = "127.0.0.153"
NOFILE = 200_000
TOOLS = ("uvloop", "trustme")


# --------------------------------------------------------------------------- the server


@dataclasses.dataclass
class Worker:
    process: subprocess.Popen[bytes]
    index: int

    def command(self, line: str, timeout: float = 60.0) -> str:
        """Send a command line, return the worker's one-line answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        return _read_line(self.process, timeout)


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline().decode().strip() if ready else ""
    if not line:
        code = process.poll()
        raise SetupError(
            f"server worker {process.pid} did not answer"
            + (f" (exit status {code})" if code is not None else "")
        )
    return line


@dataclasses.dataclass
class Servers:
    """The server's workers and the optional DNS server: their logs and CPU."""

    site: Site
    workers: list[Worker]
    dns: subprocess.Popen[bytes] | None
    run_dir: Path

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of the HTTP workers and of the DNS server."""
        http = sum(bench_procs.tree_cpu_seconds(w.process.pid) for w in self.workers)
        dns = bench_procs.tree_cpu_seconds(self.dns.pid) if self.dns else 0.0
        return http, dns

    def dns_queries(self) -> int:
        """Queries the DNS server has answered so far (0 without one)."""
        if self.dns is None:
            return 0
        worker = Worker(self.dns, -1)
        words = worker.command("count").split()
        return int(words[1]) if len(words) == 2 and words[1].isdigit() else 0

    def collect(self, into: Path | None) -> list[Path]:
        """Each worker dumps (and clears) its log; into ``into`` or thrown away."""
        paths = []
        for w in self.workers:
            path = (into / f"server-{w.index}.log") if into else self.run_dir / "discard.log"
            answer = w.command(f"dump {path}")
            if not answer.startswith("ok"):
                raise SetupError(f"server worker {w.index}: {answer}")
            paths.append(path)
        return paths

    def view(self, paths: Sequence[Path], per_host_limit: int) -> ServerView:
        arrays, counters = merge(read_log(p) for p in paths)
        return analyse(self.site, arrays, counters, per_host_limit=per_host_limit)


@contextlib.contextmanager
def run_servers(
    args: argparse.Namespace, site: Site, tools_python: str, run_dir: Path, tls: Path | None
) -> Iterator[Servers]:
    run_dir.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        workers = []
        for index in range(args.server_workers):
            cmd = [
                tools_python,
                str(SCRIPTS / "bench_broad_server.py"),
                "--site",
                json.dumps(site.to_json()),
                "--port",
                str(site.port),
                "--worker",
                str(index),
                "--workers",
                str(args.server_workers),
                "--loop",
                args.server_loop,
            ]
            if tls:
                cmd += ["--tls", str(tls / "cert.pem"), str(tls / "key.pem")]
            with open(run_dir / f"server-{index}.stderr", "wb") as err:
                process = subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    start_new_session=True,
                )
            started.append(process)
            if _read_line(process, 30) != "ready":
                raise SetupError(f"server worker {index} did not start")
            workers.append(Worker(process, index))
        dns = None
        if args.resolver == "dns":
            cmd = [
                tools_python,
                str(SCRIPTS / "bench_broad_dns.py"),
                "--listen",
                DNS_ADDRESS,
                "--hosts",
                str(site.hosts),
                "--delay",
                str(args.slow_dns / 1000),
            ]
            with open(run_dir / "dns.stderr", "wb") as err:
                dns = subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    start_new_session=True,
                )
            started.append(dns)
            if _read_line(dns, 30) != "ready":
                raise SetupError(
                    f"the DNS server did not start on {DNS_ADDRESS}:53: "
                    + bench_procs.tail(run_dir / "dns.stderr")
                )
        yield Servers(site, workers, dns, run_dir)
    finally:
        for process in started:
            bench_procs.stop_process_group(process, signal.SIGTERM, grace=5)


# --------------------------------------------------------------------------- name resolution


@contextlib.contextmanager
def resolution(args: argparse.Namespace, site: Site, bench_dir: Path) -> Iterator[list[str]]:
    """Make the site's names resolve for the crawlers; yields the command prefix that runs a
    crawler where they resolve (empty for /etc/hosts)."""
    if args.resolver == "hosts":
        entries = ((site.address(h), site.host_name(h)) for h in range(site.hosts))
        with bench_broad_hosts.hosts_block(entries) as count:
            cost = _lookup_cost(site.host_name(site.hosts - 1))
            print(
                f"names: {count} lines in /etc/hosts (removed on exit); glibc's getaddrinfo "
                f"reads the file line by line, {cost * 1000:.2f} ms of CPU a name here "
                "(trio-crawler reads it once; --resolver dns: names from a DNS server)",
                flush=True,
            )
            yield []
        return
    ns = bench_dir / "netns"
    ns.mkdir(parents=True, exist_ok=True)
    (ns / "resolv.conf").write_text(
        f"# scripts/bench_broad: the crawlers' resolver\nnameserver {DNS_ADDRESS}\n"
        "options timeout:5 attempts:2\n"
    )
    (ns / "nsswitch.conf").write_text("hosts: files dns\n")
    probe = subprocess.run(
        ["unshare", "--mount", "--", "true"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        raise SetupError(f"'unshare --mount' does not work here: {probe.stderr.strip()}")
    slow = f", answering {args.slow_dns:g} ms late" if args.slow_dns else ""
    print(
        f"names: a DNS server on {DNS_ADDRESS}:53{slow}, seen by the crawlers only "
        "(a private mount namespace binds its resolv.conf)",
        flush=True,
    )
    script = (
        'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/nsswitch.conf '
        '&& shift 2 && exec "$@"'
    )
    yield [
        "unshare",
        "--mount",
        "--",
        "sh",
        "-c",
        script,
        "bench-ns",
        str(ns / "resolv.conf"),
        str(ns / "nsswitch.conf"),
    ]


def _lookup_cost(name: str, tries: int = 5) -> float:
    """CPU seconds of one system-resolver lookup of ``name``."""
    start = time.process_time()
    for _ in range(tries):
        try:
            socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise SetupError(f"{name} does not resolve through /etc/hosts: {exc}") from None
    return (time.process_time() - start) / tries


def make_tls(tools_python: str, directory: Path) -> Path:
    """A local CA and a certificate for ``*.bench.test`` (trustme, ECDSA): ca.pem, cert.pem,
    key.pem in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    if all((directory / n).exists() for n in ("ca.pem", "cert.pem", "key.pem")):
        return directory
    code = (
        "import sys, trustme\n"
        "d = sys.argv[1]\n"
        "ca = trustme.CA(organization_name='trio-crawler bench_broad')\n"
        "leaf = ca.issue_cert('*.bench.test')\n"
        "ca.cert_pem.write_to_path(d + '/ca.pem')\n"
        "open(d + '/cert.pem', 'wb').write(b''.join(b.bytes() for b in leaf.cert_chain_pems))\n"
        "leaf.private_key_pem.write_to_path(d + '/key.pem')\n"
    )
    try:
        subprocess.run(
            [tools_python, "-c", code, str(directory)], check=True, capture_output=True, timeout=60
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise SetupError(f"could not make the local CA: {exc}") from None
    return directory


# --------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class Run:
    crawler: str
    index: int
    measured: Measured
    check: Check
    server: ServerView
    server_cpu: float
    dns_cpu: float
    other_cpu: float
    ideal: float
    dns_queries: int
    note: str = ""  # why a run failed outside the checks (exit status, timeout)
    cpu_bound: float = math.nan  # simulate_cpu at the run's busiest second (see print_notes)

    @property
    def failures(self) -> list[str]:
        out = [self.note] if self.note else []
        if not self.check.ok:
            out.append("output " + self.check.summary())
        return out + problems(self.server)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def pages_per_s(self) -> float:
        return self.check.pages / self.measured.wall if self.measured.wall else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return self.measured.cpu / self.check.pages * 1000 if self.check.pages else math.nan

    @property
    def x_ideal(self) -> float:
        return self.measured.wall / self.ideal if self.ideal else math.nan


@dataclasses.dataclass(frozen=True)
class Context:
    args: argparse.Namespace
    site: Site
    expected: set[str]
    servers: Servers
    prefix: list[str]
    runs_dir: Path
    tls: Path | None
    ideal: Ideal
    per_host_limit: int


def _fresh_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.is_file():
            child.unlink()
    return path


def trio_command(ctx: Context, out: Path, stats: Path) -> list[str]:
    tls = ["--ca-bundle", str(ctx.tls / "ca.pem")] if ctx.tls else []
    return [
        str(ROOT / ".venv" / "bin" / "trio-crawler"),
        "crawl",
        *ctx.site.seed_urls(),
        "--scope",
        "any",
        "--allow-private",
        "-c",
        str(ctx.args.concurrency),
        "-o",
        str(out),
        "--quiet",
        "--stats-json",
        str(stats),
        *tls,
        *shlex.split(ctx.args.crawler_args),
    ]


def scrapy_command(ctx: Context, out: Path, stats: Path) -> list[str]:
    venv = Path(ctx.args.bench_dir) / "scrapy-venv"
    return [
        str(venv / "bin" / "scrapy"),
        "runspider",
        str(SCRIPTS / "bench_broad_scrapy_spider.py"),
        "-a",
        "seeds=" + ",".join(ctx.site.seed_urls()),
        "-a",
        f"stats_file={stats}",
        "-s",
        f"CONCURRENT_REQUESTS={ctx.args.concurrency}",
        "-O",
        str(out),
    ]


def one_run(ctx: Context, crawler: str, index: int) -> Run:
    d = _fresh_dir(ctx.runs_dir / f"{crawler}-{index}")
    out, stats = d / "out.jsonl", d / "stats.json"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    if crawler == "trio-crawler":
        cmd = trio_command(ctx, out, stats)
        url_key, error_key = "final_url", "error_kind"
    else:
        cmd = scrapy_command(ctx, out, stats)
        url_key, error_key = "url", None
    servers = ctx.servers
    servers.collect(None)  # whatever came before this run is not part of it
    queries0 = servers.dns_queries()
    busy0 = bench_procs.machine_busy_seconds()
    http0, dns0 = servers.cpu()
    self0 = sum(os.times()[:2])
    m = bench_procs.run_measured(
        ctx.prefix + cmd,
        timeout=ctx.args.timeout,
        stdout=d / "stdout.log",
        stderr=d / "stderr.log",
        cwd=d,
        env=env,
    )
    self1 = sum(os.times()[:2])
    http1, dns1 = servers.cpu()
    busy1 = bench_procs.machine_busy_seconds()
    view = servers.view(servers.collect(d), ctx.per_host_limit)
    queries = servers.dns_queries() - queries0
    check = check_output(out, ctx.expected, "none://-", url_key, error_key=error_key)
    server_cpu, dns_cpu = http1 - http0, dns1 - dns0
    other = (busy1 - busy0) - m.cpu - server_cpu - dns_cpu - (self1 - self0)
    cpu_bound = math.nan
    if view.peak_rate and view.missing == 0:
        cpu_bound = simulate_cpu(
            ctx.site,
            rate=view.peak_rate,
            concurrency=ctx.args.concurrency,
            per_host=ctx.per_host_limit,
            started_first=crawler == "trio-crawler",
        ).wall
    note = ""
    if m.timed_out:
        note = f"timed out after {m.wall:.0f} s"
    elif m.returncode != 0:
        note = f"exit status {m.returncode}: {bench_procs.tail(d / 'stderr.log')}"
    return Run(
        crawler=crawler,
        index=index,
        measured=m,
        check=check,
        server=view,
        server_cpu=server_cpu,
        dns_cpu=dns_cpu,
        other_cpu=max(0.0, other),
        ideal=ctx.ideal.wall,
        dns_queries=queries,
        note=note,
        cpu_bound=cpu_bound,
    )


# --------------------------------------------------------------------------- reporting

Number = float | int | None


@dataclasses.dataclass(frozen=True)
class Column:
    title: str
    width: int
    get: Callable[[Run], Number]
    spec: str


def _ms(seconds: float) -> float | None:
    return None if math.isinf(seconds) else seconds * 1000


COLUMNS = (
    Column("wall s", 7, lambda r: r.measured.wall, ".2f"),
    Column("pages/s", 7, lambda r: r.pages_per_s, ".0f"),
    Column("x ideal", 7, lambda r: r.x_ideal, ".2f"),
    Column("CPU ms/page", 11, lambda r: r.cpu_ms_per_page, ".3f"),
    Column("RSS MB", 6, lambda r: r.measured.tree_rss_mb, ".0f"),
    Column("requests", 8, lambda r: r.server.requests, ".0f"),
    Column("conns", 6, lambda r: r.server.connections, ".0f"),
    Column("req/conn", 8, lambda r: r.server.per_connection, ".2f"),
    Column("min gap ms", 10, lambda r: _ms(r.server.min_gap), ".1f"),
    Column("p1 gap ms", 9, lambda r: _ms(r.server.p1_gap), ".1f"),
    Column("gaps<245", 8, lambda r: r.server.gaps_below, ".0f"),
    Column("max inflight", 12, lambda r: r.server.max_in_flight, ".0f"),
    Column("server CPU s", 12, lambda r: r.server_cpu + r.dns_cpu, ".2f"),
    Column("other CPU s", 11, lambda r: r.other_cpu, ".2f"),
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
    return _line(run.crawler, str(run.index), cells, "OK" if run.ok else "FAIL")


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
        if runs:
            print(median_row(runs))
    trio = by_crawler.get("trio-crawler", [])
    for name, others in by_crawler.items():
        if name == "trio-crawler" or not trio or not others:
            continue
        t = _median(trio, lambda r: r.pages_per_s)
        o = _median(others, lambda r: r.pages_per_s)
        if t and o:
            print(f"\ntrio-crawler / {name}, pages/s (medians): {t / o:.2f}x")
            pairs = [
                f"{a.pages_per_s / b.pages_per_s:.2f}x"
                for a, b in zip(trio, others, strict=False)
                if a.pages_per_s and b.pages_per_s
            ]
            print(f"the same, pair by pair (interleaved runs): {', '.join(pairs)}")
        tc = _median(trio, lambda r: r.cpu_ms_per_page)
        oc = _median(others, lambda r: r.cpu_ms_per_page)
        if tc and oc:
            print(f"{name} / trio-crawler, CPU per page (medians): {oc / tc:.2f}x")
    print(
        "\nwall: start to exit of the crawler; x ideal: wall / the ideal breadth-first crawler's;"
        " CPU: user+sys of the crawler's\nprocess tree; RSS: peak of its sampled tree RSS. "
        "requests, conns (opened), req/conn, gaps and in-flight: as the server saw them\n"
        f"(gaps between two arrivals at one host; gaps<245: how many below "
        f"{GAP_LIMIT * 1000:.0f} ms; max inflight: most requests arrived and not yet answered at"
        " one host).\nserver CPU s: the server's workers (and DNS server) over the run; other "
        "CPU s: the rest of the machine (noise: keep it near 0)."
    )


def print_notes(runs: Sequence[Run]) -> None:
    print()
    for run in runs:
        v, c = run.server, run.check
        notes = [
            f"{v.requests} requests ({v.robots_fetches} robots.txt) on {v.connections} "
            f"connections ({v.idle_connections} never used) to {v.hosts} hosts",
            f"{v.gaps_below} of {v.gaps} gaps below {GAP_LIMIT * 1000:.0f} ms "
            f"({v.gaps_below_after_robots} of them right after robots.txt)",
            f"the server answered {v.late_p50 * 1000:.1f} / {v.late_p99 * 1000:.1f} / "
            f"{v.late_max * 1000:.1f} ms (p50 / p99 / max) after the injected latency",
            f"peak RSS of one process {run.measured.maxrss_mb:.0f} MB, "
            f"{run.measured.processes} processes",
        ]
        m = run.measured
        if m.started and v.first_arrival == v.first_arrival:
            notes.append(
                f"first request {(v.first_arrival - m.started) * 1000:.0f} ms after the launch, "
                f"exit {(m.started + m.wall - v.last_answer) * 1000:.0f} ms after the last answer"
            )
        if run.cpu_bound == run.cpu_bound:
            order = "started hosts first" if run.crawler == "trio-crawler" else "in turn"
            notes.append(
                f"busiest second {v.peak_rate} requests; a crawl whose only limit is a CPU "
                f"doing that many a second ({order}) takes {run.cpu_bound:.2f} s of this run's "
                f"{v.span:.2f} s from the first request to the last answer"
            )
        if run.dns_queries:
            notes.append(f"{run.dns_queries} DNS queries ({run.dns_cpu:.2f} CPU s)")
        if v.robots_repeated:
            notes.append(f"robots.txt fetched more than once at {v.robots_repeated} hosts")
        if c.robots_skipped:
            notes.append(f"{c.robots_skipped} disallowed URLs recorded, not fetched")
        if v.other_fetches:
            notes.append(f"{v.other_fetches} requests for paths outside the site (404)")
        if v.unanswered:
            notes.append(f"{v.unanswered} requests unanswered (connection closed first)")
        if v.unstamped:
            notes.append(
                f"{v.unstamped} reads without the kernel's receive time (stamped when read: "
                "their gaps may be shorter than sent)"
            )
        if run.other_cpu > 0.1 * run.measured.wall:
            notes.append(
                f"the machine was busy with other work ({run.other_cpu:.1f} CPU s over "
                f"{run.measured.wall:.1f} s): the figures are pessimistic"
            )
        status = "OK" if run.ok else "FAIL: " + "; ".join(run.failures)
        print(f"{run.crawler} run {run.index}: {status}\n  " + "; ".join(notes))
        if not c.ok:
            for line in c.details():
                print("  " + line.strip())


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench_broad",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--hosts", type=int, default=2000, help="hosts in the site")
    parser.add_argument("--pages", type=int, default=10, help="pages per host")
    parser.add_argument("--runs", type=int, default=3, help="runs per crawler; medians reported")
    parser.add_argument(
        "--vs", action="append", default=[], choices=["scrapy"], help="also crawl with this"
    )
    parser.add_argument("--https", action="store_true", help="every host over TLS")
    parser.add_argument("--latency", type=float, default=50.0, help="ms before each answer")
    parser.add_argument("--jitter", type=float, default=20.0, help="+/- ms around the latency")
    parser.add_argument(
        "-c", "--concurrency", type=int, default=256, help="requests in flight over all hosts"
    )
    parser.add_argument(
        "--crawler-args",
        default="",
        help="extra trio-crawler crawl flags, one shell string (write --crawler-args='--flag' "
        "for a single flag)",
    )
    parser.add_argument(
        "--resolver",
        choices=["hosts", "dns"],
        help="names from /etc/hosts (default) or from a local DNS server (default with --slow-dns)",
    )
    parser.add_argument(
        "--slow-dns",
        type=float,
        default=0.0,
        metavar="MS",
        help="the local DNS server answers this late (implies --resolver dns)",
    )
    parser.add_argument("--seeds", type=int, default=4, help="hosts whose roots are the seeds")
    parser.add_argument("--fanout", type=int, default=8, help="child hosts per host")
    parser.add_argument("--server-workers", type=int, default=2, help="server processes")
    parser.add_argument("--server-loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--port", type=int, help="server port (18480; 18481 with --https)")
    parser.add_argument("--bench-dir", default="/tmp/trio-crawler-bench-broad")
    parser.add_argument(
        "--timeout", type=float, help="seconds per crawl run; unset: 120 + pages/40"
    )
    parser.add_argument("--scrapy-spec", default="scrapy", help="what pip installs for --vs")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _per_host_limit(crawler_args: str) -> int:
    words = shlex.split(crawler_args)
    for i, word in enumerate(words):
        if word == "--per-host-concurrency" and i + 1 < len(words):
            return int(words[i + 1])
        if word.startswith("--per-host-concurrency="):
            return int(word.partition("=")[2])
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.hosts, args.pages, args.runs, args.concurrency, args.server_workers) < 1:
        print(
            "bench_broad: --hosts, --pages, --runs, -c and --server-workers must be at least 1",
            file=sys.stderr,
        )
        return EXIT_SETUP_FAILED
    if args.slow_dns:
        if args.resolver == "hosts":
            print("bench_broad: --slow-dns needs --resolver dns", file=sys.stderr)
            return EXIT_SETUP_FAILED
        args.resolver = "dns"
    args.resolver = args.resolver or "hosts"
    if args.port is None:
        args.port = DEFAULT_PORT + (1 if args.https else 0)
    if args.timeout is None:
        args.timeout = 120 + args.hosts * args.pages / 40
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _main(args)
    except SetupError as exc:
        print(f"bench_broad: setup failed: {exc}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    except (OSError, ValueError) as exc:
        print(f"bench_broad: setup failed: {exc}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    except KeyboardInterrupt:
        print("\nbench_broad: interrupted", file=sys.stderr)
        return 130


def _raise_nofile() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        want = hard
    return want


LOCK = Path("/tmp/trio-crawler-bench-broad.lock")


def _lock() -> int:
    """One benchmark at a time on the machine (they share /etc/hosts and the ports): an
    exclusive lock held until this process exits."""
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise SetupError(f"another scripts/bench_broad is running (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _main(args: argparse.Namespace) -> int:
    bench_procs.compile_package(ROOT / "trio_crawler")  # no run pays for compiling it
    _lock()
    stale = bench_broad_hosts.remove_stale()
    if stale:
        print(f"removed a stale block of {stale} lines from /etc/hosts (an earlier run's)")
    bench_dir = Path(args.bench_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    nofile = _raise_nofile()
    tools_python = bench_procs.ensure_venv(bench_dir / "tools-venv", TOOLS, TOOLS)
    scrapy_version = None
    if "scrapy" in args.vs:
        scrapy_version = bench_procs.ensure_scrapy(bench_dir / "scrapy-venv", args.scrapy_spec)
    if not bench_procs.port_is_free(args.port):
        raise SetupError(f"port {args.port} is busy (--port)")
    site = Site(
        hosts=args.hosts,
        pages=args.pages,
        port=args.port,
        https=args.https,
        seeds=args.seeds,
        fanout=args.fanout,
        latency=args.latency / 1000,
        jitter=args.jitter / 1000,
    )
    tls = make_tls(tools_python, bench_dir / "tls") if args.https else None
    t0 = time.perf_counter()
    links = {(h, i): ls for h, i, ls in site.page_links()}
    ideal = simulate(site, concurrency=args.concurrency, links=links)
    uncapped = simulate(site, concurrency=10**9, links=links)
    bound = politeness_bound(site, links=links)
    sim_time = time.perf_counter() - t0
    del links
    expected = site.expected_urls()
    total = site.hosts * site.pages
    print(
        f"site: {site.hosts} hosts x {site.pages} pages ({total} pages, ~10 KB each) over "
        f"{site.scheme}, port {site.port}; {site.seeds} seed hosts, {site.fanout} child hosts "
        f"per host; answers {site.latency * 1000:g} +/- {site.jitter * 1000:g} ms late\n"
        f"ideal breadth-first crawler (no CPU cost; robots.txt first, 2 per host, 0.25 s "
        f"between starts, -c {args.concurrency}): {ideal.wall:.2f} s ({total / ideal.wall:.0f} "
        f"pages/s, {ideal.max_in_flight} in flight at most); without the -c cap "
        f"{uncapped.wall:.2f} s; strict bound from politeness alone: {bound:.2f} s "
        f"(simulated in {sim_time:.1f} s)\n"
        f"server: {args.server_workers} {args.server_loop} workers on 0.0.0.0:{site.port}; "
        f"descriptor limit {nofile}\n"
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
        + (f", {scrapy_version}" if scrapy_version else ""),
        flush=True,
    )
    runs_dir = bench_dir / "runs"
    crawlers = ["trio-crawler", *dict.fromkeys(args.vs)]
    by_crawler: dict[str, list[Run]] = {c: [] for c in crawlers}
    with (
        resolution(args, site, bench_dir) as prefix,
        run_servers(args, site, tools_python, bench_dir / "server", tls) as servers,
    ):
        ctx = Context(
            args,
            site,
            expected,
            servers,
            prefix,
            runs_dir,
            tls,
            ideal,
            _per_host_limit(args.crawler_args),
        )
        print("trio-crawler:", shlex.join(trio_command(ctx, Path("OUT"), Path("STATS"))))
        if "scrapy" in args.vs:
            print(
                "scrapy: runspider scripts/bench_broad_scrapy_spider.py (the Broad Crawls "
                f"settings, CONCURRENT_REQUESTS={args.concurrency}, 2 per domain, 0.25 s delay)"
            )
        print("\n" + header(), flush=True)
        for index in range(1, args.runs + 1):
            for crawler in crawlers:
                run = one_run(ctx, crawler, index)
                by_crawler[crawler].append(run)
                print(run_row(run), flush=True)
    print_table(by_crawler)
    all_runs = [r for runs in by_crawler.values() for r in runs]
    print_notes(all_runs)
    return 0 if all(r.ok for r in all_runs) else EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())
