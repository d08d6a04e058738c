"""The frontier's bookkeeping (pure): its counts agree with what its hosts hold, whatever the
order of pushes, claims, releases and pauses."""

from __future__ import annotations

import random

from trio_crawler._frontier import Frontier


def test_active_hosts_is_kept_exactly() -> None:
    rng = random.Random(7)
    frontier: Frontier[int] = Frontier(per_host_concurrency=2, per_host_delay=0.0)
    hosts = [f"http://h{i}.test:80" for i in range(12)]
    in_flight: list[str] = []
    now = 0.0
    for step in range(5_000):
        action = rng.random()
        if action < 0.45:
            frontier.push(rng.choice(hosts), step, rng.randrange(3))
        elif action < 0.8:
            in_flight += [key for key, _ in frontier.claim(now, rng.randrange(1, 4))]
        elif in_flight:
            frontier.release(in_flight.pop(rng.randrange(len(in_flight))))
        if rng.random() < 0.05:
            frontier.pause(rng.choice(hosts), now + rng.random())
        now += 0.1
        expected = sum(1 for h in frontier.hosts() if h.queue or h.in_flight)
        assert frontier.active_hosts() == expected, step
    assert frontier.in_flight == len(in_flight)


def test_partitions_serve_their_own_hosts_and_share_only_undelayed_ones() -> None:
    """``--processes``: each process is served its own hosts first; a host with a delay is
    served only by the process that owns it (its requests are spaced where they are sent),
    unless that process is gone; hosts without a delay are shared."""
    frontier: Frontier[int] = Frontier(per_host_concurrency=2, per_host_delay=1.0)
    frontier.set_partitions(2)
    hosts = [f"http://h{i}.test:80" for i in range(40)]
    for i, host in enumerate(hosts):
        frontier.push(host, i)
        frontier.push(host, 100 + i)
    part = {h: frontier.host(h).part for h in hosts}
    assert set(part.values()) == {0, 1}
    # partition 1's process has not joined yet: its hosts are anyone's
    early = frontier.claim(0.0, 100, 0)
    assert {part[key] for key, _ in early} == {0, 1}
    frontier.set_live(1, True)
    assert frontier.claim(1.0, 100, 1, steal=True) and all(
        part[key] == 1 for key, _ in frontier.claim(2.0, 100, 1)
    )
    assert all(part[key] == 0 for key, _ in frontier.claim(3.0, 100, 0))
    # without a delay anything ready may be taken by anyone
    eager: Frontier[int] = Frontier(per_host_concurrency=4, per_host_delay=0.0)
    eager.set_partitions(2)
    eager.set_live(1, True)
    eager.push("http://one.test:80", 1)
    eager.push("http://one.test:80", 2)
    owner = eager.host("http://one.test:80").part
    assert len(eager.claim(0.0, 1, owner)) == 1
    assert len(eager.claim(0.0, 1, 1 - owner)) == 1  # not its own, but no delay: shared
