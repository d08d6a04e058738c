"""The broad-crawl benchmark's server: every host of the site, answering after the injected
latency, logging every arrival. One worker process; the benchmark starts several of them on one
port with SO_REUSEPORT (the kernel spreads the connections) and reads their logs.

Run by the benchmark's tools venv (stdlib, plus uvloop when ``--loop uvloop``)::

    python scripts/bench_broad_server.py --site JSON --port P --worker W [--tls CERT KEY]

It listens on 0.0.0.0:P, which takes the connections to every loopback address
(127.1.0.0 upwards, one per host); a peer that is not on loopback is closed at once. The host of
a request is its Host header (``h00042.bench.test:P``); the server checks it against the
address the connection was made to. Each request is answered ``Site.delay(host, path)`` seconds
after its head arrived, in order on its connection, with a keep-alive HTTP/1.1 response (the
server never closes a connection first, so requests per connection measure the client).

The log keeps, per request, the arrival time (when the kernel received it: ``SO_TIMESTAMPNS``
on every read, see :class:`Connection`), the time the response was written (both on the
``time.monotonic()`` clock, shared by the processes of the machine), the connection id, the
host and the page code; per connection its open and close times. Commands on stdin, one per line:
``dump PATH`` writes the log to PATH (:func:`read_log`'s format), clears it and answers
``ok REQUESTS CONNECTIONS`` on stdout; ``quit`` (or the end of stdin) stops the worker.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import os
import resource
import signal
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_broad_site import PRIVATE_PAGE, ROBOTS, ROBOTS_PAGE, Site

MAX_HEAD = 64 * 1024
NAN = float("nan")

_FIELDS = {
    "arrival": "d",
    "done": "d",
    "conn": "q",
    "host": "i",
    "page": "i",
    "conn_open": "d",
    "conn_close": "d",
}


class Log:
    """Per-request and per-connection arrays (cheap to append to, compact to write)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.arrays: dict[str, array.array[Any]] = {k: array.array(t) for k, t in _FIELDS.items()}
        self.bad_requests = 0  # unparseable, or a Host that is not one of the site's
        self.wrong_address = 0  # Host header of another host than the address dialled
        self.foreign_peers = 0
        self.unstamped = 0  # reads without the kernel's receive time (stamped when read)

    def dump(self, path: Path) -> tuple[int, int]:
        a = self.arrays
        header = {
            "fields": {k: [t, len(a[k])] for k, t in _FIELDS.items()},
            "bad_requests": self.bad_requests,
            "wrong_address": self.wrong_address,
            "foreign_peers": self.foreign_peers,
            "unstamped": self.unstamped,
        }
        with open(path, "wb") as f:
            blob = json.dumps(header).encode()
            f.write(len(blob).to_bytes(4, "little") + blob)
            for k in _FIELDS:
                a[k].tofile(f)
        counts = len(a["arrival"]), len(a["conn_open"])
        self.reset()
        return counts


def read_log(path: Path) -> tuple[dict[str, array.array[Any]], dict[str, int]]:
    """A dumped log: the arrays by field name, and the counters."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(4), "little")
        header = json.loads(f.read(size))
        arrays: dict[str, array.array[Any]] = {}
        for k, (t, n) in header["fields"].items():
            arr = array.array(t)
            arr.fromfile(f, n)
            arrays[k] = arr
    counters = {k: v for k, v in header.items() if k != "fields"}
    return arrays, counters


def _address_host(address: str) -> int:
    """Host number of a loopback address (the inverse of ``Site.address``), or -1."""
    parts = address.split(".")
    if len(parts) != 4 or parts[0] != "127":
        return -1
    b, c, d = (int(x) for x in parts[1:])
    return ((b - 1) << 16) | (c << 8) | d if b >= 1 else -1


class Server:
    def __init__(self, site: Site, worker: int, workers: int) -> None:
        self.site = site
        self.filler = site.filler()
        self.log = Log()
        self.worker = worker
        self.workers = workers
        self.next_conn = 0
        self.loop = asyncio.get_running_loop()

    def response(self, host: int, code: int) -> bytes:
        if code >= 0:
            body = self.site.body(host, code, self.filler)
            kind = b"text/html; charset=utf-8"
            status = b"200 OK"
        elif code == ROBOTS_PAGE:
            body, kind, status = ROBOTS, b"text/plain", b"200 OK"
        elif code == PRIVATE_PAGE:
            body, kind, status = b"<p>private</p>\n", b"text/html", b"200 OK"
        else:
            body, kind, status = b"not found\n", b"text/plain", b"404 Not Found"
        return b"".join(
            (
                b"HTTP/1.1 ",
                status,
                b"\r\nContent-Type: ",
                kind,
                b"\r\nContent-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )


#: ``SO_TIMESTAMPNS`` (Linux; the socket module does not name it): every read carries the time
#: the kernel received its last packet, whenever this process gets to read it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("qq")
_READ = 256 * 1024


class _Clocks:
    """The wall clock's offset from ``time.monotonic()`` (the kernel stamps with the first),
    measured once a second from the closest of a few readings, so that being descheduled
    between two clock reads cannot skew a stamp."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.next = -math.inf

    def to_monotonic(self, wall: float) -> float:
        now = time.monotonic()
        if now >= self.next:
            best = math.inf
            for _ in range(5):
                before = time.monotonic()
                real = time.time()
                after = time.monotonic()
                if after - before < best:
                    best = after - before
                    self.offset = real - (before + after) / 2
            self.next = now + 1.0
        return wall - self.offset


_CLOCKS = _Clocks()


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The receive time in a ``recvmsg`` answer, on the ``time.monotonic()`` clock."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return _CLOCKS.to_monotonic(sec + nsec * 1e-9)
    return None


class Connection:
    """One accepted connection, read with ``recvmsg`` so that every request is stamped with
    the moment the kernel received it, not the moment this process got to it: a server loop
    held up (by TLS handshakes, by a busy machine) would otherwise stamp a request late and the
    next one on time, and report two requests closer than they were sent. TLS runs over memory
    BIOs on the same reads."""

    __slots__ = (
        "address_host",
        "buf",
        "close_after",
        "closed",
        "fd",
        "handshaken",
        "id",
        "inbio",
        "index",
        "out",
        "outbio",
        "pending",
        "server",
        "sock",
        "timer",
        "tls",
        "writing",
    )

    def __init__(
        self, server: Server, sock: socket.socket, ctx: ssl.SSLContext | None, address_host: int
    ) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = b""
        self.out = bytearray()  # bytes for the socket that it did not take yet
        self.writing = False
        self.closed = False
        self.pending: list[tuple[int, int, int, float]] = []  # (log index, host, page, due)
        self.timer: asyncio.TimerHandle | None = None
        self.close_after = False
        self.address_host = address_host
        self.tls: ssl.SSLObject | None = None
        self.handshaken = True
        if ctx is not None:
            self.inbio, self.outbio = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = ctx.wrap_bio(self.inbio, self.outbio, server_side=True)
            self.handshaken = False
        self.id = server.next_conn * server.workers + server.worker
        server.next_conn += 1
        log = server.log.arrays
        self.index = len(log["conn_open"])
        log["conn_open"].append(time.monotonic())
        log["conn_close"].append(NAN)
        server.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data, ancillary, _flags, _addr = self.sock.recvmsg(_READ, 256)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()  # the client is done
            return
        stamp = _kernel_stamp(ancillary)
        if stamp is None:
            self.server.log.unstamped += 1
            stamp = time.monotonic()
        if self.tls is not None:
            data = self._decrypt(data)
            if not data:
                return
        self._received(data, stamp)

    def _decrypt(self, data: bytes) -> bytes:
        tls = self.tls
        assert tls is not None
        self.inbio.write(data)
        try:
            if not self.handshaken:
                tls.do_handshake()
                self.handshaken = True
            plain = b""
            while True:
                chunk = tls.read(_READ)
                if not chunk:
                    self.close()  # close_notify
                    return b""
                plain += chunk
        except ssl.SSLWantReadError:
            self._flush_tls()
            return plain if self.handshaken else b""
        except (ssl.SSLError, OSError):
            self.close()
            return b""

    def _flush_tls(self) -> None:
        data = self.outbio.read()
        if data:
            self._send(data)

    def _received(self, data: bytes, stamp: float) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._bad()
                    return
                self.buf = buf
                return
            head = buf[:end]
            buf = buf[end + 4 :]
            if not self._request(head, stamp):
                return

    def _request(self, head: bytes, now: float) -> bool:
        srv = self.server
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        host = None
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"host":
                host = srv.site.host_id(value)
            elif name == b"connection" and b"close" in value.lower():
                close = True
            elif name == b"content-length" and value.strip() not in (b"0", b""):
                host = None  # the crawlers only GET; a body would need reading
        if len(parts) != 3 or host is None:
            self._bad()
            return False
        if host != self.address_host:
            srv.log.wrong_address += 1
        target = parts[1]
        q = target.find(b"?")
        code = srv.site.page_code(target if q < 0 else target[:q])
        log = srv.log.arrays
        index = len(log["arrival"])
        log["arrival"].append(now)
        log["done"].append(NAN)
        log["conn"].append(self.id)
        log["host"].append(host)
        log["page"].append(code)
        self.pending.append((index, host, code, now + srv.site.delay(host, code)))
        self.close_after = self.close_after or close
        if self.timer is None:
            self._schedule()
        return True

    def _schedule(self) -> None:
        due = self.pending[0][3]
        self.timer = self.server.loop.call_later(max(0.0, due - time.monotonic()), self._answer)

    def _answer(self) -> None:
        self.timer = None
        if self.closed:
            return
        index, host, code, _ = self.pending.pop(0)
        self._write(self.server.response(host, code))
        self.server.log.arrays["done"][index] = time.monotonic()
        if self.pending:
            self._schedule()
        elif self.close_after:
            self.close()

    def _write(self, data: bytes) -> None:
        if self.tls is None:
            self._send(data)
            return
        try:
            self.tls.write(data)
        except (ssl.SSLError, OSError):
            self.close()
            return
        self._flush_tls()

    def _send(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.out:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            if sent == len(data):
                return
            data = data[sent:]
        self.out += data
        if not self.writing:
            self.writing = True
            self.server.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self.out[:sent]
        if not self.out:
            self.writing = False
            self.server.loop.remove_writer(self.fd)

    def _bad(self) -> None:
        self.server.log.bad_requests += 1
        self._write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self.server.loop
        loop.remove_reader(self.fd)
        if self.writing:
            loop.remove_writer(self.fd)
        if self.out:
            with contextlib.suppress(OSError):  # the last bytes, as far as the socket takes them
                self.sock.send(self.out)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.pending.clear()
        self.server.log.arrays["conn_close"][self.index] = time.monotonic()
        self.sock.close()


def _accept(server: Server, listener: socket.socket, ctx: ssl.SSLContext | None) -> None:
    """Take the connections waiting (a batch at a time, so reads are not held up)."""
    for _ in range(64):
        try:
            sock, peer = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # out of descriptors, say: the client sees a refused or reset connection
        if not str(peer[0]).startswith("127."):
            server.log.foreign_peers += 1
            sock.close()
            continue
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        Connection(server, sock, ctx, _address_host(sock.getsockname()[0]))


def _listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("0.0.0.0", port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def serve(args: argparse.Namespace) -> None:
    site = Site(**json.loads(args.site))
    server = Server(site, args.worker, args.workers)
    ctx = _tls_context(*args.tls) if args.tls else None
    loop = asyncio.get_running_loop()
    listener = _listener(args.port)
    listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # accepted sockets inherit it
    loop.add_reader(listener.fileno(), _accept, server, listener, ctx)
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
                break
            if line[0] == "dump" and len(line) == 2:
                requests, conns = server.log.dump(Path(line[1]))
                print(f"ok {requests} {conns}", flush=True)
            else:
                print(f"error unknown command {line!r}", flush=True)

    task = asyncio.ensure_future(commands())
    await asyncio.wait([task, done], return_when=asyncio.FIRST_COMPLETED)
    loop.remove_reader(listener.fileno())
    listener.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--site", required=True, help="the Site's fields as JSON")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = p.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run: Callable[[Any], None] = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        run = uvloop.run
    os.environ.pop("PYTHONASYNCIODEBUG", None)
    run(serve(args))


if __name__ == "__main__":
    main()
