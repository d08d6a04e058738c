"""The address guard (SSRF): unit tests of the pure rule, then real crawls on loopback.

In the crawl tests a :class:`~hostile.ConnectionCounter` stands where the crawler must not go:
it counts TCP connections, so "refused" means no connection was even opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
from hostile import ConnectionCounter, open_connection_counter

from trio_crawler import crawl, open_crawler
from trio_crawler._http import AddressGuard, Resolver, is_public_address
from trio_crawler.spiders.generic import GenericSpider, PageRecord
from trio_crawler.testing import (
    Response,
    Site,
    SiteServer,
    html_page,
    loopback_settings,
    open_site_server,
    serve_site,
)

NOT_PUBLIC = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456::1",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "255.255.255.255",
    "240.0.0.1",
    "100.64.0.1",  # CGNAT shared space: refused (see AddressGuard)
    "100.100.100.200",  # a cloud metadata address inside it
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2001::1",  # Teredo
    "2001:db8::1",
    "not an address",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.0",
    "172.32.0.1",
    "2606:4700::1111",
    "2a00:1450:4001::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8 (DNS64 networks)
]


@pytest.mark.parametrize("ip", NOT_PUBLIC)
def test_not_public_addresses_are_refused(ip: str) -> None:
    assert not is_public_address(ip)
    assert not AddressGuard(allow_private=False).is_allowed(ip, 80)
    assert AddressGuard(allow_private=True).is_allowed(ip, 80)


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_are_allowed(ip: str) -> None:
    assert is_public_address(ip)
    assert AddressGuard(allow_private=False).is_allowed(ip, 80)


def test_allowed_pairs_are_exact_and_spelling_independent() -> None:
    guard = AddressGuard(allow_private=False, allowed=["127.0.0.1:8080", "[::1]:9000"])
    assert guard.is_allowed("127.0.0.1", 8080)
    assert guard.is_allowed("::ffff:127.0.0.1", 8080)  # the same destination
    assert not guard.is_allowed("127.0.0.1", 8081)
    assert not guard.is_allowed("127.0.0.2", 8080)
    assert guard.is_allowed("0:0::1", 9000)
    assert not guard.is_allowed("::1", 8080)
    guard.allow_host("Intranet.Example.", 8443)  # a seed named by host name
    assert guard.is_allowed("10.0.0.5", 8443, host="intranet.example")
    assert not guard.is_allowed("10.0.0.5", 8443, host="other.example")
    assert not guard.is_allowed("10.0.0.5", 22, host="intranet.example")


async def test_resolver_shares_queries_and_caches_failures() -> None:
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        await trio.sleep(0.01)
        if host == "nowhere.example":
            raise OSError("no such name")
        return ["127.0.0.1"]

    resolver = Resolver(resolve)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(resolver, "a.example", 80)
        assert await resolver("a.example", 80) == ["127.0.0.1"]
        assert await resolver("10.0.0.1", 80) == ["10.0.0.1"]  # literals skip the seam
        for _ in range(2):
            with pytest.raises(Exception, match="cannot resolve"):
                await resolver("nowhere.example", 80)
    assert calls == ["a.example", "nowhere.example"]


# ------------------------------------------------------------------ crawls


def records(items: Sequence[Any]) -> dict[str, PageRecord]:
    return {r.url: r for r in items if isinstance(r, PageRecord)}


async def crawl_items(
    server: SiteServer, *, resolver: Resolver | None = None, **overrides: Any
) -> tuple[dict[str, PageRecord], Any]:
    settings = loopback_settings(server, **{"scope": "any", "max_retries": 0, **overrides})
    with trio.fail_after(20):
        async with open_crawler(
            GenericSpider(start_urls=(server.url("/"),)), settings, resolver=resolver
        ) as crawler:
            items = [item async for item in crawler.items()]
    return records(items), crawler.statistics()


async def test_seed_opens_its_own_host_and_port_only() -> None:
    async with open_connection_counter() as other, trio.open_nursery() as nursery:
        links = [
            f"{other.origin}/other-port",
            f"http://0.0.0.0:{other.port}/unspecified",
            f"http://[::ffff:127.0.0.1]:{other.port}/mapped",
            f"http://127.1:{other.port}/short-form",
            f"http://2130706433:{other.port}/decimal-form",
            "/redirect-to-other",
            "/ok",
        ]
        site = Site({"/ok": "fine"})
        site.add("/redirect-to-other", Response(status=302, headers=(("location", other.origin),)))
        server: SiteServer = await nursery.start(serve_site, site)
        # the seed's port on another loopback address (if that port is free there)
        try:
            same_port: ConnectionCounter | None = await nursery.start(
                _counter_task, "127.0.0.2", server.port
            )
        except OSError:
            same_port = None
        if same_port is not None:
            links.append(f"http://127.0.0.2:{server.port}/same-port")
        site.add("/", "".join(f'<a href="{u}">x</a>' for u in links))
        found, stats = await crawl_items(server)
        nursery.cancel_scope.cancel()
    assert other.connections == 0
    assert same_port is None or same_port.connections == 0
    assert found[server.url("/ok")].status == 200
    refused = {url: r.error_kind for url, r in found.items() if r.error_kind}
    assert set(refused.values()) == {"forbidden_address"}, refused
    assert len(refused) == len(links) - 1
    assert stats.failures == {"forbidden_address": len(refused)}
    assert stats.stop_reason == "finished"


async def _counter_task(
    host: str, port: int, *, task_status: trio.TaskStatus[ConnectionCounter]
) -> None:
    async with open_connection_counter(host, port) as counter:
        task_status.started(counter)
        await trio.sleep_forever()


def fake_dns(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        await trio.lowlevel.checkpoint()
        if host not in table:
            raise OSError(f"{host} does not resolve")
        return table[host]

    return Resolver(resolve)


async def test_public_name_resolving_to_loopback_is_refused() -> None:
    async with open_connection_counter() as other:
        site = Site({"/": f'<a href="http://evil.example:{other.port}/x">evil</a>'})
        async with open_site_server(site) as server:
            dns = fake_dns({"evil.example": ["127.0.0.1"]})
            found, _ = await crawl_items(server, resolver=dns)
            assert other.connections == 0
            assert found[f"http://evil.example:{other.port}/x"].error_kind == "forbidden_address"

            # allow_private lets it through
            found, stats = await crawl_items(server, resolver=dns, allow_private=True)
            assert found[f"http://evil.example:{other.port}/x"].status == 200
            assert other.connections > 0
            assert stats.failures == {}

            # and so does an explicit address:port pair
            seen = other.connections
            settings_pairs = (server.address, f"127.0.0.1:{other.port}")
            found, stats = await crawl_items(server, resolver=dns, allowed_addresses=settings_pairs)
            assert found[f"http://evil.example:{other.port}/x"].status == 200
            assert other.connections > seen


async def test_name_with_one_public_and_one_private_address_dials_the_public_one_only() -> None:
    async with open_connection_counter() as other:
        site = Site({"/": f'<a href="http://mixed.example:{other.port}/x">m</a>'})
        async with open_site_server(site) as server:
            # 192.0.2.1 is documentation space: not public either, so nothing is dialled
            dns = fake_dns({"mixed.example": ["192.0.2.1", "127.0.0.1"]})
            found, _ = await crawl_items(server, resolver=dns)
    assert other.connections == 0
    assert found[f"http://mixed.example:{other.port}/x"].error_kind == "forbidden_address"


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/_x", "data:,x"]
)
async def test_redirect_to_another_scheme_is_refused(location: str) -> None:
    site = Site({"/": '<a href="/go">go</a>'})
    site.add("/go", Response(status=302, headers=(("location", location),)))
    async with open_site_server(site) as server:
        found, stats = await crawl_items(server)
    assert found[server.url("/go")].error_kind == "bad_scheme"
    assert stats.failures == {"bad_scheme": 1}


async def test_crawl_with_default_guard_refuses_an_unlisted_loopback_seed_port() -> None:
    """Sanity: a crawl that names one server does not reach another through a link."""
    async with open_connection_counter() as other:
        site = Site({"/": html_page(f'<a href="{other.origin}/">o</a>').body.decode()})
        async with open_site_server(site) as server:
            settings = loopback_settings(server, scope="any", max_retries=0)
            with trio.fail_after(20):
                stats = await crawl(GenericSpider(start_urls=(server.url("/"),)), settings)
    assert other.connections == 0
    assert stats.failures == {"forbidden_address": 1}
