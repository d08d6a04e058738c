"""Test your spiders against real HTTP on loopback, with no network and no mocks.

:func:`open_site_server` serves a :class:`Site` (a map of paths to responses) on
``127.0.0.1`` at a free port, inside your Trio test, and records every request it sees::

    async def test_my_spider():
        site = Site({"/": html_page("<a href='/a'>a</a>"), "/a": html_page("hello")})
        async with open_site_server(site) as server:
            stats = await crawl(
                MySpider(), loopback_settings(server), start_urls=[server.url("/")]
            )
        assert stats.pages_ok == 2
        assert [r.path for r in server.requests] == ["/robots.txt", "/", "/a"]

:func:`loopback_settings` returns :class:`~trio_crawler.Settings` that allow exactly this
server's ``address:port`` through the crawler's address guard (which stays on in tests) and
drop the politeness delay. Handlers may be plain :class:`Response` values, or callables
(sync or async) taking the :class:`RecordedRequest` and returning a :class:`Response`; a
``RawHandler`` gets the raw TCP stream to misbehave at will (hostile-server tests).

The server speaks HTTP/1.1 with keep-alive over h11 (a dependency of httpx).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import h11
import trio

from ._settings import Settings

__all__ = [
    "RawHandler",
    "RecordedRequest",
    "Response",
    "Site",
    "SiteServer",
    "html_page",
    "loopback_settings",
    "open_site_server",
    "serve_site",
]


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received. ``time`` is ``trio.current_time()`` at arrival."""

    method: str
    target: str  # path and query as sent
    headers: tuple[tuple[str, str], ...]
    time: float
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        low = name.lower()
        for key, value in self.headers:
            if key == low:
                return value
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """What a route answers. ``delay`` waits before the headers; ``drip`` sends the body
    ``drip_chunk`` bytes at a time, ``drip`` seconds apart (a slow or hostile server)."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("content-type", "text/html; charset=utf-8"),)
    delay: float = 0.0
    drip: float = 0.0
    drip_chunk: int = 1


Handler: TypeAlias = Callable[[RecordedRequest], "Response | Awaitable[Response]"]
RawHandler: TypeAlias = Callable[[trio.SocketStream, RecordedRequest], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class _Raw:
    handler: RawHandler


def html_page(body: str, *, title: str | None = None, status: int = 200) -> Response:
    """An HTML :class:`Response` wrapping ``body`` in a minimal document."""
    head = f"<title>{title}</title>" if title else ""
    doc = f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"
    return Response(status=status, body=doc.encode())


def redirect(location: str, status: int = 301) -> Response:
    return Response(status=status, headers=(("location", location), ("content-length", "0")))


class Site:
    """Routes by exact target (path + query) first, then by path. Unknown paths answer 404,
    ``/robots.txt`` included unless a route gives one."""

    def __init__(
        self,
        routes: Mapping[str, Response | Handler | str] | None = None,
        *,
        default: Response | Handler | None = None,
    ) -> None:
        self.routes: dict[str, Response | Handler | _Raw] = {}
        for path, route in (routes or {}).items():
            self.add(path, route)
        self.default: Response | Handler = default or Response(
            status=404, body=b"not found", headers=(("content-type", "text/plain"),)
        )

    def add(self, path: str, route: Response | Handler | str) -> None:
        self.routes[path] = html_page(route) if isinstance(route, str) else route

    def add_raw(self, path: str, handler: RawHandler) -> None:
        """Give ``path`` a handler that owns the TCP stream (it must close or leave it)."""
        self.routes[path] = _Raw(handler)

    def route(self, target: str) -> Response | Handler | _Raw:
        found = self.routes.get(target)
        if found is None:
            found = self.routes.get(target.split("?", 1)[0])
        return found if found is not None else self.default


class SiteServer:
    """A running server: its address, its URLs and the requests it has seen."""

    def __init__(self, site: Site, host: str, port: int) -> None:
        self.site = site
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []

    @property
    def address(self) -> str:
        """``host:port``, the form :attr:`Settings.allowed_addresses` takes."""
        return f"{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"{self.origin}{path}"

    def paths(self) -> list[str]:
        return [r.target for r in self.requests]

    def count(self, target: str) -> int:
        return sum(1 for r in self.requests if r.target == target)


async def _respond(stream: trio.SocketStream, conn: h11.Connection, resp: Response) -> None:
    if resp.delay:
        await trio.sleep(resp.delay)
    headers = list(resp.headers)
    names = {k.lower() for k, _ in headers}
    if "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("content-length", str(len(resp.body))))
    data = conn.send(h11.Response(status_code=resp.status, headers=headers))
    assert data is not None
    await stream.send_all(data)
    if resp.drip:
        step = max(1, resp.drip_chunk)
        for i in range(0, len(resp.body), step):
            chunk = conn.send(h11.Data(data=resp.body[i : i + step]))
            assert chunk is not None
            await stream.send_all(chunk)
            await trio.sleep(resp.drip)
    elif resp.body:
        chunk = conn.send(h11.Data(data=resp.body))
        assert chunk is not None
        await stream.send_all(chunk)
    end = conn.send(h11.EndOfMessage())
    assert end is not None
    await stream.send_all(end)


async def _handle_connection(server: SiteServer, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.DONE:
                    return
                continue
            if isinstance(event, (h11.ConnectionClosed,)) or event is h11.PAUSED:
                if event is h11.PAUSED and conn.our_state is h11.DONE:
                    conn.start_next_cycle()
                    continue
                return
            if not isinstance(event, h11.Request):
                continue
            body = b""
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    more = await stream.receive_some(65536)
                    if not more:
                        return
                    conn.receive_data(more)
                    continue
                if isinstance(ev, h11.Data):
                    body += ev.data
                    continue
                break
            recorded = RecordedRequest(
                method=event.method.decode(),
                target=event.target.decode("latin-1"),
                headers=tuple(
                    (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers
                ),
                time=trio.current_time(),
                body=body,
            )
            server.requests.append(recorded)
            route = server.site.route(recorded.target)
            if isinstance(route, _Raw):
                await route.handler(stream, recorded)
                return
            if isinstance(route, Response):
                resp = route
            else:
                produced = route(recorded)
                resp = await produced if inspect.isawaitable(produced) else produced
            await _respond(stream, conn, resp)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        with trio.move_on_after(1) as cleanup:
            cleanup.shield = True
            await stream.aclose()


async def serve_site(
    site: Site,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[SiteServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``site`` until cancelled. ``await nursery.start(serve_site, site)`` gives the
    :class:`SiteServer` once it listens."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    sockname = listeners[0].socket.getsockname()
    server = SiteServer(site, host, int(sockname[1]))

    async def handler(stream: trio.SocketStream) -> None:
        await _handle_connection(server, stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(server)


@asynccontextmanager
async def open_site_server(site: Site, *, host: str = "127.0.0.1") -> AsyncIterator[SiteServer]:
    """Serve ``site`` on loopback for the duration of the ``async with`` block."""
    async with trio.open_nursery() as nursery:
        server: SiteServer = await nursery.start(functools.partial(serve_site, site, host=host))
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


def loopback_settings(*servers: SiteServer, **overrides: Any) -> Settings:
    """Settings for crawling test servers: their addresses allowed through the address guard,
    no politeness delay, short timeouts and quick retries. ``overrides`` win."""
    base: dict[str, Any] = {
        "allowed_addresses": tuple(s.address for s in servers),
        "per_host_delay": 0.0,
        "per_host_concurrency": 8,
        "connect_timeout": 5.0,
        "read_timeout": 5.0,
        "request_timeout": 10.0,
        "retry_backoff": 0.01,
        "retry_backoff_max": 0.1,
    }
    base.update(overrides)
    return Settings(**base)


def site_from_links(graph: Mapping[str, Iterable[str]], *, titles: bool = True) -> Site:
    """A :class:`Site` where each path's page links to the given hrefs."""
    site = Site()
    for path, hrefs in graph.items():
        body = "".join(f'<a href="{h}">{h}</a> ' for h in hrefs)
        site.add(path, html_page(body, title=path if titles else None))
    return site
