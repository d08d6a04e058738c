"""A tiny DNS server for the broad-crawl benchmark's ``--resolver dns`` and ``--slow-dns MS``.

It answers the site's names (``h00042.bench.test`` -> its loopback address, ``Site.address``)
after an optional delay, over UDP, and nothing else: an A query for a site name gets its
address (TTL 300), an AAAA query an empty NOERROR answer, any other name NXDOMAIN. Only the
crawler sees it: the benchmark runs the crawler in a private mount namespace whose
/etc/resolv.conf names this server (see ``bench_broad.py``), so the machine's own resolver is
never changed.

    python scripts/bench_broad_dns.py --listen 127.0.0.153 --hosts N [--delay SECONDS]

It prints ``ready`` once listening and, at SIGTERM or the end of stdin, ``queries N``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
import sys

from bench_broad_site import DOMAIN, Site

TYPE_A = 1
TYPE_AAAA = 28
NXDOMAIN = 3
FORMERR = 1
TTL = 300


def parse_query(packet: bytes) -> tuple[int, int, list[str], int, bytes] | None:
    """``(id, flags, labels, qtype, question bytes)`` of a query with one question, or None."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1 or flags & 0x8000:
        return None
    pos = 12
    labels: list[str] = []
    while True:
        if pos >= len(packet):
            return None
        size = packet[pos]
        pos += 1
        if size == 0:
            break
        if size > 63 or pos + size > len(packet):
            return None
        labels.append(packet[pos : pos + size].decode("ascii", "replace").lower())
        pos += size
    if pos + 4 > len(packet):
        return None
    qtype = struct.unpack("!H", packet[pos : pos + 2])[0]
    return ident, flags, labels, qtype, packet[12 : pos + 4]


def answer(packet: bytes, hosts: int) -> bytes | None:
    """The response to a query packet (None: not a query worth answering)."""
    parsed = parse_query(packet)
    if parsed is None:
        if len(packet) < 12:
            return None
        ident = struct.unpack("!H", packet[:2])[0]
        return struct.pack("!HHHHHH", ident, 0x8180 | FORMERR, 0, 0, 0, 0)
    ident, flags, labels, qtype, question = parsed
    rd = flags & 0x0100
    name = ".".join(labels)
    host = None
    if name.endswith("." + DOMAIN) and len(labels) == 3:
        first = labels[0]
        if len(first) == 6 and first[0] == "h" and first[1:].isdigit() and int(first[1:]) < hosts:
            host = int(first[1:])
    if host is None:
        return struct.pack("!HHHHHH", ident, 0x8480 | rd | NXDOMAIN, 1, 0, 0, 0) + question
    if qtype != TYPE_A:
        return struct.pack("!HHHHHH", ident, 0x8480 | rd, 1, 0, 0, 0) + question
    address = bytes(int(x) for x in Site.address(host).split("."))
    record = struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, TTL, 4) + address
    return struct.pack("!HHHHHH", ident, 0x8480 | rd, 1, 1, 0, 0) + question + record


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, hosts: int, delay: float) -> None:
        self.hosts = hosts
        self.delay = delay
        self.queries = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queries += 1
        reply = answer(data, self.hosts)
        if reply is None or self.transport is None:
            return
        if self.delay > 0:
            asyncio.get_running_loop().call_later(self.delay, self._send, reply, addr)
        else:
            self.transport.sendto(reply, addr)

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(reply, addr)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Protocol(args.hosts, args.delay), local_addr=(args.listen, args.port)
    )
    done = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: done.done() or done.set_result(None))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)

    async def commands() -> None:
        while True:
            line = (await reader.readline()).decode().split()
            if not line or line[0] == "quit":
                return
            if line[0] == "count":
                print(f"queries {protocol.queries}", flush=True)

    task = asyncio.ensure_future(commands())
    await asyncio.wait([task, done], return_when=asyncio.FIRST_COMPLETED)
    print(f"queries {protocol.queries}", flush=True)
    transport.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.153")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--hosts", type=int, required=True)
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
