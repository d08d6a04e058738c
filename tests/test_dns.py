"""Name resolution at scale (issue 20): a slow or failing name holds only its own requests,
concurrent lookups of one name share one query, answers and failures are cached, and the
system resolver runs in threads of its own. Clock-driven tests run on the autojump clock."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_crawler._exceptions import FailureKind, FetchError
from trio_crawler._http import Resolver, SystemResolve


class SlowDns:
    """Answers every name at once, except ``slow.test`` (after ``slow`` seconds) and
    ``gone.test`` (never: the lookup hangs)."""

    def __init__(self, slow: float) -> None:
        self.slow = slow
        self.queries: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.queries.append(host)
        if host == "slow.test":
            await trio.sleep(self.slow)
        if host == "gone.test":
            await trio.sleep_forever()
        return ["192.0.2.1"]


async def test_a_slow_name_holds_only_its_own_lookups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    dns = SlowDns(slow=5.0)
    resolver = Resolver(dns, timeout=10.0)
    done: dict[str, float] = {}
    start = trio.current_time()

    async def look(host: str) -> None:
        await resolver(host, 80)
        done[host] = trio.current_time() - start

    async with trio.open_nursery() as nursery:
        nursery.start_soon(look, "slow.test")
        for i in range(100):
            nursery.start_soon(look, f"h{i}.test")
    assert max(v for k, v in done.items() if k != "slow.test") == 0.0
    assert done["slow.test"] == pytest.approx(5.0)


async def test_a_hanging_lookup_fails_at_its_deadline_and_is_remembered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    dns = SlowDns(slow=0)
    resolver = Resolver(dns, timeout=3.0, negative_ttl=30.0)
    start = trio.current_time()
    with pytest.raises(FetchError) as info:
        await resolver("gone.test", 80)
    assert info.value.kind is FailureKind.DNS
    assert trio.current_time() - start == pytest.approx(3.0)
    with pytest.raises(FetchError):  # cached: no second query
        await resolver("gone.test", 80)
    assert dns.queries == ["gone.test"]


async def test_one_query_per_name_while_it_is_pending_and_cached(
    autojump_clock: trio.testing.MockClock,
) -> None:
    dns = SlowDns(slow=1.0)
    resolver = Resolver(dns, ttl=60.0)
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(resolver, "slow.test", 80)
    assert await resolver("slow.test", 80) == ["192.0.2.1"]
    assert dns.queries == ["slow.test"]
    await trio.sleep(61)
    await resolver("slow.test", 80)
    assert dns.queries == ["slow.test", "slow.test"]  # the answer expired


async def test_the_system_resolver_uses_threads_of_its_own() -> None:
    """Its lookups never take the threads other work needs: trio's default limiter stays
    untouched while they run."""
    resolve = SystemResolve(threads=2, hosts_file=None)  # every lookup a getaddrinfo
    default = trio.to_thread.current_default_thread_limiter()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(resolve, "localhost", 80)
            await trio.lowlevel.checkpoint()
            assert default.borrowed_tokens == 0
    assert socket.gethostbyname("localhost")  # the machine resolves names at all
