"""The report with the crawl's link graph (issue 19), end to end: a loopback site with a
broken URL linked from 27 pages with known link texts, another from 3, an out-of-scope link
met on 26 pages and a noindex page, crawled through each store (memory, SQLite, Redis) with
the graph on; the report lists the first 20 referrers of each broken URL with their text and
counts them all, the out-of-scope links and the noindex page. Then the commands: ``report``
of a state file and of a Redis crawl, and ``crawl --processes 2 --report``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from selectolax.lexbor import LexborHTMLParser

from trio_crawler import Crawler
from trio_crawler._cli import main
from trio_crawler._report import MetaRobotsPages, OutOfScopeLinks, Report, open_crawl_report
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import (
    Response,
    Site,
    SiteServer,
    html_page,
    loopback_settings,
    open_site_server,
)

REFERRING = 25  # pages that link to /missing, besides the home page and /hidden
AWAY = "http://elsewhere.test/"
LIMIT = 60


def graph_site() -> Site:
    home = [
        '<a href="/missing">missing from <em>home</em></a>',
        f'<a href="{AWAY}">away</a>',
        '<a href="/hidden">hidden</a>',
        *(f'<a href="/p{i}">page {i}</a>' for i in range(REFERRING)),
    ]
    pages: dict[str, Any] = {"/": html_page(" ".join(home), title="Home")}
    for i in range(REFERRING):
        body = f'<a href="/missing">broken from p{i}</a> <a href="{AWAY}">away</a>'
        if i < 3:
            body += f' <a href="/gone">gone from p{i}</a>'
        pages[f"/p{i}"] = html_page(body, title=f"P{i}")
    pages["/hidden"] = Response(
        body=b'<html><head><meta name="robots" content="noindex"><title>H</title></head>'
        b'<body><a href="/missing">hidden <b>link</b></a></body></html>'
    )
    pages["/missing"] = Response(status=404, body=b"no")
    pages["/gone"] = Response(status=410, body=b"gone")
    return Site(pages)


def expected_texts(server: SiteServer) -> dict[str, dict[str, str]]:
    """Broken URL -> {referrer: link text}: every page that links to it."""
    missing = {server.url("/"): "missing from home", server.url("/hidden"): "hidden link"}
    missing |= {server.url(f"/p{i}"): f"broken from p{i}" for i in range(REFERRING)}
    gone = {server.url(f"/p{i}"): f"gone from p{i}" for i in range(3)}
    return {server.url("/missing"): missing, server.url("/gone"): gone}


def check_report(report: Report, server: SiteServer) -> None:
    """The report holds the whole truth of the site's graph (the first 20 of 27 referrers)."""
    assert report.exact_links
    expected = expected_texts(server)
    rows = {row.url: row.referrers for row in report.broken.rows}
    assert set(rows) == set(expected)
    for url, texts in expected.items():
        refs = rows[url]
        assert refs.total == len(texts)
        assert len(refs.links) == min(20, len(texts))
        assert len({source for source, _ in refs.links}) == len(refs.links)
        for source, text in refs.links:
            assert texts[source] == text
    assert report.out_of_scope == OutOfScopeLinks(((AWAY, REFERRING + 1),), 1, REFERRING + 1)
    assert report.meta_robots == MetaRobotsPages(((server.url("/hidden"), "noindex"),), 1)


def broken_rows(html: str) -> dict[str, tuple[list[tuple[str, str]], int]]:
    """The broken-links table of a report: URL -> ([(referrer, link text)], referrers)."""
    out = {}
    for row in LexborHTMLParser(html).css("table#broken-links tbody tr"):
        cells = row.css("td")
        link = cells[0].css_first("a")
        assert link is not None
        refs = []
        for item in cells[2].css("li"):
            a, q = item.css_first("a"), item.css_first("q")
            assert a is not None
            refs.append((a.attributes["href"] or "", q.text() if q is not None else ""))
        out[link.attributes["href"] or ""] = (refs, int(cells[3].text().replace(",", "")))
    return out


def check_html(html: str, server: SiteServer) -> None:
    rows = broken_rows(html)
    for url, texts in expected_texts(server).items():
        refs, total = rows[url]
        assert total == len(texts) and len(refs) == min(20, len(texts))
        assert all(texts[source] == text for source, text in refs)
    dom = LexborHTMLParser(html)
    oos = [r.text() for r in dom.css("table#out-of-scope tbody tr td")]
    assert AWAY in oos[0] and oos[1] == str(REFERRING + 1)
    hidden = dom.css("table#meta-robots tbody tr td")
    assert [td.text() for td in hidden] == [server.url("/hidden"), "noindex"]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "memory":
        return {"state": None, "crawl_id": None, "sqlite": None}
    if request.param == "sqlite":
        path = str(tmp_path / "crawl.db")
        return {"state": path, "crawl_id": None, "sqlite": path}
    server = request.getfixturevalue("redis_server")
    return {"state": server.url, "crawl_id": f"graph-{request.node.name}"[:60], "sqlite": None}


async def test_the_report_lists_every_referrer_with_its_text(
    backend: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "pages.jsonl"
    async with open_site_server(graph_site()) as server:
        spider = GenericSpider(start_urls=(server.url("/"),))
        settings = loopback_settings(server, link_graph=True, max_retries=0)
        crawler = Crawler(
            spider,
            settings,
            state=backend["state"],
            crawl_id=backend["crawl_id"],
            outputs=[str(out)],
        )
        args = argparse.Namespace(
            report=str(tmp_path / "report.html"), state=backend["sqlite"], quiet=True
        )
        crawl_report = open_crawl_report(crawler, args)
        assert crawl_report is not None
        with trio.fail_after(LIMIT):
            await crawler.run()
            stats = crawler.statistics()
            report = await trio.to_thread.run_sync(crawl_report.build, stats)
            assert await crawl_report.write(stats)
    check_report(report, server)
    check_html((tmp_path / "report.html").read_text(), server)
    if backend["crawl_id"] is not None:  # Redis: the crawl's times are Redis' own
        started, ended = report.info.started_at, report.info.ended_at
        assert started is not None and ended is not None
        assert 0 <= ended - started < LIMIT and abs(time.time() - ended) < LIMIT
    # a failure's record says how long it took (the fetch's time, no longer 0)
    records = {r["url"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert records[server.url("/missing")]["fetch_time"] > 0
    assert server.url("/hidden") not in records  # noindex: no record, but in the report


async def _main(argv: list[str]) -> tuple[int, str]:
    code = await trio.to_thread.run_sync(main, argv)
    return code, ""


async def test_report_command_reads_the_graph_of_a_state_file_and_of_redis(
    tmp_path: Path, redis_server: Any
) -> None:
    async with open_site_server(graph_site()) as server:
        settings = loopback_settings(server, link_graph=True, max_retries=0)
        db = str(tmp_path / "crawl.db")
        with trio.fail_after(LIMIT):
            for state, crawl_id in ((db, None), (redis_server.url, "graph-command")):
                spider = GenericSpider(start_urls=(server.url("/"),))
                await Crawler(spider, settings, state=state, crawl_id=crawl_id).run()
    with trio.fail_after(LIMIT):
        code, _ = await _main(["report", db, "-o", str(tmp_path / "a.html"), "-q"])
        assert code == 0
        argv = ["report", redis_server.url, "--crawl-id", "graph-command"]
        code, _ = await _main([*argv, "-o", str(tmp_path / "b.html"), "-q"])
        assert code == 0
    for name in ("a.html", "b.html"):
        check_html((tmp_path / name).read_text(), server)


async def test_report_of_a_redis_crawl_without_the_graph_says_so(
    tmp_path: Path, redis_server: Any
) -> None:
    async with open_site_server(graph_site()) as server:
        settings = loopback_settings(server, max_retries=0)
        with trio.fail_after(LIMIT):
            spider = GenericSpider(start_urls=(server.url("/"),))
            await Crawler(spider, settings, state=redis_server.url, crawl_id="no-graph").run()
            argv = ["report", redis_server.url, "--crawl-id", "no-graph"]
            code, _ = await _main([*argv, "-o", str(tmp_path / "r.html"), "-q"])
    assert code == 0
    dom = LexborHTMLParser((tmp_path / "r.html").read_text())
    notes = dom.css_first("ul.notes")
    assert notes is not None and "run without it" in notes.text()
    refs, total = broken_rows(dom.html or "")[server.url("/missing")]
    assert total == 1 and len(refs) == 1  # the record's referrer: one page, no text


async def test_crawl_with_processes_reports_the_shared_graph(tmp_path: Path) -> None:
    async with open_site_server(graph_site()) as server:
        argv = ["crawl", server.url("/"), "--delay", "0", "--max-retries", "0", "-q"]
        argv += ["--processes", "2", "--report", "r.html", "-o", "pages.jsonl"]
        with trio.fail_after(LIMIT):
            result = await trio.run_process(
                [sys.executable, "-m", "trio_crawler", *argv],
                cwd=tmp_path,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert result.returncode == 0, result.stderr.decode()
    check_html((tmp_path / "r.html").read_text(), server)


async def test_a_state_file_without_the_graph_and_with_part_of_it(tmp_path: Path) -> None:
    """A crawl kept without the graph: the report names each record's referrer and says why;
    resumed with the graph after pages were done: the report says the graph is partial."""
    from trio_crawler._report import open_input
    from trio_crawler._report.sources import NO_STORED_GRAPH, PARTIAL_GRAPH

    db = str(tmp_path / "crawl.db")
    async with open_site_server(graph_site()) as server:
        with trio.fail_after(LIMIT):
            spider = GenericSpider(start_urls=(server.url("/"),))
            await Crawler(spider, loopback_settings(server, max_pages=5), state=db).run()
            source = await trio.to_thread.run_sync(open_input, db)
            assert source.graph is None and source.info.notes == (NO_STORED_GRAPH,)
            settings = loopback_settings(server, link_graph=True, max_retries=0)
            spider = GenericSpider(start_urls=(server.url("/"),))
            await Crawler(spider, settings, state=db).run()  # resumed: the rest of the site
    source = await trio.to_thread.run_sync(open_input, db)
    assert source.graph is not None and source.info.notes == (PARTIAL_GRAPH,)
    # the home page (the first run's) is not among /missing's referrers; most p-pages are
    missing = server.url("/missing")
    refs = source.graph.referrers([missing])
    assert refs is not None
    assert REFERRING - 5 < refs[missing].total < len(expected_texts(server)[missing])
    assert server.url("/") not in {src for src, _ in refs[missing].links}
