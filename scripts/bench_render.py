"""Rendered pages per second, CPU per page and memory of the browser layer (issue 18).

Renders ``--pages`` simple pages, each with a small script (``/app.js``) that inserts
``--links`` links, ``--concurrency`` at a time. The pages are served on loopback by a
separate process (``--serve``, this script run as a child), so its CPU is not counted;
every request (the documents and the scripts) goes through the crawler's
:class:`~trio_crawler._http.Fetcher`, as a crawl would. Prints:

* rendered pages/s (after ``--warmup`` pages, which include the browser's start);
* CPU per page: this process (``getrusage``) plus the Chromium process tree (user +
  system of every live process, including the children they reaped);
* peak memory of this process plus the Chromium tree, sampled every 0.25 s: resident
  (RSS; sums shared pages once per process, so it overstates) and proportional (PSS);
* the same after ``--early`` pages and at the end (memory must stay flat).

The browser is not retired during the run (``max_renders_per_browser`` above ``--pages``)
unless ``--retire N`` says so, so the figures are those of one Chromium.

    .venv/bin/python scripts/bench_render.py                        # 2,000 pages, 4 at once
    .venv/bin/python scripts/bench_render.py --pages 400 --quiet 0.1 --concurrency 8

Measured on the shared 2-core machine while it was busy (load average 5-14: every figure
is a floor, the CPU per page the steadiest of them), chromium-headless-shell 150:

* defaults (quiet period 0.5 s, 20 pages per tab), 2,000 pages: 4.7 pages/s (bound by the
  quiet period: 4 pages at once can do at most 8/s), 110 ms of CPU per page (this process
  25, Chromium 85); peak RSS 975 MB (PSS 369); after 200 pages Chromium PSS 320 MB, this
  process 43 MB RSS; after 2,000 pages 300 MB and 50 MB: flat;
* quiet period 0.1 s, 400 pages: 9.8 pages/s, 100 ms per page (15 + 84);
* the same with a fresh context and tab per page (``--pages-per-tab 1``): 6.1 pages/s,
  146 ms per page (20 + 127).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import trio

from trio_crawler import Settings
from trio_crawler._browser import BrowserOptions, BrowserRequest, BrowserResponse, open_browser
from trio_crawler._browser.chromium import ProcessTreeUse, tree_use
from trio_crawler._http import Fetcher
from trio_crawler.testing import RecordedRequest, Response, Site, serve_site

APP_JS = """document.addEventListener("DOMContentLoaded", () => {{
  const nav = document.getElementById("nav");
  for (let i = 0; i < {links}; i++) {{
    const a = document.createElement("a");
    a.href = location.pathname + "/" + i; a.textContent = "link " + i;
    nav.appendChild(a);
  }}
}});"""


def site(links: int) -> Site:
    def page(request: RecordedRequest) -> Response:
        body = (
            f"<!doctype html><html><head><title>{request.path}</title>"
            '<script src="/app.js"></script></head>'
            f'<body><h1>{request.path}</h1><nav id="nav"></nav></body></html>'
        )
        return Response(body=body.encode())

    js = Response(
        body=APP_JS.format(links=links).encode(),
        headers=(("content-type", "application/javascript"),),
    )
    return Site({"/app.js": js}, default=page)


async def serve(links: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_site, site(links))
        print(server.port, flush=True)


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


class Sampler:
    def __init__(self) -> None:
        self.peak_rss = 0
        self.peak_pss = 0

    def sample(self, pids: list[int]) -> tuple[ProcessTreeUse, ProcessTreeUse]:
        own = tree_use([os.getpid()])
        chromium = tree_use(pids)
        self.peak_rss = max(self.peak_rss, own.rss + chromium.rss)
        self.peak_pss = max(self.peak_pss, own.pss + chromium.pss)
        return own, chromium


async def bench(args: argparse.Namespace, port: int) -> None:
    origin = f"http://127.0.0.1:{port}"
    settings = Settings(
        allowed_addresses=(f"127.0.0.1:{port}",),
        concurrency=64,
        per_host_concurrency=64,
        per_host_delay=0.0,
    )
    options = BrowserOptions(
        concurrency=args.concurrency,
        quiet_period=args.quiet,
        max_renders_per_browser=args.retire or args.pages + args.warmup + 1,
        pages_per_tab=args.pages_per_tab,
        extra_args=tuple(args.arg),
    )
    sampler = Sampler()
    marks: dict[str, tuple[ProcessTreeUse, ProcessTreeUse]] = {}
    done = 0
    links_found = 0
    cut = 0
    async with Fetcher(settings) as fetcher, open_browser(options) as browser:

        async def fetch_url(url: str) -> BrowserResponse:
            result = await fetcher.fetch(url)
            return BrowserResponse(result.status, result.headers.raw(), result.body)

        async def fetch(request: BrowserRequest) -> BrowserResponse:
            return await fetch_url(request.url)

        async def render(n: int) -> None:
            nonlocal done, links_found, cut
            url = f"{origin}/p/{n}"
            document = await fetch_url(url)
            rendered = await browser.render(url, document=document, fetch=fetch)
            links_found += rendered.html.count('<a href="/p/')
            cut += not rendered.settled
            done += 1

        async def run_pages(first: int, count: int) -> None:
            limiter = trio.CapacityLimiter(args.concurrency)

            async def one(n: int) -> None:
                async with limiter:
                    await render(n)

            async with trio.open_nursery() as nursery:
                for n in range(first, first + count):
                    await limiter.acquire()  # start no more tasks than can run
                    limiter.release()
                    nursery.start_soon(one, n)

        async def sample_every(interval: float) -> None:
            while True:
                sampler.sample(browser.chromium_pids())
                if args.early and done >= args.early + args.warmup and "early" not in marks:
                    marks["early"] = sampler.sample(browser.chromium_pids())
                await trio.sleep(interval)

        await run_pages(0, args.warmup)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_every, 0.25)
            cpu_before = own_cpu()
            chromium_before = tree_use(browser.chromium_pids()).cpu
            started = time.perf_counter()
            await run_pages(args.warmup, args.pages)
            wall = time.perf_counter() - started
            chromium_cpu = tree_use(browser.chromium_pids()).cpu - chromium_before
            cpu = own_cpu() - cpu_before
            marks["end"] = sampler.sample(browser.chromium_pids())
            nursery.cancel_scope.cancel()
        stats = browser.statistics()

    pages = args.pages
    print(
        f"pages rendered: {pages} (+{args.warmup} warm-up), concurrency {args.concurrency}, "
        f"quiet period {args.quiet:g}s, {args.links} links each, "
        f"{args.pages_per_tab} pages per tab, {stats.tabs_opened} tabs opened"
    )
    print(
        f"  links found in the rendered DOMs: {links_found:,} "
        f"(expected {(pages + args.warmup) * args.links:,}); cut at the time limit: {cut}"
    )
    print(
        f"  browsers started {stats.browsers_started}, retired {stats.browsers_retired}, "
        f"crashed {stats.browsers_crashed}, failed renders {stats.failed}"
    )
    print(f"rendered pages/s: {pages / wall:.1f} ({wall:.1f} s)")
    print(
        f"CPU per page: {1000 * (cpu + chromium_cpu) / pages:.1f} ms "
        f"(this process {1000 * cpu / pages:.1f}, Chromium {1000 * chromium_cpu / pages:.1f})"
    )
    print(
        f"peak memory, this process + Chromium: RSS {mb(sampler.peak_rss)}, "
        f"PSS {mb(sampler.peak_pss)}"
    )
    for name, label in (("early", f"after {args.early} pages"), ("end", f"after {pages} pages")):
        if name in marks:
            own, chromium = marks[name]
            print(
                f"  {label}: this process RSS {mb(own.rss)}; Chromium RSS {mb(chromium.rss)}, "
                f"PSS {mb(chromium.pss)}, {chromium.processes} processes"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--early", type=int, default=200, help="memory checkpoint (pages)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quiet", type=float, default=0.5, help="quiet period, seconds")
    parser.add_argument("--links", type=int, default=10)
    parser.add_argument("--retire", type=int, default=0, help="retire the browser every N pages")
    parser.add_argument("--pages-per-tab", type=int, default=BrowserOptions().pages_per_tab)
    parser.add_argument("--arg", action="append", default=[], help="a Chromium flag (repeat)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve, args.links)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--links", str(args.links)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        trio.run(bench, args, port)
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
