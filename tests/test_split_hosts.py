"""``--processes N --split hosts``: each process keeps the frontier of its own hosts. The
bookkeeping is tested without sockets; the crawls run as a user runs them (the command line
in a subprocess against loopback servers). Only our own PIDs are signalled."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trio
from test_processes import alive, run_crawl, wait_for_workers

from trio_crawler import Crawler, Settings
from trio_crawler._spider import Request
from trio_crawler._store.base import NewRequest
from trio_crawler._store.memory import MemoryStore
from trio_crawler._store.shared import SharedStore
from trio_crawler._store.split import PARENT_WEIGHT, HostParts, part_of
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import Response, Site, SiteServer, html_page, open_site_server

CLI = [sys.executable, "-m", "trio_crawler"]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def link(host: str, n: int) -> NewRequest:
    return NewRequest(Request(url=f"http://{host}/{n}"), hash((host, n)), f"http://{host}")


def hosts_of(part: int, parts: int, count: int) -> list[str]:
    """``count`` host names that ``part`` owns among ``parts``."""
    out = [f"h{i}.test" for i in range(1000) if part_of(f"http://h{i}.test", parts) == part]
    return out[:count]


# --------------------------------------------------------------------------- bookkeeping
@pytest.mark.parametrize("parts", [2, 3, 5])
def test_a_host_belongs_to_one_process_and_the_parent_takes_a_smaller_share(parts: int) -> None:
    """The parent (0) takes PARENT_WEIGHT against each worker's 1 (it also writes every
    output); the workers share the rest evenly."""
    counts = [0] * parts
    keys = 20_000
    for i in range(keys):
        key = f"http://h{i}.test"
        assert part_of(key, parts) == part_of(key, parts)
        counts[part_of(key, parts)] += 1
    share = keys / (PARENT_WEIGHT + parts - 1)
    assert abs(counts[0] - PARENT_WEIGHT * share) < 0.05 * share
    assert all(abs(count - share) < 0.05 * share for count in counts[1:]), counts
    assert part_of("http://anything", 1) == 0


def test_links_go_to_their_owner_and_count_until_taken_in() -> None:
    parts = HostParts(3)
    mine, theirs = hosts_of(0, 3, 1)[0], hosts_of(2, 3, 1)[0]
    own = parts.route([link(mine, 1), link(theirs, 1), link(theirs, 2)])
    assert [item.host for item in own] == [f"http://{mine}"]
    assert parts.held() == 2  # on their way to worker 2
    assert parts.event(2).is_set() and not parts.event(1).is_set()
    pushed = parts.take_outbox(2)
    assert len(pushed) == 2 and parts.take_outbox(2) == []
    parts.sent(2)
    assert not parts.event(2).is_set()
    parts.report(2, 2, 2)  # taken in: two queued there
    assert parts.held() == 2
    parts.report(2, 0, 2)  # done
    assert parts.held() == 0


def test_a_report_sent_before_a_push_arrived_keeps_it_counted() -> None:
    parts = HostParts(2)
    theirs = hosts_of(1, 2, 1)[0]
    parts.route([link(theirs, 1)])
    parts.take_outbox(1)
    parts.report(1, 0, 0)  # the worker had not received it yet
    assert parts.held() == 1
    parts.report(1, 1, 1)
    assert parts.held() == 1


def test_a_gone_worker_gives_back_what_it_had_not_taken_in() -> None:
    parts = HostParts(2)
    theirs = hosts_of(1, 2, 1)[0]
    parts.route([link(theirs, 1)])
    parts.take_outbox(1)
    parts.report(1, 5, 1)  # taken in, and 5 pages held
    parts.route([link(theirs, 2)])
    parts.take_outbox(1)  # on its way when the worker died
    parts.route([link(theirs, 3)])  # not sent yet
    back, lost = parts.adopt(1)
    assert sorted(item.request.url for item in back) == [
        f"http://{theirs}/2",
        f"http://{theirs}/3",
    ]
    assert lost == 5
    assert parts.held() == 0
    assert parts.route([link(theirs, 4)]) != []  # its hosts are the parent's now
    assert parts.adopt(1) == ([], 0)


async def test_a_worker_that_never_joined_leaves_its_hosts_to_the_parent() -> None:
    """A worker process that exits before it connects leaves a share of the hosts with no
    process: the parent takes it, with what was waiting for it, instead of waiting forever."""
    store = SharedStore(MemoryStore(), processes=2, split="hosts")
    theirs = hosts_of(1, 2, 1)[0]
    await store.add([link(theirs, 1), link(theirs, 2)])
    assert store.outstanding() == 2 and store.inner.outstanding() == 0
    store.process_ended(999_999)  # never connected
    assert store.outstanding() == 2 and store.inner.outstanding() == 2
    claims = await store.claim(trio.current_time(), 10)
    assert {c.request.url for c in claims} == {f"http://{theirs}/1"}  # 1 per host at once
    await store.complete(claims[0], [])
    assert store.outstanding() == 1


# --------------------------------------------------------------------------- crawls
@contextlib.asynccontextmanager
async def web(
    pages: int, *, delay: float = 0.0, parts: int = 3, per_part: int = 2
) -> AsyncIterator[list[SiteServer]]:
    """Loopback servers (each its own origin), at least ``per_part`` owned by each of
    ``parts`` processes, of ``pages`` pages each; each page links to two pages of its own host,
    and each root to every host's root (so all hosts are known once the first root is read)."""
    async with contextlib.AsyncExitStack() as stack:
        servers: list[SiteServer] = []
        owned = [0] * parts
        while min(owned) < per_part and len(servers) < 64:
            server = await stack.enter_async_context(open_site_server(Site()))
            servers.append(server)
            owned[part_of(server.origin, parts)] += 1
        assert min(owned) >= per_part, owned
        roots = [s.url("/") for s in servers]
        for server in servers:
            for p in range(pages):
                path = "/" if p == 0 else f"/p{p}"
                hrefs = [f"/p{(2 * p + k) % pages or 1}" for k in (1, 2)]
                if p == 0:
                    hrefs += roots
                body = "".join(f'<a href="{x}">x</a> ' for x in hrefs)
                server.site.add(path, dataclasses.replace(html_page(body), delay=delay))
        yield servers


def expected_urls(servers: list[SiteServer], pages: int) -> list[str]:
    return sorted(s.url("/" if p == 0 else f"/p{p}") for s in servers for p in range(pages))


async def split_crawl(
    servers: list[SiteServer],
    out: Path,
    processes: int,
    *args: str,
    during: Callable[[trio.Process], Awaitable[None]] | None = None,
) -> tuple[int, str]:
    return await run_crawl(
        servers[0],
        out,
        "--processes",
        str(processes),
        "--split",
        "hosts",
        "--scope",
        "any",
        "--allow-private",
        *args,
        during=during,
    )


async def wait_until_every_host_started(servers: list[SiteServer]) -> None:
    while any(len(s.requests) < 2 for s in servers):  # noqa: ASYNC110  (no event)
        await trio.sleep(0.01)


@pytest.mark.parametrize("processes", [2, 3])
async def test_every_page_of_every_host_once(tmp_path: Path, processes: int) -> None:
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    async with web(12, parts=processes) as servers:
        code, err = await split_crawl(
            servers, out, processes, "--delay", "0", "--stats-json", str(stats)
        )
    assert code == 0, err
    got = sorted(json.loads(line)["url"] for line in out.read_text().splitlines())
    assert got == expected_urls(servers, 12)
    for server in servers:
        assert server.count("/robots.txt") == 1
        fetched = [r.path for r in server.requests if r.path != "/robots.txt"]
        assert len(fetched) == len(set(fetched)) == 12
    figures = json.loads(stats.read_text())
    assert figures["stop_reason"] == "finished"
    assert figures["pages_ok"] == figures["items"] == len(servers) * 12  # workers' merged in


async def test_disallowed_links_recorded_once_and_never_fetched(tmp_path: Path) -> None:
    """Each host's robots.txt disallows /private/, which every page links to (the roots also
    to the other hosts' /private/ pages): each such URL is recorded once, by whichever process
    found it, as disallowed, and none is fetched."""
    out = tmp_path / "out.jsonl"
    async with web(6, parts=2) as servers:
        for server in servers:
            robots = b"User-agent: *\nDisallow: /private/\n"
            plain = (("content-type", "text/plain"),)
            server.site.add("/robots.txt", Response(body=robots, headers=plain))
            for p in range(6):
                path = "/" if p == 0 else f"/p{p}"
                page = server.site.routes[path]
                assert isinstance(page, Response)
                extra = f'<a href="/private/{p % 3}">x</a> '
                if p == 0:
                    extra += "".join(f'<a href="{s.url("/private/0")}">x</a> ' for s in servers)
                server.site.add(path, dataclasses.replace(page, body=page.body + extra.encode()))
        code, err = await split_crawl(servers, out, 2, "--delay", "0")
    assert code == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    refused = sorted(r["url"] for r in records if r.get("error_kind") == "robots")
    assert refused == sorted(s.url(f"/private/{k}") for s in servers for k in range(3))
    for server in servers:
        assert not [r for r in server.requests if r.path.startswith("/private/")]
    assert sorted(r["url"] for r in records if not r.get("error")) == expected_urls(servers, 6)


async def test_every_output_format_gets_every_process_records(tmp_path: Path) -> None:
    """The parent writes the outputs of every process: JSON Lines, CSV and SQLite hold the
    same pages, each once."""
    out = tmp_path / "out.jsonl"
    csv_out, db_out = tmp_path / "out.csv", tmp_path / "out.db"
    async with web(6, parts=2) as servers:
        code, err = await split_crawl(
            servers, out, 2, "--delay", "0", "-o", str(csv_out), "-o", str(db_out)
        )
    assert code == 0, err
    expected = expected_urls(servers, 6)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["url"] for r in lines) == expected
    assert all(r["status"] == 200 and r["title"] is None for r in lines)
    rows = list(csv.DictReader(io.StringIO(csv_out.read_text(), newline="")))
    assert sorted(r["url"] for r in rows) == expected
    db = sqlite3.connect(db_out)
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        paged = [
            t for t in tables if "url" in {c[1] for c in db.execute(f'PRAGMA table_info("{t}")')}
        ]
        assert len(paged) == 1, tables
        urls = sorted(u for (u,) in db.execute(f'SELECT url FROM "{paged[0]}"'))
    finally:
        db.close()
    assert urls == expected


async def test_the_link_graph_of_every_process_reaches_the_first(tmp_path: Path) -> None:
    """The report's link graph: each root is linked from every root, whichever process
    fetched the linking page."""
    async with web(4, parts=2) as servers:
        settings = Settings(
            scope="any",
            allow_private=True,
            per_host_delay=0.0,
            link_graph=True,
            concurrency=16,
        )
        crawler = Crawler(
            GenericSpider(),
            settings,
            start_urls=[servers[0].url("/")],
            processes=2,
            split="hosts",
            outputs=[str(tmp_path / "out.jsonl")],
        )
        with trio.fail_after(30):
            await crawler.run()
    graph = crawler.store.link_graph()
    assert graph is not None
    roots = [s.url("/") for s in servers]
    found = graph.referrers(roots)
    for root in roots:
        sources = {source for source, _anchor in found[root].links}
        assert sources >= set(roots), (root, sources)


async def test_a_killed_worker_ends_the_crawl_with_a_warning_not_a_hang(tmp_path: Path) -> None:
    # Each process owns at least two hosts of 30 pages, each answering 50 ms late, 2 at once:
    # a host needs at least 30 / 2 * 0.05 = 0.75 s. Once every host has had its robots.txt
    # and root page, every worker holds pages of its hosts, so the victim certainly dies
    # holding some.
    out = tmp_path / "out.jsonl"

    async def kill_one(proc: trio.Process) -> None:
        workers = await wait_for_workers(proc, 2)
        await wait_until_every_host_started(servers)
        victim = min(workers)
        assert alive(victim), "the worker ended before it could be killed"
        os.kill(victim, signal.SIGKILL)

    async with web(30, delay=0.05) as servers:
        code, err = await split_crawl(
            servers, out, 3, "--delay", "0", "--per-host-concurrency", "2", during=kill_one
        )
    assert code == 0, err
    assert "Traceback" not in err
    assert "takes over its hosts" in err and "lost" in err
    got = [json.loads(line)["url"] for line in out.read_text().splitlines()]
    assert got and set(got) <= set(expected_urls(servers, 30))


async def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    workers: set[int] = set()

    async def interrupt(proc: trio.Process) -> None:
        workers.update(await wait_for_workers(proc, 2))
        await wait_until_every_host_started(servers)
        proc.send_signal(signal.SIGINT)

    async with web(40, delay=0.05) as servers:
        code, err = await split_crawl(servers, out, 3, "--delay", "0.01", during=interrupt)
    assert code == 130, err
    assert "Traceback" not in err
    assert len(workers) == 2
    assert not [pid for pid in workers if alive(pid)]
    assert len(out.read_text().splitlines()) < len(servers) * 40


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--state", "STATE"], "--state"),
        (["--max-pages", "5"], "--max-pages"),
        (["--split", "nope"], "--split"),
    ],
)
def test_what_split_hosts_does_not_do_is_one_line(
    tmp_path: Path, extra: list[str], says: str
) -> None:
    extra = [str(tmp_path / "s.db") if x == "STATE" else x for x in extra]
    command = [*CLI, "crawl", "http://127.0.0.1:9/", "--processes", "2", "--split", "hosts"]
    result = subprocess.run(
        [*command, *extra], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr


def test_with_split_hosts_the_parent_fetches_with_all_of_the_concurrency() -> None:
    crawler = Crawler(
        GenericSpider(),
        Settings(concurrency=64),
        start_urls=["http://127.0.0.1:9/"],
        processes=2,
        split="hosts",
    )
    assert crawler._crawl_limiter.total_tokens == 64
