"""Name resolution for the fetcher: one replaceable seam and a cache in front of it.

The bottom floor of :mod:`trio_crawler._http` with :mod:`.guard`: the backend asks the
:class:`Resolver` for a name's addresses and the guard judges each one before it is dialled.

At scale (thousands of hosts): the system resolver (``getaddrinfo``) runs in worker threads of
its own, at most :data:`DNS_THREADS` at once, so name lookups never take the threads other
work needs (the SQLite store's writer) and never block the event loop; every lookup has a
deadline (a slow or failing resolver for one host holds only that host's requests, and a
lookup that hangs is abandoned); concurrent lookups of one name share one query; answers are
cached per crawl for ``ttl`` seconds, failures for ``negative_ttl``, and up to ``max_entries``
names (at 20,000 hosts, about 4 MB). A name the hosts file maps to one address is answered
from the file, read once and again when it changes (:mod:`.hosts`), not by glibc reading it
line by line for every name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import trio

from .._exceptions import FailureKind, FetchError
from .hosts import HostsFile

#: Name resolution seam: ``(host, port) -> [ip, ...]``. Tests replace it to make a public-looking
#: name resolve to loopback.
Resolve = Callable[[str, int], Awaitable[list[str]]]


#: Worker threads resolving names at once, per resolver (each lookup blocks its thread).
DNS_THREADS = 64


class SystemResolve:
    """The system resolver: ``getaddrinfo`` in worker threads of its own (at most
    ``threads`` at once); cancelling a lookup abandons its thread.

    A name the hosts file maps to one address is answered from the file, read once
    (:class:`~.hosts.HostsFile`: when the system reads the file first, ``hosts_file`` is the
    system's by default; ``None``: always ask ``getaddrinfo``).
    """

    def __init__(
        self,
        threads: int = DNS_THREADS,
        *,
        hosts_file: HostsFile | Literal["system"] | None = "system",
        getaddrinfo: Callable[..., list[Any]] = socket.getaddrinfo,
    ) -> None:
        self._threads = trio.CapacityLimiter(threads)
        self._hosts = HostsFile.for_this_system() if hosts_file == "system" else hosts_file
        self._refreshing = trio.Lock()
        self._getaddrinfo = getaddrinfo

    async def __call__(self, host: str, port: int) -> list[str]:
        hosts = self._hosts
        if hosts is not None:
            if hosts.due():
                async with self._refreshing:
                    if hosts.due():
                        await trio.to_thread.run_sync(hosts.refresh, limiter=self._threads)
            address = hosts.lookup(host)
            if address is not None:
                return [address]
        infos = await trio.to_thread.run_sync(
            self._getaddrinfo,
            host,
            port,
            0,
            socket.SOCK_STREAM,
            abandon_on_cancel=True,
            limiter=self._threads,
        )
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
        resolve: Resolve | None = None,
        *,
        ttl: float = 300.0,
        timeout: float = 10.0,
        negative_ttl: float = 30.0,
        max_entries: int = 65_536,
    ) -> None:
        self._resolve = resolve or SystemResolve()
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
