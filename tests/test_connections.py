"""The fetcher's keep-alive connections (``_connections.py``), over real loopback sockets.

The server is the test kit's :class:`~trio_crawler.testing.Site`, served by its own
connection handler behind a counter of TCP connections (open and accepted). Its routes:
``/close`` answers with ``Connection: close``, ``/hangup`` closes the connection after a
whole response, ``/big`` is 1 MiB, anything else a short page.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpcore
import pytest
import trio
import trio.testing
from hostile import head, raw, raw_server

from trio_crawler._exceptions import FetchError
from trio_crawler._http import AddressGuard, Fetcher, GuardedBackend, Resolver, http11
from trio_crawler._http.backend import dial
from trio_crawler._http.connections import Connections, Route, _Releasing
from trio_crawler._http.http11 import request_head
from trio_crawler._http.transport import GuardedTransport
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
    transport = GuardedTransport(
        AddressGuard(allow_private=True),
        Resolver(),
        ssl_context=ssl.create_default_context(),
        max_idle=max_idle,
        keepalive_expiry=expiry,
    )
    return transport.connections


def route(server: Counting) -> Route:
    return Route("http", "127.0.0.1", server.port)


def get(server: Counting, path: str) -> httpcore.Request:
    return httpcore.Request(
        b"GET",
        httpcore.URL(scheme=b"http", host=b"127.0.0.1", port=server.port, target=path.encode()),
        headers=[(b"Host", f"127.0.0.1:{server.port}".encode())],
    )


async def exchange(conns: Connections, server: Counting, path: str = "/a") -> bytes:
    response = await conns.exchange(route(server), get(server, path))
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
                await conns.exchange(route(server), get(server, "/a"))
            assert conns.busy_count() == 0 and conns.idle_count() == 0
            assert await exchange(conns, server) == OK
            assert conns.idle_count() == 1
            await conns.aclose()


class GatedPace:
    """A pace whose turn comes when ``gate`` is set; counts what the connection asked."""

    def __init__(self, gate: trio.Event) -> None:
        self.gate = gate
        self.readies = 0
        self.turns = 0
        self.sends = 0

    async def __call__(self) -> None:
        self.turns += 1
        await self.gate.wait()

    async def ready(self) -> None:
        self.readies += 1
        await self.gate.wait()

    def sent(self) -> None:
        self.sends += 1


async def test_a_request_paced_while_its_host_is_busy_waits_for_that_connection() -> None:
    # the host's next request comes while its previous one is still out: it waits for its
    # turn before dialling, and by then the first connection is back (no second connection)
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            conns = connections(max_idle=4)
            first = await conns.exchange(route(server), get(server, "/a"))
            assert conns.busy_count() == 1
            gate = trio.Event()
            pace = GatedPace(gate)
            request = get(server, "/b")
            request.extensions[http11.PACE] = pace
            async with trio.open_nursery() as nursery:
                results: list[bytes] = []

                async def second() -> None:
                    response = await conns.exchange(route(server), request)
                    results.append(await response.aread())
                    await response.aclose()

                nursery.start_soon(second)
                await trio.testing.wait_all_tasks_blocked()
                assert server.connections == 1  # waiting for its turn, not dialling
                assert await first.aread() == OK
                await first.aclose()
                gate.set()
            assert results == [OK]
            # it waited for the turn before dialling, and took it right before the write
            assert (pace.readies, pace.turns, pace.sends) == (1, 1, 1)
            assert (server.connections, server.requests) == (1, 2)
            await conns.aclose()


async def test_a_paced_request_to_an_idle_host_dials_at_once() -> None:
    # nothing of the host is busy: the connection is opened before the pace (the delay is
    # counted from the write, and a new connection's handshake overlaps the wait)
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            conns = connections(max_idle=4)
            gate = trio.Event()
            request = get(server, "/b")
            request.extensions[http11.PACE] = GatedPace(gate)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conns.exchange, route(server), request)
                for _ in range(100):  # the server's accept is seen after a few turns
                    if server.connections:
                        break
                    await trio.sleep(0.01)
                assert server.connections == 1 and server.requests == 0
                nursery.cancel_scope.cancel()
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
        await conns.exchange(
            Route("http", "127.0.0.1", 9), httpcore.Request(b"GET", "http://127.0.0.1:9/")
        )


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


async def test_idle_connections_close_at_once_and_the_server_sees_each_close() -> None:
    """The end of a crawl closes every idle connection without a checkpoint each (a
    thousand of them took 23-45 ms); each is closed all the same, and a busy one still
    closes the awaited way."""
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            conns = connections(max_idle=64)
            async with trio.open_nursery() as nursery:
                for i in range(20):  # 20 at once: 20 connections, then idle
                    nursery.start_soon(exchange, conns, server, f"/p{i}")
            assert server.connections == conns.idle_count() == server.open_now == 20
            idle = list(conns._lru)
            busy = await conns.exchange(route(server), get(server, "/busy"))  # body unread
            assert server.open_now == 20 and conns.idle_count() == 19
            assert isinstance(busy.stream, _Releasing)
            assert busy.stream._conn.close_now() is False  # in use: only aclose() may
            assert idle[0].close_now() is True and idle[0].is_closed()  # no await
            with trio.testing.assert_checkpoints():
                await conns.aclose()
            assert all(conn.is_closed() for conn in idle)
            await busy.aclose()
            await settle()
            assert server.open_now == 0


async def test_refused_connection_is_a_connect_failure() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            port = server.port
        async with Fetcher(settings()) as fetcher:  # the server is gone: refused
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(f"http://127.0.0.1:{port}/")
            assert info.value.kind.value == "connect"


# ------------------------------------------------------------------ the HTTP/1.1 exchange

WHOLE = head(content_type="text/html", content_length=str(len(OK))) + OK


async def raw_fetch(port: int, path: str = "/") -> tuple[int, bytes]:
    async with Fetcher(settings()) as fetcher:
        result = await fetcher.fetch(f"http://127.0.0.1:{port}{path}")
        return result.status, result.body


async def test_an_idle_connection_closed_by_the_server_as_a_request_goes_out_is_resent() -> None:
    # the server answers the first request on each connection and closes at the second, as
    # a server does when its keep-alive time runs out just as the request arrives
    with trio.fail_after(LIMIT):
        async with raw_server(lambda _, request: WHOLE if request == 1 else None) as (port, seen):
            async with Fetcher(settings()) as fetcher:
                for i in range(3):
                    result = await fetcher.fetch(f"http://127.0.0.1:{port}/p{i}")
                    assert (result.status, result.body) == (200, OK)
            # each later request went out twice: on the stale connection, then on a new one
            assert seen == [2, 2, 1]


async def test_a_close_before_any_answer_is_resent_once_only() -> None:
    with trio.fail_after(LIMIT):
        only_first = lambda conn, request: WHOLE if (conn, request) == (1, 1) else None  # noqa: E731
        async with raw_server(only_first) as (port, seen):
            async with Fetcher(settings()) as fetcher:
                assert (await fetcher.fetch(f"http://127.0.0.1:{port}/a")).status == 200
                # connection 1 closes at its second request; the resend's new connection closes
                # too: that is the server's answer, a failure, not another resend
                seen_before = list(seen)
                with pytest.raises(FetchError) as info:
                    await fetcher.fetch(f"http://127.0.0.1:{port}/b")
            assert info.value.kind.value == "reset"
            assert "Server disconnected without sending a response" in str(info.value)
            assert seen_before == [1] and seen == [2, 1]


async def test_a_close_on_a_new_connection_is_not_resent() -> None:
    with trio.fail_after(LIMIT):
        async with raw_server(lambda *_: None) as (port, seen):
            with pytest.raises(FetchError) as info:
                await raw_fetch(port)
            assert info.value.kind.value == "reset"
            assert seen == [1]


async def test_informational_answers_are_skipped() -> None:
    early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\n"
    with trio.fail_after(LIMIT):
        async with raw_server(lambda *_: early + WHOLE) as (port, seen):
            async with Fetcher(settings()) as fetcher:
                for path in ("/a", "/b"):
                    result = await fetcher.fetch(f"http://127.0.0.1:{port}{path}")
                    assert (result.status, result.body) == (200, OK)
            assert seen == [2]  # and the connection was kept


async def test_an_unasked_switching_protocols_is_a_protocol_failure() -> None:
    switch = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\nnot http"
    with trio.fail_after(LIMIT):
        async with raw_server(lambda conn, _: switch if conn == 1 else WHOLE) as (port, seen):
            async with Fetcher(settings()) as fetcher:
                with pytest.raises(FetchError) as info:
                    await fetcher.fetch(f"http://127.0.0.1:{port}/a")
                assert info.value.kind.value == "protocol"
                second = await fetcher.fetch(f"http://127.0.0.1:{port}/b")
                assert (second.status, second.body) == (200, OK)
            assert len(seen) == 2  # the switched connection was not reused


async def test_chunked_and_read_to_close_bodies() -> None:
    chunked = head(transfer_encoding="chunked") + b"3\r\n<p>\r\n6\r\nok</p>\r\n0\r\n\r\n"
    to_close = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\r\n" + OK
    with trio.fail_after(LIMIT):
        async with raw_server(lambda conn, _: chunked if conn == 1 else None) as (port, _):
            assert await raw_fetch(port) == (200, OK)
        async with raw_server(lambda *_: to_close, close_after=True) as (port, _):
            assert await raw_fetch(port) == (200, OK)


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        (b"/a b", []),
        (b"/a\r\nX-Injected: 1", []),
        (b"/", [(b"X-Ok", b"fine\r\nX-Injected: 1")]),
        (b"/", [(b"X-Ok", b"nul\x00")]),
        (b"/", [(b"Bad Name", b"v")]),
        (b"/", [(b"X-Ok", b" leading space")]),
    ],
)
def test_a_request_that_could_be_split_is_refused(
    target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(httpcore.LocalProtocolError):
        request_head(b"GET", target, headers)


def test_a_request_head() -> None:
    head_bytes = request_head(b"GET", b"/p?q=1", [(b"Host", b"a.example"), (b"X-E", b"")])
    assert head_bytes == b"GET /p?q=1 HTTP/1.1\r\nHost: a.example\r\nX-E: \r\n\r\n"


def test_each_field_is_checked_once_and_a_bad_one_every_time() -> None:
    """A crawl sends the same few fields again and again: each is checked once (remembered,
    at most a bounded number); a field that failed is never remembered."""
    good, bad = (b"X-Ok", b"1"), (b"X-Ok", b"1\r\nX-Injected: 1")
    for _ in range(3):
        assert request_head(b"GET", b"/", [good]).endswith(b"X-Ok: 1\r\n\r\n")
        with pytest.raises(httpcore.LocalProtocolError):
            request_head(b"GET", b"/", [good, bad])
    for i in range(http11._CHECKED_MAX + 10):
        request_head(b"GET", b"/", [(b"X-N", str(i).encode())])
    assert len(http11._CHECKED) <= http11._CHECKED_MAX
    with pytest.raises(httpcore.LocalProtocolError):
        request_head(b"GET", b"/", [bad])


async def test_http_1_0_keeps_the_connection_only_when_it_says_keep_alive() -> None:
    plain = b"HTTP/1.0 200 OK\r\ncontent-length: 9\r\n\r\n" + OK
    kept = b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 9\r\n\r\n" + OK
    with trio.fail_after(LIMIT):
        for reply, connections_used in ((plain, 2), (kept, 1)):
            async with raw_server(lambda *_, r=reply: r) as (port, seen):
                async with Fetcher(settings()) as fetcher:
                    for path in ("/a", "/b"):
                        result = await fetcher.fetch(f"http://127.0.0.1:{port}{path}")
                        assert (result.status, result.body) == (200, OK)
                        assert result.http_version == "HTTP/1.0"
                assert len(seen) == connections_used


async def test_bodiless_statuses_and_trailers() -> None:
    replies = {
        1: b"HTTP/1.1 204 No Content\r\n\r\n",
        2: b"HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n",
        3: head(transfer_encoding="chunked") + b"9\r\n" + OK + b"\r\n0\r\nx-trailer: t\r\n\r\n",
        4: WHOLE,
    }
    with trio.fail_after(LIMIT):
        async with raw_server(lambda _, request: replies[request]) as (port, seen):
            async with Fetcher(settings()) as fetcher:
                got = [await fetcher.fetch(f"http://127.0.0.1:{port}/{i}") for i in range(4)]
            assert [(r.status, r.body) for r in got] == [
                (204, b""),
                (304, b""),
                (200, OK),
                (200, OK),
            ]
            assert "x-trailer" not in got[2].headers
            assert seen == [4]  # one connection carried them all


async def test_a_head_dripped_byte_by_byte() -> None:
    reply = (
        b"HTTP/1.1 200 Fine Thanks\r\ncontent-type: text/html\r\nx-long: "
        + b"v" * 40
        + b"\r\ncontent-length: 9\r\n\r\n"
        + OK
    )
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            for i in range(len(reply)):
                await stream.send_all(reply[i : i + 1])
                await trio.sleep(0.001)
            await trio.sleep(1)

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, listeners)
            port = listeners[0].socket.getsockname()[1]
            async with Fetcher(settings()) as fetcher:
                result = await fetcher.fetch(f"http://127.0.0.1:{port}/")
            assert (result.status, result.reason, result.body) == (200, "Fine Thanks", OK)
            assert result.headers["x-long"] == "v" * 40
            nursery.cancel_scope.cancel()


async def test_lines_ended_by_a_bare_lf() -> None:
    reply = b"HTTP/1.1 200 OK\ncontent-type: text/html\ncontent-length: 9\n\n" + OK
    with trio.fail_after(LIMIT):
        async with raw_server(lambda *_: reply) as (port, seen):
            async with Fetcher(settings()) as fetcher:
                for path in ("/a", "/b"):
                    result = await fetcher.fetch(f"http://127.0.0.1:{port}{path}")
                    assert (result.status, result.body) == (200, OK)
                    assert result.headers["content-type"] == "text/html"
            assert seen == [2]


async def test_a_closed_stream_refuses_reads_and_writes() -> None:
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            backend = GuardedBackend(AddressGuard(allow_private=True), Resolver())
            stream = await backend.connect_tcp("127.0.0.1", server.port)
            await stream.aclose()
            with pytest.raises(httpcore.ReadError):
                await stream.read(10)
            with pytest.raises(httpcore.WriteError):
                await stream.write(b"GET / HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
async def test_dial_connects_to_one_address(ip: str) -> None:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family) as listener:
        listener.bind((ip, 0))
        listener.listen(8)  # the kernel completes the handshake: no accept needed
        with trio.fail_after(LIMIT):
            stream = await dial(ip, listener.getsockname()[1], timeout=5.0)
        sock = stream.get_extra_info("socket")
        assert sock.family == family
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert sock.getpeername()[:2] == listener.getsockname()[:2]
        await stream.aclose()


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_refused_dial_is_a_connect_error_and_closes_its_socket() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once it is closed
    before = _open_descriptors()
    with trio.fail_after(LIMIT), pytest.raises(httpcore.ConnectError, match=f"127.0.0.1:{port}"):
        await dial("127.0.0.1", port, timeout=5.0)
    assert _open_descriptors() == before


async def test_a_dial_that_never_completes_times_out_and_closes_its_socket() -> None:
    # a listener whose queue holds one connection, and holds it: the next handshake's SYN
    # is dropped, so that connect never completes
    with socket.socket() as listener, socket.socket() as first:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        first.connect(listener.getsockname())
        before = _open_descriptors()
        with trio.fail_after(LIMIT), pytest.raises(httpcore.ConnectTimeout):
            await dial("127.0.0.1", listener.getsockname()[1], timeout=0.3)
        assert _open_descriptors() == before


async def _resolve_to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


async def test_a_broad_crawl_keeps_a_connection_for_every_host() -> None:
    """Issue 20: the crawl kept ``concurrency + 16`` idle connections, so over many hosts a
    host's connection was gone before its next request (1.04 requests per connection over
    2,000 hosts). Now ``keepalive_connections`` (4,096) are kept."""
    with trio.fail_after(LIMIT):
        async with counting_server() as server:
            resolver = Resolver(_resolve_to_loopback)
            async with Fetcher(settings(), resolver=resolver) as fetcher:
                for _ in range(3):
                    for i in range(40):
                        result = await fetcher.fetch(f"http://h{i}.test:{server.port}/a")
                        assert result.status == 200
            assert server.connections == 40  # one per host, each used 3 times
            no_idle = settings(keepalive_connections=0)
            async with Fetcher(no_idle, resolver=resolver) as fetcher:
                for i in range(5):
                    await fetcher.fetch(f"http://h{i}.test:{server.port}/a")
                    await fetcher.fetch(f"http://h{i}.test:{server.port}/a")
            assert server.connections == 40 + 10
