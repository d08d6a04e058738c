"""What a new user hit on the command line (issue 16 §3, and §5's "every seed failed"), each
reproduced as the user did it: a real subprocess of the CLI against a loopback server. Every
test here failed before its fix."""

from __future__ import annotations

import json
import os
import pydoc
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from redis_server import RedisServer

from trio_crawler import Settings, testing
from trio_crawler._options import shown_default
from trio_crawler._settings import setting_options
from trio_crawler.testing import RecordedRequest, Response, Site, html_page, open_site_server

CLI = [sys.executable, "-m", "trio_crawler"]
KEEP = "kept: a file a failed command must not empty\n"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


async def run_cli_async(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(lambda: run_cli(*args, cwd=cwd))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("trio-crawler:")]


def refused_port() -> int:
    """A loopback port nobody listens on (bound, then released): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def cli_process(*args: str, stdout: int = subprocess.DEVNULL) -> AsyncIterator[trio.Process]:
    """The CLI as a child process; killed (by its PID) if the test leaves it running."""
    proc = await trio.lowlevel.open_process(
        [*CLI, *args], stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_all(stream: trio.abc.ReceiveStream | None) -> str:
    assert stream is not None
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data.decode(errors="replace")


def held_site(release: trio.Event, pages: int = 200) -> Site:
    """``/`` links to ``pages`` pages that are served only once ``release`` is set: what the
    crawl does before that is certain."""

    async def held(request: RecordedRequest) -> Response:
        await release.wait()
        return html_page("<p>page</p>")

    site = Site({"/": html_page("".join(f'<a href="/p{i}">p</a>' for i in range(pages)))})
    site.add("/robots.txt", Response(status=404))
    site.default = held
    return site


# ------------------------------------------------------------------------ a closed stdout
async def test_a_closed_stdout_ends_the_crawl_cleanly(tmp_path: Path) -> None:
    """``crawl URL -o - | head -1`` hung forever after BrokenPipeError tracebacks."""
    release = trio.Event()
    stats = tmp_path / "stats.json"
    async with open_site_server(held_site(release)) as server:
        args = ("crawl", server.url("/"), "--delay", "0", "--stats-json", str(stats))
        with trio.fail_after(60):
            async with cli_process(*args, stdout=subprocess.PIPE) as proc:
                assert proc.stdout is not None
                first = b""
                while b"\n" not in first:
                    first += await proc.stdout.receive_some(65536)
                await proc.stdout.aclose()  # the reader exits, as `head -1` does
                release.set()  # now pages complete, and their records meet the closed pipe
                err = await read_all(proc.stderr)
                code = await proc.wait()
    assert json.loads(first.split(b"\n")[0])["url"] == server.url("/")
    assert code in (0, 141), err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    figures = json.loads(stats.read_text())
    assert figures["stop_reason"] == "output_closed"
    assert figures["queued"] > 0  # it stopped; it did not crawl on into the void


async def test_stdout_and_stderr_into_one_closed_pipe(tmp_path: Path) -> None:
    """``crawl URL 2>&1 | head -1``: the summary meets the closed pipe too; still exit 0."""
    release = trio.Event()
    stats = tmp_path / "stats.json"
    async with open_site_server(held_site(release)) as server:
        args = [*CLI, "crawl", server.url("/"), "--delay", "0", "--stats-json", str(stats)]
        with trio.fail_after(60):
            proc = await trio.lowlevel.open_process(
                args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            try:
                assert proc.stdout is not None
                first = b""
                while b"\n" not in first:
                    first += await proc.stdout.receive_some(65536)
                await proc.stdout.aclose()
                release.set()
                code = await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    assert json.loads(first.split(b"\n")[0])["url"] == server.url("/")
    assert code == 0
    assert json.loads(stats.read_text())["stop_reason"] == "output_closed"


async def test_status_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    site = Site({"/": html_page("<p>one</p>")})
    db = tmp_path / "crawl.db"
    async with open_site_server(site) as server:
        done = await run_cli_async("crawl", server.url("/"), "--state", str(db), "-q", "-o", "-")
    assert done.returncode == 0, done.stderr
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads what status prints (`| head -0`)
    try:
        result = await trio.to_thread.run_sync(
            lambda: subprocess.run(
                [*CLI, "status", str(db)], stdout=write_end, stderr=subprocess.PIPE, timeout=60
            )
        )
    finally:
        os.close(write_end)
    assert result.returncode == 0
    assert b"Traceback" not in result.stderr, result.stderr


# ------------------------------------------------------------------------ SIGTERM
async def test_sigterm_stops_like_ctrl_c_and_says_so(tmp_path: Path) -> None:
    release = trio.Event()
    stats = tmp_path / "stats.json"
    out = tmp_path / "out.jsonl"
    async with open_site_server(held_site(release)) as server:
        args = ("crawl", server.url("/"), "--delay", "0", "-o", str(out), "--stats-json")
        with trio.fail_after(60):
            async with cli_process(*args, str(stats)) as proc:
                while not any(r.path.startswith("/p") for r in server.requests):  # noqa: ASYNC110
                    await trio.sleep(0.05)  # until a held page is being fetched
                proc.send_signal(signal.SIGTERM)  # to the process we started, by its PID
                release.set()
                err = await read_all(proc.stderr)
                code = await proc.wait()
    assert code == 143, err
    assert "SIGTERM" in err and "Ctrl-C" not in err, err
    assert "Traceback" not in err
    assert json.loads(stats.read_text())["stop_reason"] == "terminated"
    assert out.read_text().splitlines()  # flushed


# ------------------------------------------------------------------------ failed commands
def _cases(d: Path, url: str, keep: str) -> dict[str, list[str]]:
    nowhere = d / "nowhere"
    return {
        "export of a missing state": ["export", str(d / "missing.db"), "-o", keep],
        "a second output that cannot be written": [
            *("crawl", url, "-o", keep, "-o", str(nowhere / "x.jsonl")),
        ],
        "a start URL longer than max_url_length": ["crawl", url + "?" + "a" * 5000, "-o", keep],
        "a start URL --include does not admit": [
            *("crawl", url, "--include", "/only-this/", "-o", keep),
        ],
        "a state file that is not a crawl": [
            *("crawl", url, "--state", str(d / "notes.txt"), "-o", keep),
        ],
        "--stats-json in a missing directory": [
            *("crawl", url, "-o", keep, "--stats-json", str(nowhere / "stats.json")),
        ],
        "a WARC in a missing directory": [
            *("crawl", url, "-o", keep, "--warc", str(nowhere / "x.warc.gz")),
        ],
        "a CA bundle that does not exist": [
            *("crawl", url, "-o", keep, "--ca-bundle", str(d / "missing.pem")),
        ],
        "the same output twice": ["crawl", url, "-o", keep, "-o", keep],
    }


@pytest.mark.parametrize("case", sorted(_cases(Path(), "", "")))
def test_a_failed_command_leaves_outputs_alone_and_exits_2(case: str, tmp_path: Path) -> None:
    """Every check runs before any output is opened: nothing is truncated, and bad input is
    exit code 2, one line."""
    keep = tmp_path / "keep.jsonl"
    keep.write_text(KEEP)
    (tmp_path / "notes.txt").write_text("my notes\n")
    url = f"http://127.0.0.1:{refused_port()}/"
    result = run_cli(*_cases(tmp_path, url, str(keep))[case], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert keep.read_text() == KEEP
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"
    assert "Traceback" not in result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr


async def test_a_state_of_another_crawl_is_bad_input_and_touches_nothing(tmp_path: Path) -> None:
    site = Site({"/": html_page("<a href='/a'>a</a>"), "/a": html_page("a")})
    db, keep = tmp_path / "crawl.db", tmp_path / "keep.jsonl"
    async with open_site_server(site) as server:
        flags = ["--state", str(db), "-q", "--delay", "0"]
        done = await run_cli_async(
            "crawl", server.url("/"), *flags, "-o", str(tmp_path / "o.jsonl")
        )
        assert done.returncode == 0, done.stderr
        keep.write_text(KEEP)
        seeds = await run_cli_async("crawl", server.url("/a"), *flags, "-o", str(keep))
        scope = await run_cli_async(
            "crawl", server.url("/"), *flags, "--scope", "domain", "-o", str(keep)
        )
    for result, what in ((seeds, "other seeds"), (scope, "other scope")):
        assert result.returncode == 2, result.stderr
        assert [what in line for line in error_lines(result.stderr)] == [True]
    assert keep.read_text() == KEEP


@pytest.mark.parametrize("command", ["status", "export"])
def test_status_and_export_of_a_missing_or_foreign_file_exit_2(
    command: str, tmp_path: Path
) -> None:
    (tmp_path / "notes.db").write_text("not a crawl\n")
    for state in ("missing.db", "notes.db"):
        extra = ["-o", str(tmp_path / "items.jsonl")] if command == "export" else []
        result = run_cli(command, str(tmp_path / state), *extra)
        assert result.returncode == 2, result.stderr
        assert len(error_lines(result.stderr)) == 1, result.stderr
    assert not (tmp_path / "items.jsonl").exists()


# ------------------------------------------------------------------------ every seed failed
async def test_every_start_url_failed_is_one_line_and_exit_1(tmp_path: Path) -> None:
    site = Site({"/gone": Response(status=404)})
    async with open_site_server(site) as server:
        refused = f"http://127.0.0.1:{refused_port()}/"
        result = await run_cli_async(
            "crawl", server.url("/gone"), refused, "--delay", "0", "--max-retries", "0", "-q",
            "-o", str(tmp_path / "out.jsonl"),
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    (line,) = error_lines(result.stderr)
    assert "every start URL failed" in line and "http_status: 1" in line and "connect: 1" in line
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2  # both recorded


async def test_one_good_seed_is_enough(tmp_path: Path) -> None:
    site = Site({"/": html_page("<p>ok</p>"), "/gone": Response(status=404)})
    async with open_site_server(site) as server:
        result = await run_cli_async(
            "crawl", server.url("/"), server.url("/gone"), "--delay", "0", "-q"
        )
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == []


# ------------------------------------------------------------------------ outputs flushed
async def test_records_reach_the_file_during_a_slow_crawl(tmp_path: Path) -> None:
    """JSON Lines waited for 256 KB: ``tail -f`` showed nothing for minutes."""
    release = trio.Event()
    out = tmp_path / "out.jsonl"
    async with open_site_server(held_site(release, pages=2)) as server:
        args = ("crawl", server.url("/"), "--delay", "0", "-q", "-o", str(out))
        with trio.fail_after(60):
            async with cli_process(*args) as proc:
                # the crawl is held (its other pages wait for `release`), and yet the record of
                # `/` reaches the file
                while not out.exists() or not out.read_text():  # noqa: ASYNC110
                    await trio.sleep(0.05)  # polling a file another process writes
                assert proc.returncode is None and not release.is_set()
                (record,) = [json.loads(line) for line in out.read_text().splitlines()]
                release.set()
                assert await proc.wait() == 0
    assert record["url"] == server.url("/")
    assert len(out.read_text().splitlines()) == 3


# ------------------------------------------------------------------------ WARC file name
async def test_warc_is_written_under_the_name_given(tmp_path: Path) -> None:
    site = Site({"/": html_page("<p>one</p>")})
    async with open_site_server(site) as server:
        result = await run_cli_async(
            "crawl", server.url("/"), "--delay", "0", "-q", "--warc", "px.warc.gz", cwd=tmp_path
        )
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["px.warc.gz"]


# ------------------------------------------------------------------------ what the CLI says
def test_every_flag_has_help() -> None:
    from trio_crawler._cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("crawl", "run", "worker", "demo"):
        command = sub.choices[name]  # type: ignore[index]
        missing = [
            a.option_strings[-1] for a in command._actions if a.option_strings and not a.help
        ]
        assert not missing, f"{name}: flags without help: {missing}"


async def test_debug_logs_every_request() -> None:
    site = Site({"/": html_page("<a href='/a'>a</a>"), "/a": html_page("a")})
    async with open_site_server(site) as server:
        result = await run_cli_async("crawl", server.url("/"), "--delay", "0", "-vv", "-o", "-")
    assert result.returncode == 0, result.stderr
    for path in ("/", "/a"):
        assert f"DEBUG trio_crawler.engine: GET {server.url(path)}: 200" in result.stderr


async def test_log_json_keeps_stderr_one_json_stream() -> None:
    site = Site({"/": html_page("<a href='/a'>a</a>"), "/a": Response(status=500)})
    async with open_site_server(site) as server:
        result = await run_cli_async(
            "crawl", server.url("/"), "--delay", "0", "--log-json", "--max-retries", "0",
            "--progress-interval", "0.01", "-v",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    (summary,) = [r for r in records if r["message"] == "crawl summary"]
    assert summary["stats"]["failures"] == {"http_status": 1}
    assert any("/a" in r["message"] for r in records)


def test_run_spider_help_lists_its_arguments_and_item_fields() -> None:
    result = run_cli("run", "quotes", "--help")
    assert result.returncode == 0
    assert "--arg NAME=VALUE" in result.stdout
    assert "mode " in result.stdout and "base_url " in result.stdout
    assert "Quote " in result.stdout and "text, author, tags" in result.stdout


def test_help_of_settings_gives_each_fields_meaning() -> None:
    text = pydoc.render_doc(Settings, renderer=pydoc.plaintext)
    for option in setting_options():
        assert f"{option.name}  (default " in text
        words = option.meaning.help.split()
        assert " ".join(words[1:4]) in " ".join(text.split()), option.name
    shown = shown_default(next(o for o in setting_options() if o.name == "concurrency"))
    assert f"concurrency  (default {shown}; -c, --concurrency; a whole number from 1 to" in text


def test_testing_module_docstring_example_runs(tmp_path: Path) -> None:
    assert testing.__doc__ is not None
    example = testing.__doc__.split("::\n", 1)[1].split("\n\n", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(
        "import textwrap, trio\n"
        "from trio_crawler import Spider, crawl\n"
        "from trio_crawler.testing import Site, html_page, loopback_settings, open_site_server\n"
        "class MySpider(Spider):\n"
        "    async def scrape(self, page):\n"
        "        yield {'url': page.url}\n"
        "        for link in page.links():\n"
        "            yield page.follow(link)\n"
        f"{textwrap.dedent(example)}\n"
        "trio.run(test_my_spider)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------ resuming
async def test_a_resumed_run_says_so_and_counts_its_own_pages(tmp_path: Path) -> None:
    site = Site({"/": html_page("".join(f'<a href="/p{i}">p</a>' for i in range(5)))})
    site.default = html_page("<p>page</p>")
    db = tmp_path / "crawl.db"
    async with open_site_server(site) as server:
        base = ["crawl", server.url("/"), "--state", str(db), "--delay", "0", "-o", "-"]
        first = await run_cli_async(*base, "--max-pages", "2")
        plain = await run_cli_async(*base, "--max-pages", "2")
        last = await run_cli_async(*base, "--log-json")
    assert first.returncode == plain.returncode == last.returncode == 0, last.stderr
    summary_title = next(line for line in plain.stderr.splitlines() if "crawl summary" in line)
    assert "resumed" in summary_title
    (summary,) = [
        r for r in map(json.loads, last.stderr.splitlines()) if r["message"] == "crawl summary"
    ]
    assert summary["resumed"] is True
    stats = summary["stats"]
    assert stats["pages_ok"] == 6  # the whole crawl's figures...
    this_run = stats["pages_per_second"] * stats["elapsed"]
    assert abs(this_run - 2) < 0.5  # ...but the rate of this run's two pages


async def test_status_says_whether_the_crawl_finished(tmp_path: Path) -> None:
    site = Site({"/": html_page("<a href='/a'>a</a>"), "/a": html_page("a")})
    db = tmp_path / "crawl.db"
    async with open_site_server(site) as server:
        base = ["crawl", server.url("/"), "--state", str(db), "--delay", "0", "-q", "-o", "-"]
        await run_cli_async(*base, "--max-pages", "1")
        stopped = run_cli("status", str(db))
        await run_cli_async(*base)
        finished = run_cli("status", str(db))
    assert "state:      stopped (max_pages); the same command resumes it" in stopped.stdout
    assert "state:      finished" in finished.stdout


# ------------------------------------------------------------------------ the Redis worker
async def test_a_worker_takes_the_crawls_identity_from_the_store(
    redis_server: RedisServer,
) -> None:
    url = redis_server.url
    site = Site({"/": html_page("<a href='/p/a'>a</a><a href='/x'>x</a>")})
    site.default = html_page("<p>page</p>")
    flags = ["--store", url, "--crawl-id", "identity", "-q", "--delay", "0"]
    async with open_site_server(site) as server:
        seeder = await run_cli_async(
            "crawl", server.url("/"), *flags, "--scope", "domain", "--include", "/(p/.*)?$"
        )
        assert seeder.returncode == 0, seeder.stderr
        worker = await run_cli_async("worker", *flags)  # no --scope, no --include: the store's
        other = await run_cli_async("worker", *flags, "--scope", "host")
    assert worker.returncode == 0, worker.stderr
    assert other.returncode == 2 and "other scope" in other.stderr, other.stderr
    assert "/x" not in server.paths()
