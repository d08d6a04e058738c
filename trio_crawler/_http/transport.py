"""The transport: one request's route, below the fetcher and above the connections.

:func:`split_target` turns a URL into what a request needs of it (:class:`Target`).
:class:`GuardedTransport` sends the request: to the crawl's keep-alive connections
(:mod:`.connections`), or through a proxy (:mod:`.proxy`); :class:`HttpxExchanger` lets any
httpx transport stand in (the in-memory transport of the timing tests). Each returns
httpcore's response with its body still to be read; the fetcher reads and decodes it.

Direct and proxied requests share one set of keep-alive connections and one HTTP/1.1
implementation: a proxy is only a different way of opening a route's stream.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

import httpcore
import httpx
import trio

from .._urls import DEFAULT_PORTS, request_parts
from .backend import Forbidden, GuardedBackend, close_quietly, start_tls
from .connections import Connections, Route
from .dns import Resolver
from .guard import AddressGuard
from .http11 import PACE
from .proxy import ProxyRoutes, ProxyTarget, open_connect_tunnel, open_socks5_tunnel
from .tls import TlsSessions


class Target(NamedTuple):
    """What a request needs of its URL: split once, in :func:`split_target`."""

    url: str  # the normalised URL: what is sent
    scheme: str  # "http" or "https"
    host: str  # ASCII (IDNA), IPv4 as a dotted quad, IPv6 without brackets
    port: int | None  # None: the scheme's default
    target: bytes  # path and query, exactly as sent
    netloc: bytes  # the Host header: host, and the port when it is not the default


def split_target(url: str) -> Target:
    """Split an http(s) URL for a request: the request a browser sends for it
    (:func:`~trio_crawler._urls.request_parts`, the URL Standard through ada). Raises
    ``ValueError`` for anything else (a ``bad_url`` failure)."""
    return Target._make(request_parts(url))


#: An extension key: the transport already decoded the body (an in-memory httpx transport).
DECODED = "trio_crawler.decoded"


#: Seconds an idle keep-alive connection is kept.
KEEPALIVE_EXPIRY = 30.0


class Exchanger(Protocol):
    """Sends one request and returns httpcore's response, its body still to be read."""

    async def exchange(
        self, target: Target, headers: list[tuple[bytes, bytes]], extensions: dict[str, Any]
    ) -> httpcore.Response: ...

    async def aclose(self) -> None: ...


class GuardedTransport:
    """Sends a request on the crawl's keep-alive connections (:class:`Connections`): directly,
    or through the proxy ``routes`` choose for its host (:mod:`.proxy`).

    Every stream is dialled by a :class:`GuardedBackend`: for a direct connection the
    target's addresses pass the guard; for a proxied one only the proxy's own ``host:port``
    may be dialled, and the target's *name* is checked instead (all its addresses must
    pass), since the proxy does the connecting. httpcore's error types are left as they are
    and translated by :meth:`Fetcher.fetch`. With ``capture_ip`` a direct response's
    extensions carry ``"server_ip"``.
    """

    def __init__(
        self,
        guard: AddressGuard,
        resolver: Resolver,
        *,
        ssl_context: ssl.SSLContext,
        max_idle: int,
        routes: ProxyRoutes | None = None,
        capture_ip: bool = False,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        self._guard = guard
        self._resolver = resolver
        ssl_context.set_alpn_protocols(["http/1.1"])
        self._ssl_context = ssl_context
        self._routes = routes
        self._proxies = {t.key: t for t in routes.targets()} if routes is not None else {}
        self._capture_ip = capture_ip
        self._backend = GuardedBackend(guard, resolver)
        self.tls_sessions = TlsSessions()
        self._proxy_backends: dict[str, GuardedBackend] = {}
        self.connections = Connections(
            self._open_stream, max_idle=max_idle, keepalive_expiry=keepalive_expiry
        )

    async def _check_target(self, host: str, port: int) -> None:
        """Through a proxy only the target's name can be checked: every address must pass."""
        if self._guard.allow_private:
            return
        ips = await self._resolver(host, port)
        refused = [ip for ip in ips if not self._guard.is_allowed(ip, port, host=host)]
        if refused:
            raise Forbidden(
                f"refusing to fetch {host}:{port} through a proxy ({', '.join(refused)})"
            )

    async def exchange(
        self, target: Target, headers: list[tuple[bytes, bytes]], extensions: dict[str, Any]
    ) -> httpcore.Response:
        proxy = None if self._routes is None else self._routes.route(target.scheme, target.host)
        port = target.port or DEFAULT_PORTS[target.scheme]
        path = target.target
        if proxy is None:
            route = Route(target.scheme, target.host, port)
        else:
            await self._check_target(target.host, port)
            route = Route(target.scheme, target.host, port, proxy.key)
            if target.scheme == "http" and proxy.forwards_http:
                # forwarded: the proxy reads the absolute URL, and its own credentials
                path = b"http://" + target.netloc + target.target
                auth = proxy.authorization()
                if auth is not None:
                    headers = [*headers, (b"Proxy-Authorization", auth)]
        req = _CrawlRequest(
            _CrawlUrl(target.scheme.encode("ascii"), target.host.encode("ascii"), port, path),
            headers,
            extensions,
        )
        resp = await self.connections.exchange(route, req)
        if target.scheme == "https":
            stream = resp.extensions.get("network_stream")
            if stream is not None:
                self.tls_sessions.keep(route, stream.get_extra_info("ssl_object"))
        if self._capture_ip and proxy is None:
            resp.extensions = {**resp.extensions, "server_ip": _peer_ip(resp.extensions)}
        return resp

    async def _open_stream(
        self,
        route: Route,
        timeout: float | None,  # noqa: ASYNC109  (the connect timeout, per step)
    ) -> httpcore.AsyncNetworkStream:
        """A new stream for ``route``: dialled, tunnelled through its proxy, TLS for https."""
        if not route.via:
            stream = await self._backend.connect_tcp(route.host, route.port, timeout=timeout)
        else:
            proxy = self._proxies[route.via]
            stream = await self._proxy_backend(proxy).connect_tcp(
                proxy.host, proxy.port, timeout=timeout
            )
            try:
                if proxy.scheme == "https":
                    stream = await start_tls(stream, self._ssl_context, proxy.host, timeout)
                if proxy.scheme.startswith("socks"):
                    await open_socks5_tunnel(stream, proxy, route.host, route.port, timeout)
                elif route.scheme == "https":
                    await open_connect_tunnel(stream, proxy, route.host, route.port, timeout)
                else:
                    return stream  # forwarded: the connection is the proxy's own
            except BaseException:
                with trio.CancelScope(shield=True):
                    await close_quietly(stream)
                raise
        if route.scheme != "https":
            return stream
        session = self.tls_sessions.get(route)
        return await start_tls(stream, self._ssl_context, route.host, timeout, session)

    def _proxy_backend(self, proxy: ProxyTarget) -> GuardedBackend:
        backend = self._proxy_backends.get(proxy.key)
        if backend is None:
            backend = self._proxy_backends[proxy.key] = GuardedBackend(
                self._guard, self._resolver, proxy=(proxy.host, proxy.port)
            )
        return backend

    async def aclose(self) -> None:
        """Closes every connection, idle or busy."""
        await self.connections.aclose()


#: An empty body as httpcore gives a request without one (it yields nothing, every time).
_NO_BODY = httpcore.Request(b"GET", b"http://localhost/").stream


class _CrawlUrl(httpcore.URL):
    """A request's ``httpcore.URL`` from parts that are bytes already (the target's parsed
    URL), without httpcore's constructor checking each again."""

    def __init__(self, scheme: bytes, host: bytes, port: int | None, target: bytes) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.target = target


class _CrawlRequest(httpcore.Request):
    """The crawler's GET as an ``httpcore.Request``, without httpcore's constructor checking
    the URL and every field again (3.9 us of each request): the head is checked as it is
    written (:func:`~.http11.request_head`)."""

    def __init__(
        self, url: httpcore.URL, headers: list[tuple[bytes, bytes]], extensions: dict[str, Any]
    ) -> None:
        self.method = b"GET"
        self.url = url
        self.headers = headers
        self.stream = _NO_BODY
        self.extensions = extensions


class HttpxExchanger:
    """An httpx transport (``httpx.MockTransport`` in the timing tests) as an Exchanger."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def exchange(
        self, target: Target, headers: list[tuple[bytes, bytes]], extensions: dict[str, Any]
    ) -> httpcore.Response:
        pace = extensions.pop(PACE, None)
        if pace is not None:
            await pace()
            pace.sent()  # an in-memory transport has no write to wait for
        request = httpx.Request("GET", target.url, headers=headers, extensions=extensions)
        response = await self._transport.handle_async_request(request)
        extensions = dict(response.extensions)
        if response.is_stream_consumed:
            # an in-memory transport hands over a read (and decoded) body
            extensions[DECODED] = True
            content: Any = response.content
        else:
            content = _ResponseStream(response.stream)
        extensions.setdefault("reason_phrase", response.reason_phrase.encode("ascii", "ignore"))
        return httpcore.Response(
            response.status_code,
            headers=response.headers.raw,
            content=content,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()


class _ResponseStream:
    """An httpx response stream as an httpcore response body (iterable, closable)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> Any:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


def _peer_ip(extensions: Mapping[str, Any]) -> str | None:
    stream = extensions.get("network_stream")
    if stream is None:
        return None
    try:
        addr = stream.get_extra_info("server_addr")
    except (OSError, AssertionError, AttributeError):
        return None
    return str(addr[0]) if isinstance(addr, tuple) and addr else None
