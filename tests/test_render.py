"""Rendering as a stage of the crawl (issue 18), through whole crawls and the command line,
with real Chromium and pages the test serves on loopback.

Skipped without Chromium unless ``TRIO_CRAWLER_REQUIRE_BROWSER=1`` (CI). Races are made
certain with routes that hold their answer until the test lets them go (:class:`Gate`).
The browser layer's own behaviour is ``tests/test_browser.py``'s.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from spider_fixtures import SAMPLE_QUOTES, quotes_js_page
from test_browser import Gate, _alive, _chromium_or_skip, _wait_gone
from warcio.archiveiterator import ArchiveIterator

from trio_crawler import CrawlStats, Follow, Page, Spider, open_crawler
from trio_crawler._browser.chromium import process_tree
from trio_crawler.spiders.generic import GenericSpider, PageRecord
from trio_crawler.spiders.quotes import QuotesSpider
from trio_crawler.testing import (
    RecordedRequest,
    Response,
    Site,
    SiteServer,
    html_page,
    loopback_settings,
    open_site_server,
)

JS = (("content-type", "application/javascript"),)
JSON = (("content-type", "application/json"),)


@pytest.fixture(autouse=True)
def _chromium() -> None:
    _chromium_or_skip()


def page(body: str, head: str = "", title: str = "") -> Response:
    head = f"<title>{title}</title>{head}"
    return Response(
        body=f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode()
    )


def links_js(*hrefs: str) -> Response:
    """A script that writes links to ``hrefs`` into ``#nav``."""
    script = f"""document.addEventListener("DOMContentLoaded", () => {{
        for (const href of {json.dumps(hrefs)}) {{
            const a = document.createElement("a"); a.href = href; a.textContent = href;
            document.getElementById("nav").appendChild(a);
        }}
    }});"""
    return Response(body=script.encode(), headers=JS)


def browser_processes(root: int | None = None) -> list[int]:
    """Every process under ``root`` (default: this one): the crawl's Chromium trees."""
    root = os.getpid() if root is None else root
    return [pid for pid in process_tree(root) if pid != root]


def browser_groups() -> set[int]:
    """The process groups of this process' live browsers (each runs in a group of its own)."""
    groups = set()
    for pid in browser_processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if _alive(pid) and b"--remote-debugging-pipe" in f.read():
                    groups.add(os.getpgid(pid))
        except OSError:
            continue
    return groups


async def crawl_items(
    server: SiteServer, spider: Spider | None = None, **settings: Any
) -> tuple[list[Any], CrawlStats]:
    spider = spider or GenericSpider(start_urls=(server.url("/"),))
    async with open_crawler(spider, loopback_settings(server, **settings)) as crawler:
        items = [item async for item in crawler.items()]
    return items, crawler.statistics()


def by_url(records: list[PageRecord]) -> dict[str, PageRecord]:
    return {r.final_url: r for r in records}


class Pages(Spider):
    """Keeps what the spider sees of each page (its URL, rendering, links); follows them."""

    name = "pages"

    def __init__(self, *start: str) -> None:
        super().__init__()
        self.start_urls = start  # type: ignore[misc]

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        yield {"url": page.url, "rendering": page.rendering, "links": page.links()}
        yield Follow(page.links())


# --------------------------------------------------------------------------- what is rendered
async def test_links_a_script_writes_are_followed_only_when_the_page_is_rendered() -> None:
    site = Site(
        {
            "/": page('<nav id="nav"></nav><script src="/app.js"></script>', title="home"),
            "/app.js": links_js("/a", "/b"),
            "/a": html_page("a"),
            "/b": html_page("b"),
        }
    )
    with trio.fail_after(60):
        async with open_site_server(site) as server:
            plain, plain_stats = await crawl_items(server)
            rendered, stats = await crawl_items(server, render="on")
            paths = server.paths()
    assert [(r.url, r.links, r.rendered) for r in plain] == [(server.url("/"), 0, False)]
    assert plain_stats.rendered == 0
    records = by_url(rendered)
    assert sorted(records) == [server.url(p) for p in ("/", "/a", "/b")]
    root = records[server.url("/")]
    assert (root.links, root.title, root.rendered, root.render_cut) == (2, "home", True, None)
    assert root.content_type == "text/html"  # the rendered DOM, UTF-8
    assert all(r.rendered for r in rendered)
    assert (stats.rendered, stats.rendered_cut, stats.subrequests) == (3, 0, 1)
    # the browser asked for its script through the crawler, once; nothing else (/a and /b are
    # fetched at once, in either order)
    second = paths[paths.index("/robots.txt", 1) :]
    assert second[:3] == ["/robots.txt", "/", "/app.js"]
    assert sorted(second[3:]) == ["/a", "/b"]


async def test_render_auto_renders_the_script_built_page_only() -> None:
    shell = page(
        '<nav id="nav"></nav><div id="root"></div>', head='<script src="/app.js"></script>'
    )
    site = Site(
        {
            "/": html_page('<a href="/shell">an app</a> <a href="/plain">a page</a>'),
            "/shell": shell,
            "/app.js": links_js("/deep"),
            "/plain": html_page("<p>plain</p>"),
            "/deep": html_page("<p>deep</p>"),
        }
    )
    with trio.fail_after(60):
        async with open_site_server(site) as server:
            records, stats = await crawl_items(server, render="auto")
    rendered = {r.final_url.rpartition("/")[2]: r.rendered for r in records}
    assert rendered == {"": False, "shell": True, "plain": False, "deep": False}
    assert stats.rendered == 1


async def test_a_script_reaching_a_private_address_or_another_port_is_refused() -> None:
    connections = 0

    async def witness(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, witness, listeners)
        script = f"""<p id="out">waiting</p><script>
            Promise.allSettled([
                fetch("http://127.0.0.1:{port}/secret"),
                fetch("http://10.1.2.3/latest/meta-data/"),
                fetch("/form", {{method: "POST", body: "a=1"}}),
                fetch("/private/data.json"),
                fetch("/ok.json"),
            ]).then(rs => {{
                document.getElementById("out").textContent =
                    rs.map(r => r.status === "fulfilled" ? "ok" : "refused").join(",");
            }});</script>"""
        site = Site(
            {
                "/": page(script),
                "/robots.txt": Response(
                    body=b"User-agent: *\nDisallow: /private/\n",
                    headers=(("content-type", "text/plain"),),
                ),
                "/ok.json": Response(body=b"{}", headers=JSON),
            }
        )
        with trio.fail_after(60):
            async with open_site_server(site) as server:
                spider = Pages(server.url("/"))
                # render scope any: what stops them is the address guard itself
                items, stats = await crawl_items(server, spider, render="on", render_scope="any")
                paths = server.paths()
        nursery.cancel_scope.cancel()
    assert connections == 0  # not one connection reached the other port
    (item,) = items
    refused = dict(r.split(": ", 1) for r in item["rendering"].refused)
    assert "forbidden_address" in refused[f"http://127.0.0.1:{port}/secret"]
    assert "forbidden_address" in refused["http://10.1.2.3/latest/meta-data/"]
    assert refused[server.url("/form")] == "method POST"
    assert refused[server.url("/private/data.json")] == "disallowed by robots.txt"
    assert item["rendering"].subrequests == 1
    assert stats.subrequests_refused == 4 and stats.pages_ok == 1
    assert "/form" not in paths and "/private/data.json" not in paths


async def test_a_rendered_page_loads_nothing_from_another_site_by_default() -> None:
    async with open_site_server(Site({"/lib.js": Response(body=b"", headers=JS)})) as cdn:
        # localhost is another site than 127.0.0.1 (and its address is allowed: only the
        # render scope can refuse it)
        lib = f"http://localhost:{cdn.port}/lib.js"
        site = Site({"/": page(f'<script src="{lib}"></script>')})
        with trio.fail_after(60):
            async with open_site_server(site) as server:
                spider = Pages(server.url("/"))
                items, _ = await crawl_items(server, spider, render="on")
                allowed = loopback_settings(server, cdn).allowed_addresses
                any_items, _ = await crawl_items(
                    server,
                    Pages(server.url("/")),
                    render="on",
                    render_scope="any",
                    allowed_addresses=allowed,
                )
    assert items[0]["rendering"].refused == (f"{lib}: another site (render_scope site)",)
    assert any_items[0]["rendering"].refused == ()
    assert cdn.paths() == ["/robots.txt", "/lib.js"]


async def test_the_browsers_requests_to_a_host_are_spaced_like_the_crawlers_own() -> None:
    scripts = "".join(f'<script src="/{name}.js"></script>' for name in "abc")
    site = Site({"/": page("<p>x</p>", head=scripts)})
    for name in "abc":
        site.add(f"/{name}.js", Response(body=b"", headers=JS))
    with trio.fail_after(60):
        async with open_site_server(site) as server:
            _, stats = await crawl_items(server, render="on", per_host_delay=1.0)
    assert stats.pages_ok == 1 and stats.subrequests == 3
    paths = [r.path for r in server.requests]
    assert paths[:2] == ["/robots.txt", "/"] and sorted(paths[2:]) == ["/a.js", "/b.js", "/c.js"]
    times = [r.time for r in server.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # each request left at least 1 s after the one before (arrivals: give or take the
    # loopback's jitter); unpaced, the three scripts the browser asks for at once would
    # arrive together
    assert min(gaps) >= 0.7, gaps


async def test_the_warc_holds_the_browsers_exchanges(tmp_path: Path) -> None:
    warc = tmp_path / "crawl.warc.gz"
    script = '<p id="out"></p><script src="/app.js"></script>'
    app = b'fetch("/api.json").then(r => r.text()).then(t => { out.textContent = t; });'
    site = Site(
        {
            "/": page(script),
            "/app.js": Response(body=app, headers=JS),
            "/api.json": Response(body=b'{"n": 1}', headers=JSON),
        }
    )
    with trio.fail_after(60):
        async with open_site_server(site) as server:
            _, stats = await crawl_items(server, render="on", warc=str(warc))
    assert stats.subrequests == 2
    data = await trio.Path(warc).read_bytes()
    responses = {
        record.rec_headers.get_header("WARC-Target-URI"): record.content_stream().read()
        for record in ArchiveIterator(io.BytesIO(data))
        if record.rec_type == "response"
    }
    assert responses[server.url("/app.js")] == app
    assert responses[server.url("/api.json")] == b'{"n": 1}'
    assert server.url("/") in responses


# --------------------------------------------------------------------------- pages that misbehave
async def test_a_page_that_never_settles_is_cut_and_scraped_and_the_crawl_goes_on() -> None:
    held = Gate()
    site = Site(
        {
            "/": html_page('<a href="/loop">l</a> <a href="/stall">s</a> <a href="/ok">o</a>'),
            "/loop": page('<p id="before">x</p><script>while (true) {}</script><p>never</p>'),
            "/stall": page('<p>waiting</p><script src="/held.js"></script>'),
            "/held.js": held,
            "/ok": page("<p>fine</p>"),
        }
    )
    try:
        with trio.fail_after(60):
            async with open_site_server(site) as server:
                records, stats = await crawl_items(server, render="on", render_timeout=2.0)
    finally:
        held.release.set()
    cut = {r.final_url.rpartition("/")[2]: r.render_cut for r in records}
    assert cut == {"": None, "loop": "load", "stall": "load", "ok": None}
    assert all(r.status == 200 and r.error is None for r in records)
    assert (stats.pages_ok, stats.rendered, stats.rendered_cut) == (4, 4, 2)


async def test_chromium_killed_mid_crawl_is_replaced_and_the_page_retried_then_failed() -> None:
    killed = 0

    async def kill_the_browser(request: RecordedRequest) -> Response:
        nonlocal killed
        for group in browser_groups():
            os.killpg(group, signal.SIGKILL)
            killed += 1
        return Response(body=b"", headers=JS)

    site = Site(
        {
            "/crash": page('<script src="/kill.js"></script>'),
            "/kill.js": kill_the_browser,
            "/ok": page("<p>fine</p>"),
        }
    )
    with trio.fail_after(60):
        async with open_site_server(site) as server:
            spider = GenericSpider(start_urls=(server.url("/crash"), server.url("/ok")))
            records, stats = await crawl_items(server, spider, render="on", render_concurrency=1)
            kills = server.count("/kill.js")
    found = by_url(records)
    crash, ok = found[server.url("/crash")], found[server.url("/ok")]
    assert crash.error_kind == "render" and "browser exited" in (crash.error or "")
    assert ok.rendered and ok.error is None
    assert kills == 2 and killed >= 2  # rendered once more by a new browser, then failed
    assert stats.browser_crashes == 2 and stats.retries == 1
    assert dict(stats.failures) == {"render": 1}
    assert await _wait_gone(browser_processes(), 2.0) == []


async def test_a_crawl_cancelled_from_outside_leaves_no_browser_process() -> None:
    held = Gate()
    site = Site({"/": page('<script src="/held.js"></script>'), "/held.js": held})
    pids: list[int] = []
    try:
        with trio.fail_after(60):
            async with open_site_server(site) as server:
                with trio.CancelScope() as outside:

                    async def cancel_when_held() -> None:
                        await held.arrived.wait()
                        pids.extend(browser_processes())
                        outside.cancel()

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(cancel_when_held)
                        await crawl_items(server, render="on")
                assert outside.cancelled_caught
    finally:
        held.release.set()
    assert len(pids) >= 3  # the browser, its renderer, its helpers
    assert await _wait_gone(pids, 2.0) == []


async def test_a_crawl_that_never_renders_starts_no_browser() -> None:
    seen: list[list[int]] = []

    class Looks(Spider):
        name = "looks"

        def __init__(self, url: str) -> None:
            super().__init__()
            self.start_urls = (url,)  # type: ignore[misc]

        async def scrape(self, page: Page) -> AsyncIterator[Any]:
            seen.append(browser_processes())
            yield Follow(page.links())

    site = Site({"/": page('<a href="/a">a</a><script>1</script>'), "/a": html_page("a")})
    with trio.fail_after(30):
        async with open_site_server(site) as server:
            _, stats = await crawl_items(server, Looks(server.url("/")))
    assert seen == [[], []] and stats.rendered == 0


# --------------------------------------------------------------------------- outcomes
async def test_a_navigation_is_followed_like_a_redirect() -> None:
    site = Site(
        {
            "/": html_page('<a href="/nav">go</a>'),
            "/nav": page("<p>moving</p><script>location.href = '/target?from=js';</script>"),
            "/target": html_page("<p>arrived</p>", title="target"),
        }
    )
    with trio.fail_after(60):
        async with open_site_server(site) as server:
            records, stats = await crawl_items(server, render="on")
    found = by_url(records)
    target = found[server.url("/target?from=js")]
    assert target.url == server.url("/nav") and target.redirects == (server.url("/nav"),)
    assert target.title == "target" and target.rendered
    assert server.url("/nav") not in found  # like a redirect: the hop stands for the page
    assert stats.redirects == 1


async def test_screenshots_are_saved_by_fingerprint_and_listed(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    site = Site({"/": page("<h1>look</h1>")})
    with trio.fail_after(60):
        async with open_site_server(site) as server:
            records, _ = await crawl_items(server, render="on", screenshots=str(shots))
    (record,) = records
    assert record.screenshot is not None
    path = Path(record.screenshot)
    assert path.parent == shots and re.fullmatch(r"[0-9a-f]{16}\.png", path.name)
    assert (await trio.Path(path).read_bytes()).startswith(b"\x89PNG\r\n\x1a\n")


QUOTES_JQUERY = b"""window.$ = { map: function (items, fn) {
    var out = []; for (var i = 0; i < items.length; i++) out.push(fn(items[i], i));
    return out; } };"""


async def test_quotes_in_browser_mode_give_exactly_what_js_mode_gives() -> None:
    site = Site(
        {
            "/js/": quotes_js_page(SAMPLE_QUOTES[:2], next_href="/js/page/2/"),
            "/js/page/2/": quotes_js_page(SAMPLE_QUOTES[2:]),
            "/static/jquery.js": Response(body=QUOTES_JQUERY, headers=JS),
        }
    )
    with trio.fail_after(60):
        async with open_site_server(site) as server:
            base = server.url("")
            js, _ = await crawl_items(server, QuotesSpider(base_url=base))
            browser, stats = await crawl_items(server, QuotesSpider(base_url=base, mode="browser"))
    assert len(js) == len(SAMPLE_QUOTES)
    assert sorted(browser, key=repr) == sorted(js, key=repr)
    assert stats.rendered == 2


# --------------------------------------------------------------------------- the command line
def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trio_crawler", *args]


async def test_ctrl_c_during_a_render_ends_the_crawl_with_its_browser(tmp_path: Path) -> None:
    held = Gate()
    out = tmp_path / "out.jsonl"
    site = Site({"/": page('<script src="/held.js"></script><p>up</p>'), "/held.js": held})
    try:
        with trio.fail_after(60):
            async with open_site_server(site) as server:
                command = cli("crawl", server.url("/"), "--render", "--render-timeout", "3")
                proc = await trio.lowlevel.open_process(
                    [*command, "-o", str(out), "--delay", "0", "-q"], stderr=subprocess.PIPE
                )
                try:
                    await held.arrived.wait()
                    pids = browser_processes(proc.pid)
                    proc.send_signal(signal.SIGINT)  # in-flight pages finish: cut at 3 s
                    await proc.wait()
                finally:
                    if proc.returncode is None:
                        proc.kill()
    finally:
        held.release.set()
    assert proc.returncode == 130
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["rendered"] is True and record["render_cut"] == "load"
    assert len(pids) >= 3
    assert await _wait_gone(pids, 2.0) == []


async def test_a_page_in_render_at_kill_9_is_rendered_again_on_resume(tmp_path: Path) -> None:
    held = Gate()
    db, out = tmp_path / "crawl.db", tmp_path / "out.jsonl"
    script = b'document.getElementById("nav").innerHTML = \'<a href="/next">next</a>\';'
    site = Site(
        {
            "/": page('<nav id="nav"></nav><script src="/app.js"></script>'),
            "/app.js": Response(body=script, headers=JS),
            "/next": page("<p>next</p>"),
        }
    )
    first = True

    async def app(request: RecordedRequest) -> Response:
        nonlocal first
        if first:
            first = False
            await held(request)  # the first run is killed while this is held
        return Response(body=script, headers=JS)

    site.add("/app.js", app)
    try:
        with trio.fail_after(90):
            async with open_site_server(site) as server:
                command = cli("crawl", server.url("/"), "--render", "--state", str(db))
                command += ["-o", str(out), "--delay", "0", "-q"]
                proc = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE)
                try:
                    await held.arrived.wait()
                    pids = browser_processes(proc.pid)
                    proc.kill()  # SIGKILL: the crawler cannot close its browser
                    await proc.wait()
                finally:
                    if proc.returncode is None:
                        proc.kill()
                # the browser reads the end of its pipe and exits by itself
                assert await _wait_gone(pids, 10.0) == []
                held.release.set()
                again = await trio.run_process(command, capture_stderr=True, check=False)
                paths = server.paths()
    finally:
        held.release.set()
    assert again.returncode == 0, again.stderr.decode()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["final_url"].rpartition("/")[2] for r in records) == ["", "next"]
    assert all(r["rendered"] for r in records)
    assert paths.count("/") == 2 and paths.count("/app.js") == 2  # rendered again


async def test_several_processes_render_their_share(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    site = Site({"/": page('<nav id="nav"></nav><script src="/app.js"></script>')})
    site.add("/app.js", links_js(*(f"/p/{i}" for i in range(6))))
    for i in range(6):
        site.add(f"/p/{i}", html_page(f"<p>{i}</p>"))
    with trio.fail_after(90):
        async with open_site_server(site) as server:
            command = cli("crawl", server.url("/"), "--render", "--processes", "2")
            command += ["--render-concurrency", "2", "-o", str(out), "--delay", "0", "-q"]
            done = await trio.run_process(command, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 7 and all(r["rendered"] for r in records)


async def test_a_bare_render_flag_before_the_url_and_the_render_figures_in_summary_and_report(
    tmp_path: Path,
) -> None:
    site = Site(
        {
            "/": page('<nav id="nav"></nav><script src="/app.js"></script>', title="home"),
            "/app.js": links_js("/a"),
            "/a": html_page("a"),
        }
    )
    state, report = tmp_path / "crawl.db", tmp_path / "report.html"
    with trio.fail_after(60):
        async with open_site_server(site) as server:
            done = await trio.run_process(
                cli("crawl", "--render", server.url("/"), "--state", str(state), "--delay", "0"),
                capture_stdout=True,
                capture_stderr=True,
            )
        await trio.run_process(cli("report", str(state), "-o", str(report), "-q"))
    summary = done.stderr.decode()
    assert re.search(r"rendered\s+.?\s*2\b", summary), summary
    assert re.search(r"its requests / refused\s+.?\s*1 / 0\b", summary), summary
    html = report.read_text()
    assert "pages rendered" in html and "browser crashes" not in html
