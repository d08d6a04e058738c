"""The fetcher's keep-alive connections (``_connections.py``), over real loopback sockets.

The server is the test kit's :class:`~trio_crawler.testing.Site`, served by its own
connection handler behind a counter of TCP connections (open and accepted). Its routes:
``/close`` answers with ``Connection: close``, ``/hangup`` closes the connection after a
whole response, ``/big`` is 1 MiB, anything else a short page.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpcore
import pytest
import trio
from hostile import head, raw

from trio_crawler._connections import Connections
from trio_crawler._exceptions import FetchError
from trio_crawler._fetcher import AddressGuard, Fetcher, GuardedBackend, Resolver
from trio_crawler._settings import Settings
from trio_crawler.testing import Response, Site, SiteServer
from trio_crawler.testing import _handle_connection as handle_http_connection

LIMIT = 20  # seconds, around every test
OK = b"<p>ok</p>"


@dataclasses.dataclass
class Counting:
    http: SiteServer
    connections: int = 0
    open_now: int = 0

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def requests(self) -> int:
        return len(self.http.requests)

    def url(self, path: str = "/") -> str:
        return self.http.url(path)

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self.open_now += 1
        try:
            await handle_http_connection(self.http, stream)
        finally:
            self.open_now -= 1


def _site() -> Site:
    page = (("content-type", "text/html"),)
    site = Site(default=Response(body=OK, headers=page))
    site.add("/close", Response(body=OK, headers=(*page, ("connection", "close"))))
    site.add("/big", Response(body=b"x" * (1 << 20), headers=page))
    whole = head(content_type="text/html", content_length=str(len(OK))) + OK
    site.add_raw("/hangup", raw(whole, then="close"))
    return site


@asynccontextmanager
async def counting_server() -> AsyncIterator[Counting]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    server = Counting(SiteServer(_site(), "127.0.0.1", listeners[0].socket.getsockname()[1]))
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.handle, listeners)
        yield server
        nursery.cancel_scope.cancel()


def settings(**overrides: object) -> Settings:
    return Settings(allow_private=True, concurrency=4, **overrides)  # type: ignore[arg-type]


async def settle() -> None:
    """Let the server's tasks see closed connections."""
    for _ in range(50):
        await trio.sleep(0.01)


def connections(*, max_idle: int, expiry: float = 30.0) -> Connections:
    backend = GuardedBackend(AddressGuard(allow_private=True), Resolver())
    return Connections(
        backend,
        ssl_context=ssl.create_default_context(),
        max_idle=max_idle,
        keepalive_expiry=expiry,
    )


def get(server: Counting, path: str) -> httpcore.Request:
    return httpcore.Request(
        b"GET",
        httpcore.URL(scheme=b"http", host=b"127.0.0.1", port=server.port, target=path.encode()),
        headers=[(b"Host", f"127.0.0.1:{server.port}".encode())],
    )


async def exchange(conns: Connections, server: Counting, path: str = "/a") -> bytes:
    response = await conns.exchange(get(server, path))
    try:
        return await response.aread()
    finally:
        await response.aclose()


async def test_keep_alive_one_connection_for_sequential_requests() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server, Fetcher(settings()) as fetcher:
            for i in range(5):
                result = await fetcher.fetch(server.url(f"/p{i}"))
                assert result.status == 200 and result.body == OK
            assert (server.connections, server.requests) == (1, 5)


async def test_concurrent_requests_open_connections_then_reuse_them() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server, Fetcher(settings()) as fetcher:
            for _ in range(3):
                async with trio.open_nursery() as nursery:
                    for i in range(4):
                        nursery.start_soon(fetcher.fetch, server.url(f"/p{i}"))
            assert server.requests == 12
            assert server.connections == 4


async def test_connection_close_is_not_reused() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server, Fetcher(settings()) as fetcher:
            await fetcher.fetch(server.url("/close"))
            await fetcher.fetch(server.url("/close"))
            await fetcher.fetch(server.url("/a"))
            assert server.connections == 3


async def test_server_hanging_up_an_idle_connection_costs_no_failure() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server, Fetcher(settings()) as fetcher:
            await fetcher.fetch(server.url("/hangup"))
            await settle()  # the server has closed it: the idle check sees it
            result = await fetcher.fetch(server.url("/a"))
            assert result.status == 200
            assert server.connections == 2


async def test_a_truncated_body_drops_its_connection() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server, Fetcher(settings(max_body_size=1000)) as fetcher:
            result = await fetcher.fetch(server.url("/big"))
            assert result.truncated and len(result.body) == 1000
            result = await fetcher.fetch(server.url("/a"))
            assert result.body == OK
            assert server.connections == 2


async def test_a_cancelled_request_leaves_nothing_busy() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            conns = connections(max_idle=4)
            with trio.move_on_after(0):
                await conns.exchange(get(server, "/a"))
            assert conns.busy_count() == 0 and conns.idle_count() == 0
            assert await exchange(conns, server) == OK
            assert conns.idle_count() == 1
            await conns.aclose()


async def test_idle_connections_are_bounded_least_recently_used_first() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as one, counting_server() as two:
            conns = connections(max_idle=1)
            await exchange(conns, one)
            await exchange(conns, two)  # one's idle connection is closed for it
            await settle()
            assert conns.idle_count() == 1
            assert (one.open_now, two.open_now) == (0, 1)
            await exchange(conns, two)
            await exchange(conns, one)
            assert (one.connections, two.connections) == (2, 1)
            await conns.aclose()
            await settle()
            assert (one.open_now, two.open_now) == (0, 0)


async def test_keep_alive_expiry() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            conns = connections(max_idle=4, expiry=0.05)
            await exchange(conns, server)
            await trio.sleep(0.1)
            await exchange(conns, server)
            assert server.connections == 2
            await conns.aclose()


async def test_closed_connections_refuse_requests() -> None:
    conns = connections(max_idle=1)
    await conns.aclose()
    with pytest.raises(RuntimeError):
        await conns.exchange(httpcore.Request(b"GET", "http://127.0.0.1:9/"))


async def test_fetcher_closes_every_connection() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            async with Fetcher(settings()) as fetcher:
                async with trio.open_nursery() as nursery:
                    for i in range(4):
                        nursery.start_soon(fetcher.fetch, server.url(f"/p{i}"))
                assert server.open_now == 4
            await settle()
            assert server.open_now == 0
            with pytest.raises(RuntimeError):
                await fetcher.fetch(server.url("/a"))


async def test_refused_connection_is_a_connect_failure() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            port = server.port
        async with Fetcher(settings()) as fetcher:  # the server is gone: refused
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(f"http://127.0.0.1:{port}/")
            assert info.value.kind.value == "connect"
