"""The SQLite state file, without Trio: its layout, the writer's side and the readers.

:class:`Writer` is used by one thread call at a time (the store's committer serialises
them): it opens the file (checking it is a state file of this crawl), loads what a resume
needs, commits a batch of pages in one transaction (with the output files written and their
offsets recorded in it) and refills the per-host windows. :func:`read_status`,
:func:`iter_items`, :func:`export_items` and :func:`stored_seeds` read a file without changing
it. How the store uses all this: :mod:`.sqlite`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .._exceptions import SettingsError, StoreError
from .._graph import PageGraph
from .._records import encode_json, item_type_name, to_record
from .._spider import Request
from .base import Claim
from .codec import (
    check_same_crawl,
    decode_request,
    encode_request,
    jsonable,
    signed,
    unsigned,
)
from .sqlite_graph import GRAPH_SCHEMA, PARTIAL, GraphWriter, SqliteCrawlGraph, graph_mark

FORMAT_VERSION = 1

QUEUED, INFLIGHT, DONE, SEEN = 0, 1, 2, 3
STATE_NAMES = {QUEUED: "queued", INFLIGHT: "inflight", DONE: "done", SEEN: "seen"}

#: Longest the final commit of a crawl that ends normally may take (seconds).
_SQLITE_MAGIC = b"SQLite format 3\x00"
_OUR_TABLES = frozenset({"meta", "frontier", "hosts", "items", "outputs"})
_SCHEMA = (
    """
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
    + GRAPH_SCHEMA
)

_U64 = 1 << 64
_I63 = 1 << 63


def row_key(fp: int, seq: int) -> int:
    """A key of its own for a ``dont_filter`` request (never the URL's fingerprint)."""
    x = (fp ^ (seq * 0x9E3779B97F4A7C15)) % _U64
    x = ((x ^ (x >> 31)) * 0xBF58476D1CE4E5B9) % _U64
    return x ^ (x >> 29)


# --------------------------------------------------------------------------- pure helpers
class Bloom:
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


def translate(path: str, exc: BaseException) -> StoreError:
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
class Batch:
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
    #: Every scope addition so far, when one was added since the last commit.
    scope: list[str] = dataclasses.field(default_factory=list)
    #: What the batch's pages add to the link graph.
    graph: list[PageGraph] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.rows
            or self.seen
            or self.retries
            or self.done
            or self.items
            or self.hosts
            or self.robots
            or self.scope
            or self.graph
        )


@dataclasses.dataclass(slots=True)
class Loaded:
    """What opening the file found (for a resume)."""

    resumed: bool
    stats: dict[str, Any]
    offsets: dict[str, int]
    hosts: list[tuple[str, float, float | None, int]]
    backlog: dict[str, int]
    next_seq: int
    bloom: Bloom
    windows: dict[str, list[tuple[int, str, float]]]
    scope: list[str]


# --------------------------------------------------------------------------- the writer side
def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
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


class Writer:
    """The writer connection. Used by one thread call at a time (the committer serialises)."""

    def __init__(
        self, path: str, window: int, depth_first: bool, *, link_graph: bool = False
    ) -> None:
        self.path = path
        self.window = window
        self.order = "priority DESC, seq DESC" if depth_first else "priority DESC, seq"
        self.conn: sqlite3.Connection | None = None
        self.link_graph = link_graph
        self.graph = GraphWriter()

    # -- open
    def open(self, meta: Mapping[str, Any]) -> Loaded:
        _check_file(self.path)
        try:
            self.conn = conn = connect(self.path)
            stored = _read_meta(conn, self.path)
            if stored:
                check_same_crawl(
                    json.loads(stored.get("crawl", "{}")),
                    meta,
                    holder=self.path,
                    instead="a new state file",
                )
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot put the state file {self.path} in WAL mode")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                crawl = {**json.loads(stored.get("crawl", "{}")), **jsonable(dict(meta))}
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("format", str(FORMAT_VERSION)), ("crawl", json.dumps(crawl))],
                )
                if not stored:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('created', ?)", (str(time.time()),)
                    )
                conn.execute(f"UPDATE frontier SET state = {QUEUED} WHERE state = {INFLIGHT}")
                conn.execute("DELETE FROM meta WHERE key = 'stop_reason'")  # running again
                self._mark_graph(stored)
                loaded = self._load(bool(stored))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return loaded
        except sqlite3.Error as exc:
            self.close()
            raise translate(self.path, exc) from None
        except BaseException:
            self.close()
            raise

    def _mark_graph(self, stored: Mapping[str, str]) -> None:
        """``meta.link_graph`` for this run (see :func:`~.sqlite_graph.graph_mark`)."""
        assert self.conn is not None
        had = stored.get("link_graph")
        stats = json.loads(stored.get("stats", "{}"))
        done = bool(stats.get("pages_ok") or stats.get("pages_failed"))
        mark = graph_mark(had, self.link_graph, done)
        if mark is not None and mark != had:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('link_graph', ?)", (mark,))
        self.graph = GraphWriter(off_marks=not self.link_graph and had is not None)

    def _load(self, resumed: bool) -> Loaded:
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
        bloom = Bloom(max(1 << 18, total * 2))
        for (fp,) in conn.execute("SELECT fp FROM frontier"):
            bloom.add(unsigned(fp))
        windows = self._refill([(host, self.window) for host in backlog])
        scope = [str(url) for url in json.loads(meta.get("scope", "[]"))]
        return Loaded(resumed, stats, offsets, hosts, backlog, next_seq, bloom, windows, scope)

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
            out[host] = [(unsigned(fp), request, nb) for fp, request, nb in rows]
        return out

    # -- one commit
    def commit(
        self,
        batch: Batch,
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
                            (signed(key), url, host, encode_request(req), state, prio, seq)
                            for key, url, host, req, state, prio, seq in batch.rows
                        ],
                    )
                if batch.seen:
                    conn.executemany(
                        "INSERT OR IGNORE INTO frontier (fp, url, host, request, state, seq)"
                        f" VALUES (?, '', '', '{{}}', {SEEN}, 0)",
                        [(signed(fp),) for fp in batch.seen],
                    )
                if batch.retries:
                    conn.executemany(
                        "UPDATE frontier SET request = ?, not_before = ? WHERE fp = ?",
                        [(encode_request(r), nb, signed(k)) for r, nb, k in batch.retries],
                    )
                if batch.done:
                    conn.executemany(
                        f"UPDATE frontier SET state = {DONE} WHERE fp = ?",
                        [(signed(k),) for k in batch.done],
                    )
                # each item is converted and encoded once, for the table and the outputs
                rows = [
                    (signed(page), i, item_type_name(item), to_record(item))
                    for page, items in batch.items
                    for i, item in enumerate(items)
                ]
                encoded = [encode_json(row[3]) for row in rows]
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
                if batch.scope:
                    conn.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('scope', ?)",
                        (json.dumps(batch.scope),),
                    )
                self.graph.write(conn, batch.graph, len(batch.done))
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
            raise translate(self.path, exc) from None
        now = time.time()
        return {
            host: [
                (Claim(decode_request(text), key, host), nb - now if nb > now else 0.0)
                for key, text, nb in rows
            ]
            for host, rows in refilled.items()
        }

    def _write_outputs(
        self,
        batch: Batch,
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

    def end(self, stop_reason: str) -> None:
        """Record why this run ended (``status`` shows it; the next run clears it)."""
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('stop_reason', ?)", (stop_reason,)
                )

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
    #: Why the last run ended (``finished``, a limit, ``interrupted``...); None: it did not
    #: end cleanly (killed), or it is running.
    stop_reason: str | None = None


def _open_existing(path: str) -> sqlite3.Connection:
    if not os.path.exists(path):
        raise StoreError(f"no state file at {path}")
    _check_file(path)
    try:
        conn = connect(path, readonly=True)
        _read_meta(conn, path) or _raise_empty(path)
    except sqlite3.Error as exc:
        raise translate(path, exc) from None
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
        raise translate(path, exc) from None
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
        stop_reason=meta.get("stop_reason"),
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
        raise translate(path, exc) from None
    finally:
        conn.close()


def export_items(path: str, target: str, *, format: str | None = None) -> int:
    """Write the stored items of a crawl to ``target`` (any exporter format); returns the count."""
    from .._export import open_exporter

    _open_existing(path).close()  # a missing or foreign file: before the target is opened
    count = 0
    with open_exporter(target, format=format) as exporter:
        for records in iter_items(path):
            exporter.write_many(records)
            count += len(records)
    return count


def _meta_value(path: str, key: str) -> str | None:
    conn = _open_existing(path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error as exc:
        raise translate(path, exc) from None
    finally:
        conn.close()
    return None if row is None else str(row[0])


def read_graph(path: str) -> SqliteCrawlGraph | None:
    """The link graph of the crawl in ``path``; None when no run of it kept one."""
    mark = _meta_value(path, "link_graph")
    if mark is None:
        return None
    return SqliteCrawlGraph(
        lambda: _open_existing(path),
        lambda exc: translate(path, exc),
        partial=mark == PARTIAL,
    )


def stored_seeds(path: str) -> list[str]:
    """The seeds of the crawl stored in ``path`` ([] when there is no such file yet)."""
    if not os.path.exists(path):
        return []
    crawl = _meta_value(path, "crawl")
    seeds = json.loads(crawl).get("seeds", []) if crawl else []
    return [str(s) for s in seeds]
