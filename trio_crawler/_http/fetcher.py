"""The fetcher: the top floor of :mod:`trio_crawler._http`; one GET, bounded and guarded.

Theory of operation
-------------------
A :class:`Fetcher` is opened once per crawl (outside the worker nursery) and shared by every
fetch task. ``fetch(url, headers)`` performs exactly one HTTP exchange:

* no redirects are followed here: a 3xx comes back as a response and the engine decides
  (scope, robots, dedupe and the hop limit are crawl policy, not transport);
* the body is read from the *raw* stream and decoded by :mod:`.decode`'s bounded decoders,
  so neither a 200 MB body nor a 10 GB gzip bomb can take more than ``max_body_size`` bytes;
  brotli and zstd windows over 1 MiB are reserved in a crawl-wide :class:`WindowBudget` first,
  so sixteen brotli bombs at once cannot add 16 x 17 MiB of decoder windows to their bodies;
* what is read off the wire is bounded too, not only what is decoded: bytes that decode to
  nothing (endless empty gzip members or deflate blocks, brotli metadata, zstd skippable
  frames) once read 250 MB until the deadline, on every retry. Reading stops, and the page
  keeps what was decoded with ``truncated`` set, after :data:`NO_PROGRESS` (1 MiB) read
  without one more decoded byte, or ``2 x max_body_size`` + :data:`WIRE_ALLOWANCE` (1 MiB)
  read in all, head and chunk framing included (``http11``'s count). Why these: a real
  encoded stream yields output at least every block (zstd: 128 KiB; deflate: 64 KiB stored;
  brotli pushes output as it goes), and its size is within a few per cent of the decoded
  size even for incompressible data, so neither bound cuts a real page before
  ``max_body_size`` does; the allowance covers a head (up to 100 KiB) and the chunk framing
  of a small body. (Chunk-size lines and trailers are bounded in ``framing``: a protocol
  error past 100 KiB, like a head.) A body of exactly ``max_body_size`` bytes is not
  ``truncated``: the fetcher reads on to see whether one more byte comes;
* the request goes to the crawl's :class:`~.transport.GuardedTransport`, which keeps
  keep-alive connections by route (:mod:`.connections`: no per-request pool scan, unlike
  httpcore's pool, encode/httpcore#1035) and speaks HTTP/1.1 with llhttp's parser
  (:mod:`.http11`: h11 in pure Python cost a tenth of the crawler's CPU), directly or through
  a proxy. httpx's client and models are not used: the crawler needs none of what they add
  (it follows no redirects, keeps its own cookies and decodes bodies itself), and they cost a
  third of the HTTP time. Any httpx transport can stand in for the crawl's own
  (:class:`~.transport.HttpxExchanger`: the in-memory transport of the timing tests).
  ``scripts/bench_http.py`` (nginx, 16 tasks, 4,000 requests, 3 rounds; figures in its
  docstring) gives the CPU per request of each layer;
* the whole exchange runs under a deadline (``request_timeout``): a read timeout resets on
  every byte and does not bound a server that drips one byte a second;
* every connection is dialled by :class:`~.backend.GuardedBackend`, which resolves the name
  through one replaceable seam (:class:`~.dns.Resolver`) and refuses loopback, private,
  link-local, multicast and unspecified addresses unless allowed
  (:class:`~.guard.AddressGuard`). The check happens at connect time, on the addresses
  actually dialled, so a name cannot resolve one way for the check and another for the
  connection;
* the floors' errors are translated here, and only here, into
  :class:`~trio_crawler.FetchError` with a :class:`~trio_crawler.FailureKind`, by their types
  (:mod:`.errors`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpcore
import httpx
import trio

from .._exceptions import FailureKind, FetchError, SettingsError
from .._settings import Settings
from .._spider import Headers
from .backend import Forbidden
from .decode import ACCEPT_ENCODING, DecodeError, Decoder, make_decoder
from .dns import Resolver
from .errors import kind_of, message_of
from .guard import AddressGuard
from .http11 import PACE, RECEIVED, Pace, request_head
from .proxy import ProxyRoutes
from .tls import make_ssl_context
from .transport import (
    DECODED,
    Exchanger,
    GuardedTransport,
    HttpxExchanger,
    Target,
    split_target,
)

if TYPE_CHECKING:
    from .._warc import Exchange


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
#: Bytes read without one more decoded byte, at most (see the module docstring).
NO_PROGRESS = 1024 * 1024
#: Bytes read off the wire for one response, at most, beyond twice the body limit.
WIRE_ALLOWANCE = 1024 * 1024
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


#: Open files left for everything but idle connections (the store, logs, outputs, DNS).
_FILE_RESERVE = 256


def idle_connection_limit(settings: Settings) -> int:
    """Idle keep-alive connections this process may keep: ``keepalive_connections``, within
    the open-file limit (raised to its hard limit first, as far as allowed) once the
    requests in flight and a reserve have their descriptors."""
    want = settings.keepalive_connections
    need = want + settings.concurrency + _FILE_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return want
    return max(0, min(want, soft - settings.concurrency - _FILE_RESERVE))


class Fetcher:
    """Owns the HTTP transport of one crawl. Use as ``async with Fetcher(settings) as f``."""

    def __init__(
        self,
        settings: Settings,
        *,
        guard: AddressGuard | None = None,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.settings = settings
        self.guard = guard or AddressGuard(
            allow_private=settings.allow_private, allowed=settings.allowed_addresses
        )
        self.resolver = resolver or Resolver()
        self._capture = settings.warc is not None
        self._transport_override = transport
        self._exchanger: Exchanger | None = None
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
            self._exchanger = HttpxExchanger(self._transport_override)
            return self
        # both raise a one-line SettingsError (a missing CA file, a bad proxy in the environment)
        ctx = make_ssl_context(s)
        routes = ProxyRoutes.from_settings(s)
        self._exchanger = GuardedTransport(
            self.guard,
            self.resolver,
            ssl_context=ctx,
            max_idle=idle_connection_limit(s),
            routes=routes,
            capture_ip=self._capture,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        exchanger, self._exchanger = self._exchanger, None
        if exchanger is not None:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await exchanger.aclose()

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
        return [*host, *base, *((k.encode("ascii"), _value_bytes(v)) for k, v in extra.items())]

    async def fetch(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        max_body: int | None = None,
        pace: Pace | None = None,
    ) -> FetchResult:
        """GET ``url`` once. Raises :class:`FetchError`; never an httpx exception.

        ``pace`` is awaited right before the request is written, once the connection is
        ready (the crawl's politeness at send time).

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
                if self._exchanger is None:
                    raise RuntimeError("Fetcher used outside 'async with'")
                extensions = self._extensions if pace is None else {**self._extensions, PACE: pace}
                response = await self._exchanger.exchange(target, raw_headers, extensions)
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
        except Forbidden as exc:
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
            error = FetchError(kind_of(exc), message_of(exc), url=url)
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
            decoder = make_decoder(None if DECODED in extensions else hdrs.get("content-encoding"))
            chunks: list[bytes] = []
            size = 0
            wire = 0
            truncated = False
            raw_chunks: Any = response.stream
            trailing = 0
            read_all = False
            # every byte read for the response (the connection's count), or the payload's
            counter = extensions.get(RECEIVED)
            progress_at = 0 if counter is None else counter.received
            max_wire = 2 * limit + WIRE_ALLOWANCE
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
                read = wire if counter is None else counter.received
                if size >= limit:
                    # the body filled the limit: one more decoded byte means it was longer
                    if _more(decoder, chunk):
                        truncated = True
                        break
                else:
                    out = decoder.feed(chunk, min(_DECODE_STEP, limit - size))
                    if decoder.waiting:
                        reserved = await self._window_budget.acquire(decoder.memory)
                        decoder.admit()
                        out = decoder.feed(b"", min(_DECODE_STEP, limit - size))
                    if out:
                        progress_at = read
                    # at most one step of output at a time: no copy larger than that
                    while out:
                        chunks.append(out)
                        size += len(out)
                        if size >= limit:
                            break
                        out = decoder.feed(b"", min(_DECODE_STEP, limit - size))
                    if size >= limit and _more(decoder, b""):
                        truncated = True
                        break
                if read - progress_at > NO_PROGRESS or read > max_wire:
                    truncated = True  # bytes that decode to nothing, or too many of them
                    break
            else:
                read_all = True
            if not truncated and not decoder.waiting:
                while size < limit and (tail := decoder.flush(min(_DECODE_STEP, limit - size))):
                    chunks.append(tail)
                    size += len(tail)
                truncated = size >= limit and _more(decoder, None)
        finally:
            self._window_budget.release(reserved)
            close_nowait = getattr(response.stream, "close_nowait", None)
            if close_nowait is None or not close_nowait():
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


def decode_location(value: str) -> str:
    """A response header value as browsers read ``Location``: its bytes as UTF-8 when they
    are valid UTF-8, else as Latin-1.

    The fetcher reads header bytes as Latin-1 (one character per byte, so nothing is lost):
    a raw UTF-8 ``Location: /café`` arrives as ``"/cafÃ©"``, which this turns back into
    ``"/café"``. A value that is not valid UTF-8 (or not from the fetcher: a character past
    U+00FF) is returned as it is.
    """
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _value_bytes(value: str) -> bytes:
    """A request header value's bytes: Latin-1, so a value taken from a response (a cookie:
    the fetcher reads header bytes as Latin-1) goes back byte for byte, as browsers send
    cookies; a character beyond Latin-1 (a spider's own header) as UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _more(decoder: Decoder, data: bytes | None) -> bool:
    """Whether ``data`` (None: the end of the body) decodes to at least one more byte; a
    corrupt stream past a full body only says that more was sent."""
    try:
        return bool(decoder.flush(1) if data is None else decoder.feed(data, 1))
    except DecodeError:
        return True


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
    from .._warc import Exchange

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
