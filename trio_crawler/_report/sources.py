"""Where a report's records come from: a JSON Lines file of ``trio-crawler crawl``, a
``--state`` SQLite file, a Redis crawl (a seam, below), or the running crawl itself
(:class:`ReportSink`, an exporter that aggregates records as the crawl writes them).

Each source streams its records into the pure :class:`~.aggregate.Aggregator` and says in
:attr:`~.model.CrawlInfo.notes` what it could not give.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .._exceptions import SettingsError
from .aggregate import Aggregator
from .model import CrawlGraph, CrawlInfo, Record, ReportInput, settings_from_meta

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
    notes = [] if graph is not None else [NO_LINK_GRAPH]
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
    """SEAM (link graph): the :class:`~.model.CrawlGraph` of a state file, once the SQLite
    store keeps its link graph (edges source -> target with anchor text, the first 20
    referrers per target and a count beyond), its out-of-scope link counts and the pages
    meta robots kept out. Until then: None, and the report falls back to each record's
    ``referrer`` and says so."""
    return None


# --------------------------------------------------------------------------- Redis
def redis_input(url: str, crawl_id: str | None, stats: Mapping[str, Any]) -> ReportInput:
    """SEAM (Redis): a crawl kept in Redis. Its records are the ``items`` stream, its
    identity and settings the ``meta`` hash, its figures the ``stats`` hash; the link graph
    whatever the Redis store keeps of it (see :class:`~.model.CrawlGraph`). Not wired in
    yet: reading those keys belongs with the Redis store, which is being restructured."""
    if not crawl_id:
        raise ReportError("a Redis crawl needs --crawl-id NAME")
    raise ReportError(
        "reports straight from Redis are not available yet: run `trio-crawler export "
        f"{url} --crawl-id {crawl_id} -o pages.jsonl`, then `trio-crawler report pages.jsonl`"
    )


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
