"""The command line, run as a user runs it: a subprocess against a loopback server."""

from __future__ import annotations

import csv
import gc
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio
from interrupt import default_sigint

from trio_crawler import __version__
from trio_crawler._cli.commands import GC_YOUNG_THRESHOLD
from trio_crawler.testing import Response, Site, html_page, open_site_server, site_from_links

CLI = [sys.executable, "-m", "trio_crawler"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


async def run_cli_async(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [*CLI, *args], capture_stdout=True, capture_stderr=True, check=False
        )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"trio-crawler {__version__}"


def test_spiders_lists_builtins_with_descriptions() -> None:
    result = run_cli("spiders")
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert {"generic", "cvedetails", "github", "quotes"} <= set(lines)
    assert all(len(line.split()) > 2 for line in lines.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crawl", "not a url"], "malformed URL"),
        (["crawl", "ftp://example.com/"], "malformed URL"),
        (["crawl", "http://[::1"], "malformed URL"),
        (["run", "no-such-spider"], "unknown spider"),
        (["run", "/nonexistent/spider.py:Foo"], "no such spider file"),
        (["run", "github", "--arg", "org=bad org!"], "org"),
        (["run", "github", "--arg", "nope=1"], "takes no argument"),
        (["crawl", "http://127.0.0.1:9/", "-c", "0"], "concurrency"),
        (["crawl", "http://127.0.0.1:9/", "--delay", "-1"], "--delay"),
        # every number has a sane range (issue 16: -c 1000000000 grew to 11 GB; --delay inf hung)
        (["crawl", "http://127.0.0.1:9/", "-c", "1000000000"], "-c/--concurrency"),
        (["crawl", "http://127.0.0.1:9/", "--delay", "inf"], "--delay"),
        (["crawl", "http://127.0.0.1:9/", "--delay", "nan"], "--delay"),
        (["crawl", "http://127.0.0.1:9/", "--max-pages", "0"], "--max-pages"),
        (["crawl", "http://127.0.0.1:9/", "--max-duration", "0"], "--max-duration"),
        (["crawl", "http://127.0.0.1:9/", "--timeout", "1e9"], "--timeout"),
        (["crawl", "http://127.0.0.1:9/", "--per-host-concurrency", "x"], "whole number"),
        (["crawl", "http://127.0.0.1:9/", "--warc-max-size", "0"], "--warc-max-size"),
        (["crawl", "http://127.0.0.1:9/", "--progress-interval", "0"], "--progress-interval"),
        (["crawl", "http://127.0.0.1:9/", "--lease", "inf"], "--lease"),
        (["demo", "--pages", "0"], "--pages"),
        (["status", "x.db", "--top", "-1"], "--top"),
        (["crawl", "http://127.0.0.1:9/", "-H", "no colon"], "-H"),
        (["crawl", "http://127.0.0.1:9/", "--auth", "nohost"], "--auth"),
        (["crawl", "http://127.0.0.1:9/", "--exclude", "("], "bad URL pattern"),
        (["crawl", "http://127.0.0.1:9/", "-o", "/nonexistent/dir/out.jsonl"], "out.jsonl"),
        (["crawl", "http://127.0.0.1:9/", "-o", "out.weird"], "out.weird"),
        (["crawl", "http://127.0.0.1:9/", "--no-such-flag"], "unrecognized"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("trio-crawler:")]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_no_command_prints_help() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "crawl" in result.stderr


async def test_crawl_writes_records(tmp_path: Path) -> None:
    site = site_from_links({"/": ["/a", "/b"], "/a": ["/b"], "/b": ["/missing"]})
    out = tmp_path / "out.jsonl"
    stats = tmp_path / "stats.json"
    async with open_site_server(site) as server:
        result = await run_cli_async(
            "crawl", server.url("/"), "-o", str(out), "--stats-json", str(stats), "--delay", "0"
        )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["url"].rsplit("/", 1)[1] for r in records) == ["", "a", "b", "missing"]
    missing = next(r for r in records if r["url"].endswith("/missing"))
    assert missing["status"] == 404 and missing["error_kind"] == "http_status"
    figures = json.loads(stats.read_text())
    assert figures["stop_reason"] == "finished"
    assert figures["pages_ok"] == 3 and figures["pages_failed"] == 1
    assert b"crawl summary" in result.stderr


async def test_crawl_to_stdout_by_default_and_quiet() -> None:
    site = site_from_links({"/": ["/a"], "/a": []})
    async with open_site_server(site) as server:
        result = await run_cli_async("crawl", server.url("/"), "--quiet", "--delay", "0")
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["status"] == 200 for line in lines)
    assert result.stderr == b""


async def test_the_command_ends_at_once_with_all_its_output_written() -> None:
    """``cli()`` leaves with ``os._exit`` (no teardown of the crawl's objects): what was
    buffered for standard output and standard error is flushed first, however much."""
    graph = {f"/p{i}": [f"/p{(i + 1) % 300}", f"/p{(i * 7) % 300}"] for i in range(300)}
    graph["/"] = ["/p0"]
    async with open_site_server(site_from_links(graph)) as server:
        result = await run_cli_async(
            "crawl", server.url("/"), "--delay", "0", "--per-host-concurrency", "8"
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(graph) and all(json.loads(line)["status"] == 200 for line in lines)
    assert result.stderr.rstrip().endswith(b"\xe2\x94\x98")  # the summary table's last corner


def users_spider(tmp_path: Path, name: str, source: str) -> str:
    """A spider file of a user's (``source``, indented as in the test): its ``path:Class``."""
    spider_file = tmp_path / f"{name.lower()}_spider.py"
    spider_file.write_text(textwrap.dedent(source))
    return f"{spider_file}:{name}"


async def test_run_spider_from_a_users_file(tmp_path: Path) -> None:
    spider = users_spider(
        tmp_path,
        "Titles",
        """
        from trio_crawler import Spider

        class Titles(Spider):
            name = "titles"

            async def scrape(self, page):
                yield {"title": page.extracted().title}
                for link in page.links():
                    yield page.follow(link)
        """,
    )
    site = site_from_links({"/": ["/a"], "/a": []})
    out = tmp_path / "titles.csv"
    async with open_site_server(site) as server:
        result = await run_cli_async(
            "run",
            spider,
            "--start-url",
            server.url("/"),
            "-o",
            str(out),
            "--delay",
            "0",
            "-q",
        )
    assert result.returncode == 0, result.stderr
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(row["title"] for row in rows) == ["/", "/a"]


async def test_the_command_keeps_its_modules_out_of_garbage_collections(tmp_path: Path) -> None:
    """``cli()`` freezes what exists before the crawl (the modules): collections during the
    crawl skip it, and forked workers share its pages. Its youngest generation is collected
    after ``GC_YOUNG_THRESHOLD`` objects, not CPython's 700 (the older ones keep theirs)."""
    spider = users_spider(
        tmp_path,
        "Frozen",
        """
        import gc
        from trio_crawler import Spider

        class Frozen(Spider):
            name = "frozen"

            async def scrape(self, page):
                yield {"frozen": gc.get_freeze_count(), "thresholds": gc.get_threshold()}
        """,
    )
    async with open_site_server(site_from_links({"/": []})) as server:
        result = await run_cli_async("run", spider, "--start-url", server.url("/"), "-o", "-", "-q")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["frozen"] > 10_000
    assert record["thresholds"] == [GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:]]


def test_main_called_by_a_program_leaves_its_garbage_collector_alone() -> None:
    code = (
        "import gc, trio_crawler._cli as c; before = gc.get_threshold(); c.main(['spiders']); "
        "print(gc.get_freeze_count(), gc.get_threshold() == before)"
    )
    alone = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert alone.stdout.splitlines()[-1] == "0 True"


async def test_ctrl_c_stops_gracefully_and_flushes(tmp_path: Path) -> None:
    site = Site()
    site.add("/", html_page("".join(f'<a href="/p{i}">p</a>' for i in range(400))))
    site.default = Response(body=b"<p>slow</p>", delay=0.05)
    out = tmp_path / "out.jsonl"
    stats = tmp_path / "stats.json"
    async with open_site_server(site) as server:
        with trio.fail_after(60):
            proc = await trio.lowlevel.open_process(
                [
                    *CLI,
                    "crawl",
                    server.url("/"),
                    "-o",
                    str(out),
                    "--stats-json",
                    str(stats),
                    "--delay",
                    "0",
                    "--progress-interval",
                    "0.5",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=default_sigint,
            )
            try:
                while len(server.requests) < 30:  # noqa: ASYNC110  (the server has no event)
                    await trio.sleep(0.05)
                proc.send_signal(signal.SIGINT)
                code = await proc.wait()
                assert proc.stderr is not None
                err = b""
                while chunk := await proc.stderr.receive_some(65536):
                    err += chunk
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    assert code == 130, err
    assert b"Traceback" not in err
    assert b"interrupted" in err
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(line) for line in lines)
    figures = json.loads(stats.read_text())
    assert figures["stop_reason"] == "interrupted"
    assert figures["pages_ok"] + figures["pages_failed"] == len(lines)
    assert figures["queued"] > 0
