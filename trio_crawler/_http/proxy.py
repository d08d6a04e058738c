"""Proxies: which proxy, if any, serves a request (pure), and the tunnels through them.

:class:`ProxyRoutes` decides per ``(scheme, host)`` from the settings' rules, ``proxy`` and,
with ``trust_env``, the environment (``NO_PROXY`` honoured); :class:`ProxyTarget` is one
parsed proxy URL.

Through a proxy the crawler speaks to the target with its own HTTP/1.1 connection
(:mod:`.http11`), exactly as on a direct connection, so both read responses with one parser
and one set of leniencies:

* ``http://`` target through an HTTP(S) proxy: *forwarded* -- the connection is to the proxy
  and each request carries the absolute URL (``GET http://host/path``) and the proxy's
  ``Proxy-Authorization``;
* ``https://`` target through an HTTP(S) proxy: a ``CONNECT host:port`` tunnel
  (:func:`open_connect_tunnel`), then TLS to the target inside it;
* any target through a SOCKS5 proxy: a SOCKS5 ``CONNECT`` by name (RFC 1928, with RFC 1929
  user/password when the URL has them; :func:`open_socks5_tunnel`), then TLS for https.

A proxy that refuses, answers out of protocol or hangs up during the handshake raises
``httpcore.ProxyError`` (failure kind ``proxy``); not reaching the proxy at all is a
connection failure.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import unquote, urlsplit

import httpcore

from .._exceptions import SettingsError
from .._settings import Settings
from .guard import address_key, parse_ip

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

    @property
    def forwards_http(self) -> bool:
        """True for an HTTP(S) proxy: plain-http requests go to it in absolute form."""
        return self.scheme in ("http", "https")

    def authorization(self) -> bytes | None:
        """The ``Proxy-Authorization`` value (Basic), or None without credentials."""
        if self.auth is None:
            return None
        user, password = self.auth
        return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


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
                address_key(pattern),
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
        proxy URL.
        """
        env = urllib.request.getproxies_environment() if settings.trust_env else {}
        routes = cls(rules=settings.proxy_rules, proxy=settings.proxy, env=env)
        return routes if routes.targets() else None

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
        found = self._decide(scheme, address_key(host))
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


def _no_proxy_entry(entry: str) -> str:
    entry = entry.strip().lstrip(".")
    if entry.startswith("["):  # [::1] or [::1]:8080
        entry = entry[1:].partition("]")[0]
    elif entry.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
        entry = entry.partition(":")[0]
    return entry if "/" in entry else address_key(entry)


def _bypassed(host: str, no_proxy: Sequence[str]) -> bool:
    """``NO_PROXY`` as curl reads it: ``*`` for all, a name matches itself and every name
    below it (a leading dot changes nothing), an address or CIDR block matches addresses;
    ``:port`` suffixes are ignored."""
    for entry in no_proxy:
        if entry == "*" or host == entry or host.endswith(f".{entry}"):
            return True
        if "/" in entry:
            addr = parse_ip(host)
            with contextlib.suppress(ValueError, TypeError):
                if addr is not None and addr in ipaddress.ip_network(entry, strict=False):
                    return True
    return False


#: The largest CONNECT answer head read from a proxy.
_MAX_CONNECT_HEAD = 16 * 1024


class _Reader:
    """Exact reads from a stream during a proxy handshake (nothing may be left over)."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, timeout: float | None) -> None:
        self.stream = stream
        self.timeout = timeout
        self.buffer = b""

    async def more(self) -> None:
        data = await self.stream.read(4096, self.timeout)
        if not data:
            raise httpcore.ProxyError("the proxy closed the connection during the handshake")
        self.buffer += data

    async def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self.more()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


async def open_connect_tunnel(
    stream: httpcore.AsyncNetworkStream,
    proxy: ProxyTarget,
    host: str,
    port: int,
    timeout: float | None,  # noqa: ASYNC109  (each read's and write's, as the streams take)
) -> None:
    """Ask an HTTP(S) proxy for a tunnel to ``host:port`` over ``stream`` (``CONNECT``)."""
    authority = (f"[{host}]" if ":" in host else host).encode("idna") + f":{port}".encode()
    lines = [b"CONNECT " + authority + b" HTTP/1.1", b"Host: " + authority]
    auth = proxy.authorization()
    if auth is not None:
        lines.append(b"Proxy-Authorization: " + auth)
    await stream.write(b"\r\n".join(lines) + b"\r\n\r\n", timeout)
    reader = _Reader(stream, timeout)
    while b"\r\n\r\n" not in reader.buffer and b"\n\n" not in reader.buffer:
        if len(reader.buffer) > _MAX_CONNECT_HEAD:
            raise httpcore.ProxyError("the proxy's answer to CONNECT is too long")
        await reader.more()
    head, _, rest = reader.buffer.replace(b"\r\n", b"\n").partition(b"\n\n")
    status_line = head.split(b"\n", 1)[0]
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpcore.ProxyError(f"the proxy's answer to CONNECT is not HTTP: {status_line!r}")
    status = int(parts[1])
    if not 200 <= status < 300:
        reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
        raise httpcore.ProxyError(f"the proxy refused the tunnel: {status} {reason}".rstrip())
    if rest:
        raise httpcore.ProxyError("the proxy sent data before the tunnel was used")


#: SOCKS5 reply codes (RFC 1928, 6).
_SOCKS5_REPLIES = {
    1: "general failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


def socks5_connect_request(host: str, port: int) -> bytes:
    """The SOCKS5 ``CONNECT`` request for ``host:port``: an address as itself, a name as a
    name (the proxy resolves it)."""
    addr = parse_ip(host)
    if addr is not None and addr.version == 4:
        where = b"\x01" + addr.packed
    elif addr is not None:
        where = b"\x04" + addr.packed
    else:
        name = host.encode("idna")
        if not 0 < len(name) < 256:
            raise httpcore.ProxyError(f"host name too long for SOCKS5: {host!r}")
        where = b"\x03" + bytes([len(name)]) + name
    return b"\x05\x01\x00" + where + port.to_bytes(2, "big")


async def open_socks5_tunnel(
    stream: httpcore.AsyncNetworkStream,
    proxy: ProxyTarget,
    host: str,
    port: int,
    timeout: float | None,  # noqa: ASYNC109  (each read's and write's, as the streams take)
) -> None:
    """SOCKS5 handshake over ``stream`` (no auth, or user/password), then ``CONNECT``."""
    method = 0x00 if proxy.auth is None else 0x02
    await stream.write(bytes([5, 1, method]), timeout)
    reader = _Reader(stream, timeout)
    version, chosen = await reader.exactly(2)
    if version != 5 or chosen != method:
        raise httpcore.ProxyError("the SOCKS5 proxy refused the authentication method")
    if proxy.auth is not None:
        user, password = (part.encode() for part in proxy.auth)
        if len(user) > 255 or len(password) > 255:
            raise httpcore.ProxyError("SOCKS5 user name or password too long")
        await stream.write(
            bytes([1, len(user)]) + user + bytes([len(password)]) + password, timeout
        )
        _, ok = await reader.exactly(2)
        if ok != 0:
            raise httpcore.ProxyError("the SOCKS5 proxy refused the user name or password")
    await stream.write(socks5_connect_request(host, port), timeout)
    version, reply, _, kind = await reader.exactly(4)
    if version != 5:
        raise httpcore.ProxyError("the SOCKS5 proxy answered out of protocol")
    if reply != 0:
        reason = _SOCKS5_REPLIES.get(reply, f"error {reply}")
        raise httpcore.ProxyError(f"the SOCKS5 proxy could not connect: {reason}")
    if kind == 1:
        await reader.exactly(4 + 2)
    elif kind == 4:
        await reader.exactly(16 + 2)
    elif kind == 3:
        await reader.exactly((await reader.exactly(1))[0] + 2)
    else:
        raise httpcore.ProxyError("the SOCKS5 proxy answered with an unknown address type")
    if reader.buffer:
        raise httpcore.ProxyError("the SOCKS5 proxy sent data before the tunnel was used")
