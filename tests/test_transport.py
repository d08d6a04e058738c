"""Transport features against loopback servers: HTTP and SOCKS5 proxies, TLS with a trustme CA
(verification, extra CA, verification off, client certificates), and what the fetcher keeps
for a WARC (read back with warcio's own reader).

The proxies are written here: :func:`open_http_proxy` forwards absolute-form requests and
tunnels ``CONNECT``; :func:`open_socks5_proxy` speaks SOCKS5 without authentication, CONNECT
only. Both record what they are asked for, and both resolve names from a table of their own
(``names``), so a test can give the crawler's resolver and the proxy's different answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ada_url
import h11
import pytest
import trio
import trustme
from warcio.archiveiterator import ArchiveIterator

from trio_crawler import SettingsError, crawl
from trio_crawler._exceptions import FailureKind, FetchError
from trio_crawler._http import Fetcher, FetchResult, Resolver, failure_request, to_exchange
from trio_crawler._http.proxy import ProxyRoutes, ProxyTarget
from trio_crawler._http.transport import split_target
from trio_crawler._settings import Settings
from trio_crawler._warc import WarcWriter
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import (
    RecordedRequest,
    Response,
    Site,
    SiteServer,
    html_page,
    loopback_settings,
    open_site_server,
)
from trio_crawler.testing import _handle_connection as handle_http_connection

LIMIT = 20  # seconds, around every test that does I/O

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, h11.ProtocolError)


# ------------------------------------------------------------------ loopback proxies


@dataclasses.dataclass
class Proxy:
    """A running test proxy. ``requests``: ``(method, target)`` for HTTP, ``(host, port)`` of
    each CONNECT for SOCKS5. ``headers``: the headers of each HTTP request, in order."""

    scheme: str
    names: dict[str, str]
    port: int = 0
    requests: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    headers: list[dict[str, str]] = dataclasses.field(default_factory=list)
    refuse: set[str] = dataclasses.field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def resolve(self, host: str) -> str:
        return self.names.get(host, host)


async def _pipe(a: trio.abc.Stream, b: trio.abc.Stream) -> None:
    """Copy both ways until either side ends."""

    async def copy(src: trio.abc.Stream, dst: trio.abc.Stream) -> None:
        with contextlib.suppress(*_GONE):
            while data := await src.receive_some(65536):
                await dst.send_all(data)
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(copy, a, b)
        nursery.start_soon(copy, b, a)


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(65536)))


async def _forward(proxy: Proxy, target: str, headers: list[tuple[bytes, bytes]]) -> Any:
    """Send an absolute-form GET on as an origin-form one; the status, headers and body."""
    parts = urlsplit(target)
    assert parts.scheme == "http" and parts.hostname and parts.port
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    skip = {b"connection", b"proxy-connection", b"proxy-authorization", b"keep-alive"}
    kept = [(k, v) for k, v in headers if k.lower() not in skip] + [(b"connection", b"close")]
    upstream = await trio.open_tcp_stream(proxy.resolve(parts.hostname), parts.port)
    async with upstream:
        conn = h11.Connection(h11.CLIENT)
        await upstream.send_all(conn.send(h11.Request(method="GET", target=path, headers=kept)))
        await upstream.send_all(conn.send(h11.EndOfMessage()))
        response = await _next_event(conn, upstream)
        body = b""
        while isinstance(event := await _next_event(conn, upstream), h11.Data):
            body += event.data
    drop = {b"connection", b"transfer-encoding", b"content-length", b"keep-alive"}
    out = [(k, v) for k, v in response.headers if k.lower() not in drop]
    return response.status_code, [*out, (b"content-length", str(len(body)).encode())], body


async def _http_proxy_connection(proxy: Proxy, client: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    with contextlib.suppress(*_GONE):
        async with client:
            while True:
                request = await _next_event(conn, client)
                if not isinstance(request, h11.Request):
                    return
                method, target = request.method.decode(), request.target.decode()
                proxy.requests.append((method, target))
                proxy.headers.append({k.decode(): v.decode() for k, v in request.headers})
                if target in proxy.refuse or method not in ("GET", "CONNECT"):
                    await client.send_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                    return
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    upstream = await trio.open_tcp_stream(proxy.resolve(host), int(port))
                    async with upstream:
                        await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        await _pipe(client, upstream)
                    return
                while not isinstance(await _next_event(conn, client), h11.EndOfMessage):
                    pass
                status, headers, body = await _forward(proxy, target, list(request.headers))
                await client.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
                await client.send_all(conn.send(h11.Data(data=body)))
                await client.send_all(conn.send(h11.EndOfMessage()))
                conn.start_next_cycle()


class _Reader:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            data = await self.stream.receive_some(4096)
            if not data:
                raise trio.BrokenResourceError("closed")
            self.buffer += data
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


async def _socks5_connection(proxy: Proxy, client: trio.SocketStream) -> None:
    with contextlib.suppress(*_GONE):
        async with client:
            reader = _Reader(client)
            version, count = await reader.read(2)
            methods = await reader.read(count)
            if version != 5 or 0 not in methods:
                await client.send_all(b"\x05\xff")
                return
            await client.send_all(b"\x05\x00")
            version, command, _, kind = await reader.read(4)
            if kind == 1:
                host = socket.inet_ntop(socket.AF_INET, await reader.read(4))
            elif kind == 4:
                host = socket.inet_ntop(socket.AF_INET6, await reader.read(16))
            else:
                host = (await reader.read((await reader.read(1))[0])).decode()
            port = int.from_bytes(await reader.read(2), "big")
            proxy.requests.append((host, port))
            if command != 1:
                await client.send_all(b"\x05\x07\x00\x01" + bytes(6))
                return
            upstream = await trio.open_tcp_stream(proxy.resolve(host), port)
            async with upstream:
                await client.send_all(b"\x05\x00\x00\x01" + bytes(6))
                await _pipe(client, upstream)


@asynccontextmanager
async def _open_proxy(proxy: Proxy, handler: Any) -> AsyncIterator[Proxy]:
    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            trio.serve_tcp, functools.partial(handler, proxy), 0, host="127.0.0.1"
        )
        listeners = await nursery.start(serve)
        proxy.port = listeners[0].socket.getsockname()[1]
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()


def open_http_proxy(names: dict[str, str] | None = None) -> Any:
    return _open_proxy(Proxy("http", names or {}), _http_proxy_connection)


def open_socks5_proxy(names: dict[str, str] | None = None) -> Any:
    return _open_proxy(Proxy("socks5", names or {}), _socks5_connection)


# ------------------------------------------------------------------ loopback TLS site


class TlsSiteServer(SiteServer):
    #: one per handshake that succeeded: whether it resumed an earlier session
    resumed: list[bool]

    @property
    def origin(self) -> str:
        return f"https://{self.host}:{self.port}"


@asynccontextmanager
async def open_tls_site(site: Site, context: ssl.SSLContext) -> AsyncIterator[TlsSiteServer]:
    """``site`` served over TLS on 127.0.0.1 (the test site server's HTTP, in an SSLStream)."""
    async with trio.open_nursery() as nursery:
        server = TlsSiteServer(site, "127.0.0.1", 0)
        server.resumed = []

        async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError:
                # trio drops the alert OpenSSL wrote (bad certificate, certificate required):
                # send it, as a real server does, so the client learns why
                pending: bytes = stream._outgoing.read()  # trio's private BIO: test code only
                with contextlib.suppress(*_GONE):
                    await stream.transport_stream.send_all(pending)
                await stream.transport_stream.aclose()
                return
            server.resumed.append(bool(stream.session_reused))
            await handle_http_connection(server, stream)  # type: ignore[arg-type]

        serve = functools.partial(
            trio.serve_ssl_over_tcp, handler, 0, context, host="127.0.0.1", https_compatible=True
        )
        listeners = await nursery.start(serve)
        server.port = listeners[0].transport_listener.socket.getsockname()[1]
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


@dataclasses.dataclass
class Pki:
    ca: trustme.CA
    ca_pem: str
    server: ssl.SSLContext  # presents a certificate for 127.0.0.1
    client_pem: str  # client certificate and key in one file
    client_cert_pem: str
    client_key_pem: str


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = trustme.CA()
    ca_pem = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(ca_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    client = ca.issue_cert("crawler@example.test")
    paths = [str(tmp_path / f"client-{n}.pem") for n in ("both", "cert", "key")]
    client.private_key_and_cert_chain_pem.write_to_path(paths[0])
    client.cert_chain_pems[0].write_to_path(paths[1])
    client.private_key_pem.write_to_path(paths[2])
    return Pki(ca, ca_pem, context, *paths)


def requiring_client_cert(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.ca.issue_cert("127.0.0.1").configure_cert(context)
    pki.ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


# ------------------------------------------------------------------ helpers


def fake_dns(table: dict[str, str]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        await trio.lowlevel.checkpoint()
        if host not in table:
            raise OSError(f"{host} does not resolve")
        return [table[host]]

    return Resolver(resolve)


def linked_site(*paths: str) -> Site:
    site = Site({p: html_page(f"page {p}") for p in paths})
    site.add("/", html_page("".join(f'<a href="{p}">{p}</a>' for p in paths)))
    return site


async def fetch(settings: Settings, url: str, **kwargs: Any) -> FetchResult:
    with trio.fail_after(LIMIT):
        async with Fetcher(settings, **kwargs) as fetcher:
            return await fetcher.fetch(url)


async def fetch_error(settings: Settings, url: str, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(settings, url, **kwargs)
    return info.value


async def crawl_site(url: str, settings: Settings, **kwargs: Any) -> Any:
    with trio.fail_after(LIMIT):
        return await crawl(GenericSpider(start_urls=(url,)), settings, **kwargs)


# ------------------------------------------------------------------ routes (pure)


def test_proxy_routes_first_match_then_proxy() -> None:
    routes = ProxyRoutes(
        rules=(("Example.com", "http://127.0.0.1:8080"), ("*.internal", "direct")),
        proxy="socks5://user:p%40ss@proxy.test",
    )
    assert routes.route("http", "example.com.") == ProxyTarget.parse("http://127.0.0.1:8080")
    assert routes.route("https", "www.example.com") is not None
    assert routes.route("https", "www.example.com") == routes.route("http", "other.org")
    assert routes.route("http", "db.internal") is None
    assert routes.route("http", "a.b.INTERNAL") is None
    fallback = routes.route("http", "internal")  # "*.internal" matches names below it only
    assert fallback is not None
    assert (fallback.key, fallback.auth) == ("socks5://proxy.test:1080", ("user", "p@ss"))
    assert "p@ss" not in repr(fallback)
    assert {t.key for t in routes.targets()} == {
        "http://127.0.0.1:8080",
        "socks5://proxy.test:1080",
    }
    assert ProxyRoutes(rules=(("*", "direct"),), proxy="http://p:1").route("http", "x") is None


def test_proxy_routes_from_the_environment() -> None:
    env = {
        "http": "127.0.0.1:3128",  # no scheme: http://
        "all": "socks5://127.0.0.1:1080",
        "no": "localhost, .corp.example,10.0.0.0/8,[::1]:80, skip.test:443",
    }
    routes = ProxyRoutes(env=env)
    assert routes.route("http", "example.org") == ProxyTarget.parse("http://127.0.0.1:3128")
    assert routes.route("https", "example.org") == ProxyTarget.parse("socks5://127.0.0.1:1080")
    for host in ("localhost", "corp.example", "a.corp.example", "10.1.2.3", "::1", "skip.test"):
        assert routes.route("http", host) is None, host
    assert routes.route("http", "notcorp.example") is not None
    assert routes.route("http", "11.0.0.1") is not None
    assert ProxyRoutes(env={"no": "*", "http": "http://p:1"}).route("http", "x") is None
    # explicit settings win over the environment
    explicit = ProxyRoutes(proxy="http://127.0.0.9:9", env=env)
    assert explicit.route("http", "localhost") == ProxyTarget.parse("http://127.0.0.9:9")


@pytest.mark.parametrize("bad", ["ftp://p:21", "http://", "http://host:notaport", "socks4://h:1"])
def test_bad_proxy_urls_are_one_line_settings_errors(bad: str) -> None:
    with pytest.raises(SettingsError) as info:
        ProxyRoutes(env={"https": bad})
    assert "\n" not in str(info.value)
    assert "HTTPS_PROXY" in str(info.value)


def test_no_routes_without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    assert ProxyRoutes.from_settings(Settings()) is None  # the environment only when asked
    assert ProxyRoutes.from_settings(Settings(trust_env=True)) is not None
    assert ProxyRoutes.from_settings(Settings(proxy_rules=(("x", "direct"),))) is None


# ------------------------------------------------------------------ HTTP proxy


async def test_every_crawl_request_goes_through_the_http_proxy() -> None:
    async with open_site_server(linked_site("/a", "/b")) as site, open_http_proxy() as proxy:
        # the proxy's own address is not listed: a configured proxy is allowed by itself
        stats = await crawl_site(site.url("/"), loopback_settings(site, proxy=proxy.url))
    assert stats.pages_ok == 3
    assert stats.failures == {}
    targets = [site.url(p) for p in ("/robots.txt", "/", "/a", "/b")]
    assert sorted(proxy.requests) == sorted(("GET", t) for t in targets)  # absolute form
    assert sorted(site.paths()) == sorted(["/robots.txt", "/", "/a", "/b"])
    assert all(h["host"] == site.address for h in proxy.headers)
    assert all(h["user-agent"].startswith("trio-crawler/") for h in proxy.headers)


async def test_proxy_rules_route_each_host() -> None:
    dns = fake_dns({"a.test": "127.0.0.1", "b.test": "127.0.0.1"})
    async with (
        open_site_server(linked_site("/a1")) as site_a,
        open_site_server(linked_site("/b1")) as site_b,
        open_http_proxy({"a.test": "127.0.0.1"}) as proxy,
    ):
        a, b = f"http://a.test:{site_a.port}", f"http://b.test:{site_b.port}"
        site_a.site.add("/", html_page(f'<a href="/a1">1</a><a href="{b}/">b</a>'))
        rules = (("b.test", "direct"), ("*.test", proxy.url))  # first match wins
        settings = loopback_settings(site_a, site_b, proxy_rules=rules, scope="any")
        stats = await crawl_site(f"{a}/", settings, resolver=dns)
    assert stats.pages_ok == 4
    assert sorted(t for _, t in proxy.requests) == [f"{a}/", f"{a}/a1", f"{a}/robots.txt"]
    assert sorted(site_b.paths()) == ["/", "/b1", "/robots.txt"]  # directly


async def test_https_through_the_http_proxy_is_a_connect_tunnel(pki: Pki) -> None:
    async with open_tls_site(linked_site("/a"), pki.server) as site, open_http_proxy() as proxy:
        settings = loopback_settings(site, proxy=proxy.url, ca_bundle=pki.ca_pem)
        stats = await crawl_site(site.url("/"), settings)
    assert stats.pages_ok == 2
    assert proxy.requests and set(proxy.requests) == {("CONNECT", site.address)}
    assert sorted(site.paths()) == ["/", "/a", "/robots.txt"]  # origin form, inside TLS


async def test_proxy_checks_the_targets_name_only() -> None:
    dns = fake_dns({"evil.test": "127.0.0.1", "public.test": "93.184.216.34"})
    async with (
        open_site_server(linked_site()) as site,
        open_site_server(linked_site()) as other,
        open_http_proxy({"evil.test": "127.0.0.1"}) as proxy,
    ):
        settings = loopback_settings(site, proxy=proxy.url, max_retries=0)
        evil = f"http://evil.test:{other.port}/"
        # a name resolving to a forbidden address: refused before the proxy hears of it
        error = await fetch_error(settings, evil, resolver=dns)
        assert error.kind is FailureKind.FORBIDDEN_ADDRESS
        assert "through a proxy" in str(error)
        # the proxy's own address is allowed for dialling the proxy, not as a target
        error = await fetch_error(settings, f"http://evil.test:{proxy.port}/", resolver=dns)
        assert error.kind is FailureKind.FORBIDDEN_ADDRESS
        error = await fetch_error(settings, "http://nowhere.test/", resolver=dns)
        assert error.kind is FailureKind.DNS
        assert proxy.requests == []
        assert other.requests == []
        # an allowed pair passes; so does everything with allow_private
        assert (await fetch(settings, site.url("/"))).status == 200
        lax = settings.replace(allow_private=True)
        assert (await fetch(lax, evil, resolver=dns)).status == 200
        assert [t for _, t in proxy.requests] == [site.url("/"), evil]
        assert other.paths() == ["/"]


async def test_proxy_failures(pki: Pki) -> None:
    async with open_tls_site(linked_site(), pki.server) as site, open_http_proxy() as proxy:
        proxy.refuse.add(site.address)
        settings = loopback_settings(site, proxy=proxy.url, ca_bundle=pki.ca_pem)
        error = await fetch_error(settings, site.url("/"))
        assert error.kind is FailureKind.PROXY
    # a proxy that is not there: the connection to it is refused
    error = await fetch_error(settings, site.url("/"))
    assert error.kind is FailureKind.CONNECT


async def test_environment_proxy_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_site_server(linked_site()) as site, open_http_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("http_proxy", raising=False)
        await fetch(loopback_settings(site), site.url("/"))
        assert proxy.requests == []
        await fetch(loopback_settings(site, trust_env=True), site.url("/"))
        assert proxy.requests == [("GET", site.url("/"))]
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        await fetch(loopback_settings(site, trust_env=True), site.url("/"))
        assert len(proxy.requests) == 1
        assert len(site.requests) == 3


# ------------------------------------------------------------------ SOCKS5


async def test_socks5_proxy(pki: Pki) -> None:
    dns = fake_dns({"site.test": "127.0.0.1"})
    names = {"site.test": "127.0.0.1"}
    async with (
        open_site_server(linked_site("/a")) as site,
        open_tls_site(linked_site(), pki.server) as tls_site,
        open_socks5_proxy(names) as proxy,
    ):
        url = f"http://site.test:{site.port}/"
        stats = await crawl_site(url, loopback_settings(site, proxy=proxy.url), resolver=dns)
        assert stats.pages_ok == 2
        assert sorted(site.paths()) == ["/", "/a", "/robots.txt"]
        assert proxy.requests and set(proxy.requests) == {("site.test", site.port)}
        # TLS end to end through the SOCKS tunnel
        settings = loopback_settings(tls_site, proxy=proxy.url, ca_bundle=pki.ca_pem)
        assert (await fetch(settings, tls_site.url("/"))).status == 200
        assert proxy.requests[-1] == ("127.0.0.1", tls_site.port)


async def test_socks5_proxy_failures_are_proxy_errors() -> None:
    async with open_site_server(linked_site()) as site, open_socks5_proxy() as proxy:
        settings = loopback_settings(site, proxy=proxy.url, max_retries=0)
        async with trio.open_nursery() as nursery:
            # a port nothing listens on: the test proxy hangs up without a reply
            listeners = await nursery.start(trio.serve_tcp, lambda s: s.aclose(), 0)
            port = listeners[0].socket.getsockname()[1]
            nursery.cancel_scope.cancel()
        settings = settings.replace(allowed_addresses=(f"127.0.0.1:{port}",))
        error = await fetch_error(settings, f"http://127.0.0.1:{port}/")
        assert error.kind is FailureKind.PROXY, error
        assert error.url == f"http://127.0.0.1:{port}/"


# ------------------------------------------------------------------ TLS


async def test_tls_verification(pki: Pki) -> None:
    async with open_tls_site(linked_site("/a"), pki.server) as site:
        url = site.url("/")
        error = await fetch_error(loopback_settings(site), url)
        assert error.kind is FailureKind.TLS
        assert "certificate" in str(error).lower()
        stats = await crawl_site(url, loopback_settings(site, obey_robots=False))
        assert stats.failures == {"tls": 1}  # not retried

        assert (await fetch(loopback_settings(site, ca_bundle=pki.ca_pem), url)).status == 200
        assert (await fetch(loopback_settings(site, verify_tls=False), url)).status == 200
        stats = await crawl_site(url, loopback_settings(site, ca_bundle=pki.ca_pem))
        assert (stats.pages_ok, stats.failures) == (2, {})


async def test_a_new_connection_resumes_the_origins_tls_session(pki: Pki) -> None:
    # no idle connection is kept: every fetch is a new connection, and a new handshake
    async with open_tls_site(linked_site("/a", "/b"), pki.server) as site:
        settings = loopback_settings(site, ca_bundle=pki.ca_pem, keepalive_connections=0)
        with trio.fail_after(LIMIT):
            async with Fetcher(settings) as fetcher:
                for path in ("/", "/a", "/b"):
                    assert (await fetcher.fetch(site.url(path))).status == 200
        assert site.resumed == [False, True, True]
        # another crawl (another context) starts afresh
        assert (await fetch(settings, site.url("/"))).status == 200
        assert site.resumed[-1] is False


async def test_client_certificate(pki: Pki) -> None:
    async with open_tls_site(linked_site(), requiring_client_cert(pki)) as site:
        url = site.url("/")
        trusting = loopback_settings(site, ca_bundle=pki.ca_pem, max_retries=0)
        error = await fetch_error(trusting, url)
        assert error.kind is FailureKind.TLS, error
        with_cert = trusting.replace(client_cert=pki.client_pem)
        assert (await fetch(with_cert, url)).status == 200
        split = trusting.replace(client_cert=pki.client_cert_pem, client_key=pki.client_key_pem)
        assert (await fetch(split, url)).status == 200
        stats = await crawl_site(url, with_cert)
        assert (stats.pages_ok, stats.failures) == (1, {})


async def test_bad_tls_files_fail_at_open(tmp_path: Path, pki: Pki) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    for bad in (
        Settings(ca_bundle=str(tmp_path / "missing.pem")),
        Settings(ca_bundle=str(junk)),
        Settings(client_cert=str(junk)),
        Settings(client_cert=pki.client_cert_pem),  # no key in it
        Settings(client_cert=pki.client_cert_pem, client_key=str(tmp_path / "nokey.pem")),
    ):
        with pytest.raises(SettingsError) as info:
            async with Fetcher(bad):
                pass
        message = str(info.value)
        assert "\n" not in message and "cannot load" in message, message


# ------------------------------------------------------------------ WARC capture


HTML = b"<!doctype html><title>t</title>" + b"<p>hello</p>" * 500


async def _gzip_ok(stream: trio.SocketStream, request: RecordedRequest) -> None:
    """A gzip-encoded page with a reason phrase (the test server sends none), then close."""
    body = gzip.compress(HTML)
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-encoding: gzip\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    await stream.send_all(head.encode() + body)
    await stream.aclose()


def gzip_site() -> Site:
    site = Site({"/big": Response(body=HTML)})
    site.add_raw("/", _gzip_ok)
    return site


async def test_fetch_result_keeps_the_exchange_for_warc(tmp_path: Path) -> None:
    async with open_site_server(gzip_site()) as site:
        plain = await fetch(loopback_settings(site), site.url("/"))
        before = time.time()
        settings = loopback_settings(site, warc=str(tmp_path / "x.warc.gz"))
        result = await fetch(settings, site.url("/"))
        cut = await fetch(settings.replace(max_body_size=1000), site.url("/big"))
    # off by default: nothing kept
    assert (plain.raw_body, plain.request_headers, plain.ip) == (None, (), None)
    assert plain.body == HTML
    # on: the payload as received, the request as sent
    assert result.body == HTML
    assert result.raw_body is not None and gzip.decompress(result.raw_body) == HTML
    assert result.wire_bytes == len(result.raw_body) < len(HTML)
    assert not result.raw_truncated
    assert (result.reason, result.http_version, result.ip) == ("OK", "HTTP/1.1", "127.0.0.1")
    assert before - 1 <= result.started_wall <= time.time()
    sent = {k.lower(): v for k, v in result.request_headers}
    assert len(sent) == len(result.request_headers)
    assert sent["host"] == site.address
    assert sent["user-agent"].startswith("trio-crawler/")
    assert "gzip" in sent["accept-encoding"]
    assert sent == {k: v for k, v in site.requests[-2].headers}
    # cut at the body limit
    assert cut.raw_body == HTML[:1000] and cut.raw_truncated and cut.truncated


async def test_to_exchange_writes_a_readable_warc(tmp_path: Path) -> None:
    async with open_site_server(gzip_site()) as site:
        settings = loopback_settings(site, warc=str(tmp_path / "crawl.warc.gz"), max_retries=0)
        result = await fetch(settings, site.url("/"))
        with trio.socket.socket() as spare:
            await spare.bind(("127.0.0.1", 0))
            closed_port = spare.getsockname()[1]  # bound, not listening: refused
            settings = settings.replace(allowed_addresses=(f"127.0.0.1:{closed_port}",))
            error = await fetch_error(settings, f"http://127.0.0.1:{closed_port}/gone")
    assert error.kind is FailureKind.CONNECT
    headers, started = failure_request(error)
    assert ("Host", f"127.0.0.1:{closed_port}") in headers
    assert abs(started - time.time()) < LIMIT

    assert settings.warc is not None
    with WarcWriter(settings.warc) as writer:
        writer.write_exchange(to_exchange(result))
        writer.write_failure(error.url, error.kind, str(error), started, headers)
        paths = writer.paths
    records = _records(paths[0])
    kinds = [(r["type"], r["uri"]) for r in records]
    assert kinds == [
        ("warcinfo", None),
        ("response", site.url("/")),
        ("request", site.url("/")),
        ("request", f"http://127.0.0.1:{closed_port}/gone"),
        ("metadata", f"http://127.0.0.1:{closed_port}/gone"),
    ]
    response = records[1]
    assert response["raw"] == result.raw_body  # as on the wire
    assert response["decoded"] == HTML  # warcio's reader undoes the gzip
    assert response["ip"] == "127.0.0.1"
    assert ("content-encoding", "gzip") in response["http"]
    request_headers = {k.lower(): v for k, v in records[2]["http"]}
    assert request_headers["user-agent"].startswith("trio-crawler/")
    assert request_headers["host"] == site.address
    assert b'"kind": "connect"' in records[4]["raw"]


def _records(path: str) -> list[dict[str, Any]]:
    """Each record, read twice by warcio: ``raw`` as stored, ``decoded`` via content_stream."""
    out: list[dict[str, Any]] = []
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream):
            http = record.http_headers
            out.append(
                {
                    "type": record.rec_type,
                    "uri": record.rec_headers.get_header("WARC-Target-URI"),
                    "ip": record.rec_headers.get_header("WARC-IP-Address"),
                    "http": list(http.headers) if http else None,
                    "raw": record.raw_stream.read(),
                }
            )
    with open(path, "rb") as stream:
        for item, record in zip(out, ArchiveIterator(stream), strict=True):
            item["decoded"] = record.content_stream().read()
    return out


def test_to_exchange_needs_capture() -> None:
    from trio_crawler._spider import Headers

    result = FetchResult("http://x/", 200, Headers(), b"", False, 0.0, 0)
    with pytest.raises(ValueError, match=r"settings\.warc"):
        to_exchange(result)


# ------------------------------------------------------------------ the request as built


def _by_standard(url: str) -> tuple[str, str, int | None, bytes, bytes]:
    """The request a browser sends, from ada's public API (the URL Standard)."""
    u = ada_url.URL(url)
    if u.protocol not in ("http:", "https:"):
        raise ValueError("not http(s)")
    host = u.hostname[1:-1] if u.hostname.startswith("[") else u.hostname
    target = u.href.partition("#")[0][len(u.protocol) + 2 :]
    target = target[target.index("/") :]
    return u.protocol[:-1], host, int(u.port) if u.port else None, target.encode(), u.host.encode()


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://example.com/",
        "https://example.com/a/b.html?x=1&y=%20",
        "http://example.com:80/p",
        "https://example.com:443/p",
        "http://example.com:8080/p?q",
        "HTTP://Example.COM/Path",
        "http://example.com/p#frag",
        "http://127.0.0.1:18765/x.html",
        "http://a-b.example.co.uk/~user/%7Eraw;param",
        "http://EXAMPLE.com:0080/x",
        "http://example.com:/x",
        "http://example.com?x=1",
        "http://example.com/a?b=c#d?e",
        "http://example.com/%zz",
        "http://127.1/x",
        "http://example.com/.well-known/x",
        "http://example.com/a/../b/./c",
        "http://example.com/p?",
        "http://example.com/p?#f",
        "http://user:pw@example.com/",
        "http://[::1]:8080/",
        "http://bücher.example/ä?ö=1",
        "http://example.com/a b",
        'http://example.com/"q"',
        "http://example.com/{x}",
    ],
)
def test_split_target_is_the_url_standards(url: str) -> None:
    """The request line and Host header a browser sends (tests/test_wpt_urls.py has the rest)."""
    t = split_target(url)
    assert t.url == ada_url.normalize_url(url).partition("#")[0]
    assert (t.scheme, t.host, t.port, t.target, t.netloc) == _by_standard(url)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "http://", "http://example.com:99999/", "http://h:x/", "/rel"],
)
def test_split_target_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        split_target(url)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "http://", "http://127.0.0.1:0/"])
async def test_bad_urls_are_bad_url_failures(url: str) -> None:
    error = await fetch_error(Settings(allow_private=True), url)
    assert error.kind is FailureKind.BAD_URL and error.url == url


async def test_request_headers_on_the_wire() -> None:
    """Host first, the crawl's headers, and a request's own replacing those of the same name
    whatever their case; a path to percent-encode goes out encoded."""
    site = Site({"/a": html_page("a"), "/%C3%A9": html_page("e")})
    async with open_site_server(site) as server:
        settings = loopback_settings(server, headers={"X-Crawl": "1"})
        with trio.fail_after(LIMIT):
            async with Fetcher(settings) as fetcher:
                plain = await fetcher.fetch(server.url("/a"))
                own = await fetcher.fetch(
                    server.url("/a"), {"User-Agent": "mine/1", "X-CRAWL": "2", "X-Own": "y"}
                )
                encoded = await fetcher.fetch(server.url("/é"))
    assert (plain.status, own.status, encoded.status) == (200, 200, 200)
    first, second, third = server.requests
    assert first.headers[0] == ("host", server.address)
    assert first.header("user-agent") == settings.user_agent
    assert first.header("x-crawl") == "1"
    names = [k for k, _ in second.headers]
    assert len(names) == len(set(names)), names  # nothing sent twice
    assert second.header("user-agent") == "mine/1"
    assert (second.header("x-crawl"), second.header("x-own")) == ("2", "y")
    assert second.header("host") == server.address
    assert third.path == "/%C3%A9"


def test_non_ascii_crawl_headers_are_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="not ASCII"):
        Fetcher(Settings(headers={"X-Name": "café"}))


@pytest.mark.parametrize(
    "headers", [{"X-Name": "a\r\nX-Injected: 1"}, {"Bad Name": "v"}, {"X-Name": "trailing "}]
)
def test_crawl_headers_that_would_split_the_request_are_a_settings_error(
    headers: dict[str, str],
) -> None:
    with pytest.raises(SettingsError, match="not valid HTTP"):
        Fetcher(Settings(headers=headers))


def test_split_target_is_the_url_standards_on_generated_urls() -> None:
    """A seeded differential check over 3,000 URLs built from the pieces crawls meet."""
    import random

    rng = random.Random(8)
    hosts = ["example.com", "a.b-c.example.org", "127.0.0.1", "xn--bcher-kva.example", "h"]
    ports = ["", ":80", ":443", ":8080", ":1"]
    pieces = [*"aB0-_~.;=&+!$'()*,:@é %[]|", "..", "%41", "%2F", "%7e"]
    for _ in range(3000):
        path = "".join(
            "/" + "".join(rng.choice(pieces) for _ in range(rng.randrange(4)))
            for _ in range(rng.randrange(4))
        )
        query = "".join(rng.choice([*pieces, "?", "/"]) for _ in range(rng.randrange(5)))
        url = (
            f"{rng.choice(['http', 'https', 'HTTP'])}://{rng.choice(hosts)}{rng.choice(ports)}"
            f"{path}{'?' + query if rng.random() < 0.4 else ''}"
            f"{'#' + rng.choice(pieces) if rng.random() < 0.2 else ''}"
        )
        try:
            expected: object = _by_standard(url)
        except ValueError:
            expected = "invalid"
        try:
            t = split_target(url)
            got: object = (t.scheme, t.host, t.port, t.target, t.netloc)
        except ValueError:
            got = "invalid"
        assert got == expected, url
