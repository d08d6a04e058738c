"""The browser layer against real Chromium and real loopback servers.

Every request the page makes goes through the crawler's own fetcher (``fetch_through``:
its address guard lets only the test site's address through). Skipped when no Chromium is
installed, unless ``TRIO_CRAWLER_REQUIRE_BROWSER=1`` (CI) makes that a failure. Races are
made certain with servers that hold a request until the test lets it go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
from interrupt import default_sigint

from trio_crawler import FailureKind, FetchError
from trio_crawler._browser import (
    Browser,
    BrowserCrashed,
    BrowserOptions,
    BrowserRequest,
    BrowserResponse,
    BrowserUnavailable,
    Fetch,
    PageCrashed,
    Refusal,
    Rendered,
    RenderError,
    find_chromium,
    open_browser,
)
from trio_crawler._browser.chromium import remove_stale_profiles
from trio_crawler._http import Fetcher
from trio_crawler.testing import (
    RecordedRequest,
    Response,
    Site,
    SiteServer,
    loopback_settings,
    open_site_server,
)

JS = (("content-type", "application/javascript"),)
HTML = (("content-type", "text/html; charset=utf-8"),)


def _chromium_or_skip() -> None:
    try:
        find_chromium()
    except BrowserUnavailable as exc:
        if os.environ.get("TRIO_CRAWLER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{exc}: browser tests are required here (TRIO_CRAWLER_REQUIRE_BROWSER=1)")
        pytest.skip(f"{exc}: browser tests skipped")


def page(body: str, head: str = "") -> bytes:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode()


def fetch_through(fetcher: Fetcher, log: list[BrowserRequest] | None = None) -> Fetch:
    """The crawler's fetcher as the browser's ``fetch``: GET only, the browser's Referer and
    Accept passed on, every failure (the address guard's included) a refusal."""

    async def fetch(request: BrowserRequest) -> BrowserResponse | Refusal:
        if log is not None:
            log.append(request)
        if request.method != "GET":
            return Refusal(f"method {request.method}")
        passed = {k: v for k, v in request.headers if k.lower() in ("referer", "accept")}
        try:
            result = await fetcher.fetch(request.url, passed)
        except FetchError as exc:
            return Refusal(str(exc))
        return BrowserResponse(result.status, result.headers.raw(), result.body)

    return fetch


async def fetch_document(fetcher: Fetcher, url: str) -> BrowserResponse:
    """The crawler's own fetch of the page, before it is rendered."""
    result = await fetcher.fetch(url)
    return BrowserResponse(result.status, result.headers.raw(), result.body)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _chromium_or_skip()
    async with open_browser(BrowserOptions(concurrency=2, time_limit=10.0)) as opened:
        yield opened


async def render_site(
    browser: Browser,
    site: Site,
    path: str = "/",
    *,
    before: Callable[[SiteServer], None] | None = None,
    **kwargs: object,
) -> tuple[Rendered, SiteServer, str]:
    """Serve ``site``, fetch ``path`` with the crawler's fetcher, render it through it."""
    async with open_site_server(site) as server, Fetcher(loopback_settings(server)) as fetcher:
        if before is not None:
            before(server)
        url = server.url(path)
        document = await fetch_document(fetcher, url)
        raw = document.body.decode()
        rendered = await browser.render(
            url,
            document=document,
            fetch=fetch_through(fetcher),
            **kwargs,  # type: ignore[arg-type]
        )
        return rendered, server, raw


async def render_failure(browser: Browser, site: Site, path: str = "/") -> RenderError:
    """Like :func:`render_site` for a render that must fail: its error (caught inside the
    server's block, where it is still one plain exception)."""
    async with open_site_server(site) as server, Fetcher(loopback_settings(server)) as fetcher:
        url = server.url(path)
        document = await fetch_document(fetcher, url)
        try:
            await browser.render(url, document=document, fetch=fetch_through(fetcher))
        except RenderError as exc:
            return exc
    raise AssertionError("the render did not fail")


def _any_exists(paths: list[str]) -> bool:
    return any(os.path.exists(p) for p in paths)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that does not reap counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _still_alive_after(pids: list[int], within: float) -> list[int]:
    """:func:`_wait_gone` for a test that is not async."""
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


async def _wait_gone(pids: list[int], within: float = 2.0) -> list[int]:
    """The pids still alive after at most ``within`` seconds (checked every 50 ms)."""
    with trio.move_on_after(within):
        # not our children (the browser's): no event tells of their end
        while any(_alive(p) for p in pids):  # noqa: ASYNC110
            await trio.sleep(0.05)
    return [p for p in pids if _alive(p)]


class Gate:
    """A route that records its arrival and holds its answer until :meth:`open` (or for
    ever): a request certainly in flight while the test acts."""

    def __init__(self, response: Response | None = None) -> None:
        self.arrived = trio.Event()
        self.release = trio.Event()
        self.response = response or Response(body=b"", headers=JS)

    async def __call__(self, request: RecordedRequest) -> Response:
        self.arrived.set()
        await self.release.wait()
        return self.response


# --------------------------------------------------------------------------- the rendered DOM
async def test_links_written_by_a_script_are_in_the_rendered_dom(browser: Browser) -> None:
    script = b"""
        for (const p of ["/a", "/b"]) {
            const a = document.createElement("a"); a.href = p; a.textContent = p;
            document.getElementById("nav").appendChild(a);
        }
        fetch("/api/more").then(r => r.json()).then(j => {
            const a = document.createElement("a"); a.href = j.next; document.body.appendChild(a);
        });"""
    site = Site(
        {
            "/": Response(
                body=page('<nav id="nav"></nav><script src="/app.js"></script>'), headers=HTML
            ),
            "/app.js": Response(body=script, headers=JS),
            "/api/more": Response(
                body=b'{"next": "/c"}', headers=(("content-type", "application/json"),)
            ),
        }
    )
    with trio.fail_after(30):
        rendered, server, raw = await render_site(browser, site)
    for href in ('href="/a"', 'href="/b"', 'href="/c"'):
        assert href in rendered.html
        assert href not in raw
    assert rendered.settled and rendered.cut_reason is None
    assert rendered.status == 200
    assert rendered.final_url == server.url("/")
    # the document came from the crawler's fetch; the browser asked for nothing twice
    assert server.paths() == ["/", "/app.js", "/api/more"]
    assert [(s.url, s.outcome, s.status) for s in rendered.subrequests] == [
        (server.url("/app.js"), "fulfilled", 200),
        (server.url("/api/more"), "fulfilled", 200),
    ]


async def test_console_errors_and_uncaught_exceptions_are_recorded(browser: Browser) -> None:
    body = '<script>console.error("bad", 42); console.log("fine"); null.x;</script><p>ok</p>'
    with trio.fail_after(30):
        rendered, _, _ = await render_site(browser, Site({"/": Response(body=page(body))}))
    assert rendered.errors[0] == "console.error: bad 42"
    assert rendered.errors[1].startswith("uncaught: TypeError")
    assert len(rendered.errors) == 2


# --------------------------------------------------------------------------- every request checked
async def test_requests_to_other_addresses_are_refused_by_the_crawlers_guard(
    browser: Browser,
) -> None:
    async with open_site_server(Site({"/": Response(body=b"secret")})) as witness:
        body = f"""<p id="out">waiting</p><script>
            const out = [];
            Promise.allSettled([
                fetch("{witness.url("/secret")}"),
                fetch("http://169.254.169.254/latest/meta-data/"),
                fetch("/local"),
            ]).then(rs => {{
                document.getElementById("out").textContent =
                    rs.map(r => r.status === "fulfilled" ? "ok" : "refused").join(",");
            }});</script>"""
        site = Site({"/": Response(body=page(body)), "/local": Response(body=b"x", headers=JS)})
        with trio.fail_after(30):
            rendered, server, _ = await render_site(browser, site)
    assert '<p id="out">refused,refused,ok</p>' in rendered.html
    assert witness.requests == []  # not one connection reached the other port
    refused = {s.url: s.reason for s in rendered.subrequests if s.outcome == "refused"}
    assert set(refused) == {witness.url("/secret"), "http://169.254.169.254/latest/meta-data/"}
    assert all(reason and "forbidden_address" in reason for reason in refused.values())
    assert server.paths() == ["/", "/local"]


async def test_images_fonts_and_media_are_refused_without_a_fetch(browser: Browser) -> None:
    head = """<style>@font-face { font-family: F; src: url(/font.woff2); }
              body { font-family: F; }</style>"""
    body = """<p>text</p><img src="/img.png"><video src="/movie.mp4" autoplay></video>
              <script src="/app.js"></script>"""
    site = Site({"/": Response(body=page(body, head)), "/app.js": Response(body=b"1", headers=JS)})
    log: list[BrowserRequest] = []
    async with open_site_server(site) as server, Fetcher(loopback_settings(server)) as fetcher:
        url = server.url("/")
        with trio.fail_after(30):
            rendered = await browser.render(
                url, document=await fetch_document(fetcher, url), fetch=fetch_through(fetcher, log)
            )
    assert [r.url for r in log] == [server.url("/app.js")]
    assert server.paths() == ["/", "/app.js"]
    refused = {
        s.url: (s.resource_type, s.reason) for s in rendered.subrequests if s.outcome == "refused"
    }
    assert refused[server.url("/img.png")] == ("Image", "type Image")
    assert refused[server.url("/font.woff2")] == ("Font", "type Font")
    assert refused[server.url("/movie.mp4")] == ("Media", "type Media")


async def test_a_redirect_goes_back_to_the_browser_and_each_hop_through_fetch(
    browser: Browser,
) -> None:
    body = """<p id="out"></p><script>
        fetch("/moved").then(r => r.text()).then(t => {
            document.getElementById("out").textContent = t; });</script>"""
    site = Site(
        {
            "/": Response(body=page(body)),
            "/moved": Response(status=302, headers=(("location", "/target"),)),
            "/target": Response(body=b"arrived", headers=(("content-type", "text/plain"),)),
        }
    )
    with trio.fail_after(30):
        rendered, server, _ = await render_site(browser, site)
    assert '<p id="out">arrived</p>' in rendered.html
    assert server.paths() == ["/", "/moved", "/target"]
    assert [(s.url, s.status) for s in rendered.subrequests] == [
        (server.url("/moved"), 302),
        (server.url("/target"), 200),
    ]


async def test_a_websocket_cannot_escape_interception(browser: Browser) -> None:
    connections = 0

    async def count(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, count, 0)
        port = listeners[0].socket.getsockname()[1]
        body = f"""<p id="out">open</p><script>
            const ws = new WebSocket("ws://127.0.0.1:{port}/");
            ws.onerror = () => {{ document.getElementById("out").textContent = "failed"; }};
            </script>"""
        site = Site({"/": Response(body=page(body))})
        with trio.fail_after(30):
            rendered, _, _ = await render_site(browser, site, wait_for="#out:not(:empty)")
        nursery.cancel_scope.cancel()
    assert connections == 0
    assert rendered.settled


async def test_a_workers_requests_go_through_fetch(browser: Browser) -> None:
    async with open_site_server(Site({"/": Response(body=b"secret")})) as witness:
        worker = f"""
            Promise.allSettled([fetch("/from-worker"), fetch("{witness.url("/")}")])
                .then(rs => postMessage(rs.map(r => r.status).join(",")));""".encode()
        body = """<p id="out"></p><script>
            const w = new Worker("/worker.js");
            w.onmessage = (e) => { document.getElementById("out").textContent = e.data; };
            </script>"""
        site = Site(
            {
                "/": Response(body=page(body)),
                "/worker.js": Response(body=worker, headers=JS),
                "/from-worker": Response(body=b"w", headers=JS),
            }
        )
        with trio.fail_after(30):
            rendered, server, _ = await render_site(browser, site, wait_for="#out:not(:empty)")
    assert '<p id="out">fulfilled,rejected</p>' in rendered.html
    assert server.paths() == ["/", "/worker.js", "/from-worker"]
    assert witness.requests == []


# --------------------------------------------------------------------------- pages that do not end
async def test_a_script_that_loops_forever_is_cut_and_the_next_render_works(
    browser: Browser,
) -> None:
    body = '<p id="before">before the loop</p><script>while (true) {}</script><p>after</p>'
    site = Site({"/": Response(body=page(body)), "/ok": Response(body=page("<p>fine</p>"))})
    with trio.fail_after(30):
        rendered, _, _ = await render_site(browser, site, time_limit=2.0)
    assert not rendered.settled
    assert rendered.cut_reason == "load"
    assert "before the loop" in rendered.html
    with trio.fail_after(30):
        again, _, _ = await render_site(browser, site, "/ok")
    assert again.settled and "<p>fine</p>" in again.html
    assert browser.statistics().browsers_started == 1


async def test_a_page_that_never_finishes_loading_is_cut(browser: Browser) -> None:
    gate = Gate()
    body = '<p>visible</p><script src="/never.js"></script><p>after</p>'
    site = Site({"/": Response(body=page(body)), "/never.js": gate})
    with trio.fail_after(30):
        rendered, _, _ = await render_site(browser, site, time_limit=2.0)
    assert gate.arrived.is_set()
    assert not rendered.settled and rendered.cut_reason == "load"
    assert "<p>visible</p>" in rendered.html
    assert "after" not in rendered.html  # the parser still waits for the script
    with trio.fail_after(30):
        again, _, _ = await render_site(browser, Site({"/": Response(body=page("<b>ok</b>"))}))
    assert again.settled and "<b>ok</b>" in again.html


async def test_a_page_busy_with_requests_for_ever_is_cut_with_its_dom(browser: Browser) -> None:
    # loaded, but a request every 100 ms: the network is never quiet
    body = (
        '<p id="n">0</p><script>let n = 0; setInterval(() => fetch("/poll").then(() => {'
        ' document.getElementById("n").textContent = ++n; }), 100);</script>'
    )
    site = Site({"/": Response(body=page(body)), "/poll": Response(body=b"1", headers=JS)})
    with trio.fail_after(30):
        rendered, _, _ = await render_site(browser, site, time_limit=3.0)
    assert not rendered.settled and rendered.cut_reason == "network"
    assert '<p id="n">0</p>' not in rendered.html


async def test_wait_for_a_selector(browser: Browser) -> None:
    # the element arrives after the network has gone quiet: only wait_for sees it
    body = """<script>setTimeout(() => {
        const d = document.createElement("div"); d.id = "late"; d.textContent = "here";
        document.body.appendChild(d); }, 1500);</script>"""
    site = Site({"/": Response(body=page(body))})
    with trio.fail_after(30):
        rendered, _, _ = await render_site(browser, site, wait_for="#late")
    assert rendered.settled and '<div id="late">here</div>' in rendered.html
    with trio.fail_after(30):
        # loaded and quiet long before the limit: only the selector is missing
        missing, _, _ = await render_site(browser, site, wait_for="#never", time_limit=4.0)
    assert not missing.settled and missing.cut_reason == "wait_for"


# --------------------------------------------------------------------------- isolation
@pytest.mark.parametrize("pages_per_tab", [1, 5])
async def test_a_page_sees_nothing_the_page_before_it_left(pages_per_tab: int) -> None:
    _chromium_or_skip()
    writer = """<script>document.cookie = "js=1; path=/"; localStorage.setItem("l", "1");
        sessionStorage.setItem("s", "1"); window.name = "left";</script><p>wrote</p>"""
    reader = """<p id="out"></p><script>document.getElementById("out").textContent =
        [document.cookie, localStorage.length, sessionStorage.length, window.name].join("|");
        </script>"""
    site = Site(
        {
            "/write": Response(
                body=page(writer), headers=(*HTML, ("set-cookie", "header=1; Path=/"))
            ),
            "/read": Response(body=page(reader)),
        }
    )
    options = BrowserOptions(concurrency=1, pages_per_tab=pages_per_tab)
    async with open_browser(options) as browser:
        with trio.fail_after(60):
            await render_site(browser, site, "/write")
            # the same origin (port included: one server for both pages)
            async with (
                open_site_server(site) as server,
                Fetcher(loopback_settings(server)) as fetcher,
            ):
                for path in ("/write", "/read"):
                    url = server.url(path)
                    rendered = await browser.render(
                        url,
                        document=await fetch_document(fetcher, url),
                        fetch=fetch_through(fetcher),
                    )
        stats = browser.statistics()
    assert '<p id="out">|0|0|</p>' in rendered.html
    assert stats.tabs_opened == (3 if pages_per_tab == 1 else 1)


# ------------------------------------------------------------------ dialogs, popups, navigation
async def test_dialogs_are_dismissed(browser: Browser) -> None:
    body = """<p id="out"></p><script>
        alert("hello");
        const c = confirm("sure?");
        const p = prompt("name?", "x");
        document.getElementById("out").textContent = c + "," + p;</script>"""
    with trio.fail_after(30):
        rendered, _, _ = await render_site(browser, Site({"/": Response(body=page(body))}))
    assert '<p id="out">false,null</p>' in rendered.html
    assert rendered.dialogs == ("alert: hello", "confirm: sure?", "prompt: name?")


async def test_window_open_is_refused(browser: Browser) -> None:
    async with open_site_server(Site({"/": Response(body=b"popup")})) as witness:
        body = f'<p>page</p><script>window.open("{witness.url("/pop")}");</script>'
        site = Site({"/": Response(body=page(body))})
        with trio.fail_after(30):
            rendered, _, _ = await render_site(browser, site)
        await trio.sleep(0.3)  # a popup that got away would have had time to ask
    assert witness.requests == []
    assert len(rendered.popups) == 1
    assert rendered.settled and "<p>page</p>" in rendered.html


async def test_a_navigation_away_is_refused_and_recorded(browser: Browser) -> None:
    body = '<p>original</p><script>location.href = "/elsewhere";</script>'
    site = Site({"/": Response(body=page(body)), "/elsewhere": Response(body=page("moved"))})
    with trio.fail_after(30):
        rendered, server, _ = await render_site(browser, site)
    assert rendered.navigations == (server.url("/elsewhere"),)
    assert "<p>original</p>" in rendered.html
    assert rendered.final_url == server.url("/")
    assert server.paths() == ["/"]


async def test_a_screenshot_is_a_png(browser: Browser) -> None:
    with trio.fail_after(30):
        rendered, _, _ = await render_site(
            browser, Site({"/": Response(body=page("<h1>hi</h1>"))}), screenshot=True
        )
    assert rendered.screenshot is not None
    assert rendered.screenshot.startswith(b"\x89PNG\r\n\x1a\n")
    with trio.fail_after(30):
        plain, _, _ = await render_site(browser, Site({"/": Response(body=page("x"))}))
    assert plain.screenshot is None


# --------------------------------------------------------------------------- failures and limits
async def test_chromium_killed_mid_render_fails_that_render_and_the_next_starts_anew(
    browser: Browser,
) -> None:
    gate = Gate()
    site = Site({"/": Response(body=page('<script src="/held.js"></script>')), "/held.js": gate})
    first_pids: list[int] = []

    async def kill_when_held() -> None:
        await gate.arrived.wait()
        first_pids.extend(browser.chromium_pids())
        os.killpg(browser.statistics().pids[0], signal.SIGKILL)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_when_held)
            crashed = await render_failure(browser, site)
        gate.release.set()
        assert isinstance(crashed, BrowserCrashed), crashed
        assert "\n" not in str(crashed)
        again, _, _ = await render_site(browser, Site({"/": Response(body=page("<i>new</i>"))}))
    assert again.settled and "<i>new</i>" in again.html
    stats = browser.statistics()
    assert (stats.browsers_started, stats.browsers_crashed, stats.failed) == (2, 1, 1)
    assert await _wait_gone(first_pids) == []


async def test_cancelled_from_outside_every_process_is_gone(tmp_path: Path) -> None:
    _chromium_or_skip()
    gate = Gate()
    site = Site({"/": Response(body=page('<script src="/held.js"></script>')), "/held.js": gate})
    pids: list[int] = []
    profiles: list[str] = []
    with trio.fail_after(30):
        async with open_site_server(site) as server, Fetcher(loopback_settings(server)) as fetcher:
            url = server.url("/")
            document = await fetch_document(fetcher, url)
            with trio.CancelScope() as outside:
                async with open_browser(BrowserOptions(concurrency=1)) as browser:

                    async def cancel_when_held() -> None:
                        await gate.arrived.wait()
                        pids.extend(browser.chromium_pids())
                        profiles.extend(
                            i.chromium.profile_dir for i in browser._instances if i.chromium
                        )
                        outside.cancel()

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(cancel_when_held)
                        await browser.render(url, document=document, fetch=fetch_through(fetcher))
            assert outside.cancelled_caught
    assert len(pids) >= 3  # the browser, its renderer, its helpers
    assert await _wait_gone(pids) == []
    assert profiles and not _any_exists(profiles)


async def test_a_crashed_page_fails_alone(browser: Browser) -> None:
    _chromium_or_skip()
    body = "<script>const keep = []; while (true) keep.push(new Array(1e6).fill(1.5));</script>"
    async with open_browser(BrowserOptions(concurrency=1, js_heap_mb=32)) as small:
        with trio.fail_after(60):
            crashed = await render_failure(small, Site({"/": Response(body=page(body))}))
            assert isinstance(crashed, PageCrashed), crashed
            again, _, _ = await render_site(small, Site({"/": Response(body=page("<i>ok</i>"))}))
        assert again.settled
        assert small.statistics().browsers_started == 1


async def test_the_browser_is_retired_after_its_quota_of_pages() -> None:
    _chromium_or_skip()
    site = Site({"/": Response(body=page("<p>p</p>"))})
    async with open_browser(BrowserOptions(concurrency=1, max_renders_per_browser=2)) as browser:
        with trio.fail_after(60):
            await render_site(browser, site)
            first = browser.chromium_pids()
            await render_site(browser, site)
            await render_site(browser, site)
            assert await _wait_gone(first) == []
        stats = browser.statistics()
    assert (stats.rendered, stats.browsers_started, stats.browsers_retired) == (3, 2, 1)


async def test_a_hung_browser_fails_the_render_and_is_replaced() -> None:
    _chromium_or_skip()
    gate = Gate()
    site = Site({"/": Response(body=page('<script src="/held.js"></script>')), "/held.js": gate})
    stopped: list[int] = []

    options = BrowserOptions(concurrency=1, time_limit=1.0, stuck_timeout=0.5)
    async with open_browser(options) as hung:

        async def stop_when_held() -> None:
            await gate.arrived.wait()
            stopped.extend(hung.chromium_pids())
            os.killpg(hung.statistics().pids[0], signal.SIGSTOP)  # alive, answering nothing

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stop_when_held)
                failed = await render_failure(hung, site)
            gate.release.set()
            assert isinstance(failed, BrowserCrashed) and "hung" in str(failed)
            assert await _wait_gone(stopped) == []  # SIGKILL ends stopped processes too
            again, _, _ = await render_site(hung, Site({"/": Response(body=page("<i>up</i>"))}))
        assert again.settled and hung.statistics().browsers_started == 2


def test_a_crawler_killed_by_sigkill_leaves_no_browser_behind(tmp_path: Path) -> None:
    _chromium_or_skip()
    script = tmp_path / "holder.py"
    script.write_text(
        "import trio\n"
        "from trio_crawler._browser import BrowserOptions\n"
        "from trio_crawler._browser.chromium import open_chromium\n"
        "async def main():\n"
        "    async with open_chromium(BrowserOptions()) as c:\n"
        "        print(c.profile_dir, flush=True)\n"
        "        print(' '.join(map(str, c.pids())), flush=True)\n"
        "        await trio.sleep(60)\n"
        "trio.run(main)\n"
    )
    holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        profile = holder.stdout.readline().strip()
        pids = [int(p) for p in holder.stdout.readline().split()]
    finally:
        holder.kill()  # nothing runs in the crawler now: no finally, no kill of its own
        holder.wait(10)
    assert len(pids) >= 3
    # the browser reads the end of its pipe and exits by itself
    assert _still_alive_after(pids, 10.0) == []
    # its profile is left behind, and removed by the next crawler that starts a browser
    assert os.path.isdir(profile)
    assert profile in remove_stale_profiles(os.path.dirname(profile))
    assert not os.path.exists(profile)


HOLDER = """
import sys, trio
from trio_crawler._browser import BrowserOptions, BrowserResponse, open_browser
from trio_crawler.testing import Response, Site, open_site_server

async def main():
    async def held(request):
        print(" ".join(map(str, browser.chromium_pids())), flush=True)
        await trio.sleep(60)
    page = b'<script src="/held.js"></script>'
    async with open_site_server(Site({"/held.js": held})) as server:
        async with open_browser(BrowserOptions(concurrency=1)) as browser:
            async def fetch(request):
                await held(request)
            await browser.render(server.url("/"), document=BrowserResponse(200, (), page),
                                 fetch=fetch)

try:
    trio.run(main)
except* KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_closes_the_browser(tmp_path: Path) -> None:
    _chromium_or_skip()
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        assert holder.stdout is not None
        pids = [int(p) for p in holder.stdout.readline().split()]  # a render is in flight
        holder.send_signal(signal.SIGINT)
        out, _ = holder.communicate(timeout=30)
    finally:
        holder.kill()
        holder.wait(10)
    assert out.strip() == "interrupted"
    assert len(pids) >= 3
    assert _still_alive_after(pids, 2.0) == []


async def test_an_error_in_the_block_closes_the_browser() -> None:
    _chromium_or_skip()
    pids: list[int] = []
    with pytest.raises(ExceptionGroup) as caught:  # the block runs inside open_browser's nursery
        async with open_browser(BrowserOptions(concurrency=1)) as browser:
            with trio.fail_after(30):
                await render_site(browser, Site({"/": Response(body=page("x"))}))
            pids.extend(browser.chromium_pids())
            raise LookupError("the crawl failed")
    assert caught.group_contains(LookupError)
    assert len(pids) >= 3
    assert await _wait_gone(pids) == []


async def test_a_fetch_that_raises_a_crawler_error_is_a_refusal(browser: Browser) -> None:
    body = (
        '<p id="out"></p><script>fetch("/x").then(() => "ok", () => "refused")'
        '.then(t => { document.getElementById("out").textContent = t; });</script>'
    )
    async with open_site_server(Site({"/": Response(body=page(body))})) as server:

        async def failing(request: BrowserRequest) -> BrowserResponse | Refusal:
            raise FetchError(FailureKind.ROBOTS, "disallowed by robots.txt", url=request.url)

        async def broken(request: BrowserRequest) -> BrowserResponse | Refusal:
            raise KeyError("a bug in the stage")

        document = BrowserResponse(200, HTML, page(body))
        with trio.fail_after(30):
            rendered = await browser.render(server.url("/"), document=document, fetch=failing)
            with pytest.raises(KeyError):
                await browser.render(server.url("/"), document=document, fetch=broken)
    assert '<p id="out">refused</p>' in rendered.html
    (sub,) = rendered.subrequests
    assert sub.outcome == "refused" and sub.reason and "robots" in sub.reason


async def test_a_document_that_is_a_download_is_a_render_error(browser: Browser) -> None:
    headers = (
        ("content-type", "application/octet-stream"),
        ("content-disposition", "attachment; filename=x.bin"),
    )
    site = Site({"/": Response(body=b"\x00" * 100, headers=headers)})
    with trio.fail_after(30):
        failed = await render_failure(browser, site)
    assert type(failed) is RenderError and "did not load" in str(failed)
    with trio.fail_after(30):
        again, _, _ = await render_site(browser, Site({"/": Response(body=page("<i>ok</i>"))}))
    assert again.settled


async def test_the_dom_is_cut_at_its_bound() -> None:
    _chromium_or_skip()
    body = '<script>document.body.append("x".repeat(100000));</script>'
    async with open_browser(BrowserOptions(concurrency=1, max_dom_chars=1000)) as small:
        with trio.fail_after(30):
            rendered, _, _ = await render_site(small, Site({"/": Response(body=page(body))}))
    assert rendered.html_truncated and len(rendered.html) == 1000


async def test_an_invalid_wait_for_selector_fails_the_render(browser: Browser) -> None:
    with trio.fail_after(30):
        async with open_site_server(Site({"/": Response(body=page("x"))})) as server:
            with pytest.raises(RenderError, match="not a valid CSS selector"):
                await browser.render(
                    server.url("/"),
                    document=BrowserResponse(200, HTML, page("x")),
                    fetch=fetch_through(Fetcher(loopback_settings(server))),
                    wait_for="a[[",
                )


async def test_the_browser_is_retired_when_its_memory_is_over_the_bound() -> None:
    _chromium_or_skip()
    site = Site({"/": Response(body=page("<p>p</p>"))})
    options = BrowserOptions(concurrency=1, max_browser_rss=1)  # every browser is over it
    async with open_browser(options) as browser:
        with trio.fail_after(60):
            await render_site(browser, site)
            first = browser.chromium_pids()
            again, _, _ = await render_site(browser, site)
            assert await _wait_gone(first) == []
        stats = browser.statistics()
    assert again.settled
    assert (stats.browsers_started, stats.browsers_retired) == (2, 2)


async def test_no_chromium_is_one_clear_error() -> None:
    async with open_browser(BrowserOptions(executable="/nonexistent/chromium")) as browser:
        with pytest.raises(BrowserUnavailable, match="not an executable"):
            await browser.render(
                "http://127.0.0.1:1/",
                document=BrowserResponse(200, (), b""),
                fetch=fetch_through(Fetcher(loopback_settings())),
            )


async def test_a_binary_that_is_not_chromium_is_one_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake-chromium"
    fake.write_text("#!/bin/sh\necho 'this is not a browser' >&2\nexit 3\n")
    fake.chmod(0o755)
    async with open_browser(BrowserOptions(executable=str(fake))) as browser:
        with trio.fail_after(30), pytest.raises(BrowserUnavailable, match="did not start") as err:
            await browser.render(
                "http://127.0.0.1:1/",
                document=BrowserResponse(200, (), b""),
                fetch=fetch_through(Fetcher(loopback_settings())),
            )
    assert "not a browser" in str(err.value)
    assert "\n" not in str(err.value)


async def test_concurrent_renders_share_one_browser(browser: Browser) -> None:
    site = Site({f"/{i}": Response(body=page(f"<p>page {i}</p>")) for i in range(6)})
    results: dict[int, Rendered] = {}
    async with open_site_server(site) as server, Fetcher(loopback_settings(server)) as fetcher:

        async def one(i: int) -> None:
            url = server.url(f"/{i}")
            results[i] = await browser.render(
                url, document=await fetch_document(fetcher, url), fetch=fetch_through(fetcher)
            )

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i in range(6):
                    nursery.start_soon(one, i)
    assert all(f"<p>page {i}</p>" in results[i].html for i in range(6))
    assert browser.statistics().browsers_started == 1
