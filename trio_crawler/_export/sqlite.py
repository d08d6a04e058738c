"""The SQLite writer: a table per item type, columns from the records' keys."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from .._records import encode_json
from .base import BaseExporter, cannot_write

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


class SqliteExporter(BaseExporter):
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
            raise cannot_write(path, "sqlite", exc) from None
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
            raise cannot_write(path, "sqlite", exc) from None
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
