"""The report as a user sees it: a real crawl of a loopback site with known broken links,
redirects, duplicate titles and robots-blocked pages, its report opened in headless Chromium.

Two ways in: ``--dump-dom`` (the DOM after the page's script ran, console messages on
stderr with ``--enable-logging=stderr``) and a minimal DevTools-protocol client over
``--remote-debugging-pipe`` (JSON messages ended by NUL on file descriptors 3 and 4: no
websocket, no dependency) to click a column header and type in a filter.

Skipped when no Chromium is installed, unless ``TRIO_CRAWLER_REQUIRE_BROWSER=1`` (then it
fails). ``TRIO_CRAWLER_BROWSER`` names the binary to use.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from selectolax.lexbor import LexborHTMLParser

from trio_crawler.testing import Response, Site, SiteServer, html_page, open_site_server

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def find_browser() -> str | None:
    named = os.environ.get("TRIO_CRAWLER_BROWSER")
    if named:
        return shutil.which(named) or named
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        message = "no Chromium binary (install chromium-headless-shell) to render the report"
        if os.environ.get("TRIO_CRAWLER_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " and TRIO_CRAWLER_REQUIRE_BROWSER=1")
        pytest.skip(message)
    return found


# --------------------------------------------------------------------------- the crawl
def audit_site(down: str) -> Site:
    """A site whose report has a known truth. ``down``: a URL nothing listens on."""
    return Site(
        {
            "/robots.txt": Response(
                body=b"User-agent: *\nDisallow: /private/\n",
                headers=(("content-type", "text/plain"),),
            ),
            "/": html_page(
                '<a href="/a">A</a> <a href="/b">B</a> <a href="/c">C</a> '
                '<a href="/missing">missing from home</a> <a href="/private/one">private</a> '
                '<a href="/loop-a">loop</a> <a href="/noindex">hidden</a> '
                '<a href="/dup1">d1</a> <a href="/dup2">d2</a> <a href="/notitle">nt</a> '
                f'<a href="{down}">down</a>',
                title="Home",
            ),
            "/a": html_page(
                '<a href="/missing">broken on a</a> <a href="/gone">gone</a> '
                '<a href="/error">error</a> <a href="/private/two">p2</a>',
                title="A",
            ),
            "/b": html_page('<a href="/missing">again</a> <a href="/gone">gone</a>', title="B"),
            "/c": html_page('<a href="/old">old</a>', title="C"),
            "/missing": Response(status=404, body=b"no"),
            "/gone": Response(status=410, body=b"gone"),
            "/error": Response(status=500, body=b"oops"),
            "/old": Response(status=301, headers=(("location", "/older"),)),
            "/older": Response(status=302, headers=(("location", "/new"),)),
            "/new": html_page("new", title="New"),
            "/loop-a": Response(status=301, headers=(("location", "/loop-b"),)),
            "/loop-b": Response(status=301, headers=(("location", "/loop-a"),)),
            "/noindex": Response(
                body=b'<html><head><meta name="robots" content="noindex"><title>N</title>'
                b"</head><body>x</body></html>"
            ),
            "/dup1": html_page("one", title="Duplicate"),
            "/dup2": html_page("two", title="Duplicate"),
            "/notitle": html_page("no title here"),
        }
    )


#: What the report must show, paths of the site above (``down`` aside).
BROKEN = {"/missing": "404", "/gone": "410", "/error": "500"}
#: Every page that links to each broken URL, with the link's text (``--report`` keeps the
#: crawl's link graph).
REFERRERS = {
    "/missing": {"/": "missing from home", "/a": "broken on a", "/b": "again"},
    "/gone": {"/a": "gone", "/b": "gone"},
    "/error": {"/a": "error"},
}
RECORDS = 15  # every URL tried: not /noindex (meta robots), /older, /loop-b (redirect hops)


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Crawl the audit site once with ``--state``, ``-o`` and ``--report``."""
    workdir = tmp_path_factory.mktemp("audit")
    return trio.run(_crawl, workdir)


async def _crawl(workdir: Path) -> dict[str, Any]:
    with socket.socket() as closed:  # bound, not listening: connecting is refused
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}/down"
        async with open_site_server(audit_site(down)) as server:
            argv = [
                "crawl",
                server.url("/"),
                "--scope",
                "any",
                "--allow-address",
                down.split("/")[2],
                "--delay",
                "0",
                "--max-retries",
                "0",
                "--state",
                "crawl.db",
                "-o",
                "pages.jsonl",
                "--report",
                "report.html",
                "-q",
            ]
            with trio.fail_after(60):
                result = await trio.run_process(
                    [sys.executable, "-m", "trio_crawler", *argv],
                    cwd=workdir,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
    assert result.returncode == 0, result.stderr.decode()
    return {"dir": workdir, "server": server, "down": down}


def url(server: SiteServer, path: str) -> str:
    return server.url(path)


# --------------------------------------------------------------------------- --dump-dom
def dump_dom(browser: str, page: Path) -> tuple[LexborHTMLParser, list[str]]:
    result = subprocess.run(
        [
            browser,
            *BROWSER_FLAGS,
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    console = [
        line
        for line in result.stderr.decode(errors="replace").splitlines()
        if ":CONSOLE" in line or "Uncaught" in line
    ]
    return LexborHTMLParser(result.stdout.decode()), console


def test_the_report_renders_with_charts_and_the_true_broken_links(
    browser: str, crawled: dict[str, Any]
) -> None:
    server: SiteServer = crawled["server"]
    records = (crawled["dir"] / "pages.jsonl").read_text().splitlines()
    assert len(records) == RECORDS
    dom, console = dump_dom(browser, crawled["dir"] / "report.html")
    assert console == [], "\n".join(console)  # no error, no CSP violation, no log at all
    root = dom.css_first("html")
    assert root is not None and root.attributes.get("data-js") == "ready"  # the script ran

    # the charts: each an SVG with a title and labelled axes, its marks adding up to the crawl
    for chart in (
        "chart-timeline",
        "chart-response-times",
        "chart-sizes",
        "chart-depth",
        "chart-hosts-pages",
        "chart-hosts-time",
        "chart-failures",
    ):
        svg = dom.css_first(f"svg#{chart}")
        assert svg is not None, chart
        assert svg.css_first("title") is not None
        assert svg.css("rect.bar"), chart
        assert svg.css("text"), chart

    def tips(chart: str) -> list[str]:
        return [t.text() for t in dom.css(f"svg#{chart} rect.bar > title")]

    def total(chart: str) -> int:
        counts = [re.search(r": ([\d,]+)", tip) for tip in tips(chart)]
        return sum(int(m[1].replace(",", "")) for m in counts if m)

    assert total("chart-depth") == RECORDS
    assert total("chart-timeline") == RECORDS
    assert sorted(tips("chart-failures")) == sorted(
        ["http_status: 3", "robots: 2", "connect: 1", "redirect_loop: 1"]
    )
    axis_titles = [t.text() for t in dom.css("svg .axis-title")]
    assert any("response time" in t and "log scale" in t for t in axis_titles)
    assert any("decoded bytes" in t for t in axis_titles)
    assert any(t.startswith("pages per ") for t in axis_titles)
    markers = [t.text() for t in dom.css("svg#chart-response-times .marker-label")]
    assert [m.split()[0] for m in markers] == ["p50", "p90", "p99"]

    # the broken links: exactly the truth, each with every page that links to it and the
    # link's text
    rows = dom.css("table#broken-links tbody tr")
    found: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for row in rows:
        cells = row.css("td")
        link = cells[0].css_first("a")
        assert link is not None
        referrers = []
        for item in cells[2].css("li"):
            a, q = item.css_first("a"), item.css_first("q")
            assert a is not None and q is not None
            referrers.append((a.attributes["href"] or "", q.text()))
        found[link.attributes["href"] or ""] = (cells[1].text().strip(), referrers)
    expected = {url(server, p): status for p, status in BROKEN.items()}
    expected[crawled["down"]] = "connect"
    assert {u: s for u, (s, _) in found.items()} == expected
    for path, texts in REFERRERS.items():
        linked = found[url(server, path)][1]
        assert sorted(linked) == sorted((url(server, r), text) for r, text in texts.items())
    assert found[crawled["down"]][1] == [(url(server, "/"), "down")]

    # the other tables hold what the site holds
    def first_links(table: str) -> set[str]:
        out = set()
        for row in dom.css(f"table#{table} tbody tr"):
            a = row.css_first("td a")
            assert a is not None
            out.add(a.attributes["href"] or "")
        return out

    assert first_links("robots-blocked") == {
        url(server, "/private/one"),
        url(server, "/private/two"),
    }
    assert first_links("redirect-chains") == {url(server, "/old"), url(server, "/loop-a")}
    assert first_links("missing-titles") == {url(server, "/notitle")}
    assert first_links("meta-robots") == {url(server, "/noindex")}
    dup = dom.css("table#duplicate-titles tbody tr")
    assert len(dup) == 1 and dup[0].css("td")[0].text() == "Duplicate"
    assert {a.attributes["href"] for a in dup[0].css("a")} == {
        url(server, "/dup1"),
        url(server, "/dup2"),
    }
    flags = {
        row.css("td a")[0].attributes["href"]: [f.text() for f in row.css(".flag")]
        for row in dom.css("table#redirect-chains tbody tr")
    }
    assert flags[url(server, "/old")] == ["chain"]
    assert flags[url(server, "/loop-a")] == ["loop", "chain"]


def test_the_report_of_the_json_lines_says_it_has_no_link_graph(
    browser: str, crawled: dict[str, Any]
) -> None:
    workdir: Path = crawled["dir"]
    result = subprocess.run(
        [sys.executable, "-m", "trio_crawler", "report", "pages.jsonl", "-o", "jsonl.html"],
        cwd=workdir,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    dom, console = dump_dom(browser, workdir / "jsonl.html")
    assert console == []
    notes = dom.css_first("ul.notes")
    assert notes is not None and "one referrer per URL" in notes.text()
    assert len(dom.css("table#broken-links tbody tr")) == 4


def test_a_screenshot_of_the_report(browser: str, crawled: dict[str, Any]) -> None:
    shot = crawled["dir"] / "report.png"
    subprocess.run(
        [
            browser,
            *BROWSER_FLAGS,
            f"--screenshot={shot}",
            "--window-size=1440,900",
            (crawled["dir"] / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the DevTools protocol
class DevTools:
    """Just enough of the DevTools protocol over ``--remote-debugging-pipe`` for a test: send a
    command, wait for its answer, keep the events seen meanwhile."""

    def __init__(self, browser: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def plumb() -> None:  # in the child: the browser reads fd 3 and writes fd 4
            read, write = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            [browser, *BROWSER_FLAGS, "--remote-debugging-pipe", "about:blank"],
            preexec_fn=plumb,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive(30.0)
            if answer.get("id") == self._id:
                assert "error" not in answer, answer
                result: dict[str, Any] = answer.get("result", {})
                return result
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._receive(max(0.0, deadline - time.monotonic()))
            self.events.append(event)
            if event.get("method") == method:
                return event

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def _receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_chrome], [], [], deadline - time.monotonic())
            if not ready:
                raise TimeoutError("the browser did not answer")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("the browser closed the pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        value: dict[str, Any] = json.loads(message)
        return value

    def close(self) -> None:
        try:
            self.session = ""
            self.call("Browser.close")
        except (OSError, TimeoutError, EOFError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture
def devtools(browser: str) -> Iterator[DevTools]:
    tools = DevTools(browser)
    try:
        yield tools
    finally:
        tools.close()


def open_page(tools: DevTools, page: Path) -> None:
    target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    tools.session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    for domain in ("Runtime", "Log", "Page"):
        tools.call(f"{domain}.enable")
    tools.events.clear()
    tools.call("Page.navigate", {"url": page.as_uri()})
    tools.wait_for("Page.loadEventFired")


def test_tables_sort_and_filter_in_the_browser(devtools: DevTools, crawled: dict[str, Any]) -> None:
    open_page(devtools, crawled["dir"] / "report.html")
    rows = "Array.from(document.querySelectorAll('#broken-links tbody tr'))"
    visible = f"{rows}.filter(r => !r.hidden).length"
    statuses = f"{rows}.map(r => r.cells[1].textContent)"
    assert devtools.evaluate(visible) == 4

    # sort by status: a click sorts ascending (a text column), a second click descending
    devtools.evaluate("document.querySelectorAll('#broken-links th button')[1].click()")
    first = devtools.evaluate(statuses)
    assert first == sorted(first)
    devtools.evaluate("document.querySelectorAll('#broken-links th button')[1].click()")
    assert devtools.evaluate(statuses) == sorted(first, reverse=True)
    sort = devtools.evaluate(
        "document.querySelectorAll('#broken-links th')[1].getAttribute('aria-sort')"
    )
    assert sort == "descending"

    # the filter: type, see the rows that match, clear, see them all
    def type_filter(text: str) -> None:
        devtools.evaluate(
            "(() => { const i = document.querySelector(\"input[data-table='broken-links']\");"
            f" i.value = {json.dumps(text)}; i.dispatchEvent(new Event('input')); }})()"
        )

    type_filter("gone")
    assert devtools.evaluate(visible) == 1
    count = devtools.evaluate("document.getElementById('broken-links-count').textContent")
    assert count == "1 of 4 rows match"
    type_filter("")
    assert devtools.evaluate(visible) == 4

    errors = [
        e
        for e in devtools.events
        if e.get("method") in ("Runtime.exceptionThrown", "Runtime.consoleAPICalled")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
