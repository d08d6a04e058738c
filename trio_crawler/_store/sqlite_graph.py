"""The link graph in a SQLite state file (``Settings.link_graph``): its tables, the writer's
part of a commit, and the reader the report asks (:class:`SqliteCrawlGraph`).

Tables::

    graph_targets       id -> total: how many pages link to the URL (id: target_id(URL))
    graph_links         (id, source, anchor) of the first REFERRERS_KEPT referrers of each
                        target, appended in commit order (no index: read by one scan)
    graph_out_of_scope  url -> times met (at most OUT_OF_SCOPE_KEPT URLs)
    graph_noindex       id -> url, directives (the first NOINDEX_KEPT pages)
    graph_counts        name -> n: oos_total, oos_distinct, noindex_total

The writer thread adds a batch's pages in the batch's transaction (:meth:`GraphWriter.write`,
called by :meth:`~.sqlite_db.Writer.commit`): one read (500 at a time) and one upsert of
each distinct target of the batch in a small table keyed by an integer (64 bits of the URL's
hash), the referrers kept appended to a table without an index (sequential writes: a random
write per link would cost ten times more, most of it in the commit), one upsert per
out-of-scope URL, a row per noindex page; every statement of a kind is one ``executemany``.
The report reads the referrers of its few hundred broken URLs in one scan.

``meta.link_graph`` says whether the file holds the graph of the whole crawl (``all``) or of
some runs only (``partial``: a run had the graph off); no key, no graph. Pure SQL on a given
connection: no Trio, no file opening.
"""

from __future__ import annotations

import hashlib
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
from .codec import signed

GRAPH_SCHEMA = """
CREATE TABLE IF NOT EXISTS graph_targets (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS graph_links (
    id INTEGER NOT NULL,
    source TEXT NOT NULL,
    anchor TEXT NOT NULL
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

    def _links(self, conn: sqlite3.Connection, pages: Sequence[PageGraph]) -> None:
        by_target: dict[str, list[tuple[str, str]]] = {}
        for page in pages:
            source = page.source
            for target, anchor in page.links:
                if (refs := by_target.get(target)) is None:
                    by_target[target] = [(source, anchor)]
                else:
                    refs.append((source, anchor))
        if not by_target:
            return
        ids = {target: target_id(target) for target in by_target}
        totals = _totals(conn, list(ids.values()))
        counted: list[tuple[int, int]] = []
        rows: list[tuple[int, str, str]] = []
        for target, refs in by_target.items():
            key = ids[target]
            counted.append((key, len(refs)))
            before = totals.get(key, 0)
            if before < REFERRERS_KEPT:
                rows.extend([(key, s, a) for s, a in refs[: REFERRERS_KEPT - before]])
        conn.executemany(
            "INSERT INTO graph_targets (id, total) VALUES (?, ?) ON CONFLICT (id)"
            " DO UPDATE SET total = total + excluded.total",
            counted,
        )
        if rows:
            conn.executemany("INSERT INTO graph_links (id, source, anchor) VALUES (?, ?, ?)", rows)

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


def target_id(url: str) -> int:
    """A target URL's key: 64 bits of its BLAKE2b, as SQLite's signed integer."""
    return signed(int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "big"))


def _totals(conn: sqlite3.Connection, keys: list[int]) -> dict[int, int]:
    """The stored totals of the targets ``keys`` (those stored)."""
    out: dict[int, int] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT id, total FROM graph_targets WHERE id IN ({marks})"
        out.update(conn.execute(query, chunk).fetchall())
    return out


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
            wanted = {target_id(url): url for url in urls}
            keys = list(wanted)
            totals = _totals(conn, keys)
            links: dict[int, list[tuple[str, str]]] = {}
            for i in range(0, len(keys), 5000):  # a scan of the referrers, in commit order
                chunk = keys[i : i + 5000]
                marks = ",".join("?" * len(chunk))
                for key, source, anchor in conn.execute(
                    f"SELECT id, source, anchor FROM graph_links WHERE id IN ({marks})"
                    " ORDER BY rowid",
                    chunk,
                ):
                    links.setdefault(key, []).append((str(source), str(anchor)))
            return {
                wanted[key]: Referrers(tuple(links.get(key, ())), int(total))
                for key, total in totals.items()
            }

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
