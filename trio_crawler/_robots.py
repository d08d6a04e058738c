"""robots.txt policy (RFC 9309) and its per-origin cache. Pure and synchronous.

Theory of operation
-------------------
The fetcher asks for ``robots_url(origin)`` once per origin and hands the answer to
:meth:`RobotsPolicy.from_response`, which turns it into an immutable verdict:

* **2xx** - the body (capped at :data:`ROBOTS_MAX_BYTES`, decoded as UTF-8 with replacement)
  is parsed once, with protego, into ``kind="rules"``. Garbage never raises; if the parser
  fails the origin is allowed (``kind="allow_all"``).
* **4xx other than 429** - "unavailable": everything is allowed (RFC 9309 section 2.3.1.3,
  401 and 403 included).
* **429, 5xx and anything unexpected** - "unreachable": everything is disallowed until
  ``now + error_ttl``, after which the cache drops the verdict and the file is fetched again
  (section 2.3.1.4). A fetch that fails outright (network error, too many redirects) uses
  :meth:`RobotsPolicy.unreachable` the same way.

Verdicts from a response expire after ``ttl`` (24 hours by default, as section 2.4 asks).
:class:`RobotsCache` holds one verdict per origin, bounded, least recently used first out.

Group selection. RFC 9309 matches a group by the crawler's *product token*, exactly and
case-insensitively, and falls back to the ``*`` group. protego matches a group whose name
occurs at the start of a word of the agent string, so a ``User-agent: trio`` group would
also capture ``trio-crawler``, and it keeps ``User-agent: trio-crawler/1.0`` verbatim so that
group never matches the token. Here each ``User-agent`` value is cut to its product token
before parsing (as Google's reference parser does), the group names are remembered, and
protego is asked with the token only when a group carries exactly that name, else with ``*``.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Literal
from urllib.parse import urlsplit

from protego import Protego

__all__ = [
    "ROBOTS_MAX_BYTES",
    "RobotsCache",
    "RobotsPolicy",
    "robots_url",
    "user_agent_token",
]

#: RFC 9309 section 2.5: crawlers must parse at least 500 KiB; the fetcher caps the body here.
ROBOTS_MAX_BYTES = 500 * 1024

#: Default lifetime of a verdict built from a response (RFC 9309 section 2.4: at most 24 h).
DEFAULT_TTL = 24 * 3600.0

_TOKEN = re.compile(r"[A-Za-z_-]+")

# A "User-agent" line in any spelling protego accepts with a separator ("User-agent:",
# "User agent:", "useragent:"), its value cut to the leading product token: group 1 is the
# line up to the value, group 2 the token, and the rest of the value (up to a comment) goes.
_UA_LINE = re.compile(
    r"^([ \t]*user[- ]?agent[ \t]*:[ \t]*)([A-Za-z_-]+)[^#\n]*",
    re.IGNORECASE | re.MULTILINE,
)
# Any "User-agent" line at all, for collecting the group names protego will see.
_UA_NAME = re.compile(
    r"^[ \t]*user[- ]?agent(?:[ \t]*:[ \t]*|[ \t]+)([^#\n]*)",
    re.IGNORECASE | re.MULTILINE,
)


def robots_url(origin: str) -> str:
    """The robots.txt URL of an origin: ``'http://h:8080'`` -> ``'http://h:8080/robots.txt'``.

    A trailing slash, or a whole URL, is accepted too: only the scheme and authority count.
    """
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an origin: {origin!r}")
    return f"{parts.scheme}://{parts.netloc}/robots.txt"


def user_agent_token(user_agent: str) -> str:
    """The product token of a User-Agent string, the name robots.txt groups are matched against.

    ``'trio-crawler/0.1.0 (+https://x)'`` -> ``'trio-crawler'``: the leading run of the
    characters RFC 9309 allows in a token (``A-Z a-z _ -``). An agent string that starts with
    anything else has no token and gives ``''``, which only the ``*`` group matches.
    """
    match = _TOKEN.match(user_agent.strip())
    return match.group() if match else ""


def _prepare(body: bytes) -> str:
    """Cap, decode and normalise a robots.txt body; never raises."""
    if len(body) > ROBOTS_MAX_BYTES:
        body = body[:ROBOTS_MAX_BYTES]
        # Drop the line the cap cut in two: "Disallow: /private" cut to "Disallow: /" would
        # shut the whole site.
        cut = max(body.rfind(b"\n"), body.rfind(b"\r"))
        body = body[: cut + 1] if cut >= 0 else b""
    # utf-8-sig drops a byte order mark, which would otherwise spoil the first line.
    text = body.decode("utf-8-sig", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "")


@dataclasses.dataclass(frozen=True, slots=True)
class RobotsPolicy:
    """One origin's robots.txt verdict. Immutable; build with the classmethods.

    ``expires`` is a time on the caller's monotonic clock after which the verdict must be
    refetched; ``None`` keeps it for the whole crawl.
    """

    kind: Literal["rules", "allow_all", "disallow_all"]
    expires: float | None
    sitemaps: tuple[str, ...] = ()
    _parser: Protego | None = dataclasses.field(default=None, repr=False, compare=False)
    _agents: frozenset[str] = dataclasses.field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def from_response(
        cls,
        status: int,
        body: bytes,
        *,
        now: float,
        error_ttl: float,
        ttl: float = DEFAULT_TTL,
    ) -> RobotsPolicy:
        """The verdict for a robots.txt response (after redirects) received at ``now``."""
        if 200 <= status < 300:
            return cls._parse(body, expires=now + ttl)
        if 400 <= status < 500 and status != 429:
            return cls(kind="allow_all", expires=now + ttl)
        # 429, 5xx, and statuses that should never get here (1xx, 3xx, nonsense).
        return cls.unreachable(now=now, error_ttl=error_ttl)

    @classmethod
    def unreachable(cls, *, now: float, error_ttl: float) -> RobotsPolicy:
        """Disallow everything until ``now + error_ttl`` (server error, network failure)."""
        return cls(kind="disallow_all", expires=now + error_ttl)

    @classmethod
    def allow_all(cls) -> RobotsPolicy:
        """Allow everything, for the whole crawl (robots.txt not obeyed)."""
        return cls(kind="allow_all", expires=None)

    @classmethod
    def _parse(cls, body: bytes, *, expires: float) -> RobotsPolicy:
        agents: set[str] = set()

        def cut_to_token(match: re.Match[str]) -> str:
            return match.group(1) + match.group(2)

        try:
            text = _UA_LINE.sub(cut_to_token, _prepare(body))
            for match in _UA_NAME.finditer(text):
                agents.add(match.group(1).strip().lower())
            parser = Protego.parse(text)
            sitemaps = tuple(dict.fromkeys(parser.sitemaps))
        except Exception:  # garbage must never take the crawl down: treat as no rules
            return cls(kind="allow_all", expires=expires)
        return cls(
            kind="rules",
            expires=expires,
            sitemaps=sitemaps,
            _parser=parser,
            _agents=frozenset(agents),
        )

    def _agent(self, user_agent_token: str) -> str:
        # Ask protego for the agent's own group only when one carries exactly its name.
        return user_agent_token if user_agent_token.lower() in self._agents else "*"

    def allowed(self, url: str, user_agent_token: str) -> bool:
        """May ``url`` be fetched by the agent? ``/robots.txt`` itself always may."""
        if self.kind == "allow_all":
            return True
        if self._parser is None:  # disallow_all
            return "/robots.txt" in url and urlsplit(url).path == "/robots.txt"
        return self._parser.can_fetch(url, self._agent(user_agent_token))

    def crawl_delay(self, user_agent_token: str) -> float | None:
        """Crawl-delay (seconds) of the group that applies: the agent's own, else ``*``."""
        if self._parser is None:
            return None
        return self._parser.crawl_delay(self._agent(user_agent_token))

    def is_expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


class RobotsCache:
    """origin -> :class:`RobotsPolicy`, bounded: the least recently used origin goes first.

    Pure dict logic; the caller passes the (monotonic) time. An expired verdict is dropped
    when it is looked up, so the caller fetches robots.txt again.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries!r}")
        self._max_entries = max_entries
        self._entries: collections.OrderedDict[str, RobotsPolicy] = collections.OrderedDict()

    def get(self, origin: str, now: float) -> RobotsPolicy | None:
        """The origin's verdict, or ``None`` when there is none or it has expired."""
        policy = self._entries.get(origin)
        if policy is None:
            return None
        if policy.is_expired(now):
            del self._entries[origin]
            return None
        self._entries.move_to_end(origin)
        return policy

    def peek(self, origin: str, now: float) -> RobotsPolicy | None:
        """Like :meth:`get`, without making the origin the most recently used (a look from
        the admission of links: the origin's own requests keep it in the cache)."""
        policy = self._entries.get(origin)
        if policy is None or policy.is_expired(now):
            return None
        return policy

    def put(self, origin: str, policy: RobotsPolicy) -> None:
        self._entries[origin] = policy
        self._entries.move_to_end(origin)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
