"""Resuming a crawl stored with ``--state``: after a graceful stop, after ``kill -9`` of a
crawler subprocess at random moments, with conflicting settings, and from broken files."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_crawler import open_crawler
from trio_crawler._store import SqliteStore
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import RecordedRequest, Response, Site, html_page, loopback_settings
from trio_crawler.testing import open_site_server as open_server

PAGES = 300


def tree_site(pages: int = PAGES, delay: float = 0.0) -> Site:
    """Page i links to 2i+1 and 2i+2 (and back to the root): ``pages`` pages in all."""

    def handler(request: RecordedRequest) -> Response:
        i = int(request.path.rsplit("/", 1)[1] or 0)
        links = [f"/p/{j}" for j in (2 * i + 1, 2 * i + 2) if j < pages] + ["/p/0"]
        body = "".join(f'<a href="{href}">x</a>' for href in links)
        return Response(body=html_page(body).body, delay=delay)

    site = Site({"/robots.txt": Response(status=404)})
    site.default = handler
    return site


def stored_urls(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT data FROM items ORDER BY id").fetchall()
    conn.close()
    return [json.loads(data)["url"] for (data,) in rows]


def output_urls(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [json.loads(line)["url"] for line in lines]  # every line is whole, valid JSON


def expected(server: Any, pages: int = PAGES) -> set[str]:
    return {server.url(f"/p/{i}") for i in range(pages)}


async def test_resume_after_graceful_stop(tmp_path: Path) -> None:
    db, out = tmp_path / "crawl.db", tmp_path / "out.jsonl"
    async with open_server(tree_site(delay=0.002)) as server:
        settings = loopback_settings(server, concurrency=4, per_host_concurrency=4)
        spider = GenericSpider(start_urls=(server.url("/p/0"),))
        with trio.fail_after(20):
            async with open_crawler(
                spider, settings, store=SqliteStore.from_settings(db, settings), outputs=[str(out)]
            ) as crawler:
                count = 0
                async for _ in crawler.items():
                    count += 1
                    if count == 50:
                        crawler.stop()
        first = crawler.statistics()
        assert first.stop_reason == "interrupted" and first.queued > 0
        # a second crawl with the same state file, other limits: it completes
        settings = loopback_settings(server, concurrency=8, per_host_concurrency=8)
        spider = GenericSpider(start_urls=(server.url("/p/0"),))
        with trio.fail_after(20):
            async with open_crawler(
                spider, settings, store=SqliteStore.from_settings(db, settings), outputs=[str(out)]
            ) as crawler:
                pass
        second = crawler.statistics()
        assert crawler.resumed and second.stop_reason == "finished"
        assert second.pages_ok == PAGES  # statistics continue
        fetched = [r.path for r in server.requests if r.path != "/robots.txt"]
        want = expected(server)
    urls = stored_urls(db)
    assert sorted(urls) == sorted(want)
    assert sorted(output_urls(out)) == sorted(want)
    # pages done before the stop were not fetched again (in-flight ones may be)
    assert len(fetched) <= PAGES + 8


def crawler_command(url: str, db: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "trio_crawler",
        "crawl",
        url,
        "--state",
        str(db),
        "-o",
        str(out),
        "-c",
        "8",
        "--per-host-concurrency",
        "8",
        "--delay",
        "0",
        "-q",
    ]


async def test_resume_after_kill_9_at_random_moments(tmp_path: Path) -> None:
    db, out = tmp_path / "crawl.db", tmp_path / "out.jsonl"
    rng = random.Random(os.getpid())
    kills = 0
    pages = 2000
    async with open_server(tree_site(pages=pages, delay=0.002)) as server:
        command = crawler_command(server.url("/p/0"), db, out)
        finished = False
        for _ in range(12):
            proc = await trio.lowlevel.open_process(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                # a random moment once this run is under way (startup time varies a lot)
                target = len(server.requests) + rng.randrange(50, 400)
                with trio.move_on_after(20):
                    # polling another process's progress, seen through the server
                    while proc.returncode is None and len(server.requests) < target:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                    await trio.sleep(rng.uniform(0, 0.3))
                if proc.returncode is None:
                    proc.kill()  # SIGKILL: no cleanup of any kind
                    kills += 1
                with trio.fail_after(30):
                    await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
            if proc.returncode == 0:
                finished = True
                break
            assert proc.returncode == -9, proc.returncode
        want = expected(server, pages)
    assert finished, "the crawl did not complete in 12 runs"
    assert kills >= 2
    urls = stored_urls(db)
    assert len(urls) == len(set(urls)), "a page recorded twice"
    assert set(urls) == want
    lines = output_urls(out)
    assert len(lines) == len(set(lines)), "a record written twice"
    assert set(lines) == want


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_crawler", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def test_conflicting_seeds_is_one_line_other_concurrency_is_fine(tmp_path: Path) -> None:
    db = tmp_path / "crawl.db"
    site = Site({"/": html_page("<a href='/a'>a</a>"), "/a": html_page("a")})
    async with open_server(site) as server:
        base = ["--state", str(db), "-q", "--delay", "0", "-o", str(tmp_path / "o.jsonl")]
        done = await trio.to_thread.run_sync(lambda: run_cli("crawl", server.url("/"), *base))
        assert done.returncode == 0, done.stderr
        other = await trio.to_thread.run_sync(lambda: run_cli("crawl", server.url("/a"), *base))
        again = await trio.to_thread.run_sync(
            lambda: run_cli("crawl", server.url("/"), *base, "-c", "3")
        )
        requests = len(server.requests)
    assert other.returncode == 2  # bad input (issue 16): the state holds another crawl
    assert "Traceback" not in other.stderr
    assert other.stderr.strip().count("\n") == 0 and "other seeds" in other.stderr
    assert again.returncode == 0, again.stderr
    assert requests == 3  # robots.txt, /, /a: the resumed crawl had nothing left to fetch
    status = run_cli("status", str(db))
    assert status.returncode == 0 and "2 done" in status.stdout
    exported = tmp_path / "items.csv"
    assert run_cli("export", str(db), "-o", str(exported)).returncode == 0
    assert len(exported.read_text().splitlines()) == 3  # header + 2 pages


@pytest.mark.parametrize(
    "content", [b"definitely not a database\n" * 50, b"SQLite format 3\x00" + b"\x00" * 100]
)
def test_corrupted_state_file_is_one_line(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "crawl.db"
    db.write_bytes(content)
    for args in (
        ("crawl", "http://127.0.0.1:9/", "--state", str(db), "-q"),
        ("status", str(db)),
    ):
        result = run_cli(*args)
        assert result.returncode in (1, 2)
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("trio-crawler: error:")
        assert result.stderr.strip().count("\n") == 0
