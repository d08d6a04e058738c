"""The crawl report: the pure aggregation, escaping, the sources and the command line.

The browser's view of a real crawl's report is in ``test_report_browser.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import trio
from interrupt import default_sigint

from trio_crawler._cli import main
from trio_crawler._report import (
    Aggregator,
    CrawlInfo,
    Limits,
    MemoryCrawlGraph,
    ReportError,
    build_report,
    open_input,
    render_html,
)
from trio_crawler._report.aggregate import host_of
from trio_crawler._report.bounded import LogHistogram, TimeSeries, TopK
from trio_crawler.spiders.generic import PageRecord
from trio_crawler.testing import RecordedRequest, Response, Site, html_page, open_site_server

T0 = 1_700_000_000.0


def page(path: str, **fields: Any) -> dict[str, Any]:
    """A generic record of ``http://a.test{path}``: a 200 HTML page unless ``fields`` say."""
    url = path if path.startswith("http") else f"http://a.test{path}"
    record: dict[str, Any] = {
        "url": url,
        "final_url": url,
        "status": 200,
        "depth": 1,
        "referrer": "http://a.test/",
        "content_type": "text/html",
        "size": 1000,
        "title": f"title of {path}",
        "links": 3,
        "fetch_time": 0.05,
        "truncated": False,
        "redirects": [],
        "error": None,
        "error_kind": None,
        "fetched_at": T0,
    }
    record.update(fields)
    return record


def failure(path: str, kind: str, status: int | None = None, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": status,
        "content_type": None,
        "size": 0,
        "title": None,
        "links": 0,
        "fetch_time": 0.0,
        "error": f"HTTP {status}" if status else f"{kind} failed",
        "error_kind": kind,
    }
    values.update(fields)
    return page(path, **values)


SAMPLE = [
    page("/", depth=0, referrer=None, title="Home", fetched_at=T0),
    page("/a", title="Same", fetch_time=0.9, size=50_000, fetched_at=T0 + 1),
    page("/b", title="  Same \n", fetched_at=T0 + 2),
    page("/c", title=None, fetched_at=T0 + 3),
    page("/report.pdf", content_type="application/pdf", title=None, fetched_at=T0 + 3),
    failure("/missing", "http_status", 404, referrer="http://a.test/a", fetched_at=T0 + 4),
    failure("/gone", "http_status", 410, fetched_at=T0 + 4),
    failure("/boom", "http_status", 503, fetched_at=T0 + 5),
    failure("/forbidden", "http_status", 403, fetched_at=T0 + 5),
    failure("http://nowhere.test/", "dns", fetched_at=T0 + 6),
    failure("http://a.test:9/", "connect", fetched_at=T0 + 6),
    failure("/slow", "timeout", fetched_at=T0 + 6),
    failure("/private/x", "robots", referrer="http://a.test/b", fetched_at=T0 + 7),
    page(
        "/old",
        final_url="http://a.test/new",
        redirects=["http://a.test/old", "http://a.test/older"],
        title="New",
        fetched_at=T0 + 8,
    ),
    page(
        "http://a.test/secure",
        final_url="https://a.test/secure",
        redirects=["http://a.test/secure"],
        title="Secure",
        fetched_at=T0 + 8,
    ),
    failure(
        "/loop-a",
        "redirect_loop",
        301,
        redirects=["http://a.test/loop-a"],
        final_url="http://a.test/loop-b",
        error="redirect loop back to http://a.test/loop-a",
        fetched_at=T0 + 9,
    ),
    failure(
        "/away",
        "out_of_scope",
        302,
        final_url="http://a.test/away",
        error="redirect to http://b.test/ refused: out_of_scope",
        fetched_at=T0 + 9,
    ),
    page("/deep", depth=7, fetched_at=T0 + 10),
]


def info(**fields: Any) -> CrawlInfo:
    return CrawlInfo(source="test", **fields)


# --------------------------------------------------------------------------- bounded structures
def test_log_histogram_quantiles_are_within_a_bin() -> None:
    hist = LogHistogram(1e-4, 1e3)
    for i in range(1, 1001):
        hist.add(i / 1000)  # 1 ms to 1 s, uniform
    for q, truth in ((0.5, 0.5), (0.9, 0.9), (0.99, 0.99)):
        value = hist.quantile(q)
        assert value is not None
        assert abs(value - truth) / truth < 0.05
    assert hist.quantile(0.0) == pytest.approx(0.001, rel=0.05)
    assert hist.quantile(1.0) == 1.0
    view = hist.view(10)
    assert sum(view.counts) == 1000
    assert len(view.edges) == len(view.counts) + 1
    assert view.edges[0] == pytest.approx(1e-3)
    assert view.edges[-1] == pytest.approx(10.0)  # 1.0 s is the first value of the next decade


def test_log_histogram_keeps_values_beyond_its_range() -> None:
    hist = LogHistogram(1.0, 1e4)
    for value in (0, 0.5, 5, 50, 1e9):
        hist.add(value)
    view = hist.view(5)
    assert sum(view.counts) == 5
    assert hist.max == 1e9 and hist.min == 0
    assert hist.quantile(1.0) == 1e9


def test_time_series_widens_its_bins_to_fit() -> None:
    series = TimeSeries(max_bins=120)
    for i in range(36_000):  # one record every 0.1 s for an hour
        series.add(T0 + i / 10, i % 3)
    view = series.view()
    assert view is not None
    assert len(view.bins) <= 120
    assert sum(sum(b) for b in view.bins) == 36_000
    assert view.width == 60.0  # an hour in 60-second bins
    assert view.start <= T0 < view.start + view.width


def test_time_series_takes_records_out_of_order() -> None:
    series = TimeSeries(max_bins=10)
    for t in (5.0, 0.0, 100.0, 50.0, 3.0):
        series.add(T0 + t, 0)
    view = series.view()
    assert view is not None
    assert len(view.bins) <= 10
    assert sum(b[0] for b in view.bins) == 5


def test_top_k_keeps_the_largest_and_the_first_of_equals() -> None:
    top: TopK[str] = TopK(3)
    for key, name in ((1, "a"), (5, "b"), (5, "c"), (3, "d"), (5, "e"), (0, "f")):
        if top.wants(key):
            top.add(key, name)
    assert top.items() == ["b", "c", "e"]


def test_host_of() -> None:
    assert host_of("http://User@Example.COM:8080/a?b#c") == "example.com:8080"
    assert host_of("https://a.test") == "a.test"
    assert host_of("not a url") == ""


# --------------------------------------------------------------------------- aggregation
def test_summary_counts() -> None:
    report = build_report(SAMPLE, info())
    s = report.summary
    assert s.records == len(SAMPLE)
    failed = [r for r in SAMPLE if r["error_kind"]]
    assert s.failed == len(failed) and s.ok == len(SAMPLE) - len(failed)
    assert s.status_classes == {
        "2xx": 8,
        "3xx": 2,
        "4xx": 3,
        "5xx": 1,
        "no response": 3,
        "not fetched": 1,
    }
    assert s.failures["http_status"] == 4 and s.failures["robots"] == 1
    assert s.bytes == sum(r["size"] for r in SAMPLE)
    assert s.hosts == 3  # a.test, nowhere.test, a.test:9
    assert s.first_at == T0 and s.last_at == T0 + 10
    assert s.duration == 10.0
    assert dict(report.depths) == {0: 1, 1: 16, 7: 1}
    assert report.info.seeds == ("http://a.test/",)  # depth 0, since no one named them


def test_broken_links_are_404_410_5xx_dns_and_connect() -> None:
    report = build_report(SAMPLE, info())
    broken = {b.url: b for b in report.broken.rows}
    assert set(broken) == {
        "http://a.test/missing",
        "http://a.test/gone",
        "http://a.test/boom",
        "http://nowhere.test/",
        "http://a.test:9/",
    }
    assert report.broken.total == 5
    assert not report.exact_links
    # without a link graph: the record's referrer, no anchor text
    assert broken["http://a.test/missing"].referrers.links == (("http://a.test/a", ""),)


def test_broken_links_take_every_referrer_from_the_graph() -> None:
    graph = MemoryCrawlGraph(keep=2)
    for i in range(5):
        graph.add_link(f"http://a.test/p{i}", "http://a.test/missing", f"anchor {i}")
    graph.add_out_of_scope("http://b.test/", 7)
    graph.add_out_of_scope("http://c.test/", 2)
    graph.add_meta_robots("http://a.test/hidden", "noindex")
    report = build_report(SAMPLE, info(), graph)
    assert report.exact_links
    missing = next(b for b in report.broken.rows if b.url == "http://a.test/missing")
    assert missing.referrers.links == (
        ("http://a.test/p0", "anchor 0"),
        ("http://a.test/p1", "anchor 1"),
    )
    assert missing.referrers.total == 5
    gone = next(b for b in report.broken.rows if b.url == "http://a.test/gone")
    assert gone.referrers.total == 1  # the graph knows none: the record's referrer
    assert report.out_of_scope is not None
    assert report.out_of_scope.top == (("http://b.test/", 7), ("http://c.test/", 2))
    assert report.meta_robots is not None and report.meta_robots.total == 1


def test_redirects_flags() -> None:
    report = build_report(SAMPLE, info())
    rows = {r.url: r for r in report.redirects.rows}
    assert rows["http://a.test/old"].chain == (
        "http://a.test/old",
        "http://a.test/older",
        "http://a.test/new",
    )
    assert rows["http://a.test/old"].flags == ("chain",)
    assert rows["http://a.test/secure"].flags == ("http→https",)
    assert rows["http://a.test/loop-a"].flags == ("loop", "chain")
    assert rows["http://a.test/loop-a"].chain[-1] == "http://a.test/loop-a"
    assert rows["http://a.test/away"].flags == ("out of scope",)
    assert rows["http://a.test/away"].chain == ("http://a.test/away", "http://b.test/")
    assert report.redirects.total == 4
    # failures first, then the longest
    assert [r.url for r in report.redirects.rows][:2] == [
        "http://a.test/loop-a",
        "http://a.test/away",
    ]


def test_titles_missing_and_duplicate() -> None:
    report = build_report(SAMPLE, info())
    assert [r.url for r in report.missing_titles.rows] == ["http://a.test/c"]  # not the PDF
    groups = report.duplicate_titles.rows
    assert len(groups) == 1
    assert groups[0].title == "Same" and groups[0].count == 2
    assert groups[0].urls == ("http://a.test/a", "http://a.test/b")


def test_slowest_largest_robots_and_hosts() -> None:
    report = build_report(SAMPLE, info())
    assert report.slowest.rows[0].url == "http://a.test/a"
    assert report.largest.rows[0].url == "http://a.test/a"
    assert [r.url for r in report.robots_blocked.rows] == ["http://a.test/private/x"]
    assert report.robots_blocked.rows[0].detail == "http://a.test/b"
    assert report.hosts_by_pages[0].host == "a.test"
    assert report.response_times.n == 8  # the pages fetched (failures carry no time)
    assert report.response_times.p50 == pytest.approx(0.05, rel=0.05)


def test_records_of_the_wrong_shape_are_skipped_not_fatal() -> None:
    hostile: list[dict[str, Any]] = [
        {},
        {"url": 5},
        {"url": ""},
        {"url": "http://a.test/x", "status": "200", "size": "big", "depth": None},
        {"url": "http://a.test/y", "status": 200.0, "fetch_time": float("nan")},
        {"url": "http://a.test/z", "redirects": "not a list", "error_kind": 5, "error": ["x"]},
        {"url": "http://a.test/t", "status": 200, "content_type": "text/html", "title": 7},
        {"url": "http://a.test/u", "fetched_at": "yesterday", "depth": -3},
    ]
    report = build_report(hostile, info())
    assert report.summary.skipped == 3
    assert report.summary.records == 5
    render_html(report)


def test_memory_stays_bounded_by_the_limits() -> None:
    limits = Limits(rows=10, top=5, titles=50, hosts=20, urls_per_title=3)
    agg = Aggregator(limits)
    for i in range(5_000):
        host = f"h{i % 40}.test"
        agg.add(page(f"http://{host}/p{i}", title=f"t{i % 100}", fetched_at=T0 + i))
        agg.add(failure(f"http://{host}/missing{i}", "http_status", 404, fetched_at=T0 + i))
    assert len(agg.titles) == 50 and agg.titles_dropped > 0
    assert len(agg.hosts) == 20
    report = agg.finish(info())
    assert len(report.broken.rows) == 10 and report.broken.total == 5_000
    assert len(report.slowest.rows) == 5
    assert all(len(g.urls) <= 3 for g in report.duplicate_titles.rows)
    assert report.timeline is not None and len(report.timeline.bins) <= limits.time_bins
    assert report.hosts_by_pages[-1].host != "" and report.summary.hosts == 21


def test_an_empty_crawl_renders() -> None:
    text = render_html(build_report([], info()))
    assert "no record carries a time" in text
    assert "No broken links." in text


def test_page_record_has_fetched_at_at_the_end_with_a_default() -> None:
    record = PageRecord(
        url="http://a.test/",
        final_url="http://a.test/",
        status=200,
        depth=0,
        referrer=None,
        content_type="text/html",
        size=1,
        title=None,
        links=0,
        fetch_time=0.1,
    )
    assert record.fetched_at is None
    from dataclasses import fields

    assert [f.name for f in fields(PageRecord)][-1] == "fetched_at"


# --------------------------------------------------------------------------- HTML safety
class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.script: list[str] = []
        self.style: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.script.append(data)
        elif self._in == "style":
            self.style.append(data)


HOSTILE_TITLE = "</script><script>alert(1)</script><!--"
HOSTILE_URL = "http://evil.test/\"><img src=x onerror=alert(2)>'"


def hostile_report() -> str:
    graph = MemoryCrawlGraph()
    graph.add_link("javascript:alert(3)", HOSTILE_URL, "<b onclick=alert(4)>click</b>")
    graph.add_link(HOSTILE_URL, HOSTILE_URL, "</textarea><svg onload=alert(5)>")
    graph.add_out_of_scope("http://x.test/<script>alert(6)</script>")
    graph.add_meta_robots(HOSTILE_URL, "<noindex>")
    records = [
        page("/t1", title=HOSTILE_TITLE, depth=0),
        page("/t2", title=HOSTILE_TITLE, content_type='text/html"><script>alert(7)</script>'),
        page("/t3", title="\x00\x1b[31m\ud800 bidi \u202e evil"),
        failure(HOSTILE_URL, "http_status", 404, error="<script>alert(8)</script>"),
        page(
            HOSTILE_URL,
            redirects=[HOSTILE_URL, "javascript:alert(9)"],
            final_url="http://evil.test/</style><script>alert(10)</script>",
        ),
        failure("/r", "robots", referrer="javascript:alert(11)"),
    ]
    seeds = ("http://evil.test/<script>alert(12)</script>",)
    settings = (("scope", "<script>alert(13)</script>"),)
    report = build_report(records, info(seeds=seeds, settings=settings), graph)
    return render_html(report)


def test_hostile_strings_cannot_inject_markup_or_script() -> None:
    text = hostile_report()
    text.encode("utf-8")  # the lone surrogate is gone
    parser = _Tags()
    parser.feed(text)
    names = {name for name, _ in parser.tags}
    assert "img" not in names and "b" not in names and "noindex" not in names
    assert [name for name, _ in parser.tags].count("script") == 1
    assert "alert" not in "".join(parser.script)
    assert "alert" not in "".join(parser.style)
    for _, attrs in parser.tags:
        for key, value in attrs:
            assert not key.startswith("on"), (key, value)
            if key == "href":
                assert value is not None
                assert value.startswith(("http://", "https://", "#")), value
    assert "javascript:alert" not in re.sub(r">[^<]*<", "><", text)  # only as text


def test_the_policy_admits_exactly_the_inline_style_and_script() -> None:
    text = hostile_report()
    parser = _Tags()
    parser.feed(text)
    csp = next(
        dict(attrs)["content"]
        for name, attrs in parser.tags
        if name == "meta" and dict(attrs).get("http-equiv") == "Content-Security-Policy"
    )
    assert csp is not None

    def digest(body: str) -> str:
        raw = hashlib.sha256(body.encode()).digest()
        return "sha256-" + base64.b64encode(raw).decode()

    assert f"script-src '{digest(''.join(parser.script))}'" in csp
    assert f"style-src '{digest(''.join(parser.style))}'" in csp
    assert "default-src 'none'" in csp
    assert "http" not in csp.replace("http-equiv", "")  # nothing fetched from anywhere


# --------------------------------------------------------------------------- sources
def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_jsonl_source_and_a_stats_file(tmp_path: Path) -> None:
    pages = tmp_path / "pages.jsonl"
    write_jsonl(pages, SAMPLE)
    with pages.open("a") as fh:
        fh.write("not json\n\n[1, 2]\n")
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"pages_ok": 1, "stop_reason": "max_pages", "elapsed": 42.5}))
    source = open_input(str(pages), stats_path=str(stats))
    assert source.graph is None
    assert source.info.stop_reason == "max_pages" and source.info.elapsed == 42.5
    report = build_report(source.records, source.info)
    assert report.summary.records == len(SAMPLE)
    assert report.summary.skipped == 2
    assert report.summary.duration == 42.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not a crawl"),
        (b'{"quote": "x", "author": "y"}\n', "records of another kind"),
        (b"[1, 2, 3]\n", "is not a crawl"),
    ],
)
def test_files_that_are_not_crawls(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input"
    path.write_bytes(content)
    with pytest.raises(ReportError, match=message):
        open_input(str(path))


def test_a_sqlite_file_that_is_not_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    from trio_crawler import StoreError

    with pytest.raises(StoreError, match="not a trio-crawler state file"):
        open_input(str(path))


def test_redis_needs_a_crawl_id_and_a_server(tmp_path: Path) -> None:
    from trio_crawler import StoreError

    with pytest.raises(ReportError, match="--crawl-id"):
        open_input("redis://127.0.0.1:1/0")
    with pytest.raises(StoreError, match="cannot reach Redis"):
        open_input("redis://127.0.0.1:1/0", crawl_id="c")


# --------------------------------------------------------------------------- the command
def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_report_command_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pages = tmp_path / "pages.jsonl"
    write_jsonl(pages, SAMPLE)
    out = tmp_path / "report.html"
    code, err = run_cli(["report", str(pages), "-o", str(out)], capsys)
    assert code == 0, err
    assert err.startswith(f"report written to {out}")
    text = out.read_text()
    assert text.startswith("<!doctype html>") and "http://a.test/missing" in text
    assert not list(tmp_path.glob(".report-*"))  # no temporary file left behind


@pytest.mark.parametrize(
    "case", ["missing", "directory", "not-a-crawl", "bad-output", "same-file", "bad-stats"]
)
def test_bad_input_is_one_line_exit_2_and_keeps_the_old_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    pages = tmp_path / "pages.jsonl"
    write_jsonl(pages, SAMPLE)
    out = tmp_path / "report.html"
    out.write_text("the previous report")
    argv = ["report", str(pages), "-o", str(out)]
    if case == "missing":
        argv[1] = str(tmp_path / "nope.jsonl")
    elif case == "directory":
        argv[1] = str(tmp_path)
    elif case == "not-a-crawl":
        (tmp_path / "x.txt").write_text("hello\n")
        argv[1] = str(tmp_path / "x.txt")
    elif case == "bad-output":
        argv[3] = str(pages / "report.html")  # a file is not a directory, even for root
    elif case == "same-file":
        argv[3] = str(pages)
    elif case == "bad-stats":
        argv += ["--stats", str(pages)]
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert err.startswith("trio-crawler: error: ") and err.count("\n") == 1, err
    assert out.read_text() == "the previous report"
    assert pages.read_text().startswith("{")
    assert not list(tmp_path.glob(".report-*"))


CLI = [sys.executable, "-m", "trio_crawler"]


async def _run(argv: list[str], cwd: Path) -> trio.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [*CLI, *argv],
            cwd=cwd,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


def small_site() -> Site:
    return Site(
        {
            "/": html_page('<a href="/a">a</a> <a href="/missing">gone</a>', title="Home"),
            "/a": html_page('<a href="/missing">again</a>', title="A"),
        }
    )


async def test_crawl_report_without_a_file_to_read_back(tmp_path: Path) -> None:
    async with open_site_server(small_site()) as server:
        result = await _run(
            ["crawl", server.url("/"), "--delay", "0", "-q", "--report", "r.html"], tmp_path
        )
    assert result.returncode == 0, result.stderr.decode()
    text = (tmp_path / "r.html").read_text()
    assert f"{server.origin}/missing" in text
    assert "as it ran" in text
    assert b'"url"' in result.stdout  # the records still go to stdout


async def test_crawl_report_from_the_state_file(tmp_path: Path) -> None:
    async with open_site_server(small_site()) as server:
        argv = ["crawl", server.url("/"), "--delay", "0", "--state", "s.db", "--report", "r.html"]
        result = await _run([*argv, "-o", "p.jsonl"], tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert b"report written to r.html" in result.stderr
    text = (tmp_path / "r.html").read_text()
    assert "s.db" in text and f"{server.origin}/missing" in text
    # and the report command reads the same state file
    result = await _run(["report", "s.db", "-o", "r2.html"], tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert f"{server.origin}/missing" in (tmp_path / "r2.html").read_text()


async def test_crawl_report_to_an_unwritable_place_fails_before_the_crawl(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("")
    async with open_site_server(small_site()) as server:
        result = await _run(
            ["crawl", server.url("/"), "--delay", "0", "-q", "--report", "file/r.html"], tmp_path
        )
    assert result.returncode == 2
    assert result.stderr.decode().count("\n") == 1
    assert server.requests == []


async def test_crawl_report_after_ctrl_c(tmp_path: Path) -> None:
    in_flight = trio.Event()

    async def slow(_: RecordedRequest) -> Response:
        in_flight.set()
        await trio.sleep(2.0)  # in flight when the Ctrl-C comes: the crawl stops after it
        return html_page("slow", title="Slow")

    site = small_site()
    site.add("/a", slow)
    async with open_site_server(site) as server:
        with trio.fail_after(60):
            proc = await trio.lowlevel.open_process(
                [*CLI, "crawl", server.url("/"), "--delay", "0", "-q", "--report", "r.html"],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=default_sigint,
            )
            try:
                await in_flight.wait()
                proc.send_signal(signal.SIGINT)
                code = await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    assert code == 130
    text = (tmp_path / "r.html").read_text()
    assert "interrupted" in text
    assert server.url("/") in text
