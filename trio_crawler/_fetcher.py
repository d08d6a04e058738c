"""The fetcher: with its connections (:mod:`._connections`, :mod:`._http11`), the only code
that imports httpcore, httpx and httptools.

Theory of operation
-------------------
A :class:`Fetcher` is opened once per crawl (outside the worker nursery) and shared by every
fetch task. ``fetch(url, headers)`` performs exactly one HTTP exchange:

* no redirects are followed here: a 3xx comes back as a response and the engine decides
  (scope, robots, dedupe and the hop limit are crawl policy, not transport);
* the body is read from the *raw* stream and decoded by :mod:`._decode`'s bounded decoders,
  so neither a 200 MB body nor a 10 GB gzip bomb can take more than ``max_body_size`` bytes;
  brotli and zstd windows over 1 MiB are reserved in a crawl-wide :class:`WindowBudget` first,
  so sixteen brotli bombs at once cannot add 16 x 17 MiB of decoder windows to their bodies;
* the request goes to httpcore's connections directly (:class:`GuardedTransport`), not
  through httpx's client and models: the crawler uses none of what they add (it follows no
  redirects, keeps its own cookies and decodes bodies itself), and they cost a third of the
  HTTP time. Direct requests take a keep-alive connection from :class:`Connections` (one per
  crawl, no per-request pool scan), which speak HTTP/1.1 with llhttp's parser, with
  httpcore's errors and keep-alive rules (:mod:`._http11`: h11 in pure Python cost a tenth
  of the crawler's CPU); requests through a proxy use httpcore's proxy pools.
  URLs are read by :mod:`._urls` alone (:func:`split_target`: the URL Standard), and any httpx
  transport can stand in for the connections (:class:`HttpxExchanger`: the in-memory
  transport of the timing tests). ``scripts/bench_http.py`` (nginx, 16 tasks, 4,000
  requests, 3 rounds; figures in its docstring) gives the CPU per request of each layer;
* the whole exchange runs under a deadline (``request_timeout``): httpx's read timeout resets
  on every byte and does not bound a server that drips one byte a second;
* every connection goes through :class:`GuardedBackend`, which resolves the name through one
  replaceable seam (:class:`Resolver`) and refuses loopback, private, link-local, multicast
  and unspecified addresses unless allowed (:class:`AddressGuard`). The check happens at
  connect time, on the addresses actually dialled, so a name cannot resolve one way for the
  check and another for the connection;
* httpx and httpcore errors are translated here, and only here, into
  :class:`~trio_crawler.FetchError` with a :class:`~trio_crawler.FailureKind`.

Connections: one :class:`Connections` for the crawl's direct requests; with proxies, per
fetch task (``clients = concurrency``) one :class:`GuardedTransport` with its own proxy pools,
each request going to the next in turn. httpcore's pool scans every connection for every waiting
request (encode/httpcore#1035), so one shared pool costs more as concurrency rises: measured
with ``scripts/bench_clients.py`` (nginx, 16 fetchers, 4,000 pages, a shared 2-core
machine), one shared pool 2.0-2.9 ms of CPU per page, sixteen pools 1.8-2.1 ms. Direct
requests no longer use a pool at all (:mod:`._connections`). httpx2/httpcore2 2.16 (same
API, with the upstream pool fix) measured no better behind this module while it used the
pools (0.72-0.78 ms CPU per request against 0.65-0.80 for httpx 0.28 with per-task pools);
the pool fix no longer applies to direct requests, so httpx stays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import ipaddress
import math
import os
import socket
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit

import httpcore
import httpx
import trio

from ._connections import Connections
from ._decode import ACCEPT_ENCODING, DecodeError, make_decoder
from ._exceptions import FailureKind, FetchError, SettingsError
from ._http11 import request_head
from ._settings import Settings
from ._spider import Headers
from ._urls import _DEFAULT_PORTS, request_parts

if TYPE_CHECKING:
    from ._warc import Exchange

#: Name resolution seam: ``(host, port) -> [ip, ...]``. Tests replace it to make a public-looking
#: name resolve to loopback.
Resolve = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (``getaddrinfo`` in a worker thread, via Trio)."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen[str(info[4][0])] = None
    return list(seen)


class Resolver:
    """A small DNS cache with a time-to-live and a timeout in front of a :data:`Resolve`.

    Concurrent lookups of one name share one query. A name that does not resolve fails fast
    with ``FailureKind.DNS`` and the failure is cached briefly too.
    """

    def __init__(
        self,
        resolve: Resolve = system_resolve,
        *,
        ttl: float = 300.0,
        timeout: float = 10.0,
        negative_ttl: float = 30.0,
        max_entries: int = 10_000,
    ) -> None:
        self._resolve = resolve
        self._ttl = ttl
        self._timeout = timeout
        self._negative_ttl = negative_ttl
        self._max = max_entries
        self._cache: dict[tuple[str, int], tuple[float, list[str] | str]] = {}
        self._pending: dict[tuple[str, int], trio.Event] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [host]
        key = (host, port)
        while True:
            now = trio.current_time()
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                if isinstance(hit[1], str):
                    raise FetchError(FailureKind.DNS, hit[1])
                return hit[1]
            pending = self._pending.get(key)
            if pending is None:
                break
            await pending.wait()
        event = self._pending[key] = trio.Event()
        try:
            try:
                with trio.fail_after(self._timeout):
                    ips = await self._resolve(host, port)
                if not ips:
                    raise OSError("no addresses")
            except (OSError, trio.TooSlowError) as exc:
                message = f"cannot resolve {host}: {exc or 'timed out'}"
                self._store(key, trio.current_time() + self._negative_ttl, message)
                raise FetchError(FailureKind.DNS, message) from None
            self._store(key, trio.current_time() + self._ttl, ips)
            return ips
        finally:
            del self._pending[key]
            event.set()

    def _store(self, key: tuple[str, int], expires: float, value: list[str] | str) -> None:
        if len(self._cache) >= self._max:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (expires, value)


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


#: IPv4 ranges that are not public unicast (IANA special-purpose registry). Listed here, not
#: taken from ``ipaddress``'s ``is_global``, whose answers change between Python versions
#: (3.11 calls 192.0.0.8 and 64:ff9b::7f00:1 global).
_V4_NOT_PUBLIC = _networks(
    "0.0.0.0/8",  # "this network", 0.0.0.0 (reaches the local host on Linux)
    "10.0.0.0/8",  # RFC 1918
    "100.64.0.0/10",  # RFC 6598 shared address space (CGNAT): refused, see AddressGuard
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (cloud metadata at 169.254.169.254)
    "172.16.0.0/12",  # RFC 1918
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",  # RFC 1918
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",  # documentation
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
)
#: IPv6: only global unicast (2000::/3) may be public, and not these parts of it.
_V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_V6_NOT_PUBLIC = _networks(
    "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4: embeds an IPv4 address that may be private
    "3fff::/20",  # documentation
)
#: NAT64 (RFC 6052): DNS64 resolvers on IPv6-only networks answer with these for public
#: IPv4 hosts, so they are judged by the IPv4 address they embed.
_V6_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_public_address(ip: str) -> bool:
    """True for a public unicast address; False for anything else, or a non-address (pure).

    IPv4-mapped IPv6 (``::ffff:127.0.0.1``) and NAT64 (``64:ff9b::a.b.c.d``) addresses are
    judged by the IPv4 address they carry. IPv6 outside 2000::/3 (loopback ``::1``,
    unspecified ``::``, ``fc00::/7``, ``fe80::/10``, multicast ``ff00::/8``, IPv4-compatible
    ``::a.b.c.d``...) is never public.
    """
    addr = _parse_ip(ip)
    if addr is None:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr in _V6_NAT64:
            return is_public_address(str(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)))
        return addr in _V6_GLOBAL_UNICAST and not any(addr in net for net in _V6_NOT_PUBLIC)
    return not any(addr in net for net in _V4_NOT_PUBLIC)


def _address_key(host: str) -> str:
    """One spelling per address (``::FFFF:7f00:1`` and ``127.0.0.1`` are one); names lowered."""
    addr = _parse_ip(host)
    return str(addr) if addr is not None else host.strip("[]").lower().rstrip(".")


class AddressGuard:
    """Which ``address:port`` the crawler may connect to (pure).

    Public unicast addresses (:func:`is_public_address`) are always allowed. Loopback, private
    (RFC 1918, fc00::/7), link-local, multicast, reserved, documentation and unspecified
    addresses only when ``allow_private`` is set, or for an exact ``address:port`` pair given in
    ``allowed`` (the seeds' own host and port, and :attr:`Settings.allowed_addresses`). A seed
    ``http://10.0.0.5:8080/`` opens 10.0.0.5:8080 and nothing else.

    A pair names a destination, however it is reached: with ``127.0.0.1:8080`` allowed, a
    name that resolves to 127.0.0.1 may be fetched on port 8080 (the same server), on no other.
    A seed given by *name* allows that name on its port whatever it resolves to: the user
    named the host (an intranet name is the usual case).

    The shared address space of carrier-grade NAT (100.64.0.0/10, RFC 6598) is refused like
    private space: it is not reachable from the internet, and clouds put internal services
    there (e.g. a metadata endpoint at 100.100.100.200).

    The guard sees the addresses the crawler dials. Through a proxy those are the proxy's, so
    a crawl through a proxy can only check the target's *name* (see the module docstring).
    """

    def __init__(self, *, allow_private: bool, allowed: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self._allowed: set[tuple[str, int]] = set()
        for entry in allowed:
            self.allow(entry)

    def allow(self, address_port: str) -> None:
        """Allow one ``address:port`` (``[::1]:8080`` for IPv6)."""
        host, _, port = address_port.rpartition(":")
        self.allow_host(host, int(port))

    def allow_host(self, host: str, port: int) -> None:
        self._allowed.add((_address_key(host), port))

    def is_allowed(self, ip: str, port: int, *, host: str | None = None) -> bool:
        if self.allow_private:
            return True
        if (_address_key(ip), port) in self._allowed or (
            host is not None and (_address_key(host), port) in self._allowed
        ):
            return True
        return is_public_address(ip)


class _Forbidden(Exception):
    """Raised inside the connection pool when the guard refuses every address of a host."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's Trio backend, with name resolution and the address guard at connect time.

    A proxy pool's backend is given the proxy's ``(host, port)``: it dials that pair whatever
    its addresses (the user chose it) and refuses anything else.
    """

    def __init__(
        self, guard: AddressGuard, resolver: Resolver, *, proxy: tuple[str, int] | None = None
    ) -> None:
        self._guard = guard
        self._resolver = resolver
        self._inner = httpcore.TrioBackend()
        self._proxy = None if proxy is None else (_address_key(proxy[0]), proxy[1])

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        ips = await self._resolver(host, port)
        if self._proxy is None:
            allowed = [ip for ip in ips if self._guard.is_allowed(ip, port, host=host)]
        elif (_address_key(host), port) == self._proxy:
            allowed = ips
        else:
            allowed = []
        if not allowed:
            raise _Forbidden(f"refusing to connect to {host}:{port} ({', '.join(ips)})")
        last: Exception | None = None
        for ip in allowed:
            try:
                stream = await self._inner.connect_tcp(
                    ip, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
            else:
                return _PlainStream(stream)
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise _Forbidden("unix sockets are not used by the crawler")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


#: What a read or write raises when the connection breaks or is closed under it.
_SOCKET_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class _PlainStream(httpcore.AsyncNetworkStream):
    """A plain TCP connection: httpcore's Trio stream, read and written by its descriptor.

    Every request makes a write and two or three reads; httpcore's stream wraps each in an
    exception-mapping context manager, a cancel scope and trio's ``SocketStream`` checks, and
    trio's socket wraps each system call in another (async) context manager. Here a read or
    write is the system call itself, between the checkpoints trio's socket would make
    (:func:`trio.lowlevel.checkpoint_if_cancelled` before, a yield after a call that did not
    wait), and the timeout's cancel scope exists only while it waits for the socket. TLS
    (``start_tls``), the extra information (addresses, ``is_readable``) and closing stay with
    the inner stream.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        sock: trio.socket.SocketType = inner.get_extra_info("socket")
        self._fd = sock.fileno()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        fd = self._fd
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            data = os.read(fd, max_bytes)
        except BlockingIOError:
            pass
        except _SOCKET_ERRORS as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        with trio.move_on_after(math.inf if timeout is None else timeout):
            try:
                while True:
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        return os.read(fd, max_bytes)
                    except BlockingIOError:
                        pass
            except _SOCKET_ERRORS as exc:
                raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc
        raise httpcore.ReadTimeout("read timed out")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        fd = self._fd
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            sent = os.write(fd, buffer)
        except BlockingIOError:
            sent = 0
        except _SOCKET_ERRORS as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc
        if sent == len(buffer):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        view = memoryview(buffer)
        with trio.move_on_after(math.inf if timeout is None else timeout):
            try:
                while sent < len(buffer):
                    await trio.lowlevel.wait_writable(fd)
                    with contextlib.suppress(BlockingIOError):
                        sent += os.write(fd, view[sent:])
                return
            except _SOCKET_ERRORS as exc:
                raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc
        raise httpcore.WriteTimeout("write timed out")

    async def aclose(self) -> None:
        # the descriptor's number may be reused by the next socket: no read or write may use it
        # after this (os.read(-1) is EBADF, a ReadError)
        self._fd = -1
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


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


# ------------------------------------------------------------------ proxies

_PROXY_SCHEMES = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}
#: Route decisions kept per (scheme, host); the map is emptied when it grows past this.
_ROUTE_CACHE = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyTarget:
    """A parsed proxy URL. ``key`` (``scheme://host:port``) names its pool; no credentials."""

    key: str
    scheme: str
    host: str
    port: int
    auth: tuple[str, str] | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str, *, source: str = "proxy") -> ProxyTarget:
        """Parse ``scheme://[user:pass@]host[:port]``; a one-line :class:`SettingsError` if bad.

        A URL without a scheme (``127.0.0.1:3128``, common in environment variables) is taken
        as ``http://``.
        """
        text = url.strip()
        if "://" not in text:
            text = f"http://{text}"
        try:
            parts = urlsplit(text)
            scheme = parts.scheme.lower()
            host = parts.hostname or ""
            port = parts.port or _PROXY_SCHEMES.get(scheme, 0)
        except ValueError:
            scheme, host, port = "", "", 0
        if scheme not in _PROXY_SCHEMES or not host or not port:
            raise SettingsError(
                f"{source} must be http://, https:// or socks5:// HOST:PORT, not {url!r}"
            )
        auth = None
        if parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
        shown = f"[{host}]" if ":" in host else host
        return cls(f"{scheme}://{shown}:{port}", scheme, host, port, auth)

    def to_httpcore(self, ssl_context: ssl.SSLContext) -> httpcore.Proxy:
        return httpcore.Proxy(url=self.key, auth=self.auth, ssl_context=ssl_context)


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


class ProxyRoutes:
    """Which proxy, if any, serves a request to ``scheme://host`` (pure; decisions cached).

    Order: the first ``rules`` entry whose pattern matches the host (``"example.com"``
    exactly, ``"*.internal"`` any name below ``internal``, ``"*"`` every host) wins, its target
    being a proxy URL or ``"direct"``; then ``proxy``; then ``env``, the mapping
    :func:`urllib.request.getproxies_environment` returns (``{"http": ..., "https": ...,
    "all": ..., "no": ...}``), with ``NO_PROXY`` honoured for it. Hosts are compared in lower
    case without a trailing dot; ports play no part.
    """

    def __init__(
        self,
        *,
        rules: Iterable[tuple[str, str]] = (),
        proxy: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._rules: list[tuple[str, ProxyTarget | None]] = [
            (
                _address_key(pattern),
                None if target == "direct" else ProxyTarget.parse(target, source="proxy rule"),
            )
            for pattern, target in rules
        ]
        self._proxy = ProxyTarget.parse(proxy) if proxy is not None else None
        self._env: dict[str, ProxyTarget] = {}
        self._no_proxy: list[str] = []
        for scheme, value in (env or {}).items():
            if scheme == "no":
                self._no_proxy = [_no_proxy_entry(e) for e in value.split(",") if e.strip()]
            elif scheme in ("http", "https", "all") and value:
                self._env[scheme] = ProxyTarget.parse(value, source=f"{scheme.upper()}_PROXY")
        self._cache: dict[tuple[str, str], ProxyTarget | None] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> ProxyRoutes | None:
        """The routes of ``settings``, or None when no request can go through a proxy.

        Reads the environment now (with ``trust_env``). A :class:`SettingsError` for a bad
        proxy URL, or for a SOCKS proxy without the ``socksio`` package.
        """
        env = urllib.request.getproxies_environment() if settings.trust_env else {}
        routes = cls(rules=settings.proxy_rules, proxy=settings.proxy, env=env)
        targets = routes.targets()
        if any(t.scheme.startswith("socks") for t in targets) and not _have_socksio():
            raise SettingsError("a SOCKS proxy needs the socksio package (pip install socksio)")
        return routes if targets else None

    def targets(self) -> list[ProxyTarget]:
        """Every proxy a request may be sent to (each once)."""
        found = [t for _, t in self._rules if t is not None]
        found += [t for t in (self._proxy, *self._env.values()) if t is not None]
        return list({t.key: t for t in found}.values())

    def route(self, scheme: str, host: str) -> ProxyTarget | None:
        key = (scheme, host)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._decide(scheme, _address_key(host))
        if len(self._cache) >= _ROUTE_CACHE:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _decide(self, scheme: str, host: str) -> ProxyTarget | None:
        for pattern, target in self._rules:
            if _host_matches(pattern, host):
                return target
        if self._proxy is not None:
            return self._proxy
        target = self._env.get(scheme) or self._env.get("all")
        if target is None or _bypassed(host, self._no_proxy):
            return None
        return target


def _have_socksio() -> bool:
    return importlib.util.find_spec("socksio") is not None


def _no_proxy_entry(entry: str) -> str:
    entry = entry.strip().lstrip(".")
    if entry.startswith("["):  # [::1] or [::1]:8080
        entry = entry[1:].partition("]")[0]
    elif entry.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
        entry = entry.partition(":")[0]
    return entry if "/" in entry else _address_key(entry)


def _bypassed(host: str, no_proxy: Sequence[str]) -> bool:
    """``NO_PROXY`` as curl reads it: ``*`` for all, a name matches itself and every name
    below it (a leading dot changes nothing), an address or CIDR block matches addresses;
    ``:port`` suffixes are ignored."""
    for entry in no_proxy:
        if entry == "*" or host == entry or host.endswith(f".{entry}"):
            return True
        if "/" in entry:
            addr = _parse_ip(host)
            with contextlib.suppress(ValueError, TypeError):
                if addr is not None and addr in ipaddress.ip_network(entry, strict=False):
                    return True
    return False


# ------------------------------------------------------------------ TLS


def make_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The crawl's TLS client context; a one-line :class:`SettingsError` for a bad file."""
    if settings.verify_tls:
        ctx = httpx.create_ssl_context(trust_env=settings.trust_env)
    else:
        ctx = httpx.create_ssl_context(verify=False)
    if settings.ca_bundle is not None:
        path = settings.ca_bundle
        with _settings_error("ca_bundle", path):
            if os.path.isdir(path):
                ctx.load_verify_locations(capath=path)
            else:
                ctx.load_verify_locations(cafile=path)
    if settings.client_cert is not None:
        # an encrypted key would make OpenSSL prompt on the terminal: answer "" instead
        with _settings_error("client_cert", settings.client_key or settings.client_cert):
            ctx.load_cert_chain(settings.client_cert, settings.client_key, password=lambda: b"")
    return ctx


@contextlib.contextmanager
def _settings_error(name: str, path: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:  # ssl.SSLError included
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        reason = " ".join(str(reason).split())
        raise SettingsError(f"cannot load {name} {path!r}: {reason}") from None


# ------------------------------------------------------------------ transport


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
_DECODED = "trio_crawler.decoded"


#: Seconds an idle keep-alive connection is kept.
KEEPALIVE_EXPIRY = 30.0


class Exchanger(Protocol):
    """Sends one request and returns httpcore's response, its body still to be read."""

    async def exchange(
        self, target: Target, headers: list[tuple[bytes, bytes]], extensions: dict[str, Any]
    ) -> httpcore.Response: ...

    async def aclose(self) -> None: ...


class GuardedTransport:
    """Routes a request: to the crawl's ``direct`` connections, or to an httpcore pool per
    proxy (``routes``; each pool made on first use, its connections through the guard).

    The fetcher talks to httpcore directly (why, and the figures: the module docstring).
    ``max_connections`` bounds each proxy pool. httpcore errors are left as they are and
    translated by :meth:`Fetcher.fetch`. With ``capture_ip`` a direct response's extensions
    carry ``"server_ip"``.
    """

    def __init__(
        self,
        guard: AddressGuard,
        resolver: Resolver,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        routes: ProxyRoutes | None = None,
        capture_ip: bool = False,
        direct: Connections,
    ) -> None:
        self._guard = guard
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._routes = routes
        self._capture_ip = capture_ip
        self._direct = direct
        self._proxied: dict[str, httpcore.AsyncConnectionPool] = {}
        self._closed = False

    def _proxy_pool(self, proxy: ProxyTarget) -> httpcore.AsyncConnectionPool:
        pool = self._proxied.get(proxy.key)
        if pool is None:
            backend = GuardedBackend(self._guard, self._resolver, proxy=(proxy.host, proxy.port))
            pool = self._proxied[proxy.key] = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl_context,
                proxy=proxy.to_httpcore(self._ssl_context),
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
                keepalive_expiry=KEEPALIVE_EXPIRY,
                network_backend=backend,
            )
        return pool

    async def _check_target(self, host: str, port: int) -> None:
        """Through a proxy only the target's name can be checked: every address must pass."""
        if self._guard.allow_private:
            return
        ips = await self._resolver(host, port)
        refused = [ip for ip in ips if not self._guard.is_allowed(ip, port, host=host)]
        if refused:
            raise _Forbidden(
                f"refusing to fetch {host}:{port} through a proxy ({', '.join(refused)})"
            )

    async def exchange(
        self, target: Target, headers: list[tuple[bytes, bytes]], extensions: dict[str, Any]
    ) -> httpcore.Response:
        proxy = None
        if self._routes is not None:
            proxy = self._routes.route(target.scheme, target.host)
            if proxy is not None:
                port = target.port or _DEFAULT_PORTS[target.scheme]
                await self._check_target(target.host, port)
        if self._closed:
            raise RuntimeError("transport is closed")
        req = httpcore.Request(
            b"GET",
            httpcore.URL(
                scheme=target.scheme.encode("ascii"),
                host=target.host.encode("ascii"),
                port=target.port,
                target=target.target,
            ),
            headers=headers,
            extensions=extensions,
        )
        if proxy is None:
            resp = await self._direct.exchange(req)
            if self._capture_ip:
                resp.extensions = {**resp.extensions, "server_ip": _peer_ip(resp.extensions)}
            return resp
        return await _through_proxy(self._proxy_pool(proxy), req)

    async def aclose(self) -> None:
        """Closes the proxy pools and the direct connections (shared ones too)."""
        self._closed = True
        pools = list(self._proxied.values())
        self._proxied = {}
        for pool in pools:
            await pool.aclose()
        await self._direct.aclose()


class HttpxExchanger:
    """An httpx transport (``httpx.MockTransport`` in the timing tests) as an Exchanger."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def exchange(
        self, target: Target, headers: list[tuple[bytes, bytes]], extensions: dict[str, Any]
    ) -> httpcore.Response:
        request = httpx.Request("GET", target.url, headers=headers, extensions=extensions)
        response = await self._transport.handle_async_request(request)
        extensions = dict(response.extensions)
        if response.is_stream_consumed:
            # an in-memory transport hands over a read (and decoded) body
            extensions[_DECODED] = True
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


async def _through_proxy(
    pool: httpcore.AsyncConnectionPool, req: httpcore.Request
) -> httpcore.Response:
    """httpcore's SOCKS code asserts on replies it does not expect: make that a ProxyError."""
    try:
        return await pool.handle_async_request(req)
    except AssertionError as exc:
        raise httpcore.ProxyError(f"unexpected answer from the proxy {exc}".strip()) from exc
    except Exception as exc:
        if type(exc).__module__.startswith("socksio"):
            raise httpcore.ProxyError(f"SOCKS: {exc}") from exc
        raise


def _peer_ip(extensions: Mapping[str, Any]) -> str | None:
    stream = extensions.get("network_stream")
    if stream is None:
        return None
    try:
        addr = stream.get_extra_info("server_addr")
    except (OSError, AssertionError, AttributeError):
        return None
    return str(addr[0]) if isinstance(addr, tuple) and addr else None


@dataclasses.dataclass(frozen=True, slots=True)
class FetchResult:
    """One HTTP exchange: status, headers and the (bounded, decoded) body.

    The fields after ``wire_bytes`` describe the exchange as it went on the wire, for a WARC
    (:func:`to_exchange`). ``reason``, ``http_version`` and ``started_wall`` are always set;
    ``request_headers``, ``raw_body`` and ``ip`` only when ``settings.warc`` is.
    """

    url: str
    status: int
    headers: Headers
    body: bytes
    truncated: bool
    elapsed: float
    wire_bytes: int
    #: The reason phrase as received (``"OK"``), possibly empty.
    reason: str = ""
    #: ``"HTTP/1.1"``, ``"HTTP/1.0"``...
    http_version: str = "HTTP/1.1"
    #: ``time.time()`` when the fetch started.
    started_wall: float = 0.0
    #: The request headers as sent (``Host``, ``User-Agent``, ``Accept-Encoding``... included).
    request_headers: tuple[tuple[str, str], ...] = ()
    #: The payload as received (de-chunked, still content-encoded), cut at the body limit.
    raw_body: bytes | None = None
    #: True when ``raw_body`` is not the whole payload (cut at the limit, or reading stopped).
    raw_truncated: bool = False
    #: The address dialled, on a direct connection (through a proxy: None).
    ip: str | None = None


#: Bytes read and dropped after the end of an encoded body before the connection is closed.
_MAX_TRAILING = 64 * 1024
#: Decoded bytes taken from a decoder at a time.
_DECODE_STEP = 1024 * 1024
#: Crawl-wide bytes of decoder windows (brotli up to 16 MiB, zstd up to 8 MiB) in use at once.
DECODER_WINDOW_BUDGET = 32 * 1024 * 1024


class WindowBudget:
    """A crawl-wide budget of bytes for decoder windows (a counting semaphore in bytes).

    gzip and deflate need 32 KiB, but a brotli stream may declare a 16 MiB window and a zstd
    frame 8 MiB, and their decoders touch it all: sixteen brotli bombs would hold 16 x 17 MiB
    besides their bodies. A decoder whose window is over ``FREE_WINDOW`` waits here before it
    decodes (the wait counts against the request deadline); one window larger than the whole
    budget takes the whole budget.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def acquire(self, amount: int) -> int:
        """Reserve ``amount`` bytes (capped at the total); return what to :meth:`release`."""
        amount = min(amount, self.total)
        await trio.lowlevel.checkpoint_if_cancelled()
        while self.used + amount > self.total:
            await self._lot.park()
        self.used += amount
        return amount

    def release(self, amount: int) -> None:
        if amount:
            self.used -= amount
            self._lot.unpark_all()


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc``, if any: httpcore's Trio backend reports a failed handshake
    as ``ConnectError`` (or, for a client certificate refused after a TLS 1.3 handshake,
    ``ReadError``) caused by ``trio.BrokenResourceError`` caused by the ``ssl.SSLError``. An
    abrupt end of the stream (``SSLEOFError``...) is not a TLS failure but a reset."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, ssl.SSLError):
            quiet = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
            return None if isinstance(current, quiet) else current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _message_of(exc: BaseException) -> str:
    tls = _tls_cause(exc)
    if tls is not None and tls is not exc:
        text = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or tls
        return f"{type(exc).__name__}: TLS {text}"
    return f"{type(exc).__name__}: {exc}".strip()


def _kind_of(exc: BaseException) -> FailureKind:
    if isinstance(exc, (httpcore.TimeoutException, httpx.TimeoutException, trio.TooSlowError)):
        return FailureKind.TIMEOUT
    if isinstance(exc, (httpcore.ProxyError, httpx.ProxyError)):
        return FailureKind.PROXY
    if _tls_cause(exc) is not None:
        return FailureKind.TLS
    if isinstance(exc, (httpcore.ConnectError, httpx.ConnectError)):
        text = str(exc).lower()
        if "certificate" in text or "ssl" in text or "tls" in text:
            return FailureKind.TLS
        if "name or service" in text or "getaddrinfo" in text or "nodename" in text:
            return FailureKind.DNS
        return FailureKind.CONNECT
    if isinstance(exc, (httpcore.RemoteProtocolError, httpx.RemoteProtocolError)):
        text = str(exc).lower()
        if "peer closed" in text or "incomplete" in text or "without sending" in text:
            return FailureKind.RESET
        return FailureKind.PROTOCOL
    if isinstance(exc, (httpcore.ProtocolError, httpx.ProtocolError, httpx.DecodingError)):
        return FailureKind.PROTOCOL
    if isinstance(exc, (httpcore.ReadError, httpcore.WriteError, httpx.ReadError)):
        return FailureKind.RESET
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol, httpcore.UnsupportedProtocol)):
        return FailureKind.BAD_URL
    if isinstance(exc, (OSError, trio.BrokenResourceError)):
        return FailureKind.CONNECT
    return FailureKind.OTHER


#: Idle connections kept beyond ``concurrency`` (hosts the crawl comes back to).
_SPARE_IDLE = 16


class Fetcher:
    """Owns the HTTP client(s) of one crawl. Use as ``async with Fetcher(settings) as f``."""

    def __init__(
        self,
        settings: Settings,
        *,
        guard: AddressGuard | None = None,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clients: int | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.settings = settings
        self.guard = guard or AddressGuard(
            allow_private=settings.allow_private, allowed=settings.allowed_addresses
        )
        self.resolver = resolver or Resolver()
        self._capture = settings.warc is not None
        self._transport_override = transport
        self._n_clients = max(1, settings.concurrency if clients is None else clients)
        self._exchangers: list[Exchanger] = []
        self._next = 0
        self._clock = clock
        self._window_budget = WindowBudget(DECODER_WINDOW_BUDGET)
        base = {
            "user-agent": settings.user_agent,
            "accept-encoding": ACCEPT_ENCODING,
            "accept": "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8",
            **{k.lower(): v for k, v in settings.headers.items()},
        }
        # encoded once; a value that is not ASCII is a one-line SettingsError, not a failure
        # of every request
        try:
            self._base_headers = [(k.encode("ascii"), v.encode("ascii")) for k, v in base.items()]
        except UnicodeEncodeError as exc:
            raise SettingsError(f"a request header is not ASCII: {exc.object!r}") from None
        try:  # a field that would split the request head: once here, not on every request
            request_head(b"GET", b"/", self._base_headers)
        except httpcore.LocalProtocolError as exc:
            raise SettingsError(f"a request header is not valid HTTP: {exc}") from None
        self._base_names = frozenset(base)
        self._extensions: dict[str, Any] = {
            "timeout": {
                "connect": settings.connect_timeout,
                "read": settings.read_timeout,
                "write": settings.read_timeout,
                "pool": None,
            }
        }

    async def __aenter__(self) -> Fetcher:
        s = self.settings
        if self._transport_override is not None:
            self._exchangers.append(HttpxExchanger(self._transport_override))
            return self
        per_client = max(1, -(-s.concurrency // self._n_clients))
        # both raise a one-line SettingsError (a missing CA file, a bad proxy in the environment)
        ctx = make_ssl_context(s)
        routes = ProxyRoutes.from_settings(s)
        # one set of direct connections for the crawl (no pool scan: _connections.py); the
        # proxy pools stay one per client, and without proxies one transport is enough
        direct = Connections(
            GuardedBackend(self.guard, self.resolver),
            ssl_context=ctx,
            max_idle=s.concurrency + _SPARE_IDLE,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )
        for _ in range(self._n_clients if routes is not None else 1):
            self._exchangers.append(
                GuardedTransport(
                    self.guard,
                    self.resolver,
                    ssl_context=ctx,
                    max_connections=per_client + 4,
                    routes=routes,
                    capture_ip=self._capture,
                    direct=direct,
                )
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        exchangers, self._exchangers = self._exchangers, []
        with trio.move_on_after(1) as scope:
            scope.shield = True
            for exchanger in exchangers:
                await exchanger.aclose()

    def _exchanger(self) -> Exchanger:
        if not self._exchangers:
            raise RuntimeError("Fetcher used outside 'async with'")
        self._next = (self._next + 1) % len(self._exchangers)
        return self._exchangers[self._next]

    def _headers(
        self, target: Target, extra: Mapping[str, str] | None
    ) -> list[tuple[bytes, bytes]]:
        """Host, the crawl's headers, then the request's own (which replace those of the
        same name, in any case)."""
        if not extra:
            return [(b"Host", target.netloc), *self._base_headers]
        names = {k.lower() for k in extra}
        host = [] if "host" in names else [(b"Host", target.netloc)]
        base = self._base_headers
        if names & self._base_names:
            base = [(k, v) for k, v in base if k.decode("ascii") not in names]
        return [*host, *base, *((k.encode("ascii"), v.encode("ascii")) for k, v in extra.items())]

    async def fetch(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        max_body: int | None = None,
    ) -> FetchResult:
        """GET ``url`` once. Raises :class:`FetchError`; never an httpx exception.

        With ``settings.warc`` set, a :class:`FetchError` carries ``request_headers`` (empty
        when the request could not even be built) and ``started_wall``: see
        :func:`failure_request`.
        """
        limit = self.settings.max_body_size if max_body is None else max_body
        started = self._clock()
        wall = time.time()
        sent: tuple[tuple[str, str], ...] = ()
        try:
            # move_on_after, not fail_after: a plain cancel scope costs less than fail_after's
            # generator context manager, on every request
            with trio.move_on_after(self.settings.request_timeout):
                target = split_target(url)
                raw_headers = self._headers(target, headers)
                if self._capture:
                    sent = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers)
                response = await self._exchanger().exchange(target, raw_headers, self._extensions)
                return await self._read(response, url, limit, started, wall, sent)
            raise trio.TooSlowError
        except FetchError as exc:
            error = exc
        except trio.TooSlowError:
            error = FetchError(
                FailureKind.TIMEOUT,
                f"no complete answer within {self.settings.request_timeout:g}s",
                url=url,
            )
        except _Forbidden as exc:
            error = FetchError(FailureKind.FORBIDDEN_ADDRESS, str(exc), url=url)
        except DecodeError as exc:
            error = FetchError(FailureKind.CONTENT_ENCODING, str(exc), url=url)
        except (
            httpx.HTTPError,
            httpcore.ProtocolError,
            httpcore.NetworkError,
            httpcore.ProxyError,
            OSError,
        ) as exc:
            error = FetchError(_kind_of(exc), _message_of(exc), url=url)
        except httpcore.TimeoutException as exc:
            error = FetchError(FailureKind.TIMEOUT, f"{type(exc).__name__}", url=url)
        except (httpx.InvalidURL, httpcore.UnsupportedProtocol, ValueError) as exc:
            error = FetchError(FailureKind.BAD_URL, str(exc), url=url)
        if not error.url:
            error.url = url  # a DNS failure from the resolver names no URL
        if self._capture:
            _annotate(error, sent, wall)
        raise error from None

    async def _read(
        self,
        response: httpcore.Response,
        url: str,
        limit: int,
        started: float,
        wall: float,
        sent: tuple[tuple[str, str], ...],
    ) -> FetchResult:
        reserved = 0
        # the payload as received, for a WARC: only collected when asked for
        raw_parts: list[bytes] | None = [] if self._capture else None
        raw_size = 0
        raw_cut = False
        try:
            hdrs = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers)
            extensions = response.extensions
            decoder = make_decoder(None if _DECODED in extensions else hdrs.get("content-encoding"))
            chunks: list[bytes] = []
            size = 0
            wire = 0
            truncated = False
            raw_chunks: Any = response.stream
            trailing = 0
            read_all = False
            async for chunk in raw_chunks:
                wire += len(chunk)
                if raw_parts is not None and not raw_cut:
                    room = limit - raw_size
                    raw_cut = len(chunk) > room
                    piece = chunk[:room] if raw_cut else chunk
                    raw_parts.append(piece)
                    raw_size += len(piece)
                if decoder.finished:
                    # bytes after the end of the encoded stream: read a little (so an ordinary
                    # response ends cleanly and its connection is kept), never keep them
                    trailing += len(chunk)
                    if trailing > _MAX_TRAILING:
                        break
                    continue
                out = decoder.feed(chunk, min(_DECODE_STEP, limit - size))
                if decoder.waiting:
                    reserved = await self._window_budget.acquire(decoder.memory)
                    decoder.admit()
                    out = decoder.feed(b"", min(_DECODE_STEP, limit - size))
                # at most one step of output at a time: no copy larger than that
                while out:
                    chunks.append(out)
                    size += len(out)
                    if size >= limit:
                        break
                    out = decoder.feed(b"", min(_DECODE_STEP, limit - size))
                if size >= limit:
                    truncated = True
                    break
            else:
                read_all = True
            if not truncated and not decoder.waiting:
                while size < limit and (tail := decoder.flush(min(_DECODE_STEP, limit - size))):
                    chunks.append(tail)
                    size += len(tail)
                    truncated = size >= limit
        finally:
            self._window_budget.release(reserved)
            with trio.move_on_after(0.5) as scope:
                scope.shield = True
                await _close_quietly(response)
        reason = extensions.get("reason_phrase", b"")
        version = extensions.get("http_version", b"HTTP/1.1")
        return FetchResult(
            url=url,
            status=response.status,
            headers=hdrs,
            body=b"".join(chunks),
            truncated=truncated,
            elapsed=self._clock() - started,
            wire_bytes=wire,
            reason=reason.decode("ascii", "ignore"),
            http_version=version.decode("ascii", "ignore"),
            started_wall=wall,
            request_headers=sent,
            raw_body=None if raw_parts is None else b"".join(raw_parts),
            raw_truncated=raw_cut or not read_all,
            ip=extensions.get("server_ip"),
        )


def _annotate(error: FetchError, sent: tuple[tuple[str, str], ...], wall: float) -> None:
    # FetchError is defined in _exceptions; these attributes are optional extras
    error.__dict__.update(request_headers=sent, started_wall=wall)


def failure_request(error: FetchError) -> tuple[tuple[tuple[str, str], ...], float]:
    """``(request_headers, started_wall)`` of a failed fetch (``((), time.time())`` if unknown)."""
    headers: tuple[tuple[str, str], ...] = getattr(error, "request_headers", ())
    started: float | None = getattr(error, "started_wall", None)
    return headers, (time.time() if started is None else started)


def to_exchange(result: FetchResult) -> Exchange:
    """The WARC :class:`~trio_crawler._warc.Exchange` of a result fetched with ``settings.warc``.

    Raises :class:`ValueError` for a result fetched without capture (no raw payload).
    """
    from ._warc import Exchange

    if result.raw_body is None:
        raise ValueError("fetched without settings.warc: the payload as received was not kept")
    return Exchange(
        url=result.url,
        method="GET",
        request_headers=result.request_headers,
        status=result.status,
        reason=result.reason,
        http_version=result.http_version,
        response_headers=result.headers.raw(),
        payload=result.raw_body,
        truncated=result.raw_truncated,
        started=result.started_wall,
        ip=result.ip,
    )


async def _close_quietly(response: httpcore.Response) -> None:
    """Close a response; a broken connection at this point changes nothing already read."""
    with contextlib.suppress(
        httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError, OSError
    ):
        await response.aclose()


def host_port(url: str) -> tuple[str, int]:
    """The host and port an http(s) URL dials (:func:`split_target`); ValueError if none."""
    target = split_target(url)
    return target.host, target.port or _DEFAULT_PORTS[target.scheme]


def allow_seed_hosts(guard: AddressGuard, urls: Sequence[str]) -> None:
    """A seed names its own host:port as allowed, private or not (that pair only)."""
    for url in urls:
        try:
            host, port = host_port(url)
        except ValueError:
            continue
        if host:
            guard.allow_host(host, port)
