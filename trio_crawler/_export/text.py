"""The JSON Lines and CSV writers, and the sinks they write to (a file, standard output)."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .._exceptions import SettingsError
from .._records import encode_json
from .base import BaseExporter, cannot_write

#: Buffered characters after which ``write_many`` hands its buffer to the OS without waiting
#: for ``flush()``.
WRITE_THRESHOLD = 256 * 1024


class Sink(Protocol):
    size: int
    """Bytes of complete records in the target (0 for stdout)."""

    def write(self, text: str) -> int: ...
    def close(self) -> None: ...


class StdoutSink:
    """Writes UTF-8 to whatever ``sys.stdout`` is at the time, flushing every write.

    A reader that went away (``| head -1``: EPIPE) closes the sink for good: standard output
    is pointed at ``/dev/null`` and ``on_closed()`` is called once; later writes are dropped
    (or raise :class:`BrokenPipeError` when there is no ``on_closed``)."""

    size = 0

    def __init__(self, on_closed: Callable[[], None] | None = None) -> None:
        self._on_closed = on_closed
        self.closed = False

    def write(self, text: str) -> int:
        data = text.encode("utf-8", errors="replace")
        if self.closed:
            if self._on_closed is None:
                raise BrokenPipeError(errno.EPIPE, "standard output is closed")
            return len(data)
        stream = sys.stdout
        buffer = getattr(stream, "buffer", None)
        try:
            if buffer is not None:
                stream.flush()  # keep order with anything printed before
                buffer.write(data)
                buffer.flush()
            else:
                stream.write(data.decode("utf-8"))
                stream.flush()
        except BrokenPipeError:
            self.closed = True
            silence()
            if self._on_closed is None:
                raise
            self._on_closed()
        return len(data)

    def close(self) -> None:
        pass  # never close the process's stdout


def silence(stream: Any = None) -> None:
    """Point a standard stream's descriptor (stdout by default) at ``/dev/null`` after its
    reader went away, so that nothing written later (the interpreter's last flush included)
    fails again: what Python's documentation advises for EPIPE (``signal``, "Note on
    SIGPIPE")."""
    try:
        fd = (stream or sys.stdout).fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's replacement)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def flush_standard_streams() -> None:
    """Flush stdout and stderr, quietly when a reader went away or a stream is closed: before
    a process ends with ``os._exit`` (which flushes nothing) or forks (so that nothing
    buffered is written twice)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


class FileSink:
    """An unbuffered binary file written in whole chunks; a failed write is rolled back."""

    def __init__(self, file: io.FileIO, size: int) -> None:
        self._file = file
        self.size = size

    @classmethod
    def open(cls, path: str, fmt: str, resume_offset: int | None) -> FileSink:
        try:
            if resume_offset is None or (resume_offset == 0 and not os.path.exists(path)):
                file = io.FileIO(path, "w")
                return cls(file, 0)
            file = io.FileIO(path, "r+")
        except OSError as exc:
            raise cannot_write(path, fmt, exc) from None
        try:
            size = os.fstat(file.fileno()).st_size
            if size < resume_offset:
                raise SettingsError(
                    f"cannot resume {path!r} at byte {resume_offset}: the file has only"
                    f" {size} bytes"
                )
            if resume_offset > 0:
                file.seek(resume_offset - 1)
                if file.read(1) != b"\n":
                    raise SettingsError(
                        f"cannot resume {path!r} at byte {resume_offset}: not the end of a record"
                    )
            file.truncate(resume_offset)
            file.seek(resume_offset)
        except OSError as exc:
            file.close()
            raise cannot_write(path, fmt, exc) from None
        except BaseException:
            file.close()
            raise
        return cls(file, resume_offset)

    def write(self, text: str) -> int:
        data = memoryview(text.encode("utf-8", errors="replace"))
        try:
            written = 0
            while written < len(data):
                n = self._file.write(data[written:])
                if n is None:  # pragma: no cover - only for non-blocking files
                    continue
                written += n
        except BaseException:
            # Never leave a partial record behind: cut back to the last complete one.
            try:
                self._file.truncate(self.size)
                self._file.seek(self.size)
            except OSError:
                pass
            raise
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        self._file.close()


class _TextExporter(BaseExporter):
    """Shared buffering of the JSON Lines and CSV writers."""

    format: str

    def __init__(self, path: str, sink: Sink, *, base_offset: int = 0) -> None:
        self.path = path
        self._sink = sink
        self._pending: list[str] = []
        self._pending_chars = 0
        self._offset = base_offset
        self._closed = False
        self._unbuffered = path == "-"

    def _render(self, records: list[dict[str, Any]]) -> str:
        raise NotImplementedError

    def _render_encoded(self, encoded: Sequence[str]) -> str | None:
        """The chunk for records given as JSON text, or None when the format needs records."""
        return None

    def write_records(
        self, records: Sequence[tuple[str, dict[str, Any]]], encoded: Sequence[str] | None
    ) -> None:
        """Write items already converted (``(type name, record)``, and their JSON text when
        the caller has it): a store that keeps items too converts each one once."""
        if self._closed:
            raise ValueError(f"{self.format} exporter for {self.path!r} is closed")
        if not records:
            return
        chunk = self._render_encoded(encoded) if encoded is not None else None
        if chunk is None:
            chunk = self._render([record for _, record in records])
        self._pending.append(chunk)
        self._pending_chars += len(chunk)
        if self._unbuffered or self._pending_chars >= WRITE_THRESHOLD:
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text = "".join(self._pending)
        # Should the write fail, the sink has cut the file back to its last complete record and
        # the text stays pending, so a later flush() can try again.
        self._pending = [text]
        self._offset += self._sink.write(text)
        self._pending = []
        self._pending_chars = 0

    def flush(self) -> None:
        if not self._closed:
            self._write_pending()

    def offset(self) -> int:
        return self._offset

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._write_pending()
        finally:
            self._closed = True
            self._sink.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r} offset={self._offset}>"


class JsonLinesExporter(_TextExporter):
    """One compact JSON object per line, UTF-8, ``\\n``-terminated."""

    format = "jsonl"

    def __init__(self, path: str, sink: Sink) -> None:
        super().__init__(path, sink, base_offset=sink.size)

    def _render(self, records: list[dict[str, Any]]) -> str:
        return "\n".join(map(encode_json, records)) + "\n"

    def _render_encoded(self, encoded: Sequence[str]) -> str | None:
        return "\n".join(encoded) + "\n"


class CsvExporter(_TextExporter):
    """CSV with the first record's keys as columns and a trailing ``_extra`` column.

    Nested values (dicts, lists) are written as JSON text, booleans as ``true``/``false``,
    ``None`` and missing keys as empty cells. Keys the header lacks go into ``_extra`` as a JSON
    object. The header is written with the first record; on resume it is read back from the file.
    """

    format = "csv"

    def __init__(self, path: str, sink: Sink, *, resume_offset: int | None = None) -> None:
        super().__init__(path, sink, base_offset=sink.size)
        self._columns: list[str] | None = None
        self._extra_column = "_extra"
        if resume_offset and path != "-":
            header = _read_csv_header(path, resume_offset)
            if len(header) < 1:
                raise SettingsError(f"cannot resume {path!r}: no CSV header in the file")
            self._columns = header[:-1]
            self._extra_column = header[-1]
        self._column_set = frozenset(self._columns or ())

    def _render(self, records: list[dict[str, Any]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if self._columns is None:
            columns = list(records[0])
            extra = "_extra"
            while extra in columns:
                extra += "_"
            self._columns, self._extra_column = columns, extra
            self._column_set = frozenset(columns)
            writer.writerow([*columns, extra])
        columns, column_set = self._columns, self._column_set
        cell = _csv_cell
        rows = []
        for record in records:
            row = [cell(record.get(c)) for c in columns]
            if column_set.issuperset(record):
                row.append("")
            else:
                extras = {k: v for k, v in record.items() if k not in column_set}
                row.append(encode_json(extras))
            rows.append(row)
        writer.writerows(rows)
        return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict | list):
        return encode_json(value)
    return value


def _read_csv_header(path: str, limit: int) -> list[str]:
    with open(path, "rb") as file:
        head = file.read(min(limit, 16 * 1024 * 1024))
    text = head.decode("utf-8", errors="replace")
    try:
        return next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error as exc:
        raise SettingsError(f"cannot resume {path!r}: unreadable CSV header ({exc})") from None
