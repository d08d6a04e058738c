"""``--processes N``: several fetch processes sharing one crawl, run as a user runs them (the
command line in a subprocess against a loopback server). Only our own PIDs are signalled."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from interrupt import default_sigint
from timing import assert_spaced, cross_process_slack

from trio_crawler import Crawler, Settings
from trio_crawler._worker import worker_main
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import Response, Site, SiteServer, open_site_server, site_from_links

CLI = [sys.executable, "-m", "trio_crawler"]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def chain_site(pages: int, fanout: int = 4) -> tuple[dict[str, list[str]], set[str]]:
    graph = {
        f"/p{i}": [f"/p{(i * fanout + k) % pages}" for k in range(1, fanout + 1)]
        for i in range(pages)
    }
    graph["/"] = ["/p0", "/p1"]
    return graph, set(graph)


def slow_site(graph: dict[str, list[str]], delay: float) -> Site:
    """The site of ``graph``, every page answering ``delay`` seconds late."""
    site = site_from_links(graph)
    for path in graph:
        page = site.routes[path]
        assert isinstance(page, Response)
        site.add(path, dataclasses.replace(page, delay=delay))
    return site


def children_of(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def run_crawl(
    server: SiteServer,
    out: Path,
    *args: str,
    during: Callable[[trio.Process], Awaitable[None]] | None = None,
) -> tuple[int, str]:
    command = [*CLI, "crawl", server.url("/"), "-o", str(out), "-q", *args]
    with trio.fail_after(40):
        proc = await trio.lowlevel.open_process(
            command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_sigint
        )
        try:
            err = b""
            async with trio.open_nursery() as nursery:

                async def read_stderr() -> None:
                    nonlocal err
                    assert proc.stderr is not None
                    while chunk := await proc.stderr.receive_some(65536):
                        err += chunk

                nursery.start_soon(read_stderr)
                if during is not None:
                    await during(proc)
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                with trio.CancelScope(shield=True):
                    await proc.wait()
    return code, err.decode()


def page_paths(out: Path, server: SiteServer) -> list[str]:
    prefix = server.url("/").rstrip("/")
    return [json.loads(line)["url"].removeprefix(prefix) for line in out.read_text().splitlines()]


async def wait_for_requests(server: SiteServer, count: int) -> None:
    while len(server.requests) < count:  # noqa: ASYNC110  (the server has no event)
        await trio.sleep(0.02)


async def wait_for_workers(proc: trio.Process, count: int) -> set[int]:
    while len(children := children_of(proc.pid)) < count:  # noqa: ASYNC110  (no event)
        await trio.sleep(0.02)
    return children


@pytest.mark.parametrize("split", ["shared", "hosts"])
async def test_workers_whose_parent_is_killed_end_with_one_line(tmp_path: Path, split: str) -> None:
    """The crawl's process killed mid-crawl (its store and outputs gone): each worker sees
    its connection end and exits with one line, never a traceback."""
    graph, _ = chain_site(400)
    out = tmp_path / "out.jsonl"
    workers: set[int] = set()

    async def kill_parent(proc: trio.Process) -> None:
        workers.update(await wait_for_workers(proc, 2))
        await wait_for_requests(server, 30)  # mid-crawl: 400 pages answering 50 ms late
        proc.kill()

    async with open_site_server(slow_site(graph, 0.05)) as server:
        # the workers hold the standard error pipe: it ends once they have exited
        code, err = await run_crawl(
            server,
            out,
            "--processes",
            "3",
            "--split",
            split,
            "--delay",
            "0.01",
            during=kill_parent,
        )
    assert code == -signal.SIGKILL
    assert "Traceback" not in err, err
    assert err.count("the crawl's parent process went away") == 2, err
    with trio.fail_after(10):  # their standard error closed as they exited
        while [pid for pid in workers if alive(pid)]:  # noqa: ASYNC110  (no event for it)
            await trio.sleep(0.02)


@pytest.mark.parametrize("processes", [2, 3])
async def test_every_page_once(tmp_path: Path, processes: int) -> None:
    graph, paths = chain_site(300)
    out = tmp_path / "out.jsonl"
    stats = tmp_path / "stats.json"
    async with open_site_server(site_from_links(graph)) as server:
        code, err = await run_crawl(
            server,
            out,
            "--processes",
            str(processes),
            "--delay",
            "0",
            "--per-host-concurrency",
            "8",
            "--stats-json",
            str(stats),
        )
    assert code == 0, err
    got = page_paths(out, server)
    assert sorted(got) == sorted(paths)
    figures = json.loads(stats.read_text())
    assert figures["stop_reason"] == "finished"
    assert figures["pages_ok"] == len(paths)  # the workers' counters are merged in
    assert figures["items"] == len(paths)
    fetched = [r.path for r in server.requests if r.path != "/robots.txt"]
    assert len(fetched) == len(set(fetched)) == len(paths)


async def test_host_delay_holds_across_processes(tmp_path: Path) -> None:
    graph, paths = chain_site(24)
    out = tmp_path / "out.jsonl"
    delay = 0.1
    async with open_site_server(site_from_links(graph)) as server:
        code, err = await run_crawl(
            server, out, "--processes", "3", "--delay", str(delay), "--per-host-concurrency", "4"
        )
    assert code == 0, err
    assert sorted(page_paths(out, server)) == sorted(paths)
    # request starts are spaced by the delay whichever process made them (the slack for the
    # trip from another process's claim to the server: see the timing module)
    assert_spaced([r.time for r in server.requests], delay, cross_process_slack(delay))


async def test_killed_worker_loses_no_page(tmp_path: Path) -> None:
    # Every page answers 50 ms late and the host allows 4 at once: the 110 pages left when a
    # worker is killed need at least 110 / 4 * 0.05 = 1.4 s more, so both workers are
    # certainly alive (and holding pages) when one is killed.
    graph, paths = chain_site(150)
    out = tmp_path / "out.jsonl"
    site = slow_site(graph, 0.05)

    async def kill_one(proc: trio.Process) -> None:
        workers = await wait_for_workers(proc, 2)
        await wait_for_requests(server, 40)
        victim = min(workers)
        assert alive(victim), "the worker ended before it could be killed"
        os.kill(victim, signal.SIGKILL)

    async with open_site_server(site) as server:
        code, err = await run_crawl(
            server,
            out,
            "--processes",
            "3",
            "--delay",
            "0.005",
            "--per-host-concurrency",
            "4",
            during=kill_one,
        )
    assert code == 0, err
    got = page_paths(out, server)
    assert sorted(got) == sorted(paths)


async def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    graph, _ = chain_site(400)
    out = tmp_path / "out.jsonl"
    workers: set[int] = set()

    async def interrupt(proc: trio.Process) -> None:
        workers.update(await wait_for_workers(proc, 2))
        await wait_for_requests(server, 30)
        proc.send_signal(signal.SIGINT)

    async with open_site_server(site_from_links(graph)) as server:
        code, err = await run_crawl(
            server, out, "--processes", "3", "--delay", "0.01", during=interrupt
        )
    assert code == 130, err
    assert "Traceback" not in err
    assert len(workers) == 2
    assert not [pid for pid in workers if alive(pid)]
    lines = out.read_text().splitlines()
    assert lines and len(lines) < 400


async def test_state_file_with_processes(tmp_path: Path) -> None:
    graph, paths = chain_site(200)
    out = tmp_path / "out.jsonl"
    state = tmp_path / "state.db"
    async with open_site_server(site_from_links(graph)) as server:
        code, err = await run_crawl(
            server,
            out,
            "--processes",
            "2",
            "--state",
            str(state),
            "--delay",
            "0",
            "--per-host-concurrency",
            "8",
        )
    assert code == 0, err
    assert sorted(page_paths(out, server)) == sorted(paths)
    status = await trio.run_process([*CLI, "status", str(state)], capture_stdout=True)
    assert f"{len(paths):,} done" in status.stdout.decode(), status.stdout


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_bad_process_count_is_one_line(value: str) -> None:
    result = subprocess.run(
        [*CLI, "crawl", "http://127.0.0.1:9/", "--processes", value],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--processes" in result.stderr


@pytest.mark.parametrize(("concurrency", "own"), [(128, 16), (16, 2), (2, 1)])
def test_parent_fetches_with_a_share_of_the_concurrency(concurrency: int, own: int) -> None:
    """The parent's loop also answers the workers' store calls: it fetches an eighth of -c."""
    crawler = Crawler(
        GenericSpider(),
        Settings(concurrency=concurrency),
        start_urls=["http://127.0.0.1:9/"],
        processes=2,
    )
    assert crawler._crawl_limiter.total_tokens == own
    alone = Crawler(
        GenericSpider(), Settings(concurrency=concurrency), start_urls=["http://127.0.0.1:9/"]
    )
    assert alone._crawl_limiter.total_tokens == concurrency


def test_a_workers_seen_hints_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's hint set rotates: two generations, so memory stays flat; a hint that
    rotated out only means the parent's store is asked (it decides)."""
    from trio_crawler._spider import Request
    from trio_crawler._store import remote as _remote
    from trio_crawler._store.base import NewRequest

    monkeypatch.setattr(_remote, "_SEEN_HINTS", 4)
    store = _remote.RemoteStore(None, (0, 0, 0, 0, None, 0, False, ()))  # type: ignore[arg-type]
    for fp in range(1, 11):
        store._remember([NewRequest(Request(url=f"http://h/{fp}"), fp, "h")])
        assert store.seen_hint(fp)
        assert len(store._seen) + len(store._seen_old) <= 8
    assert not store.seen_hint(1)  # rotated out
    assert store.seen_hint(10) and store.seen_hint(7)


# --------------------------------------------------------------------------- forked workers
def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


async def test_the_command_line_forks_its_workers(tmp_path: Path) -> None:
    """Forked before the event loop, a worker has the crawler imported and joins at once
    instead of 0.3-0.4 s later: its command line is the parent's (a new interpreter's would
    be ``-m trio_crawler _worker``). Every page answers 50 ms late, 2 at a time: the crawl of
    40 pages lasts at least a second, so the workers are alive when they are looked at."""
    graph, paths = chain_site(40)
    out = tmp_path / "out.jsonl"
    site = slow_site(graph, 0.05)
    seen: list[bytes] = []

    async def look(proc: trio.Process) -> None:
        workers = await wait_for_workers(proc, 2)
        parent = cmdline(proc.pid)
        seen.extend(cmdline(pid) for pid in workers)
        assert all(line == parent for line in seen), (parent, seen)

    flags = ("--processes", "3", "--delay", "0", "--per-host-concurrency", "2")
    async with open_site_server(site) as server:
        code, err = await run_crawl(server, out, *flags, during=look)
    assert code == 0, err
    assert len(seen) == 2
    assert sorted(page_paths(out, server)) == sorted(paths)
    fetched = [r.path for r in server.requests if r.path != "/robots.txt"]
    assert len(fetched) == len(set(fetched)) == len(paths)


def test_a_fork_that_is_given_no_path_exits() -> None:
    """A crawl that ends before its store listens gives its forks no path: each reads the end
    of its pipe and exits, quietly."""
    script = (
        "import os\n"
        "from trio_crawler._crawl.processes import fork_workers\n"
        "from trio_crawler._worker import worker_main\n"
        "forked = fork_workers(2, worker_main)\n"
        "assert len(forked) == 2, forked\n"
        "for child in forked:\n"
        "    child.discard()\n"
        "print([os.waitstatus_to_exitcode(os.waitpid(c.pid, 0)[1]) for c in forked])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 0]"
    assert result.stderr == ""


async def test_inside_an_event_loop_workers_are_not_forked() -> None:
    """Forking a process that runs trio (and its threads) is not safe: a crawler embedded in
    a trio program starts its workers as new processes."""
    crawler = Crawler(GenericSpider(start_urls=("http://127.0.0.1:9/",)), processes=2)
    assert crawler.fork_workers(worker_main) == 0
