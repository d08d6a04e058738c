"""Where a report's records come from: a JSON Lines file of ``trio-crawler crawl``, a
``--state`` SQLite file, a Redis crawl, or the running crawl itself (:class:`ReportSink`, an
exporter that aggregates records as the crawl writes them). A store's crawl brings its link
graph when it kept one (``Settings.link_graph``).

Each source streams its records into the pure :class:`~.aggregate.Aggregator` and says in
:attr:`~.model.CrawlInfo.notes` what it could not give.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import trio

from .._exceptions import SettingsError
from .aggregate import Aggregator
from .model import (
    CrawlGraph,
    CrawlInfo,
    MetaRobotsPages,
    OutOfScopeLinks,
    Record,
    Referrers,
    ReportInput,
    settings_from_meta,
)

_SQLITE_MAGIC = b"SQLite format 3\x00"
#: The longest first line read to decide whether a file is JSON Lines of page records.
_MAX_FIRST_LINE = 16 * 1024 * 1024
#: Keys every generic page record has; a file whose first record lacks one is not a crawl.
_RECORD_KEYS = frozenset({"url", "final_url", "status"})

NO_LINK_GRAPH = (
    "Link graph: this source records one referrer per URL (the page the crawler first found "
    "it on), so the broken-link table names that page only, without link text."
)
NO_SETTINGS = "Settings: JSON Lines records do not carry the crawl's settings."
NO_STORED_GRAPH = (
    "Link graph: this crawl was run without it (`crawl --report` or the link_graph setting "
    "keeps it), so the broken-link table names the page the crawler first found each URL on "
    "(the record's referrer), without link text."
)
PARTIAL_GRAPH = (
    "Link graph: kept by some runs of this crawl only (a run or a worker had it off), so a "
    "broken link's referrers and the out-of-scope and meta robots tables may miss pages."
)


def graph_notes(graph: CrawlGraph | None) -> tuple[str, ...]:
    """What a report of a store's crawl says of its link graph."""
    if graph is None:
        return (NO_STORED_GRAPH,)
    return (PARTIAL_GRAPH,) if getattr(graph, "partial", False) else ()


class ReportError(SettingsError):
    """The report's input or output is unusable (a missing file, not a crawl, an unwritable
    output). The message is one line."""


# --------------------------------------------------------------------------- choosing a source
def open_input(
    crawl: str, *, crawl_id: str | None = None, stats_path: str | None = None
) -> ReportInput:
    """The :class:`ReportInput` of ``crawl``: a state file, a JSON Lines file or a
    ``redis://`` URL (with ``crawl_id``). ``stats_path``: the crawl's ``--stats-json`` file,
    for the stop reason, the duration and the statistics records do not carry."""
    stats = read_stats(stats_path) if stats_path else {}
    if crawl.startswith(("redis://", "rediss://", "unix://")):
        return redis_input(crawl, crawl_id, stats)
    if crawl_id:
        raise ReportError("--crawl-id goes with a redis:// crawl only")
    if not os.path.exists(crawl):
        raise ReportError(f"no such file: {crawl}")
    if os.path.isdir(crawl):
        raise ReportError(f"{crawl} is a directory, not a crawl")
    try:
        with open(crawl, "rb") as fh:
            magic = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise ReportError(f"cannot read {crawl}: {exc.strerror or exc}") from None
    if magic == _SQLITE_MAGIC:
        return sqlite_input(crawl, stats)
    return jsonl_input(crawl, stats)


def read_stats(path: str) -> dict[str, Any]:
    """A ``--stats-json`` file: the crawl's final figures."""
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(16 * 1024 * 1024))
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ReportError(f"{path} is not a --stats-json file (not JSON)") from None
    if not isinstance(data, dict) or "pages_ok" not in data:
        raise ReportError(f"{path} is not a --stats-json file")
    return data


def _info_from_stats(stats: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stats": dict(stats)}
    if isinstance(stats.get("stop_reason"), str):
        out["stop_reason"] = stats["stop_reason"]
    elapsed = stats.get("elapsed")
    if isinstance(elapsed, int | float) and not isinstance(elapsed, bool) and elapsed >= 0:
        out["elapsed"] = float(elapsed)
    return out


# --------------------------------------------------------------------------- JSON Lines
def jsonl_input(path: str, stats: Mapping[str, Any] | None = None) -> ReportInput:
    """The records of a JSON Lines file written by ``trio-crawler crawl -o FILE.jsonl``."""
    _check_jsonl(path)
    return ReportInput(
        records=iter_jsonl(path),
        info=CrawlInfo(
            source=path,
            notes=(NO_LINK_GRAPH, NO_SETTINGS),
            **_info_from_stats(stats or {}),
        ),
        graph=None,
    )


def _check_jsonl(path: str) -> None:
    not_a_crawl = (
        f"{path} is not a crawl: neither a state file (--state) nor JSON Lines of "
        "`trio-crawler crawl`"
    )
    try:
        with open(path, "rb") as fh:
            while True:
                line = fh.readline(_MAX_FIRST_LINE)
                if not line:
                    raise ReportError(f"{path} is empty: no records to report on")
                if line.strip():
                    break
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        first = json.loads(line)
    except ValueError:
        raise ReportError(not_a_crawl) from None
    if not isinstance(first, dict):
        raise ReportError(not_a_crawl)
    if not first.keys() >= _RECORD_KEYS:
        raise ReportError(
            f"{path} holds records of another kind: the report needs the page records of "
            "`trio-crawler crawl` (the generic spider)"
        )


def iter_jsonl(path: str) -> Iterator[Record]:
    """Each line's object; a line that is not a JSON object gives ``{}`` (counted as
    skipped by the aggregator)."""
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    yield {}
                    continue
                yield value if isinstance(value, dict) else {}
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- a state file
def sqlite_input(path: str, stats: Mapping[str, Any] | None = None) -> ReportInput:
    """The records of a ``--state`` file (its items table, in commit order) and what its
    crawl identity and statistics say."""
    from .._store.sqlite_db import read_status

    status = read_status(path, top=0)  # StoreError: not a state file
    from_stats = _info_from_stats(stats) if stats else {}
    kept = dict(status.stats)
    if not from_stats:
        queued = status.states.get("queued", 0) + status.states.get("inflight", 0)
        from_stats = {
            "stats": kept,
            "stop_reason": "finished" if not queued else f"stopped with {queued:,} URLs queued",
        }
    seeds = tuple(str(s) for s in status.crawl.get("seeds") or ())
    graph = sqlite_graph(path)
    notes = graph_notes(graph)
    return ReportInput(
        records=_iter_state_items(path),
        info=CrawlInfo(
            source=path,
            seeds=seeds,
            settings=settings_from_meta(status.crawl),
            notes=tuple(notes),
            **from_stats,
        ),
        graph=graph,
    )


def _iter_state_items(path: str) -> Iterator[Record]:
    from .._store.sqlite_db import iter_items

    for chunk in iter_items(path):
        yield from chunk


def sqlite_graph(path: str) -> CrawlGraph | None:
    """The :class:`~.model.CrawlGraph` of a state file (the first 20 referrers of each URL
    with their link text and a count beyond, out-of-scope links met, pages noindex kept
    out), or None when the crawl kept none (``link_graph`` off): the report then falls back
    to each record's ``referrer`` and says so. Its ``partial``: some runs had it off."""
    from .._store.sqlite_db import read_graph

    return read_graph(path)


# --------------------------------------------------------------------------- Redis
def redis_input(url: str, crawl_id: str | None, stats: Mapping[str, Any]) -> ReportInput:
    """A crawl kept in Redis: its records are the ``items`` stream (read in chunks), its
    identity, times and stop reason the ``meta`` hash, its figures the ``stats`` hash (unless
    ``stats``, a ``--stats-json`` file, says better), its link graph the store's ``g:`` keys.

    The Redis readers are async (:mod:`trio_crawler._store.redis_conn`); each read here is
    one short ``trio.run`` of its own, so this source stays a plain iterator. It must not be
    called from a thread that runs Trio (``crawl --report`` builds in a worker thread)."""
    if not crawl_id:
        raise ReportError("a Redis crawl needs --crawl-id NAME")
    from .._store import redis_conn

    status = trio.run(redis_conn.read_status, url, crawl_id)
    from_stats = _info_from_stats(stats) if stats else {}
    if not from_stats:
        left = int(status["outstanding"])
        from_stats = {
            "stats": _nested(status["stats"]),
            "stop_reason": status["stop_reason"]
            or (f"stopped with {left:,} URLs left" if left else None),
        }
    graph = RedisGraph(url, crawl_id, partial=status["link_graph"] == "partial")
    has_graph = status["link_graph"] is not None
    return ReportInput(
        records=_iter_redis_items(url, crawl_id),
        info=CrawlInfo(
            source=f"{redis_conn.redact(url)} (crawl {crawl_id})",
            seeds=tuple(str(s) for s in status["crawl"].get("seeds") or ()),
            settings=settings_from_meta(status["crawl"]),
            started_at=status["created"],
            ended_at=status["finished_at"],
            notes=graph_notes(graph if has_graph else None),
            **from_stats,
        ),
        graph=graph if has_graph else None,
    )


def _iter_redis_items(url: str, crawl_id: str) -> Iterator[Record]:
    from .._store.redis_conn import read_items

    start: str | None = "-"
    while start is not None:
        records, start = trio.run(read_items, url, crawl_id, start)
        yield from records


def _nested(stats: Mapping[str, int]) -> dict[str, Any]:
    """Redis keeps the statistics flat (``dropped.out_of_scope``): as ``--stats-json`` has
    them (``{"dropped": {"out_of_scope": ...}}``)."""
    out: dict[str, Any] = {}
    for key, value in stats.items():
        field, dot, name = key.partition(".")
        if dot:
            out.setdefault(field, {})[name] = value
        else:
            out[key] = value
    return out


class RedisGraph:
    """The :class:`~.model.CrawlGraph` of a crawl kept in Redis: each answer is one short
    ``trio.run`` of a reader of :mod:`trio_crawler._store.redis_conn`."""

    def __init__(self, url: str, crawl_id: str, *, partial: bool = False) -> None:
        self.url = url
        self.crawl_id = crawl_id
        self.partial = partial

    def referrers(self, urls: Sequence[str]) -> Mapping[str, Referrers]:
        from .._store.redis_conn import read_referrers

        return trio.run(read_referrers, self.url, self.crawl_id, list(urls))

    def out_of_scope(self, limit: int) -> OutOfScopeLinks:
        from .._store.redis_conn import read_out_of_scope

        return trio.run(read_out_of_scope, self.url, self.crawl_id, limit)

    def meta_robots(self, limit: int) -> MetaRobotsPages:
        from .._store.redis_conn import read_meta_robots

        return trio.run(read_meta_robots, self.url, self.crawl_id, limit)


# --------------------------------------------------------------------------- the running crawl
class ReportSink:
    """An exporter (``Crawler(exporters=[...])``) that aggregates the records a crawl writes,
    as it writes them: a report of a crawl that keeps no file to read them back from."""

    format = "report"

    def __init__(self, path: str, aggregator: Aggregator | None = None) -> None:
        self.path = path
        self.aggregator = aggregator or Aggregator()

    def write_many(self, items: Sequence[object]) -> None:
        from .._records import to_record

        add = self.aggregator.add
        for item in items:
            add(item if isinstance(item, Mapping) else to_record(item))

    def flush(self) -> None:
        pass

    def offset(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def __enter__(self) -> ReportSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
