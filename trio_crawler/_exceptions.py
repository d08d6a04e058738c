"""The crawler's errors.

Exceptions that reach a caller form one small tree::

    CrawlerError                  base of everything the crawler raises on purpose
    ├── SettingsError             a setting (flag, API argument) is nonsense; message is one line
    ├── SpiderNotFound            a spider name or ``module:Class`` reference does not resolve
    ├── StoreError                the state store cannot be opened, read or written
    │   └── StateMismatch         resuming with settings that conflict with the stored crawl
    └── FetchError                one page could not be fetched; carries a :class:`FailureKind`

``FetchError`` never escapes a crawl: the engine records it on the page's record and in the
statistics and goes on. The HTTP layers' exceptions (httpcore's types and their own) are
translated into ``FetchError`` at exactly one place, the fetcher
(:mod:`trio_crawler._http.fetcher`, by type in :mod:`trio_crawler._http.errors`); nothing
outside :mod:`trio_crawler._http` imports httpx, httpcore or httptools.

:class:`FailureKind` names every way a page can fail. It is a ``str`` enum so records and
statistics serialise it as plain text (``"timeout"``, ``"robots"``...).
"""

from __future__ import annotations

import enum


class FailureKind(enum.StrEnum):
    """Why a page produced no usable response. Stable strings: they appear in records."""

    # network
    TIMEOUT = "timeout"  # connect/read/whole-request deadline
    CONNECT = "connect"  # connection refused or unreachable
    DNS = "dns"  # name does not resolve
    RESET = "reset"  # connection reset or closed mid-body
    PROTOCOL = "protocol"  # invalid HTTP from the server
    TLS = "tls"  # certificate or handshake failure
    PROXY = "proxy"  # the proxy refused or failed
    # content
    HTTP_STATUS = "http_status"  # final 4xx/5xx answer (after retries)
    CONTENT_ENCODING = "content_encoding"  # unknown or corrupt Content-Encoding
    RETRY_AFTER_TOO_LONG = "retry_after_too_long"  # server asked to wait beyond the cap
    RATE_LIMITED = "rate_limited"  # still rate limited after max_rate_limit_waits waits
    # policy
    ROBOTS = "robots"  # disallowed by robots.txt
    OUT_OF_SCOPE = "out_of_scope"  # a redirect left the crawl's scope
    FORBIDDEN_ADDRESS = "forbidden_address"  # address guard (SSRF) refused to connect
    BAD_SCHEME = "bad_scheme"  # redirect to file:, ftp:, ...
    REDIRECT_LOOP = "redirect_loop"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    BAD_URL = "bad_url"  # unparsable or over-long URL
    # user code
    SCRAPE_ERROR = "scrape_error"  # spider.scrape raised
    PROCESS_ERROR = "process_error"  # spider.process raised
    PARSE = "parse"  # a spider recorded part of a page it could not parse
    STORE = "store"  # the state store refused the page
    # the browser
    RENDER = "render"  # rendering in Chromium failed (its crash, a stuck or crashed page)
    OTHER = "other"


#: Kinds that are worth another try (with backoff) before the URL is given up.
RETRYABLE_KINDS: frozenset[FailureKind] = frozenset(
    {FailureKind.TIMEOUT, FailureKind.CONNECT, FailureKind.RESET, FailureKind.PROTOCOL}
)


class CrawlerError(Exception):
    """Base class of every error the crawler raises on purpose."""


def find_crawler_error(exc: BaseException) -> CrawlerError | None:
    """``exc`` itself or the first :class:`CrawlerError` in its exception groups (a task of a
    nursery raised it), or None: what a command reports in one line instead of a traceback."""
    if isinstance(exc, CrawlerError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_crawler_error(inner)
            if found is not None:
                return found
    return None


class SettingsError(CrawlerError, ValueError):
    """A setting is invalid. The message is one line, fit to show a user."""


class SpiderNotFound(CrawlerError, LookupError):
    """A spider name or ``path.py:Class`` / ``module:Class`` reference did not resolve."""


class StoreError(CrawlerError):
    """The state store cannot be opened, read or written."""


class StateMismatch(StoreError):
    """Resuming a stored crawl with settings that may not change (seeds, scope, spider...)."""


class FetchError(CrawlerError):
    """One request failed. ``kind`` says how; ``url`` names the request."""

    def __init__(self, kind: FailureKind, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.url = url

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.kind.value}: {text}" + (f" ({self.url})" if self.url else "")
