"""A hostile loopback server, as a library of handlers for :class:`trio_crawler.testing.Site`.

Each ``*`` function below returns a :data:`~trio_crawler.testing.RawHandler`: once the test
server has parsed the crawler's request, the handler owns the TCP stream and misbehaves at
will (invalid HTTP, resets, silence, drips, endless compression bombs). Mount one with
``site.add_raw("/path", handler)``.

:class:`ConnectionCounter` is a listener of its own that counts every TCP connection it
accepts, even one that never sends a request: the witness of the address-guard tests.

Run as a script, this module measures the crawler's peak memory on compression bombs in a
process of its own (``ru_maxrss`` covers a whole process, so it cannot be measured inside
pytest)::

    python tests/hostile.py rss gzip 16     # 16 endless gzip bombs crawled at once
    python tests/hostile.py rss identity 16 # 16 plain bodies of 200 MB

It serves the bombs itself, crawls them with the default ``max_body_size`` and concurrency,
and prints one JSON line with the peak RSS (MiB, ``VmHWM``) and the crawl's figures. The
server's own cost is a few KiB: it repeats one precomputed compressed block.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import resource
import socket
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import brotli
import trio
import zstandard

from trio_crawler.testing import RawHandler, RecordedRequest

MiB = 1024 * 1024
ENCODINGS = ("gzip", "deflate", "deflate-raw", "br", "zstd", "zstd-frames", "identity")


# ------------------------------------------------------------------ bodies


@functools.cache
def _bomb_parts(encoding: str) -> tuple[bytes, bytes]:
    """``(head, block)``: ``head + block * n`` is a valid encoded prefix of ``n + 1`` MiB of
    zeros, for every ``n``: the stream never ends. Each block is about 1 KiB on the wire.

    zlib's full flush and brotli's and zstd's flushes leave the compressor in the same state
    after each MiB of zeros, so the bytes of one block repeat exactly.
    """
    zeros = bytes(MiB)
    if encoding in ("gzip", "deflate", "deflate-raw"):
        wbits = {"gzip": 31, "deflate": 15, "deflate-raw": -15}[encoding]
        co = zlib.compressobj(9, zlib.DEFLATED, wbits)
        head = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
        block = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    elif encoding == "br":
        bo = brotli.Compressor(quality=5, lgwin=24)  # the largest window brotli allows
        head = bo.process(zeros) + bo.flush()
        block = bo.process(zeros) + bo.flush()
    elif encoding == "zstd":
        # the largest window RFC 9659 allows (8 MiB)
        params = zstandard.ZstdCompressionParameters.from_level(3, window_log=23)
        zo = zstandard.ZstdCompressor(compression_params=params).compressobj()
        head = zo.compress(zeros) + zo.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        block = zo.compress(zeros) + zo.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    elif encoding == "zstd-frames":
        # one complete 1 MiB frame, repeated: a multi-frame stream
        head = block = zstandard.ZstdCompressor(level=3).compress(zeros)
    else:
        raise ValueError(encoding)
    return head, block


def bomb_chunks(encoding: str, batch: int = 64) -> Iterator[bytes]:
    """The endless encoded stream of zeros, ``batch`` blocks (``batch`` MiB decoded) a chunk."""
    if encoding == "identity":
        chunk = bytes(MiB)
        while True:
            yield chunk
    head, block = _bomb_parts(encoding)
    yield head
    many = block * batch
    while True:
        yield many


def content_encoding(encoding: str) -> str:
    return {"deflate-raw": "deflate", "zstd-frames": "zstd"}.get(encoding, encoding)


# ------------------------------------------------------------------ handlers


def _response_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def reset(stream: trio.SocketStream) -> None:
    """Make the coming close send a TCP RST (SO_LINGER with a zero timeout)."""
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def raw(data: bytes, *, then: str = "close") -> RawHandler:
    """Send ``data`` as is, then ``close``, ``reset`` (RST) or ``hang`` (keep silent)."""

    async def handler(stream: trio.SocketStream, _: RecordedRequest) -> None:
        if data:
            await stream.send_all(data)
        if then == "reset":
            reset(stream)
        elif then == "hang":
            await trio.sleep_forever()

    return handler


def never_answer() -> RawHandler:
    """Accept the request and say nothing, ever (until the server is cancelled)."""
    return raw(b"", then="hang")


def drip(interval: float, *, body_size: int = 1000) -> RawHandler:
    """Valid headers, then a body of ``body_size`` bytes, one byte every ``interval`` s: each
    byte resets a per-read timeout, only a whole-request deadline bounds it."""

    async def handler(stream: trio.SocketStream, _: RecordedRequest) -> None:
        await stream.send_all(
            _response_head(
                "200 OK", [("content-type", "text/html"), ("content-length", str(body_size))]
            )
        )
        for _ in range(body_size):
            await stream.send_all(b"x")
            await trio.sleep(interval)

    return handler


def endless_headers() -> RawHandler:
    """A status line followed by header lines that never end."""

    async def handler(stream: trio.SocketStream, _: RecordedRequest) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\n")
        line = b"x-filler: " + b"a" * 1000 + b"\r\n"
        for _ in range(100_000):
            await stream.send_all(line * 16)

    return handler


class Gate:
    """Holds every body back until ``count`` requests have arrived, so that all the bombs are
    decoded at the same time (the worst case for memory)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.arrived = 0
        self.open = trio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived >= self.count:
            self.open.set()
        await self.open.wait()


def bomb(
    encoding: str, *, content_type: str = "text/html", gate: Gate | None = None, batch: int = 64
) -> RawHandler:
    """An endless body of zeros, encoded with ``encoding`` (see :data:`ENCODINGS`), without a
    length: it ends only when the client hangs up. ``batch`` MiB (decoded) per send."""

    async def handler(stream: trio.SocketStream, _: RecordedRequest) -> None:
        headers = [("content-type", content_type), ("connection", "close")]
        if encoding != "identity":
            headers.append(("content-encoding", content_encoding(encoding)))
        await stream.send_all(_response_head("200 OK", headers))
        if gate is not None:
            await gate.wait()
        for chunk in bomb_chunks(encoding, batch):
            await stream.send_all(chunk)

    return handler


def plain_body(size: int, *, chunk: int = 64 * 1024, gate: Gate | None = None) -> RawHandler:
    """A ``size``-byte body of zeros with its Content-Length, streamed, never held whole."""

    async def handler(stream: trio.SocketStream, _: RecordedRequest) -> None:
        await stream.send_all(
            _response_head(
                "200 OK",
                [("content-type", "application/octet-stream"), ("content-length", str(size))],
            )
        )
        if gate is not None:
            await gate.wait()
        block = bytes(chunk)
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            await stream.send_all(piece)
            sent += len(piece)

    return handler


def encoded(body: bytes, encoding: str, *, content_type: str = "text/html") -> RawHandler:
    """A complete response whose body is sent as given, with this Content-Encoding."""
    return raw(
        _response_head(
            "200 OK",
            [
                ("content-type", content_type),
                ("content-encoding", encoding),
                ("content-length", str(len(body))),
            ],
        )
        + body
    )


def head(status: str = "200 OK", **headers: str) -> bytes:
    """A response head; ``content_type="text/html"`` becomes ``content-type: text/html``."""
    return _response_head(status, [(k.replace("_", "-"), v) for k, v in headers.items()])


@dataclasses.dataclass
class Endless:
    """A raw handler: ``start``, then ``piece`` over and over (in batches of about 64 KiB, at
    most ``batches`` of them) until the client hangs up. ``sent`` counts the bytes the kernel
    took: the witness that a client stopped reading (it includes the sockets' buffers, a few
    MiB on loopback)."""

    start: bytes
    piece: bytes
    batches: int = 20_000
    sent: int = 0

    async def __call__(self, stream: trio.SocketStream, _: RecordedRequest) -> None:
        await stream.send_all(self.start)
        self.sent += len(self.start)
        batch = self.piece * max(1, 65536 // len(self.piece))
        for _ in range(self.batches):
            await stream.send_all(batch)
            self.sent += len(batch)


@asynccontextmanager
async def raw_server(
    answer: Callable[[int, int], bytes | None], *, close_after: bool = False
) -> AsyncIterator[tuple[int, list[int]]]:
    """A server that reads request heads and sends ``answer(connection, request)`` for each
    (both counted from 1), or closes the connection without a word for ``None``; with
    ``close_after`` it closes after each answer. Yields the port and the number of requests
    seen on each connection."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    seen: list[int] = []

    async def handle(stream: trio.SocketStream) -> None:
        seen.append(0)
        number = len(seen)
        buffer = b""
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    _, buffer = buffer.split(b"\r\n\r\n", 1)
                    seen[number - 1] += 1
                    reply = answer(number, seen[number - 1])
                    if reply is None:
                        return
                    try:
                        await stream.send_all(reply)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return  # the client hung up first (it refused the answer)
                    if close_after:
                        return

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        yield listeners[0].socket.getsockname()[1], seen
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ the witness


@dataclasses.dataclass
class ConnectionCounter:
    """A TCP listener that counts connections; it answers a small HTML page (404 for
    robots.txt) to whoever sends a request."""

    host: str
    port: int
    connections: int = 0

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                more = await stream.receive_some(4096)
                if not more:
                    return
                data += more
            status, body = (
                ("404 Not Found", b"no")
                if data.startswith(b"GET /robots.txt")
                else ("200 OK", b"<html><body>reached</body></html>")
            )
            await stream.send_all(
                head(
                    status,
                    content_type="text/html",
                    content_length=str(len(body)),
                    connection="close",
                )
                + body
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()


@asynccontextmanager
async def open_connection_counter(
    host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[ConnectionCounter]:
    listeners = await trio.open_tcp_listeners(port, host=host)
    counter = ConnectionCounter(host, int(listeners[0].socket.getsockname()[1]))
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, counter._handle, listeners)
        try:
            yield counter
        finally:
            nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ peak memory (a script)


def _peak_rss_mib() -> float:
    """This process's peak resident set size, MiB.

    On Linux, ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` survives ``execve`` and
    starts from the parent's size at fork, so a child of a large pytest process would report
    pytest's peak, not its own. Elsewhere, ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MiB


async def _measure(encoding: str, count: int) -> dict[str, object]:
    from trio_crawler import Settings, crawl
    from trio_crawler.spiders.generic import GenericSpider
    from trio_crawler.testing import Site, open_site_server

    site = Site()
    gate = Gate(count)
    site.add_raw(
        "/bomb",
        plain_body(200 * MiB, gate=gate)
        if encoding == "identity"
        else bomb(encoding, gate=gate, batch=1),
    )
    async with open_site_server(site) as server:
        urls = tuple(server.url(f"/bomb?n={i}") for i in range(count))
        settings = Settings(
            per_host_delay=0.0,
            per_host_concurrency=count,  # every fetcher (default concurrency 16) busy on one
            max_retries=0,
            request_timeout=60.0,
        )
        before = _peak_rss_mib()
        stats = await crawl(GenericSpider(start_urls=urls), settings)
    return {
        "encoding": encoding,
        "bombs": count,
        "baseline_mib": round(before, 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "pages_ok": stats.pages_ok,
        "truncated": stats.truncated,
        "bytes": stats.bytes,
        "wire_bytes": stats.wire_bytes,
        "failures": dict(stats.failures),
        "elapsed": round(stats.elapsed, 2),
        "all_at_once": gate.open.is_set(),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "rss" or argv[1] not in ENCODINGS:
        print(f"usage: hostile.py rss {{{','.join(ENCODINGS)}}} COUNT", file=sys.stderr)
        return 2
    print(json.dumps(trio.run(_measure, argv[1], int(argv[2]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
