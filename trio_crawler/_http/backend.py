"""The socket floor: dial through the resolver and the address guard; plain TCP streams.

:class:`GuardedBackend` is httpcore's network-backend interface (so httpcore's TLS stream and
the connections above speak to it): it resolves a name through :class:`~.dns.Resolver`,
refuses any address :class:`~.guard.AddressGuard` does not allow (:class:`Forbidden`), and
dials the rest in turn. A plain connection is a :class:`PlainStream`, which reads and writes
its descriptor between Trio's checkpoints. Errors leave this floor as httpcore's types
(``ConnectError``, ``ReadError``, ``ReadTimeout``...), which :mod:`.errors` maps to failure
kinds.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import trio
from httpcore._backends.trio import TrioStream  # httpcore's own Trio stream (pinned: <2)

from .dns import Resolver
from .guard import AddressGuard, address_key
from .tls import resuming


class Forbidden(Exception):
    """Raised when the guard refuses every address of a host (failure kind
    ``forbidden_address``)."""


class TlsFailed(httpcore.ConnectError):
    """The TLS handshake failed (a certificate not trusted, expired or for another name, no
    common protocol...): failure kind ``tls``. Its cause is the ``ssl.SSLError``."""


def tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc``, if any: httpcore's Trio streams report a failed handshake
    as ``ConnectError`` (or, for a client certificate refused after a TLS 1.3 handshake, a
    ``ReadError`` on the first read) caused by ``trio.BrokenResourceError`` caused by the
    ``ssl.SSLError``. An abrupt end of the stream (``SSLEOFError``...) is not a TLS failure
    but a reset."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, ssl.SSLError):
            quiet = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
            return None if isinstance(current, quiet) else current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


async def start_tls(
    stream: httpcore.AsyncNetworkStream,
    ssl_context: ssl.SSLContext,
    server_hostname: str,
    timeout: float | None,  # noqa: ASYNC109  (the connect timeout)
    session: ssl.SSLSession | None = None,
) -> httpcore.AsyncNetworkStream:
    """TLS over ``stream`` (closed on failure), offering ``session`` to resume; a failed
    handshake is :class:`TlsFailed`."""
    context = resuming(ssl_context, session)
    try:
        return await stream.start_tls(context, server_hostname=server_hostname, timeout=timeout)
    except httpcore.ConnectError as exc:
        with trio.CancelScope(shield=True):
            await close_quietly(stream)
        if tls_cause(exc) is not None:
            raise TlsFailed(str(exc)) from exc
        raise
    except BaseException:
        with trio.CancelScope(shield=True):
            await close_quietly(stream)
        raise


async def close_quietly(stream: httpcore.AsyncNetworkStream) -> None:
    """Close ``stream``; errors change nothing (callers that may be cancelled shield it)."""
    with contextlib.suppress(httpcore.NetworkError, OSError):
        await stream.aclose()


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend interface, with name resolution and the address guard at
    connect time; each allowed address is dialled by :func:`dial`.

    A proxy's backend is given the proxy's ``(host, port)``: it dials that pair whatever
    its addresses (the user chose it) and refuses anything else.
    """

    def __init__(
        self, guard: AddressGuard, resolver: Resolver, *, proxy: tuple[str, int] | None = None
    ) -> None:
        self._guard = guard
        self._resolver = resolver
        self._proxy = None if proxy is None else (address_key(proxy[0]), proxy[1])

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
        elif (address_key(host), port) == self._proxy:
            allowed = ips
        else:
            allowed = []
        if not allowed:
            raise Forbidden(f"refusing to connect to {host}:{port} ({', '.join(ips)})")
        last: Exception | None = None
        for ip in allowed:
            try:
                stream = await dial(ip, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
            else:
                return PlainStream(stream)
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise Forbidden("unix sockets are not used by the crawler")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


async def dial(
    ip: str,
    port: int,
    timeout: float | None,  # noqa: ASYNC109  (the connect timeout)
    local_address: str | None = None,
    socket_options: Iterable[Any] | None = None,
) -> httpcore.AsyncNetworkStream:
    """A TCP connection to the address ``ip`` (resolved, guarded): httpcore's Trio stream.

    httpcore's backend dials through ``trio.open_tcp_stream``, made for names with several
    addresses (happy eyeballs): a nursery and a task per attempt, and the caller resumes
    only once that nursery is done. Here there is one address, so one socket and one wait for
    it to be writable: 2 task steps instead of 6, and half the CPU (``scripts/bench_dial``).
    Under a busy loop each step is a turn behind every runnable task: in a traced run of
    ``scripts/bench_broad`` (2,000 hosts), a new host's connection took 115-350 ms through
    ``open_tcp_stream`` and 26-89 ms here. Errors are httpcore's (``ConnectError``,
    ``ConnectTimeout``); the socket is closed on every way out but success."""
    sock = trio.socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    try:
        for option in socket_options or ():
            sock.setsockopt(*option)
        if local_address is not None:
            await sock.bind((local_address, 0))
        with trio.fail_after(math.inf if timeout is None else timeout):
            await sock.connect((ip, port))
        stream = trio.SocketStream(sock)  # TCP_NODELAY, as trio's own dial
    except trio.TooSlowError:
        sock.close()
        raise httpcore.ConnectTimeout(f"connecting to {ip}:{port} timed out") from None
    except OSError as exc:
        sock.close()
        raise httpcore.ConnectError(f"connecting to {ip}:{port}: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return TrioStream(stream)


#: What a read or write raises when the connection breaks or is closed under it.
_SOCKET_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class PlainStream(httpcore.AsyncNetworkStream):
    """A plain TCP connection: httpcore's Trio stream, read and written by its descriptor.

    Every request makes a write and two or three reads; httpcore's stream wraps each in an
    exception-mapping context manager, a cancel scope and trio's ``SocketStream`` checks, and
    trio's socket wraps each system call in another (async) context manager. Here a read or
    write is the system call itself, between the checkpoints trio's socket would make
    (:func:`trio.lowlevel.checkpoint_if_cancelled` before, a yield after a read that did not
    wait; a write that went out whole does not yield, the read after it does), and the
    timeout's cancel scope exists only while it waits for the socket. TLS
    (``start_tls``), the extra information (addresses, ``is_readable``) and closing stay with
    the inner stream.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._sock: trio.socket.SocketType = inner.get_extra_info("socket")
        self._fd = self._sock.fileno()

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
            # no yield: a request's write is always followed by a read of the answer, which
            # waits (one task switch a request fewer), and Pace.sent() is stamped the moment
            # the bytes left
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

    def close_now(self) -> bool:
        """Close the socket without awaiting (what trio's ``SocketStream.aclose`` does before
        its checkpoint), for a connection no task is using: a crawl's end closes a thousand
        idle connections or more, which took 23-45 ms with a checkpoint each and 15-22 ms
        without (the kernel's part)."""
        self._fd = -1
        self._sock.close()
        return True

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
