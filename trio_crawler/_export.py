"""Output writers: JSON Lines, CSV and SQLite.

Synchronous and free of Trio: the crawl's store calls these when it commits a batch of pages
(the durable stores in their writer thread), so an output file holds exactly what the store
committed. Several exporters may be open at once; they share nothing.

Theory of operation
-------------------
Items become records with :func:`~trio_crawler._records.to_record` (and are named by
:func:`~trio_crawler._records.item_type_name`: a SQLite table per kind).

An exporter writes **whole records only**. The JSON Lines and CSV writers turn a batch into one
string and hand it to the OS with one ``write``; :meth:`Exporter.offset` counts the bytes of the
complete records handed over so far. Records are buffered in memory until the buffer passes
:data:`WRITE_THRESHOLD` characters or :meth:`Exporter.flush` is called. The SQLite writer inserts
each batch with ``executemany`` inside a transaction that :meth:`Exporter.flush` commits; its
offset is the number of rows committed.

Crash-safe resume: the engine stores ``offset()`` (after ``flush()``) with its own checkpoint and
passes it back as ``resume_offset``. JSON Lines and CSV files are then truncated to that many bytes
(dropping a half-written last line, or records written after the checkpoint) and appended to.
SQLite rows carry a ``_rowid`` numbered in one sequence over all tables, so rows whose ``_rowid``
is above ``resume_offset`` are deleted and the sequence goes on from there.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, Self

from ._exceptions import SettingsError
from ._records import encode_json, item_type_name, to_record

__all__ = [
    "FORMATS",
    "WRITE_THRESHOLD",
    "CsvExporter",
    "Exporter",
    "JsonLinesExporter",
    "SqliteExporter",
    "item_type_name",
    "open_exporter",
    "to_record",
]

#: The output formats, by their canonical names.
FORMATS: tuple[str, ...] = ("jsonl", "csv", "sqlite")

#: Buffered characters after which ``write_many`` hands its buffer to the OS without waiting
#: for ``flush()``.
WRITE_THRESHOLD = 256 * 1024

_EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".db": "sqlite",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
}

_FORMAT_ALIASES: dict[str, str] = {
    "jsonl": "jsonl",
    "jsonlines": "jsonl",
    "ndjson": "jsonl",
    "json": "jsonl",
    "csv": "csv",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "db": "sqlite",
}

# ---------------------------------------------------------------------------------------------
# Exporters
# ---------------------------------------------------------------------------------------------


class Exporter(Protocol):
    """What the engine needs of an output writer. Synchronous; not thread-safe."""

    path: str
    """The target: a file path, or ``"-"`` for standard output."""
    format: str
    """``"jsonl"``, ``"csv"`` or ``"sqlite"``."""

    def write_many(self, items: Sequence[object]) -> None:
        """Convert and write ``items``. Buffered: only whole records ever reach the file."""

    def flush(self) -> None:
        """Hand every buffered record to the OS (SQLite: commit)."""

    def offset(self) -> int:
        """Bytes of complete records handed to the OS so far (after ``flush()``, the file's
        size); SQLite: rows committed in all tables. Pass it back as ``resume_offset``."""

    def close(self) -> None:
        """``flush()`` and close. Idempotent."""

    def __enter__(self) -> Self:
        """``with open_exporter(...) as exporter:`` closes it on the way out."""

    def __exit__(self, *exc_info: object) -> None: ...


def open_exporter(
    target: str | os.PathLike[str],
    *,
    format: str | None = None,
    resume_offset: int | None = None,
) -> Exporter:
    """Open an output writer for ``target``.

    ``target`` ``"-"`` writes JSON Lines to ``sys.stdout`` (CSV too if ``format="csv"``), flushed
    after every batch; ``resume_offset`` is ignored there.

    The format comes from ``format`` (``"jsonl"``, ``"csv"``, ``"sqlite"``; aliases ``"json"``,
    ``"ndjson"``, ``"sqlite3"``, ``"db"``) or else from the extension: ``.jsonl``, ``.ndjson`` and
    ``.json`` -> JSON Lines (**a ``.json`` file gets JSON Lines too**, one object per line, not
    one JSON array: an array cannot be appended to or survive an interrupted crawl), ``.csv`` ->
    CSV, ``.db``, ``.sqlite``, ``.sqlite3`` -> SQLite.

    ``resume_offset`` continues an interrupted crawl: JSON Lines and CSV files are truncated to
    that many bytes and appended to (CSV keeps the header already in the file); SQLite rows past
    that count are deleted. ``None`` creates the target or overwrites it.

    Raises :class:`SettingsError` (one-line message) at once, not at the first write, for an
    unknown format or extension and for a target that cannot be written (missing directory,
    permission, a directory, not a SQLite database), or whose contents do not match
    ``resume_offset``.
    """
    path = os.fspath(target)
    fmt = _resolve_format(path, format)
    if resume_offset is not None and resume_offset < 0:
        raise SettingsError(f"resume offset must be >= 0, not {resume_offset}")
    if path == "-":
        if fmt == "sqlite":
            raise SettingsError("cannot write SQLite to standard output; give a file name")
        sink: _Sink = _StdoutSink()
    elif fmt == "sqlite":
        return SqliteExporter(path, resume_offset=resume_offset)
    else:
        sink = _FileSink.open(path, fmt, resume_offset)
    if fmt == "csv":
        try:
            return CsvExporter(path, sink, resume_offset=resume_offset)
        except BaseException:
            sink.close()
            raise
    return JsonLinesExporter(path, sink)


def _resolve_format(path: str, format: str | None) -> str:
    if format is not None:
        fmt = _FORMAT_ALIASES.get(format.strip().lower())
        if fmt is None:
            raise SettingsError(
                f"unknown output format {format!r}; choose one of {', '.join(FORMATS)}"
            )
        return fmt
    if path == "-":
        return "jsonl"
    ext = os.path.splitext(path)[1].lower()
    fmt = _EXTENSIONS.get(ext)
    if fmt is None:
        raise SettingsError(
            f"cannot tell the output format of {path!r}: name it .jsonl, .csv or .db,"
            f" or give the format ({', '.join(FORMATS)})"
        )
    return fmt


def _cannot_write(path: str, fmt: str, exc: BaseException) -> SettingsError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    reason = " ".join(reason.split())  # one line, whatever the OS or SQLite said
    return SettingsError(f"cannot write {fmt} output to {path!r}: {reason}")


class _Sink(Protocol):
    size: int
    """Bytes of complete records in the target (0 for stdout)."""

    def write(self, text: str) -> int: ...
    def close(self) -> None: ...


class _StdoutSink:
    """Writes UTF-8 to whatever ``sys.stdout`` is at the time, flushing every write."""

    size = 0

    def write(self, text: str) -> int:
        data = text.encode("utf-8", errors="replace")
        stream = sys.stdout
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()  # keep order with anything printed before
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8"))
            stream.flush()
        return len(data)

    def close(self) -> None:
        pass  # never close the process's stdout


class _FileSink:
    """An unbuffered binary file written in whole chunks; a failed write is rolled back."""

    def __init__(self, file: io.FileIO, size: int) -> None:
        self._file = file
        self.size = size

    @classmethod
    def open(cls, path: str, fmt: str, resume_offset: int | None) -> _FileSink:
        try:
            if resume_offset is None or (resume_offset == 0 and not os.path.exists(path)):
                file = io.FileIO(path, "w")
                return cls(file, 0)
            file = io.FileIO(path, "r+")
        except OSError as exc:
            raise _cannot_write(path, fmt, exc) from None
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
            raise _cannot_write(path, fmt, exc) from None
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


class _BaseExporter:
    """What every writer shares: items are converted once, then written as records, and the
    writer closes itself at the end of a ``with`` block."""

    path: str
    format: str
    _closed: bool

    def write_records(
        self, records: Sequence[tuple[str, dict[str, Any]]], encoded: Sequence[str] | None
    ) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def write_many(self, items: Sequence[object]) -> None:
        if self._closed:
            raise ValueError(f"{self.format} exporter for {self.path!r} is closed")
        if not items:
            return
        # Convert first: a failing item then leaves the output untouched.
        self.write_records([(item_type_name(item), to_record(item)) for item in items], None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _TextExporter(_BaseExporter):
    """Shared buffering of the JSON Lines and CSV writers."""

    format: str

    def __init__(self, path: str, sink: _Sink, *, base_offset: int = 0) -> None:
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

    def __init__(self, path: str, sink: _Sink) -> None:
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

    def __init__(self, path: str, sink: _Sink, *, resume_offset: int | None = None) -> None:
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


# ---------------------------------------------------------------------------------------------
# SQLite
# ---------------------------------------------------------------------------------------------

#: Past this many columns in one table, new keys go into a JSON ``_extra`` column.
_SQLITE_MAX_COLUMNS = 1000
_ROWID = "_rowid"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Table:
    """A table's columns and the mapping from record keys to them."""

    def __init__(self, name: str, columns: Iterable[str]) -> None:
        self.name = name
        self.quoted = _quote(name)
        self.columns: list[str] = list(columns)
        self.folded: set[str] = {c.lower() for c in self.columns}
        self.key_to_column: dict[str, str] = {c: c for c in self.columns if c != _ROWID}
        # On resume, a full table's "_extra" column is taken to be the overflow column.
        full = len(self.columns) >= _SQLITE_MAX_COLUMNS
        self.extra: str | None = "_extra" if full and "_extra" in self.columns else None

    def column_for(self, key: str, new_columns: list[str]) -> str | None:
        """The column for ``key``, choosing (and noting in ``new_columns``) a new one if needed.
        ``None`` when the table is full: the key goes to ``_extra``."""
        column = self.key_to_column.get(key)
        if column is not None:
            return column
        if len(self.columns) >= _SQLITE_MAX_COLUMNS:
            return None
        base = key.replace("\x00", "") or "_"
        column, n = base, 1
        while column.lower() in self.folded:  # SQLite names are case-insensitive
            n += 1
            column = f"{base}_{n}"
        self.columns.append(column)
        self.folded.add(column.lower())
        self.key_to_column[key] = column
        new_columns.append(column)
        return column

    def extra_column(self, new_columns: list[str]) -> str:
        """The JSON overflow column, for keys that found the table full."""
        if self.extra is None:
            column = "_extra"
            while column.lower() in self.folded:
                column += "_"
            self.columns.append(column)
            self.folded.add(column.lower())
            new_columns.append(column)
            self.extra = column
        return self.extra


class SqliteExporter(_BaseExporter):
    """One table per :func:`item_type_name`, columns from the records' keys.

    Each table has ``_rowid INTEGER PRIMARY KEY AUTOINCREMENT``; the exporter numbers rows in one
    sequence over all its tables, so ``offset()`` (rows committed) also says which rows to keep
    on resume. Columns are untyped; new keys add columns (``ALTER TABLE ... ADD COLUMN``); keys
    that differ only in case from an existing column get a ``_2`` suffix. ``str``, ``int``,
    ``float`` and ``None`` are stored as they are, ``bool`` as 0/1, anything else (and integers
    beyond 64 bits) as JSON text. All names are quoted, so any key is safe.
    """

    format = "sqlite"

    def __init__(self, path: str, *, resume_offset: int | None = None) -> None:
        self.path = path
        self._closed = False
        self._in_transaction = False
        try:
            if resume_offset is None:
                _remove_database(path)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise _cannot_write(path, "sqlite", exc) from None
        try:
            self._tables = self._load_tables()
            # Prove now, not at the first write, that the file (and its directory, for the
            # journal) can be written: SQLite quietly opens a read-only file read-only.
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute('CREATE TABLE "_trio_crawler_probe" (x)')
            self._conn.execute('DROP TABLE "_trio_crawler_probe"')
            self._seq = 0
            for table in self._tables.values():
                (top,) = self._conn.execute(
                    f"SELECT COALESCE(MAX({_quote(_ROWID)}), 0) FROM {table.quoted}"
                ).fetchone()
                if resume_offset is not None and top > resume_offset:
                    self._conn.execute(
                        f"DELETE FROM {table.quoted} WHERE {_quote(_ROWID)} > ?",
                        (resume_offset,),
                    )
                    top = resume_offset
                self._seq = max(self._seq, top)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.close()
            raise _cannot_write(path, "sqlite", exc) from None
        self._committed = self._seq

    def _load_tables(self) -> dict[str, _Table]:
        tables: dict[str, _Table] = {}
        names = [
            row[0]
            for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for name in names:
            columns = [row[1] for row in self._conn.execute(f"PRAGMA table_info({_quote(name)})")]
            if _ROWID in columns:  # one of ours
                tables[name] = _Table(name, columns)
        return tables

    def write_records(
        self, records: Sequence[tuple[str, dict[str, Any]]], encoded: Sequence[str] | None
    ) -> None:
        """Write items already converted: ``(type name, record)`` pairs."""
        if self._closed:
            raise ValueError(f"sqlite exporter for {self.path!r} is closed")
        if not records:
            return
        if not self._in_transaction:
            self._conn.execute("BEGIN")
            self._in_transaction = True
        # A savepoint per batch: if the batch fails, none of it (rows, new columns) remains.
        self._conn.execute("SAVEPOINT batch")
        seq = self._seq
        try:
            groups: dict[tuple[str, tuple[str, ...]], list[list[Any]]] = {}
            for type_name, record in records:
                seq += 1
                table, columns, row = self._row(type_name, record)
                row.append(seq)
                groups.setdefault((table.name, columns), []).append(row)
            for (name, columns), rows in groups.items():
                names = ", ".join(_quote(c) for c in (*columns, _ROWID))
                marks = ", ".join("?" * (len(columns) + 1))
                self._conn.executemany(
                    f"INSERT INTO {_quote(name)} ({names}) VALUES ({marks})", rows
                )
        except BaseException:
            self._conn.execute("ROLLBACK TO batch")
            self._conn.execute("RELEASE batch")
            self._tables = self._load_tables()  # forget columns the rollback removed
            raise
        self._conn.execute("RELEASE batch")
        self._seq = seq

    def _row(
        self, type_name: str, record: dict[str, Any]
    ) -> tuple[_Table, tuple[str, ...], list[Any]]:
        """The table, columns and values for one record; adds the columns it lacks."""
        table = self._table_for(type_name)
        new_columns: list[str] = []
        columns: list[str] = []
        row: list[Any] = []
        extras: dict[str, Any] = {}
        for key, value in record.items():
            column = table.column_for(key, new_columns)
            if column is None:
                extras[key] = value
            else:
                columns.append(column)
                row.append(_sqlite_value(value))
        if extras:
            columns.append(table.extra_column(new_columns))
            row.append(encode_json(extras))
        for column in new_columns:
            self._conn.execute(f"ALTER TABLE {table.quoted} ADD COLUMN {_quote(column)}")
        return table, tuple(columns), row

    def _table_for(self, type_name: str) -> _Table:
        table = self._tables.get(type_name)
        if table is None:
            name = type_name
            if name.startswith("sqlite_"):  # reserved by SQLite
                name = "item_" + name
            table = self._tables.get(name)
            while table is None and self._name_taken(name):  # a table (or view) not ours
                name += "_"
                table = self._tables.get(name)
            if table is None:
                self._conn.execute(
                    f"CREATE TABLE {_quote(name)}"
                    f" ({_quote(_ROWID)} INTEGER PRIMARY KEY AUTOINCREMENT)"
                )
                table = _Table(name, [_ROWID])
            self._tables[type_name] = self._tables[name] = table
        return table

    def _name_taken(self, name: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE lower(name) = lower(?)"
        return self._conn.execute(query, (name,)).fetchone() is not None

    def flush(self) -> None:
        if self._in_transaction and not self._closed:
            self._conn.execute("COMMIT")
            self._in_transaction = False
            self._committed = self._seq

    def offset(self) -> int:
        return self._committed

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"<SqliteExporter {self.path!r} offset={self._committed}>"


def _sqlite_value(value: Any) -> Any:
    cls = type(value)
    if cls is str or cls is float or value is None:
        return value
    if cls is int:
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)
    if cls is bool:
        return int(value)
    return encode_json(value)


def _remove_database(path: str) -> None:
    """Overwrite semantics for SQLite: remove the old database (and its journals)."""
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory", path)
    if os.path.exists(path):
        open(path, "r+b").close()  # a write-protected file is refused, not deleted
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
