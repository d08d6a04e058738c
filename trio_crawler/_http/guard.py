"""The address guard (pure): which ``address:port`` the crawler may connect to.

No I/O here: :class:`AddressGuard` judges an address the backend is about to dial, and
:func:`is_public_address` says whether an address is public unicast. The backend
(:mod:`.backend`) applies it at connect time, on the addresses actually dialled.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from .._urls import DEFAULT_PORTS, request_parts


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


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
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
    addr = parse_ip(ip)
    if addr is None:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr in _V6_NAT64:
            return is_public_address(str(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)))
        return addr in _V6_GLOBAL_UNICAST and not any(addr in net for net in _V6_NOT_PUBLIC)
    return not any(addr in net for net in _V4_NOT_PUBLIC)


def address_key(host: str) -> str:
    """One spelling per address (``::FFFF:7f00:1`` and ``127.0.0.1`` are one); names lowered."""
    addr = parse_ip(host)
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
        self._allowed.add((address_key(host), port))

    def is_allowed(self, ip: str, port: int, *, host: str | None = None) -> bool:
        if self.allow_private:
            return True
        if (address_key(ip), port) in self._allowed or (
            host is not None and (address_key(host), port) in self._allowed
        ):
            return True
        return is_public_address(ip)


def host_port(url: str) -> tuple[str, int]:
    """The host and port an http(s) URL dials (the URL Standard); ValueError if none."""
    parts = request_parts(url)
    return parts.host, parts.port or DEFAULT_PORTS[parts.scheme]


def allow_seed_hosts(guard: AddressGuard, urls: Sequence[str]) -> None:
    """A seed names its own host:port as allowed, private or not (that pair only)."""
    for url in urls:
        try:
            host, port = host_port(url)
        except ValueError:
            continue
        if host:
            guard.allow_host(host, port)
