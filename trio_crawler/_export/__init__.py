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

import errno
import os
from collections.abc import Callable

from .._exceptions import SettingsError
from .._records import item_type_name, to_record
from .base import FORMATS, Exporter, cannot_write
from .sqlite import SqliteExporter
from .text import WRITE_THRESHOLD, CsvExporter, FileSink, JsonLinesExporter, Sink, StdoutSink

__all__ = [
    "FORMATS",
    "WRITE_THRESHOLD",
    "CsvExporter",
    "Exporter",
    "JsonLinesExporter",
    "SqliteExporter",
    "check_target",
    "item_type_name",
    "open_exporter",
    "to_record",
    "unwritable",
]

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


def open_exporter(
    target: str | os.PathLike[str],
    *,
    format: str | None = None,
    resume_offset: int | None = None,
    on_closed: Callable[[], None] | None = None,
) -> Exporter:
    """Open an output writer for ``target``.

    ``target`` ``"-"`` writes JSON Lines to ``sys.stdout`` (CSV too if ``format="csv"``), flushed
    after every batch; ``resume_offset`` is ignored there. When the reader of standard output
    goes away (``| head``), the file descriptor is pointed at ``/dev/null`` (so nothing
    written later, nor the interpreter's last flush, fails again) and ``on_closed()`` is called
    once (possibly from the thread that writes: make it thread-safe); later records are
    discarded. Without ``on_closed``, every write raises :class:`BrokenPipeError` instead.

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
        sink: Sink = StdoutSink(on_closed)
    elif fmt == "sqlite":
        return SqliteExporter(path, resume_offset=resume_offset)
    else:
        sink = FileSink.open(path, fmt, resume_offset)
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


def check_target(target: str | os.PathLike[str], *, format: str | None = None) -> str:
    """Check, without touching it, that :func:`open_exporter` can write ``target``; return its
    format. Raises the one-line :class:`SettingsError` that ``open_exporter`` would (an unknown
    format, a missing or read-only directory, a directory, a read-only file), so that a command
    can check all its outputs before it opens (and truncates) any of them."""
    path = os.fspath(target)
    fmt = _resolve_format(path, format)
    if path == "-":
        if fmt == "sqlite":
            raise SettingsError("cannot write SQLite to standard output; give a file name")
        return fmt
    problem = unwritable(path)
    if problem is not None:
        raise cannot_write(path, fmt, problem)
    return fmt


def unwritable(path: str) -> OSError | None:
    """Why ``path`` could not be created or overwritten now (without touching it), or None."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return IsADirectoryError(errno.EISDIR, "Is a directory")
    if not os.path.isdir(directory):
        return FileNotFoundError(errno.ENOENT, f"No such directory {directory}")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return PermissionError(errno.EACCES, "Permission denied (a read-only file)")
    elif not os.access(directory, os.W_OK | os.X_OK):
        return PermissionError(errno.EACCES, f"Permission denied ({directory})")
    return None
