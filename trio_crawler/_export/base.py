"""What every output writer shares: the :class:`Exporter` protocol, the base class that
converts items once, and the one-line error for a target that cannot be written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self

from .._exceptions import SettingsError
from .._records import item_type_name, to_record

#: The output formats, by their canonical names.
FORMATS: tuple[str, ...] = ("jsonl", "csv", "sqlite")


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


def cannot_write(path: str, fmt: str, exc: BaseException) -> SettingsError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    reason = " ".join(reason.split())  # one line, whatever the OS or SQLite said
    return SettingsError(f"cannot write {fmt} output to {path!r}: {reason}")


class BaseExporter:
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
