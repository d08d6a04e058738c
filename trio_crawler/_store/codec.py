"""How the durable stores write a crawl's values: requests as JSON, fingerprints as SQL/Redis
integers, statistics as a flat map (pure, shared by :mod:`.sqlite` and :mod:`.redis`)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._exceptions import StateMismatch, StoreError
from .._spider import Request

if TYPE_CHECKING:
    from .._stats import Counters

_U64 = 1 << 64
_I63 = 1 << 63


def signed(fp: int) -> int:
    """A 64-bit fingerprint as a signed integer (SQLite's and Lua's integers are signed)."""
    return fp - _U64 if fp >= _I63 else fp


def unsigned(fp: int) -> int:
    return fp + _U64 if fp < 0 else fp


def encode_request(request: Request) -> str:
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
    if request.rate_limited:
        data["rate_limited"] = request.rate_limited
    if request.render is not None:
        data["render"] = request.render
    if request.wait_for is not None:
        data["wait_for"] = request.wait_for
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"cannot store the request for {request.url[:200]}: its meta is not JSON ({exc})"
        ) from None


def decode_request(text: str) -> Request:
    data = json.loads(text)
    if "redirects" in data:
        data["redirects"] = tuple(data["redirects"])
    return Request(**data)


def describe(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def check_same_crawl(
    stored: Mapping[str, Any], new: Mapping[str, Any], *, holder: str, instead: str
) -> None:
    """A stored crawl resumes (or is joined) only with the same identity: raise
    :class:`~trio_crawler.StateMismatch` naming the first field that differs.
    ``holder`` says what holds the crawl; ``instead`` what to use for another crawl."""
    for key, value in new.items():
        if key in stored and jsonable(stored[key]) != jsonable(value):
            raise StateMismatch(
                f"{holder} holds a crawl with other {key} ({describe(stored[key])}, now "
                f"{describe(value)}); use the same {key}, or {instead}"
            )


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, unknown types strings)."""
    return json.loads(json.dumps(value, default=str))


def dump_counters(counters: Counters) -> str:
    # not dataclasses.asdict: it rebuilds a Counter from its (key, count) pairs
    return json.dumps(
        {
            field.name: dict(value) if isinstance(value, Counter) else value
            for field in dataclasses.fields(counters)
            for value in (getattr(counters, field.name),)
        }
    )


def load_counters(counters: Counters, stored: Mapping[str, Any]) -> None:
    for field in dataclasses.fields(counters):
        if field.name not in stored:
            continue
        value = stored[field.name]
        current = getattr(counters, field.name)
        if isinstance(current, Counter) and isinstance(value, Mapping):
            setattr(counters, field.name, Counter({str(k): int(v) for k, v in value.items()}))
        elif isinstance(value, int) and not isinstance(value, bool):
            setattr(counters, field.name, value)
