"""What the broad-crawl benchmark's server saw during one run (pure): requests per connection,
per-host politeness, which pages were fetched how often.

The input is the merged log of the server's workers (``bench_broad_server.read_log``): per
request its arrival time, the time its response was written, its connection, host and page
code; per connection its open and close times. Times are ``time.monotonic()`` of the machine.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench_broad_site import OTHER_PAGE, PRIVATE_PAGE, ROBOTS_PAGE, Site

GAP_LIMIT = 0.245  # seconds: the benchmark's threshold for "too close" (0.25 s, 5 ms of slack)


@dataclasses.dataclass(frozen=True)
class ServerView:
    requests: int
    connections: int  # opened during the run (with or without a request)
    idle_connections: int  # opened and never sent a request
    hosts: int  # hosts that got at least one request
    pages_fetched: int  # distinct pages of the site fetched
    duplicate_fetches: int  # fetches of a page beyond its first
    missing: int  # pages of the site never fetched
    robots_fetches: int
    robots_repeated: int  # hosts whose robots.txt was fetched more than once
    hosts_without_robots: int  # hosts whose pages were fetched without robots.txt first
    private_fetches: int  # disallowed by robots.txt: must be 0
    other_fetches: int  # paths that are not in the site (404)
    unanswered: int  # requests whose connection closed before the answer
    min_gap: float  # smallest gap between two arrivals at one host (inf: no host had two)
    p1_gap: float  # 1st percentile of those gaps
    gaps: int
    gaps_below: int  # gaps below GAP_LIMIT
    gaps_below_after_robots: int  # of those, gaps between robots.txt and the next request
    max_in_flight: int  # most requests in flight at one host (arrived, not yet answered)
    hosts_over: int  # hosts that had more than the allowed requests in flight
    span: float  # first arrival to last answer
    first_arrival: float  # the first request's arrival (monotonic clock; nan: none)
    last_answer: float  # the last answer (monotonic clock; nan: none)
    late_p50: float  # how long after its due time (arrival + injected latency) the server
    late_p99: float  # answered: the server's own delay (it should be a few ms at most)
    late_max: float
    bad_requests: int
    wrong_address: int
    unstamped: int = 0  # reads the kernel gave no receive time (stamped when read instead)
    peak_rate: int = 0  # most arrivals within one second (the crawl's busiest second)

    @property
    def per_connection(self) -> float:
        return self.requests / self.connections if self.connections else float("nan")


def merge(
    logs: Iterable[tuple[Mapping[str, Sequence[float]], Mapping[str, int]]],
) -> tuple[dict[str, list[Any]], dict[str, int]]:
    """The logs of several workers as one (arrays concatenated, counters added)."""
    arrays: dict[str, list[Any]] = collections.defaultdict(list)
    counters: collections.Counter[str] = collections.Counter()
    for a, c in logs:
        for k, v in a.items():
            arrays[k].extend(v.tolist() if isinstance(v, array.array) else v)
        counters.update(c)
    return dict(arrays), dict(counters)


def analyse(
    site: Site,
    arrays: Mapping[str, Sequence[Any]],
    counters: Mapping[str, int],
    *,
    per_host_limit: int = 2,
) -> ServerView:
    arrival = arrays.get("arrival", [])
    done = arrays.get("done", [])
    conns = arrays.get("conn", [])
    hosts = arrays.get("host", [])
    pages = arrays.get("page", [])
    by_host: dict[int, list[tuple[float, float, int]]] = collections.defaultdict(list)
    fetched: collections.Counter[tuple[int, int]] = collections.Counter()
    used_conns: set[int] = set()
    robots = private = other = unanswered = 0
    last = -math.inf
    late: list[float] = []
    for t, d, c, h, p in zip(arrival, done, conns, hosts, pages, strict=True):
        used_conns.add(c)
        if d != d:  # NaN: never answered
            unanswered += 1
            d = t
        else:
            late.append(d - t - site.delay(h, p))
        last = max(last, d)
        by_host[h].append((t, d, p))
        if p >= 0:
            fetched[h, p] += 1
        elif p == ROBOTS_PAGE:
            robots += 1
        elif p == PRIVATE_PAGE:
            private += 1
        elif p == OTHER_PAGE:
            other += 1
    gaps: list[float] = []
    after_robots = 0
    most = 0
    over = 0
    without_robots = 0
    repeated = 0
    for items in by_host.values():
        repeated += sum(1 for _, _, p in items if p == ROBOTS_PAGE) > 1
        items.sort()
        # robots.txt answered before the first page of the host arrived
        first_page = next((t for t, _, p in items if p >= 0), None)
        robots_done = next((d for _, d, p in items if p == ROBOTS_PAGE), None)
        if first_page is not None and (robots_done is None or robots_done > first_page):
            without_robots += 1
        for a, b in itertools.pairwise(items):
            gaps.append(b[0] - a[0])
            if a[2] == ROBOTS_PAGE and b[0] - a[0] < GAP_LIMIT:
                after_robots += 1
        # in flight: +1 at arrival, -1 at answer; an answer and an arrival at the same instant
        # count the answer first
        events = sorted([(t, 1) for t, _, _ in items] + [(d, -1) for _, d, _ in items])
        level = peak = 0
        for _, step in events:
            level += step
            peak = max(peak, level)
        most = max(most, peak)
        over += peak > per_host_limit
    gaps.sort()
    late.sort()
    expected = site.hosts * site.pages
    times = sorted(arrival)
    peak_rate = start = 0
    for end, t in enumerate(times):  # the widest window of arrivals less than 1 s apart
        while t - times[start] >= 1.0:
            start += 1
        peak_rate = max(peak_rate, end - start + 1)
    return ServerView(
        requests=len(arrival),
        connections=len(arrays.get("conn_open", [])),
        idle_connections=len(arrays.get("conn_open", [])) - len(used_conns),
        hosts=len(by_host),
        pages_fetched=len(fetched),
        duplicate_fetches=sum(fetched.values()) - len(fetched),
        missing=expected - len(fetched),
        robots_fetches=robots,
        robots_repeated=repeated,
        hosts_without_robots=without_robots,
        private_fetches=private,
        other_fetches=other,
        unanswered=unanswered,
        min_gap=gaps[0] if gaps else math.inf,
        p1_gap=gaps[int(0.01 * len(gaps))] if gaps else math.inf,
        gaps=len(gaps),
        gaps_below=sum(1 for g in gaps if g < GAP_LIMIT),
        gaps_below_after_robots=after_robots,
        max_in_flight=most,
        hosts_over=over,
        span=last - min(arrival) if arrival else 0.0,
        first_arrival=min(arrival) if arrival else math.nan,
        last_answer=last if arrival else math.nan,
        late_p50=late[len(late) // 2] if late else 0.0,
        late_p99=late[int(0.99 * len(late))] if late else 0.0,
        late_max=late[-1] if late else 0.0,
        bad_requests=counters.get("bad_requests", 0),
        wrong_address=counters.get("wrong_address", 0),
        unstamped=counters.get("unstamped", 0),
        peak_rate=peak_rate,
    )


def problems(view: ServerView) -> list[str]:
    """Correctness failures the server saw (empty: none)."""
    out = []
    if view.private_fetches:
        out.append(f"{view.private_fetches} fetches of pages robots.txt disallows")
    if view.hosts_without_robots:
        out.append(f"{view.hosts_without_robots} hosts asked for a page before their robots.txt")
    if view.duplicate_fetches:
        out.append(f"{view.duplicate_fetches} pages fetched more than once")
    if view.hosts_over:
        out.append(
            f"{view.hosts_over} hosts with more requests in flight than allowed "
            f"(at most {view.max_in_flight})"
        )
    if view.bad_requests:
        out.append(f"{view.bad_requests} malformed requests")
    if view.wrong_address:
        out.append(f"{view.wrong_address} requests with the Host of another address")
    return out
