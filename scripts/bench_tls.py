"""CPU of a new HTTPS connection, with and without resuming the origin's TLS session.

A loopback TLS server (a child process, certificate from a throwaway trustme CA) answers a
small page and closes every connection; the crawler's :class:`Fetcher` fetches it with no
idle connection kept (``keepalive_connections=0``), so every request is a new TCP connection
and a new handshake. Rounds alternate between the fetcher as it is (resuming) and the fetcher
with resumption turned off, and print the client's CPU per connection (this process only)
and how many handshakes the server saw resumed.

    .venv/bin/python scripts/bench_tls.py --requests 1000 --rounds 3

Measured on the 2-core machine (TLS 1.3, a 2048-bit RSA certificate from trustme), client CPU
per new connection, resuming / not, round by round: 1,712 / 1,849, 1,671 / 1,834,
1,630 / 2,113 us (medians 1,671 / 1,849: a tenth less); 1,000 of 1,000 handshakes resumed.
The rest of the cost is the key exchange, which a resumed TLS 1.3 handshake still does, and
Python's and Trio's share of a connection.
"""

from __future__ import annotations

import argparse
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
import trustme

from trio_crawler import Settings
from trio_crawler._http import Fetcher
from trio_crawler._http.tls import TlsSessions

_BODY = b"<html><body>" + b"x" * 2000 + b"</body></html>"


def _answer(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def _serve(pem: str) -> None:
    """The server (the child process): every connection answered once, then closed;
    ``GET /count`` answers how many handshakes so far resumed a session."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pem)
    resumed = 0

    async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
        nonlocal resumed
        try:
            await stream.do_handshake()
            resumed += bool(stream.session_reused)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            count = data.startswith(b"GET /count")
            await stream.send_all(_answer(str(resumed).encode() if count else _BODY))
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    listeners = await trio.open_ssl_over_tcp_listeners(
        0, ctx, host="127.0.0.1", https_compatible=True
    )
    print(listeners[0].transport_listener.socket.getsockname()[1], flush=True)
    await trio.serve_listeners(handler, listeners)


class _NoSessions(TlsSessions):
    def get(self, key: object) -> None:
        return None


async def _round(settings: Settings, url: str, requests: int, resume: bool) -> float:
    async with Fetcher(settings) as fetcher:
        transport = fetcher._exchanger  # a benchmark: the one switch it needs
        if not resume:
            transport.tls_sessions = _NoSessions()  # type: ignore[union-attr]
        await fetcher.fetch(url)  # the first handshake is a full one either way
        start = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(requests):
            await fetcher.fetch(url)
        end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)
    return cpu / requests * 1e6


async def _count(settings: Settings, origin: str) -> int:
    async with Fetcher(settings) as fetcher:
        return int((await fetcher.fetch(origin + "/count")).body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", metavar="PEM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(_serve, args.serve)
        return
    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        ca_pem, server_pem = Path(tmp, "ca.pem"), Path(tmp, "server.pem")
        ca.cert_pem.write_to_path(str(ca_pem))
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(server_pem)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            origin = f"https://127.0.0.1:{port}"
            settings = Settings(
                allowed_addresses=(f"127.0.0.1:{port}",),
                ca_bundle=str(ca_pem),
                keepalive_connections=0,
                max_retries=0,
            )
            print(f"{args.requests} new HTTPS connections a round, one request each")
            print("round  resuming  client CPU us/connection  resumed at the server")
            for n in range(1, args.rounds + 1):
                for resume in (True, False):
                    before = trio.run(_count, settings, origin)
                    t0 = time.perf_counter()
                    us = trio.run(_round, settings, origin + "/", args.requests, resume)
                    wall = time.perf_counter() - t0
                    after = trio.run(_count, settings, origin)
                    print(
                        f"{n:5}  {'yes' if resume else 'no':8}  {us:24.0f}  "
                        f"{after - before:5} of {args.requests + 1} ({wall:.1f} s)"
                    )
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
