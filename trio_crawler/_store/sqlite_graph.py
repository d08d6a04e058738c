"""The link graph in a SQLite state file (``Settings.link_graph``): its tables, the writer's
part of a commit, and the reader the report asks (:class:`SqliteCrawlGraph`).

Tables::

    graph_targets       url -> total (how many pages link to the URL), refs (JSON
                        [[source, anchor]...]: the first REFERRERS_KEPT referrers)
    graph_out_of_scope  url -> times met (at most OUT_OF_SCOPE_KEPT URLs)
    graph_noindex       id -> url, directives (the first NOINDEX_KEPT pages)
    graph_counts        name -> n: oos_total, oos_distinct, noindex_total

The writer thread adds a batch's pages in the batch's transaction (:meth:`GraphWriter.write`,
called by :meth:`~.sqlite_db.Writer.commit`): a read and a write of one row per distinct
target of the batch (one row per target, not one per link: the batch's new referrers are
appended to its list in one write; targets that have all their referrers already, the
common nav links, are only counted, together), one upsert per out-of-scope URL, a row per
noindex page. ``meta.link_graph`` says whether the file
holds the graph of the whole crawl (``all``) or of some runs only (``partial``: a run had the
graph off); no key, no graph. Pure SQL on a given connection: no Trio, no file opening.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from .._graph import (
    NOINDEX_KEPT,
    OUT_OF_SCOPE_KEPT,
    REFERRERS_KEPT,
    MetaRobotsPages,
    OutOfScopeLinks,
    PageGraph,
    Referrers,
)

GRAPH_SCHEMA = """
CREATE TABLE IF NOT EXISTS graph_targets (
    url TEXT PRIMARY KEY,
    total INTEGER NOT NULL,
    refs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS graph_out_of_scope (url TEXT PRIMARY KEY, times INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS graph_noindex (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    directives TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS graph_counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL)
    WITHOUT ROWID;
"""

_T = TypeVar("_T")

#: ``meta.link_graph``: the whole crawl's graph, or some runs' only.
ALL, PARTIAL = "all", "partial"

#: Targets remembered as having all their referrers kept (a cache; emptied when this full).
_FULL_CACHE = 200_000


def graph_mark(stored: str | None, link_graph: bool, pages_done: bool) -> str | None:
    """What ``meta.link_graph`` becomes when a run opens the file: ``stored`` is its value,
    ``link_graph`` the run's setting, ``pages_done`` whether earlier runs completed pages.
    (A run without the graph that completes pages marks a graph ``partial`` when it commits
    them: :class:`GraphWriter`.)"""
    if not link_graph or stored is not None:
        return stored
    return PARTIAL if pages_done else ALL


class GraphWriter:
    """The link graph's part of the writer thread's commits. ``off_marks``: this run keeps no
    graph while the file has one, so its first committed pages make it ``partial``."""

    def __init__(self, *, off_marks: bool = False) -> None:
        self._off_marks = off_marks
        self._full: set[str] = set()
        self._pending_full: list[str] = []

    def write(self, conn: sqlite3.Connection, pages: Sequence[PageGraph], done: int) -> None:
        """Inside the open transaction: the batch's graph facts (``done``: pages completed)."""
        if self._off_marks and done:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('link_graph', ?)", (PARTIAL,))
            self._off_marks = False
        if not pages:
            return
        deltas: dict[str, int] = {}
        self._links(conn, pages)
        self._out_of_scope(conn, pages, deltas)
        noindex = [(p.source, p.noindex) for p in pages if p.noindex is not None]
        if noindex:
            total = _counts(conn).get("noindex_total", 0)
            room = max(0, NOINDEX_KEPT - total)
            if room:
                conn.executemany(
                    "INSERT INTO graph_noindex (url, directives) VALUES (?, ?)", noindex[:room]
                )
            deltas["noindex_total"] = len(noindex)
        if deltas:
            conn.executemany(
                "INSERT INTO graph_counts (name, n) VALUES (?, ?) ON CONFLICT (name)"
                " DO UPDATE SET n = n + excluded.n",
                list(deltas.items()),
            )

    def committed(self) -> None:
        """The transaction committed: the targets it filled are known full from now on."""
        if len(self._full) + len(self._pending_full) > _FULL_CACHE:
            self._full.clear()
        self._full.update(self._pending_full)
        self._pending_full.clear()

    def rolled_back(self) -> None:
        self._pending_full.clear()

    def _links(self, conn: sqlite3.Connection, pages: Sequence[PageGraph]) -> None:
        full = self._full
        counted: dict[str, int] = {}  # targets with all their referrers kept: only counted
        by_target: dict[str, list[tuple[str, str]]] = {}
        for page in pages:
            source = page.source
            for target, anchor in page.links:
                if target in full:
                    counted[target] = counted.get(target, 0) + 1
                elif (refs := by_target.get(target)) is None:
                    by_target[target] = [(source, anchor)]
                else:
                    refs.append((source, anchor))
        rows: list[tuple[str, int, str]] = []
        for target, new in by_target.items():
            row = conn.execute(
                "SELECT total, refs FROM graph_targets WHERE url = ?", (target,)
            ).fetchone()
            total, refs = (row[0], json.loads(row[1])) if row is not None else (0, [])
            if len(refs) < REFERRERS_KEPT:
                refs += new[: REFERRERS_KEPT - len(refs)]
            total += len(new)
            rows.append((target, total, json.dumps(refs, ensure_ascii=False)))
            if len(refs) >= REFERRERS_KEPT:
                self._pending_full.append(target)
        if rows:
            conn.executemany(
                "INSERT INTO graph_targets (url, total, refs) VALUES (?, ?, ?) ON CONFLICT (url)"
                " DO UPDATE SET total = excluded.total, refs = excluded.refs",
                rows,
            )
        if counted:
            conn.executemany(
                "UPDATE graph_targets SET total = total + ? WHERE url = ?",
                [(n, target) for target, n in counted.items()],
            )

    def _out_of_scope(
        self, conn: sqlite3.Connection, pages: Sequence[PageGraph], deltas: dict[str, int]
    ) -> None:
        met: dict[str, int] = {}
        for page in pages:
            for url, times in page.out_of_scope:
                met[url] = met.get(url, 0) + times
        if not met:
            return
        distinct = _counts(conn).get("oos_distinct", 0)
        added = 0
        for url, times in met.items():
            if distinct + added < OUT_OF_SCOPE_KEPT:
                (now,) = conn.execute(
                    "INSERT INTO graph_out_of_scope (url, times) VALUES (?, ?) ON CONFLICT (url)"
                    " DO UPDATE SET times = times + excluded.times RETURNING times",
                    (url, times),
                ).fetchone()
                if now == times:
                    added += 1
            else:  # counted one by one only if it is counted already
                conn.execute(
                    "UPDATE graph_out_of_scope SET times = times + ? WHERE url = ?", (times, url)
                )
        deltas["oos_total"] = sum(met.values())
        if added:
            deltas["oos_distinct"] = added


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {str(k): int(v) for k, v in conn.execute("SELECT name, n FROM graph_counts")}


# --------------------------------------------------------------------------- reading a file
class SqliteCrawlGraph:
    """The :class:`~trio_crawler._graph.CrawlGraph` of a state file. Each answer opens the
    file read-only (``opener``), reads and closes it; ``fail`` turns a SQLite error into the
    store's one-line error. ``partial``: some runs of the crawl kept no graph."""

    def __init__(
        self,
        opener: Callable[[], sqlite3.Connection],
        fail: Callable[[sqlite3.Error], Exception],
        *,
        partial: bool = False,
    ) -> None:
        self._open = opener
        self._fail = fail
        self.partial = partial

    def _read(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._open()
        try:
            return query(conn)
        except sqlite3.Error as exc:
            raise self._fail(exc) from None
        finally:
            conn.close()

    def referrers(self, urls: Sequence[str]) -> Mapping[str, Referrers]:
        def query(conn: sqlite3.Connection) -> dict[str, Referrers]:
            out: dict[str, Referrers] = {}
            wanted = list(dict.fromkeys(urls))
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for url, total, refs in conn.execute(
                    f"SELECT url, total, refs FROM graph_targets WHERE url IN ({marks})", chunk
                ):
                    links = tuple((str(s), str(a)) for s, a in json.loads(refs))
                    out[url] = Referrers(links, int(total))
            return out

        return self._read(query)

    def out_of_scope(self, limit: int) -> OutOfScopeLinks:
        def query(conn: sqlite3.Connection) -> OutOfScopeLinks:
            top = conn.execute(
                "SELECT url, times FROM graph_out_of_scope ORDER BY times DESC, url LIMIT ?",
                (limit,),
            ).fetchall()
            counts = _counts(conn)
            return OutOfScopeLinks(
                tuple((str(u), int(n)) for u, n in top),
                counts.get("oos_distinct", 0),
                counts.get("oos_total", 0),
            )

        return self._read(query)

    def meta_robots(self, limit: int) -> MetaRobotsPages:
        def query(conn: sqlite3.Connection) -> MetaRobotsPages:
            pages = conn.execute(
                "SELECT url, directives FROM graph_noindex ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
            total = _counts(conn).get("noindex_total", 0)
            return MetaRobotsPages(tuple((str(u), str(d)) for u, d in pages), total)

        return self._read(query)
