"""The durable store: one SQLite file (WAL) holds the frontier, the seen set, per-host state,
the items, the output offsets and the statistics of one crawl, so a crawl survives a stop, a
crash or ``kill -9`` and resumes where it was.

Theory of operation
-------------------
*What lives where.* The database is the truth; memory holds a bounded working set:

* the frontier table is also the seen set (its key is the URL fingerprint, stored as a signed
  64-bit int). Each row is ``queued`` (waiting in the database), ``inflight`` (leased by the
  running process: in its in-memory window, waiting for a retry, or being fetched), ``done``, or
  ``seen`` (a fingerprint recorded by :meth:`SqliteStore.mark_seen`, nothing to fetch);
* per host, at most ``window`` queued requests sit in an in-memory
  :class:`~trio_crawler._frontier.Frontier` (per-host queues, concurrency, delay: the one
  politeness rule). When a host's window runs low it is refilled from the database through an
  index on ``(host, state, priority, seq)``, so one big host cannot starve the others and memory
  is ``window x hosts`` whatever the number of URLs discovered;
* seen lookups go through, in order: the fingerprints pending since the last commit, a bounded
  cache of recent fingerprints (two generations of sets), and a scalable Bloom filter of every
  fingerprint in the file. Only a Bloom hit that no set answers goes to the database, once per
  page for all its links, on a second (read-only) connection in a worker thread.

*Writes.* Nothing is written when a request is claimed. :meth:`SqliteStore.complete` records
the page done, its new frontier rows, its items and its host updates in an in-memory batch and
returns; a committer task hands the batch to one writer thread (``trio.to_thread``) every
``batch_interval`` seconds or ``batch_pages`` pages, whichever comes first, so many pages share
one transaction. In that transaction the writer also writes the batch's items to the output
files, flushes them and records each file's byte offset, and stores the statistics: a page is
done, its links are queued, its items are in the table and in the files, all or nothing.
A window refill rides on the same thread call.

*Counting.* ``outstanding()`` is exact: in-window + in flight + waiting for a retry + the
queued rows of the database and of the pending batch (a per-host backlog count).

*Resume.* On open, ``inflight`` rows go back to ``queued`` (in-flight pages are fetched again),
the output files are truncated to the committed offsets by the engine, the statistics are
loaded into the engine's counters, and the stored crawl identity (seeds, scope, URL rules,
spider) must equal the new one or :class:`~trio_crawler.StateMismatch` names the field.

*Guarantees.* Every page is recorded done exactly once with its items: a page fetched before a
crash but not committed is fetched again. Side effects of ``Spider.process`` are at least
once. A request with ``dont_filter`` is given its own row (a key derived from its fingerprint
and a sequence number); a ``dont_filter`` start request is queued again on each resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from .._exceptions import SettingsError, StateMismatch, StoreError
from .._export import _encode_json, item_type_name, to_record
from .._frontier import Frontier
from .._spider import Request
from ._base import Claim, CrawlStore, NewRequest
from ._local import LocalQueue

if TYPE_CHECKING:
    from .._settings import Settings
    from .._stats import Counters

__all__ = [
    "FORMAT_VERSION",
    "SqliteStore",
    "StoredCrawl",
    "export_items",
    "iter_items",
    "read_status",
    "stored_seeds",
]

#: Version of the file layout. A file of a newer version is refused, not misread.
FORMAT_VERSION = 1

QUEUED, INFLIGHT, DONE, SEEN = 0, 1, 2, 3
STATE_NAMES = {QUEUED: "queued", INFLIGHT: "inflight", DONE: "done", SEEN: "seen"}

#: Longest the final commit of a crawl that ends normally may take (seconds).
_FINAL_COMMIT_SECONDS = 60.0
_SQLITE_MAGIC = b"SQLite format 3\x00"
_OUR_TABLES = frozenset({"meta", "frontier", "hosts", "items", "outputs"})
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frontier (
    fp INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    host TEXT NOT NULL,
    request TEXT NOT NULL,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL,
    not_before REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS frontier_window ON frontier (host, state, priority DESC, seq);
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY,
    next_allowed REAL NOT NULL DEFAULT 0,
    delay REAL,
    admitted INTEGER NOT NULL DEFAULT 0,
    robots_status INTEGER,
    robots_body BLOB,
    robots_fetched_at REAL
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    page INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (page, seq)
);
CREATE TABLE IF NOT EXISTS outputs (path TEXT PRIMARY KEY, "offset" INTEGER NOT NULL);
"""

_U64 = 1 << 64
_I63 = 1 << 63


def _signed(fp: int) -> int:
    return fp - _U64 if fp >= _I63 else fp


def _unsigned(fp: int) -> int:
    return fp + _U64 if fp < 0 else fp


def _row_key(fp: int, seq: int) -> int:
    """A key of its own for a ``dont_filter`` request (never the URL's fingerprint)."""
    x = (fp ^ (seq * 0x9E3779B97F4A7C15)) % _U64
    x = ((x ^ (x >> 31)) * 0xBF58476D1CE4E5B9) % _U64
    return x ^ (x >> 29)


# --------------------------------------------------------------------------- pure helpers
class _Bloom:
    """A scalable Bloom filter of 64-bit fingerprints (already uniform hashes): about 1.5 bytes
    per fingerprint and well under 1% false positives. A layer twice as large is added when
    the last one is full, so it never needs to know the crawl's size in advance."""

    __slots__ = ("_layers",)

    _BITS_PER_ITEM = 12
    _K = 4

    def __init__(self, capacity: int = 1 << 18) -> None:
        self._layers: list[tuple[bytearray, int, int, list[int]]] = []
        self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        bits = 1 << max(10, (capacity * self._BITS_PER_ITEM - 1).bit_length())
        self._layers.append((bytearray(bits >> 3), bits - 1, capacity, [0]))

    def add(self, fp: int) -> None:
        table, mask, capacity, count = self._layers[-1]
        if count[0] >= capacity:
            self._grow(capacity * 2)
            table, mask, capacity, count = self._layers[-1]
        count[0] += 1
        h1 = fp & 0xFFFFFFFF
        h2 = (fp >> 32) | 1
        for i in range(self._K):
            bit = (h1 + i * h2) & mask
            table[bit >> 3] |= 1 << (bit & 7)

    def __contains__(self, fp: int) -> bool:
        h1 = fp & 0xFFFFFFFF
        h2 = (fp >> 32) | 1
        for table, mask, _, _ in self._layers:
            for i in range(self._K):
                bit = (h1 + i * h2) & mask
                if not table[bit >> 3] & (1 << (bit & 7)):
                    break
            else:
                return True
        return False

    def nbytes(self) -> int:
        return sum(len(layer[0]) for layer in self._layers)


def _encode_request(request: Request) -> str:
    data: dict[str, Any] = {"url": request.url}
    if request.headers:
        data["headers"] = dict(request.headers)
    if request.priority:
        data["priority"] = request.priority
    if request.meta:
        data["meta"] = dict(request.meta)
    if request.dont_filter:
        data["dont_filter"] = True
    if request.depth:
        data["depth"] = request.depth
    if request.referrer is not None:
        data["referrer"] = request.referrer
    if request.retries:
        data["retries"] = request.retries
    if request.redirects:
        data["redirects"] = list(request.redirects)
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"cannot store the request for {request.url[:200]}: its meta is not JSON ({exc})"
        ) from None


def _decode_request(text: str) -> Request:
    data = json.loads(text)
    if "redirects" in data:
        data["redirects"] = tuple(data["redirects"])
    return Request(**data)


def _describe(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def _translate(path: str, exc: BaseException) -> StoreError:
    """One line for a user, whatever SQLite or the OS said."""
    message = str(exc).lower()
    if "readonly" in message or "read-only" in message or isinstance(exc, PermissionError):
        return StoreError(f"cannot write the state file {path}: it is read-only ({exc})")
    if "disk is full" in message or "no space" in message:
        return StoreError(f"cannot write the state file {path}: the disk is full")
    if "not a database" in message or "malformed" in message:
        return StoreError(f"{path} is not a trio-crawler state file (corrupted or not SQLite)")
    if "unable to open" in message:
        return StoreError(f"cannot open the state file {path} ({exc})")
    return StoreError(f"state file {path}: {exc}")


@dataclasses.dataclass(slots=True)
class _Batch:
    """What the event loop hands the writer thread in one call."""

    rows: list[tuple[int, str, str, Request, int, int, int]] = dataclasses.field(
        default_factory=list
    )
    seen: list[int] = dataclasses.field(default_factory=list)
    retries: list[tuple[Request, float, int]] = dataclasses.field(default_factory=list)
    done: list[int] = dataclasses.field(default_factory=list)
    items: list[tuple[int, Sequence[Any]]] = dataclasses.field(default_factory=list)
    hosts: list[tuple[str, float, float, int]] = dataclasses.field(default_factory=list)
    robots: list[tuple[str, int, bytes, float]] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.rows
            or self.seen
            or self.retries
            or self.done
            or self.items
            or self.hosts
            or self.robots
        )


@dataclasses.dataclass(slots=True)
class _Loaded:
    """What opening the file found (for a resume)."""

    resumed: bool
    stats: dict[str, Any]
    offsets: dict[str, int]
    hosts: list[tuple[str, float, float | None, int]]
    backlog: dict[str, int]
    next_seq: int
    bloom: _Bloom
    windows: dict[str, list[tuple[int, str, float]]]


# --------------------------------------------------------------------------- the writer side
def _connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = "file:" + os.path.abspath(path).replace("?", "%3f").replace("#", "%23")
        conn = sqlite3.connect(
            uri + "?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA cache_size = -8000")
    return conn


def _check_file(path: str) -> None:
    """Refuse what is clearly not a SQLite file before SQLite gets to say it obscurely."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise StoreError(f"state file {path} is a directory") from None
    except OSError as exc:
        raise StoreError(f"cannot read the state file {path}: {exc.strerror or exc}") from None
    if head and head != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not a trio-crawler state file (not a SQLite database)")


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _read_meta(conn: sqlite3.Connection, path: str) -> dict[str, str]:
    tables = _tables(conn)
    if not tables:
        return {}
    if not tables >= _OUR_TABLES:
        raise StoreError(f"{path} is not a trio-crawler state file (another kind of SQLite file)")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    try:
        version = int(meta.get("format", "0"))
    except ValueError:
        version = 0
    if version < 1:
        raise StoreError(f"{path} is not a trio-crawler state file (no format version)")
    if version > FORMAT_VERSION:
        raise StoreError(
            f"{path} was written by a newer trio-crawler (state format {version}, this one "
            f"reads {FORMAT_VERSION})"
        )
    return meta


def _compare_meta(path: str, stored: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if key in stored and _jsonable(stored[key]) != _jsonable(value):
            raise StateMismatch(
                f"{path} holds a crawl with other {key} ({_describe(stored[key])}, now "
                f"{_describe(value)}); use the same {key} to resume, or a new state file"
            )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class _Writer:
    """The writer connection. Used by one thread call at a time (the committer serialises)."""

    def __init__(self, path: str, window: int, depth_first: bool) -> None:
        self.path = path
        self.window = window
        self.order = "priority DESC, seq DESC" if depth_first else "priority DESC, seq"
        self.conn: sqlite3.Connection | None = None

    # -- open
    def open(self, meta: Mapping[str, Any]) -> _Loaded:
        _check_file(self.path)
        try:
            self.conn = conn = _connect(self.path)
            stored = _read_meta(conn, self.path)
            if stored:
                _compare_meta(self.path, json.loads(stored.get("crawl", "{}")), meta)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot put the state file {self.path} in WAL mode")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                crawl = {**json.loads(stored.get("crawl", "{}")), **_jsonable(dict(meta))}
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("format", str(FORMAT_VERSION)), ("crawl", json.dumps(crawl))],
                )
                if not stored:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('created', ?)", (str(time.time()),)
                    )
                conn.execute(f"UPDATE frontier SET state = {QUEUED} WHERE state = {INFLIGHT}")
                loaded = self._load(bool(stored))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return loaded
        except sqlite3.Error as exc:
            self.close()
            raise _translate(self.path, exc) from None
        except BaseException:
            self.close()
            raise

    def _load(self, resumed: bool) -> _Loaded:
        assert self.conn is not None
        conn = self.conn
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        stats = json.loads(meta.get("stats", "{}"))
        offsets = dict(conn.execute('SELECT path, "offset" FROM outputs').fetchall())
        hosts = conn.execute("SELECT host, next_allowed, delay, admitted FROM hosts").fetchall()
        backlog = dict(
            conn.execute(
                f"SELECT host, count(*) FROM frontier WHERE state = {QUEUED} GROUP BY host"
            ).fetchall()
        )
        next_seq = (conn.execute("SELECT max(seq) FROM frontier").fetchone()[0] or 0) + 1
        total = conn.execute("SELECT count(*) FROM frontier").fetchone()[0]
        bloom = _Bloom(max(1 << 18, total * 2))
        for (fp,) in conn.execute("SELECT fp FROM frontier"):
            bloom.add(_unsigned(fp))
        windows = self._refill([(host, self.window) for host in backlog])
        return _Loaded(resumed, stats, offsets, hosts, backlog, next_seq, bloom, windows)

    def _refill(self, wanted: Sequence[tuple[str, int]]) -> dict[str, list[tuple[int, str, float]]]:
        assert self.conn is not None
        out: dict[str, list[tuple[int, str, float]]] = {}
        for host, n in wanted:
            rows = self.conn.execute(
                f"SELECT fp, request, not_before FROM frontier WHERE host = ? AND state = {QUEUED}"
                f" ORDER BY {self.order} LIMIT ?",
                (host, n),
            ).fetchall()
            if rows:
                self.conn.executemany(
                    f"UPDATE frontier SET state = {INFLIGHT} WHERE fp = ?", [(r[0],) for r in rows]
                )
            out[host] = [(_unsigned(fp), request, nb) for fp, request, nb in rows]
        return out

    # -- one commit
    def commit(
        self,
        batch: _Batch,
        refill: Sequence[tuple[str, int]],
        stats: str,
        outputs: Sequence[Any],
    ) -> dict[str, list[tuple[Claim, float]]]:
        conn = self.conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if batch.rows:
                    conn.executemany(
                        "INSERT OR IGNORE INTO frontier (fp, url, host, request, state, priority,"
                        " seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (_signed(key), url, host, _encode_request(req), state, prio, seq)
                            for key, url, host, req, state, prio, seq in batch.rows
                        ],
                    )
                if batch.seen:
                    conn.executemany(
                        "INSERT OR IGNORE INTO frontier (fp, url, host, request, state, seq)"
                        f" VALUES (?, '', '', '{{}}', {SEEN}, 0)",
                        [(_signed(fp),) for fp in batch.seen],
                    )
                if batch.retries:
                    conn.executemany(
                        "UPDATE frontier SET request = ?, not_before = ? WHERE fp = ?",
                        [(_encode_request(r), nb, _signed(k)) for r, nb, k in batch.retries],
                    )
                if batch.done:
                    conn.executemany(
                        f"UPDATE frontier SET state = {DONE} WHERE fp = ?",
                        [(_signed(k),) for k in batch.done],
                    )
                # each item is converted and encoded once, for the table and the outputs
                rows = [
                    (_signed(page), i, item_type_name(item), to_record(item))
                    for page, items in batch.items
                    for i, item in enumerate(items)
                ]
                encoded = [_encode_json(row[3]) for row in rows]
                if rows:
                    conn.executemany(
                        "INSERT INTO items (page, seq, type, data) VALUES (?, ?, ?, ?)",
                        [
                            (page, i, kind, text)
                            for (page, i, kind, _), text in zip(rows, encoded, strict=True)
                        ],
                    )
                if batch.hosts:
                    conn.executemany(
                        "INSERT INTO hosts (host, next_allowed, delay, admitted)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
                        " next_allowed = excluded.next_allowed, delay = excluded.delay,"
                        " admitted = excluded.admitted",
                        batch.hosts,
                    )
                if batch.robots:
                    conn.executemany(
                        "INSERT INTO hosts (host, robots_status, robots_body, robots_fetched_at)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
                        " robots_status = excluded.robots_status,"
                        " robots_body = excluded.robots_body,"
                        " robots_fetched_at = excluded.robots_fetched_at",
                        batch.robots,
                    )
                refilled = self._refill(refill) if refill else {}
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('stats', ?)", (stats,))
                if outputs:
                    records = [(kind, record) for _, _, kind, record in rows]
                    offsets = self._write_outputs(batch, outputs, records, encoded)
                    conn.executemany(
                        'INSERT OR REPLACE INTO outputs (path, "offset") VALUES (?, ?)', offsets
                    )
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _translate(self.path, exc) from None
        now = time.time()
        return {
            host: [
                (Claim(_decode_request(text), key, host), nb - now if nb > now else 0.0)
                for key, text, nb in rows
            ]
            for host, rows in refilled.items()
        }

    def _write_outputs(
        self,
        batch: _Batch,
        outputs: Sequence[Any],
        records: Sequence[tuple[str, dict[str, Any]]],
        encoded: Sequence[str],
    ) -> list[tuple[str, int]]:
        offsets = []
        for exporter in outputs:
            try:
                if records:
                    if hasattr(exporter, "write_records"):
                        exporter.write_records(records, encoded)
                    else:  # an exporter of the caller's own
                        exporter.write_many(
                            [item for _, page_items in batch.items for item in page_items]
                        )
                exporter.flush()
            except (OSError, SettingsError, sqlite3.Error) as exc:
                reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else exc
                raise StoreError(f"cannot write {exporter.path}: {reason}") from None
            target = exporter.path if exporter.path == "-" else os.path.abspath(exporter.path)
            offsets.append((target, exporter.offset()))
        return offsets

    def release(self) -> None:
        """A clean stop: leased rows go back to ``queued`` (a crash leaves that to the open)."""
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute(f"UPDATE frontier SET state = {QUEUED} WHERE state = {INFLIGHT}")

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None


# --------------------------------------------------------------------------- the store
class SqliteStore(LocalQueue, CrawlStore):
    """A crawl's state in one SQLite file; ``":memory:"`` is not supported (use MemoryStore).

    ``window``: queued requests per host held in memory; ``batch_pages`` and
    ``batch_interval``: a commit happens every that many pages or seconds, whichever first.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        per_host_concurrency: int = 2,
        per_host_delay: float = 0.25,
        max_pages_per_host: int | None = None,
        depth_first: bool = False,
        window: int = 128,
        batch_pages: int = 200,
        batch_interval: float = 0.1,
        cache_size: int = 1 << 16,
    ) -> None:
        super().__init__()
        self.path = os.fspath(path)
        if self.path == ":memory:" or not self.path:
            raise SettingsError("the state store needs a file name")
        self._frontier: Frontier[Claim] = Frontier(
            per_host_concurrency=per_host_concurrency,
            per_host_delay=per_host_delay,
            depth_first=depth_first,
        )
        self._writer = _Writer(self.path, window, depth_first)
        self._reader: sqlite3.Connection | None = None
        self._read_lock = trio.Lock()
        self._commit_lock = trio.Lock()
        self._window = window
        self._low_water = max(1, window // 2)
        self._batch_pages = batch_pages
        self._max_pending = batch_pages * 4
        self._batch_interval = batch_interval
        self._cache_size = cache_size
        self._max_per_host = max_pages_per_host
        self.over_budget = 0
        # seen set
        self._bloom = _Bloom()
        self._hot: set[int] = set()
        self._warm: set[int] = set()
        self._pending_fps: set[int] = set()
        self._writing_fps: set[int] = set()
        self._committed: list[tuple[int, set[int]]] = []  # (generation, fps) kept for lookups
        self._lookups: dict[object, int] = {}  # lookup token -> generation at its start
        self._generation = 0
        # frontier bookkeeping
        self._init_queue()
        self._row_seq = itertools.count(1)
        self._backlog: dict[str, int] = {}
        self._backlog_total = 0
        self._refill: set[str] = set()
        self._admitted: dict[str, int] = {}
        self._host_wall: dict[str, float] = {}
        # batching
        self._batch = _Batch()
        self._batch_pages_now = 0
        self._batch_started = math.inf
        self._urgent = False
        self._kick = trio.Event()
        self._committed_event = trio.Event()
        self._counters: Counters | None = None
        self._offsets: dict[str, int] = {}
        self._open = False
        self._failed: BaseException | None = None
        self.commits = 0

    @classmethod
    def from_settings(cls, path: str | os.PathLike[str], settings: Settings) -> SqliteStore:
        return cls(
            path,
            per_host_concurrency=settings.per_host_concurrency,
            per_host_delay=settings.per_host_delay,
            max_pages_per_host=settings.max_pages_per_host,
        )

    # ------------------------------------------------------------ lifecycle
    @asynccontextmanager
    async def open(self, meta: Mapping[str, Any], counters: Counters) -> AsyncIterator[bool]:
        loaded = await trio.to_thread.run_sync(self._writer.open, meta)
        try:
            self._reader = await trio.to_thread.run_sync(
                functools.partial(_connect, self.path, readonly=True)
            )
        except sqlite3.Error as exc:
            self._writer.close()
            raise _translate(self.path, exc) from None
        self._install(loaded, counters)
        self._open = True
        finished = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._committer, name="trio_crawler.store.committer")
                try:
                    yield loaded.resumed
                finally:
                    nursery.cancel_scope.cancel()
            finished = True
        finally:
            self._open = False
            # A crawl that ends commits everything; one cancelled or failing gets 0.5 s, and
            # what is left is fetched again on resume (each page commits whole or not at all).
            error: BaseException | None = None
            with trio.move_on_after(_FINAL_COMMIT_SECONDS if finished else 0.5, shield=True):
                if self._failed is None:
                    try:
                        await self._commit()
                    except Exception as exc:  # closed below first, then raised
                        error = exc
            with trio.move_on_after(5, shield=True):
                await trio.to_thread.run_sync(self._close_connections)
            if error is not None:
                raise error

    def _close_connections(self) -> None:
        if self._failed is None:
            self._writer.release()
        self._writer.close()
        if self._reader is not None:
            with contextlib.suppress(sqlite3.Error):
                self._reader.close()
            self._reader = None

    def _install(self, loaded: _Loaded, counters: Counters) -> None:
        self._counters = counters
        _load_counters(counters, loaded.stats)
        self._offsets = loaded.offsets
        self._bloom = loaded.bloom
        self._row_seq = itertools.count(loaded.next_seq)
        now = trio.current_time()
        wall = time.time()
        for host, next_allowed, delay, admitted in loaded.hosts:
            if delay is not None:
                self._frontier.set_delay(host, delay)
            if next_allowed and next_allowed > wall:
                self._frontier.pause(host, now + (next_allowed - wall))
                self._host_wall[host] = next_allowed
            if admitted:
                self._admitted[host] = admitted
        self._backlog = dict(loaded.backlog)
        self._backlog_total = sum(self._backlog.values())
        for host, rows in loaded.windows.items():
            claims = [
                (Claim(_decode_request(text), key, host), nb - wall if nb > wall else 0.0)
                for key, text, nb in rows
            ]
            self._take_refill(host, claims)

    def attach_outputs(self, exporters: Sequence[Any]) -> None:
        self._outputs = list(exporters)

    def output_offsets(self) -> dict[str, int]:
        return dict(self._offsets)

    async def flush(self) -> None:
        await self._commit()

    async def close(self) -> None:
        await self._commit()

    # ------------------------------------------------------------ committing
    async def _committer(self) -> None:
        while True:
            deadline = self._batch_started + self._batch_interval
            if not (self._urgent or self._batch_pages_now >= self._batch_pages):
                with trio.move_on_at(deadline):
                    await self._kick.wait()
            self._kick = trio.Event()
            if (
                self._urgent
                or self._batch_pages_now >= self._batch_pages
                or trio.current_time() >= deadline
            ):
                await self._commit()

    def _poke(self) -> None:
        self._kick.set()

    async def _commit(self) -> None:
        """Hand the pending batch (and the window refills) to the writer thread; apply the
        refilled rows. Shielded: a commit in progress is never abandoned halfway."""
        async with self._commit_lock:
            if self._failed is not None:
                raise StoreError(f"the state store {self.path} failed earlier")
            refill = []
            for host in self._refill:
                state = self._frontier.host(host)
                want = self._window - len(state.queue)
                if want > 0 and self._backlog.get(host, 0) > 0:
                    refill.append((host, want))
            self._refill.clear()
            self._urgent = False
            batch, self._batch = self._batch, _Batch()
            if not batch and not refill:
                self._batch_started = math.inf
                self._batch_pages_now = 0
                return
            self._writing_fps, self._pending_fps = self._pending_fps, set()
            self._batch_pages_now = 0
            self._batch_started = math.inf
            assert self._counters is not None
            stats = _dump_counters(self._counters)
            with trio.CancelScope(shield=True):
                try:
                    refilled = await trio.to_thread.run_sync(
                        self._writer.commit, batch, refill, stats, self._outputs
                    )
                except BaseException as exc:
                    self._failed = exc
                    raise
                self.commits += 1
                self._generation += 1
                if self._lookups:
                    self._committed.append((self._generation, self._writing_fps))
                else:
                    self._committed.clear()
                self._writing_fps = set()
                for host, claims in refilled.items():
                    self._take_refill(host, claims)
                    # rows still pending in the next batch: ask again after it
                    if self._backlog.get(host, 0) and not claims:
                        self._refill.add(host)
                self._committed_event.set()
                self._committed_event = trio.Event()
                self._notify()

    def _take_refill(self, host: str, claims: Sequence[tuple[Claim, float]]) -> None:
        if not claims:
            return
        left = self._backlog.get(host, 0) - len(claims)
        self._backlog_total -= len(claims)
        if left > 0:
            self._backlog[host] = left
        else:
            self._backlog.pop(host, None)
        now = trio.current_time()
        for claim, wait in claims:
            if wait > 0:
                self._delay(claim, now + wait)
            else:
                self._frontier.push(host, claim, claim.request.priority)

    def _after_batch_change(self, pages: int = 0) -> None:
        if self._batch_started == math.inf:
            self._batch_started = trio.current_time()
            self._poke()
        self._batch_pages_now += pages
        if self._batch_pages_now >= self._batch_pages:
            self._poke()

    def _check(self) -> None:
        if not self._open:
            if self._failed is not None:
                raise StoreError(f"the state store {self.path} failed earlier")
            raise RuntimeError("the store is not open (use `async with store.open(...)`)")

    # ------------------------------------------------------------ seen set
    def seen_hint(self, fingerprint: int) -> bool:
        return self._known(fingerprint) if self._open else False

    def _known(self, fp: int) -> bool:
        return (
            fp in self._hot
            or fp in self._warm
            or fp in self._pending_fps
            or fp in self._writing_fps
        )

    def _remember(self, fp: int) -> None:
        hot = self._hot
        hot.add(fp)
        if len(hot) >= self._cache_size:
            self._warm = hot
            self._hot = set()

    async def _lookup(self, fps: list[int]) -> set[int]:
        """Which of ``fps`` the database holds: one thread call for a page's links."""
        async with self._read_lock:
            return await trio.to_thread.run_sync(self._lookup_sync, fps)

    def _lookup_sync(self, fps: list[int]) -> set[int]:
        reader = self._reader
        assert reader is not None
        found: set[int] = set()
        try:
            for i in range(0, len(fps), 500):
                chunk = [_signed(fp) for fp in fps[i : i + 500]]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT fp FROM frontier WHERE fp IN ({marks})"
                found.update(_unsigned(fp) for (fp,) in reader.execute(query, chunk))
        except sqlite3.Error as exc:
            raise _translate(self.path, exc) from None
        return found

    async def _fresh(self, new: Sequence[NewRequest]) -> list[NewRequest]:
        """The requests whose fingerprint was never seen, registered as seen now."""
        # seen before: known now (the recent cache may rotate below), or the database says so
        found: set[int] = set()
        candidates: list[int] = []
        for item in new:
            fp = item.fingerprint
            if item.request.dont_filter:
                continue
            if self._known(fp):
                found.add(fp)
            elif fp in self._bloom:
                candidates.append(fp)
        start = self._generation
        if candidates:
            token = object()
            self._lookups[token] = start
            try:
                found |= await self._lookup(candidates)
            finally:
                del self._lookups[token]
        # from here on, no checkpoint: the checks and the registration are one step
        late: set[int] = set()
        if candidates:
            for generation, fps in self._committed:
                if generation > start:
                    late |= fps
            oldest = min(self._lookups.values(), default=self._generation)
            self._committed = [(g, s) for g, s in self._committed if g > oldest]
        out: list[NewRequest] = []
        for item in new:
            fp = item.fingerprint
            if item.request.dont_filter:
                out.append(item)
                continue
            if fp in found:
                self._remember(fp)
                continue
            if self._known(fp) or fp in late:
                continue
            self._pending_fps.add(fp)
            self._remember(fp)
            self._bloom.add(fp)
            out.append(item)
        return out

    # ------------------------------------------------------------ queueing
    def _queue(self, fresh: Sequence[NewRequest]) -> int:
        frontier = self._frontier
        budget = self._max_per_host
        count = 0
        batch = self._batch
        for item in fresh:
            host = item.host
            if budget is not None:
                n = self._admitted.get(host, 0)
                if n >= budget:
                    self.over_budget += 1
                    continue
                self._admitted[host] = n + 1
                self._dirty_host(host)
            request = item.request
            seq = next(self._row_seq)
            key = _row_key(item.fingerprint, seq) if request.dont_filter else item.fingerprint
            backlog = self._backlog.get(host, 0)
            if backlog == 0 and len(frontier.host(host).queue) < self._window:
                frontier.push(host, Claim(request, key, host), request.priority)
                state = INFLIGHT
            else:
                self._backlog[host] = backlog + 1
                self._backlog_total += 1
                self._want_refill(host)
                state = QUEUED
            batch.rows.append((key, request.url, host, request, state, request.priority, seq))
            count += 1
        return count

    def _want_refill(self, host: str) -> None:
        state = self._frontier.host(host)
        if len(state.queue) <= self._low_water:
            self._refill.add(host)
            if not state.queue:
                self._urgent = True
                self._poke()

    def _dirty_host(self, host: str) -> None:
        state = self._frontier.host(host)
        self._batch.hosts.append(
            (host, self._host_wall.get(host, 0.0), state.delay, self._admitted.get(host, 0))
        )
        self._after_batch_change()

    async def _backpressure(self) -> None:
        while self._batch_pages_now >= self._max_pending and self._failed is None:
            self._poke()
            await self._committed_event.wait()

    # ------------------------------------------------------------ interface
    async def add(self, requests: Sequence[NewRequest]) -> int:
        self._check()
        fresh = await self._fresh(requests)
        count = self._queue(fresh)
        if count:
            self._after_batch_change()
            self._notify()
        return count

    async def mark_seen(self, fingerprints: Sequence[int]) -> list[bool]:
        self._check()
        items = [NewRequest(Request(url=""), fp, "") for fp in fingerprints]
        fresh = {item.fingerprint for item in await self._fresh(items)}
        out = []
        for fp in fingerprints:
            new = fp in fresh
            if new:
                fresh.discard(fp)
                self._batch.seen.append(fp)
            out.append(new)
        if self._batch.seen:
            self._after_batch_change()
        return out

    async def claim(self, now: float, limit: int) -> list[Claim]:
        if self._delayed:
            self._promote(now)
        out = []
        for host, claim in self._frontier.claim(now, limit):
            out.append(claim)
            if self._backlog.get(host):
                self._want_refill(host)
        return out

    async def complete(
        self, claim: Claim, new: Sequence[NewRequest], items: Sequence[Any] = ()
    ) -> int:
        self._check()
        await self._backpressure()
        fresh = await self._fresh(new) if new else []
        count = self._queue(fresh)
        batch = self._batch
        batch.done.append(claim.fingerprint)
        if items:
            batch.items.append((claim.fingerprint, list(items)))
        self._frontier.release(claim.host)
        self._after_batch_change(1)
        self._notify()
        return count

    async def retry(self, claim: Claim, request: Request, not_before: float) -> None:
        self._check()
        self._frontier.release(claim.host)
        self._delay(Claim(request, claim.fingerprint, claim.host), not_before)
        wall = time.time() + max(0.0, not_before - trio.current_time())
        self._batch.retries.append((request, wall, claim.fingerprint))
        self._after_batch_change()
        self._notify()

    async def pause_host(self, host: str, until: float) -> None:
        self._frontier.pause(host, until)
        wall = time.time() + max(0.0, until - trio.current_time())
        if wall > self._host_wall.get(host, 0.0):
            self._host_wall[host] = wall
        self._dirty_host(host)
        self._notify()

    async def set_host_delay(self, host: str, delay: float) -> None:
        self._frontier.set_delay(host, delay)
        self._dirty_host(host)

    def outstanding(self) -> int:
        f = self._frontier
        return len(f) + f.in_flight + len(self._delayed) + self._backlog_total

    def queued(self) -> int:
        return len(self._frontier) + len(self._delayed) + self._backlog_total

    def in_flight(self) -> int:
        return self._frontier.in_flight

    def active_hosts(self) -> int:
        return len(
            {h.key for h in self._frontier.hosts() if h.queue or h.in_flight} | set(self._backlog)
        )

    async def load_robots(self, host: str) -> tuple[int, bytes, float] | None:
        def read() -> tuple[int, bytes, float] | None:
            assert self._reader is not None
            row = self._reader.execute(
                "SELECT robots_status, robots_body, robots_fetched_at FROM hosts WHERE host = ?",
                (host,),
            ).fetchone()
            if row is None or row[0] is None:
                return None
            return int(row[0]), bytes(row[1] or b""), float(row[2] or 0.0)

        self._check()
        async with self._read_lock:
            try:
                return await trio.to_thread.run_sync(read)
            except sqlite3.Error as exc:
                raise _translate(self.path, exc) from None

    async def save_robots(self, host: str, status: int, body: bytes, fetched_at: float) -> None:
        self._check()
        self._batch.robots.append((host, status, body, fetched_at))
        self._after_batch_change()

    # ------------------------------------------------------------ introspection
    def statistics(self) -> dict[str, int]:
        """Memory-side figures (for benchmarks and tests)."""
        return {
            "window": len(self._frontier),
            "delayed": len(self._delayed),
            "backlog": self._backlog_total,
            "hot": len(self._hot) + len(self._warm),
            "bloom_bytes": self._bloom.nbytes(),
            "commits": self.commits,
        }


def _dump_counters(counters: Counters) -> str:
    # not dataclasses.asdict: it rebuilds a Counter from its (key, count) pairs
    return json.dumps(
        {
            field.name: dict(value) if isinstance(value, Counter) else value
            for field in dataclasses.fields(counters)
            for value in (getattr(counters, field.name),)
        }
    )


def _load_counters(counters: Counters, stored: Mapping[str, Any]) -> None:
    for field in dataclasses.fields(counters):
        if field.name not in stored:
            continue
        value = stored[field.name]
        current = getattr(counters, field.name)
        if isinstance(current, Counter) and isinstance(value, Mapping):
            setattr(counters, field.name, Counter({str(k): int(v) for k, v in value.items()}))
        elif isinstance(value, int) and not isinstance(value, bool):
            setattr(counters, field.name, value)


# --------------------------------------------------------------------------- reading a file
@dataclasses.dataclass(frozen=True, slots=True)
class StoredCrawl:
    """Where a stored crawl stands (``trio-crawler status``)."""

    path: str
    crawl: Mapping[str, Any]
    states: Mapping[str, int]
    items: int
    stats: Mapping[str, Any]
    outputs: Mapping[str, int]
    hosts: Sequence[tuple[str, int, int]]  # host, done, left (queued or in flight)


def _open_existing(path: str) -> sqlite3.Connection:
    if not os.path.exists(path):
        raise StoreError(f"no state file at {path}")
    _check_file(path)
    try:
        conn = _connect(path, readonly=True)
        _read_meta(conn, path) or _raise_empty(path)
    except sqlite3.Error as exc:
        raise _translate(path, exc) from None
    return conn


def _raise_empty(path: str) -> dict[str, str]:
    raise StoreError(f"{path} is not a trio-crawler state file (an empty SQLite database)")


def read_status(path: str, *, top: int = 10) -> StoredCrawl:
    """Read a state file without changing it."""
    conn = _open_existing(path)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        states = {
            STATE_NAMES.get(state, str(state)): n
            for state, n in conn.execute("SELECT state, count(*) FROM frontier GROUP BY state")
        }
        items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        outputs = dict(conn.execute('SELECT path, "offset" FROM outputs').fetchall())
        hosts = conn.execute(
            f"SELECT host, sum(state = {DONE}), sum(state IN ({QUEUED}, {INFLIGHT})) FROM frontier"
            f" WHERE state != {SEEN} GROUP BY host ORDER BY count(*) DESC LIMIT ?",
            (top,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise _translate(path, exc) from None
    finally:
        conn.close()
    return StoredCrawl(
        path=path,
        crawl=json.loads(meta.get("crawl", "{}")),
        states=states,
        items=items,
        stats=json.loads(meta.get("stats", "{}")),
        outputs=outputs,
        hosts=[(h, int(d or 0), int(q or 0)) for h, d, q in hosts],
    )


def iter_items(path: str, *, chunk: int = 1000) -> Iterator[list[dict[str, Any]]]:
    """The stored items in the order they were committed, ``chunk`` records at a time."""
    conn = _open_existing(path)
    try:
        last = 0
        while True:
            rows = conn.execute(
                "SELECT id, data FROM items WHERE id > ? ORDER BY id LIMIT ?", (last, chunk)
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [json.loads(data) for _, data in rows]
    except sqlite3.Error as exc:
        raise _translate(path, exc) from None
    finally:
        conn.close()


def export_items(path: str, target: str, *, format: str | None = None) -> int:
    """Write the stored items of a crawl to ``target`` (any exporter format); returns the count."""
    from .._export import open_exporter

    count = 0
    with open_exporter(target, format=format) as exporter:
        for records in iter_items(path):
            exporter.write_many(records)
            count += len(records)
    return count


def stored_seeds(path: str) -> list[str]:
    """The seeds of the crawl stored in ``path`` ([] when there is no such file yet)."""
    if not os.path.exists(path):
        return []
    conn = _open_existing(path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'crawl'").fetchone()
    except sqlite3.Error as exc:
        raise _translate(path, exc) from None
    finally:
        conn.close()
    seeds = json.loads(row[0]).get("seeds", []) if row else []
    return [str(s) for s in seeds]
