"""Name resolution for the fetcher: one replaceable seam and a small cache in front of it.

The bottom floor of :mod:`trio_crawler._http` with :mod:`.guard`: the backend asks the
:class:`Resolver` for a name's addresses and the guard judges each one before it is dialled.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

import trio

from .._exceptions import FailureKind, FetchError

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
