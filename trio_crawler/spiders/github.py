"""Public members of a GitHub organisation, through the REST API.

Starts at ``{base_url}/orgs/{org}/public_members?per_page=100`` and follows the ``Link`` header's
``rel="next"`` wherever it points (GitHub's next links use the numeric form,
``/organizations/1342004/public_members?per_page=100&page=2``). Set ``GITHUB_TOKEN`` in the
environment to send ``Authorization: Bearer ...`` (5,000 requests an hour instead of 60); the token
is only sent to ``base_url``'s origin.

**robots.txt.** This spider does not obey robots.txt by default (``obey_robots=False``). Public
accounts of api.github.com's robots.txt disagree: an older one reports it disallows all crawlers,
recent measurements report a 404 (no rules). Either way robots.txt speaks to web crawlers; the REST
API is documented for programmatic clients and is governed by its terms, its authentication and
its rate-limit headers, which this spider honours (:meth:`rate_limit_delay`), with one request
at a time and a one-second gap. Pass ``--obey-robots`` to check it anyway.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from .._exceptions import SettingsError
from .._spider import Page, Request, Spider, register
from ._shared import ParseError, checked_base_url

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.github.com"
DEFAULT_ORG = "google"

#: GitHub logins: letters, digits and hyphens, not starting with a hyphen, at most 39 characters.
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")
#: One ``<url>; params`` element of a Link header (params run until the next ``<``).
_LINK = re.compile(r"<([^>]*)>([^<]*)")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """One public member of the organisation."""

    login: str
    id: int
    node_id: str | None
    html_url: str
    avatar_url: str


@register
class GithubSpider(Spider):
    """Public members of a GitHub organisation (see the module docstring)."""

    name = "github"
    description = "public members of a GitHub organisation, via the REST API"
    accept = "json"
    args = {
        "org": f"organisation login (default {DEFAULT_ORG})",
        "base_url": f"API root (default {DEFAULT_BASE_URL})",
    }
    custom_settings = {"obey_robots": False, "per_host_delay": 1.0, "per_host_concurrency": 1}

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
        except ValueError as exc:
            yield _problem(page, f"body is not JSON: {exc}")
            return
        if not isinstance(members, list):
            shown = members.get("message") if isinstance(members, dict) else None
            shown = str(shown or members)[:80]
            yield _problem(page, f"expected a JSON array of members, got {shown!r}")
            return
        for index, entry in enumerate(members):
            member = _member(entry)
            yield member if member is not None else _problem(page, f"entry {index} is not a member")
        following = parse_link_header(page.headers.get_list("link")).get("next")
        if following:
            url = urljoin(page.url, following)
            yield Request(url=url, headers=self.request_headers(url))

    def rate_limit_delay(self, page: Page) -> float | None:
        """Seconds GitHub asks us to wait, from ``Retry-After`` or the ``X-RateLimit-*`` headers.

        A 403/429 with ``Retry-After`` waits that long (at least a second: the engine takes 0
        as "no rate limit" and would fail the page); one with ``X-RateLimit-Remaining: 0`` waits
        until ``X-RateLimit-Reset`` (epoch seconds) plus a second. A 200 that spent the last
        request of the window pauses the host until the reset. Anything else: None.
        """
        headers = page.headers
        exhausted = headers.get("x-ratelimit-remaining", "").strip() == "0"
        if page.status in (403, 429):
            retry_after = _retry_after(headers.get("retry-after"))
            if retry_after is not None:
                return max(1.0, retry_after)
            return _until_reset(headers.get("x-ratelimit-reset")) if exhausted else None
        if 200 <= page.status < 300 and exhausted:
            return _until_reset(headers.get("x-ratelimit-reset"))
        return None


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


def _member(entry: object) -> Member | None:
    if not isinstance(entry, Mapping):
        return None
    login, ident = entry.get("login"), entry.get("id")
    html_url, avatar_url = entry.get("html_url"), entry.get("avatar_url")
    node_id = entry.get("node_id")
    if not (isinstance(login, str) and isinstance(ident, int) and not isinstance(ident, bool)):
        return None
    if not (isinstance(html_url, str) and isinstance(avatar_url, str)):
        return None
    return Member(
        login=login,
        id=ident,
        node_id=node_id if isinstance(node_id, str) else None,
        html_url=html_url,
        avatar_url=avatar_url,
    )


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _until_reset(value: str | None) -> float | None:
    try:
        reset = float((value or "").strip())
    except ValueError:
        return None
    return max(0.0, reset - time.time()) + 1.0


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _problem(page: Page, reason: str) -> ParseError:
    logger.warning("github: %s: %s", page.url, reason)
    return ParseError(url=page.url, reason=reason)
