"""The pure parts of scripts/bench_broad: the /etc/hosts block, the site, the ideal crawler,
the server-log analysis and the DNS answers (no sockets, no timing)."""

from __future__ import annotations

import collections
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench_broad_analysis as analysis
import bench_broad_dns as dns
import bench_broad_hosts as hosts
import bench_procs
from bench_broad_sim import politeness_bound, simulate, simulate_cpu
from bench_broad_site import PRIVATE_PAGE, ROBOTS_PAGE, Site

ORIGINAL = "127.0.0.1 localhost\n# a comment\n::1 ip6-localhost\n"


# --------------------------------------------------------------------------- /etc/hosts


def test_hosts_block_is_added_and_removed_leaving_other_lines_untouched(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(ORIGINAL)
    with hosts.hosts_block([("127.1.0.0", "h00000.bench.test")], path) as count:
        text = path.read_text()
        assert count == 1
        assert text.startswith(ORIGINAL)
        assert f"{hosts.BEGIN}\n127.1.0.0 h00000.bench.test\n{hosts.END}\n" in text
    assert path.read_text() == ORIGINAL


def test_hosts_block_is_removed_when_the_body_raises(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(ORIGINAL)
    with (
        pytest.raises(KeyboardInterrupt),
        hosts.hosts_block([("127.1.0.1", "h00001.bench.test")], path),
    ):
        raise KeyboardInterrupt
    assert path.read_text() == ORIGINAL


def test_a_stale_block_is_removed_and_only_it(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    stale = hosts.with_block(ORIGINAL, [("127.1.0.2", "h00002.bench.test")])
    path.write_text(stale + "10.0.0.1 added-later\n")
    assert hosts.remove_stale(path) == 3
    assert path.read_text() == ORIGINAL + "10.0.0.1 added-later\n"
    assert hosts.remove_stale(path) == 0


def test_an_unterminated_block_loses_only_its_own_lines() -> None:
    text = ORIGINAL + hosts.BEGIN + "\n127.1.0.3 h00003.bench.test\n10.0.0.1 someone-else\n"
    stripped, removed = hosts.strip_block(text)
    assert removed == 2
    assert stripped == ORIGINAL + "10.0.0.1 someone-else\n"


def test_a_file_without_a_final_newline_keeps_its_last_line() -> None:
    text = hosts.with_block("127.0.0.1 localhost", [("127.1.0.4", "h00004.bench.test")])
    assert text.startswith("127.0.0.1 localhost\n" + hosts.BEGIN)


# --------------------------------------------------------------------------- the site


def _reachable(site: Site) -> set[tuple[int, int]]:
    todo = collections.deque((h, 0) for h in range(min(site.seeds, site.hosts)))
    seen = set(todo)
    while todo:
        h, i = todo.popleft()
        for link in site.links(h, i):
            key = (link.host, link.page)
            if link.page != PRIVATE_PAGE and key not in seen:
                seen.add(key)
                todo.append(key)
    return seen


@pytest.mark.parametrize(("n", "p"), [(1, 1), (5, 1), (37, 3), (300, 10)])
def test_every_page_is_reachable_from_the_seeds(n: int, p: int) -> None:
    site = Site(n, p, 18480)
    assert _reachable(site) == {(h, i) for h in range(n) for i in range(p)}
    assert len(site.expected_urls()) == n * p


def test_links_are_deterministic_and_written_as_the_page_says() -> None:
    site = Site(300, 10, 18480)
    assert site.links(123, 4) == Site(300, 10, 18480).links(123, 4)
    body = site.body(123, 4, site.filler()).decode()
    assert 9_000 < len(body) < 12_000
    for link in site.links(123, 4):
        assert f'href="{link.href}"' in body
        if link.host != 123:
            assert link.href.startswith(site.origin(link.host))


def test_hosts_are_found_only_through_their_parent_or_earlier_hosts() -> None:
    site = Site(300, 10, 18480)
    for h in range(300):
        for i in range(10):
            for link in site.links(h, i):
                if link.host in site.children(h):
                    assert site.parent(link.host) == h
                    assert link.page == 0
                else:
                    assert link.host <= h


def test_names_paths_and_addresses_round_trip() -> None:
    site = Site(20_000, 5, 18443, https=True)
    assert site.host_id(b" H01234.bench.test:18443") == 1234
    assert site.host_id(b"h20000.bench.test") is None
    assert site.host_id(b"h0123.bench.test") is None
    assert site.address(0) == "127.1.0.0"
    assert site.address(19_999) == "127.1.78.31"
    assert site.page_code(b"/") == 0
    assert site.page_code(b"/page-4.html") == 4
    assert site.page_code(b"/page-5.html") < 0
    assert site.page_code(b"/page-04.html") < 0
    assert site.page_code(b"/robots.txt") == ROBOTS_PAGE
    assert site.page_code(b"/private/p-1.html") == PRIVATE_PAGE
    assert site.url(7, 2) == "https://h00007.bench.test:18443/page-2.html"


def test_latencies_are_within_the_jitter() -> None:
    site = Site(100, 10, 1, latency=0.05, jitter=0.02)
    delays = [site.delay(h, i) for h in range(100) for i in range(-1, 10)]
    assert all(0.03 <= d <= 0.07 for d in delays)
    assert max(delays) - min(delays) > 0.03  # spread, not constant


# --------------------------------------------------------------------------- the ideal crawler


def test_one_page_robots_then_the_page_a_delay_later() -> None:
    site = Site(1, 1, 1)
    ideal = simulate(site)
    expected = max(site.delay(0, ROBOTS_PAGE), 0.25) + site.delay(0, 0)
    assert ideal.wall == pytest.approx(expected)
    assert (ideal.requests, ideal.pages) == (2, 1)


def test_one_host_is_paced_by_the_delay() -> None:
    site = Site(1, 10, 1, jitter=0.0)
    # robots.txt at 0, the pages at 0.25, 0.5, ... 2.5, each answered 50 ms later
    assert simulate(site).wall == pytest.approx(2.5 + 0.05)
    assert politeness_bound(site) == pytest.approx(2.5 + 0.05)


@pytest.mark.parametrize(("n", "p", "c"), [(50, 10, 256), (300, 5, 16), (300, 10, 10**9)])
def test_the_simulation_fetches_everything_once_and_respects_the_bound(
    n: int, p: int, c: int
) -> None:
    site = Site(n, p, 18480)
    ideal = simulate(site, concurrency=c)
    assert ideal.pages == n * p
    assert ideal.requests == n * p + n
    assert ideal.max_in_flight <= c
    assert ideal.wall >= politeness_bound(site) - 1e-9


def test_a_global_cap_slows_the_ideal_crawl() -> None:
    site = Site(300, 10, 18480)
    assert simulate(site, concurrency=4).wall > simulate(site, concurrency=10**9).wall


@pytest.mark.parametrize("started_first", [True, False])
def test_the_cpu_bound_crawl_fetches_everything_once(started_first: bool) -> None:
    site = Site(300, 5, 18480)
    bound = simulate_cpu(site, rate=500.0, concurrency=16, started_first=started_first)
    assert (bound.pages, bound.requests) == (300 * 5, 300 * 5 + 300)
    assert bound.max_in_flight <= 16
    assert bound.wall >= bound.requests / 500.0  # the CPU did a request at a time
    assert bound.wall >= politeness_bound(site) - 1e-9


def test_a_slower_cpu_makes_a_longer_crawl() -> None:
    site = Site(300, 10, 18480)
    walls = [simulate_cpu(site, rate=r).wall for r in (1e9, 3000.0, 1000.0)]
    assert walls == sorted(walls)
    assert walls[2] >= site.hosts * (site.pages + 1) / 1000.0


def test_an_endless_cpu_serving_in_turn_is_the_ideal_crawler() -> None:
    site = Site(300, 10, 18480)
    free = simulate_cpu(site, rate=1e12, send_share=0.0, started_first=False)
    assert free.wall == pytest.approx(simulate(site).wall, rel=0.02)


def test_one_host_waits_for_the_cpu_and_the_delay() -> None:
    site = Site(1, 1, 1, jitter=0.0)
    # robots.txt: 0.1 s of CPU (half before, half after), 50 ms away; the page a delay after
    # robots.txt was claimed, then the same
    bound = simulate_cpu(site, rate=10.0, send_share=0.5)
    assert bound.wall == pytest.approx(max(0.05 + 0.05 + 0.05, 0.25) + 0.05 + 0.05 + 0.05)
    with pytest.raises(ValueError, match="rate"):
        simulate_cpu(site, rate=0.0)


# --------------------------------------------------------------------------- the server's log


def _log(rows: list[tuple[float, float, int, int, int]], conns: int) -> dict[str, list[float]]:
    arrays: dict[str, list[float]] = collections.defaultdict(list)
    for t, d, c, h, p in rows:
        for k, v in (("arrival", t), ("done", d), ("conn", c), ("host", h), ("page", p)):
            arrays[k].append(v)
    arrays["conn_open"] = [0.0] * conns
    arrays["conn_close"] = [9.0] * conns
    return arrays


def test_the_busiest_second_is_the_widest_window_under_one_second() -> None:
    site = Site(1, 6, 1, jitter=0.0)
    times = [0.0, 0.2, 0.4, 1.2, 1.3, 1.35]  # 0.4 .. 1.35: four arrivals within 0.95 s
    rows = [(t, t + 0.05, 0, 0, page) for page, t in enumerate(times)]
    assert analysis.analyse(site, _log(rows, conns=1), {}).peak_rate == 4
    assert analysis.analyse(site, _log([], conns=0), {}).peak_rate == 0


def test_analysis_of_a_polite_complete_crawl() -> None:
    site = Site(1, 2, 1, jitter=0.0)
    rows = [(0.0, 0.05, 0, 0, ROBOTS_PAGE), (0.25, 0.30, 0, 0, 0), (0.50, 0.55, 0, 0, 1)]
    view = analysis.analyse(site, _log(rows, conns=2), {})
    assert analysis.problems(view) == []
    assert (view.requests, view.connections, view.idle_connections) == (3, 2, 1)
    assert view.per_connection == 1.5
    assert view.min_gap == pytest.approx(0.25)
    assert (view.gaps, view.gaps_below, view.max_in_flight, view.missing) == (2, 0, 1, 0)
    assert view.late_max == pytest.approx(0.0, abs=1e-9)
    assert (view.robots_fetches, view.robots_repeated) == (1, 0)
    assert view.peak_rate == 3  # all three within one second
    again = analysis.analyse(site, _log([*rows, (0.75, 0.80, 1, 0, ROBOTS_PAGE)], conns=2), {})
    assert (again.robots_fetches, again.robots_repeated) == (2, 1)


def test_analysis_finds_impolite_and_wrong_fetches() -> None:
    site = Site(1, 3, 1, jitter=0.0)
    rows = [
        (0.0, 0.05, 0, 0, 0),  # a page before robots.txt
        (0.01, 0.06, 1, 0, ROBOTS_PAGE),  # 10 ms later, while the first is in flight
        (0.02, 0.07, 2, 0, 0),  # a third in flight, and a duplicate
        (0.30, 0.35, 0, 0, PRIVATE_PAGE),
    ]
    view = analysis.analyse(site, _log(rows, conns=3), {"bad_requests": 1}, per_host_limit=2)
    assert view.max_in_flight == 3
    assert view.gaps_below == 2
    assert view.gaps_below_after_robots == 1
    assert view.min_gap == pytest.approx(0.01)
    assert (view.duplicate_fetches, view.missing, view.private_fetches) == (1, 2, 1)
    found = " | ".join(analysis.problems(view))
    for words in (
        "disallows",
        "before their robots.txt",
        "more than once",
        "in flight",
        "malformed",
    ):
        assert words in found


# --------------------------------------------------------------------------- DNS answers


def _query(name: str, qtype: int) -> bytes:
    labels = b"".join(bytes([len(x)]) + x.encode() for x in name.split("."))
    return (
        struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def test_dns_answers_a_site_name_with_its_address() -> None:
    reply = dns.answer(_query("H00042.bench.test", dns.TYPE_A), hosts=100)
    assert reply is not None
    ident, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (ident, flags & 0x800F, qd, an) == (0x1234, 0x8000, 1, 1)
    assert reply[-4:] == bytes([127, 1, 0, 42])


@pytest.mark.parametrize(
    ("name", "qtype", "rcode", "answers"),
    [
        ("h00042.bench.test", dns.TYPE_AAAA, 0, 0),
        ("h00100.bench.test", dns.TYPE_A, dns.NXDOMAIN, 0),
        ("pypi.org", dns.TYPE_A, dns.NXDOMAIN, 0),
    ],
)
def test_dns_answers_nothing_else(name: str, qtype: int, rcode: int, answers: int) -> None:
    reply = dns.answer(_query(name, qtype), hosts=100)
    assert reply is not None
    _, flags, _, an = struct.unpack("!HHHH", reply[:8])
    assert (flags & 0xF, an) == (rcode, answers)


def test_dns_garbage_gets_formerr_or_nothing() -> None:
    assert dns.answer(b"\x00\x01", hosts=1) is None
    reply = dns.answer(b"\x00\x01" + b"\x01\x00\x00\x01" + b"\x00" * 6 + b"\x40", hosts=1)
    assert reply is not None and reply[3] & 0xF == dns.FORMERR


def test_the_benchmarks_compile_the_package_before_they_measure_it(tmp_path: Path) -> None:
    """A tree just checked out is compiled once, not by every measured run (this machine sets
    PYTHONDONTWRITEBYTECODE); a tree that does not compile is a one-line setup error."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 1\n")
    bench_procs.compile_package(package)
    assert [p.name.split(".")[0] for p in (package / "__pycache__").iterdir()] == ["__init__"]
    (package / "broken.py").write_text("def (:\n")
    with pytest.raises(bench_procs.SetupError, match="cannot compile"):
        bench_procs.compile_package(package)
