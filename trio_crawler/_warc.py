"""WARC 1.1 output: every request, response and failure of a crawl, written with warcio.

Theory of operation
-------------------
A :class:`WarcWriter` is synchronous (about 0.6 ms per 15 KB page, mostly gzip): the engine
calls it from the Trio thread once per HTTP exchange. warcio builds the records (record ids,
the SHA-1 ``WARC-Block-Digest`` and ``WARC-Payload-Digest``); this module decides what goes
into them and where the bytes land.

What is written, per file:

* a ``warcinfo`` record first (software, format, ``conformsTo``), so each file stands alone;
* per exchange (:meth:`WarcWriter.write_exchange`): a ``response`` record, then its ``request``
  record carrying ``WARC-Concurrent-To: <response id>``, both with the same ``WARC-Target-URI``
  and ``WARC-Date`` (the start of the request). A 3xx is just a response: the engine writes each
  hop of a redirect chain as its own exchange;
* per failure with no response (:meth:`WarcWriter.write_failure`): the ``request`` record when
  its headers are known, and a ``metadata`` record (``application/json``, ``{"kind", "message"}``)
  concurrent to it, so the WARC names every URL the crawl tried.

Fidelity: the response payload is the body *as sent on the wire* (still content-encoded: a
gzip response stores the gzip bytes and keeps its ``Content-Encoding``); readers such as
warcio's ``content_stream()`` decode it. Headers are written byte for byte (latin-1, as the
fetcher decoded them; warcio would percent-encode non-ASCII values). Two deviations, both
because the transport has already undone them: the body is stored de-chunked, so a
``Transfer-Encoding`` header is renamed ``X-Original-Transfer-Encoding`` (a reader must not
try to de-chunk it again); a body cut at the crawler's size limit carries
``WARC-Truncated: length``. A request record without a ``Host`` header gets one from the URL
(HTTP/1.1 always sends it). ``WARC-Target-URI`` is the URL without its fragment (what
was requested).

Files and rotation: ``WarcWriter("out/crawl.warc.gz")`` writes ``out/crawl.warc.gz``, the name
given (``.warc.gz`` is added to a name without it), then, once a file has grown past
``max_size`` bytes, ``crawl-00001.warc.gz``, ``crawl-00002.warc.gz`` and so on. A file is only
rotated between exchanges, so a request and its response always share a file, and a file
exceeds ``max_size`` by at most one exchange. Existing files are never overwritten: a name
already on disk (a resumed crawl) is skipped for the next serial. Each record is its own gzip
member (the WARC convention, and warcio's), compressed at level 6: the same size as warcio's
level 9 on HTML for a third to a half of the CPU time.

Writes go through a 1 MiB file buffer; :meth:`WarcWriter.flush` pushes it to the OS and
:meth:`WarcWriter.close` (idempotent) closes the file. An unwritable path raises
:class:`~trio_crawler.SettingsError` from the constructor; an I/O error later (disk full)
raises :class:`OSError` from the write call.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from ._exceptions import SettingsError

__all__ = ["Exchange", "WarcWriter"]

#: The WARC 1.1 specification, named in each warcinfo record.
_CONFORMS_TO = "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"
#: gzip level per record: level 9 costs twice the time of 6 for the same size on HTML.
_GZIP_LEVEL = 6
_FILE_BUFFER = 1 << 20
_SERIAL_DIGITS = 5
#: Suffixes recognised in the given path; the serial number goes before them.
_SUFFIXES = {".warc.gz": True, ".warc": False}


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP request and its response, as the fetcher saw them on the wire."""

    url: str
    method: str
    request_headers: Sequence[tuple[str, str]]
    status: int
    #: The reason phrase as received (``"OK"``); may be empty.
    reason: str
    #: ``"HTTP/1.1"``, ``"HTTP/1.0"``, ``"HTTP/2"``...
    http_version: str
    #: Response headers as received, ``Content-Encoding`` and all.
    response_headers: Sequence[tuple[str, str]]
    #: The body as received (still content-encoded), possibly cut at the size limit.
    payload: bytes
    #: True when ``payload`` was cut at the crawler's size limit.
    truncated: bool
    #: Wall-clock time (epoch seconds) at which the request started: the ``WARC-Date``.
    started: float
    #: The server's address, when known (``WARC-IP-Address``).
    ip: str | None = None


class _RawHeaders(StatusAndHeaders):  # type: ignore[misc]
    """warcio's header block, encoded byte for byte instead of percent-encoded."""

    def compute_headers_buffer(self, header_filter: Any = None) -> None:
        text = self.to_str(header_filter)
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:  # a str header not from the wire (user-set): UTF-8
            data = text.encode("utf-8")
        self.headers_buff = data + b"\r\n"


class _Collect:
    """The stream warcio writes into: collects one record's pieces (``flush`` is a no-op)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def _split_path(path: str, gzip: bool) -> tuple[str, str]:
    """``"out/crawl.warc.gz"`` -> ``("out/crawl", ".warc.gz")``."""
    suffix = ".warc.gz" if gzip else ".warc"
    for known, compressed in _SUFFIXES.items():
        if path.endswith(known):
            if compressed != gzip:
                want = "compressed" if gzip else "uncompressed"
                raise SettingsError(
                    f"WARC path {path!r} does not end in {suffix!r} for {want} output"
                )
            return path[: -len(known)], known
    return path, suffix


def _warc_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clean(value: str) -> str:
    """A CR or LF inside a header would end the block early and corrupt the record."""
    if "\r" in value or "\n" in value:
        return " ".join(value.splitlines())
    return value


def _response_fields(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    fields = []
    for name, value in headers:
        if name.lower() == "transfer-encoding":
            name = "X-Original-Transfer-Encoding"
        fields.append((_clean(name), _clean(value)))
    return fields


def _request_head(
    method: str, url: str, http_version: str, headers: Sequence[tuple[str, str]]
) -> _RawHeaders:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    fields = [(_clean(name), _clean(value)) for name, value in headers]
    if not any(name.lower() == "host" for name, _ in fields):
        fields.insert(0, ("Host", parts.netloc.rpartition("@")[2]))
    return _RawHeaders(f"{method} {target} {http_version}", fields, is_http_request=True)


class WarcWriter:
    """Writes a crawl's exchanges to rotating, gzip-compressed WARC 1.1 files.

    ``path`` names the files: ``crawl.warc.gz`` gives ``crawl.warc.gz``, then
    ``crawl-00001.warc.gz``... (see the module docstring). ``max_size`` is the size in bytes
    past which the next exchange goes to a new file. ``info`` adds fields to each warcinfo
    record (``operator``, ``robots``, ``http-header-user-agent``...).

    Synchronous and not thread-safe: call it from one thread (the Trio thread). Usable as a
    context manager, which closes it.
    """

    def __init__(
        self,
        path: str,
        *,
        max_size: int = 1 << 30,
        gzip: bool = True,
        software: str = "trio-crawler",
        info: Mapping[str, str] | None = None,
    ) -> None:
        if max_size <= 0:
            raise SettingsError(f"WARC max size must be positive, not {max_size}")
        self._stem, self._suffix = _split_path(os.fspath(path), gzip)
        self._max_size = max_size
        self._gzip = gzip
        self._info: dict[str, str] = {
            "software": software,
            "format": "WARC File Format 1.1",
            "conformsTo": _CONFORMS_TO,
            **(info or {}),
        }
        self._collect = _Collect()
        self._warc = WARCWriter(self._collect, gzip=False, warc_version="1.1")
        self._paths: list[str] = []
        self._serial = 0
        self._file: IO[bytes] | None = None
        self._size = 0
        self._closed = False
        try:
            self._open_next()
        except OSError as exc:
            raise SettingsError(
                f"cannot write WARC file {self._name(self._serial)}: {exc.strerror or exc}"
            ) from None

    # -- public API ------------------------------------------------------------------------

    @property
    def paths(self) -> list[str]:
        """Files written so far, in order (the last one is open until :meth:`close`)."""
        return list(self._paths)

    def write_exchange(self, exchange: Exchange) -> None:
        """Write the response record and its request record (any status, 3xx included)."""
        file = self._current()
        url = exchange.url.partition("#")[0]
        date = _warc_date(exchange.started)
        common = {"WARC-Date": date}
        if exchange.ip:
            common["WARC-IP-Address"] = exchange.ip
        response_warc = dict(common)
        if exchange.truncated:
            response_warc["WARC-Truncated"] = "length"
        status_line = f"{exchange.status} {exchange.reason}".rstrip()
        response = self._warc.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(exchange.payload),
            length=len(exchange.payload),
            warc_headers_dict=response_warc,
            http_headers=_RawHeaders(
                status_line,
                _response_fields(exchange.response_headers),
                protocol=exchange.http_version,
            ),
        )
        request = self._warc.create_warc_record(
            url,
            "request",
            warc_headers_dict=common,
            http_headers=_request_head(
                exchange.method, url, exchange.http_version, exchange.request_headers
            ),
        )
        response_id = self._write(file, response)
        request.rec_headers.add_header("WARC-Concurrent-To", response_id)
        self._write(file, request)

    def write_failure(
        self,
        url: str,
        kind: str,
        message: str,
        started: float,
        request_headers: Sequence[tuple[str, str]] = (),
        *,
        method: str = "GET",
    ) -> None:
        """Record a request that got no response (timeout, refused, DNS, policy...).

        Writes the request record when its headers are known, then a ``metadata`` record with
        ``{"kind": ..., "message": ...}`` as JSON, concurrent to the request.
        """
        file = self._current()
        url = url.partition("#")[0]
        date = _warc_date(started)
        metadata_warc = {"WARC-Date": date}
        if request_headers:
            request = self._warc.create_warc_record(
                url,
                "request",
                warc_headers_dict={"WARC-Date": date},
                http_headers=_request_head(method, url, "HTTP/1.1", request_headers),
            )
            metadata_warc["WARC-Concurrent-To"] = self._write(file, request)
        body = json.dumps({"kind": str(kind), "message": message}).encode()
        metadata = self._warc.create_warc_record(
            url,
            "metadata",
            payload=io.BytesIO(body),
            length=len(body),
            warc_content_type="application/json",
            warc_headers_dict=metadata_warc,
        )
        self._write(file, metadata)

    def flush(self) -> None:
        """Push buffered bytes to the operating system."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close the current file. Idempotent."""
        self._closed = True
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def __enter__(self) -> WarcWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- files -----------------------------------------------------------------------------

    def _name(self, serial: int) -> str:
        if serial == 0:
            return f"{self._stem}{self._suffix}"  # the name given
        return f"{self._stem}-{serial:0{_SERIAL_DIGITS}d}{self._suffix}"

    def _open_next(self) -> None:
        """Open the next free serial ("x" mode: never overwrite) and write its warcinfo."""
        while True:
            name = self._name(self._serial)
            self._serial += 1
            try:
                file = open(name, "xb", buffering=_FILE_BUFFER)  # noqa: SIM115 (kept open)
            except FileExistsError:
                continue
            break
        self._file = file
        self._size = 0
        self._paths.append(name)
        record = self._warc.create_warcinfo_record(os.path.basename(name), self._info)
        self._write(file, record)

    def _current(self) -> IO[bytes]:
        if self._file is None:
            raise RuntimeError("WarcWriter is closed")
        if self._size >= self._max_size:
            self._file.close()
            self._file = None
            self._open_next()
            assert self._file is not None
        return self._file

    def _write(self, file: IO[bytes], record: Any) -> str:
        """Write one warcio record as its own gzip member; return its ``WARC-Record-ID``."""
        self._warc.write_record(record)
        data = self._collect.take()
        if self._gzip:
            packer = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)
            data = packer.compress(data) + packer.flush()
        file.write(data)
        self._size += len(data)
        return str(record.rec_headers.get_header("WARC-Record-ID"))
