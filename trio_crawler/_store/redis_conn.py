"""Reaching a crawl kept in Redis: URLs, the client, calls retried while Redis restarts, error
messages, the scripts and what they take, and the readers (``status``, ``export``, a
worker's view of the crawl, the report's records and link graph) that do not need a running
store."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

import trio

from .._exceptions import SettingsError, StoreError
from .._graph import (
    REFERRERS_KEPT,
    MetaRobotsPages,
    OutOfScopeLinks,
    Referrers,
    top_out_of_scope,
)
from .._records import encode_json, to_record
from . import lua
from .base import Claim, NewRequest
from .codec import decode_request, encode_request, signed

if TYPE_CHECKING:
    import coredis

    from .._graph import PageGraph
    from .._stats import Counters

log = logging.getLogger("trio_crawler.store.redis")

_T = TypeVar("_T")

#: Version of the key layout. A crawl of a newer version is refused, not misread.
FORMAT_VERSION = 1

#: Settings a ``worker`` takes from the stored crawl unless its own flags say otherwise.
SHARED_SETTINGS = (
    "per_host_delay",
    "per_host_concurrency",
    "max_pages_per_host",
    "max_depth",
    "order",
    "obey_robots",
    "obey_meta_robots",
    "obey_nofollow",
    "user_agent",
    "max_body_size",
    "max_retries",
    "request_timeout",
    "max_redirects",
    "max_crawl_delay",
    "adaptive_throttle",
    "politeness_key",
    "dedupe_content",
    "allow_private",
    "allowed_addresses",
    "link_graph",
)


def is_redis_url(text: str | None) -> bool:
    return bool(text) and str(text).startswith(("redis://", "rediss://", "unix://"))


def redact(url: str) -> str:
    """The URL without its password (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_errors(inner)]
    return [exc]


def transient(exc: BaseException) -> bool:
    """A connection problem worth retrying (Redis restarting, a dropped connection)."""
    import anyio
    from coredis.exceptions import ConnectionError as RedisConnectionError
    from coredis.exceptions import ReadOnlyError

    leaves = leaf_errors(exc)
    return bool(leaves) and all(
        isinstance(
            e,
            RedisConnectionError
            | ReadOnlyError
            | TimeoutError
            | OSError
            | trio.BrokenResourceError
            | trio.ClosedResourceError
            | anyio.BrokenResourceError
            | anyio.ClosedResourceError
            | anyio.EndOfStream
            | EOFError,
        )
        for e in leaves
    )


def translate(url: str, exc: BaseException) -> StoreError | None:
    """One line for a user, whatever the client said; None for what is not a Redis error."""
    from coredis.exceptions import (
        AuthenticationError,
        AuthorizationError,
        RedisError,
    )

    where = redact(url)
    for leaf in leaf_errors(exc):
        if isinstance(leaf, StoreError):
            return leaf
        if isinstance(leaf, AuthenticationError):
            return StoreError(f"Redis at {where} refused the credentials ({leaf})")
        if isinstance(leaf, AuthorizationError):
            return StoreError(f"Redis at {where}: not allowed ({leaf})")
    for leaf in leaf_errors(exc):
        if transient(leaf):
            return StoreError(f"cannot reach Redis at {where} ({leaf or type(leaf).__name__})")
        if isinstance(leaf, RedisError):
            return StoreError(f"Redis at {where}: {leaf}")
    return None


def parse_url(url: str) -> None:
    if not is_redis_url(url):
        raise SettingsError(f"--store takes a redis://HOST:PORT/DB URL, not {url!r}")
    parts = urlsplit(url)
    try:
        _ = parts.port
    except ValueError as exc:
        raise SettingsError(f"malformed Redis URL {redact(url)!r}: {exc}") from None
    path = unquote(parts.path).strip("/")
    if path and not path.isdigit():
        raise SettingsError(f"malformed Redis URL {redact(url)!r}: the path is a database number")


def check_crawl_id(crawl_id: str) -> None:
    if not crawl_id or len(crawl_id) > 200 or any(c in crawl_id for c in "{}\n\r\t "):
        raise SettingsError(
            f"a crawl id is 1 to 200 characters without spaces or braces, not {crawl_id!r}"
        )


def key_prefix(crawl_id: str) -> str:
    return f"tc:{{{crawl_id}}}:"


def redis_client(url: str) -> coredis.Redis[bytes]:
    try:
        import coredis
    except ImportError:
        raise StoreError("the Redis store needs coredis: pip install 'coredis>=6.9,<7'") from None

    return coredis.Redis.from_url(url, connect_timeout=5, stream_timeout=30)


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def from_json(value: Any) -> Any:
    return json.loads(as_text(value))


def as_list(value: Any) -> list[Any]:
    # cjson encodes an empty Lua table as {}
    return value if isinstance(value, list) else []


def flatten(counters: Counters) -> dict[str, int]:
    out: dict[str, int] = {}
    for field in dataclasses.fields(counters):
        value = getattr(counters, field.name)
        if isinstance(value, Counter):
            for key, n in value.items():
                out[f"{field.name}.{key}"] = int(n)
        elif isinstance(value, int) and not isinstance(value, bool):
            out[field.name] = value
    return out


def only_redis(group: BaseExceptionGroup) -> bool:
    from coredis.exceptions import RedisError

    leaves = leaf_errors(group)
    return bool(leaves) and all(
        isinstance(e, RedisError | StoreError | OSError) and not isinstance(e, trio.Cancelled)
        for e in leaves
    )


# --------------------------------------------------------------------------- reading a crawl
async def ping(client: coredis.Redis[bytes], url: str) -> None:
    """Check that Redis answers (within 10 s); a one-line :class:`StoreError` when not."""
    from coredis.exceptions import RedisError

    try:
        with trio.fail_after(10):
            await client.ping()
    except trio.TooSlowError:
        raise StoreError(f"cannot reach Redis at {redact(url)} (timed out)") from None
    except (RedisError, OSError, BaseExceptionGroup) as exc:
        error = translate(url, exc)
        if error is None:
            raise
        raise error from None


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[coredis.Redis[bytes]]:
    parse_url(url)
    try:
        async with redis_client(url) as client:
            with trio.fail_after(10):
                await client.ping()
            yield client
    except trio.TooSlowError:
        raise StoreError(f"cannot reach Redis at {redact(url)} (timed out)") from None
    except Exception as exc:
        if isinstance(exc, StoreError):
            raise
        error = translate(url, exc)
        if error is None:
            raise
        raise error from None


async def read_crawl(url: str, crawl_id: str) -> dict[str, Any]:
    """The stored crawl's identity (``crawl``) and shared settings (``settings``)."""
    check_crawl_id(crawl_id)
    prefix = key_prefix(crawl_id)
    async with connected(url) as client:
        values = await client.hmget(prefix + "meta", ["crawl", "settings", "format"])
    crawl, settings, version = values
    if crawl is None:
        raise StoreError(
            f"no crawl {crawl_id!r} in Redis at {redact(url)}: start it with "
            f"`trio-crawler crawl URL --store {redact(url)} --crawl-id {crawl_id}`"
        )
    if int(as_text(version or b"0")) > FORMAT_VERSION:
        raise StoreError(f"crawl {crawl_id!r} was written by a newer trio-crawler")
    return {"crawl": from_json(crawl), "settings": from_json(settings or b"{}")}


async def read_status(url: str, crawl_id: str) -> dict[str, Any]:
    """Where a crawl stands: counts, statistics, stop reason."""
    check_crawl_id(crawl_id)
    p = key_prefix(crawl_id)
    async with connected(url) as client:
        meta = await client.hgetall(p + "meta")
        if not meta:
            raise StoreError(f"no crawl {crawl_id!r} in Redis at {redact(url)}")
        stats = await client.hgetall(p + "stats")
        count = await client.get(p + "count")
        queued = await client.get(p + "queued")
        leased = await client.zcard(p + "leases")
        items = await client.xlen(p + "items")
        workers = await client.hgetall(p + "workers")
    return {
        "crawl": from_json(meta.get(b"crawl", b"{}")),
        "stop_reason": as_text(meta[b"stop_reason"]) if b"stop_reason" in meta else None,
        "created": _epoch(meta.get(b"created")),
        "finished_at": _epoch(meta.get(b"finished_at")),
        "link_graph": as_text(meta[b"link_graph"]) if b"link_graph" in meta else None,
        "outstanding": int(count or 0),
        "queued": int(queued or 0),
        "leased": int(leased),
        "items": int(items),
        "stats": {as_text(k): int(v) for k, v in stats.items()},
        "workers": {as_text(k): from_json(v) for k, v in workers.items()},
    }


async def export_items(url: str, crawl_id: str, target: str, *, format: str | None = None) -> int:
    """Write the crawl's committed items to ``target``; returns the count."""
    from .._export import open_exporter

    check_crawl_id(crawl_id)
    key = key_prefix(crawl_id) + "items"
    count = 0
    async with connected(url) as client:
        if not await client.exists([key_prefix(crawl_id) + "meta"]):
            raise StoreError(f"no crawl {crawl_id!r} in Redis at {redact(url)}")
        with open_exporter(target, format=format) as exporter:
            start = "-"
            while True:
                entries = await client.xrange(key, start, "+", count=1000)
                if not entries:
                    break
                records = [json.loads(e.field_values[b"d"]) for e in entries]
                exporter.write_many(records)
                count += len(records)
                start = "(" + as_text(entries[-1].identifier)
    return count


def _pair(value: Any) -> tuple[str, str]:
    """``"<URL>\\n<text>"`` as (URL, text)."""
    first, _, rest = as_text(value).partition("\n")
    return first, rest


def _epoch(value: bytes | None) -> float | None:
    try:
        return float(as_text(value)) if value else None
    except ValueError:
        return None


async def read_items(
    url: str, crawl_id: str, start: str = "-", count: int = 2000
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``count`` committed records from ``start`` (a stream id, ``-`` for the first),
    and where the next read starts (None: no more)."""
    check_crawl_id(crawl_id)
    async with connected(url) as client:
        entries = await client.xrange(key_prefix(crawl_id) + "items", start, "+", count=count)
    records = [json.loads(e.field_values[b"d"]) for e in entries]
    if len(entries) < count:
        return records, None
    return records, "(" + as_text(entries[-1].identifier)


async def read_referrers(url: str, crawl_id: str, urls: Sequence[str]) -> dict[str, Referrers]:
    """The link graph's referrers of ``urls`` (those it has links to)."""
    check_crawl_id(crawl_id)
    p = key_prefix(crawl_id)
    out: dict[str, Referrers] = {}
    wanted = list(dict.fromkeys(urls))
    async with connected(url) as client:
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            totals = await client.hmget(p + "g:total", chunk)
            known = [(u, int(t)) for u, t in zip(chunk, totals, strict=True) if t is not None]
            fields = [f"{u}\n{n}" for u, t in known for n in range(min(t, REFERRERS_KEPT))]
            values = list(await client.hmget(p + "g:refs", fields)) if fields else []
            at = 0
            for u, t in known:
                kept = values[at : at + min(t, REFERRERS_KEPT)]
                at += len(kept)
                links = [_pair(v) for v in kept if v is not None]
                out[u] = Referrers(tuple(links), t)
    return out


async def read_out_of_scope(url: str, crawl_id: str, limit: int) -> OutOfScopeLinks:
    """The out-of-scope URLs met most often (the link graph's), read with HSCAN."""
    check_crawl_id(crawl_id)
    p = key_prefix(crawl_id)
    counts: list[tuple[str, int]] = []
    async with connected(url) as client:
        cursor: int | None = 0
        while cursor is not None:
            cursor, found = await client.hscan(p + "g:oos", cursor, count=1000)
            assert isinstance(found, dict)
            counts.extend((as_text(k), int(v)) for k, v in found.items())
            cursor = cursor or None
        total = await client.hget(p + "g:counts", "oos_total")
    distinct = len(dict(counts))  # HSCAN may return a field twice
    return OutOfScopeLinks(
        tuple(top_out_of_scope(dict(counts).items(), limit)), distinct, int(total or 0)
    )


async def read_meta_robots(url: str, crawl_id: str, limit: int) -> MetaRobotsPages:
    """The first pages noindex kept out (the link graph's), and how many there were."""
    check_crawl_id(crawl_id)
    p = key_prefix(crawl_id)
    async with connected(url) as client:
        entries = await client.lrange(p + "g:noindex", 0, max(0, limit - 1)) if limit else []
        total = await client.hget(p + "g:counts", "noindex_total")
    pages = [_pair(e) for e in entries]
    return MetaRobotsPages(tuple(pages), int(total or 0))


# --------------------------------------------------------------------------- calls and encoding
def link_args(item: NewRequest) -> list[Any]:
    """A new request as the Lua scripts take it (``add_links``)."""
    request = item.request
    fp = item.fingerprint
    return [
        str(signed(fp)),
        fp & 0xFFFFFFFF,
        item.host,
        int(request.priority),
        f"{fp:016x} {encode_request(request)}",
        1 if request.dont_filter else 0,
    ]


def completion(
    token: str,
    claim: Claim,
    new: Sequence[NewRequest],
    items: Sequence[Any],
    graph: PageGraph | None,
) -> dict[str, Any]:
    """A page's completion as the SYNC script takes it (op ``c``): its lease, its items as
    records, its new requests and its link graph facts, committed in one step."""
    op: dict[str, Any] = {
        "k": "c",
        "t": token,
        "f": f"{claim.fingerprint:016x}",
        "i": [encode_json(to_record(item)) for item in items],
        "n": [link_args(r) for r in new],
    }
    if graph is not None:
        op["g"] = graph_args(graph)
    return op


def graph_args(graph: PageGraph) -> dict[str, Any]:
    """A page's link graph facts as the SYNC script takes them (``add_graph``)."""
    out: dict[str, Any] = {"s": graph.source}
    if graph.links:
        out["l"] = graph.links
    if graph.out_of_scope:
        out["o"] = graph.out_of_scope
    if graph.noindex is not None:
        out["x"] = graph.noindex
    return out


def claim_of(host: str, entry: str) -> Claim:
    """A claim from a frontier entry ``"<fp hex> <request JSON>"``."""
    fp_hex, _, text = entry.partition(" ")
    return Claim(decode_request(text), int(fp_hex, 16), host)


@dataclasses.dataclass(eq=False, slots=True)
class Op:
    """One change waiting for the committer. ``result``: new requests queued, -1 stale."""

    payload: dict[str, Any]
    claim: Claim | None = None
    items: Sequence[Any] = ()
    waited: bool = False
    done: trio.Event = dataclasses.field(default_factory=trio.Event)
    result: int = 0


class Scripts:
    """The crawl's Lua scripts (:mod:`.lua`), registered on one client."""

    def __init__(self, client: coredis.Redis[bytes]) -> None:
        def script(body: str) -> Any:
            return client.register_script(lua.PRELUDE + body)

        self.sync = script(lua.SYNC)
        self.add = script(lua.ADD)
        self.mark_seen = script(lua.MARK_SEEN)
        self.peek = script(lua.PEEK)
        self.renew = script(lua.RENEW)
        self.release = script(lua.RELEASE)
        self.open = script(lua.OPEN)
        self.save_robots = script(lua.SAVE_ROBOTS)
        self.add_scope = script(lua.ADD_SCOPE)


async def call_retrying(
    url: str, what: str, fn: Callable[[], Awaitable[_T]], *, retry_for: float
) -> _T:
    """Run one Redis call, retrying connection errors with backoff (Redis restarting) for up
    to ``retry_for`` seconds; any other error is a one-line :class:`StoreError`."""
    delay = 0.05
    started = trio.current_time()
    warned = False
    while True:
        try:
            result = await fn()
        except Exception as exc:  # ExceptionGroup too: the client's nursery wraps errors
            if not transient(exc):
                log.debug("Redis call %s failed", what, exc_info=exc)
                error = translate(url, exc)
                if error is None:
                    raise
                raise error from None
            waited = trio.current_time() - started
            if waited > retry_for:
                raise StoreError(
                    f"Redis at {redact(url)} unreachable for {waited:.0f}s ({leaf_errors(exc)[0]})"
                ) from None
            if not warned:
                log.warning(
                    "Redis at %s: %s during %s; retrying", redact(url), leaf_errors(exc)[0], what
                )
                warned = True
        else:
            if warned:
                log.warning("Redis at %s is back", redact(url))
            return result
        await trio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 2.0)
