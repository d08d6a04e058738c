"""The ideal breadth-first crawler of a broad-crawl site, and the bound from politeness alone.

Both are computed from the same :class:`bench_broad_site.Site` the server serves (same links,
same latency for every request), with no CPU cost at all:

* :func:`simulate` - a discrete-event simulation of a crawler under the benchmark's politeness:
  robots.txt first on each host (nothing else of the host starts before it is answered), at most
  ``per_host`` requests in flight to a host and ``delay`` seconds between two starts to it, at
  most ``concurrency`` requests in flight in all, each host's pages in the order their links were
  found (breadth-first), a link known only when the page that holds it has been answered. A free
  slot goes to the host that has waited longest. Its wall time is what a crawler with an
  infinitely fast CPU, and this scheduling, would take.
* :func:`simulate_cpu` - the same crawl with a CPU as its limit: a CPU that does ``rate``
  requests a second, in turn, part of each before it is sent and the rest after its answer
  (before its links are known). Fed the busiest second a run had at the server, it tells how
  much of that run's wall time the CPU explains and how much the rest does (the ramp, the tail,
  startup and exit); ``started_first`` serves the hosts the crawl has started before new ones,
  as trio-crawler's frontier does (its ``warm_lead``).
* :func:`politeness_bound` - a lower bound no crawler can beat: each page's earliest answer if
  every link were followed at once (shortest paths, robots.txt first on each host), then per host
  its requests paced ``delay`` apart in the order they become possible. It ignores the global
  concurrency and per-host concurrency limits, so it is below the simulation.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq

from bench_broad_site import PRIVATE_PAGE, ROBOTS_PAGE, Link, Site


@dataclasses.dataclass(frozen=True)
class Ideal:
    wall: float  # when the last answer arrives
    requests: int  # robots.txt included
    pages: int
    max_in_flight: int  # most requests in flight at once over all hosts


class _Host:
    __slots__ = ("in_flight", "next_start", "queue", "robots", "waiting", "wake")

    def __init__(self) -> None:
        self.queue: collections.deque[int] = collections.deque()
        self.in_flight = 0
        self.next_start = 0.0
        self.robots = 0  # 0: not started, 1: in flight, 2: answered
        self.wake = -1.0  # time of the pending wake-up event, -1: none
        self.waiting = False  # in the queue of hosts waiting for a global slot


def simulate(
    site: Site,
    *,
    concurrency: int = 256,
    per_host: int = 2,
    delay: float = 0.25,
    links: dict[tuple[int, int], list[Link]] | None = None,
) -> Ideal:
    """The ideal breadth-first crawl of ``site`` (see the module docstring)."""
    get_links = (lambda h, i: links[h, i]) if links is not None else site.links
    hosts: dict[int, _Host] = {}
    seen: set[tuple[int, int]] = set()
    events: list[tuple[float, int, int, int]] = []  # (time, seq, host, page or WAKE)
    wake = -10
    seq = 0
    waiting: collections.deque[int] = collections.deque()
    total = 0
    most = 0
    requests = 0
    pages = 0
    last = 0.0

    def push(t: float, h: int, what: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, h, what))

    def discover(h: int, i: int, now: float) -> None:
        if (h, i) in seen:
            return
        seen.add((h, i))
        host = hosts.get(h)
        if host is None:
            host = hosts[h] = _Host()
        host.queue.append(i)
        try_start(h, now)

    def try_start(h: int, now: float) -> None:
        nonlocal total, most, requests
        host = hosts[h]
        if host.robots == 0:
            if host.in_flight:
                return
            what = ROBOTS_PAGE
        elif host.robots == 1 or not host.queue or host.in_flight >= per_host:
            return
        else:
            what = host.queue[0]
        if now < host.next_start:
            if host.wake != host.next_start:
                host.wake = host.next_start
                push(host.next_start, h, wake)
            return
        if total >= concurrency:
            if not host.waiting:
                host.waiting = True
                waiting.append(h)
            return
        if what == ROBOTS_PAGE:
            host.robots = 1
        else:
            host.queue.popleft()
        host.in_flight += 1
        host.next_start = now + delay
        total += 1
        most = max(most, total)
        requests += 1
        push(now + site.delay(h, what), h, what)
        if host.robots == 2 and host.queue:
            host.wake = host.next_start
            push(host.next_start, h, wake)

    for url_host in range(min(site.seeds, site.hosts)):
        discover(url_host, 0, 0.0)
    while events:
        now, _, h, what = heapq.heappop(events)
        host = hosts[h]
        if what == wake:
            if host.wake == now:
                host.wake = -1.0
            try_start(h, now)
            continue
        last = now
        host.in_flight -= 1
        total -= 1
        if what == ROBOTS_PAGE:
            host.robots = 2
        else:
            pages += 1
            for link in get_links(h, what):
                if link.page != PRIVATE_PAGE:
                    discover(link.host, link.page, now)
        try_start(h, now)
        while waiting and total < concurrency:
            w = waiting.popleft()
            hosts[w].waiting = False
            try_start(w, now)
    return Ideal(wall=last, requests=requests, pages=pages, max_in_flight=most)


class _CpuHost:
    __slots__ = ("in_flight", "listed", "next_start", "queue", "robots", "started", "wake")

    def __init__(self) -> None:
        self.queue: collections.deque[int] = collections.deque()
        self.in_flight = 0
        self.next_start = 0.0
        self.robots = 0  # 0: not started, 1: in flight, 2: answered
        self.wake = -1.0  # time of the pending wake-up event, -1: none
        self.listed = False  # in the heap of ready hosts
        self.started = False


def simulate_cpu(
    site: Site,
    *,
    rate: float,
    concurrency: int = 256,
    per_host: int = 2,
    delay: float = 0.25,
    send_share: float = 0.35,
    started_first: bool = True,
    links: dict[tuple[int, int], list[Link]] | None = None,
) -> Ideal:
    """The crawl of ``site`` with a CPU as its limit (see the module docstring).

    A request is claimed when its host is ready and one of the ``concurrency`` slots is free
    (a host's claims ``delay`` apart); it then waits for the CPU (``send_share / rate``
    seconds of it) before it is sent, is answered ``site.delay`` later, and waits for the CPU
    again (the rest of its ``1 / rate``); only then are its links known and its slot free. The
    CPU works in turn (first come, first served). Ready hosts are served by the time they
    became ready, with ``started_first`` those the crawl has started before any new one."""
    if rate <= 0 or not 0 <= send_share <= 1:
        raise ValueError("rate must be positive and send_share within [0, 1]")
    get_links = (lambda h, i: links[h, i]) if links is not None else site.links
    send_cost, answer_cost = send_share / rate, (1 - send_share) / rate
    hosts: dict[int, _CpuHost] = {}
    seen: set[tuple[int, int]] = set()
    wake, sent, answered, done = 0, 1, 2, 3
    events: list[tuple[float, int, int, int, int]] = []  # (time, seq, kind, host, page)
    ready: list[tuple[float, float, int, int]] = []  # (new host?, ready time, seq, host)
    seq = 0
    cpu_free = 0.0  # when the CPU is through with the work handed to it so far
    total = most = requests = pages = 0
    last = 0.0

    def push(t: float, kind: int, h: int, what: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, h, what))

    def cpu(now: float, cost: float) -> float:
        nonlocal cpu_free
        cpu_free = max(cpu_free, now) + cost
        return cpu_free

    def eligible(host: _CpuHost) -> bool:
        if host.robots == 0:
            return host.in_flight == 0
        return host.robots == 2 and bool(host.queue) and host.in_flight < per_host

    def consider(h: int, now: float) -> None:
        nonlocal seq
        host = hosts[h]
        if host.listed or not eligible(host):
            return
        if now < host.next_start:
            if host.wake != host.next_start:
                host.wake = host.next_start
                push(host.next_start, wake, h, 0)
            return
        host.listed = True
        seq += 1
        heapq.heappush(ready, (0.0 if host.started or not started_first else 1.0, now, seq, h))

    def discover(h: int, i: int, now: float) -> None:
        if (h, i) in seen:
            return
        seen.add((h, i))
        if h not in hosts:
            hosts[h] = _CpuHost()
        hosts[h].queue.append(i)
        consider(h, now)

    def claim(now: float) -> None:
        nonlocal total, most, requests
        while ready and total < concurrency:
            h = heapq.heappop(ready)[3]
            host = hosts[h]
            host.listed = False
            if not eligible(host) or now < host.next_start:
                consider(h, now)
                continue
            if host.robots == 0:
                host.robots = 1
                what = ROBOTS_PAGE
            else:
                what = host.queue.popleft()
            host.started = True
            host.in_flight += 1
            host.next_start = now + delay
            total += 1
            most = max(most, total)
            requests += 1
            push(cpu(now, send_cost), sent, h, what)
            consider(h, now)

    for h in range(min(site.seeds, site.hosts)):
        discover(h, 0, 0.0)
    claim(0.0)
    while events:
        now, _, kind, h, what = heapq.heappop(events)
        host = hosts[h]
        if kind == wake:
            if host.wake == now:
                host.wake = -1.0
            consider(h, now)
        elif kind == sent:
            push(now + site.delay(h, what), answered, h, what)
        elif kind == answered:
            push(cpu(now, answer_cost), done, h, what)
        else:
            last = now
            host.in_flight -= 1
            total -= 1
            if what == ROBOTS_PAGE:
                host.robots = 2
            else:
                pages += 1
                for link in get_links(h, what):
                    if link.page != PRIVATE_PAGE:
                        discover(link.host, link.page, now)
            consider(h, now)
        claim(now)
    return Ideal(wall=last, requests=requests, pages=pages, max_in_flight=most)


def politeness_bound(
    site: Site, *, delay: float = 0.25, links: dict[tuple[int, int], list[Link]] | None = None
) -> float:
    """A lower bound on any polite crawl's wall time (see the module docstring)."""
    get_links = (lambda h, i: links[h, i]) if links is not None else site.links
    # Earliest answer of each page, with every link followed at once (Dijkstra on pages).
    known: dict[int, float] = {}  # host -> earliest time a link to it is seen
    robots_done: dict[int, float] = {}
    start: dict[tuple[int, int], float] = {}  # page -> earliest possible start
    done: dict[tuple[int, int], float] = {}
    heap: list[tuple[float, int, int]] = []

    def reach(h: int, i: int, t: float) -> None:
        if h not in known:
            known[h] = t
            robots_done[h] = t + site.delay(h, ROBOTS_PAGE)
        s = max(t, robots_done[h])
        if s < start.get((h, i), float("inf")):
            start[h, i] = s
            heapq.heappush(heap, (s + site.delay(h, i), h, i))

    for h in range(min(site.seeds, site.hosts)):
        reach(h, 0, 0.0)
    while heap:
        t, h, i = heapq.heappop(heap)
        if (h, i) in done:
            continue
        done[h, i] = t
        for link in get_links(h, i):
            if link.page != PRIVATE_PAGE:
                reach(link.host, link.page, t)
    by_host: dict[int, list[tuple[int, float]]] = collections.defaultdict(list)
    for (h, i), s in start.items():
        by_host[h].append((i, s))
    bound = max(done.values(), default=0.0)
    for h, items in by_host.items():
        # robots.txt at the host's discovery, then the pages in the order they become possible,
        # each at least `delay` after the one before: the earliest possible last start
        t = known[h]
        for _, s in sorted(items, key=lambda item: item[1]):
            t = max(s, t + delay)
        bound = max(bound, t + min(site.delay(h, i) for i, _ in items))
    return bound
