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


def test_a_started_host_goes_ahead_of_new_ones_for_a_while() -> None:
    """A broad crawl finds hosts faster than it serves them: a host already started is served
    before new hosts that became ready up to ``warm_lead`` seconds before it (its keep-alive
    connection is still open), and no longer than that."""
    frontier: Frontier[int] = Frontier(per_host_concurrency=1, per_host_delay=1.0, warm_lead=30.0)
    a = "http://a.test:80"
    for i in range(4):
        frontier.push(a, i)
    assert frontier.claim(0.0, 1) == [(a, 0)]
    frontier.release(a)
    for i in range(50):
        frontier.push(f"http://n{i}.test:80", 100 + i)
    # a is not ready before 1.0: a new host is served meanwhile, in the order they came
    assert frontier.claim(0.5, 1) == [("http://n0.test:80", 100)]
    # at 1.0 the 49 others have waited since 0.5, yet a goes first
    assert frontier.claim(1.0, 1) == [(a, 1)]
    frontier.release(a)
    assert frontier.claim(2.0, 2) == [(a, 2), ("http://n1.test:80", 101)]
    frontier.release(a)
    # a new host met at 0.5 waits at most 30 s more: a host ready at 31.0 comes after it
    frontier.pause(a, 31.0)
    claimed = frontier.claim(35.0, 100)
    assert claimed[:-1] == [(f"http://n{i}.test:80", 100 + i) for i in range(2, 50)]
    assert claimed[-1] == (a, 3)
    assert frontier.next_ready_time() is None


def test_a_claim_that_sent_nothing_gives_its_turn_back() -> None:
    """``give_back``: the host may be claimed again as if its last claim had not been; once,
    and not when a pause moved its next allowed time since (the pause stands)."""
    frontier: Frontier[int] = Frontier(per_host_concurrency=2, per_host_delay=1.0)
    host = "http://h.test:80"
    for i in range(5):
        frontier.push(host, i)
    assert [e for _, e in frontier.claim(10.0, 10)] == [0]
    assert frontier.claim(10.0, 10) == []  # its next turn is at 11.0
    frontier.give_back(host)
    frontier.release(host)
    assert [e for _, e in frontier.claim(10.0, 10)] == [1]  # at once
    frontier.give_back(host)
    frontier.give_back(host)  # once only
    assert [e for _, e in frontier.claim(10.0, 10)] == [2]
    assert frontier.claim(10.5, 10) == []
    frontier.release(host)
    frontier.release(host)
    assert frontier.host(host).next_allowed == 11.0
    # a pause after the claim stands
    frontier.pause(host, 20.0)
    frontier.give_back(host)
    assert frontier.claim(19.0, 10) == []
    assert [e for _, e in frontier.claim(20.0, 10)] == [3]
    frontier.give_back("http://unknown.test:80")  # a host it never saw: nothing to do
