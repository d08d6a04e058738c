"""Peak RSS of a crawl with ``--state`` against the number of URLs it has discovered (issue 5).

A synthetic loopback site serves link pages on the fly: every page links to ``--links`` new,
never-seen URLs, so the frontier and the seen set grow by that much per page fetched. The
crawl runs in a subprocess (``python -m trio_crawler crawl URL --state FILE``); this script
polls the SQLite file for the number of URLs discovered and ``/proc/PID/status`` for the
crawler's RSS, and prints the peak RSS when each checkpoint is passed::

    .venv/bin/python scripts/bench_memory.py                       # 10k, 100k, 1M
    .venv/bin/python scripts/bench_memory.py --checkpoints 10000,100000 --links 100

The crawler is stopped (by its PID) once the last checkpoint is passed or after
``--max-seconds``. Exit status 0; 1 when the crawler died on its own.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import trio

from trio_crawler.testing import RecordedRequest, Response, Site, serve_site


def link_site(links: int) -> Site:
    def handler(request: RecordedRequest) -> Response:
        n = int(request.path.rsplit("/", 1)[1] or 0)
        body = "".join(f'<a href="/n/{n * links + i + 1}">.</a>' for i in range(links))
        return Response(body=f"<html><body>{body}</body></html>".encode())

    site = Site({"/robots.txt": Response(status=404)})
    site.default = handler
    return site


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def discovered(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT count(*) FROM frontier").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _size(workdir: Path) -> int:
    return sum(p.stat().st_size for p in workdir.iterdir())


async def run(args: argparse.Namespace) -> int:
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    db = workdir / "crawl.db"
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_site, link_site(args.links))
        command = [
            sys.executable, "-m", "trio_crawler", "crawl", server.url("/n/0"),
            "--state", str(db), "-o", str(workdir / "out.jsonl"), "-q",
            "-c", str(args.concurrency), "--per-host-concurrency", str(args.concurrency),
            "--delay", "0",
        ]  # fmt: skip
        print(f"$ {' '.join(command)}", file=sys.stderr)
        started = time.monotonic()
        proc = await trio.lowlevel.open_process(command)
        peak = 0
        code = 0
        print(f"{'discovered':>12} {'peak RSS MB':>12} {'pages fetched':>14} {'seconds':>8}")
        try:
            while checkpoints:
                await trio.sleep(args.poll)
                peak = max(peak, rss_kb(proc.pid))
                if proc.returncode is not None:
                    print(f"crawler exited with {proc.returncode}", file=sys.stderr)
                    code = 1
                    break
                found = await trio.to_thread.run_sync(discovered, db)
                while checkpoints and found >= checkpoints[0]:
                    fetched = len(server.requests)
                    elapsed = time.monotonic() - started
                    print(f"{checkpoints.pop(0):>12,} {peak / 1024:>12.1f} {fetched:>14,} "
                          f"{elapsed:>8.0f}", flush=True)  # fmt: skip
                if time.monotonic() - started > args.max_seconds:
                    print(f"stopped after {args.max_seconds:.0f}s at {found:,} discovered "
                          f"(peak RSS {peak / 1024:.1f} MB)")  # fmt: skip
                    break
        finally:
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGKILL)
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await proc.wait()
            nursery.cancel_scope.cancel()
    size = _size(workdir)
    print(f"state file and output: {size / 1e6:.0f} MB in {workdir}", file=sys.stderr)
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", default="10000,100000,1000000")
    parser.add_argument("--links", type=int, default=100, help="new links per page (100)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--poll", type=float, default=0.25)
    return trio.run(run, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
