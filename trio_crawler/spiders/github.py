"""Public members of a GitHub organisation, through the REST API.

Starts at ``{base_url}/orgs/{org}/public_members?per_page=100`` and follows the ``Link`` header's
``rel="next"`` (GitHub's next links use the numeric form,
``/organizations/1342004/public_members?per_page=100&page=2``). Set ``GITHUB_TOKEN`` in the
environment to send ``Authorization: Bearer ...`` (5,000 requests an hour instead of 60); the token
is only sent to ``base_url``'s origin.

**base_url.** GitHub writes its ``Link`` URLs absolute, on the public API's origin
(``https://api.github.com/organizations/...``). With ``--arg base_url=...`` (a mirror, a recording,
GitHub Enterprise Server's ``https://HOST/api/v3``) a link on that origin is mapped onto
``base_url``: its scheme, host, port and path prefix (:func:`map_api_url`). Links elsewhere are
followed as given, without the token.

**Rate limits.** :func:`rate_limit_delay` follows GitHub's "Rate limits for the REST API"
(*Exceeding the rate limit*). A 403 or 429 is rate limited when it carries ``Retry-After``, or
``x-ratelimit-remaining: 0``, or a message naming a rate limit (the secondary limit's "You have
exceeded a secondary rate limit", its older "abuse detection", the primary "API rate limit
exceeded"); any other 403 ("Resource not accessible by ...", "Must have admin rights") is an
answer, not a reason to wait. The wait is

* ``Retry-After`` when given;
* else, with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``, until the reset (measured
  against the response's ``Date``, so a skewed local clock or a replayed recording waits the
  time the server meant) plus a second;
* else (a secondary limit without ``Retry-After``, or remaining 0 without a reset) one minute;

doubled for each earlier rate-limited answer to the same request ("wait for an exponentially
increasing amount of time"), except the wait for a reset, which is exact. The engine counts those
answers on ``Request.rate_limited``, caps each wait at ``max_retry_after`` (this spider raises it
to an hour and a minute, a primary window's length, so that it never asks again before the reset)
and gives the request up after its bound. A 2xx that spent the window's last request pauses the
host until the reset.

A members page that fails for good (a 404 for an unknown org, a 403 without access, the
rate-limit bound) is logged at WARNING by :meth:`failed`: its members and all after it are lost.

**robots.txt.** This spider does not obey robots.txt by default (``obey_robots=False``). Public
accounts of api.github.com's robots.txt disagree: an older one reports it disallows all crawlers,
recent measurements report a 404 (no rules). Either way robots.txt speaks to web crawlers; the REST
API is documented for programmatic clients and is governed by its terms, its authentication and
its rate-limit headers, which this spider honours, with one request at a time and a one-second
gap. Pass ``--obey-robots`` to check it anyway.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from .._exceptions import SettingsError
from .._retry import parse_retry_after
from .._spider import Failure, Page, Request, Spider, register
from ._shared import ParseError, checked_base_url, parse_error, warn_failed

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.github.com"
DEFAULT_ORG = "google"

#: Seconds to wait for a rate limit that says nothing of when it ends ("at least one minute").
MINIMUM_WAIT = 60.0
#: A primary rate-limit window (an hour), plus a minute: the longest a reset can be away.
LONGEST_WAIT = 3660.0

#: GitHub logins: letters, digits and hyphens, not starting with a hyphen, at most 39 characters.
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")
#: One ``<url>; params`` element of a Link header (params run until the next ``<``).
_LINK = re.compile(r"<([^>]*)>([^<]*)")
#: Messages of rate-limited answers: "API rate limit exceeded for ...", "You have exceeded a
#: secondary rate limit ...", and the secondary limit's older name, "You have triggered an abuse
#: detection mechanism ...".
_RATE_LIMIT_MESSAGE = re.compile(r"rate[ -]?limit|abuse detection", re.IGNORECASE)
#: Beyond this many doublings the wait is far past any cap (and 2.0**n stays finite).
_MAX_DOUBLINGS = 30
#: A rate-limit answer's JSON body is small; a larger one is not read for its message.
_MAX_MESSAGE_BODY = 64 * 1024

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """One public member of the organisation. ``node_id`` (since 2017) and ``html_url`` (absent
    from the earliest API answers) are None when the answer lacks them."""

    login: str
    id: int
    node_id: str | None
    html_url: str | None
    avatar_url: str


@register
class GithubSpider(Spider):
    """Public members of a GitHub organisation (see the module docstring)."""

    name = "github"
    description = "public members of a GitHub organisation, via the REST API"
    item_types = (Member, ParseError)
    accept = "json"
    args = {
        "org": f"organisation login (default {DEFAULT_ORG})",
        "base_url": f"API root (default {DEFAULT_BASE_URL})",
    }
    custom_settings = {
        "obey_robots": False,
        "per_host_delay": 1.0,
        "per_host_concurrency": 1,
        "max_retry_after": LONGEST_WAIT,
    }

    def __init__(self, **kwargs: str) -> None:
        super().__init__(**kwargs)
        self.org = kwargs.get("org", DEFAULT_ORG).strip()
        if not _LOGIN.fullmatch(self.org):
            raise SettingsError(f"org must be a GitHub login (letters, digits, -): {self.org!r}")
        self.base_url = checked_base_url(kwargs.get("base_url", DEFAULT_BASE_URL))
        self._origin = _origin(self.base_url)
        self._token = os.environ.get("GITHUB_TOKEN", "").strip() or None

    def request_headers(self, url: str) -> dict[str, str]:
        """Headers for a request to ``url``: the token only goes to ``base_url``'s origin."""
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self._token and _origin(url) == self._origin:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def start_requests(self) -> Iterable[Request | str]:
        url = f"{self.base_url}/orgs/{self.org}/public_members?per_page=100"
        return [Request(url=url, headers=self.request_headers(url))]

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        try:
            members = page.json()
        except (ValueError, RecursionError) as exc:
            yield parse_error(logger, page.url, f"body is not JSON: {exc}")
            return
        if not isinstance(members, list):
            shown = members.get("message") if isinstance(members, dict) else None
            shown = str(shown or members)[:80]
            yield parse_error(logger, page.url, f"expected a JSON array of members, got {shown!r}")
            return
        for index, entry in enumerate(members):
            try:
                member = parse_member(entry)
            except ValueError as exc:
                yield parse_error(logger, page.url, f"member {index}: {exc}")
            else:
                yield member
        following = parse_link_header(page.headers.get_list("link")).get("next")
        if following:
            url = map_api_url(urljoin(page.url, following), self.base_url)
            yield Request(url=url, headers=self.request_headers(url))

    async def failed(self, failure: Failure) -> list[Any]:
        """A members page that could not be fetched: its members and the pages after it are
        lost, so say so at WARNING (the engine logs an HTTP status at INFO)."""
        warn_failed(logger, failure, "members page")
        return []

    def rate_limit_delay(self, page: Page) -> float | None:
        """Seconds to wait before asking again (see :func:`rate_limit_delay`), or None."""
        return rate_limit_delay(
            page.status,
            page.headers,
            _message(page),
            attempt=page.request.rate_limited,
            now=time.time(),
        )


def rate_limit_delay(
    status: int,
    headers: Mapping[str, str],
    message: str | None,
    *,
    attempt: int,
    now: float,
) -> float | None:
    """Seconds GitHub asks us to wait after an answer, or None when it is not rate limited.

    ``headers`` is looked up by lower-case name; ``message`` is the JSON body's ``message``
    (None if there is none); ``attempt`` counts the earlier rate-limited answers to the same
    request (0 for the first); ``now`` is the local wall-clock time, used only when the answer
    has no ``Date``. The rules are the module docstring's.
    """
    exhausted = headers.get("x-ratelimit-remaining", "").strip() == "0"
    server_now = _server_time(headers.get("date"), now)
    if 200 <= status < 300:
        if not exhausted:
            return None
        until_reset = _until_reset(headers.get("x-ratelimit-reset"), server_now)
        return until_reset if until_reset is not None else MINIMUM_WAIT
    if status not in (403, 429):
        return None
    retry_after = parse_retry_after(headers.get("retry-after"), now_wall=server_now)
    limited = (
        status == 429
        or retry_after is not None
        or exhausted
        or (message is not None and _RATE_LIMIT_MESSAGE.search(message) is not None)
    )
    if not limited:
        return None  # an ordinary 403: no access, and waiting will not give it
    if retry_after is not None:
        wait = max(1.0, retry_after)  # 0 would read as "not rate limited" in the engine
    else:
        until_reset = _until_reset(headers.get("x-ratelimit-reset"), server_now)
        if exhausted and until_reset is not None:
            return until_reset
        wait = MINIMUM_WAIT
    return wait * 2.0 ** min(max(attempt, 0), _MAX_DOUBLINGS)


def map_api_url(url: str, base_url: str) -> str:
    """``url`` moved from the public API's origin (``https://api.github.com``) onto ``base_url``
    (its scheme, host, port and path prefix); a URL on any other origin comes back unchanged.

    ``map_api_url("https://api.github.com/organizations/1/public_members?page=2",
    "http://127.0.0.1:8080/github")`` is
    ``"http://127.0.0.1:8080/github/organizations/1/public_members?page=2"``.
    """
    if _origin(url) != _API_ORIGIN:
        return url
    parts = urlsplit(url)
    return base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def parse_member(entry: object) -> Member:
    """One element of the members array as a :class:`Member`.

    Raises ValueError naming the field that is missing or of the wrong type. ``login``, ``id``
    and ``avatar_url`` are required; ``node_id`` and ``html_url`` may be absent or null.
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"expected an object, got {_json_type(entry)}")
    ident = _required(entry, "id", int)
    return Member(
        login=_required(entry, "login", str),
        id=ident,
        node_id=_optional(entry, "node_id"),
        html_url=_optional(entry, "html_url"),
        avatar_url=_required(entry, "avatar_url", str),
    )


def parse_link_header(values: Iterable[str]) -> dict[str, str]:
    """``{rel: url}`` from RFC 8288 ``Link`` header values (first URL per rel wins).

    Copes with several links per value, several values, quoted or bare ``rel`` holding
    space-separated relation types, any case and stray spaces.
    """
    links: dict[str, str] = {}
    for value in values:
        for found in _LINK.finditer(value):
            url, params = found.group(1).strip(), found.group(2)
            for param in params.split(";"):
                key, _, raw = param.partition("=")
                if key.strip().lower() != "rel":
                    continue
                for rel in raw.strip().strip(",").strip().strip('"').split():
                    links.setdefault(rel.lower(), url)
    return links


def _required(entry: Mapping[str, Any], name: str, kind: type[_T]) -> _T:
    if name not in entry or entry[name] is None:
        raise ValueError(f"missing {name!r}")
    value = entry[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        wanted = "an integer" if kind is int else "a string"
        raise ValueError(f"{name!r} is {_json_type(value)}, expected {wanted}")
    return value


def _optional(entry: Mapping[str, Any], name: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name!r} is {_json_type(value)}, expected a string")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _message(page: Page) -> str | None:
    """The ``message`` of a 403/429's JSON body, if it has one."""
    if page.status not in (403, 429) or len(page.body) > _MAX_MESSAGE_BODY:
        return None
    try:
        body = page.json()
    except (ValueError, RecursionError):
        return None
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else None


def _server_time(date: str | None, now: float) -> float:
    """The answer's ``Date`` as Unix time; ``now`` when it has none that parses."""
    if date is None or not date.strip():
        return now
    try:
        when = email.utils.parsedate_to_datetime(date.strip())
        if when.tzinfo is None:  # "-0000" carries no zone: HTTP dates are in UTC
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return now


def _until_reset(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` until ``x-ratelimit-reset`` (Unix seconds), plus one; None if absent
    or not a number."""
    try:
        reset = float((value or "").strip())
    except ValueError:
        return None
    if not math.isfinite(reset):
        return None
    return max(0.0, reset - now) + 1.0


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` with the default port filled in; None for a URL whose port is
    not a port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return None
    return scheme, (parts.hostname or "").lower(), port


_API_ORIGIN = _origin(DEFAULT_BASE_URL)
