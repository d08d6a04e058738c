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
